"""Training and inference through the public Python API."""

import numpy as np
import pytest
import torch

from conftest import psnr
from napari_ssdn.core import SSDNError, Trainer, TrainConfig, denoise, denoise_iter, load_model, save_model, train
from napari_ssdn.core.receptive import receptive_margin
from napari_ssdn.core.warmstart import generic_start

FAST = dict(width="tiny", patch=32, batch=4, device="cpu", val_every=20)


def test_short_training_denoises_and_posterior_beats_prior(clean_and_noisy):
    """A short training improves PSNR over the noisy input; the posterior mean beats the prior
    mean, from random weights and from the default start (the shipped generic network),
    which ends ahead of random weights after the same steps."""
    clean, noisy, sigma = clean_and_noisy
    results = {}
    for init, margin in (("none", 0.5), ("auto", 0.3)):
        model = train(noisy, "YX", TrainConfig(iterations=250, noise_params={"sigma": sigma}, init=init, **FAST))
        post = denoise(model, noisy, "YX")
        prior = denoise(model, noisy, "YX", "prior-mean")
        assert post.shape == noisy.shape and post.dtype == np.float32
        assert psnr(post, clean) > psnr(noisy, clean) + 4
        assert psnr(post, clean) > psnr(prior, clean) + margin, init
        results[init] = psnr(post, clean)
    assert results["auto"] > results["none"] + 0.3


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


def test_learned_sigma_lands_near_the_truth(clean_and_noisy):
    """The learned Gaussian sigma (data units) ends within 10 % of the true value."""
    clean, noisy, sigma = clean_and_noisy
    scale = 255.0  # data in other units than [0, 1]: the parameter is reported in them
    trainer = Trainer(noisy * scale, "YX", TrainConfig(iterations=150, **FAST))
    for rec in trainer.run():
        pass
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
    for rec in trainer.run():
        pass
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


def test_progress_records_and_stop_request(clean_and_noisy):
    """Training yields records with losses and ETA; a stop request ends it within one step."""
    _, noisy, _ = clean_and_noisy
    trainer = Trainer(noisy, "YX", TrainConfig(iterations=1000, **FAST))
    records = []
    for rec in trainer.run():
        records.append(rec)
        if rec.step == 5:
            trainer.request_stop()
    assert records[-1].step == 5
    assert records[0].val_loss is not None and np.isfinite(records[0].val_loss)
    assert all(np.isfinite(r.loss) for r in records)
    assert records[2].total == 1000 and records[2].eta > 0
    assert set(records[-1].noise_params) == {"sigma"}


def test_validation_crop_is_fixed(clean_and_noisy):
    """The validation loss of an unchanged model is the same whenever it is measured."""
    _, noisy, _ = clean_and_noisy
    trainer = Trainer(noisy, "YX", TrainConfig(iterations=3, seed=1, **FAST))
    v1 = trainer.validate()
    trainer.sampler.sample(4)  # training randomness must not move the validation crop
    assert trainer.validate() == v1


def test_save_load_and_resume(tmp_path, clean_and_noisy):
    """A saved model reloads identically and training resumes from its steps and optimizer."""
    _, noisy, _ = clean_and_noisy
    trainer = Trainer(noisy, "YX", TrainConfig(iterations=10, **FAST))
    for _ in trainer.run():
        pass
    path = tmp_path / "m.ssdn"
    trainer.save(path)
    model, info = load_model(path)
    assert info["training"]["steps"] == 10
    assert info["optimizer"] is not None
    a = denoise(trainer.model, noisy, "YX")
    b = denoise(model, noisy, "YX")
    np.testing.assert_array_equal(a, b)
    resumed = Trainer(noisy, "YX", TrainConfig(iterations=5, **FAST), resume=model, resume_info=info)
    for _ in resumed.run():
        pass
    assert resumed.train_state()["steps"] == 15
    # The default start was the shipped network: the resumed run stays a fine-tune.
    assert resumed.train_state()["init"] == "generic" and resumed.lr == trainer.lr == pytest.approx(3e-4)
    assert not torch.equal(next(resumed.model.parameters()), next(trainer.model.parameters()))


