"""How the ``ssdn`` command words what it prints: progress lines, parameters, the choices
read from the data, and the core's messages with command-line option names."""

from __future__ import annotations

import sys
import time

from ..core.constants import region_extent
from ..core.errors import Setting, template_of, worded

__all__ = ["Progress", "fmt_time", "params_str", "choice_lines", "cli_words", "in_cli_terms", "warn_in_cli_terms"]


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
    region = region_extent(auto["blind_region"])
    out = []
    if auto.get("noise_why") != "given":
        out.append(f"noise model {auto['noise']}: {auto['noise_why']}")
    if auto.get("blind_why") != "given":
        out.append(f"blind region {region} pixel(s): {auto['blind_why']}")
    if auto.get("channels_apart"):
        out.append(f"channels trained apart, as gray images: {auto['channels_why']}")
    if auto.get("per_image_why", "given") != "given":
        out.append(
            f"noise level {'per image' if auto['per_image'] else 'shared by all images'}: {auto['per_image_why']}"
        )
    return out


def warn_in_cli_terms() -> None:
    """Show the core's warnings (SSDNWarning) as one ``ssdn: warning:`` line each."""
    import warnings

    from ..core.errors import SSDNWarning

    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, SSDNWarning):
            print(f"ssdn: warning: {in_cli_terms(message)}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show


# Settings whose option is not --NAME (with '_' as '-').
_CLI_OPTIONS = {"a": "--gain", "b": "--read-var", "output": "--kind", "compile_network": "--compile"}


def cli_words(s: Setting) -> str:
    """How ``ssdn`` names a core setting: ``--blind 6,6``, ``--3d``, ``--sigma``."""
    if s.name == "ndim":
        return "--3d" if s.value == "3" else "no --3d"
    option = _CLI_OPTIONS.get(s.name, "--" + s.name.replace("_", "-"))
    if s.value is None or s.value == "True":
        return option
    return f"no {option}" if s.value in ("False", "None") else f"{option} {s.value}"


def in_cli_terms(message) -> str:
    """A core error, warning or message with its settings written as command-line options."""
    return worded(template_of(message) if isinstance(message, BaseException) else str(message), cli_words)
