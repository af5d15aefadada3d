"""How the widgets word the core's messages: each setting a message names becomes the
field that holds it (no Qt here, so that field validation stays testable without it)."""

from __future__ import annotations

from ..core.errors import Setting, SSDNError, one_line, template_of, worded

__all__ = ["widget_words", "in_widget_terms", "failure_text"]

# The widgets' field for each core setting (the Python argument name).
_FIELDS = {
    "blind": "Blind region",
    "noise": "Noise model",
    "device": "Device",
    "axes": "Axes",
    "patch": "Patch",
    "batch": "Batch",
    "width": "Width",
    "lr": "Learning rate",
    "seed": "Seed",
    "subsample": "Subsample",
    "time_limit": "Budget",
    "iterations": "Budget",
    "tile": "Tile",
    "output": "Output",
    "per_image": "Noise level",
    "threads": "Threads",
}


def widget_words(s: Setting) -> str:
    """How the widgets name a core setting: ``Blind region '6,6'``, ``Network 3D``, ``the b field``."""
    if s.name == "ndim":
        return "Network 3D" if s.value == "3" else "Network 2D"
    if s.name not in _FIELDS:  # noise parameters and options without a field of their own
        return f"the {s.name} field" if s.value is None else f"{s.name} = {s.value}"
    return _FIELDS[s.name] if s.value is None else f"{_FIELDS[s.name]} '{s.value}'"


def in_widget_terms(message) -> str:
    """A core error, warning or message with its settings named as the widgets' fields."""
    return worded(template_of(message) if isinstance(message, BaseException) else str(message), widget_words)


def failure_text(exc: BaseException) -> str:
    """A failure in one line: an SSDNError in the widgets' terms, anything else (a library's
    error, often several lines long) as its type and the first line of its message."""
    if isinstance(exc, SSDNError):
        return " ".join(in_widget_terms(exc).split()) or type(exc).__name__
    return one_line(exc)
