"""What an exported package says about its model: the README, the short description, the
citations and the cover image (noisy | denoised)."""

from __future__ import annotations

import numpy as np

from ..core.constants import region_extent
from ..core.nets.model import SSDNModel

__all__ = ["CITATIONS", "channel_names", "description_text", "readme", "write_cover"]

CITATIONS = [
    {
        "text": "Laine S, Karras T, Lehtinen J, Aila T. High-Quality Self-Supervised Deep Image Denoising. "
        "Advances in Neural Information Processing Systems 32 (NeurIPS 2019).",
        "doi": "10.48550/arXiv.1901.10277",
        "url": "https://arxiv.org/abs/1901.10277",
    },
    {
        "text": "napari-ssdn: self-supervised blind-spot denoising for microscopy and cryo-EM (BSD-3-Clause).",
        "url": "https://github.com/napari-ssdn/napari-ssdn",
    },
]

NOISE_TEXT = {
    "gaussian": "Gaussian, variance sigma^2",
    "poisson": "Poisson, variance = mean / lam",
    "poisson-gaussian": "Poisson-Gaussian (camera), variance = a * mean + b",
    "curve": "measured curve: the noise variance against the signal, measured from the training data and "
    "joined by straight lines between its levels (the first value below them; above them the last rise "
    "continues, or the last value holds where it falls)",
    "impulse": "impulse, a fraction alpha of the pixels replaced by uniform random values",
}


def channel_names(channels: int) -> list[str]:
    """Names of the channel axis: gray, RGB(A) or numbered."""
    if channels == 1:
        return ["gray"]
    if channels in (3, 4):
        return ["red", "green", "blue", "alpha"][:channels]
    return [f"channel{i}" for i in range(channels)]


def description_text(model: SSDNModel) -> str:
    """One paragraph for the package's description field."""
    cfg = model.config
    what = {
        "ssdn": "Bayesian posterior mean",
        "mu-only": "blind-spot prediction",
        "supervised": "supervised prediction",
    }[cfg.mode]
    return (
        f"Self-supervised blind-spot denoiser (Laine et al. 2019) trained with napari-ssdn on {cfg.ndim}D data "
        f"with {cfg.noise} noise; returns the {what} in the units of the input. {model.describe()}."
    )


def _fmt(params: dict) -> str:
    return ", ".join(f"{k} = {v:.6g}" for k, v in params.items()) or "none (no noise model)"


def _params_line(model: SSDNModel, noise: dict) -> str:
    curve = model.noise_curve_data()
    if curve:
        pairs = "; ".join(f"{m:.6g}: {v:.6g}" for m, v in zip(curve["mean"], curve["variance"], strict=True))
        return f"- variance at each level (data units, level: variance): {pairs}."
    return f"- parameters (data units): {_fmt(noise)}; learned: {', '.join(model.config.learned) or 'none'}."


