"""Inference: tiles, test-time views, outputs, missing pixels, compiled networks."""

import numpy as np
import pytest
import torch

from napari_ssdn.core import SSDNError, TrainConfig, Trainer, denoise, denoise_iter, load_model, save_model, train
from napari_ssdn.core.nets.receptive import receptive_margin

FAST = dict(width="tiny", patch=32, batch=4, device="cpu", val_every=20)


def test_data_far_from_the_training_range_is_flagged(clean_and_noisy):
    """Denoising data 1000x brighter than the training data warns (it would come back nearly
    unchanged); the training data itself and a 3x dimmer copy do not."""
    import warnings

    from napari_ssdn.core import SSDNWarning, scale_mismatch

    _, noisy, sigma = clean_and_noisy
    model = train(noisy, "YX", TrainConfig(iterations=2, noise_params={"sigma": sigma}, **FAST))
    assert scale_mismatch(model, noisy, "YX") is None
    assert scale_mismatch(model, noisy / 3, "YX") is None
    bright = noisy * 1000
    message = scale_mismatch(model, bright, "YX")
    assert message and "far from those the model was trained on" in message and "train a model on this data" in message
    with pytest.warns(SSDNWarning, match="far from"):
        out = denoise(model, bright, "YX", tta=False)
    assert np.abs(out - bright).mean() < 0.05 * sigma * 1000  # what the warning is about: almost the input
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        denoise(model, noisy, "YX", tta=False)  # no warning on the training data


def test_tiled_inference_equals_whole_image(clean_and_noisy):
    """Tiles overlapping by the receptive field reproduce the whole-image pass."""
    rng = np.random.default_rng(0)
    noisy = rng.random((224, 200)).astype(np.float32)
    model = train(noisy, "YX", TrainConfig(iterations=2, **FAST))
    whole = denoise(model, noisy, "YX", mixed_precision=False, tta=False)
    steps = list(denoise_iter(model, noisy, "YX", tile=32, mixed_precision=False, tta=False))
    tiled = denoise(model, noisy, "YX", tile=32, mixed_precision=False, tta=False)
    assert steps[-1].total == 7 * 7 and steps[-1].done == 7 * 7
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    # A tile below 16 (mostly margin, a whole window each) is raised to 16.
    small = list(denoise_iter(model, noisy, "YX", tile=1, mixed_precision=False, tta=False))
    assert small[-1].tile == 16 and small[-1].total == 14 * 13
    # Mixed precision (bfloat16 network where the hardware has it) stays close.
    fast = denoise(model, noisy, "YX", tile=32, tta=False)
    assert np.abs(fast - whole).mean() < 5e-3 * float(np.abs(whole).max())
    assert receptive_margin(model.config.arch) > 0
    # Test-time averaging over the 8 views of each tile: tiles still give the whole image.
    part = noisy[:128, :112]
    whole8 = denoise(model, part, "YX", ("posterior-mean", "posterior-std"), tta=True, mixed_precision=False)
    tiled8 = denoise(model, part, "YX", ("posterior-mean", "posterior-std"), tta=True, tile=64, mixed_precision=False)
    for kind in whole8:
        np.testing.assert_allclose(tiled8[kind], whole8[kind], atol=1e-5)


def test_tiles_split_the_image_evenly():
    """Each window costs its full side (kept part plus margins), so an image a little wider
    than four tiles is cut in five equal tiles rather than four full ones and a thin strip."""
    side = 264  # 4 x 64 + 8
    noisy = np.random.default_rng(1).random((side, side)).astype(np.float32)
    model = train(noisy, "YX", TrainConfig(iterations=1, **FAST))
    steps = list(denoise_iter(model, noisy, "YX", tile=64, mixed_precision=False, tta=False))
    kept = steps[-1].tile
    assert steps[-1].total == 5 * 5
    assert kept * 5 >= side and (kept - model.multiple) * 5 < side  # the smallest side that does it
    tiled = denoise(model, noisy, "YX", tile=64, mixed_precision=False, tta=False)
    np.testing.assert_allclose(tiled, denoise(model, noisy, "YX", mixed_precision=False, tta=False), atol=1e-5)


def _views(a):
    """The 8 symmetries of a square image and the map that undoes each."""
    out = []
    for flip in (False, True):
        for k in range(4):
            v = np.rot90(a[:, ::-1] if flip else a, k)
            out.append((v, lambda r, k=k, flip=flip: (lambda u: u[:, ::-1] if flip else u)(np.rot90(r, -k))))
    return out


