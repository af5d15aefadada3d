"""The ``ssdn`` command line: train, denoise, export, info, demo.

Every user error ends with one line on stderr naming the problem and the remedy, exit
code 2 and no traceback; no input file is ever written to.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from ..core.errors import SSDNError, setting
from .paths import check_not_input, denoise_targets
from .text import Progress, choice_lines, fmt_time, in_cli_terms, params_str

log = logging.getLogger("napari_ssdn")

NOISE_FLAGS = {"sigma": "sigma", "lam": "lam", "alpha": "alpha", "gain": "a", "read_var": "b"}


# --- train ----------------------------------------------------------------------------------
def _noise_flags(args) -> dict:
    """Noise parameters given on the command line, by model parameter name."""
    return {name: getattr(args, flag) for flag, name in NOISE_FLAGS.items() if getattr(args, flag) is not None}


def cmd_train(args) -> int:
    """Train a model on the noisy images of ``ssdn train`` and write it to ``-o``.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``ssdn train`` options.

    Returns
    -------
    int
        The exit code: 0 when trained, 130 when interrupted (the model so far is saved).
    """
    from .pairs import training_inputs

    inputs, seconds = training_inputs(args)
    out = Path(args.output)
    _check_model_output(out, inputs + seconds + ([Path(args.resume)] if args.resume else []))
    from . import distributed as ddp

    if args.distributed and not ddp.is_rank():
        return ddp.launch_ranks(args, out)
    ranks = ddp.join_ranks(args) if ddp.is_rank() else None  # one rank of several: under torchrun or --distributed
    given = _noise_flags(args)
    imgs, other, axes = _read_training_images(args, inputs, seconds)
    config, resume, info = _train_config(args, imgs, given, ranks)
    from ..core import Trainer

    if ranks is not None:
        Trainer = ddp.trainer_class(ranks)
    trainer = Trainer(
        [im.data for im in imgs], axes or [im.axes for im in imgs], config, resume=resume, resume_info=info, pair=other
    )
    args.quiet_errors = False  # from here on, an error is this rank's own
    _log_start(args, trainer, ranks)
    code = _run_with_progress(args, trainer, out, ranks)
    if code is not None:
        return code
    trainer.save(out)
    if ranks is not None:
        ddp.finish()
    if not args.quiet:
        _report_saved(trainer, out)
    return 0


def _check_model_output(out: Path, inputs: list) -> None:
    """Refuse a model output ``-o`` that is an input, looks like an image or is a folder."""
    check_not_input(out, inputs, "model output -o")
    if out.suffix.lower() in (".tif", ".tiff", ".mrc", ".png"):
        raise SSDNError(f"model output -o {str(out)!r} looks like an image; name the model file e.g. model.ssdn")
    if out.is_dir():
        raise SSDNError(f"model output -o {str(out)!r} is a folder; give a file name such as {out}/model.ssdn")


def _read_training_images(args, inputs: list, seconds: list):
    """The images to train on, their second observations and the axes given.

    Returns
    -------
    tuple
        ``(images, second observations or None, axes given or None)``; each image holds
        finite values, and with ``--3d`` has a Z axis.
    """
    import numpy as np

    from ..io import read_image
    from .pairs import second_observations

    imgs = [read_image(p) for p in inputs]
    for p, im in zip(inputs, imgs, strict=True):
        if not np.isfinite(im.data).any():
            raise SSDNError(
                f"{str(p)!r} holds no finite values (all NaN or infinite): nothing to train on; check the file"
            )
    other, axes = second_observations(args, imgs, seconds)
    if args.three_d:
        _check_volume_axes(inputs, imgs, axes)
    return imgs, other, axes


def _check_volume_axes(inputs: list, imgs: list, axes: str | None) -> None:
    """Refuse ``--3d`` on an image without a Z axis, saying which file and where its axes came from."""
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


def _train_config(args, imgs: list, given: dict, ranks):
    """The training settings of the options, and the model ``--resume`` continues.

    Returns
    -------
    tuple
        ``(TrainConfig, resumed model or None, its file's info or None)``; a resumed
        model keeps its own number of dimensions.
    """
    from ..core import TrainConfig, load_model

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
    return config, resume, info


def _log_start(args, trainer, ranks) -> None:
    """Log what is trained where, from which start, with which choices, plan and ranks."""
    from ..core.device import device_name

    m = trainer.model
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


def _run_with_progress(args, trainer, out: Path, ranks) -> int | None:
    """Run the training with a progress bar, checkpointing to ``out``.

    Returns
    -------
    int or None
        None when the run ended; else the exit code of a run that ended early (the model
        trained so far is saved where there is one).
    """
    from . import distributed as ddp

    m = trainer.model
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
    return None


def _report_saved(trainer, out: Path) -> None:
    """Say on stderr where the model went: steps, time, validation loss, kept step, noise."""
    state = trainer.train_state()
    val = "" if state["val_loss"] is None else f", validation loss {state['val_loss']:.4f}"
    kept = ""
    if trainer.kept_step != trainer.step:
        kept = f"; kept the weights of step {state['kept_step']}, whose held-out validation loss was the lowest"
    print(
        f"saved {out}: {trainer.step} steps in {fmt_time(trainer.elapsed)}{val}{kept}; noise "
        f"{params_str(trainer.model.noise_params_data())}",
        file=sys.stderr,
    )


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