def test_model_file_is_not_unpickled(tmp_path, clean_and_noisy):
    """Loading refuses files that hold arbitrary Python objects."""
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "evil.ssdn"
    torch.save({"meta": "{}", "state": {}, "x": Evil()}, bad)
    with pytest.raises(SSDNError, match="not a readable napari-ssdn model"):
        load_model(bad)
    (tmp_path / "junk.ssdn").write_bytes(pickle.dumps([1, 2]) + b"garbage")
    with pytest.raises(SSDNError):
        load_model(tmp_path / "junk.ssdn")


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
    np.testing.assert_allclose(tta["posterior-std"], np.sqrt(np.mean([back(r["posterior-std"]) ** 2 for back, r in views], axis=0)), atol=1e-5)
    rotated = np.ascontiguousarray(np.rot90(noisy))
    np.testing.assert_allclose(denoise(model, rotated, "YX", tta=True, **kw), np.rot90(tta["posterior-mean"]), atol=1e-5)
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


def test_baselines_mu_only_and_supervised(clean_and_noisy):
    """The paper's baselines train through the same code: mu-only and supervised."""
    clean, noisy, _ = clean_and_noisy
    mu_only = train(noisy, "YX", TrainConfig(mode="mu-only", iterations=5, **FAST))
    assert mu_only.config.arch.outputs == 1 and mu_only.config.arch.blind
    assert mu_only.noise_params_data() == {}  # no noise model to report
    sup = train(noisy, "YX", TrainConfig(mode="supervised", iterations=5, **FAST), targets=clean)
    assert not sup.config.arch.blind
    assert denoise(sup, noisy, "YX").shape == noisy.shape


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


def test_defaults_follow_the_device():
    """Without width and lr, a CPU gets the tiny network, fine-tuned from the shipped start
    at 3e-4 (1e-3 from 1.5 megapixels of data up) or trained from scratch at 2e-3 (the best
    per CPU minute measured); a given width keeps the paper-like 1e-3; volumes keep 1e-3."""
    img = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    cpu = Trainer(img, "YX", TrainConfig(device="cpu", iterations=1))
    assert cpu.model.config.enc == 16 and cpu.lr == pytest.approx(3e-4)
    assert cpu.train_state()["lr"] == pytest.approx(3e-4)
    # 24 slices of 256 x 256: 1.57 megapixels, too varied to memorise at the faster rate.
    stack = np.random.default_rng(1).random((24, 256, 256)).astype(np.float32)
    large = Trainer(stack, "SYX", TrainConfig(device="cpu", iterations=1))
    assert large.train_state()["init"] == "generic" and large.lr == pytest.approx(1e-3)
    assert Trainer(stack[:20], "SYX", TrainConfig(device="cpu", iterations=1)).lr == pytest.approx(3e-4)
    scratch = Trainer(img, "YX", TrainConfig(device="cpu", iterations=1, init="none"))
    assert scratch.lr == pytest.approx(2e-3)
    light = Trainer(img, "YX", TrainConfig(device="cpu", iterations=1, width="light"))
    assert light.model.config.enc == 32 and light.lr == pytest.approx(1e-3)
    given = Trainer(img, "YX", TrainConfig(device="cpu", iterations=1, lr=5e-4))
    assert given.lr == pytest.approx(5e-4)
    vol = Trainer(np.random.default_rng(0).random((24, 24, 24)).astype(np.float32), "ZYX", TrainConfig(device="cpu", iterations=1, ndim=3))
    assert vol.model.config.enc == 16 and vol.lr == pytest.approx(1e-3)
    # A GPU (measured on an H200): 8 crops of 128^2; the tiny width where the shipped start
    # fits (gray Gaussian), light where none does (Poisson-Gaussian, from scratch).
    cuda = torch.device("cuda")
    gpu = TrainConfig(noise="gaussian", blind=1)  # as a run resolves the data's auto settings
    assert (gpu.patch_for(cuda), gpu.batch_for(cuda), gpu.patch_for(torch.device("cpu")), gpu.batch_for(torch.device("cpu"))) == (128, 8, 64, 4)
    assert TrainConfig(ndim=3).patch_for(cuda) == 24 and TrainConfig(ndim=3).batch_for(cuda) == 1
    assert TrainConfig(patch=32, batch=2).patch_for(cuda) == 32 and TrainConfig(patch=32, batch=2).batch_for(cuda) == 2
    assert gpu.width_for(cuda, start_fits=True) == "tiny" and gpu.width_for(cuda) == "light"
    assert gpu.takes_generic_start(1, 1) and gpu.takes_generic_start(3, 1)
    assert not TrainConfig(noise="poisson-gaussian").takes_generic_start(1, 1)
    assert not TrainConfig(init="none").takes_generic_start(1, 1)
    assert not TrainConfig(noise="impulse").takes_generic_start(3, 1) and TrainConfig(noise="impulse", init="generic").takes_generic_start(3, 1)
    assert not gpu.takes_generic_start(2, 1) and not gpu.takes_generic_start(1, 2)
    assert TrainConfig(noise="gaussian", blind="1,3").takes_generic_start(1, 1)  # weights fit any region; measured to help at k = 3

