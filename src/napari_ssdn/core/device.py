"""Device choice: CUDA, then Apple MPS, then CPU, unless forced."""

from __future__ import annotations

import contextlib

import torch

from .errors import SSDNError, setting

__all__ = ["resolve_device", "device_name", "bf16_cpu", "network_precision"]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Return the torch device for ``device`` ('auto', 'cpu', 'cuda', 'cuda:1', 'mps')."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise SSDNError(
            f"{setting('device', device)} is not a device name; use auto, cpu, cuda, cuda:N or mps"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SSDNError(
            f"{setting('device', device)} was asked for but this torch has no CUDA GPU; "
            f"use {setting('device', 'cpu')} or auto"
        )
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise SSDNError(
            f"{setting('device', device)} was asked for but Apple MPS is not available; "
            f"use {setting('device', 'cpu')} or auto"
        )
    return dev


def device_name(dev: torch.device) -> str:
    """Human-readable name: the GPU model, or 'CPU (N threads)'."""
    if dev.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(dev)}"
    if dev.type == "mps":
        return "Apple GPU (MPS)"
    return f"CPU ({torch.get_num_threads()} threads)"


def bf16_cpu() -> bool:
    """Whether this CPU runs bfloat16 convolutions natively (AVX512-BF16 / AMX): then
    mixed precision nearly doubles training speed."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # noqa: BLE001 - private API; absence just means no bf16
        return False


def network_precision(dev: torch.device, enabled: bool = True):
    """Autocast for the network's convolutions where the hardware is fast at it: bfloat16
    (float16 without it) on CUDA, bfloat16 on CPUs with native support, else float32
    (bfloat16 on an AVX2-only CPU is hundreds of times slower). float64 tensors are never cast."""
    if enabled and dev.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    if enabled and dev.type == "cpu" and bf16_cpu():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()