def test_test_time_averaging_is_the_mean_of_the_eight_views():
    """tta=True equals denoising each flip/rotation of the image in one pass, mapping it
    back and averaging; the result is then equivariant, which a single pass is not; small
    2D images get it by default."""
    rng = np.random.default_rng(2)
    noisy = rng.normal(0.5, 0.1, (64, 64)).astype(np.float32)
    model = train(noisy, "YX", TrainConfig(iterations=20, **FAST))
    kw = dict(mixed_precision=False)
    kinds = ("prior-mean", "posterior-mean", "posterior-std")
    tta = denoise(model, noisy, "YX", kinds, tta=True, **kw)
    views = [(back, denoise(model, np.ascontiguousarray(v), "YX", kinds, tta=False, **kw)) for v, back in _views(noisy)]
    for kind in ("prior-mean", "posterior-mean"):
        np.testing.assert_allclose(tta[kind], np.mean([back(r[kind]) for back, r in views], axis=0), atol=1e-5)
    np.testing.assert_allclose(
        tta["posterior-std"], np.sqrt(np.mean([back(r["posterior-std"]) ** 2 for back, r in views], axis=0)), atol=1e-5
    )
    rotated = np.ascontiguousarray(np.rot90(noisy))
    np.testing.assert_allclose(
        denoise(model, rotated, "YX", tta=True, **kw), np.rot90(tta["posterior-mean"]), atol=1e-5
    )
    single = denoise(model, noisy, "YX", tta=False, **kw)
    assert np.abs(denoise(model, rotated, "YX", tta=False, **kw) - np.rot90(single)).max() > 1e-4
    np.testing.assert_array_equal(denoise(model, noisy, "YX", **kw), tta["posterior-mean"])


def test_axes_stack_and_channels():
    """Stacks are denoised slice by slice with shape kept; a channel mismatch is refused."""
    rng = np.random.default_rng(0)
    stack = rng.random((3, 40, 56)).astype(np.float32)
    model = train(stack, "ZYX", TrainConfig(iterations=2, **FAST))
    out = denoise(model, stack, "ZYX")
    assert out.shape == stack.shape
    std = denoise(model, stack, "ZYX", "posterior-std")
    assert np.all(std >= 0) and np.all(np.isfinite(std))
    res = denoise(model, stack, "ZYX", "residual")
    np.testing.assert_allclose(res, stack - out, atol=1e-5)
    rgb = rng.random((40, 40, 3)).astype(np.float32)
    with pytest.raises(SSDNError, match="channel"):
        denoise(model, rgb, "YXC")
    model3 = train(rgb, "YXC", TrainConfig(iterations=2, **FAST))
    assert denoise(model3, rgb, "YXC").shape == rgb.shape


def test_known_noise_level_at_inference_follows_the_closed_form(clean_and_noisy):
    """noise_params= replaces the learned sigma in the posterior: the result is the
    closed form (y sx^2 + mu sn^2) / (sx^2 + sn^2) with the prior of the same pass."""
    clean, noisy, sigma = clean_and_noisy
    model = train(noisy, "YX", TrainConfig(iterations=30, **FAST))
    learned = model.noise_params_data()["sigma"]
    kw = dict(mixed_precision=False, tta=False)  # one pass: the closed form holds per pass
    base = denoise(model, noisy, "YX", ("prior-mean", "posterior-std"), **kw)
    mu = base["prior-mean"].astype(np.float64)
    pv = base["posterior-std"].astype(np.float64) ** 2
    sx2 = pv * learned**2 / (learned**2 - pv)  # from 1/pv = 1/sx2 + 1/sn2
    for given in (0.5 * sigma, 2.0 * sigma):
        got = denoise(model, noisy, "YX", noise_params={"sigma": given}, **kw)
        want = (noisy * sx2 + mu * given**2) / (sx2 + given**2)
        np.testing.assert_allclose(got, want, atol=2e-4)
    far_from_learned = denoise(model, noisy, "YX", noise_params={"sigma": 3.0 * sigma}, **kw)
    assert np.abs(far_from_learned - denoise(model, noisy, "YX", **kw)).max() > 1e-3
    with pytest.raises(SSDNError, match="lam"):
        denoise(model, noisy, "YX", noise_params={"lam": 3.0})
    with pytest.raises(SSDNError, match="sigma"):
        denoise(model, noisy, "YX", noise_params={"sigma": -1.0})


def test_subsampled_model_sees_only_its_own_phase(tmp_path):
    """subsample=2: the network works on the four interleaved sub-images, so the prior at a
    pixel ignores that pixel, its 8 neighbours and every pixel an odd step away, and still
    depends on pixels two steps away; any image size comes back whole; the factor is
    saved with the model and resuming with another one is refused."""
    rng = np.random.default_rng(4)
    img = rng.normal(0.5, 0.1, (61, 70)).astype(np.float32)
    trainer = Trainer(img, "YX", TrainConfig(subsample=2, iterations=3, **FAST))
    for _ in trainer.run():
        pass
    model = trainer.model
    assert model.config.subsample == 2
    kw = dict(output="prior-mean", mixed_precision=False, tta=False)
    base = denoise(model, img, "YX", **kw)
    assert base.shape == img.shape and np.isfinite(base).all()
    for py, px in [(30, 35), (0, 0), (60, 69), (1, 68)]:
        moved = img.copy()
        moved[py, px] += 5.0
        diff = np.abs(denoise(model, moved, "YX", **kw) - base)
        dy, dx = np.mgrid[0:61, 0:70]
        odd = ((dy - py) % 2 == 1) | ((dx - px) % 2 == 1)
        assert diff[py, px] == 0 and diff[odd].max() == 0
        near = (abs(dy - py) <= 4) & (abs(dx - px) <= 4) & ~odd & ((dy != py) | (dx != px))
        assert diff[near].max() > 0
    save_model(model, tmp_path / "m.ssdn")
    loaded, info = load_model(tmp_path / "m.ssdn")
    assert loaded.config.subsample == 2
    np.testing.assert_array_equal(denoise(loaded, img, "YX", **kw), base)
    with pytest.raises(SSDNError, match="subsample"):
        Trainer(img, "YX", TrainConfig(subsample=1, iterations=1, **FAST), resume=loaded, resume_info=info)
    resumed = Trainer(img, "YX", TrainConfig(iterations=1, **FAST), resume=loaded, resume_info=info)
    assert resumed.model.config.subsample == 2


