"""The ``ssdn`` command line: ``main`` runs it, ``build_parser`` describes it (no torch at import)."""

from .commands import build_parser, main

__all__ = ["main", "build_parser"]
