"""The measured noise variance against intensity and the model's variance line (no Qt, no torch)."""

import numpy as np
import pytest
from scipy.ndimage import convolve

from napari_ssdn.core.noise.curve import measure_noise, model_variance, noise_curve


def _ramp(shape=(512, 512)):
    """A smooth signal from 0.1 to 0.9 across x, gently varying in y."""
    yy, xx = np.mgrid[: shape[0], : shape[1]] / shape[1]
    return 0.1 + 0.8 * xx + 0.02 * np.sin(3 * yy)


def test_gaussian_noise_gives_a_flat_curve_at_sigma_squared():
    rng = np.random.default_rng(0)
    y = (_ramp() + 0.1 * rng.standard_normal((512, 512)))[None, ..., None]
    c = noise_curve([y], bins=8)
    assert len(c["mean"]) == len(c["variance"]) == len(c["count"]) and 4 <= len(c["mean"]) <= 8
    assert c["mean"] == sorted(c["mean"]) and c["mean"][0] < 0.3 and c["mean"][-1] > 0.7
    np.testing.assert_allclose(c["variance"], 0.01, rtol=0.2)


def test_poisson_gaussian_noise_grows_along_the_line():
    rng = np.random.default_rng(1)
    x = _ramp()
    y = (x + np.sqrt(0.02 * x + 0.001) * rng.standard_normal(x.shape))[None, ..., None]
    c = noise_curve([y], bins=6)
    truth = 0.02 * np.array(c["mean"]) + 0.001
    np.testing.assert_allclose(c["variance"], truth, rtol=0.25)
    assert c["variance"][-1] > 3 * c["variance"][0]


def test_curve_is_in_the_units_of_the_samples():
    rng = np.random.default_rng(2)
    y = (_ramp() + 0.1 * rng.standard_normal((512, 512)))[None, ..., None]
    a, b = noise_curve([y]), noise_curve([1000 * y + 50])
    np.testing.assert_allclose(b["mean"], 1000 * np.array(a["mean"]) + 50, rtol=1e-6)
    np.testing.assert_allclose(b["variance"], 1e6 * np.array(a["variance"]), rtol=1e-6)


def test_model_variance_per_noise_model():
    x = np.array([0.0, 1.0, 4.0])
    np.testing.assert_allclose(model_variance("gaussian", {"sigma": 0.5}, x), [0.25] * 3)
    np.testing.assert_allclose(model_variance("poisson", {"lam": 2.0}, x), [0.0, 0.5, 2.0])
    np.testing.assert_allclose(model_variance("poisson-gaussian", {"a": 0.1, "b": -0.05}, x), [0.0, 0.05, 0.35])
    np.testing.assert_allclose(model_variance("gaussian", {"sigma": np.array([0.4, 0.6])}, x), [0.25] * 3)
    assert model_variance("impulse", {"alpha": 0.1}, x) is None
    assert model_variance("gaussian", {}, x) is None


def test_measure_noise_reports_correlation_per_axis_and_differences_beyond_it():
    rng = np.random.default_rng(3)
    white = rng.standard_normal((512, 512))
    m = measure_noise((_ramp() + 0.1 * white).astype(np.float32), "YX")
    assert set(m["rho"]) == {"Y", "X"} and all(len(v) == 4 for v in m["rho"].values())
    assert max(abs(r) for v in m["rho"].values() for r in v) < 0.08 and m["lag"] == 1 and not m["rho_error"]
    assert all(len(v) == 4 for v in m["rho_se"].values())
    np.testing.assert_allclose(m["variance"], 0.01, rtol=0.2)

    # Noise summed over 3 pixels along x: correlated 2/3 at lag 1, 1/3 at lag 2, none beyond.
    line = convolve(white, np.ones((1, 3)), mode="wrap") / np.sqrt(3)
    m = measure_noise((_ramp() + 0.1 * line).astype(np.float32), "YX")
    assert m["rho"]["X"][0] == pytest.approx(2 / 3, abs=0.06) and abs(m["rho"]["Y"][0]) < 0.06
    assert m["lag"] == 3  # the blind region auto would choose: pixels 3 apart are independent
    np.testing.assert_allclose(m["variance"], 0.01, rtol=0.2)


def test_measure_noise_on_a_stack_and_too_small_data():
    rng = np.random.default_rng(4)
    stack = (_ramp((128, 128)) + 0.1 * rng.standard_normal((6, 128, 128))).astype(np.float32)
    m = measure_noise(stack, "TYX", bins=6)
    np.testing.assert_allclose(m["variance"], 0.01, rtol=0.25)
    small = measure_noise((0.5 + 0.1 * rng.standard_normal((24, 24))).astype(np.float32), "YX")
    assert small["rho"] == {} and "too few" in small["rho_error"] and small["mean"]
