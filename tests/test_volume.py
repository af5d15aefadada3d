"""Volumes: 3D training, tiled 3D inference, streamed output files, the --3d command line."""

import json
import subprocess
import sys

import mrcfile
import numpy as np
import pytest

from napari_ssdn.core import (
    ModelConfig,
    SSDNError,
    SSDNModel,
    TrainConfig,
    Trainer,
    denoise,
    denoise_iter,
    load_model,
    save_model,
)
from napari_ssdn.io import open_output, read_image
from napari_ssdn.samples import noisy_volume, psnr

SIGMA = 0.1


@pytest.fixture(scope="module")
def volume():
    return noisy_volume((24, 48, 48), sigma=SIGMA, seed=1)


@pytest.fixture(scope="module")
def trained(volume):
    noisy, _ = volume
    trainer = Trainer(
        noisy, "ZYX", TrainConfig(ndim=3, width="tiny", iterations=80, batch=2, patch=24, lr=2e-3, device="cpu")
    )
    for _ in trainer.run():
        pass
    return trainer


def test_volume_training_denoises_and_learns_sigma(volume, trained):
    """A short 3D training beats the noisy input, the posterior beats the prior mean and
    the learned sigma is near the truth."""
    noisy, clean = volume
    model = trained.model
    assert model.config.ndim == 3
    out = denoise(model, noisy, "ZYX", output=("posterior-mean", "prior-mean"))
    assert out["posterior-mean"].shape == noisy.shape and out["posterior-mean"].dtype == np.float32
    p_noisy, p_prior, p_post = psnr(noisy, clean), psnr(out["prior-mean"], clean), psnr(out["posterior-mean"], clean)
    assert p_post > p_noisy + 3, (p_noisy, p_prior, p_post)
    assert p_post > p_prior, (p_prior, p_post)
    sigma = model.noise_params_data()["sigma"]
    assert abs(sigma - SIGMA) / SIGMA < 0.15, sigma


def test_tiled_volume_equals_whole_volume():
    """Blocks with per-branch windows give exactly the whole-volume result (a small
    random network, so that the volume is several receptive fields across)."""
    rng = np.random.default_rng(0)
    noisy = rng.normal(0.5, 0.1, (20, 72, 56)).astype(np.float32)
    import torch

    torch.manual_seed(0)
    model = SSDNModel(ModelConfig(enc=4, dec=6, depth=2, ndim=3, flat=1, noise_init={"sigma": 0.1}))
    kinds = ("posterior-mean", "posterior-std")
    whole = denoise(model, noisy, "ZYX", output=kinds, mixed_precision=False)
    tiled = denoise(model, noisy, "ZYX", output=kinds, tile=16, mixed_precision=False)
    for kind in whole:
        np.testing.assert_allclose(tiled[kind], whole[kind], atol=1e-4 * float(np.abs(whole[kind]).max()))
    with pytest.raises(SSDNError, match="tta"):
        denoise(model, noisy, "ZYX", tta=True)
    # A tiny block side is raised to 16: blocks of 3 would be nearly all margin (200x slower).
    blocks = lambda t: list(denoise_iter(model, noisy, "ZYX", tile=t, mixed_precision=False))[-1].total  # noqa: E731
    assert blocks(3) == blocks(16) > 1
    fast = denoise(model, noisy, "ZYX", tile=16)
    assert np.abs(fast - whole["posterior-mean"]).mean() < 2e-3
    # Time axis in front: each volume of a TZYX series on its own.
    series = np.stack([noisy, noisy[::-1]])
    both = denoise(model, series, "TZYX", mixed_precision=False)
    np.testing.assert_allclose(both[0], whole["posterior-mean"], atol=1e-4)


def test_volume_output_streams_into_a_memory_mapped_file(tmp_path, volume, trained):
    noisy, _ = volume
    path = tmp_path / "out.mrc"
    with open_output(path, noisy.shape, "ZYX", {"Z": 2.0, "Y": 1.0, "X": 1.0}, "angstrom") as out:
        assert isinstance(out, np.memmap)
        assert not path.exists()  # appears only when complete
        denoise(trained.model, noisy, "ZYX", out=out, tile=16, mixed_precision=False)
    ref = denoise(trained.model, noisy, "ZYX", mixed_precision=False)
    with mrcfile.open(path) as m:
        np.testing.assert_allclose(m.data, ref, atol=1e-4)
        assert tuple(float(v) for v in m.voxel_size.tolist()) == (1.0, 1.0, 2.0)
        assert m.header.dmax == pytest.approx(float(ref.max()), rel=1e-5)


def test_failed_streamed_output_leaves_no_file(tmp_path):
    path = tmp_path / "out.tif"
    with pytest.raises(RuntimeError):
        with open_output(path, (4, 8, 8), "ZYX") as out:
            out[0] = 1
            raise RuntimeError("stopped")
    assert not path.exists() and not list(tmp_path.iterdir())


def test_volume_model_round_trip_and_wrong_inputs(tmp_path, volume, trained):
    noisy, _ = volume
    path = tmp_path / "m.ssdn"
    save_model(trained.model, path)
    model, _ = load_model(path)
    assert model.config.ndim == 3
    np.testing.assert_array_equal(denoise(model, noisy, "ZYX"), denoise(trained.model, noisy, "ZYX"))
    with pytest.raises(SSDNError, match="Z axis"):
        denoise(model, noisy[0], "YX")
    with pytest.raises(SSDNError, match="ndim=2"):
        Trainer(noisy, "ZYX", TrainConfig(ndim=2, iterations=1, width="tiny"), resume=model)


