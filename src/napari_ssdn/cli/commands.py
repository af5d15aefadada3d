"""The ``ssdn`` command line: train, denoise, export, info, demo.

Every user error ends with one line on stderr naming the problem and the remedy, exit
code 2 and no traceback; no input file is ever written to.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from ..core.errors import SSDNError, setting
from .info import cmd_info
from .options import DenoiseOutput, add_threads, use_threads
from .pairs import add_pair_options
from .paths import check_not_input, denoise_targets
from .text import Progress, choice_lines, fmt_time, in_cli_terms, params_str, warn_in_cli_terms

log = logging.getLogger("napari_ssdn")

NOISE_FLAGS = {"sigma": "sigma", "lam": "lam", "alpha": "alpha", "gain": "a", "read_var": "b"}


# --- train ----------------------------------------------------------------------------------
def _noise_flags(args) -> dict:
    """Noise parameters given on the command line, by model parameter name."""
    return {name: getattr(args, flag) for flag, name in NOISE_FLAGS.items() if getattr(args, flag) is not None}


def cmd_train(args) -> int:
    import numpy as np

    from ..io import read_image
    from .pairs import training_inputs

    inputs, seconds = training_inputs(args)
    out = Path(args.output)
    check_not_input(out, inputs + seconds + ([Path(args.resume)] if args.resume else []), "model output -o")
    if out.suffix.lower() in (".tif", ".tiff", ".mrc", ".png"):
        raise SSDNError(f"model output -o {str(out)!r} looks like an image; name the model file e.g. model.ssdn")
    if out.is_dir():
        raise SSDNError(f"model output -o {str(out)!r} is a folder; give a file name such as {out}/model.ssdn")
    from . import distributed as ddp

    if args.distributed and not ddp.is_rank():
        return ddp.launch_ranks(args, out)
    ranks = ddp.join_ranks(args) if ddp.is_rank() else None  # one rank of several: under torchrun or --distributed
    given = _noise_flags(args)
    imgs = [read_image(p) for p in inputs]
    for p, im in zip(inputs, imgs, strict=True):
        if not np.isfinite(im.data).any():
            raise SSDNError(
                f"{str(p)!r} holds no finite values (all NaN or infinite): nothing to train on; check the file"
            )
    from .pairs import second_observations

    other, axes = second_observations(args, imgs, seconds)
    if args.three_d:  # say which file lacks Z and where its axes came from
        from ..batch import volume_axes

        for im in imgs if not axes else []:
            im.axes = volume_axes(im.axes)
        for path, im in zip(inputs, imgs, strict=True):
            ax = (axes or im.axes).upper()
            if "Z" not in ax:
                source = f"--axes {ax}" if axes else f"axes {ax} (from the file)"
                remedy = (
                    f"if its first axis is Z, pass --axes Z{ax[1:]}"
                    if im.data.ndim >= 3 and len(ax) == im.data.ndim
                    else "train a 2D network (no --3d)"
                )
                raise SSDNError(f"--3d needs a Z axis but {str(path)!r} (shape {im.data.shape}) has {source}; {remedy}")
    from ..core import TrainConfig, Trainer, load_model

    anisotropy = 1.0
    if args.three_d:
        v = imgs[0].voxel or {}
        if v.get("Z") and v.get("X"):
            anisotropy = float(v["Z"]) / float(v["X"])
    config = TrainConfig(
        ndim=3 if args.three_d else 2,
        anisotropy=anisotropy,
        subsample=args.subsample,
        noise=args.noise,
        blind=args.blind,
        noise_params=given,
        per_image="auto" if args.per_image is None else args.per_image,
        iterations=args.iterations,
        time_limit=args.time_limit,
        patch=args.patch,
        batch=args.batch,
        width=args.width,
        lr=args.lr,
        seed=args.seed,
        device=args.device if ranks is None else ranks.device,
        init=args.init,
        pair_method=args.pair_method,
    )
    resume = info = None
    if args.resume:
        if not Path(args.resume).exists():
            raise SSDNError(
                f"--resume {args.resume!r}: no such model file; pass the file an earlier 'ssdn train -o' wrote"
            )
        resume, info = load_model(args.resume)
        config = config.__class__(**{**config.__dict__, "ndim": resume.config.ndim})
    if ranks is not None:
        Trainer = ddp.trainer_class(ranks)
    trainer = Trainer(
        [im.data for im in imgs], axes or [im.axes for im in imgs], config, resume=resume, resume_info=info, pair=other
    )
    args.quiet_errors = False  # from here on, an error is this rank's own
    m = trainer.model
    from ..core.device import device_name

    start = {None: "random weights", "generic": "the shipped generic network"}.get(
        trainer.init_source, trainer.init_source
    )
    if trainer.resumed:
        start = f"{args.resume} (resumed)"
    log.info(
        "training %s on %s from %s; noise %s %s",
        m.describe(),
        device_name(trainer.device),
        start,
        m.config.noise,
        params_str(m.noise_params_data()),
    )
    for line in choice_lines(trainer.train_state().get("auto")):
        log.info("%s", line)
    if trainer.pair is not None:
        log.info("learning from the pair: %s (%s)", trainer.pair.method, trainer.pair.why)
    log.info("plan: %s", trainer.plan.describe())
    if ranks is not None:
        log.info(
            "ranks: %d (%s), %d crops per step in all, gradients averaged",
            ranks.world,
            ranks.backend,
            ranks.world * trainer.plan.batch,
        )
    bar = Progress(args.quiet, "train")
    rec = None
    try:
        every = args.checkpoint_every if args.checkpoint_every > 0 else None
        for rec in trainer.run(checkpoint=out if every else None, checkpoint_every=every or 0.0):
            extra = f"loss {rec.loss:.4f} " + params_str(rec.noise_params) if m.learned else f"loss {rec.loss:.4f}"
            bar.update(rec.step, rec.total, rec.eta, extra, final=rec.done)
    except KeyboardInterrupt:
        trainer.save(out)
        planned = f" of about {rec.total} planned" if rec is not None else ""
        if ranks is None or not ranks.rank:  # only rank 0 writes the file
            print(
                f"ssdn: interrupted at step {trainer.step}{planned}; the model trained so far is saved in {out} "
                f"(continue it with --resume {out} and a new -o)",
                file=sys.stderr,
            )
        return 130
    except Exception as exc:
        if ranks is not None:
            return ddp.ended_early(exc, trainer, out)
        if trainer.step > 0:
            trainer.save(out)
            print(
                f"ssdn: error: training failed at step {trainer.step} ({in_cli_terms(exc)}); "
                f"the model trained so far is saved in {out}",
                file=sys.stderr,
            )
        raise
    trainer.save(out)
    if ranks is not None:
        ddp.finish()
    if not args.quiet:
        state = trainer.train_state()
        val = "" if state["val_loss"] is None else f", validation loss {state['val_loss']:.4f}"
        kept = ""
        if trainer.kept_step != trainer.step:
            kept = f"; kept the weights of step {state['kept_step']}, whose held-out validation loss was the lowest"
        print(
            f"saved {out}: {trainer.step} steps in {fmt_time(trainer.elapsed)}{val}{kept}; noise "
            f"{params_str(m.noise_params_data())}",
            file=sys.stderr,
        )
    return 0


# --- denoise --------------------------------------------------------------------------------
def cmd_denoise(args) -> int:
    if args.pair:
        from .pairs import denoise_pairs

        return denoise_pairs(args, lambda line: print(line, file=sys.stderr))
    if not args.inputs:
        raise SSDNError("no input: give noisy image files, or --pair FIRST SECOND")
    inputs = [Path(p) for p in args.inputs]
    targets = denoise_targets(inputs, args.output, args.model)
    from ..core import load_model
    from ..core.infer.outputs import noise_override

    model, _ = load_model(args.model)
    given = _noise_flags(args)
    noise_override(model, given)  # a bad flag fails before any output file is opened
    if args.compile and model.config.ndim == 3:
        raise SSDNError(
            f"{setting('compile_network')} is for 2D models but {args.model} is a 3D (volume) model; denoise without it"
        )
    from ..scaleout import wanted

    if wanted(args, inputs, targets):  # a Dask cluster, or OME-Zarr files
        from ..scaleout.run import denoise_many

        return denoise_many(args, model, inputs, targets, given)
    from ..batch import denoise_file

    for path, target in zip(inputs, targets, strict=True):
        if args.resume and target.exists():
            continue
        bar = Progress(args.quiet, f"denoise {path.name}")
        for p in denoise_file(
            model,
            path,
            target,
            args.output_kind,
            axes=args.axes,
            model_name=args.model,
            tile=args.tile,
            device=args.device,
            noise_params=given,
            tta=args.tta,
            compile_network=args.compile,
            mixed_precision=False if args.float32 else None,
        ):
            if isinstance(p, str):  # the data's values are far from the model's training data
                print(f"ssdn: warning: {p}", file=sys.stderr)
            else:
                bar.update(p.done, p.total, p.eta, final=p.done == p.total)
        if not args.quiet:
            print(f"wrote {target}", file=sys.stderr)
    return 0


# --- demo -----------------------------------------------------------------------------------
def cmd_demo(args) -> int:
    from ..core import TrainConfig, Trainer, denoise
    from ..io import write_image
    from ..samples import DEMO_SIGMA, noisy_cells, psnr

    out = Path(args.output)
    noisy, clean = noisy_cells()
    if not args.quiet:
        print(
            f"demo: {noisy.shape[0]}x{noisy.shape[1]} synthetic fluorescence image with Gaussian noise of sigma "
            f"{DEMO_SIGMA:.4f} (not given to the training: it learns the level)",
            file=sys.stderr,
        )
    trainer = Trainer(noisy, "YX", TrainConfig(time_limit=args.time_limit, seed=args.seed, device=args.device))
    bar = Progress(args.quiet, "train")
    for rec in trainer.run():
        bar.update(rec.step, rec.total, rec.eta, f"loss {rec.loss:.4f} {params_str(rec.noise_params)}", final=rec.done)
    trainer.save(out / "model.ssdn")
    results = {"noisy": noisy}
    results["prior_mean"] = denoise(trainer.model, noisy, "YX", "prior-mean", device=args.device)
    results["posterior_mean"] = denoise(trainer.model, noisy, "YX", "posterior-mean", device=args.device)
    for name, img in results.items():
        write_image(out / f"{name}.tif", img, "YX")
    write_image(out / "clean.tif", clean, "YX")
    for name, img in results.items():
        print(f"{name:15s} PSNR {psnr(img, clean, eight_bit=True):6.2f} dB   {out / (name + '.tif')}")
    learned = trainer.model.noise_params_data()
    if "sigma" in learned:
        print(f"learned sigma {learned['sigma']:.4f} (true {DEMO_SIGMA:.4f}); {trainer.model.describe()}")
    else:  # the data chose another noise model
        print(
            f"learned {trainer.model.config.noise} noise {params_str(learned)} (true Gaussian sigma {DEMO_SIGMA:.4f})"
        )
    return 0


# --- parser ---------------------------------------------------------------------------------
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
    from .. import __version__

    p = _Parser(
        prog="ssdn", description="Self-supervised blind-spot denoising with posterior-mean output (Laine et al. 2019)."
    )
    p.add_argument("--version", action="version", version=f"napari-ssdn {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def noise_flags(sp, note):
        sp.add_argument("--sigma", type=_positive(float), help=f"Gaussian noise std in data units ({note})")
        sp.add_argument(
            "--lam", type=_positive(float), help=f"Poisson lambda: variance = mean / lambda, data units ({note})"
        )
        sp.add_argument("--alpha", type=_positive(float), help=f"impulse: fraction of corrupted pixels ({note})")
        sp.add_argument("--gain", type=_positive(float), help=f"Poisson-Gaussian a: variance = a * mean + b ({note})")
        sp.add_argument(
            "--read-var",
            dest="read_var",
            type=_positive(float),
            help="Poisson-Gaussian b: noise variance at zero signal (variance = a * mean + b), data units squared "
            f"({note})",
        )

    def common(sp):
        sp.add_argument("--quiet", "-q", action="store_true", help="no progress output")
        sp.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps")
        add_threads(sp, _positive(int))

    t = sub.add_parser("train", help="train a model on noisy images")
    t.add_argument(
        "inputs", nargs="*", metavar="INPUT", help="noisy TIFF, MRC, PNG or JPEG files (one data set; or --pair)"
    )
    add_pair_options(t)
    t.add_argument("-o", "--output", required=True, metavar="MODEL", help="model file to write, e.g. model.ssdn")
    t.add_argument(
        "--noise",
        default="auto",
        choices=["auto", "gaussian", "poisson", "poisson-gaussian", "impulse"],
        help="noise model: auto (default: poisson-gaussian where the noise grows with the signal, else gaussian; "
        "the model of a given --sigma, --lam, ...), gaussian, poisson (photon counts), poisson-gaussian (camera: "
        "counts plus read noise), impulse (a fraction of pixels replaced by random values)",
    )
    t.add_argument(
        "--blind",
        default="auto",
        metavar="K",
        help="blind region: auto (default: from the noise's correlation between neighbouring pixels), K for every "
        "axis, or KY,KX (KZ,KY,KX with --3d); the network never sees pixels closer than K along every axis, "
        "1 hides the pixel alone",
    )
    noise_flags(t, "learned if omitted")
    t.add_argument(
        "--per-image",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="noise level per image, each from its own estimate (default: where the images' levels differ)",
    )
    t.add_argument(
        "--axes", help="axes of the inputs, e.g. YX, ZYX (z slices as samples), TYX, YXC; guessed if omitted"
    )
    t.add_argument("--iterations", type=_positive(int), help="training steps (default 2000 unless --time-limit)")
    t.add_argument("--time-limit", type=_positive(float), metavar="SECONDS", help="wall-clock budget")
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
        help="train and denoise on the F x F interleaved sub-images: for noise correlated between neighbouring "
        "pixels, which a blind-spot network would learn to reproduce (try 2; default 1)",
    )
    t.add_argument("--patch", type=_positive(int), help="crop side (default 64 on a CPU, 128 on a GPU; 24 with --3d)")
    t.add_argument("--batch", type=_positive(int), help="crops per step (default 4 on a CPU, 8 on a GPU; 1 with --3d)")
    t.add_argument(
        "--width",
        choices=["tiny", "light", "paper"],
        help="network size (default: tiny on a CPU and with --3d; "
        "on a GPU tiny where the shipped start fits, else light)",
    )
    t.add_argument(
        "--lr",
        type=_positive(float),
        help="peak learning rate (default from a warm start 3e-4, or 1e-3 on 1.5 megapixels of data or more; "
        "2e-3 for the tiny 2D network from scratch, else 1e-3)",
    )
    t.add_argument("--seed", type=int, default=0, help="random seed of the weights and crops (default 0)")
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
        default="auto",
        help="starting weights: 'auto' (default: the shipped generic network for Gaussian, Poisson or impulse "
        "noise on gray 2D images, Gaussian or Poisson on RGB, at the tiny width; else random), 'generic', 'none' "
        "(random) or a model file of the same width",
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
    common(t)
    t.set_defaults(func=cmd_train)

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
    noise_flags(d, "replaces the model's value for these inputs, e.g. a level known for this acquisition")
    common(d)
    from ..scaleout import add_options

    add_options(d, _positive)
    d.set_defaults(func=cmd_denoise)

    from .export import add_export_parser

    add_export_parser(sub)

    i = sub.add_parser("info", help="describe a model file")
    i.add_argument("model", help="model file (.ssdn)")
    i.add_argument("--json", action="store_true", help="one JSON object")
    i.set_defaults(func=cmd_info)

    m = sub.add_parser("demo", help="train and denoise the built-in sample, print PSNR")
    m.add_argument(
        "-o", "--output", default="ssdn-demo", metavar="DIR", help="folder for the results (default ssdn-demo)"
    )
    m.add_argument(
        "--time-limit", type=_positive(float), default=90.0, metavar="SECONDS", help="training budget (default 90 s)"
    )
    m.add_argument("--seed", type=int, default=0)
    common(m)
    m.set_defaults(func=cmd_demo)
    return p


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