def readme(
    model: SSDNModel,
    info: dict,
    noise: dict,
    name: str,
    test_shape: tuple,
    halos: tuple,
    example: str = "a crop of the training data",
) -> str:
    """The package's README.md: what the model was trained on, its noise model, blind
    region and learned parameters, how to run it, and the citations."""
    cfg = model.config
    tr = info.get("training") or {}
    region = region_extent(cfg.region)
    per_image = (
        (
            " The model estimates the level per image; the package holds the values estimated for its test "
            "image (`ssdn denoise -m` on this package estimates them per image as before)."
        )
        if cfg.per_image
        else ""
    )
    sub = f" It works on the {cfg.subsample} x {cfg.subsample} interleaved sub-images." if cfg.subsample > 1 else ""
    lines = [
        f"# napari-ssdn denoiser: {name}",
        "",
        description_text(model),
        "",
        "## Training",
        "",
        f"- data: {cfg.ndim}D, {cfg.channels} channel(s); "
        f"normalisation data = {cfg.offset:.6g} + {cfg.scale:.6g} x network units",
        f"- {tr.get('steps', '?')} steps in {float(tr.get('elapsed') or 0):.0f} s on {tr.get('device', '?')}, "
        f"crops {tr.get('patch', '?')}, batch {tr.get('batch', '?')}, seed {tr.get('seed', '?')}",
        f"- network: {model.describe()}, {sum(p.numel() for p in model.net.parameters()):,} parameters.{sub}",
        f"- test image: {example}, {' x '.join(map(str, test_shape[:-1]))} pixels",
        "",
        "## Noise model",
        "",
        f"- {NOISE_TEXT[cfg.noise]}" if cfg.mode == "ssdn" else f"- none ({cfg.mode} model)",
        _params_line(model, noise) + per_image,
        f"- blind region: {region} pixels centred on each pixel are hidden from the network "
        f"(k = {', '.join(map(str, cfg.region))}; "
        "1 x 1: the pixel itself)",
        "",
        "## Input and output",
        "",
        "- input `input`: (batch, channel, "
        + ", ".join(("z", "y", "x")[-cfg.ndim :])
        + ") float32, the noisy data in its "
        "own units (no normalisation needed: the model normalises, denoises and returns data units)",
        "- output `output`: the posterior mean, same shape and units; missing pixels (NaN) stay NaN",
        f"- any size works; tiles should be cropped by the halo ({', '.join(map(str, halos))} pixels per axis, the "
        "receptive field) to equal a whole-image pass",
        "- matches `ssdn denoise --no-tta --float32` within 1e-4 (relative to the data range); test-time averaging "
        "(`--tta`) is not part of the package",
        "",
        "## Validation",
        "",
        "The test output is this package's TorchScript weights on the test input; `bioimageio test` reproduces it "
        "with both weight formats (relative and absolute tolerance 1e-4). Against napari-ssdn's own inference "
        "(`ssdn denoise --no-tta --float32`) the output agrees within 1e-4 of the data range.",
        "",
        "## Use",
        "",
        "- bioimage.io tools: `bioimageio predict` / `bioimageio.core.predict`, deepImageJ (TorchScript), ilastik",
        "- napari-ssdn: `ssdn denoise noisy.tif -m THIS.zip -o denoised.tif` reads the model file attached "
        "to the package (`napari_ssdn_model.ssdn`), as does the Denoise widget",
        "",
        "## Citation",
        "",
        *[f"- {c['text']} {c.get('url', '')}" for c in CITATIONS],
        "",
        "## Licence",
        "",
        "BSD-3-Clause, as napari-ssdn.",
        "",
    ]
    return "\n".join(lines)


def _display(a: np.ndarray, ndim: int, lo: float, hi: float) -> np.ndarray:
    """uint8 picture of a ``(*spatial, C)`` image: the middle slice of a volume, gray or RGB."""
    if ndim == 3:
        a = a[a.shape[0] // 2]
    a = a[..., :3] if a.shape[-1] >= 3 else a[..., :1]
    a = np.nan_to_num((a - lo) / max(hi - lo, 1e-12), nan=0.0)
    return (np.clip(a, 0, 1) * 255).round().astype(np.uint8)


def write_cover(path, noisy: np.ndarray, denoised: np.ndarray, ndim: int) -> None:
    """PNG of the noisy and the denoised image side by side (same grey levels)."""
    from PIL import Image

    finite = noisy[np.isfinite(noisy)]
    lo, hi = (float(v) for v in np.percentile(finite, [0.5, 99.5])) if finite.size else (0.0, 1.0)
    left, right = _display(noisy, ndim, lo, hi), _display(denoised, ndim, lo, hi)
    gap = np.full((left.shape[0], max(2, left.shape[1] // 32), left.shape[2]), 255, np.uint8)
    pic = np.concatenate([left, gap, right], axis=1)
    # A cover of at least 256 pixels high, so that small test images stay visible.
    zoom = max(1, -(-256 // pic.shape[0]))
    pic = pic.repeat(zoom, 0).repeat(zoom, 1)
    Image.fromarray(pic[..., 0] if pic.shape[-1] == 1 else pic).save(path)
