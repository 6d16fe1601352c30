"""Where a paper-mode block reads its pixels: affine source maps, bilinear corners and the blur pyramid.

These formulas are shared by the vectorised renderer and the tests' loop oracle, so both read exactly the same
coordinates.
"""

from __future__ import annotations

import torch
from torch import Tensor

from isstad_plugin.corruption.params import BlockParams


def block_affine(params: BlockParams) -> Tensor:
    """Per-block affine source maps as a float32 ``(6, B, K)`` tensor ``[a00, a01, oy, a10, a11, ox]``.

    Output pixel ``(y, x)`` of a block reads the source at ``(a00 y + a01 x + oy, a10 y + a11 x + ox)``, which is
    ``c + A (p - c)`` with ``A = params.geometry`` and ``c = (top + (height - 1) / 2, left + (width - 1) / 2)`` the
    block centre. For identity, flips and most right-angle rotations every entry is an integer, so integer pixels map
    exactly to integer pixels.

    Args:
        params: Sampled block parameters.

    Returns:
        The stacked map entries.
    """
    cy = params.top.float() + (params.height.float() - 1.0) / 2.0
    cx = params.left.float() + (params.width.float() - 1.0) / 2.0
    a00, a01 = params.geometry[..., 0, 0], params.geometry[..., 0, 1]
    a10, a11 = params.geometry[..., 1, 0], params.geometry[..., 1, 1]
    oy = cy - a00 * cy - a01 * cx
    ox = cx - a10 * cy - a11 * cx
    return torch.stack([a00, a01, oy, a10, a11, ox])


def source_coordinates(y: Tensor, x: Tensor, affine: Tensor) -> tuple[Tensor, Tensor]:
    """Map output pixel coordinates to source coordinates with a :func:`block_affine` map (element-wise).

    Args:
        y: Output rows (float32).
        x: Output columns (float32).
        affine: ``(6, ...)`` maps whose trailing shape broadcasts with ``y`` and ``x``.

    Returns:
        Source rows and columns.
    """
    return affine[0] * y + affine[1] * x + affine[2], affine[3] * y + affine[4] * x + affine[5]


def bilinear_corners(
    sy: Tensor, sx: Tensor, height: int, width: int
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Border-clamped bilinear corners: ``y0, y1, x0, x1`` (int32) and weights ``wy, wx`` (float32).

    At integer coordinates the weights are exactly 0, so interpolation returns the pixel value exactly.

    Args:
        sy: Source rows (float32).
        sx: Source columns (float32).
        height: Image height.
        width: Image width.

    Returns:
        The corner rows and columns and the interpolation weights.
    """
    sy, sx = sy.clamp(0, height - 1), sx.clamp(0, width - 1)
    fy, fx = sy.floor(), sx.floor()
    y0, x0 = fy.int(), fx.int()
    return y0, (y0 + 1).clamp(max=height - 1), x0, (x0 + 1).clamp(max=width - 1), sy - fy, sx - fx


def average_pool_2x2(images: Tensor) -> Tensor:
    """2x2 average pooling with ceil mode: a partial window at an odd border averages the pixels it holds.

    An odd last row or column is duplicated first, which gives exactly that average.

    Args:
        images: ``(..., H, W)`` float images.

    Returns:
        ``(..., ceil(H / 2), ceil(W / 2))`` pooled images.
    """
    if images.shape[-2] % 2:
        images = torch.cat([images, images[..., -1:, :]], dim=-2)
    if images.shape[-1] % 2:
        images = torch.cat([images, images[..., -1:]], dim=-1)
    rows = images[..., 0::2, :] + images[..., 1::2, :]
    return (rows[..., 0::2] + rows[..., 1::2]) * 0.25


def blur_pyramid(images: Tensor, levels: int) -> list[Tensor]:
    """Return ``[images, pool(images), pool(pool(images)), ...]`` with ``levels`` pooled copies.

    ``pool`` is :func:`average_pool_2x2`, so level ``l`` is the image low-passed and subsampled by ``2**l``.

    Args:
        images: ``(..., H, W)`` float images (level 0).
        levels: Number of pooled levels.

    Returns:
        The ``levels + 1`` levels.
    """
    pyramid = [images]
    for _ in range(levels):
        pyramid.append(average_pool_2x2(pyramid[-1]))
    return pyramid


def level_coordinates(coordinate: Tensor, scale: float) -> Tensor:
    """Map full-resolution pixel coordinates to a pyramid level of scale ``2**-level`` (pixel centres stay aligned).

    Args:
        coordinate: Full-resolution rows or columns.
        scale: ``2**-level``.

    Returns:
        The coordinates on the level.
    """
    return (coordinate + 0.5) * scale - 0.5
