"""napari-ssdn core: blind-spot training and Bayesian denoising (numpy and torch only).

The public API for scripts and notebooks::

    from napari_ssdn.core import Trainer, TrainConfig, train, denoise, load_model, save_model

Names are loaded lazily, so that ``napari_ssdn.core.data`` or ``.errors`` can be used
(by readers and widgets) without importing torch.
"""

from importlib import import_module

_EXPORTS = {
    "NOISE_MODELS": "constants",
    "NOISE_PARAMS": "constants",
    "SSDNError": "errors",
    "ModelFileError": "errors",
    "SSDNWarning": "errors",
    "scale_mismatch": "infer.denoise",
    "OUTPUTS": "constants",
    "DenoiseProgress": "infer.denoise",
    "denoise": "infer.denoise",
    "denoise_iter": "infer.denoise",
    "MODES": "constants",
    "WIDTHS": "constants",
    "ModelConfig": "nets.model",
    "SSDNModel": "nets.model",
    "load_model": "modelfile",
    "save_model": "modelfile",
    "Trainer": "training.trainer",
    "TrainConfig": "training.settings",
    "TrainPlan": "training.plan",
    "Tuning": "training.settings",
    "TrainProgress": "training.trainer",
    "train": "api",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
