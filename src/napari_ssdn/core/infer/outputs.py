"""From network outputs to what the user asked for: noise parameters per image, test-time
views, and the posterior mean, prior mean or posterior standard deviation of a tile."""

from __future__ import annotations

import numpy as np
import torch

from ..constants import NOISE_PARAMS, check_noise_params
from ..errors import SSDNError, setting
from ..nets.model import SSDNModel, params_to_norm
from ..nets.network import BlindSpotNet
from ..noise.bayes import posterior, split_prior

__all__ = ["noise_override", "sample_noise_params", "to_tensor", "averaged_outputs", "outputs"]


def noise_override(model: SSDNModel, noise_params: dict | None) -> dict:
    """Noise parameters given for inference (data units), checked against ``model`` and
    converted to its normalised units; raises :class:`SSDNError` naming a bad one."""
    cfg = model.config
    if not noise_params:
        return {}
    if cfg.mode != "ssdn":
        raise SSDNError(f"a {cfg.mode} model has no noise model; give it no noise parameters")
    bad = [k for k in noise_params if k not in NOISE_PARAMS[cfg.noise]]
    if bad:  # inference cannot change the noise model: say which one the model has
        takes = ", ".join(setting(k) for k in NOISE_PARAMS[cfg.noise])
        raise SSDNError(
            f"{setting(bad[0])} does not fit the model: its noise model is {cfg.noise}, which takes {takes} "
            f"(data units); give {'it' if len(NOISE_PARAMS[cfg.noise]) == 1 else 'those'} or no noise parameter"
        )
    clean = check_noise_params(cfg.noise, noise_params)
    if "b" in clean and "a" not in clean:
        # b is the variance at zero signal: converting it to the model's offset needs a.
        a = model.noise_params_data()["a"]
        return {
            k: v for k, v in params_to_norm(cfg.noise, {**clean, "a": a}, cfg.offset, cfg.scale).items() if k != "a"
        }
    return params_to_norm(cfg.noise, clean, cfg.offset, cfg.scale)


def sample_noise_params(
    model: SSDNModel, sample: np.ndarray, norm, dev: torch.device, given: dict | None = None
) -> dict:
    """Noise parameters for one image or volume; per-image models start from its classical
    estimate and their estimator reads a central crop of it; ``given`` (normalised units)
    replaces what it names."""
    given = given or {}
    if model.estimator is None or all(n in given for n in model.learned):
        with torch.no_grad():
            return {**model.noise_params(None), **given}
    mults = model.estimator.arch.multiples
    size = [
        max(m, (min(256 if len(mults) == 2 else 64, n) // m) * m) for n, m in zip(sample.shape[:-1], mults, strict=True)
    ]
    region = tuple(
        slice(max(0, (n - s) // 2), max(0, (n - s) // 2) + s) for n, s in zip(sample.shape[:-1], size, strict=True)
    )
    crop = np.zeros(size + [sample.shape[-1]], np.float32)
    part = norm(sample[region])
    crop[tuple(slice(0, e) for e in part.shape[:-1])] = part
    anchor = model.image_anchor(norm(sample)[None])  # the whole image, not only the crop
    with torch.no_grad():
        return {**model.noise_params(to_tensor(crop, dev), anchor), **given}


def to_tensor(a: np.ndarray, dev: torch.device) -> torch.Tensor:
    """Channels-last array -> ``(1, C, *spatial)`` tensor on ``dev``."""
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(a, -1, 0))[None]).to(dev)


def _view(t: torch.Tensor, v: int, inverse: bool = False) -> torch.Tensor:
    """View ``v`` of the 8 symmetries of a square (4 rotations, each mirrored or not) of
    ``(N, C, H, W)``, or its inverse."""
    k, flip = v % 4, v >= 4
    if inverse:
        t = torch.rot90(t, -k, (-2, -1))
        return t.flip(-1) if flip else t
    t = t.flip(-1) if flip else t
    return torch.rot90(t, k, (-2, -1))


def averaged_outputs(model: SSDNModel, y: torch.Tensor, noise: dict, kinds: tuple, views: int) -> dict:
    """Outputs of a square tile averaged over ``views`` symmetries of it (1: a single pass).

    Each view's network output is mapped back before the posterior, so every view combines
    the same noisy pixel with its own prior; means are averaged, standard deviations as the
    root of the mean variance.
    """
    if views == 1:
        return outputs(model, y, model(y), noise, kinds)
    acc = {}
    for out in _view_outputs(model, y, views):
        res = outputs(model, y, out, noise, kinds)
        for k, r in res.items():
            r = r * r if k == "posterior-std" else r
            acc[k] = r if k not in acc else acc[k] + r
    return {k: np.sqrt(a / views) if k == "posterior-std" else a / views for k, a in acc.items()}


def _view_outputs(model: SSDNModel, y: torch.Tensor, views: int):
    """Network outputs of the first ``views`` symmetries of a square tile, each mapped back.

    For the blind-spot network, the view turned by k quarter turns feeds its shared U-Net the
    same four turned copies as the plain view, only in cyclic order (the 1x1 head commutes
    with rotations). So the four turns of each mirror reuse one set of branch features
    and differ only in the head: 8 U-Net passes instead of 32, with the same result.
    """
    net = model.net
    if not isinstance(net, BlindSpotNet) or views % 4:
        for v in range(views):
            yield _view(model(_view(y, v)), v, inverse=True)
        return
    for mirrored in range(views // 4):
        feats = net.branch_features(y.flip(-1) if mirrored else y)
        if mirrored:
            feats = feats.flip(-1)
        yield from net.turned_head_outputs(feats)


def outputs(model: SSDNModel, y: torch.Tensor, out: torch.Tensor, noise: dict, kinds: tuple) -> dict:
    """Requested outputs (normalised units, channels last) from the network output of a tile."""
    cfg = model.config
    if cfg.mode != "ssdn":
        mu = out[0].float().movedim(0, -1).cpu().numpy()
        return {k: mu for k in kinds}
    mu, sx = split_prior(out, cfg.channels)
    res = {}
    if any(k != "prior-mean" for k in kinds):
        mean, var = posterior(cfg.noise, y.movedim(1, -1), mu, sx, noise)
        # A non-finite posterior (degenerate prior) falls back to the prior mean.
        mean = torch.where(torch.isfinite(mean), mean, mu)
        std = torch.where(torch.isfinite(var), torch.sqrt(var), torch.zeros_like(var))
    for k in kinds:
        t = mu if k == "prior-mean" else std if k == "posterior-std" else mean
        res[k] = t[0].float().cpu().numpy()
    return res
