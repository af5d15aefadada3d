"""Two observations of one field on the command line: ``--pair EVEN ODD`` (two files, or two
folders matched by name) and ``--frames-axis`` (repeated frames along one axis of each input)."""

from __future__ import annotations

import re
from pathlib import Path

from ..core.errors import SSDNError
from ..core.training.fields import FIELDS

__all__ = [
    "add_pair_options",
    "training_inputs",
    "second_observations",
    "pair_files",
    "split_frames",
    "other_name",
]

#: Tokens that name the two halves in file or folder names (Warp, AreTomo, IMOD, RELION).
_TOKENS = (("evn", "odd"), ("even", "odd"), ("half1", "half2"), ("half_1", "half_2"), ("h1", "h2"))


def add_pair_options(parser) -> None:
    """``--pair``, ``--frames-axis`` and ``--pair-method`` of ``ssdn train``."""
    parser.add_argument(
        "--pair",
        nargs=2,
        metavar=("FIRST", "SECOND"),
        help="two observations of the same field: even/odd half files (or two folders of them, matched by "
        "name: x.mrc in both, or x_EVN.mrc and x_ODD.mrc); the noise is measured from the two",
    )
    parser.add_argument(
        "--frames-axis",
        metavar="AXIS",
        help="each INPUT holds repeated frames of a static field along this axis (e.g. T): its even and odd "
        "frames are the pair",
    )
    parser.add_argument(
        "--pair-method",
        choices=FIELDS["pair_method"].choices,
        default=FIELDS["pair_method"].default,
        help=FIELDS["pair_method"].text,
    )


def training_inputs(args) -> tuple[list[Path], list[Path]]:
    """The first observations to read, and the second ones (``--pair``; else empty)."""
    if args.pair and args.inputs:
        raise SSDNError("give the images either as INPUT files or with --pair FIRST SECOND, not both")
    if args.pair and args.frames_axis:
        raise SSDNError("--pair and --frames-axis both give the pair; use one of them")
    if args.pair:
        matched = pair_files(*args.pair)
        return [a for a, _ in matched], [b for _, b in matched]
    if not args.inputs:
        raise SSDNError("no input: give noisy image files, or --pair FIRST SECOND")
    return [Path(p) for p in args.inputs], []


def second_observations(args, imgs: list, seconds: list[Path]) -> tuple[list | None, str | None]:
    """The second observation of each image read in ``imgs`` (None without a pair), and the
    axes to train with (``--axes``, less the frames axis)."""
    from ..io import read_image

    if args.frames_axis:
        other = []
        for im in imgs:
            first, second, im.axes = split_frames(im.data, args.axes or im.axes, args.frames_axis)
            im.data = first
            other.append(second)
        return other, None
    if not seconds:
        return None, args.axes
    return [read_image(p).data for p in seconds], args.axes


def other_name(name: str) -> list[str]:
    """Names the other half of ``name`` may have: the same name, and the name with its
    even/odd token swapped (``tomo_EVN.mrc`` -> ``tomo_ODD.mrc``, case kept)."""
    out = [name]
    for a, b in _TOKENS:
        for x, y in ((a, b), (b, a)):
            pattern = re.compile(rf"(?<![a-z0-9]){x}(?![a-z0-9])", re.IGNORECASE)
            if pattern.search(name):
                out.append(pattern.sub(lambda m, y=y: _same_case(m.group(0), y), name, count=1))
    return out


def _same_case(like: str, word: str) -> str:
    return word.upper() if like.isupper() else word.capitalize() if like[:1].isupper() else word


