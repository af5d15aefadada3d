"""Warm starts: the shipped generic networks and model files as starting weights."""

import numpy as np
import pytest
import torch
from conftest import psnr

from napari_ssdn.core import SSDNError, TrainConfig, Trainer, denoise, load_model, save_model, train
from napari_ssdn.core.nets.warmstart import generic_start

FAST = dict(width="tiny", patch=32, batch=4, device="cpu", val_every=20)


@pytest.mark.parametrize("noise", ["poisson", "impulse"])
def test_other_noise_models_start_warm_and_denoise(noise):
    """Poisson and impulse noise take the shipped start by default: 20 steps then denoise
    well (from random weights they do not), with a finite posterior and their own parameters."""
    from napari_ssdn.samples import clean_cells

    rng = np.random.default_rng(0)
    clean = clean_cells(64, seed=1)
    if noise == "poisson":
        noisy = rng.poisson(clean * 30) / 30.0
    else:
        hit = rng.random(clean.shape) < 0.3
        noisy = np.where(hit, rng.random(clean.shape), clean)
    noisy = noisy.astype(np.float32)
    scores = {}
    for init in ("auto", "none"):
        trainer = Trainer(noisy, "YX", TrainConfig(noise=noise, iterations=20, init=init, **FAST))
        for _ in trainer.run():
            pass
        out = denoise(trainer.model, noisy, "YX")
        assert np.all(np.isfinite(out))
        scores[init] = psnr(out, clean)
    assert trainer.train_state()["init"] is None
    assert Trainer(noisy, "YX", TrainConfig(noise=noise, iterations=1, **FAST)).train_state()["init"] == "generic"
    assert set(trainer.model.noise_params_data()) == ({"lam"} if noise == "poisson" else {"alpha"})
    assert scores["auto"] > psnr(noisy, clean) + 3
    assert scores["auto"] > scores["none"] + 0.5


def test_mu_only_starts_from_a_blind_spot_models_prior_mean(clean_and_noisy, tmp_path):
    """A mu-only baseline started from a blind-spot model file predicts that model's prior
    mean before its first step: a fair "no Bayes" row starts from the same weights."""
    clean, noisy, _ = clean_and_noisy
    path = save_model(train(noisy, "YX", TrainConfig(iterations=20, **FAST)), tmp_path / "bayes.ssdn")
    bayes, _ = load_model(path)
    kw = dict(mixed_precision=False, tta=False)
    mu_only = Trainer(noisy, "YX", TrainConfig(mode="mu-only", iterations=5, init=str(path), **FAST)).model
    want = denoise(bayes, noisy, "YX", "prior-mean", **kw)
    np.testing.assert_allclose(denoise(mu_only, noisy, "YX", "prior-mean", **kw), want, atol=1e-6)
    fresh = Trainer(noisy, "YX", TrainConfig(mode="mu-only", iterations=5, init="none", **FAST)).model
    assert np.abs(denoise(fresh, noisy, "YX", "prior-mean", **kw) - want).max() > 1e-2
    # The default start (init="auto") is the shipped network: every prior-network weight,
    # the last layer cut to the mean's rows.
    shipped, _ = load_model(generic_start(bayes.config))
    auto = Trainer(noisy, "YX", TrainConfig(mode="mu-only", iterations=5, **FAST)).model
    theirs = shipped.state_dict()
    for name, w in auto.state_dict().items():
        if name.startswith("net."):
            assert torch.equal(w, theirs[name][: w.shape[0]]), name


def test_warm_start_copies_prior_weights_from_a_model_file(tmp_path, clean_and_noisy):
    """init=<model file> starts the prior network from that file's weights."""
    _, noisy, _ = clean_and_noisy
    source = train(noisy, "YX", TrainConfig(iterations=3, init="none", **FAST))
    save_model(source, tmp_path / "start.ssdn")
    warm = Trainer(noisy, "YX", TrainConfig(iterations=1, init=str(tmp_path / "start.ssdn"), **FAST))
    cold = Trainer(noisy, "YX", TrainConfig(iterations=1, init="none", **FAST))
    for k, v in source.net.state_dict().items():
        assert torch.equal(warm.model.net.state_dict()[k], v)
    assert not all(torch.equal(cold.model.net.state_dict()[k], v) for k, v in source.net.state_dict().items())
    assert warm.train_state()["init"] == str(tmp_path / "start.ssdn")
    with pytest.raises(SSDNError, match="init"):
        other = train(noisy, "YX", TrainConfig(iterations=1, init="none", **{**FAST, "width": "light"}))
        save_model(other, tmp_path / "light.ssdn")
        Trainer(noisy, "YX", TrainConfig(iterations=1, init=str(tmp_path / "light.ssdn"), **FAST))


