"""Settings read from the data (core/training/auto.py): noise model, blind region, per-image
levels and channels trained apart, each with its reason."""

import numpy as np
import pytest
from scipy.ndimage import convolve

from napari_ssdn.core import TrainConfig
from napari_ssdn.core.training.auto import channels_as_images, choose_layout, choose_settings


def _scene(shape=(128, 128)):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (50 + 20 * np.sin(yy / 9.0) + 20 * np.cos(xx / 13.0)).astype(np.float32)


def _noisy(sigma=(2.0,), seed=0, channels=1):
    """``(S, Y, X, C)`` images of one scene with independent Gaussian noise, one per sigma."""
    rng = np.random.default_rng(seed)
    out = []
    for s in sigma:
        noise = rng.normal(0, 1, (*_scene().shape, channels))
        out.append(_scene()[..., None] + s * noise)
    return [np.stack(out).astype(np.float32)]


def test_given_settings_are_kept_with_the_reason_given():
    c = choose_settings(TrainConfig(noise="poisson", blind="1,3", per_image=False), _noisy())
    assert (c.noise, c.noise_why, c.blind_region, c.blind_why) == ("poisson", "given", (1, 3), "given")
    assert (c.per_image, c.per_image_why) == (False, "given")


def test_independent_gaussian_noise_gets_the_centre_pixel_and_the_gaussian_model():
    c = choose_settings(TrainConfig(), _noisy())
    assert c.noise == "gaussian" and c.noise_why != "given"
    assert c.blind_region == (1, 1) and c.blind_why != "given"
    assert c.correlation is not None


def test_noise_correlated_between_neighbours_widens_the_blind_region():
    white = np.random.default_rng(1).standard_normal((256, 256))
    noise = convolve(white, np.ones((3, 3)), mode="wrap") / 3
    yy, xx = np.mgrid[:256, :256] / 256
    image = 0.5 + 0.3 * np.sin(6 * xx) * np.cos(4 * yy) + 0.1 * noise
    c = choose_settings(TrainConfig(noise="gaussian"), [image[None, ..., None].astype(np.float32)])
    assert max(c.blind_region) > 1, c.blind_why


def test_supervised_mode_needs_no_blind_spot():
    c = choose_settings(TrainConfig(mode="supervised", noise="gaussian"), _noisy())
    assert c.blind_region == (1, 1) and "supervised" in c.blind_why


def test_too_little_data_falls_back_to_the_centre_pixel_with_a_reason():
    tiny = [np.random.default_rng(0).normal(0, 1, (1, 8, 8, 1)).astype(np.float32)]
    c = choose_settings(TrainConfig(noise="gaussian"), tiny)
    assert c.blind_region == (1, 1) and "too little data" in c.blind_why


@pytest.mark.parametrize("sigmas, expected", [((1.0, 4.0), True), ((2.0, 2.0), False)])
def test_noise_levels_vary_per_image_where_they_differ(sigmas, expected):
    c = choose_settings(TrainConfig(noise="gaussian", blind=1), _noisy(sigma=sigmas))
    assert c.per_image is expected, c.per_image_why


def test_one_image_shares_one_level():
    c = choose_settings(TrainConfig(noise="gaussian", blind=1), _noisy())
    assert (c.per_image, c.per_image_why) == (False, "one image")


def test_channels_with_different_noise_levels_train_apart():
    rgb = _noisy(channels=3)[0]
    rgb[..., 2] = _scene() + 6 * np.random.default_rng(5).normal(0, 1, _scene().shape)
    raw, c = choose_layout(TrainConfig(noise="gaussian", blind=1), [rgb])
    assert c.channels_apart and "differ between channels" in c.channels_why
    assert len(raw) == 3 and all(r.shape == rgb.shape[:-1] + (1,) for r in raw)
    np.testing.assert_array_equal(raw[2][..., 0], rgb[..., 2])


def test_channels_with_one_noise_level_stay_together():
    rgb = _noisy(channels=3)
    raw, c = choose_layout(TrainConfig(noise="gaussian", blind=1), rgb)
    assert raw is rgb and not c.channels_apart and "share one noise level" in c.channels_why


def test_channels_as_images_splits_every_channel_of_every_array():
    a = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
    parts = channels_as_images([a, a[:1]])
    assert len(parts) == 6 and parts[4].shape == (1, 4, 4, 1)
    np.testing.assert_array_equal(parts[1][..., 0], a[..., 1])
