"""``ssdn export``: a trained model as a bioimage.io model package (the ``bmz`` extra)."""

from __future__ import annotations

import sys

__all__ = ["add_export_parser"]


def cmd_export(args) -> int:
    from ..export import export_model

    out = export_model(args.model, args.output, sample=args.sample, axes=args.axes, author=args.author, onnx=args.onnx)
    if not args.quiet:
        print(f"wrote {out}; check it with: bioimageio test {out}", file=sys.stderr)
    return 0


def add_export_parser(sub) -> None:
    """The ``export`` subcommand of ``ssdn``."""
    import argparse

    e = sub.add_parser("export", help="write a model as a bioimage.io package (deepImageJ, bioimageio.core, ilastik)")
    e.add_argument("model", help="model file written by 'ssdn train' (.ssdn)")
    e.add_argument("-o", "--output", required=True, metavar="NAME.zip", help="package to write (must not exist)")
    e.add_argument(
        "--sample",
        metavar="IMAGE",
        help="example image for the package's test tensors and cover (default: the crop of the training "
        "data stored in the model file)",
    )
    e.add_argument("--axes", help="axes of --sample, e.g. YX, ZYX, YXC; default: the file's")
    e.add_argument("--author", help="author named in the package (default: 'napari-ssdn user')")
    e.add_argument(
        "--onnx",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also write ONNX weights (one-channel models; default: on)",
    )
    e.add_argument("--quiet", "-q", action="store_true", help="no message at the end")
    e.set_defaults(func=cmd_export)
