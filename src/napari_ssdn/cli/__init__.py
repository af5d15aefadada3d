"""The ``ssdn`` command line: ``main`` runs it, ``build_parser`` describes it (no torch at import)."""

from .entry import main
from .parser import build_parser

__all__ = ["main", "build_parser"]
