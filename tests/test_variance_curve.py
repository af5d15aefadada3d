"""The ``curve`` noise model: a noise variance measured against the signal from one image,
used by the posterior, kept in the model file, shown by ``ssdn info`` and exported."""

import zipfile

import numpy as np
import pytest
import torch
from _export_helpers import CURVE, make_model_file, noisy_image

from napari_ssdn.cli import main
from napari_ssdn.core import TrainConfig, Trainer, denoise, load_model
from napari_ssdn.core.noise.bayes import curve_variance
from napari_ssdn.core.noise.curve import CURVE_BEND, curve_bend, variance_curve
from napari_ssdn.core.training.auto import choose_settings


def _ramp(shape=(384, 384), lo=0.0, hi=0.5):
    """A smooth signal rising across x (2 x 2 blocks see it nearly linear)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]] / shape[1]
    return lo + (hi - lo) * xx + 0.01 * np.sin(4 * yy)


def _clipped(x, a, b, seed):
    rng = np.random.default_rng(seed)
    return np.clip(x + np.sqrt(a * x + b) * rng.standard_normal(x.shape), 0, None).astype(np.float32)


def _clipped_truth(levels, a, b, draws=400_000):
    """Mean and variance of max(x + sqrt(a x + b) z, 0) at each signal level, by simulation."""
    z = np.random.default_rng(99).standard_normal(draws)
    ys = [np.clip(x + np.sqrt(a * x + b) * z, 0, None) for x in levels]
    return np.array([y.mean() for y in ys]), np.array([y.var() for y in ys])


def test_curve_recovers_the_convex_variance_of_noise_clipped_at_zero():
    a, b = 0.01, 0.002
    x = _ramp()
    curve = variance_curve([_clipped(x, a, b, seed)[None, ..., None] for seed in range(3)])
    means, truth = _clipped_truth(np.linspace(0, 0.55, 400), a, b)
    expected = np.interp(curve["mean"], means, truth)
    assert len(curve["mean"]) == 8 and curve["mean"] == sorted(curve["mean"])
    np.testing.assert_allclose(curve["variance"], expected, rtol=0.1)


def test_curve_holds_the_variance_of_sparse_photon_noise():
    """A dark confocal background: integer levels 3 or 4 and, at 0.02 photons per pixel,
    rare events of 6 levels. Most details are 0 or 1; the curve still reads the variance
    (36 x 0.02 + 0.25), where a spread that trims the rare events read half of it."""
    rng = np.random.default_rng(5)
    y = 3 + rng.integers(0, 2, (384, 384)) + 6 * rng.poisson(0.02, (384, 384))
    curve = variance_curve([y.astype(np.float32)[None, ..., None]])
    np.testing.assert_allclose(curve["variance"], 36 * 0.02 + 0.25, rtol=0.25)


def _saturated(x, s):
    rng = np.random.default_rng(s)
    return np.clip(x + np.sqrt(0.01 * x + 0.002) * rng.standard_normal(x.shape), 0, 1)


def test_saturation_bends_the_curve_away_from_any_line():
    x = _ramp(hi=1.0)
    y = _saturated(x, 4)  # a camera's ceiling
    miss, level = curve_bend(variance_curve([y[None, ..., None]]))
    assert miss >= CURVE_BEND and level > 0.8


def test_curve_of_white_noise_is_flat_and_a_line_fits_it():
    rng = np.random.default_rng(0)
    ys = [(_ramp(lo=0.1, hi=0.9) + 0.05 * rng.standard_normal((384, 384)))[None, ..., None] for _ in range(3)]
    curve = variance_curve(ys)
    np.testing.assert_allclose(curve["variance"], 0.0025, rtol=0.12)
    assert curve_bend(curve)[0] < CURVE_BEND


@pytest.mark.parametrize("last", [2.0, 5.0])
def test_curve_variance_interpolates_and_extends_a_rise(last):
    """Linear between the knots, the first value below them; beyond the last knot the last
    segment's rise continues (Poisson noise keeps growing), a fall is held (saturation)."""
    from napari_ssdn.core.noise.curve import interpolate_curve

    xs = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    vs = torch.tensor([1.0, 3.0, last], dtype=torch.float64)
    mu = torch.tensor([[-1.0, 0.0, 0.25, 0.5, 0.75, 1.0, 4.0]], dtype=torch.float64)
    beyond = last if last < 3.0 else last + (last - 3.0) / 0.5 * 3.0
    expected = np.array([[1.0, 1.0, 2.0, 3.0, (3.0 + last) / 2, last, beyond]])
    np.testing.assert_allclose(curve_variance(mu, xs, vs).numpy(), expected, rtol=1e-12)
    curve = {"mean": xs.tolist(), "variance": vs.tolist()}
    np.testing.assert_allclose(interpolate_curve(curve, mu.numpy()), expected, rtol=1e-12)