def pair_files(first: str | Path, second: str | Path) -> list[tuple[Path, Path]]:
    """The matched (first, second) files of ``--pair FIRST SECOND``.

    Two files make one pair. Two folders pair their image files by name: the same name in
    both (``even/x.mrc``, ``odd/x.mrc``) or the name with its half's token swapped
    (``x_EVN.mrc``, ``x_ODD.mrc``). Anything left unmatched is an error that names it.
    """
    first, second = Path(first), Path(second)
    for p in (first, second):
        if not p.exists():
            raise SSDNError(f"--pair: {str(p)!r} does not exist; give two files or two folders of halves")
    if first.is_file() and second.is_file():
        return [(first, second)]
    if not (first.is_dir() and second.is_dir()):
        raise SSDNError(
            f"--pair {str(first)!r} {str(second)!r}: give two files, or two folders whose images match by name"
        )
    from ..io import MRC_SUFFIXES, PIL_SUFFIXES, TIFF_SUFFIXES

    readable = MRC_SUFFIXES + TIFF_SUFFIXES + PIL_SUFFIXES
    images = [p for p in sorted(first.iterdir()) if p.suffix.lower() in readable]
    seconds = {p.name: p for p in second.iterdir() if p.suffix.lower() in readable}
    pairs, missing = [], []
    for p in images:
        match = next((seconds[n] for n in other_name(p.name) if n in seconds), None)
        (pairs.append((p, match)) if match is not None else missing.append(p.name))
    if missing or not pairs:
        what = f"no match in {str(second)!r} for {', '.join(missing[:3])}" if missing else "no images"
        raise SSDNError(
            f"--pair: {what}{' ...' if len(missing) > 3 else ''}; name the halves alike (x.mrc in both "
            "folders, or x_EVN.mrc and x_ODD.mrc)"
        )
    return pairs


def split_frames(data, axes: str, frames: str):
    """The mean of the even and of the odd frames along the axis ``frames`` of ``data``, and
    the axes left (``--frames-axis``)."""
    import numpy as np

    frames = frames.upper()
    if frames not in axes.upper():
        raise SSDNError(
            f"--frames-axis {frames}: the input's axes are {axes}; name one of them (e.g. T for a time series "
            "of a static field), or set the axes with --axes"
        )
    i = axes.upper().index(frames)
    n = data.shape[i]
    if n < 2:
        raise SSDNError(f"--frames-axis {frames} has {n} frame; it needs at least two observations of the field")
    even = np.take(data, range(0, n, 2), axis=i).astype(np.float64).mean(axis=i)
    odd = np.take(data, range(1, n, 2), axis=i).astype(np.float64).mean(axis=i)
    if n % 2:  # an odd count: the extra frame would give the even half less noise
        even = np.take(data, range(0, n - 1, 2), axis=i).astype(np.float64).mean(axis=i)
    return even.astype(np.float32), odd.astype(np.float32), axes[:i] + axes[i + 1 :]


def joint_name(path: Path) -> Path:
    """The name of a pair's denoised field: the first half's, its half token removed
    (``tomo_EVN.mrc`` -> ``tomo.mrc``; ``even/tomo.mrc`` -> ``tomo.mrc``)."""
    for a, b in _TOKENS:
        for token in (a, b):
            stem = re.sub(rf"[_\-.]?(?<![a-z0-9]){token}(?![a-z0-9])", "", path.stem, count=1, flags=re.IGNORECASE)
            if stem != path.stem and stem:
                return path.with_name(stem + path.suffix)
    return path


def denoise_pairs(args, log) -> int:
    """``ssdn denoise --pair FIRST SECOND``: each pair's denoised field, and the quality read
    from its halves (estimated PSNR, Fourier ring/shell correlation)."""
    from ..core import load_model
    from ..core.infer.pairs import denoise_pair
    from ..io import read_image, write_image
    from .paths import check_not_input, denoise_targets

    if args.inputs:
        raise SSDNError("give the images either as INPUT files or with --pair FIRST SECOND, not both")
    if args.output_kind != "posterior-mean":
        raise SSDNError(f"--pair writes the denoised field (posterior-mean), not --kind {args.output_kind}")
    matched = pair_files(*args.pair)
    targets = denoise_targets([joint_name(a) for a, _ in matched], args.output, args.model)
    for t in targets:
        check_not_input(t, [p for pair in matched for p in pair], "output -o")
    model, _ = load_model(args.model)
    for (a, b), target in zip(matched, targets, strict=True):
        first, second = read_image(a), read_image(b)
        out, quality = denoise_pair(
            model, first.data, second.data, args.axes or first.axes, tile=args.tile, device=args.device, tta=args.tta
        )
        write_image(target, out, args.axes or first.axes, first.voxel, first.unit)
        if not args.quiet:
            pixel = (first.voxel or {}).get("X")
            unit = first.unit if pixel else "pixels"
            log(f"{target}: {quality.describe(unit, float(pixel) if pixel else 1.0)}")
    return 0
