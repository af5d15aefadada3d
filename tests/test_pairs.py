"""Noise measured from two observations of one field: the variance curve and the correlation
against the truth, and the refusal of pairs that are not two views of one field."""

import numpy as np
import pytest

from napari_ssdn.core.errors import SSDNError
from napari_ssdn.core.noise.pairs import check_pair, pair_noise
from napari_ssdn.samples import clean_cells


def clipped_poisson_gaussian(signal, a, b, rng):
    """Camera noise clipped at zero: variance convex in the signal near zero."""
    return np.clip(rng.poisson(signal / a) * a + rng.normal(0, np.sqrt(b), signal.shape), 0, None)


def test_the_curve_recovers_a_convex_variance_within_ten_percent_per_bin():
    rng = np.random.default_rng(0)
    signal = clean_cells(384, seed=1) * 60.0
    a, b = 0.5, 9.0
    y1, y2 = (clipped_poisson_gaussian(signal, a, b, rng) for _ in range(2))
    pn = pair_noise(y1, y2)
    # The truth per bin: the variance of many draws at each pixel, averaged over the bin's pixels.
    draws = np.stack([clipped_poisson_gaussian(signal, a, b, rng) for _ in range(64)])
    true_var = draws.var(0, ddof=1)
    level = (y1 + y2) / 2
    from napari_ssdn.core.noise.pairs import _smoothed

    smooth = _smoothed(level[None])[0]
    edges = np.unique(np.quantile(smooth, np.linspace(0, 1, len(pn.level) + 1)))
    idx = np.clip(np.searchsorted(edges, smooth, side="right") - 1, 0, len(edges) - 2)
    for i, measured in enumerate(pn.variance):
        truth = true_var[idx == i].mean()
        assert measured == pytest.approx(truth, rel=0.10), (i, measured, truth)
    # The clipped dark end lies below the straight line through the bright end: a curve.
    assert pn.variance[0] < a * pn.level[0] + b


def test_correlation_per_axis_is_the_noise_kernels():
    rng = np.random.default_rng(1)
    signal = clean_cells(256, seed=2) * 10.0

    def correlated_along_x():
        white = rng.normal(0, 1, (256, 258))
        return signal + (white[:, :-2] + white[:, 1:-1] + white[:, 2:]) / np.sqrt(3)

    pn = pair_noise(correlated_along_x(), correlated_along_x())
    # A 3-tap box along x: correlation 2/3 at lag 1, 1/3 at lag 2, none along y.
    assert pn.correlation["X"][0] == pytest.approx(2 / 3, abs=0.03)
    assert pn.correlation["X"][1] == pytest.approx(1 / 3, abs=0.03)
    assert abs(pn.correlation["Y"][0]) < 0.03
    name, params = pn.noise_params()
    assert name == "gaussian" and params["sigma"] == pytest.approx(np.sqrt(0.5), rel=0.05)


