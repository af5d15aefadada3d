"""Where ``ssdn`` writes: output paths checked before anything is read or trained, so that
no input is overwritten and a mistyped ``-o`` fails at once."""

from __future__ import annotations

import os
from pathlib import Path

from ..core.errors import SSDNError

__all__ = ["check_not_input", "denoise_targets"]


def check_not_input(out: Path, inputs: list[Path], what: str) -> None:
    """Refuse an output path that is one of the input files."""
    o = out.resolve()
    for i in inputs:
        if i.exists() and o == i.resolve():
            raise SSDNError(
                f"{what} {str(out)!r} is also an input file; choose another output path so the input is not overwritten"
            )


def denoise_targets(inputs: list[Path], output: str, model: str) -> list[Path]:
    """The output path of each input of ``ssdn denoise``: ``output`` itself for one input,
    ``output/<input name>`` for several or when ``output`` is a folder (or ends in ``/``)."""
    from ..io import MRC_SUFFIXES, TIFF_SUFFIXES, check_output_suffix, default_output_name
    from ..scaleout.zarrio import is_zarr

    out = Path(output)
    as_folder = (out.is_dir() and not is_zarr(out)) or output.endswith(("/", os.sep))  # "out/" names a folder to create
    if len(inputs) == 1 and not as_folder:
        targets = [out]
    else:
        if out.exists() and not out.is_dir():
            raise SSDNError(f"-o {str(out)!r} is a file but several inputs were given; pass a folder for the outputs")
        if not as_folder and out.suffix.lower() in MRC_SUFFIXES + TIFF_SUFFIXES:
            raise SSDNError(
                f"-o {str(out)!r} names an image file but {len(inputs)} inputs were given; pass a folder "
                f"for the outputs (e.g. -o {str(out.with_suffix(''))}/)"
            )
        targets = [out / default_output_name(p) for p in inputs]
        names = [t.name for t in targets]
        if len(set(names)) != len(names):
            raise SSDNError("several inputs have the same file name; denoise them into different folders")
    for t in targets:
        check_not_input(t, inputs + [Path(model)], "output")
        if not is_zarr(t):
            check_output_suffix(t)
    return targets