def test_generic_start_denoises_before_any_training(clean_and_noisy):
    """init='generic' loads the shipped starting network: its prior mean denoises an image
    it never saw before a single step; random weights do not. Architectures without a
    shipped start are refused by 'generic' and start from random weights under 'auto'."""
    clean, noisy, _ = clean_and_noisy
    warm = Trainer(noisy, "YX", TrainConfig(iterations=1, init="generic", **FAST))
    cold = Trainer(noisy, "YX", TrainConfig(iterations=1, init="none", **FAST))
    assert warm.train_state()["init"] == "generic"
    warm_prior = denoise(warm.model, noisy, "YX", "prior-mean", device="cpu")
    cold_prior = denoise(cold.model, noisy, "YX", "prior-mean", device="cpu")
    assert psnr(warm_prior, clean) > psnr(noisy, clean) + 4
    assert psnr(warm_prior, clean) > psnr(cold_prior, clean) + 3
    assert Trainer(noisy, "YX", TrainConfig(iterations=1, **FAST)).train_state()["init"] == "generic"
    light = Trainer(noisy, "YX", TrainConfig(iterations=1, init="auto", **{**FAST, "width": "light"}))
    assert light.train_state()["init"] is None
    # Poisson-Gaussian (real microscopes) starts from it too; its parameters keep their estimate.
    camera = Trainer(noisy + 0.5, "YX", TrainConfig(iterations=1, noise="poisson-gaussian", **FAST))
    assert camera.train_state()["init"] == "generic" and camera.lr == pytest.approx(3e-4)
    with pytest.raises(SSDNError, match="init='generic'"):
        Trainer(noisy, "YX", TrainConfig(iterations=1, init="generic", **{**FAST, "width": "light"}))


def test_generic_start_for_colour_images():
    """RGB images at the tiny width start from the shipped colour network by default: its
    prior mean denoises a colour image it never saw before a single step, and a short
    fine-tune keeps it ahead of random weights trained the same number of steps. Impulse
    noise on RGB (measured worse from the start) begins from random weights."""
    from napari_ssdn.samples import clean_cells

    a, b = clean_cells(96, seed=3), clean_cells(96, seed=4)
    clean = np.stack([a, 0.6 * a + 0.4 * b, b], axis=-1).astype(np.float32)
    noisy = (clean + 0.1 * np.random.default_rng(7).standard_normal(clean.shape)).astype(np.float32)
    warm = Trainer(noisy, "YXC", TrainConfig(iterations=1, **FAST))
    cold = Trainer(noisy, "YXC", TrainConfig(iterations=1, init="none", **FAST))
    assert warm.train_state()["init"] == "generic" and cold.train_state()["init"] is None
    impulse = Trainer(noisy, "YXC", TrainConfig(iterations=1, noise="impulse", **FAST))
    assert impulse.train_state()["init"] is None
    assert (
        Trainer(noisy, "YXC", TrainConfig(iterations=1, noise="impulse", init="generic", **FAST)).train_state()["init"]
        == "generic"
    )
    warm_prior = denoise(warm.model, noisy, "YXC", "prior-mean", device="cpu")
    cold_prior = denoise(cold.model, noisy, "YXC", "prior-mean", device="cpu")
    assert psnr(warm_prior, clean) > psnr(noisy, clean) + 4
    assert psnr(warm_prior, clean) > psnr(cold_prior, clean) + 3
    scores = {}
    for init in ("auto", "none"):
        model = train(noisy, "YXC", TrainConfig(iterations=30, init=init, **FAST))
        scores[init] = psnr(denoise(model, noisy, "YXC"), clean)
    assert scores["auto"] > psnr(noisy, clean) + 5
    assert scores["auto"] > scores["none"] + 1