@pytest.mark.parametrize("channels", [1, 3])
def test_prior_variance_starts_at_a_fraction_of_the_noise(channels):
    """Before training, Sigma_x = (s * sigma)^2 I at every pixel (s = Tuning.prior_std_start), so
    no pixel starts at the zero-variance saddle of Sigma_x = U U^T; the posterior std is
    then sigma * s / sqrt(1 + s^2) everywhere, borders included. (From random weights: a
    warm start brings its own variances.)"""
    from napari_ssdn.core import Tuning

    s = Tuning().prior_std_start
    assert 0 < s < 1
    rng = np.random.default_rng(0)
    img = rng.random((64, 64, channels)).astype(np.float32) * 200
    sigma = 7.0
    trainer = Trainer(img, "YXC", TrainConfig(device="cpu", iterations=1, noise_params={"sigma": sigma}, init="none"))
    # float32: the closed form is checked to 1e-4, finer than bfloat16's 8 bits (the
    # default on CPUs with native bfloat16).
    std = denoise(trainer.model, img, "YXC", ("posterior-std",), mixed_precision=False)["posterior-std"]
    assert std.shape == img.shape
    np.testing.assert_allclose(std, sigma * s / np.sqrt(1 + s * s), rtol=1e-4)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(noise_params={"sigma": -1.0}), "sigma"),
        (dict(noise_params={"sigma": 0.0}), "sigma"),
        (dict(noise="gaussian", noise_params={"lam": 3.0}), "lam"),
        (dict(noise_params={"lam": 3.0, "sigma": 1.0}), "one noise model"),
        (dict(blind="2,x"), "blind"),
        (dict(blind=(1, 2, 3)), "blind"),
        (dict(noise="speckle"), "speckle"),
        (dict(width="huge"), "huge"),
        (dict(iterations=0), "iterations"),
        (dict(subsample=0), "subsample"),
        (dict(subsample=5), "subsample"),
        (dict(subsample=2, ndim=3), "subsample"),
    ],
)
def test_bad_config_is_named(kwargs, match):
    """Invalid settings raise SSDNError naming the field and value."""
    with pytest.raises(SSDNError, match=match):
        Trainer(np.zeros((32, 32), np.float32) + np.arange(32), "YX", TrainConfig(**{**FAST, **kwargs}))


@pytest.mark.parametrize(
    "shape, axes, kwargs, match",
    [
        ((256, 1), "YX", {}, "1 pixel along X but this network needs at least 8; give larger images$"),
        ((1, 256), "YX", {}, "1 pixel along Y"),
        ((1, 1), "YX", {}, "along Y"),
        ((64, 64), "YX", dict(patch=3), "patch=3 is smaller than the 8 pixels"),
        ((64, 64), "YX", dict(width="light", init="none"), "along Y.*or use the tiny width preset"),
        ((64, 10), "YX", dict(subsample=2), "10 pixels \\(5 per sub-image of subsample=2\\).*smaller subsample than 2"),
        ((3, 64, 64), "ZYX", dict(ndim=3), "3 slices but a 3D network needs at least 4; train a 2D network"),
    ],
)
def test_data_smaller_than_the_network_is_named(shape, axes, kwargs, match):
    """Images (or a patch) smaller than the network's smallest input are refused before the
    noise estimate, with the size, what the network needs and what to change."""
    rng = np.random.default_rng(0)
    img = rng.random(shape, np.float32)
    if kwargs.get("width") == "light":
        img = rng.random((6, 64), np.float32)
    with pytest.raises(SSDNError, match=match):
        Trainer(img, axes, TrainConfig(**{**FAST, **kwargs}))


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
    model = Trainer(np.random.default_rng(0).random((32, 32), np.float32), "YX", TrainConfig(iterations=1, **FAST)).model
    with pytest.raises(SSDNError, match="no finite values"):
        denoise(model, np.full((32, 32), np.nan, np.float32), "YX")