def _sparse_photons(x, s):
    """A confocal detector: integer levels 3 or 4 and events of 6 levels per photon, with
    0.05 to 0.5 photons per pixel."""
    rng = np.random.default_rng(s)
    return 3 + rng.integers(0, 2, x.shape) + 6 * rng.poisson(0.05 + 0.45 * np.clip(x, 0, 1))


@pytest.mark.parametrize(
    "make,noise",
    [
        (_saturated, "curve"),
        (_sparse_photons, "curve"),
        (lambda x, s: x + np.sqrt(0.01 * x + 0.002) * np.random.default_rng(s).standard_normal(x.shape), "pg"),
        (lambda x, s: x + 0.05 * np.random.default_rng(s).standard_normal(x.shape), "gaussian"),
    ],
)
def test_auto_takes_the_curve_only_where_a_line_misses_it(make, noise):
    y = make(_ramp((256, 256), hi=1.05), 1).astype(np.float32)[None, ..., None]
    choices = choose_settings(TrainConfig(), [y])
    assert choices.noise == {"pg": "poisson-gaussian"}.get(noise, noise), choices.noise_why
    if make is _saturated:
        assert "falls below a line" in choices.noise_why
    if make is _sparse_photons:
        assert "sparse photon events" in choices.noise_why


@pytest.fixture(scope="module")
def curve_run(tmp_path_factory):
    """A short training with the curve model on noise clipped at zero, saved."""
    x = _ramp((160, 160), 0.0, 0.6)
    noisy = _clipped(x, 0.01, 0.002, 3)
    trainer = Trainer([noisy], ["YX"], TrainConfig(noise="curve", iterations=6, seed=0, init=None))
    for _ in trainer.run():
        pass
    path = tmp_path_factory.mktemp("curve") / "curve.ssdn"
    trainer.save(path)
    return trainer, noisy, path


def test_training_measures_the_curve_and_the_file_keeps_it(curve_run):
    trainer, noisy, path = curve_run
    curve = trainer.model.noise_curve_data()
    assert len(curve["mean"]) >= 3 and all(v > 0 for v in curve["variance"])
    assert trainer.model.noise_params_data() == {}  # no scalar parameter
    loaded, _ = load_model(path)
    assert loaded.noise_curve_data() == curve
    a = denoise(trainer.model, noisy, "YX", tta=False, device="cpu")
    b = denoise(loaded, noisy, "YX", tta=False, device="cpu")
    np.testing.assert_array_equal(a, b)


def test_posterior_follows_the_curve(curve_run):
    """Half the variance everywhere: the posterior moves towards the noisy pixel."""
    trainer, noisy, _ = curve_run
    model = trainer.model
    prior = denoise(model, noisy, "YX", "prior-mean", tta=False, device="cpu")
    post = denoise(model, noisy, "YX", tta=False, device="cpu")
    model.curve_v.mul_(0.5)
    try:
        sharper = denoise(model, noisy, "YX", tta=False, device="cpu")
    finally:
        model.curve_v.mul_(2.0)
    assert np.abs(sharper - prior).mean() > np.abs(post - prior).mean() > 0


def test_info_shows_the_curve(curve_run, capsys):
    _, _, path = curve_run
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "noise       curve: variance against the signal, measured from the data:" in out
    assert main(["info", str(path), "--json"]) == 0
    assert '"curve": {' in capsys.readouterr().out


def test_export_readme_lists_the_curve(tmp_path):
    pytest.importorskip("bioimageio.spec")
    model_path, _ = make_model_file(tmp_path / "c.ssdn", noise="curve")
    assert main(["export", str(model_path), "-o", str(tmp_path / "c.zip"), "-q"]) == 0
    with zipfile.ZipFile(tmp_path / "c.zip") as zf:
        readme = zf.read("README.md").decode()
    assert "measured curve" in readme
    assert f"{CURVE['mean'][1]:.6g}: {CURVE['variance'][1]:.6g}" in readme


def test_a_curve_model_without_its_curve_is_refused():
    from napari_ssdn.core import ModelConfig, SSDNModel
    from napari_ssdn.core.errors import SSDNError

    with pytest.raises(SSDNError, match="variance curve"):
        SSDNModel(ModelConfig(enc=4, dec=6, depth=2, noise="curve"))
    with pytest.raises(SSDNError, match="must increase"):
        SSDNModel(ModelConfig(enc=4, dec=6, depth=2, noise="curve", noise_curve={"mean": [1, 0], "variance": [1, 1]}))


def test_noisy_image_helper_is_positive_enough_for_the_export_cases():
    assert float(noisy_image((32, 32)).std()) > 0.05