def test_anisotropic_voxels_pool_in_plane_first(volume):
    noisy, _ = volume
    trainer = Trainer(noisy, "ZYX", TrainConfig(ndim=3, width="tiny", iterations=1, anisotropy=2.2, patch=16))
    assert trainer.model.config.flat == 1
    assert trainer.model.config.depth == 2  # one level less than the 2D preset
    assert trainer.model.config.arch.multiples == (2, 4, 4)
    with pytest.raises(SSDNError, match="anisotropy"):
        TrainConfig(ndim=3, anisotropy=-1.0).validate()


def ssdn(*args):
    return subprocess.run(
        [sys.executable, "-m", "napari_ssdn.cli", *map(str, args)], capture_output=True, text=True, timeout=300
    )


def test_cli_3d_train_and_denoise_mrc(tmp_path, volume):
    """--3d on an MRC volume with coarse z: the model is 3D with in-plane pooling first;
    denoise takes the dimensionality from the model and keeps shape and voxel size."""
    noisy, _ = volume
    src = tmp_path / "tomo.mrc"
    with mrcfile.new(src) as m:
        m.set_data(noisy)
        m.voxel_size = (5.0, 5.0, 10.0)
    model = tmp_path / "m.ssdn"
    r = ssdn(
        "train",
        src,
        "-o",
        model,
        "--3d",
        "--width",
        "tiny",
        "--iterations",
        "3",
        "--batch",
        "1",
        "--patch",
        "16",
        "--quiet",
    )
    assert r.returncode == 0, r.stderr
    info = json.loads(ssdn("info", model, "--json").stdout)
    assert info["architecture"]["ndim"] == 3 and info["architecture"]["z_flat_levels"] == 1
    out = tmp_path / "den.mrc"
    r = ssdn("denoise", src, "-m", model, "-o", out, "--quiet")
    assert r.returncode == 0, r.stderr
    img = read_image(out)
    assert img.data.shape == noisy.shape and img.data.dtype == np.float32 and img.axes == "ZYX"
    assert img.voxel["Z"] == pytest.approx(10.0) and img.voxel["X"] == pytest.approx(5.0)
    # A 2D image given to a volume model: one line, exit 2, nothing written.
    flat = tmp_path / "slice.mrc"
    with mrcfile.new(flat) as m:
        m.set_data(noisy[0])
    r = ssdn("denoise", flat, "-m", model, "-o", tmp_path / "x.mrc")
    assert r.returncode == 2 and "3D" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.mrc").exists()


def test_cli_3d_needs_a_z_axis(tmp_path, volume):
    noisy, _ = volume
    src = tmp_path / "stack.tif"
    import tifffile

    tifffile.imwrite(src, noisy)
    r = ssdn("train", src, "-o", tmp_path / "m.ssdn", "--3d", "--axes", "SYX", "--iterations", "1")
    assert r.returncode == 2 and "Z" in r.stderr and "Traceback" not in r.stderr


def test_a_plain_3d_tiff_reads_as_a_volume_for_a_volume_model(tmp_path, volume):
    """A TIFF without axis metadata (read as a stack, SYX) has one sensible reading for a
    volume model: ZYX, in ssdn train --3d and in ssdn denoise with a 3D model."""
    import tifffile

    noisy, _ = volume
    src = tmp_path / "plain.tif"
    tifffile.imwrite(src, noisy)
    assert read_image(src).axes == "SYX"
    model = tmp_path / "m.ssdn"
    r = ssdn("train", src, "-o", model, "--3d", "--iterations", "2", "--batch", "1", "--patch", "16", "--quiet")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "den.tif"
    r = ssdn("denoise", src, "-m", model, "-o", out, "--quiet")
    assert r.returncode == 0, r.stderr
    assert read_image(out).data.shape == noisy.shape


@pytest.mark.parametrize(
    "noise,params,per_image",
    [("poisson", {}, False), ("poisson-gaussian", {}, False), ("impulse", {}, False), ("gaussian", {}, True)],
)
def test_every_noise_model_trains_and_denoises_volumes(noise, params, per_image):
    """Each noise model (learned parameters, per-image levels) runs end to end in 3D and
    reports finite parameters in data units."""
    rng = np.random.default_rng(0)
    clean = noisy_volume((8, 24, 24), sigma=0.0, seed=2)[1] * 50 + 5
    if noise in ("poisson", "poisson-gaussian"):
        noisy = rng.poisson(clean).astype(np.float32) + (
            rng.normal(0, 2, clean.shape) if noise == "poisson-gaussian" else 0
        )
    elif noise == "impulse":
        noisy = np.where(rng.random(clean.shape) < 0.2, rng.uniform(0, 60, clean.shape), clean).astype(np.float32)
    else:
        noisy = [clean + rng.normal(0, s, clean.shape).astype(np.float32) for s in (2.0, 4.0)]
    trainer = Trainer(
        noisy,
        "ZYX",
        TrainConfig(ndim=3, noise=noise, noise_params=params, per_image=per_image, iterations=3, device="cpu"),
    )
    for _ in trainer.run():
        pass
    learned = trainer.model.noise_params_data()
    assert learned and all(np.isfinite(v) and v > 0 for v in learned.values())
    vol = noisy[0] if isinstance(noisy, list) else noisy
    out = denoise(trainer.model, vol, "ZYX", output=("posterior-mean", "posterior-std"))
    assert out["posterior-mean"].shape == vol.shape and np.isfinite(out["posterior-mean"]).all()
    assert (out["posterior-std"] >= 0).all()
