"""One row of the training settings table (:data:`~.fields.FIELDS`): a setting's type,
default, help and the check of a value against them (torch-free)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import setting

__all__ = ["Field"]


@dataclass(frozen=True)
class Field:
    """One training setting, as :class:`~.settings.TrainConfig` takes it.

    Attributes
    ----------
    name : str
        The :class:`~.settings.TrainConfig` attribute.
    kind : str
        ``int``, ``float``, ``choice`` (one of ``choices``) or ``text`` (checked by
        :func:`problems` itself: noise parameters, blind region, device, init).
    default
        The dataclass default (None: chosen at run time, see ``auto``).
    auto : str
        What the default becomes, in words ("" where the default says it all).
    help : str
        What the setting does, in one line for the command line, tooltips and docs.
    choices : tuple
        The allowed values of a ``choice``.
    low, high : float or None
        Smallest and largest allowed number (``low`` excluded where ``open_low``).
    rule : str
        What a refused value must be, after the setting and its value: ``lr=-1 must be ...``.
    too_small, too_large : str
        The wording for a number below ``low`` or above ``high`` (default ``rule``).
    """

    name: str
    kind: str
    default: object
    auto: str
    help: str
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    rule: str = ""
    too_small: str = ""
    too_large: str = ""

    @property
    def text(self) -> str:
        """The help with the default in words: the command line's help, the tooltips' core."""
        if not self.auto:
            return self.help
        return f"{self.help} (default{' auto' if self.default == 'auto' else ''}: {self.auto})"

    def problem(self, value) -> str | None:
        """Why ``value`` is refused, as a message marking the setting; None where it is fine
        or where :func:`problems` checks it (``text``)."""
        if value is None and self.default is None:
            return None  # chosen at run time
        if self.kind == "choice":
            ok = value in self.choices
        elif self.kind == "int":
            ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
        elif self.kind == "float":
            ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and math.isfinite(value)
        else:
            return None
        shown = setting(self.name, value)
        if not ok:
            return f"{shown} {self.rule}"
        if self.low is not None and (value < self.low or (self.open_low and value == self.low)):
            return f"{shown} {self.too_small or self.rule}"
        if self.high is not None and value > self.high:
            return f"{shown} {self.too_large or self.rule}"
        return None
