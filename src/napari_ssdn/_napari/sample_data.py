"""Sample data for napari's File > Open Sample menu (generated, no download)."""

from __future__ import annotations

from ..samples import DEMO_SIGMA, noisy_cells


def sample_cells():
    """A noisy synthetic fluorescence image with Gaussian noise of known sigma."""
    noisy, _ = noisy_cells()
    return [(noisy, {"name": "noisy_cells", "metadata": {"noise": "gaussian", "sigma": DEMO_SIGMA}}, "image")]
