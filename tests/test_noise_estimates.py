"""Noise levels: classical estimates and what training learns from them."""

import numpy as np
import pytest
import torch
from conftest import psnr

from napari_ssdn.core import SSDNError, TrainConfig, Trainer, denoise, train

FAST = dict(width="tiny", patch=32, batch=4, device="cpu", val_every=20)


def test_learned_sigma_lands_near_the_truth(clean_and_noisy):
    """The learned Gaussian sigma (data units) ends within 10 % of the true value."""
    clean, noisy, sigma = clean_and_noisy
    scale = 255.0  # data in other units than [0, 1]: the parameter is reported in them
    trainer = Trainer(noisy * scale, "YX", TrainConfig(iterations=150, **FAST))
    for progress in trainer.run():
        rec = progress
    learned = trainer.model.noise_params_data()["sigma"]
    assert learned == pytest.approx(sigma * scale, rel=0.10)
    assert rec.noise_params["sigma"] == pytest.approx(learned)
    assert "sigma" in trainer.model.learned


def test_missing_pixels_stay_out_of_the_noise_level():
    """A masked area (NaN) is not a flat, noise-free one: with 60 % of the pixels missing,
    the classical start, the held-out scoring and the learned sigma still follow the
    measured pixels (before, the masked area read as noise-free pulled sigma towards 0)."""
    from napari_ssdn.samples import clean_cells

    clean = np.concatenate([clean_cells(96, seed=3), clean_cells(96, seed=4), clean_cells(96, seed=5)], axis=1)
    sigma = 0.1
    noisy = (clean + sigma * np.random.default_rng(7).standard_normal(clean.shape)).astype(np.float32)
    noisy[:, 96 + 20 :] = np.nan
    trainer = Trainer(noisy, "YX", TrainConfig(iterations=150, **FAST))
    assert trainer.model.config.noise_init["sigma"] == pytest.approx(sigma, rel=0.10)
    for progress in trainer.run():
        rec = progress
    assert np.isfinite(rec.val_loss)
    assert trainer.model.noise_params_data()["sigma"] == pytest.approx(sigma, rel=0.10)
    out = denoise(trainer.model, noisy, "YX")
    seen = np.isfinite(noisy)
    assert np.isnan(out[~seen]).all() and psnr(out[seen], clean[seen]) > psnr(noisy[seen], clean[seen]) + 4


def test_per_image_noise_estimates_skip_missing_pixels():
    """Per-image levels start from each image's own estimate over its measured pixels: an
    image with the data set's noise level but 60 % masked starts where the unmasked one
    does, and an image with too few measured pixels starts from the data set's value."""
    from napari_ssdn.samples import clean_cells

    rng = np.random.default_rng(7)
    images = [(clean_cells(96, seed=s) + 0.1 * rng.standard_normal((96, 96))).astype(np.float32) for s in (3, 4, 5)]
    images[1][:, 38:] = np.nan
    images[2][::2] = np.nan  # no 2 x 2 block measured
    trainer = Trainer(images, "YX", TrainConfig(per_image=True, iterations=1, **FAST))
    full, masked, sparse = (float(a[0, 0]) for a in trainer.anchors)
    assert abs(masked - full) < np.log(1.15)
    assert sparse == 0.0


@pytest.mark.parametrize("noise, given", [("gaussian", {"sigma": 0.1}), ("impulse", {"alpha": 0.2})])
def test_too_few_measured_pixels_for_a_noise_estimate_is_named(noise, given):
    """Every other row missing leaves no 2 x 2 block (nor 3 x 3 neighbourhood) to estimate
    the noise from: the error says so and what to give; with the parameter given, training starts."""
    img = np.random.default_rng(0).random((64, 64), np.float32)
    img[::2] = np.nan
    with pytest.raises(SSDNError, match="too few measured pixels"):
        Trainer(img, "YX", TrainConfig(noise=noise, **FAST))
    Trainer(img, "YX", TrainConfig(noise=noise, noise_params=given, iterations=1, **FAST))


def test_learned_poisson_gaussian_parameters_are_near_the_truth():
    """Camera model var = a*mean + b: the classical start plus training recovers a and b."""
    from conftest import smooth_image

    clean = smooth_image(128, seed=5) * 200 + 20  # photo-electrons
    rng = np.random.default_rng(2)
    a, b = 1.0, 25.0
    noisy = (rng.poisson(clean) + rng.normal(0, np.sqrt(b), clean.shape)).astype(np.float32)
    trainer = Trainer(noisy, "YX", TrainConfig(noise="poisson-gaussian", iterations=200, **{**FAST, "width": "light"}))
    for _ in trainer.run():
        pass
    p = trainer.model.noise_params_data()
    assert p["a"] == pytest.approx(a, rel=0.2)
    assert p["b"] == pytest.approx(b, rel=0.4)


@pytest.mark.parametrize("sigma", [1.0, 2.0, 20.0])
def test_noise_estimate_on_integer_data(sigma):
    """Integer data with noise of a grey level or two (int8 tomograms): the starting
    estimate is not fooled by details that are mostly exactly zero."""
    rng = np.random.default_rng(0)
    img = np.round(40 + 10 * np.sin(np.arange(128) / 9)[None, :] + sigma * rng.standard_normal((128, 128))).astype(
        np.int16
    )
    trainer = Trainer(img, "YX", TrainConfig(iterations=1, width="tiny"))
    truth = np.sqrt(sigma**2 + 1 / 12)  # rounding adds its own variance
    assert abs(trainer.model.config.noise_init["sigma"] - truth) / truth < 0.1


@pytest.mark.parametrize("lam", [3.0, 30.0])
def test_poisson_estimate_on_a_small_image(lam):
    """A 64 x 64 image of low counts gets a starting lambda near the truth (its few
    hundred flat blocks once filled no bin of the fit, and lambda started at a million:
    the posterior returned the noisy input)."""
    from napari_ssdn.samples import clean_cells

    clean = clean_cells(64, seed=1)
    noisy = (np.random.default_rng(0).poisson(clean * lam) / lam).astype(np.float32)
    trainer = Trainer(noisy, "YX", TrainConfig(noise="poisson", iterations=1, **FAST))
    assert 0.5 * lam < trainer.model.noise_params_data()["lam"] < 1.5 * lam


def test_per_image_noise_levels_follow_each_image():
    """A per-image model trained on images of very different noise levels denoises each
    one close to the posterior with its true level, and well above its noisy input (the
    estimator once ran away to sigma = 0 and returned the noisy input)."""
    from napari_ssdn.samples import clean_cells

    rng = np.random.default_rng(11)
    clean = [clean_cells(96, seed=s) for s in (3, 4)]
    sigmas = [0.04, 0.2]
    noisy = [(c + s * rng.standard_normal(c.shape)).astype(np.float32) for c, s in zip(clean, sigmas, strict=True)]
    model = train(noisy, "YX", TrainConfig(iterations=200, per_image=True, lr=2e-3, **FAST))
    assert model.estimator is not None
    for c, y, s in zip(clean, noisy, sigmas, strict=True):
        t = torch.from_numpy((y - model.config.offset) / model.config.scale)[None, None]
        assert model.noise_params_data(t)["sigma"] == pytest.approx(s, rel=0.25)
        learned = denoise(model, y, "YX")
        known = denoise(model, y, "YX", noise_params={"sigma": s})
        assert psnr(learned, c) > psnr(y, c) + 2
        assert psnr(learned, c) > psnr(known, c) - 0.3
