"""The fixed validation windows of a training run."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["ValidationSet", "square_plane"]


def square_plane(sizes: list[int]) -> tuple[int, ...]:
    """Crop sizes with y and x equal (the smaller): rotations in the image plane need it."""
    side = min(sizes[-2:])
    return tuple(sizes[:-2]) + (side, side)


@dataclass
class ValidationSet:
    """Windows of the data scored by every validation: the same pixels each time.

    Attributes
    ----------
    y : Tensor
        ``(N, C, *size)`` noisy windows (normalised).
    target : Tensor or None
        Clean windows (supervised mode).
    anchor : Tensor or None
        Per-image models: each window's image's noise anchor.
    held : Tensor or None
        ``(N, *size)`` pixels that count (held-out and measured); None: all.
    """

    y: torch.Tensor
    target: torch.Tensor | None
    anchor: torch.Tensor | None
    held: torch.Tensor | None

    @classmethod
    def build(
        cls, samples, multiples, side: int, max_pixels: int, targets=None, holdout=None, measured=None, anchor_of=None
    ):
        """Non-overlapping windows tiling ``samples`` (fixed seed, independent of training
        randomness), at most ``max_pixels`` pixels in all.

        Parameters
        ----------
        samples : list of ndarray
            Normalised ``(S, *spatial, C)`` arrays.
        multiples : tuple of int
            The network's size multiple per spatial axis.
        side : int
            Largest window side.
        max_pixels : int
        targets : list of ndarray, optional
        holdout : HoldoutPattern, optional
        measured : list of ndarray, optional
            Boolean ``(S, *spatial)`` masks of measured pixels.
        anchor_of : callable, optional
            Maps ``[(image index, sample index), ...]`` to per-image anchors.
        """
        shapes = [s.shape[1:-1] for s in samples]
        size = square_plane(
            [max(m, (min(side, min(sh[a] for sh in shapes)) // m) * m) for a, m in enumerate(multiples)]
        )
        windows = []
        for i, s in enumerate(samples):
            # From the start of each axis, the last one flush with its end.
            starts = [sorted({*range(0, n - z + 1, z), n - z}) for n, z in zip(s.shape[1:-1], size, strict=True)]
            corners = np.stack(np.meshgrid(*starts, indexing="ij"), -1).reshape(-1, len(size))
            windows += [(i, k, corner) for k in range(s.shape[0]) for corner in corners]
        count = max(1, min(len(windows), max_pixels // math.prod(size)))
        picked = [windows[w] for w in np.sort(np.random.default_rng(12345).choice(len(windows), count, replace=False))]

        def region(corner):
            return tuple(slice(c, c + z) for c, z in zip(corner, size, strict=True))

        def stack(arrays) -> torch.Tensor:
            crops = [np.moveaxis(arrays[i][(k,) + region(corner)], -1, 0) for i, k, corner in picked]
            return torch.from_numpy(np.ascontiguousarray(np.stack(crops)))

        held = None
        if holdout is not None:
            held = np.stack([holdout.window(corner, size) for _, _, corner in picked])
        if measured is not None:
            seen = np.stack([measured[i][(k,) + region(corner)] for i, k, corner in picked])
            held = seen if held is None else held & seen
        return cls(
            y=stack(samples),
            target=stack(targets) if targets is not None else None,
            anchor=anchor_of([(i, k) for i, k, _ in picked]) if anchor_of is not None else None,
            held=None if held is None else torch.from_numpy(held),
        )

    @property
    def pixels(self) -> int:
        return self.y.shape[0] * math.prod(self.y.shape[2:])

    def batches(self, device: torch.device, pixels: int):
        """``(y, target, anchor, held)`` on ``device``, about ``pixels`` pixels a batch, so
        that validating needs no more memory than a training step."""
        per = max(1, pixels // math.prod(self.y.shape[2:]))
        on = lambda t: None if t is None else t.to(device)  # noqa: E731
        for lo in range(0, self.y.shape[0], per):
            part = slice(lo, lo + per)
            yield (
                on(self.y[part]),
                on(None if self.target is None else self.target[part]),
                None if self.anchor is None else self.anchor[part],
                on(None if self.held is None else self.held[part]),
            )
