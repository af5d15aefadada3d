"""Tooltips of the Train widget's fields (one place, shared by its parts)."""

from __future__ import annotations

from .._options import PARAM_HELP

__all__ = ["HELP", "param_help"]

HELP = {
    "layer": "The noisy image layer to train on (the model learns from this data alone).",
    "pair": (
        "A second observation of the same field, if you have one: the other even/odd half, or another "
        "frame. The noise is then measured from the two, and the network learns from both."
    ),
    "axes": "One letter per dimension: Y, X, optional C (channels) and T/Z/S (trained as separate 2D samples), "
    "e.g. YX, ZYX, TYX, YXC.",
    "noise": "Noise model of the camera/detector. auto: read from the data when training starts "
    "(Poisson-Gaussian where the "
    "noise variance grows with the signal, else Gaussian), its parameters learned. Gaussian: additive; Poisson: photon "
    "counts; Poisson-Gaussian: both; impulse: salt-and-pepper.",
    "dims": "2D trains on images (a Z axis becomes a stack of slices); 3D trains a volume network that also uses the "
    "slices above and below (needs a Z axis). With patch, batch and width on auto, 3D takes 24-voxel crops, batch "
    "1 and the tiny width, the best per CPU minute.",
    "budget": "How long to train: a number of iterations or of minutes.",
    "patch": "Side of the square training crops in pixels (>= 8), or auto: 64 on a CPU, 128 on a GPU, 24 for 3D "
    "(48 with a blind region beyond the voxel).",
    "batch": "Crops per training step, or auto: 4 on a CPU, 8 on a GPU, 1 for 3D.",
    "width": "Network size: auto (the best per minute measured: tiny on a CPU; on a GPU tiny where the shipped "
    "starting network fits, else light), tiny, light, paper (Laine et al.; use a GPU).",
    "lr": "Peak learning rate of Adam. auto: from the shipped start 3e-4 (1e-3 on 1.5 megapixels of data or more); "
    "from scratch 2e-3 for the tiny 2D network, else 1e-3.",
    "seed": "Random seed of crops and initialisation (same seed, same result).",
    "subsample": "1: off. 2: train and denoise on the 4 interleaved half-size sub-images, for noise correlated "
    "between neighbouring pixels (resampled or processed camera images), which the network would otherwise "
    "learn to reproduce: the result then barely differs from the input.",
    "blind": "Pixels the network may not see when it predicts a pixel. auto: measured when training starts from the "
    "noise's correlation between neighbouring pixels (the pixel alone where the noise is uncorrelated). K: hide "
    "every pixel closer than K along every axis (2: a 3 x 3 square). KY,KX: one K per axis (volumes KZ,KY,KX). "
    "1: the pixel alone.",
    "device": "auto picks CUDA, then Apple MPS, then the CPU.",
    "threads": "CPU threads of torch, or auto: the cores free when the run starts (cores minus the 1-minute "
    "load of other work; OMP_NUM_THREADS where set). The line at the top shows the count and why. On a busy "
    "machine fewer threads train faster: each thread on a busy core holds up every step.",
    "per_image": "A noise level for each image or slice (channels, exposures or gains that differ across a stack): "
    "each starts from its own classical estimate and is estimated again from the image when denoising. "
    "auto: where the images' noise levels differ by 2x or more; shared: one level for all.",
}


def param_help(name: str) -> str:
    """Tooltip of the noise parameter ``name``'s field."""
    return f"{name}: {PARAM_HELP[name]}. Leave 'learn' ticked to learn it from the data."
