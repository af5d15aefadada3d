"""Noise statistics read from the data, and the settings chosen from them."""

import numpy as np
import pytest
from scipy.ndimage import convolve

from napari_ssdn.core import TrainConfig, Trainer, load_model
from napari_ssdn.core.noise.choice import choose_noise_model
from napari_ssdn.core.noise.estimate import estimate_noise
from napari_ssdn.core.noise.stats import choose_blind_region, level_lag, noise_stats

KERNELS = {
    "white": np.ones((1, 1)),
    "box3": np.ones((3, 3)),
    "line3": np.ones((1, 3)),
    "tent": np.outer([1, 2, 1], [1, 2, 1]),
}


def _noise(kernel, shape=(512, 512), seed=1):
    """Unit-variance noise: white noise circularly convolved with ``kernel``."""
    w = np.random.default_rng(seed).standard_normal(shape)
    return convolve(w, kernel, mode="wrap") / np.sqrt(np.square(kernel).sum())


def _signal(shape=(512, 512)):
    yy, xx = np.mgrid[: shape[0], : shape[1]] / shape[0]
    return 0.5 + 0.3 * np.sin(6 * xx) * np.cos(4 * yy)


def _true_rho(n, lags=4):
    return {
        ax: [float(np.mean(n * np.roll(n, -lag, axis=i)) / np.mean(n * n)) for lag in range(1, lags + 1)]
        for i, ax in enumerate("YX")
    }


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_correlation_is_measured_within_005_at_lags_1_to_4(kernel):
    n = _noise(KERNELS[kernel])
    stats = noise_stats([(_signal() + 0.1 * n)[None, ..., None].astype(np.float32)])
    truth = _true_rho(n)
    for ax in "YX":
        np.testing.assert_allclose(stats.rho[ax], truth[ax], atol=0.05, err_msg=f"{kernel} along {ax}")


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_classical_level_is_the_per_pixel_std_under_correlated_noise(kernel):
    """Differencing pixels beyond the measured correlation sees the whole per-pixel
    variance (within 10 %), where neighbours' differences see a fraction of it."""
    y = (_signal() + 0.1 * _noise(KERNELS[kernel]))[None, ..., None].astype(np.float32)
    stats = noise_stats([y])
    sigma = estimate_noise([y], "gaussian", lag=level_lag(stats, choose_blind_region(stats)[0]))["sigma"]
    assert sigma**2 == pytest.approx(0.01, rel=0.10)
    if kernel == "box3":
        assert estimate_noise([y], "gaussian")["sigma"] < 0.05  # what the one-pixel estimate saw


@pytest.mark.parametrize("kernel,region", [("white", (1, 1)), ("box3", (3, 3)), ("line3", (1, 3)), ("tent", (2, 2))])
def test_the_region_is_the_smallest_beyond_which_correlation_is_negligible(kernel, region):
    """The tent [1 2 1] x [1 2 1] leaves 1/6 at lag 2: not clearly above 0.15, so k = 2."""
    y = (_signal() + 0.1 * _noise(KERNELS[kernel]))[None, ..., None].astype(np.float32)
    assert choose_blind_region(noise_stats([y]))[0] == region


def test_volumes_measure_correlation_along_z():
    w = np.random.default_rng(0).standard_normal((40, 128, 128))
    n = convolve(w, np.ones((3, 1, 1)), mode="wrap") / np.sqrt(3)
    stats = noise_stats([(0.5 + 0.1 * n)[None, ..., None]], ndim=3)
    assert stats.rho["Z"][0] == pytest.approx(2 / 3, abs=0.05) and abs(stats.rho["Y"][0]) < 0.05
    assert choose_blind_region(stats, ndim=3)[0] == (3, 1, 1)


