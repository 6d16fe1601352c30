"""Which device ``isstad demo``, ``isstad benchmark`` and ``isstad predict`` train and test on."""

from __future__ import annotations

from typing import Any


def device_args(accelerator: str = "auto", devices: str | int = "auto") -> dict[str, Any]:
    """Lightning's ``accelerator`` and ``devices`` for a single-process run.

    Args:
        accelerator: ``auto`` (a CUDA GPU when torch sees one, else the CPU), or any Lightning accelerator name
            (``cpu``, ``gpu``, ``cuda``, ``mps``).
        devices: ``auto`` (one device: these commands train and test one model at a time in one process), a count
            (``2``) or Lightning's device list (``"0,1"``).

    Returns:
        ``{"accelerator": ..., "devices": ...}`` for :class:`anomalib.engine.Engine`.
    """
    if accelerator == "auto":
        import torch

        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    if devices == "auto":
        devices = 1
    elif isinstance(devices, str) and devices.isdigit():
        devices = int(devices)
    return {"accelerator": accelerator, "devices": devices}
