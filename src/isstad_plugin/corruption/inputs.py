"""Checks of what :class:`~isstad_plugin.corruption.PixelCorruption` is given: the image batch and the generator."""

from __future__ import annotations

import math

import torch
from torch import Tensor

VALUE_EPSILON = 1e-3
"""Inputs may exceed [0, 1] by this much (rounding of resized or low-precision images); they are clamped first."""


def check_image_batch(images: object) -> tuple[float, float]:
    """Raise a one-line ``TypeError``/``ValueError`` unless ``images`` is a float ``(B, C, H, W)`` batch in [0, 1].

    Values up to :data:`VALUE_EPSILON` outside [0, 1] are accepted (the caller clamps them).

    Args:
        images: The candidate batch.

    Returns:
        The minimum and maximum value (``(0.0, 1.0)`` for an empty batch).
    """
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a torch.Tensor of shape (B, C, H, W), got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(
            f"images must have shape (B, C, H, W), got {tuple(images.shape)}; "
            "add a batch dimension with images.unsqueeze(0) for a single image"
        )
    if not images.is_floating_point():
        raise TypeError(
            f"images must be a float tensor in [0, 1], got {images.dtype}; "
            "convert with images.float() / 255 for 8-bit images"
        )
    if images.shape[1] not in (1, 3):
        raise ValueError(
            f"images must have 1 or 3 channels, got {images.shape[1]} (shape {tuple(images.shape)}); "
            "pass channels first as (B, C, H, W)"
        )
    if images.numel() == 0:
        return 0.0, 1.0
    extremes = torch.aminmax(images.detach())
    low, high = float(extremes.min), float(extremes.max)
    if math.isnan(low) or math.isnan(high):
        raise ValueError("images contain NaN values; fix the data pipeline before corrupting")
    if not (low >= -VALUE_EPSILON and high <= 1 + VALUE_EPSILON):
        raise ValueError(
            f"images must hold values in [0, 1], got min {low:.4g} and max {high:.4g}; "
            "undo any normalisation (e.g. x * 0.5 + 0.5 for [-1, 1] inputs) first"
        )
    return low, high


def resolve_generator(seed: torch.Generator | int | None, device: torch.device) -> torch.Generator | None:
    """Turn an optional seed or generator into a generator on ``device``.

    Args:
        seed: A ``torch.Generator`` on the device type of ``device``, an int seed, or ``None``.
        device: The images' device.

    Returns:
        The generator, or ``None`` (the global RNG) for ``None``.

    Raises:
        TypeError: ``seed`` has another type.
        ValueError: The generator is on another device type.
    """
    if seed is None:
        return None
    if isinstance(seed, torch.Generator):
        if seed.device.type != device.type:
            raise ValueError(
                f"generator is on {seed.device} but images are on {device}; "
                f"create it with torch.Generator(device={str(device)!r})"
            )
        return seed
    if isinstance(seed, int) and not isinstance(seed, bool):
        return torch.Generator(device=device).manual_seed(seed)
    raise TypeError(f"generator must be a torch.Generator, an int seed or None, got {type(seed).__name__}")
