"""Shared fixtures: small synthetic data so the suite runs in minutes on a CPU."""

import numpy as np
import pytest
import torch

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


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


from napari_ssdn.samples import psnr  # noqa: E402,F401 - the tests' PSNR is the package's
