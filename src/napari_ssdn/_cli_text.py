"""How the ``ssdn`` command words what it prints: progress lines, parameters, the choices
read from the data, and the core's messages with command-line option names."""

from __future__ import annotations

import re
import sys
import time

__all__ = ["Progress", "fmt_time", "params_str", "choice_lines", "in_cli_terms", "warn_in_cli_terms"]


class Progress:
    """A one-line progress bar on stderr (silent with --quiet)."""

    def __init__(self, quiet: bool, label: str):
        self.quiet = quiet
        self.label = label
        self.last = 0.0
        self.tty = sys.stderr.isatty()

    def update(self, done: int, total: int, eta: float, extra: str = "", final: bool = False) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        if not final and now - self.last < (0.2 if self.tty else 5.0):
            return
        self.last = now
        frac = min(1.0, done / max(total, 1))
        bar = "#" * int(24 * frac) + "-" * (24 - int(24 * frac))
        line = f"{self.label} [{bar}] {done}/{total} eta {fmt_time(eta)} {extra}"
        sys.stderr.write(("\r" + line.ljust(100)) if self.tty else line + "\n")
        if final and self.tty:
            sys.stderr.write("\n")
        sys.stderr.flush()


def fmt_time(s: float) -> str:
    s = int(round(s))
    return f"{s // 60}:{s % 60:02d}"


def params_str(p: dict) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in p.items())


def choice_lines(auto: dict | None) -> list[str]:
    """How the data set the noise model and the blind region (settings left to auto)."""
    if not auto:
        return []
    region = " x ".join(str(2 * k - 1) for k in auto["blind_region"])
    out = []
    if auto.get("noise_why") != "given":
        out.append(f"noise model {auto['noise']}: {auto['noise_why']}")
    if auto.get("blind_why") != "given":
        out.append(f"blind region {region} pixel(s): {auto['blind_why']}")
    return out


def warn_in_cli_terms() -> None:
    """Show the core's warnings (SSDNWarning) as one ``ssdn: warning:`` line each."""
    import warnings

    from .core.errors import SSDNWarning

    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, SSDNWarning):
            print(f"ssdn: warning: {in_cli_terms(str(message))}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show


# The core names settings as Python arguments (subsample=2, init='none', ndim=3); on the
# command line the same settings are options.
_CLI_TERMS = (
    (re.compile(r"\bndim=3\b"), "--3d"),
    (re.compile(r"\bndim=2(, no --3d)?"), "no --3d"),
    (re.compile(r"(?<![-\w])(subsample|init|patch|batch|width|lr|axes|time_limit|iterations|seed|device|holdout|tile|noise|blind|dist_timeout)="
                r"(?:'([^']*)'|([^\s,;)]+))"),
     lambda m: f"--{m.group(1).replace('_', '-')} {m.group(2) if m.group(2) is not None else m.group(3)}"),
)


def in_cli_terms(message: str) -> str:
    """A core message with its Python argument names written as command-line options."""
    for pattern, option in _CLI_TERMS:
        message = pattern.sub(option, message)
    return message
