"""Tooltips of the Train widget's fields (one place, shared by its parts)."""

from __future__ import annotations

from ...core.training.fields import field_help, noise_param_help

__all__ = ["HELP", "param_help", "TOOLTIP_FIELDS"]


def _tip(name: str, more: str = "") -> str:
    """The settings table's help of ``name`` as a sentence, and what only the widget adds."""
    text = field_help(name)
    return f"{text[0].upper()}{text[1:]}." + (f" {more}" if more else "")


#: The widget's field keys whose tooltip holds a training setting's help (field key -> setting).
TOOLTIP_FIELDS = {
    "noise": "noise",
    "budget": "iterations",
    "patch": "patch",
    "batch": "batch",
    "width": "width",
    "lr": "lr",
    "seed": "seed",
    "subsample": "subsample",
    "blind": "blind",
    "device": "device",
    "per_image": "per_image",
}

HELP = {
    "layer": "The noisy image layer to train on (the model learns from this data alone).",
    "pair": (
        "A second observation of the same field, if you have one: the other even/odd half, or another "
        "frame. The noise is then measured from the two, and the network learns from both."
    ),
    "axes": "One letter per dimension: Y, X, optional C (channels) and T/Z/S (trained as separate 2D samples), "
    "e.g. YX, ZYX, TYX, YXC.",
    "noise": _tip("noise", "The parameters of a model picked here are learned unless typed in."),
    "dims": "2D trains on images (a Z axis becomes a stack of slices); 3D trains a volume network that also uses the "
    "slices above and below (needs a Z axis). With patch, batch and width on auto, 3D takes 24-voxel crops, batch "
    "1 and the tiny width, the best per CPU minute.",
    "budget": "How long to train: a number of iterations or of minutes. " + _tip("iterations"),
    "patch": _tip("patch"),
    "batch": _tip("batch"),
    "width": _tip("width"),
    "lr": _tip("lr"),
    "seed": _tip("seed"),
    "subsample": _tip(
        "subsample", "Without it, such noise is learned and reproduced: the result then barely differs from the input."
    ),
    "blind": _tip("blind"),
    "device": _tip("device"),
    "threads": "CPU threads of torch, or auto: the cores free when the run starts (cores minus the 1-minute "
    "load of other work; OMP_NUM_THREADS where set). The line at the top shows the count and why. On a busy "
    "machine fewer threads train faster: each thread on a busy core holds up every step.",
    "per_image": _tip("per_image", "It is estimated again from each image when denoising."),
}


def param_help(name: str) -> str:
    """Tooltip of the noise parameter ``name``'s field: the settings table's words and the 'learn' box."""
    return f"{name}: {noise_param_help(name)}. Leave 'learn' ticked to learn it from the data."
