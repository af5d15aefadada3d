"""Running the ``ssdn`` command: one line on stderr and exit code 2 for every user error."""

from __future__ import annotations

import logging
import os
import sys

from ..core.errors import SSDNError
from .options import use_threads
from .parser import build_parser
from .text import in_cli_terms, warn_in_cli_terms

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ssdn`` command."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, unknown = parser.parse_known_args(argv)
    args.argv = argv  # --distributed starts the same command as each rank
    if unknown:  # point to the subcommand's help, where the options are listed
        parser.exit(2, f"ssdn: error: unrecognized arguments: {' '.join(unknown)} (see 'ssdn {args.command} --help')\n")
    logging.basicConfig(
        level=logging.WARNING if getattr(args, "quiet", False) else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    warn_in_cli_terms()
    code = _run(args)
    if getattr(args, "joined_ranks", False):  # this process joined a process group
        from .distributed import leave

        leave(code)
    return code


def _run(args) -> int:
    """Run the subcommand; its exit code, with the errors a user can act on in one line."""
    try:
        use_threads(args)
        return args.func(args)
    except SSDNError as exc:
        if not getattr(args, "quiet_errors", False):  # ranks past 0: rank 0 says the same
            print(f"ssdn: error: {in_cli_terms(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ssdn: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        hint = (
            "a smaller --tile"
            if args.command == "denoise"
            else "a smaller --batch or --patch"
            if args.command == "train"
            else "less data"
        )
        print(f"ssdn: error: out of memory; use {hint}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `ssdn info --json | head`: the reader has what it wanted
        # Point stdout at devnull so that the flush at exit does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
