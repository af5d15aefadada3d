"""Small model files for the export tests: random weights at a tiny width, marked as
trained, each with a crop of 'training data' like the files 'ssdn train' writes."""

import numpy as np
import torch

from napari_ssdn.core import ModelConfig, SSDNModel, save_model
from napari_ssdn.samples import clean_cells

NOISE = {
    "gaussian": {"sigma": 0.1},
    "poisson-gaussian": {"a": 0.02, "b": 0.001},
    "poisson": {"lam": 30.0},
    "impulse": {"alpha": 0.1},
    "curve": {},
}
#: A variance curve that bends (clipped at both ends), data units.
CURVE = {"mean": [0.0, 0.3, 0.6, 1.0], "variance": [0.002, 0.006, 0.012, 0.01]}


def noisy_image(shape, seed=0, channels=1):
    """Cells plus noise, ``shape`` spatial (2D or 3D), channels last if more than one."""
    rng = np.random.default_rng(seed)
    size = max(shape[-2:])
    planes = [
        clean_cells(size, seed=seed + i)[: shape[-2], : shape[-1]] for i in range(shape[0] if len(shape) == 3 else 1)
    ]
    img = np.stack(planes) if len(shape) == 3 else planes[0]
    if channels > 1:
        img = np.stack([img * (0.6 + 0.2 * c) for c in range(channels)], -1)
    return (img + 0.1 * rng.standard_normal(img.shape)).astype(np.float32)


def make_model_file(path, noise="gaussian", ndim=2, channels=1, subsample=1, steps=5, sample=True, **kw):
    """Write a model file of random tiny weights; returns ``(path, model)``."""
    torch.manual_seed(0)
    cfg = ModelConfig(
        channels=channels,
        enc=4,
        dec=6,
        depth=2,
        noise=noise,
        noise_init=NOISE[noise],
        learned=tuple(NOISE[noise]),
        ndim=ndim,
        subsample=subsample,
        offset=0.1,
        scale=0.8,
        **({"noise_curve": CURVE} if noise == "curve" else {}),
        **kw,
    )
    model = SSDNModel(cfg).eval()
    with torch.no_grad():
        model.log_scale.fill_(0.2)  # a learned value away from the start
    crop = None
    if sample:
        crop = noisy_image((12, 40, 40) if ndim == 3 else (48, 48), channels=channels)
        crop = crop if channels > 1 else crop[..., None]
    save_model(model, path, train_state={"steps": steps, "elapsed": 1.0, "device": "CPU"}, sample=crop)
    return path, model
