"""Stage-2 pixel-level corruption of ISSTAD (paper §3.3.1 and §4.1.3 "Data Augmentation").

:class:`PixelCorruption` corrupts a batch of clean training images and returns pixel labels for the pixel classifier
head: 5/6 of the images get 1-100 random blocks, each with one or more of flip, rotation, blur, colour change and
Gaussian noise; a pixel is labelled 1 exactly where its value changed. Its pieces:
:mod:`~isstad_plugin.corruption.config` (settings), :mod:`~isstad_plugin.corruption.params` (the block table, its
sampling and the exact semantics), :mod:`~isstad_plugin.corruption.render` (the vectorised renderer) and
:mod:`~isstad_plugin.corruption.soft` (soft regions); the tests' loop oracle is ``tests/corruption/reference.py``.

Dtype rule: computation is in float32 and the corrupted batch is returned in the input dtype (float16, bfloat16,
float32 or float64); labels are always float32. Everything runs on the images' device.

Layer: beside ``data``, below ``training``. May import ``validation`` only.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from isstad_plugin.corruption.config import OPERATIONS, PAPER_CORRUPT_PROB, SHAPES, PaperConfig
from isstad_plugin.corruption.params import BlockParams, sample_params
from isstad_plugin.corruption.render import apply_vectorised
from isstad_plugin.corruption.soft import add_soft_regions

__all__ = [
    "OPERATIONS",
    "PAPER_CORRUPT_PROB",
    "SHAPES",
    "BlockParams",
    "PaperConfig",
    "PixelCorruption",
    "check_image_batch",
    "grey_images",
]

GREY_TOLERANCE = 2e-3
"""An RGB image counts as grey when no pixel's channels differ by more than this."""
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


def grey_images(images: Tensor) -> Tensor:
    """``(B,)`` bool: the images whose channels agree within :data:`GREY_TOLERANCE` at every pixel (all 1-channel)."""
    spread = images.amax(dim=1) - images.amin(dim=1)
    return spread.flatten(1).amax(dim=1) <= GREY_TOLERANCE


class PixelCorruption(nn.Module):
    """Corrupt clean images and label the corrupted pixels (ISSTAD stage 2). No trainable parameters.

    Args:
        config: The settings; ``None``: the defaults (:class:`PaperConfig`).
        **settings: Fields of :class:`PaperConfig` by name (``corrupt_prob``, ``num_blocks``, ``soft_prob``, ...)
            that replace ``config``'s; lists become tuples (as YAML and the command line give them).

    Raises:
        ValueError: An unknown setting (naming the nearest valid one) or a bad value, in one line.

    Example:
        >>> corruption = PixelCorruption()
        >>> corrupted, labels = corruption(torch.rand(4, 3, 64, 64), generator=0)
        >>> corrupted.shape, labels.shape
        (torch.Size([4, 3, 64, 64]), torch.Size([4, 1, 64, 64]))
    """

    def __init__(self, config: PaperConfig | None = None, **settings: Any) -> None:
        super().__init__()
        self.config = (config or PaperConfig()).replace(**settings)

    def extra_repr(self) -> str:
        """Show the settings in ``print(module)``."""
        return f"config={self.config}"

    @torch.no_grad()
    def forward(self, images: Tensor, generator: torch.Generator | int | None = None) -> tuple[Tensor, Tensor]:
        """Corrupt a batch.

        Args:
            images: ``(B, C, H, W)`` float images in [0, 1], ``C`` in {1, 3}, any device; ``H != W`` is fine.
            generator: Optional ``torch.Generator`` on the images' device, or an int seed, for reproducible output.

        Returns:
            ``(corrupted, labels)``: ``corrupted`` has the input's shape, dtype and device and values in [0, 1];
            ``labels`` is float32 ``(B, 1, H, W)`` in {0, 1}, 1 exactly at the changed pixels. Uncorrupted images are
            returned unchanged with zero labels; without soft regions the output equals the input wherever the label
            is 0 (a soft region may move unlabelled pixels by up to ``soft_label_threshold``,
            :mod:`~isstad_plugin.corruption.soft`).

        Raises:
            TypeError: ``images`` is not a float tensor, or ``generator`` has a wrong type.
            ValueError: wrong shape, channel count or value range, or a generator on another device.
        """
        low, high = check_image_batch(images)
        generator = resolve_generator(generator, images.device)
        batch, channels, height, width = images.shape
        if images.numel() == 0:
            return images.clone(), torch.zeros((batch, 1, height, width), device=images.device)
        if low < 0 or high > 1:
            images = images.clamp(0.0, 1.0)
        grey = grey_images(images) if self.config.preserve_grey else None
        params = sample_params(batch, channels, height, width, self.config, generator, images.device, grey)
        corrupted, labels = apply_vectorised(images, params)
        if self.config.soft_prob == 0:
            return corrupted, labels
        draw = torch.rand((batch,), generator=generator, device=images.device)
        chosen = (params.num_blocks > 0) & (draw < self.config.soft_prob)
        return add_soft_regions(images, corrupted, labels, chosen, params.grey, self.config, generator)
