"""Held-out pixels and keeping the best weights, through the public Python API and the CLI."""

import numpy as np
import pytest
import torch
from test_cli import ssdn

from napari_ssdn.core import SSDNError, TrainConfig, Trainer, load_model
from napari_ssdn.core.data import CropSampler, HoldoutPattern
from napari_ssdn.io import write_image

FAST = dict(width="tiny", patch=32, batch=4, device="cpu", init="none")


def test_holdout_pattern_share_and_repeat():
    """The pattern holds out the asked share of pixels and is the same wherever it is read."""
    pattern = HoldoutPattern(2, 1 / 16)
    whole = pattern.window((0, 0), (610, 670))  # ten periods each way
    assert whole.mean() == pytest.approx(1 / 16, abs=0.002)
    assert np.array_equal(pattern.window((37, 101), (50, 60)), whole[37:87, 101:161])
    assert HoldoutPattern(3, 0.25).window((0, 0, 0), (13, 61, 67)).mean() == pytest.approx(0.25, abs=0.001)
    with pytest.raises(SSDNError, match="holdout=0.9"):
        HoldoutPattern(2, 0.9)


@pytest.mark.parametrize("ndim", [2, 3])
def test_crop_weights_follow_the_crops_through_augmentation(ndim):
    """Each crop pixel's loss weight is 0 exactly where the pixel it came from is held out,
    whatever rotation or flip the crop got."""
    shape = (40, 50) if ndim == 2 else (12, 30, 36)
    # Every pixel holds its own flat index, so a crop pixel says where it came from.
    index = np.arange(np.prod(shape), dtype=np.float32).reshape((1, *shape, 1))
    pattern = HoldoutPattern(ndim, 0.25)
    held = pattern.window((0,) * ndim, shape).ravel()
    sampler = CropSampler([index], (8,) * ndim, np.random.default_rng(0), holdout=pattern)
    for _ in range(10):
        crops = sampler.sample(6)[0][:, 0]
        origin = crops.astype(np.int64)
        assert np.array_equal(sampler.kept == 0, held[origin])


def test_loss_ignores_held_out_pixels():
    """Supervised training with targets that differ only at held-out pixels ends with the
    same weights; without hold-out the weights differ."""
    rng = np.random.default_rng(1)
    noisy = rng.standard_normal((64, 64)).astype(np.float32)
    clean = np.zeros_like(noisy)
    held = HoldoutPattern(2, 1 / 16).window((0, 0), noisy.shape)
    spoiled = clean.copy()
    spoiled[held] = 5.0

    def weights(targets, holdout):
        trainer = Trainer(
            noisy,
            "YX",
            TrainConfig(mode="supervised", iterations=5, holdout=holdout, keep_best=False, **FAST),
            targets=targets,
        )
        for _ in trainer.run():
            pass
        return torch.cat([p.detach().ravel() for p in trainer.model.net.parameters()]), trainer.validate()

    (w_clean, v_clean), (w_spoiled, v_spoiled) = weights(clean, 1 / 16), weights(spoiled, 1 / 16)
    assert torch.equal(w_clean, w_spoiled)
    assert v_spoiled > 10 * v_clean  # the validation loss scores exactly those pixels
    assert not torch.equal(weights(clean, 0)[0], weights(spoiled, 0)[0])


def _cells_noisy() -> np.ndarray:
    from napari_ssdn.samples import clean_cells

    return (clean_cells(64, seed=2) + 0.1 * np.random.default_rng(3).standard_normal((64, 64))).astype(np.float32)


def _wrecking_run(keep_best=True):
    """A run whose learning rate ruins the network after its first steps."""
    config = TrainConfig(iterations=40, val_every=5, lr=0.1, warmup=0.0, keep_best=keep_best, **FAST)
    trainer = Trainer(_cells_noisy(), "YX", config)
    records = list(trainer.run())
    return trainer, records


def test_keep_best_restores_the_lowest_validation_loss():
    """With keep_best the model ends with the weights of the lowest validation loss seen,
    and says which step they are from; without it, the last step's."""
    plain, plain_records = _wrecking_run(keep_best=False)
    assert plain_records[-1].kept_step == plain_records[-1].step == 40
    last_val = plain_records[-1].val_loss
    assert plain.validate() == pytest.approx(last_val, rel=1e-6, nan_ok=True)

    trainer, records = _wrecking_run()  # the same run (same seed), keeping the best
    vals = {r.step: r.val_loss for r in records if r.val_loss is not None and not r.done}
    vals[40] = last_val
    best = min(vals, key=lambda s: vals[s] if np.isfinite(vals[s]) else np.inf)
    assert best < 40, "the test needs a run that gets worse"
    assert records[-1].done and records[-1].kept_step == best == trainer.kept_step
    assert trainer.validate() == pytest.approx(vals[best], rel=1e-6)
    assert records[-1].val_loss == pytest.approx(vals[best], rel=1e-6)  # the final model's
    assert trainer.train_state()["kept_step"] == best
    assert trainer.train_state()["val_loss"] == pytest.approx(vals[best])


def test_cli_reports_the_kept_step(tmp_path):
    """``ssdn train`` says when it kept earlier weights, and ``ssdn info`` shows them."""
    src = tmp_path / "noisy.tif"
    write_image(src, _cells_noisy(), "YX")
    out = tmp_path / "m.ssdn"
    r = ssdn(
        "train",
        src,
        "-o",
        out,
        "--iterations",
        "40",
        "--lr",
        "0.1",
        "--init",
        "none",
        "--patch",
        "32",
        "--device",
        "cpu",
    )
    assert r.returncode == 0, r.stderr
    meta = load_model(out)[1]["training"]
    assert meta["steps"] == 40 and meta["holdout"] == pytest.approx(1 / 16)
    assert meta["kept_step"] < 40, "the test needs a run that gets worse"
    assert f"kept the weights of step {meta['kept_step']}" in r.stderr
    assert f"weights of step {meta['kept_step']}, the lowest" in ssdn("info", out).stdout


@pytest.mark.parametrize("how", ["stop", "close"])
def test_a_run_that_ends_between_validations_scores_its_last_weights(how):
    """A stop that arrives between two steps (or a closed generator) validates the weights
    the run holds before choosing which to keep: it used to go back to the last validated
    step (step 1 here), throwing the training since away."""
    trainer = Trainer(_cells_noisy(), "YX", TrainConfig(iterations=1000, val_every=500, **FAST))
    run = trainer.run()
    for rec in run:
        if rec.step == 30:
            break
    if how == "stop":
        trainer.request_stop()
        last = next(run)
        assert last.done and last.step == 30 and last.val_loss is not None and last.kept_step == 30
    else:
        run.close()
    assert trainer.step == 30 and trainer.kept_step == 30
    assert trainer.train_state()["val_loss"] == pytest.approx(trainer.validate())
