"""Sample data for napari's File > Open Sample menu (generated, no download)."""

from __future__ import annotations

from ...samples import DEMO_SIGMA, noisy_cells, noisy_cells_stack, noisy_volume


def sample_cells():
    """A noisy synthetic fluorescence image with Gaussian noise of known sigma."""
    noisy, _ = noisy_cells()
    return [(noisy, {"name": "noisy_cells", "metadata": {"noise": "gaussian", "sigma": DEMO_SIGMA}}, "image")]


def sample_cells_stack():
    """A noisy time-lapse (8 frames of 128 x 128) with Gaussian noise of known sigma."""
    noisy, _ = noisy_cells_stack()
    meta = {"noise": "gaussian", "sigma": DEMO_SIGMA}
    return [(noisy, {"name": "noisy_cells_stack", "axis_labels": ("t", "y", "x"), "metadata": meta}, "image")]


def sample_volume():
    """A noisy synthetic tomogram-like volume (48 x 128 x 128) with Gaussian noise of known sigma."""
    noisy, _ = noisy_volume()
    meta = {"noise": "gaussian", "sigma": DEMO_SIGMA}
    return [(noisy, {"name": "noisy_volume", "axis_labels": ("z", "y", "x"), "metadata": meta}, "image")]