def test_noise_model_follows_how_the_variance_grows_with_the_signal():
    from napari_ssdn.samples import clean_cells

    rng = np.random.default_rng(0)
    clean = clean_cells(256, seed=1)
    gaussian = clean + 0.1 * rng.standard_normal(clean.shape)
    poisson = rng.poisson(clean * 30) / 30.0
    camera = 100 + 2 * rng.poisson(clean * 200) + 3 * rng.standard_normal(clean.shape)  # pedestal, gain, read noise
    assert choose_noise_model([gaussian[None, ..., None]])[0] == "gaussian"
    assert choose_noise_model([poisson[None, ..., None]])[0] == "poisson-gaussian"
    assert choose_noise_model([camera[None, ..., None]])[0] == "poisson-gaussian"
    # Two images of different Gaussian levels are not signal-dependent noise.
    other = clean_cells(256, seed=2) * 0.5 + 0.3 * rng.standard_normal(clean.shape)
    assert choose_noise_model([gaussian[None, ..., None], other[None, ..., None]])[0] == "gaussian"


def test_auto_choices_are_used_stored_and_given_settings_win(tmp_path):
    """A run on correlated noise takes the measured region and records why; a given
    noise model or region is kept as given."""
    y = _signal((256, 256)) + 0.1 * _noise(KERNELS["box3"], (256, 256))
    y = y.astype(np.float32)
    fast = dict(iterations=2, patch=32, device="cpu")
    trainer = Trainer(y, "YX", TrainConfig(**fast))
    assert trainer.model.config.region == (3, 3) and trainer.model.config.noise == "gaussian"
    assert "correlated" in trainer.choices.blind_why and "does not clearly grow" in trainer.choices.noise_why
    # The starting level is the per-pixel one (0.1), not the neighbours' difference.
    assert trainer.model.config.noise_init["sigma"] == pytest.approx(0.1, rel=0.1)
    for _ in trainer.run():
        pass
    trainer.save(tmp_path / "m.ssdn")
    model, info = load_model(tmp_path / "m.ssdn")
    assert model.config.region == (3, 3) and info["training"]["auto"]["blind_region"] == [3, 3]
    given = Trainer(y, "YX", TrainConfig(noise="poisson-gaussian", blind="1,2", **fast))
    assert given.model.config.region == (1, 2) and given.model.config.noise == "poisson-gaussian"
    assert given.choices.noise_why == "given" and given.choices.blind_why == "given"


def test_a_camera_pedestal_keeps_the_read_noise_at_the_dark_level():
    """Counts on a pedestal (y = 100 + 2 Poisson + 3 n: variance 2 y - 191) are normalised
    from the level where the variance line meets zero, so the model's noise variance at the
    dark level is the read noise (9), not the gain times the pedestal (200)."""
    from napari_ssdn.samples import clean_cells

    rng = np.random.default_rng(0)
    counts = rng.poisson(clean_cells(192, seed=1) * 200)
    y = (100 + 2 * counts + 3 * rng.standard_normal(counts.shape)).astype(np.float32)
    trainer = Trainer(y, "YX", TrainConfig(iterations=1, patch=32, device="cpu", blind=1))
    assert trainer.model.config.noise == "poisson-gaussian"
    assert 85 < trainer.norm.offset < 105  # the line meets zero at 95.5
    p = trainer.model.config.noise_init  # the classical estimate, data units (cell texture inflates a)
    assert p["a"] == pytest.approx(2, rel=0.5)
    dark = trainer.model.noise_params()  # network units, at the offset
    assert float(dark["b"]) * trainer.norm.scale**2 < 40  # the read noise, 9; with offset 0 it was a * 100


def test_a_given_noise_level_larger_than_the_data_is_flagged(tmp_path):
    """sigma = 25 given for an image in 0..1 (units mixed up) warns, in the core and in
    ssdn train; a plausible level does not."""
    import subprocess
    import sys
    import warnings

    from napari_ssdn.core import SSDNWarning
    from napari_ssdn.io import write_image

    y = (_signal((128, 128)) + 0.1 * _noise(KERNELS["white"], (128, 128))).astype(np.float32)
    fast = dict(iterations=1, patch=32, device="cpu")
    with pytest.warns(SSDNWarning, match="sigma=25.*larger than the data's whole range"):
        Trainer(y, "YX", TrainConfig(noise_params={"sigma": 25.0}, **fast))
    with warnings.catch_warnings():
        warnings.simplefilter("error", SSDNWarning)
        Trainer(y, "YX", TrainConfig(noise_params={"sigma": 0.1}, **fast))
    src = tmp_path / "img.tif"
    write_image(src, y, "YX")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "napari_ssdn.cli",
            "train",
            str(src),
            "-o",
            str(tmp_path / "m.ssdn"),
            "--sigma",
            "25",
            "--iterations",
            "1",
            "--patch",
            "32",
            "--device",
            "cpu",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "ssdn: warning: the given noise (--sigma 25)" in r.stderr and "Traceback" not in r.stderr