def test_volumes_are_measured_along_z_too():
    rng = np.random.default_rng(2)
    signal = np.stack([clean_cells(64, seed=3 + z // 4) for z in range(24)]) * 5.0
    pn = pair_noise(signal + rng.normal(0, 0.5, signal.shape), signal + rng.normal(0, 0.5, signal.shape), ndim=3)
    assert set(pn.correlation) == {"Z", "Y", "X"}
    assert pn.noise_params(of_mean=False)[1]["sigma"] == pytest.approx(0.5, rel=0.05)


@pytest.mark.parametrize(
    "second, words",
    [
        (lambda y, rng: y[:, :-1], ["differ in shape", "(128, 127)"]),
        (lambda y, rng: np.roll(y, 3, axis=0), ["shifted", "3 x 0", "align the halves"]),
        (lambda y, rng: rng.normal(0, 1, y.shape), ["do not look like the same field"]),
    ],
)
def test_pairs_that_are_not_one_field_are_refused_in_one_line(second, words):
    rng = np.random.default_rng(3)
    signal = clean_cells(128, seed=4)
    y1 = signal + rng.normal(0, 0.1, signal.shape)
    y2 = second(signal + rng.normal(0, 0.1, signal.shape), rng)
    with pytest.raises(SSDNError) as err:
        check_pair(y1, y2, names=("EVN.mrc", "ODD.mrc"))
    text = str(err.value)
    assert "\n" not in text and "ODD.mrc" in text or "EVN.mrc" in text
    for w in words:
        assert w in text, text


def _halves(size=64, sigma=0.2, seed=5):
    rng = np.random.default_rng(seed)
    clean = clean_cells(size, seed=seed)
    return clean, *((clean + rng.normal(0, sigma, clean.shape)).astype(np.float32) for _ in range(2))


@pytest.mark.parametrize("method", ["noise2noise", "mean"])
def test_training_on_a_pair_uses_the_noise_measured_from_it(method):
    from napari_ssdn.core import TrainConfig, Trainer

    _, y1, y2 = _halves(sigma=0.2)
    cfg = TrainConfig(iterations=3, device="cpu", width="tiny", patch=32, pair_method=method)
    trainer = Trainer(y1, "YX", cfg, pair=y2)
    for _ in trainer.run():
        pass
    record = trainer.train_state()["pair"]
    assert record["method"] == method and record["noise"] == "gaussian"
    # The halves' mean has half a half's variance: std 0.2 / sqrt(2).
    assert record["params"]["sigma"] == pytest.approx(0.2 / np.sqrt(2), rel=0.08)
    assert "measured from the halves" in trainer.choices.noise_why
    if method == "mean":
        assert trainer.model.config.mode == "ssdn" and not trainer.model.learned
        assert trainer.model.noise_params_data()["sigma"] == pytest.approx(record["params"]["sigma"], rel=1e-4)
    else:
        assert trainer.model.config.mode == "supervised"


def test_pairs_of_several_channels_or_unmatched_counts_are_refused():
    from napari_ssdn.core import TrainConfig, Trainer

    _, y1, y2 = _halves()
    cfg = TrainConfig(iterations=1, device="cpu")
    with pytest.raises(SSDNError, match="one other half for each image"):
        Trainer([y1, y1], ["YX", "YX"], cfg, pair=[y2])
    rgb1, rgb2 = np.stack([y1] * 3, -1), np.stack([y2] * 3, -1)
    with pytest.raises(SSDNError, match="one-channel"):
        Trainer(rgb1, "YXC", cfg, pair=rgb2)
    with pytest.raises(SSDNError, match="pair_method='both'"):
        TrainConfig(pair_method="both").validate()


def test_the_error_read_from_a_pair_is_the_error_against_the_clean_signal():
    """|f(y1) - y2|^2 less the noise variance estimates |f(y1) - s|^2 without the clean image."""
    from scipy.ndimage import gaussian_filter

    from napari_ssdn.core.infer.pairs import pair_quality

    rng = np.random.default_rng(8)
    clean = gaussian_filter(clean_cells(256, seed=8) * 10, 2.0)  # no signal near Nyquist
    y1, y2 = (clean + rng.normal(0, 4.0, clean.shape) for _ in range(2))
    d1, d2 = gaussian_filter(y1, 0.8), gaussian_filter(y2, 0.8)
    q = pair_quality(d1, d2, y1, y2, 16.0)
    true_mse = (np.mean((d1 - clean) ** 2) + np.mean((d2 - clean) ** 2)) / 2
    assert q.mse == pytest.approx(true_mse, rel=0.1)
    assert q.psnr > q.noisy_psnr + 5
    # The halves agree at low frequencies, where the signal is, and not at the highest (a
    # linear filter leaves the ring correlation as the data's signal-to-noise ratio).
    assert q.resolution is not None and 2 < q.resolution < 20
    assert q.correlation[0] > 0.9 and q.correlation[-1] < 0.143


def _ssdn(*args, cwd):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "napari_ssdn.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300
    )


FAST = ["--iterations", "3", "--patch", "32", "--device", "cpu", "--quiet"]


def _write_halves(folder, shift=0):
    from napari_ssdn.io import write_image

    rng = np.random.default_rng(9)
    (folder / "even").mkdir()
    (folder / "odd").mkdir()
    for i in range(2):
        clean = clean_cells(64, seed=20 + i) * 100
        for half, token in (("even", "EVN"), ("odd", "ODD")):
            noisy = np.roll(clean, shift if half == "odd" else 0, axis=1) + rng.normal(0, 20, clean.shape)
            write_image(
                folder / half / f"tomo{i}_{token}.mrc", noisy.astype(np.float32), "YX", {"Y": 2, "X": 2}, "angstrom"
            )


def test_the_command_line_trains_and_denoises_folders_of_halves(tmp_path):
    from napari_ssdn.io import read_image

    _write_halves(tmp_path)
    r = _ssdn("train", "--pair", "even", "odd", "-o", "m.ssdn", *FAST[:-1], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "measured from the halves: std 20" in r.stderr and "learning from the pair: mean" in r.stderr
    r = _ssdn("denoise", "--pair", "even", "odd", "-m", "m.ssdn", "-o", "out/", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["tomo0.mrc", "tomo1.mrc"]
    out = read_image(tmp_path / "out" / "tomo0.mrc")
    assert out.data.shape == (64, 64) and out.voxel["X"] == pytest.approx(2)
    assert "estimated from the halves: PSNR" in r.stderr and "Fourier correlation" in r.stderr
    info = _ssdn("info", "m.ssdn", cwd=tmp_path)
    assert "trained on two observations of each image: mean" in info.stdout


def test_repeated_frames_along_an_axis_are_a_pair(tmp_path):
    from napari_ssdn.io import write_image

    rng = np.random.default_rng(10)
    clean = clean_cells(64, seed=3) * 10
    frames = np.stack([clean + rng.normal(0, 2, clean.shape) for _ in range(4)]).astype(np.float32)
    write_image(tmp_path / "frames.tif", frames, "TYX")
    r = _ssdn("train", "frames.tif", "--frames-axis", "T", "-o", "m.ssdn", *FAST[:-1], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    # Each half averages two frames: std 2 / sqrt(2) per half.
    assert "std 1.4" in r.stderr
    r = _ssdn("train", "frames.tif", "--frames-axis", "C", "-o", "m2.ssdn", *FAST, cwd=tmp_path)
    assert r.returncode == 2 and "--frames-axis C" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_a_shifted_or_unmatched_pair_is_refused_in_one_line(tmp_path):
    _write_halves(tmp_path, shift=3)
    r = _ssdn("train", "--pair", "even", "odd", "-o", "m.ssdn", *FAST, cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "shifted" in r.stderr and "0 x -3" in r.stderr and not (tmp_path / "m.ssdn").exists()
    (tmp_path / "odd" / "tomo1_ODD.mrc").rename(tmp_path / "odd" / "other.mrc")
    r = _ssdn("train", "--pair", "even", "odd", "-o", "m.ssdn", *FAST, cwd=tmp_path)
    assert r.returncode == 2 and "no match" in r.stderr and "tomo1_EVN.mrc" in r.stderr
