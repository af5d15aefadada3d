"""Errors meant for the user: one sentence naming the setting, the value and the remedy.

A message names a setting through :func:`setting` instead of spelling it out, so that each
front end words it its own way: ``blind='6,6'`` in Python, ``--blind 6,6`` on the command
line, ``Blind region '6,6'`` in the widgets (see :meth:`SSDNError.worded`).

>>> err = SSDNError(f"{setting('blind', '6,6')} is too large; use {setting('blind', '5,5')}")
>>> str(err)
"blind='6,6' is too large; use blind='5,5'"
>>> err.settings
(Setting(name='blind', value='6,6'), Setting(name='blind', value='5,5'))
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

__all__ = [
    "SSDNError",
    "SSDNWarning",
    "ModelFileError",
    "Setting",
    "setting",
    "python_words",
    "worded",
    "template_of",
    "library_failure",
    "one_line",
]

# Control characters that never occur in a user's text delimit a setting inside a message.
_START, _SEP, _END = "\x02", "\x1f", "\x03"
_TOKEN = re.compile(f"{_START}([^{_SEP}{_END}]*){_SEP}([^{_END}]*){_END}")
_NO_VALUE = "\x04"


class Setting(NamedTuple):
    """A setting named in a message: the Python argument, and its value as text (None when
    the message names the setting only, e.g. "give the noise level (sigma)")."""

    name: str
    value: str | None


def setting(name: str, value=_NO_VALUE) -> str:
    """Mark the setting ``name`` (a Python argument of :class:`TrainConfig`, :func:`denoise`
    etc.), with ``value`` when given, inside a message; tuples are written ``1,3``."""
    if value is _NO_VALUE:
        text = _NO_VALUE
    elif isinstance(value, (tuple, list)):
        text = ",".join(map(str, value))
    else:
        text = str(value)
    return f"{_START}{name}{_SEP}{text}{_END}"


def _settings(template: str) -> tuple[Setting, ...]:
    return tuple(Setting(n, None if v == _NO_VALUE else v) for n, v in _TOKEN.findall(template))


def python_words(s: Setting) -> str:
    """How the Python API names a setting: ``blind='6,6'``, ``ndim=3``, ``sigma``."""
    if s.value is None:
        return s.name
    return f"{s.name}={s.value}" if re.fullmatch(r"-?[\d.e+-]+|True|False|None", s.value) else f"{s.name}={s.value!r}"


def worded(message: str, words: Callable[[Setting], str] = python_words) -> str:
    """``message`` with each setting it marks written by ``words``."""
    return _TOKEN.sub(lambda m: words(Setting(m.group(1), None if m.group(2) == _NO_VALUE else m.group(2))), message)


class _Worded:
    """A message whose settings each front end words its own way; ``args`` keeps the marked
    message, so that a pickled error (e.g. from a worker process) keeps its settings."""

    @property
    def template(self) -> str:
        """The message with its settings marked (see :func:`setting`)."""
        return str(self.args[0]) if self.args else ""

    @property
    def settings(self) -> tuple[Setting, ...]:
        """The settings the message names, the one it is about first."""
        return _settings(self.template)

    def worded(self, words: Callable[[Setting], str] = python_words) -> str:
        """The message with its settings written by ``words`` (a :class:`Setting` -> text)."""
        return worded(self.template, words)

    def __str__(self) -> str:
        return self.worded()


class SSDNError(_Worded, Exception):
    """Bad input or state that the user can fix; the message says how (its settings are
    marked; :meth:`worded` writes them in a front end's terms)."""

    @property
    def setting(self) -> str | None:
        """The name of the setting the error is about, if it names one."""
        settings = self.settings
        return settings[0].name if settings else None


class SSDNWarning(_Worded, UserWarning):
    """Something the user should know about a result that was still produced."""


class ModelFileError(SSDNError):
    """A model file is missing, corrupt or does not fit the data."""


def template_of(exc: BaseException) -> str:
    """The marked message of an SSDN error or warning, else the plain text of ``exc``."""
    return exc.template if isinstance(exc, _Worded) else str(exc)


def library_failure(exc: BaseException, libraries: tuple[str, ...], doing: str, remedy: str) -> SSDNError:
    """One line for ``exc`` raised inside a third-party library while ``doing`` something.

    Names each of ``libraries`` with its installed version (so that a break between two
    releases can be told from a bad input), the error's first meaningful line, and ``remedy``.
    """
    from importlib.metadata import PackageNotFoundError, version

    def installed(name):
        try:
            return f"{name} {version(name)}"
        except PackageNotFoundError:
            return f"{name} (not installed)"

    detail = one_line(exc)
    return SSDNError(f"{', '.join(map(installed, libraries))} failed {doing} ({detail}); {remedy}")


def one_line(exc: BaseException, limit: int = 160) -> str:
    """``exc`` as one line, ``Type: message``, for a failure from outside the package.

    The message is pydantic's first error rather than its "1 validation error for ..."
    header, else the first non-empty line of ``str(exc)``, whitespace collapsed and cut to
    ``limit`` characters: a traceback or a multi-line dump never reaches the user as is.
    """
    errors = getattr(exc, "errors", None)
    text = ""
    if callable(errors):
        try:
            text = str(errors()[0].get("msg", ""))
        except Exception:  # noqa: BLE001 - any other object with an errors() method
            text = ""
    lines = [line for line in (text or str(exc)).splitlines() if line.strip()]
    text = " ".join(lines[0].split()) if lines else type(exc).__name__
    text = text if len(text) <= limit else text[: limit - 1] + "\u2026"
    return f"{type(exc).__name__}: {text}"
