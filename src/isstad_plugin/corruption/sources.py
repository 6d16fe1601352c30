"""Where the vectorised renderer reads pixels: the clean batch and its blur pyramid, stored flat, sampled bilinearly."""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import torch
from torch import Tensor

from isstad_plugin.corruption.geometry import bilinear_corners, blur_pyramid, level_coordinates


@dataclass(frozen=True)
class Sources:
    """Where the vectorised path reads source pixels from.

    Attributes:
        channels: Number of channels ``C``.
        height: Image height ``H``.
        width: Image width ``W``.
        clean: The clean batch, flat float32.
        pooled: Pyramid levels 1.. concatenated flat (empty when no block is blurred).
        level_start: ``(L + 1,)`` int32 offset of each level in ``pooled`` (index 0 unused).
        level_height: ``(L + 1,)`` int32 level heights.
        level_width: ``(L + 1,)`` int32 level widths.
        level_scale: ``(L + 1,)`` float32 ``2**-level``.
    """

    channels: int
    height: int
    width: int
    clean: Tensor
    pooled: Tensor
    level_start: Tensor
    level_height: Tensor
    level_width: Tensor
    level_scale: Tensor


def build_sources(clean: Tensor, levels: int) -> Sources:
    """Build the blur pyramid of the clean batch and lay its pooled levels out flat.

    Args:
        clean: The clean ``(B, C, H, W)`` batch, contiguous float32.
        levels: Number of pooled levels (the highest blur level of the call).

    Returns:
        The flat sources.
    """
    pyramid = blur_pyramid(clean, levels)
    sizes = [level.numel() for level in pyramid]
    starts = [0, 0, *itertools.accumulate(sizes[1:])][: levels + 1]
    pooled = torch.cat([level.reshape(-1) for level in pyramid[1:]]) if levels > 0 else clean.new_empty(0)
    as_tensor = functools.partial(torch.tensor, dtype=torch.int32, device=clean.device)
    _, channels, height, width = clean.shape
    return Sources(
        channels=channels,
        height=height,
        width=width,
        clean=clean.reshape(-1),
        pooled=pooled,
        level_start=as_tensor(starts),
        level_height=as_tensor([level.shape[-2] for level in pyramid]),
        level_width=as_tensor([level.shape[-1] for level in pyramid]),
        level_scale=torch.tensor([0.5**level for level in range(levels + 1)], device=clean.device),
    )


def _interpolate_flat(
    flat: Tensor,
    base: Tensor,
    sy: Tensor,
    sx: Tensor,
    height: Tensor | int,
    width: Tensor | int,
    plane: Tensor | int,
    channels: int,
) -> list[Tensor]:
    """Border-clamped bilinear samples, one ``(n,)`` tensor per channel, of images stored flat.

    Args:
        flat: Flat float32 storage.
        base: ``(n,)`` int32 offset of channel 0, row 0, column 0 of each query's image.
        sy: ``(n,)`` float32 rows.
        sx: ``(n,)`` float32 columns.
        height: Image height (an int or per-query ``(n,)`` int32).
        width: Image width (same).
        plane: Channel stride, ``height * width`` (same).
        channels: Number of channels ``C``.

    Returns:
        The ``C`` channels of the samples.
    """
    y0, y1, x0, x1, wy, wx = bilinear_corners(sy, sx, height, width)
    row0, row1 = base + y0 * width, base + y1 * width
    corners = (row0 + x0, row0 + x1, row1 + x0, row1 + x1)
    samples = []
    for c in range(channels):
        v00, v01, v10, v11 = (flat.index_select(0, corner + c * plane) for corner in corners)
        samples.append(torch.lerp(torch.lerp(v00, v01, wx), torch.lerp(v10, v11, wx), wy))
    return samples


def sample_clean(sources: Sources, image: Tensor, sy: Tensor, sx: Tensor) -> list[Tensor]:
    """Bilinear samples of the clean images ``image`` at full-resolution coordinates ``(sy, sx)``, one per channel."""
    channels, height, width = sources.channels, sources.height, sources.width
    plane = height * width
    return _interpolate_flat(sources.clean, image * (channels * plane), sy, sx, height, width, plane, channels)


def sample_level(sources: Sources, image: Tensor, level: Tensor, sy: Tensor, sx: Tensor) -> list[Tensor]:
    """Bilinear samples of pyramid level ``level`` of images ``image`` at full-resolution ``(sy, sx)``, per channel."""
    level_h, level_w = sources.level_height.index_select(0, level), sources.level_width.index_select(0, level)
    level_plane = level_h * level_w
    base = sources.level_start.index_select(0, level) + image * sources.channels * level_plane
    scale = sources.level_scale.index_select(0, level)
    sy, sx = level_coordinates(sy, scale), level_coordinates(sx, scale)
    return _interpolate_flat(sources.pooled, base, sy, sx, level_h, level_w, level_plane, sources.channels)
