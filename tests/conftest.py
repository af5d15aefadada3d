"""Shared fixtures: small synthetic data so the suite runs in minutes on a CPU."""

import numpy as np
import pytest
import torch

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
_THREADS = torch.get_num_threads()


@pytest.fixture(autouse=True)
def _torch_threads_as_they_were():
    """A test that chose threads (a run's free-cores rule, --threads) leaves the next one the
    suite's count: results then do not depend on the order the tests run in."""
    yield
    if torch.get_num_threads() != _THREADS:
        torch.set_num_threads(_THREADS)


def smooth_image(size=64, seed=0):
    """A smooth clean image in [0.2, 0.8]: easy to predict from neighbours."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = 0.5 + 0.15 * np.sin(2 * np.pi * (xx * rng.uniform(1, 2) + yy * rng.uniform(0.5, 1.5)))
    img += 0.15 * np.cos(2 * np.pi * (yy * rng.uniform(1, 2.5)))
    return img.astype(np.float32)


@pytest.fixture
def clean_and_noisy():
    from napari_ssdn.samples import clean_cells

    clean = clean_cells(96, seed=3)
    rng = np.random.default_rng(7)
    sigma = 0.1
    return clean, (clean + sigma * rng.standard_normal(clean.shape)).astype(np.float32), sigma


# -- fixtures of the napari test modules ------------------------------------------------
# Each of those modules applies fresh_registry and one_torch_thread to all its tests with
# pytest.mark.usefixtures; tests request viewer and tiny_model by name.


@pytest.fixture
def fresh_registry():
    """Each test starts with no trained or loaded models."""
    from napari_ssdn._napari._model_registry import session_models

    session_models().clear()
    yield
    session_models().clear()


@pytest.fixture
def one_torch_thread():
    """One torch thread: on a small shared CI machine, OpenMP threads competing with the GUI
    thread and other jobs make each step many times slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


@pytest.fixture(scope="module")
def tiny_model():
    """A 1-channel model trained for a few steps (not through the widget)."""
    from napari_ssdn.core import TrainConfig, Trainer
    from napari_ssdn.samples import noisy_cells

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    noisy, _ = noisy_cells(64)
    trainer = Trainer(noisy, "YX", TrainConfig(iterations=3, width="tiny", patch=16, batch=2, device="cpu"))
    for _ in trainer.run():
        pass
    torch.set_num_threads(n)
    return trainer.model


from napari_ssdn.samples import psnr  # noqa: E402,F401 - the tests' PSNR is the package's
