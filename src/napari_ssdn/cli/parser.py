"""The ``ssdn`` argument parser: every subcommand's options and help (no torch at import)."""

from __future__ import annotations

import argparse

from ..core.training.fields import FIELDS, noise_param_help
from .commands import NOISE_FLAGS, cmd_demo, cmd_denoise, cmd_train
from .export import add_export_parser
from .info import cmd_info
from .options import DenoiseOutput, add_threads
from .pairs import add_pair_options

__all__ = ["build_parser", "TRAIN_FIELDS"]

#: The ``ssdn train`` options (argparse dest) that stand for a training setting of the table.
TRAIN_FIELDS = {
    "noise": "noise",
    "blind": "blind",
    "per_image": "per_image",
    "iterations": "iterations",
    "time_limit": "time_limit",
    "subsample": "subsample",
    "patch": "patch",
    "batch": "batch",
    "width": "width",
    "lr": "lr",
    "seed": "seed",
    "init": "init",
    "device": "device",
    "pair_method": "pair_method",
}


def helped(name: str) -> str:
    """The help of the training setting ``name``, escaped for argparse."""
    return FIELDS[name].text.replace("%", "%%")


def _positive(kind, zero: bool = False):
    def parse(s):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{s!r} is not a {'whole ' if kind is int else ''}number") from None
        if not (v >= 0 if zero else v > 0):
            raise argparse.ArgumentTypeError(f"{s!r} must be {'zero or ' if zero else ''}a positive number")
        return v

    return parse


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr (exit 2), like every other user error."""

    def error(self, message):
        self.exit(2, f"ssdn: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``ssdn`` parser: ``train``, ``denoise``, ``export``, ``info`` and ``demo``.

    Returns
    -------
    argparse.ArgumentParser
        Each sub-command's parser sets ``func``, the command to run with the parsed options.
    """
    from .. import __version__

    p = _Parser(
        prog="ssdn", description="Self-supervised blind-spot denoising with posterior-mean output (Laine et al. 2019)."
    )
    p.add_argument("--version", action="version", version=f"napari-ssdn {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_train_parser(sub)
    _add_denoise_parser(sub)
    add_export_parser(sub)
    _add_info_parser(sub)
    _add_demo_parser(sub)
    return p


def _noise_flags(sp, note: str) -> None:
    """One option per noise parameter given in data units, its help followed by ``note``."""
    for flag, name in NOISE_FLAGS.items():
        text = f"{noise_param_help(name)} ({note})".replace("%", "%%")
        sp.add_argument(f"--{flag.replace('_', '-')}", dest=flag, type=_positive(float), help=text)


def _common(sp) -> None:
    """The options of every command that runs the network: --quiet, --device, --threads."""
    sp.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    sp.add_argument("--device", default=FIELDS["device"].default, help=helped("device"))
    add_threads(sp, _positive(int))


def _add_train_parser(sub) -> None:
    """``ssdn train``: the inputs and model file, the training settings, and how the run goes."""
    t = sub.add_parser("train", help="train a model on noisy images")
    t.add_argument(
        "inputs", nargs="*", metavar="INPUT", help="noisy TIFF, MRC, PNG or JPEG files (one data set; or --pair)"
    )
    add_pair_options(t)
    t.add_argument("-o", "--output", required=True, metavar="MODEL", help="model file to write, e.g. model.ssdn")
    _train_settings(t)
    _train_run_options(t)
    _common(t)
    t.set_defaults(func=cmd_train)


def _train_settings(t) -> None:
    """The ``ssdn train`` options of the noise, the data's layout and the network's training."""
    t.add_argument("--noise", default=FIELDS["noise"].default, choices=FIELDS["noise"].choices, help=helped("noise"))
    t.add_argument("--blind", default=FIELDS["blind"].default, metavar="K", help=helped("blind"))
    _noise_flags(t, "learned if omitted")
    t.add_argument(
        "--per-image",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=helped("per_image"),
    )
    t.add_argument(
        "--axes", help="axes of the inputs, e.g. YX, ZYX (z slices as samples), TYX, YXC; guessed if omitted"
    )
    t.add_argument("--iterations", type=_positive(int), help=helped("iterations"))
    t.add_argument("--time-limit", type=_positive(float), metavar="SECONDS", help=helped("time_limit"))
    t.add_argument(
        "--3d",
        dest="three_d",
        action="store_true",
        help="train a volume (3D) network on the Z axis instead of 2D slices; needs ZYX data",
    )
    t.add_argument(
        "--subsample",
        type=_positive(int),
        metavar="F",
        help=helped("subsample"),
    )
    t.add_argument("--patch", type=_positive(int), help=helped("patch"))
    t.add_argument("--batch", type=_positive(int), help=helped("batch"))
    t.add_argument("--width", choices=FIELDS["width"].choices, help=helped("width"))
    t.add_argument("--lr", type=_positive(float), help=helped("lr"))
    t.add_argument("--seed", type=int, default=FIELDS["seed"].default, help=helped("seed"))


def _train_run_options(t) -> None:
    """The ``ssdn train`` options of where a run starts, how it is kept, and its ranks."""
    t.add_argument("--resume", metavar="MODEL", help="continue training this model file")
    t.add_argument(
        "--checkpoint-every",
        type=_positive(float, zero=True),
        default=300.0,
        metavar="SECONDS",
        help="write the model trained so far to -o every SECONDS (default 300; 0: only at the end), "
        "so that a run killed by the system can be continued with --resume",
    )
    t.add_argument(
        "--init",
        metavar="MODEL",
        default=FIELDS["init"].default,
        help=helped("init"),
    )
    t.add_argument(
        "--distributed",
        type=_positive(int),
        metavar="N",
        help="train on N ranks of this machine (one per GPU, or sharing the CPU cores) with averaged gradients; "
        "under torchrun (several machines) leave it out",
    )
    t.add_argument(
        "--dist-timeout",
        type=_positive(float),
        default=300.0,
        metavar="SECONDS",
        help="with several ranks: end the run with an error when a rank has not answered for SECONDS (default 300)",
    )


def _add_denoise_parser(sub) -> None:
    """``ssdn denoise``: inputs, model, output and its kind, how the network runs, and scale-out."""
    d = sub.add_parser("denoise", help="denoise images with a trained model")
    d.add_argument("inputs", nargs="*", metavar="INPUT", help="noisy TIFF, MRC, PNG or JPEG files (or --pair)")
    d.add_argument(
        "--pair",
        nargs=2,
        metavar=("FIRST", "SECOND"),
        help="two observations of the same field (even/odd halves: two files, or two folders matched by name): "
        "writes the denoised field and prints the quality read from the halves",
    )
    d.add_argument(
        "-m",
        "--model",
        required=True,
        help="model file written by 'ssdn train' (.ssdn), or a package written by 'ssdn export' (.zip)",
    )
    d.add_argument(
        "-o",
        "--output",
        dest="output",
        required=True,
        metavar="OUTPUT",
        action=DenoiseOutput,
        help="output file (one input) or folder (several), once; what to write is --kind",
    )
    d.add_argument(
        "--kind",
        "--output-kind",
        dest="output_kind",
        default="posterior-mean",
        choices=["posterior-mean", "prior-mean", "posterior-std", "residual"],
        help="what to write: posterior-mean (default), prior-mean, posterior-std, residual",
    )
    _denoise_network_options(d)
    _noise_flags(d, "replaces the model's value for these inputs, e.g. a level known for this acquisition")
    _common(d)
    from ..scaleout import add_options

    add_options(d, _positive)
    d.set_defaults(func=cmd_denoise)


def _denoise_network_options(d) -> None:
    """The ``ssdn denoise`` options of how the network runs: tiles, axes, averaging, compiling, precision."""
    d.add_argument(
        "--tile", type=_positive(int), help="largest tile side kept per pass (default: as large as memory allows)"
    )
    d.add_argument("--axes", help="axes of the inputs; guessed if omitted")
    d.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="average the network over the 8 flips and rotations of each tile: 8x slower, about +0.15 dB "
        "(default: on for 2D images up to 1 megapixel on a CPU, 16 on a GPU)",
    )
    d.add_argument(
        "--compile",
        action="store_true",
        help="compile the network first (torch.compile): a wait before the first tile, then faster "
        "tiles; for several large images with a 2D model (about 1.35x on a CPU)",
    )
    d.add_argument(
        "--float32",
        action="store_true",
        help="run the network in float32 (default: bfloat16 on CPUs fast at it: about 1.8x faster, "
        "0.02 dB lower PSNR in our measurement)",
    )


def _add_info_parser(sub) -> None:
    """``ssdn info``: describe a model file."""
    i = sub.add_parser("info", help="describe a model file")
    i.add_argument("model", help="model file (.ssdn)")
    i.add_argument("--json", action="store_true", help="one JSON object")
    i.set_defaults(func=cmd_info)


def _add_demo_parser(sub) -> None:
    """``ssdn demo``: train and denoise the built-in sample."""
    m = sub.add_parser("demo", help="train and denoise the built-in sample, print PSNR")
    m.add_argument(
        "-o", "--output", default="ssdn-demo", metavar="DIR", help="folder for the results (default ssdn-demo)"
    )
    m.add_argument(
        "--time-limit", type=_positive(float), default=90.0, metavar="SECONDS", help="training budget (default 90 s)"
    )
    m.add_argument("--seed", type=int, default=0)
    _common(m)
    m.set_defaults(func=cmd_demo)
