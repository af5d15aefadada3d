"""Axes, normalisation and random crops: the numpy side of training and inference."""

from __future__ import annotations

import numpy as np

from .errors import SSDNError, setting

__all__ = [
    "SAMPLE_AXES",
    "guess_axes",
    "check_axes",
    "to_samples",
    "from_samples",
    "Normalization",
    "CropSampler",
    "split_phases",
    "merge_phases",
    "HoldoutPattern",
]

#: Axes trained as independent 2D samples (time, z, stack index, anything else).
SAMPLE_AXES = "STZQ"
MAX_CHANNELS = 16


def guess_axes(shape: tuple[int, ...], rgb: bool = False, ndim: int = 2) -> str:
    """Guess axes for an array shape: YX, YXC (colour), SYX or SYXC; for a volume model
    (``ndim=3``) ZYX or TZYX.

    A trailing axis of 3 or 4 is taken as channels only when ``rgb`` is set (a colour
    file format) because a stack of 3 or 4 slices is as likely.
    """
    nd = len(shape)
    if ndim == 3:
        if nd == 3:
            return "ZYX"
        if nd == 4:
            return "ZYXC" if rgb and shape[-1] in (3, 4) else "TZYX"
        raise SSDNError(
            f"a volume model needs 3D data (ZYX) but the array has shape {tuple(shape)}; "
            f"pass axes, e.g. {setting('axes', 'ZYX')}"
        )
    if nd == 2:
        return "YX"
    if nd == 3:
        return "YXC" if rgb and shape[-1] in (3, 4) else "SYX"
    if nd == 4:
        return "SYXC" if rgb and shape[-1] in (3, 4) else "TZYX"
    raise SSDNError(f"cannot guess axes for an array of shape {shape}; pass axes, e.g. {setting('axes', 'TZYX')}")


def check_axes(axes: str, shape: tuple[int, ...], name: str = "axes", ndim: int = 2) -> str:
    """Validate an axes string against an array shape and return it upper-cased.

    With ``ndim=3`` (volumes) the axes must include Z, the third spatial axis.
    """
    ax = axes.upper()
    # "axes" is a setting each front end names its own way; "the file's axes" is not.
    shown = setting(name, axes) if name.isidentifier() else f"{name} {axes!r}"
    if ndim == 3 and "Z" not in ax:
        raise SSDNError(f"{shown} has no Z axis but 3D training and volume models need one; use e.g. 'ZYX'")
    allowed = set("YXC" + SAMPLE_AXES)
    bad = sorted(set(ax) - allowed)
    if bad or len(set(ax)) != len(ax) or "Y" not in ax or "X" not in ax:
        raise SSDNError(
            f"{shown} is not valid: use each of Y and X once, optionally C (channels) "
            f"and any of {', '.join(SAMPLE_AXES)} (trained as separate 2D samples), e.g. 'YX' or 'ZYX'"
        )
    if len(ax) != len(shape):
        raise SSDNError(
            f"{shown} has {len(ax)} letters but the image has {len(shape)} dimensions {tuple(shape)}; "
            "give one letter per dimension"
        )
    if "C" in ax and shape[ax.index("C")] > MAX_CHANNELS:
        raise SSDNError(
            f"{shown} puts {shape[ax.index('C')]} values on the channel axis; "
            f"at most {MAX_CHANNELS} channels are supported, check the axes"
        )
    return ax


def _order(ax: str, ndim: int) -> list[int]:
    spatial = "ZYX" if ndim == 3 else "YX"
    order = [i for i, a in enumerate(ax) if a not in spatial + "C"] + [ax.index(a) for a in spatial]
    if "C" in ax:
        order.append(ax.index("C"))
    return order


