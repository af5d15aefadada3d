"""Choices offered by the widgets; the names come from the core's torch-free constants."""

from __future__ import annotations

from ..core.constants import NOISE_PARAMS, OUTPUTS
from ..core.training.fields import FIELDS

#: Network width presets, smallest first, after "auto" (the core's choice, see the table's help).
WIDTHS = ("auto", *FIELDS["width"].choices)

#: The layer each denoising output goes to.
OUTPUT_SUFFIX = {
    "posterior-mean": "_ssdn",
    "prior-mean": "_ssdn_prior",
    "posterior-std": "_ssdn_std",
    "residual": "_ssdn_residual",
}

DEVICES = ("auto", "cpu", "cuda", "mps")

#: The noise models offered, "auto" (read from the data, parameters learned) first.
NOISE_CHOICES = FIELDS["noise"].choices

__all__ = ["NOISE_CHOICES", "NOISE_PARAMS", "WIDTHS", "OUTPUTS", "OUTPUT_SUFFIX", "DEVICES"]

#: The Noise level field: its items and the ``per_image`` setting each stands for.
PER_IMAGE_CHOICES = {"auto": "auto", "per image": True, "shared": False}
