"""Training: progress, stop, validation, baselines, the plan's defaults, bad settings."""

import numpy as np
import pytest
import torch
from conftest import psnr

from napari_ssdn.core import SSDNError, TrainConfig, Trainer, denoise, train

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


def test_baselines_mu_only_and_supervised(clean_and_noisy):
    """The paper's baselines train through the same code: mu-only and supervised."""
    clean, noisy, _ = clean_and_noisy
    mu_only = train(noisy, "YX", TrainConfig(mode="mu-only", iterations=5, **FAST))
    assert mu_only.config.arch.outputs == 1 and mu_only.config.arch.blind
    assert mu_only.noise_params_data() == {}  # no noise model to report
    sup = train(noisy, "YX", TrainConfig(mode="supervised", iterations=5, **FAST), targets=clean)
    assert not sup.config.arch.blind
    assert denoise(sup, noisy, "YX").shape == noisy.shape


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
    vol = Trainer(
        np.random.default_rng(0).random((24, 24, 24)).astype(np.float32),
        "ZYX",
        TrainConfig(device="cpu", iterations=1, ndim=3),
    )
    assert vol.model.config.enc == 16 and vol.lr == pytest.approx(1e-3)
    # A GPU (measured on an H200): 8 crops of 128^2; the tiny width where the shipped start
    # fits (gray Gaussian), light where none does (Poisson-Gaussian, from scratch).
    cuda = torch.device("cuda")
    gpu = TrainConfig(noise="gaussian", blind=1)  # as a run resolves the data's auto settings
    assert (
        gpu.patch_for(cuda),
        gpu.batch_for(cuda),
        gpu.patch_for(torch.device("cpu")),
        gpu.batch_for(torch.device("cpu")),
    ) == (128, 8, 64, 4)
    assert TrainConfig(ndim=3).patch_for(cuda) == 24 and TrainConfig(ndim=3).batch_for(cuda) == 1
    assert TrainConfig(patch=32, batch=2).patch_for(cuda) == 32 and TrainConfig(patch=32, batch=2).batch_for(cuda) == 2
    assert gpu.width_for(cuda, start_fits=True) == "tiny" and gpu.width_for(cuda) == "light"
    assert gpu.takes_generic_start(1, 1) and gpu.takes_generic_start(3, 1)
    assert TrainConfig(noise="poisson-gaussian").takes_generic_start(1, 1) and not TrainConfig(
        noise="poisson-gaussian"
    ).takes_generic_start(3, 1)
    assert not TrainConfig(init="none").takes_generic_start(1, 1)
    assert not TrainConfig(noise="impulse").takes_generic_start(3, 1) and TrainConfig(
        noise="impulse", init="generic"
    ).takes_generic_start(3, 1)
    assert not gpu.takes_generic_start(2, 1) and not gpu.takes_generic_start(1, 2)
    assert TrainConfig(noise="gaussian", blind="1,3").takes_generic_start(
        1, 1
    )  # weights fit any region; measured to help at k = 3


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


def test_volume_crops_grow_with_the_blind_region():
    """24-voxel volume crops with a blind region beyond the voxel are nearly all border: the
    prior learned there was biased on whole volumes, so such regions take 48-voxel crops."""
    import torch

    from napari_ssdn.core import TrainConfig

    cpu = torch.device("cpu")
    assert TrainConfig(ndim=3).patch_for(cpu) == 24
    assert TrainConfig(ndim=3, blind=(1, 1, 1)).patch_for(cpu) == 24
    assert TrainConfig(ndim=3, blind="1,2,1").patch_for(cpu) == 48
    assert TrainConfig(ndim=3, blind=(2, 2, 2), patch=16).patch_for(cpu) == 16
    assert TrainConfig(ndim=2, blind=(3, 3)).patch_for(cpu) == 64
