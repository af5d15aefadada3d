"""The training preview: which crop of the data it shows, and the layer that shows it.

The preview is the posterior mean of a central crop of the plane the viewer shows. When
the user moves a slider, the next preview is computed on the new plane: the main thread
puts a new :class:`PreviewTarget` in a :class:`PreviewSource`, which the training thread
reads before each preview.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from ...core.data import to_samples
from .._common import set_or_add_image

__all__ = ["PREVIEW_SIDE", "PreviewTarget", "PreviewSource", "PreviewLayer", "preview_crop"]

PREVIEW_SIDE = 128


@dataclass(frozen=True)
class PreviewTarget:
    """A crop to preview: ``(Y, X, C)``, or ``(Z, Y, X, C)`` for a volume network, whose
    slice ``index`` is shown. ``key`` names the plane (echoed back with the preview)."""

    crop: np.ndarray
    origin: tuple[int, int]
    plane: dict
    index: int | None = None

    @property
    def key(self) -> tuple:
        return tuple(sorted(self.plane.items()))


class PreviewSource:
    """The current :class:`PreviewTarget`, set by the main thread, read by the training thread."""

    def __init__(self, target: PreviewTarget):
        self._lock = threading.Lock()
        self._target = target

    def get(self) -> PreviewTarget:
        with self._lock:
            return self._target

    def set(self, target: PreviewTarget) -> None:
        with self._lock:
            self._target = target


def preview_crop(
    data: np.ndarray, axes: str, side: int = PREVIEW_SIDE, ndim: int = 2, plane: dict | None = None
) -> PreviewTarget:
    """A centred crop of one 2D sample of ``data``: the one at ``plane`` (index per
    non-spatial axis, e.g. ``{"T": 3}``; missing axes: the middle).

    For a volume network (``ndim=3``): a ``(Z, Y, X, C)`` block of up to 16 slices around
    ``plane["Z"]``, smaller in-plane so that a preview stays cheap; ``index`` is the slice
    of the block at ``plane["Z"]``.
    """
    ax = axes.upper()
    spatial = "ZYX" if ndim == 3 else "YX"
    sample_axes = [a for a in ax if a not in spatial + "C"]  # in to_samples' order
    samples = to_samples(data, axes, ndim)
    if ndim == 3:
        side = min(side, 64)
    plane = dict(plane or {})
    lead = [data.shape[ax.index(a)] for a in sample_axes]
    at = {
        a: int(np.clip(plane.get(a, (size - 1) // 2), 0, size - 1)) for a, size in zip(sample_axes, lead, strict=True)
    }
    n = int(np.ravel_multi_index([at[a] for a in sample_axes], lead)) if lead else 0
    h, w = samples.shape[-3], samples.shape[-2]
    sy, sx = min(side, h), min(side, w)
    y0, x0 = (h - sy) // 2, (w - sx) // 2
    if ndim == 3:
        d = samples.shape[1]
        sz = min(16, d)
        z = int(np.clip(plane.get("Z", (d - 1) // 2), 0, d - 1))
        z0 = int(np.clip(z - sz // 2, 0, d - sz))
        crop = np.array(samples[n, z0 : z0 + sz, y0 : y0 + sy, x0 : x0 + sx])
        return PreviewTarget(crop, (y0, x0), {**at, "Z": z}, index=z - z0)
    return PreviewTarget(np.array(samples[n, y0 : y0 + sy, x0 : x0 + sx]), (y0, x0), at)


class PreviewLayer:
    """The ``<name>_ssdn_preview`` layer of one run: placed on top of the crop it shows
    and, for a stack or volume without a channel axis, on the plane it comes from only.

    Follows the viewer's sliders: :meth:`follow` moves the source's target to the plane
    the viewer shows whenever it changes.
    """

    def __init__(self, viewer, layer, data: np.ndarray, axes: str, ndim: int = 2):
        self.viewer, self.layer, self.data, self.axes, self.ndim = viewer, layer, data, axes, ndim
        self.name = f"{layer.name}_ssdn_preview"
        self.dims = axes.replace("C", "") if layer.rgb else axes
        self.rgb = bool(layer.rgb) and "C" in axes and data.shape[axes.index("C")] in (3, 4)
        # The input's contrast, so that the preview compares with the noisy image beside it.
        self.contrast = None if layer.rgb else tuple(float(v) for v in layer.contrast_limits)
        self.source = PreviewSource(preview_crop(data, axes, ndim=ndim, plane=self.viewer_plane()))
        self._following = False

    # -- which plane -------------------------------------------------------------------
    def viewer_plane(self) -> dict:
        """Index of the plane the viewer shows along each axis of the layer (letters of ``dims``)."""
        try:
            coords = np.asarray(self.layer.world_to_data(self.viewer.dims.point), dtype=float)
        except Exception:  # noqa: BLE001 - no usable mapping: the middle
            return {}
        plane = {}
        for i, a in enumerate(self.dims):
            if a not in "YX" and a != "C" and i < coords.size and np.isfinite(coords[i]):
                plane[a] = int(round(coords[i]))
        return plane

    def follow(self) -> None:
        """Retarget the preview whenever the viewer's current plane changes."""
        if not self._following:
            self.viewer.dims.events.current_step.connect(self._on_step)
            self._following = True

    def unfollow(self) -> None:
        if self._following:
            self.viewer.dims.events.current_step.disconnect(self._on_step)
            self._following = False

    def _on_step(self, event=None) -> None:
        target = preview_crop(self.data, self.axes, ndim=self.ndim, plane=self.viewer_plane())
        if target.key != self.source.get().key:
            self.source.set(target)

    # -- drawing -----------------------------------------------------------------------
    def geometry(self, target_plane: dict, origin: tuple[int, int]) -> tuple[dict, int]:
        """Layer keyword arguments placing a preview of ``origin`` on ``target_plane``,
        and the number of leading plane axes it keeps."""
        layer, dims = self.layer, self.dims
        iy, ix = dims.index("Y"), dims.index("X")
        leading = [i for i, a in enumerate(dims) if a not in "YX"] if target_plane and "C" not in dims else []
        at = {iy: origin[0], ix: origin[1], **{i: target_plane.get(dims[i], 0) for i in leading}}
        keep = leading + [iy, ix]
        geom = {
            "scale": tuple(float(layer.scale[i]) for i in keep),
            "translate": tuple(float(layer.translate[i]) + at[i] * float(layer.scale[i]) for i in keep),
            "units": tuple(str(layer.units[i]) for i in keep),
            "axis_labels": tuple(str(layer.axis_labels[i]) for i in keep),
        }
        return geom, len(leading)

    def show(self, preview: np.ndarray, plane: dict | None = None, origin: tuple[int, int] | None = None):
        """Draw ``preview`` (``(Y, X, C)``) computed on ``plane`` (default: the source's)."""
        if plane is None or origin is None:
            target = self.source.get()
            plane, origin = target.plane, target.origin
        base, lead = self.geometry(plane, origin)
        img = preview[..., 0] if preview.shape[-1] == 1 else preview
        if img.ndim == 3 and not self.rgb:
            img = np.moveaxis(img, -1, 0)  # channels first, shown as a small stack
            channel_axis = {"scale": (1.0,), "translate": (0.0,), "units": ("pixel",), "axis_labels": ("c",)}
            geom = {k: channel_axis[k] + tuple(v) for k, v in base.items()}
        else:
            geom = dict(base)
            img = img.reshape((1,) * lead + img.shape)  # one plane of the stack or volume
        if self.rgb:
            img = np.clip(img, 0, None)
        elif img.ndim == 2 and self.contrast is not None:
            geom["contrast_limits"] = self.contrast
        return set_or_add_image(self.viewer, self.name, img.astype(np.float32), rgb=self.rgb, **geom)