def to_samples(array: np.ndarray, axes: str, ndim: int = 2) -> np.ndarray:
    """View or copy ``array`` as ``(samples, Y, X, C)`` (``ndim=3``: ``(samples, Z, Y, X, C)``);
    every other axis becomes samples. A view whenever the axes order allows (memory maps
    stay memory maps)."""
    ax = check_axes(axes, array.shape, ndim=ndim)
    arr = np.transpose(array, _order(ax, ndim))
    if "C" not in ax:
        arr = arr[..., None]
    return arr.reshape((-1,) + arr.shape[-(ndim + 1) :])


def from_samples(samples: np.ndarray, shape: tuple[int, ...], axes: str, ndim: int = 2) -> np.ndarray:
    """Inverse of :func:`to_samples`: back to ``shape`` with ``axes`` (channel count may differ)."""
    ax = axes.upper()
    order = _order(ax, ndim)
    tshape = [shape[i] for i in order]
    if "C" not in ax:
        tshape.append(samples.shape[-1])
    else:
        tshape[-1] = samples.shape[-1]
    arr = samples.reshape(tshape)
    if "C" not in ax:
        arr = arr[..., 0]
    return np.transpose(arr, np.argsort(order))


def split_phases(samples: np.ndarray, factor: int, crop: bool = False) -> np.ndarray:
    """Pixel-shuffle subsampling: ``(S, H, W, C)`` -> ``(S * f^2, ceil(H/f), ceil(W/f), C)``,
    sample ``s * f^2 + i * f + j`` holding the pixels ``[i::f, j::f]`` of sample ``s``.

    Noise correlated between neighbouring pixels is much less correlated between pixels
    ``f`` apart, which is what the blind spot needs. Sizes that are not multiples of ``f``
    are padded with NaN (read as the data's offset, i.e. zero in network units, like the
    network's own padding), or cropped with ``crop=True`` (training: no made-up pixels).
    """
    f = int(factor)
    if f == 1:
        return samples
    n, h, w, c = samples.shape
    if crop:
        h, w = (h // f) * f, (w // f) * f
        if h == 0 or w == 0:
            raise SSDNError(
                f"an image of {samples.shape[1]} x {samples.shape[2]} pixels is too small for {setting('subsample', f)}"
            )
        grid = np.asarray(samples[:, :h, :w], dtype=np.float32)
    else:
        grid = np.full((n, -(-h // f) * f, -(-w // f) * f, c), np.nan, np.float32)
        grid[:, :h, :w] = samples
    hs, ws = grid.shape[1] // f, grid.shape[2] // f
    return np.ascontiguousarray(
        grid.reshape(n, hs, f, ws, f, c).transpose(0, 2, 4, 1, 3, 5).reshape(n * f * f, hs, ws, c)
    )


#: Largest crop of the training data kept in a model file, per spatial axis (images, volumes).
SAMPLE_CROP = {2: (128, 128), 3: (32, 64, 64)}


def training_crop(sample: np.ndarray, ndim: int) -> np.ndarray:
    """Central crop ``(*spatial, C)`` float32 of one ``(*spatial, C)`` training sample, at
    most :data:`SAMPLE_CROP` in size: the example image of an exported model package."""
    spatial = sample.shape[:-1]
    region = tuple(
        slice((n - min(n, m)) // 2, (n - min(n, m)) // 2 + min(n, m))
        for n, m in zip(spatial, SAMPLE_CROP[ndim], strict=True)
    )
    return np.array(sample[region], dtype=np.float32)


def merge_phases(phases: np.ndarray, factor: int, height: int, width: int) -> np.ndarray:
    """Inverse of :func:`split_phases` (without ``crop``): back to ``(S, height, width, C)``."""
    f = int(factor)
    if f == 1:
        return phases
    m, hs, ws, c = phases.shape
    full = (
        phases.reshape(m // (f * f), f, f, hs, ws, c)
        .transpose(0, 3, 1, 4, 2, 5)
        .reshape(m // (f * f), hs * f, ws * f, c)
    )
    return full[:, :height, :width]


class Normalization:
    """Affine map data -> network units, ``(y - offset) / scale``, stored with the model.

    Gaussian noise: robust range to about [0, 1]. Poisson: scale only, so that the
    variance stays proportional to the signal; Poisson-Gaussian: offset at the dark level
    where the variance line meets the read noise (0 without a pedestal). Impulse: the full data
    range, because impulses are uniform over it.
    """

    def __init__(self, offset: float, scale: float):
        self.offset = float(offset)
        self.scale = float(scale)

    @classmethod
    def fit(cls, samples: list[np.ndarray], noise: str, dark: float = 0.0) -> Normalization:
        """Fit to ``samples`` for ``noise``; ``dark`` is the offset of Poisson-Gaussian
        data (the level where the noise variance line meets the read noise alone, e.g. a
        camera's pedestal), so that the variance stays a * signal + b with b >= 0."""
        values = np.concatenate([_subsample(s) for s in samples])
        values = values[np.isfinite(values)]
        if values.size == 0:
            raise SSDNError("the input holds no finite values (all NaN or infinite); check the file")
        if noise in ("poisson", "poisson-gaussian"):
            offset = float(dark) if noise == "poisson-gaussian" else 0.0
            hi = float(np.percentile(values, 99.9))
            if hi <= 0:
                raise SSDNError(
                    f"{setting('noise', noise)} needs non-negative counts but the data's 99.9th percentile is {hi:g}; "
                    f"subtract the camera baseline or use {setting('noise', 'gaussian')}"
                )
            scale = hi - offset
        elif noise == "impulse":
            offset, hi = float(values.min()), float(values.max())
            scale = hi - offset
        else:
            offset, hi = (float(v) for v in np.percentile(values, [0.1, 99.9]))
            scale = hi - offset
        if not scale > 0:
            raise SSDNError("the input is constant: there is nothing to denoise")
        return cls(offset, scale)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.offset) / self.scale).astype(np.float32, copy=False)

    def inverse(self, x: np.ndarray) -> np.ndarray:
        return x * self.scale + self.offset

    def to_dict(self) -> dict:
        return {"offset": self.offset, "scale": self.scale}


def _subsample(s: np.ndarray, n: int = 1_000_000) -> np.ndarray:
    flat = np.asarray(s).reshape(-1)
    step = max(1, flat.size // n)
    return flat[::step].astype(np.float64)


class HoldoutPattern:
    """A fixed random set of pixel positions kept out of the training loss.

    The pixels stay in the network's input, so training sees the same images; only their
    own loss terms are dropped. A blind-spot network never sees the pixel it predicts, so
    its prediction at a held-out pixel owes nothing to that pixel's noise, even after the
    weights have started to fit the noise of the pixels they are trained on: the loss over
    held-out pixels is an honest validation loss on the training data itself.

    The pattern is a random tile repeated over every sample; its periods are odd, so no
    crop (whose sides are multiples of powers of two) lines up with it. All channels of a
    pixel are held out together.

    Parameters
    ----------
    ndim : int
        2 (images) or 3 (volumes).
    fraction : float
        Share of the pixels held out, in (0, 0.5].
    seed : int
        Seed of the tile; fixed, so that a resumed run holds out the same pixels.
    """

    PERIODS = (13, 61, 67)

    def __init__(self, ndim: int, fraction: float, seed: int = 20190611):
        if not 0 < fraction <= 0.5:
            raise SSDNError(f"{setting('holdout', fraction)} must be a fraction of the pixels in (0, 0.5], e.g. 0.0625")
        shape = self.PERIODS[-ndim:]
        size = int(np.prod(shape))
        tile = np.zeros(size, bool)
        tile[np.random.default_rng(seed).permutation(size)[: max(1, round(fraction * size))]] = True
        self.tile = tile.reshape(shape)

    def window(self, starts, size) -> np.ndarray:
        """Boolean mask (True: held out) of the window at ``starts`` with ``size`` (spatial axes)."""
        index = np.ix_(*[(int(st) + np.arange(n)) % p for st, n, p in zip(starts, size, self.tile.shape, strict=True)])
        return self.tile[index]


class CropSampler:
    """Random crops with flips and 90-degree rotations, drawn in proportion to image size.

    Parameters
    ----------
    samples : list of ndarray
        Normalised float32 arrays ``(S, H, W, C)``, or ``(S, D, H, W, C)`` for volumes.
    patch : int or tuple of int
        Crop side, or crop size per spatial axis.
    rng : numpy.random.Generator
    augment : bool
        Images: a random one of the 8 dihedral transforms per crop. Volumes: a random
        in-plane rotation and random flips along z, y and x (z is never swapped with y or
        x, whose voxel size may differ).
    holdout : HoldoutPattern or None
        Pixels whose loss is dropped; :attr:`kept` then holds, per crop, 1 where the loss
        counts and 0 where it does not, transformed like the crop.
    measured : list of ndarray or None
        Per array, ``(S, *spatial)`` booleans, False where a pixel is missing: its loss is
        dropped too (:attr:`kept` is then always set).
    """

    def __init__(
        self,
        samples: list[np.ndarray],
        patch,
        rng: np.random.Generator,
        augment: bool = True,
        holdout: HoldoutPattern | None = None,
        measured: list[np.ndarray] | None = None,
    ):
        self.samples = samples
        self.ndim = samples[0].ndim - 2
        self.patch = tuple(patch) if np.ndim(patch) else (int(patch),) * self.ndim
        self.rng = rng
        self.augment = augment
        self.holdout = holdout
        self.measured = measured
        size = np.array([np.prod(s.shape[:-1]) for s in samples], dtype=np.float64)
        self.weights = size / size.sum()
        #: ``(array index, sample index)`` of each crop of the last :meth:`sample` call.
        self.drawn: list[tuple[int, int]] = []
        #: Loss weights ``(B, *patch)`` of the last :meth:`sample` call (None without ``holdout``).
        self.kept: np.ndarray | None = None

    def _transform(self, crop: np.ndarray, rot: int, flips: list[bool]) -> np.ndarray:
        crop = np.rot90(crop, rot, axes=(-2, -1))
        for a, f in enumerate(flips):
            if f:
                crop = np.flip(crop, axis=a + 1 + (self.ndim == 2))  # 2D: flip x; 3D: z and y
        return crop

    def sample(self, batch: int, *extra: list[np.ndarray]) -> list[np.ndarray]:
        """Draw ``batch`` crops ``(B, C, *patch)``; the same crops of each list in ``extra`` too."""
        p = self.patch
        out = [np.empty((batch, self.samples[0].shape[-1]) + p, np.float32) for _ in range(1 + len(extra))]
        self.kept = np.ones((batch,) + p, np.float32) if self.holdout is not None or self.measured is not None else None
        self.drawn = []
        for b in range(batch):
            i = self.rng.choice(len(self.samples), p=self.weights)
            s = self.samples[i]
            k = self.rng.integers(s.shape[0])
            self.drawn.append((int(i), int(k)))
            starts = [self.rng.integers(s.shape[1 + a] - p[a] + 1) for a in range(self.ndim)]
            window = (k,) + tuple(slice(st, st + pa) for st, pa in zip(starts, p, strict=True))
            rot = self.rng.integers(4) if self.augment else 0
            flips = (
                [bool(f) for f in self.rng.integers(2, size=self.ndim - 1)]
                if self.augment
                else [False] * (self.ndim - 1)
            )
            for dst, src in zip(out, (self.samples,) + extra, strict=True):
                dst[b] = self._transform(np.moveaxis(src[i][window], -1, 0), rot, flips)
            if self.holdout is not None:
                self.kept[b] = self._transform(~self.holdout.window(starts, p)[None], rot, flips)[0]
            if self.measured is not None:
                self.kept[b] *= self._transform(self.measured[i][window][None], rot, flips)[0]
        return out