def test_all_nan_input_is_refused():
    with pytest.raises(SSDNError, match="no finite values"):
        Trainer(np.full((32, 32), np.nan, np.float32), "YX", TrainConfig(**FAST))
    model = Trainer(
        np.random.default_rng(0).random((32, 32), np.float32), "YX", TrainConfig(iterations=1, **FAST)
    ).model
    with pytest.raises(SSDNError, match="no finite values"):
        denoise(model, np.full((32, 32), np.nan, np.float32), "YX")


@pytest.mark.parametrize("subsample", [1, 2])
def test_missing_pixels_stay_missing(clean_and_noisy, subsample):
    """NaN pixels of the input come out NaN in every output, and every other pixel is
    finite: inference makes up no value where nothing was measured."""
    _, noisy, sigma = clean_and_noisy
    model = Trainer(
        noisy, "YX", TrainConfig(iterations=1, subsample=subsample, noise_params={"sigma": sigma}, **FAST)
    ).model
    holed = noisy.copy()
    holed[10:20, 5:9] = np.nan
    holed[40, 50] = np.inf
    missing = ~np.isfinite(holed)
    kinds = ("posterior-mean", "prior-mean", "posterior-std", "residual")
    out = denoise(model, holed, "YX", kinds)
    for kind in kinds:
        assert np.array_equal(np.isnan(out[kind]), missing), kind


def test_compiled_network_denoises_like_the_plain_network(clean_and_noisy, tmp_path):
    """compile_network=True (torch.compile) gives the plain network's result, with and
    without the 8-view averaging; the model file is unchanged by it."""
    _, noisy, _ = clean_and_noisy
    model = train(noisy, "YX", TrainConfig(**{**FAST, "iterations": 3}))
    # float32: bfloat16 rounding (the default on CPUs with native bfloat16) would differ
    # between any two orders of summation by more than a compiler bug needs to show.
    kw = dict(device="cpu", mixed_precision=False)
    plain = denoise(model, noisy, "YX", ("posterior-mean", "prior-mean"), **kw)
    fast = denoise(model, noisy, "YX", ("posterior-mean", "prior-mean"), compile_network=True, **kw)
    from napari_ssdn.core.infer.denoise import compiled

    assert compiled(model).net.unet.compiled  # no fallback to the plain network happened
    assert not model.net.unet.compiled  # the caller's model is left as it was
    for kind in plain:
        np.testing.assert_allclose(fast[kind], plain[kind], atol=1e-4)
    save_model(model, tmp_path / "m.ssdn")
    loaded, _ = load_model(tmp_path / "m.ssdn")
    assert set(loaded.state_dict()) == set(model.state_dict())
    np.testing.assert_array_equal(denoise(loaded, noisy, "YX", **kw), plain["posterior-mean"])


def test_compile_failure_falls_back_to_the_plain_network(clean_and_noisy, monkeypatch):
    """Where torch.compile cannot work (no C++ compiler), a warning, and the same result."""
    _, noisy, _ = clean_and_noisy
    model = train(noisy, "YX", TrainConfig(**{**FAST, "iterations": 2}))
    plain = denoise(model, noisy, "YX", device="cpu", tta=False)

    def no_compiler(fn, **kwargs):
        def run(*args, **kw):
            raise RuntimeError("no C++ compiler found")

        return run

    monkeypatch.setattr(torch, "compile", no_compiler)
    with pytest.warns(UserWarning, match="torch.compile failed.*no C\\+\\+ compiler"):
        out = denoise(model, noisy, "YX", device="cpu", tta=False, compile_network=True)
    from napari_ssdn.core.infer.denoise import compiled

    assert not model.net.unet.compiled and not compiled(model).net.unet.compiled
    np.testing.assert_array_equal(out, plain)


def test_compile_is_refused_for_volume_models():
    vol = np.random.default_rng(0).random((16, 32, 32)).astype(np.float32)
    model = train(vol, "ZYX", TrainConfig(ndim=3, width="tiny", patch=16, batch=1, iterations=1, device="cpu"))
    with pytest.raises(SSDNError, match="compile_network=True is for 2D models"):
        denoise(model, vol, "ZYX", device="cpu", compile_network=True)