def test_noise_level_per_image_where_the_images_levels_differ():
    """Channels or exposures of different noise levels get a level each, starting from
    each image's own estimate; frames of one camera share one level."""
    from napari_ssdn.samples import clean_cells

    rng = np.random.default_rng(0)
    clean = [clean_cells(128, seed=s) for s in range(3)]
    fast = dict(iterations=1, patch=32, device="cpu", noise="gaussian", blind=1)
    differ = [
        (c + s * rng.standard_normal(c.shape)).astype(np.float32) for c, s in zip(clean, (0.02, 0.05, 0.1), strict=True)
    ]
    trainer = Trainer(differ, ["YX"] * 3, TrainConfig(**fast))
    assert trainer.choices.per_image and "differ between images" in trainer.choices.per_image_why
    assert trainer.model.config.per_image and trainer.anchors is not None
    # Each image starts from its own estimate: the data set's start times its anchor.
    base = float(trainer.model.base[0]) * trainer.model.config.scale
    sigmas = [base * float(np.exp(float(trainer.anchors[i][0][0]))) for i in range(3)]
    assert sigmas == pytest.approx([0.02, 0.05, 0.1], rel=0.2)

    same = [(c + 0.05 * rng.standard_normal(c.shape)).astype(np.float32) for c in clean]
    trainer = Trainer(same, ["YX"] * 3, TrainConfig(**fast))
    assert not trainer.choices.per_image and "share one noise level" in trainer.choices.per_image_why
    assert not trainer.model.config.per_image
    assert Trainer(differ, ["YX"] * 3, TrainConfig(per_image=False, **fast)).choices.per_image_why == "given"


def test_poisson_gaussian_channels_of_different_gains_get_a_level_each():
    from napari_ssdn.core.noise.estimate import PER_IMAGE_SPREAD, level_spread
    from napari_ssdn.samples import clean_cells

    rng = np.random.default_rng(1)
    clean = clean_cells(256, seed=3)
    cams = [rng.poisson(clean * g) / g for g in (20.0, 200.0)]
    same = [rng.poisson(clean * 50.0) / 50.0 for _ in range(2)]
    assert level_spread([c[None, ..., None] for c in cams], "poisson-gaussian") > 3 * PER_IMAGE_SPREAD
    assert level_spread([c[None, ..., None] for c in same], "poisson-gaussian") < 1.2


def test_frozen_per_image_noise_leaves_its_idle_estimator_out():
    """Poisson-Gaussian parameters keep their estimates, so a per-image model's estimator
    network never learns: training leaves it out with the same losses and untouched weights.
    A Gaussian per-image model, whose levels are learned, keeps running it."""
    import torch

    from napari_ssdn.samples import clean_cells

    rng = np.random.default_rng(2)
    cams = [(rng.poisson(clean_cells(96, seed=s) * g + 2) / g).astype(np.float32) for s, g in ((1, 20.0), (2, 200.0))]
    fast = dict(patch=32, device="cpu", blind=1, per_image=True)
    trainer = Trainer(cams, ["YX"] * 2, TrainConfig(noise="poisson-gaussian", iterations=3, **fast))
    assert trainer.model.estimator_idle() and not trainer.refine
    before = {k: v.clone() for k, v in trainer.model.estimator.state_dict().items()}
    y = torch.from_numpy(np.stack([c[:32, :32] for c in cams])[:, None]).float()
    anchor = torch.stack([trainer.anchors[0][0], trainer.anchors[1][0]])
    with torch.no_grad():
        without = trainer.model.noise_params(y, anchor, refine=False)
        with_it = trainer.model.noise_params(y, anchor, refine=True)
    for name in without:
        assert torch.equal(without[name], with_it[name])
    for _ in trainer.run():
        pass
    assert all(torch.equal(v, before[k]) for k, v in trainer.model.estimator.state_dict().items())
    gaussian = Trainer(cams, ["YX"] * 2, TrainConfig(noise="gaussian", iterations=1, **fast))
    assert gaussian.refine and gaussian.model.estimator is not None


