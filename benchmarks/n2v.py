"""Noise2Void through CAREamics, the comparison row of the benchmarks (not a dependency).

CAREamics is a benchmark-only extra: ``bash benchmarks/setup_n2v.sh`` makes a virtual
environment that sees the project's packages and adds CAREamics, and benchmark scripts
run with that environment's python get the N2V rows. Without CAREamics the rows are
left out with a note.

Settings: CAREamics 0.3.5 defaults (its U-Net, mean/std normalisation, N2V masking of
0.2 % of pixels, flips and 90-degree rotations, Adam with ReduceLROnPlateau) except
64 x 64 patches, batch 16, no data-loading worker processes (our trainer has none either,
and on a 2-core machine they would compete with training) and a wall-clock budget through
Lightning's ``max_time``.
"""

from __future__ import annotations

import logging
import tempfile
import time
import warnings

import numpy as np


def available() -> bool:
    try:
        import careamics  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means "no N2V row"
        return False
    return True


def _hms(seconds: float) -> str:
    s = max(1, int(round(seconds)))
    return f"00:{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def train_predict(
    noisy: list[np.ndarray], budget: float, seed: int = 0, patch: int = 64, batch: int = 16
) -> tuple[list[np.ndarray], dict]:
    """Train N2V on ``noisy`` (YX or YXC arrays) for ``budget`` seconds, denoise each image.

    Returns the predictions (same shapes) and a dict with the training time and steps.
    """
    import careamics
    from careamics import CAREamist
    from careamics.config import create_advanced_n2v_config

    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    color = noisy[0].ndim == 3
    axes = "CYX" if color else "YX"
    data = [np.ascontiguousarray(np.moveaxis(y, -1, 0) if color else y).astype(np.float32) for y in noisy]
    config = create_advanced_n2v_config(
        experiment_name="n2v_benchmark",
        data_type="array",
        axes=axes,
        patch_size=[patch, patch],
        batch_size=batch,
        num_epochs=100_000,  # the time limit ends training
        n_channels=noisy[0].shape[-1] if color else None,
        num_workers=0,
        trainer_params={"max_time": _hms(budget), "enable_model_summary": False},
        seed=seed + 1,  # CAREamics wants a positive seed
    )
    with tempfile.TemporaryDirectory() as work:
        engine = CAREamist(config, work_dir=work, enable_progress_bar=False)
        t0 = time.perf_counter()
        engine.train(train_data=data)
        train_s = time.perf_counter() - t0
        steps = int(engine.trainer.global_step) if getattr(engine, "trainer", None) is not None else None
        t0 = time.perf_counter()
        preds = []
        for _y, d in zip(noisy, data, strict=True):
            out = engine.predict(d, axes=axes, data_type="array", tile_size=(256, 256), tile_overlap=(48, 48))
            out = out[0] if isinstance(out, tuple) else out
            p = np.asarray(out[0] if isinstance(out, list) else out, dtype=np.float32)
            p = p.reshape(d.shape)
            preds.append(np.moveaxis(p, 0, -1) if color else p)
    info = {
        "careamics": careamics.__version__,
        "train_seconds": round(train_s, 1),
        "steps": steps,
        "infer_seconds": round(time.perf_counter() - t0, 1),
        "patch": patch,
        "batch": batch,
    }
    return preds, info