@pytest.mark.parametrize("subsample", [1, 2])
def test_missing_pixels_stay_missing(clean_and_noisy, subsample):
    """NaN pixels of the input come out NaN in every output, and every other pixel is
    finite: inference makes up no value where nothing was measured."""
    _, noisy, sigma = clean_and_noisy
    model = Trainer(noisy, "YX", TrainConfig(iterations=1, subsample=subsample, noise_params={"sigma": sigma}, **FAST)).model
    holed = noisy.copy()
    holed[10:20, 5:9] = np.nan
    holed[40, 50] = np.inf
    missing = ~np.isfinite(holed)
    kinds = ("posterior-mean", "prior-mean", "posterior-std", "residual")
    out = denoise(model, holed, "YX", kinds)
    for kind in kinds:
        assert np.array_equal(np.isnan(out[kind]), missing), kind


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_training_and_inference_match_cpu(clean_and_noisy):
    """On a GPU, mixed-precision training runs and inference agrees with the CPU: float32
    by default (TF32 convolutions: to 1e-3), bfloat16 on request (far below the noise)."""
    _, noisy, sigma = clean_and_noisy
    model = train(noisy, "YX", TrainConfig(**{**FAST, "device": "cuda", "iterations": 20}))
    cpu = denoise(model, noisy, "YX", device="cpu", mixed_precision=False)
    gpu = denoise(model, noisy, "YX", device="cuda")
    half = denoise(model, noisy, "YX", device="cuda", mixed_precision=True)
    print("GPU float32 vs CPU: max", np.abs(gpu - cpu).max(), "mean", np.abs(gpu - cpu).mean())
    print("GPU bfloat16 vs CPU: max", np.abs(half - cpu).max(), "mean", np.abs(half - cpu).mean())
    assert np.abs(gpu - cpu).mean() < 1e-4 and np.abs(gpu - cpu).max() < 1e-3
    assert np.abs(half - cpu).mean() < sigma / 20 and np.abs(half - gpu).mean() > np.abs(gpu - cpu).mean()


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
    # Poisson-Gaussian (real microscopes) was measured worse from the start: random weights.
    camera = Trainer(noisy + 0.5, "YX", TrainConfig(iterations=1, noise="poisson-gaussian", **FAST))
    assert camera.train_state()["init"] is None
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
    assert Trainer(noisy, "YXC", TrainConfig(iterations=1, noise="impulse", init="generic", **FAST)).train_state()["init"] == "generic"
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


@pytest.mark.parametrize("sigma", [1.0, 2.0, 20.0])
def test_noise_estimate_on_integer_data(sigma):
    """Integer data with noise of a grey level or two (int8 tomograms): the starting
    estimate is not fooled by details that are mostly exactly zero."""
    rng = np.random.default_rng(0)
    img = np.round(40 + 10 * np.sin(np.arange(128) / 9)[None, :] + sigma * rng.standard_normal((128, 128))).astype(np.int16)
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
    noisy = [(c + s * rng.standard_normal(c.shape)).astype(np.float32) for c, s in zip(clean, sigmas)]
    model = train(noisy, "YX", TrainConfig(iterations=200, per_image=True, lr=2e-3, **FAST))
    assert model.estimator is not None
    for c, y, s in zip(clean, noisy, sigmas):
        t = torch.from_numpy((y - model.config.offset) / model.config.scale)[None, None]
        assert model.noise_params_data(t)["sigma"] == pytest.approx(s, rel=0.25)
        learned = denoise(model, y, "YX")
        known = denoise(model, y, "YX", noise_params={"sigma": s})
        assert psnr(learned, c) > psnr(y, c) + 2
        assert psnr(learned, c) > psnr(known, c) - 0.3


def test_a_step_with_non_finite_gradients_is_skipped(clean_and_noisy):
    """A NaN gradient anywhere skips that step (weights untouched, counted in ``skipped``);
    the next finite steps train as usual."""
    _, noisy, _ = clean_and_noisy
    trainer = Trainer(noisy, "YX", TrainConfig(**{**FAST, "iterations": 3, "init": "none"}))
    param = list(trainer.model.net.parameters())[-1]
    calls = []

    def poison_first(grad):
        calls.append(1)
        return torch.full_like(grad, float("nan")) if len(calls) == 1 else grad

    param.register_hook(poison_first)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    run = trainer.run()
    first = next(run)
    assert first.skipped == 1
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    rest = list(run)
    assert rest[-1].skipped == 1 and rest[-1].step == 3
    assert any(not torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())


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
    from napari_ssdn.core.infer import compiled

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
    from napari_ssdn.core.infer import compiled

    assert not model.net.unet.compiled and not compiled(model).net.unet.compiled
    np.testing.assert_array_equal(out, plain)


def test_compile_is_refused_for_volume_models():
    vol = np.random.default_rng(0).random((16, 32, 32)).astype(np.float32)
    model = train(vol, "ZYX", TrainConfig(ndim=3, width="tiny", patch=16, batch=1, iterations=1, device="cpu"))
    with pytest.raises(SSDNError, match="compile_network=True is for 2D models"):
        denoise(model, vol, "ZYX", device="cpu", compile_network=True)