def _three_cameras(seed=3, size=96):
    """An RGB-like image whose channels have the noise of three gains (1:4:16 in variance)."""
    from napari_ssdn.samples import clean_cells

    rng = np.random.default_rng(seed)
    clean = np.stack([clean_cells(size, seed=s) for s in (1, 2, 3)], axis=-1)
    noisy = np.stack([rng.poisson(clean[..., c] * g + 1) / g for c, g in enumerate((160.0, 40.0, 10.0))], axis=-1)
    return clean.astype(np.float32), noisy.astype(np.float32)


def test_channels_of_different_noise_levels_train_apart():
    """Channels of different noise levels (fluorescence channels of one camera in an RGB
    file) train as gray images with a level each; the model denoises a multi-channel image
    channel by channel. Channels of one level keep one multi-channel network."""
    from napari_ssdn.core import denoise

    clean, noisy = _three_cameras()
    trainer = Trainer(noisy, "YXC", TrainConfig(iterations=20, patch=32, device="cpu"))
    assert trainer.choices.channels_apart and "differ between channels" in trainer.choices.channels_why
    assert trainer.model.config.channels == 1 and trainer.model.config.per_image
    for _ in trainer.run():
        pass
    out = denoise(trainer.model, noisy, "YXC", ("prior-mean", "posterior-mean"), device="cpu")
    assert out["posterior-mean"].shape == noisy.shape
    alone = denoise(trainer.model, np.ascontiguousarray(noisy[..., 2]), "YX", "posterior-mean", device="cpu")
    np.testing.assert_allclose(out["posterior-mean"][..., 2], alone, rtol=1e-5, atol=1e-6)
    resumed = Trainer(noisy, "YXC", TrainConfig(iterations=2, patch=32, device="cpu"), resume=trainer.model)
    for _ in resumed.run():
        pass
    assert resumed.step == 2 and resumed.model.config.channels == 1
    gray = (clean + 0.05 * np.random.default_rng(4).standard_normal(clean.shape)).astype(np.float32)
    same = Trainer(gray, "YXC", TrainConfig(iterations=1, patch=32, device="cpu"))
    assert not same.choices.channels_apart and "share one noise level" in same.choices.channels_why
    assert same.model.config.channels == 3


def test_cli_trains_an_rgb_file_channel_by_channel(tmp_path):
    """`ssdn train` says why it trains the channels apart; `ssdn denoise` writes the RGB image."""
    import subprocess
    import sys

    import tifffile
    from PIL import Image

    _, noisy = _three_cameras(size=64)
    Image.fromarray(np.clip(noisy / noisy.max() * 255, 0, 255).astype(np.uint8)).save(tmp_path / "cells.png")

    def run(*a):
        return subprocess.run(
            [sys.executable, "-m", "napari_ssdn.cli", *a], capture_output=True, text=True, timeout=300
        )

    r = run(
        "train",
        str(tmp_path / "cells.png"),
        "-o",
        str(tmp_path / "m.ssdn"),
        "--iterations",
        "2",
        "--patch",
        "32",
        "--device",
        "cpu",
    )
    assert r.returncode == 0, r.stderr
    assert "channels trained apart, as gray images: noise levels differ between channels" in r.stdout + r.stderr
    r = run(
        "denoise",
        str(tmp_path / "cells.png"),
        "-m",
        str(tmp_path / "m.ssdn"),
        "-o",
        str(tmp_path / "den.tif"),
        "--device",
        "cpu",
    )
    assert r.returncode == 0, r.stderr
    assert tifffile.imread(tmp_path / "den.tif").shape == (64, 64, 3)
