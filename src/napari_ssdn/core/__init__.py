"""napari-ssdn core: blind-spot training and Bayesian denoising (numpy and torch only).

The public API for scripts and notebooks::

    from napari_ssdn.core import Trainer, TrainConfig, train, denoise, load_model, save_model
"""

from .bayes import NOISE_MODELS, NOISE_PARAMS
from .errors import ModelFileError, SSDNError
from .infer import OUTPUTS, DenoiseProgress, denoise, denoise_iter
from .model import MODES, WIDTHS, ModelConfig, SSDNModel
from .modelfile import load_model, save_model
from .train import Trainer, TrainConfig, TrainProgress, train

__all__ = [
    "NOISE_MODELS",
    "NOISE_PARAMS",
    "OUTPUTS",
    "MODES",
    "WIDTHS",
    "ModelConfig",
    "SSDNModel",
    "Trainer",
    "TrainConfig",
    "TrainProgress",
    "DenoiseProgress",
    "train",
    "denoise",
    "denoise_iter",
    "load_model",
    "save_model",
    "SSDNError",
    "ModelFileError",
]
