"""Region shapes of the paper-mode blocks: how a block's shape is drawn and which pixels of its box it covers.

A block paints a rectangle, an ellipse, a thin line or an irregular blob inside its box (:data:`SHAPES`). The shape is
described by a 7-vector ``[cy, cx, ry, rx, angle, line_width, lobes]`` of the UNCLIPPED box, so a shape cut by the
image border stays cut.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from isstad_plugin.corruption.config import SHAPES, PaperConfig
from isstad_plugin.corruption.sampling import integers, uniform

BLOB_AMPLITUDE = 0.3
"""Radial modulation of ``blob`` shapes: the radius varies between ``1 - 2 * amplitude`` and ``1`` of the box's."""
BLOB_LOBES = (2, 5)
"""Inclusive range of the number of lobes of a ``blob`` shape."""


def sample_shapes(
    top: Tensor,
    left: Tensor,
    block_h: Tensor,
    block_w: Tensor,
    config: PaperConfig,
    generator: torch.Generator | None,
) -> tuple[Tensor, Tensor]:
    """Draw each block's shape kind and its geometry from the unclipped box.

    Args:
        top: ``(B, K)`` int64 first row of the unclipped boxes.
        left: ``(B, K)`` int64 first column of the unclipped boxes.
        block_h: ``(B, K)`` int64 unclipped box heights.
        block_w: ``(B, K)`` int64 unclipped box widths.
        config: Settings (``shapes`` and ``line_width`` are used).
        generator: Optional generator on the boxes' device.

    Returns:
        ``(kind, geometry)``: ``(B, K)`` int64 index into :data:`SHAPES` and ``(B, K, 7)`` float32
        ``[cy, cx, ry, rx, angle, line_width, lobes]`` (see
        :class:`~isstad_plugin.corruption.params.BlockParams`).
    """
    shape, device = tuple(top.shape), top.device
    allowed = torch.tensor([SHAPES.index(name) for name in config.shapes], device=device)
    kind = allowed[integers(shape, 0, len(allowed) - 1, generator, device)]
    angle = uniform(shape, 0.0, 2 * math.pi, generator, device)
    line_width = uniform(shape, *config.line_width, generator, device)
    lobes = integers(shape, *BLOB_LOBES, generator, device).float()
    geometry = torch.stack(
        [
            top.float() + (block_h.float() - 1) / 2,
            left.float() + (block_w.float() - 1) / 2,
            block_h.float() / 2,
            block_w.float() / 2,
            angle,
            line_width,
            lobes,
        ],
        dim=-1,
    )
    return kind, geometry


def inside_shape(y: Tensor, x: Tensor, kind: Tensor, geometry: Tensor) -> Tensor:
    """Whether pixels ``(y, x)`` lie inside their block's shape (element-wise; shared with the tests' loop oracle).

    Args:
        y: Pixel rows (float32).
        x: Pixel columns (float32).
        kind: Shape index into :data:`SHAPES`, broadcasting with ``y``.
        geometry: ``(..., 7)`` shape geometry (see :func:`sample_shapes`), its leading shape broadcasting with ``y``.

    Returns:
        Bool tensor: rectangles hold every pixel of their box, ellipses those within the inscribed ellipse, lines
        those within ``line_width / 2`` of the line through the centre at ``angle``, blobs those within the ellipse
        whose radius is modulated by ``1 - a + a cos(lobes * phi + angle)``.
    """
    cy, cx, ry, rx, angle, line_width, lobes = geometry.unbind(-1)
    dy, dx = y - cy, x - cx
    ny, nx = dy / ry, dx / rx
    radius2 = ny * ny + nx * nx
    ellipse = radius2 <= 1.0
    line = (dx * torch.sin(angle) - dy * torch.cos(angle)).abs() <= line_width / 2
    limit = 1.0 - BLOB_AMPLITUDE + BLOB_AMPLITUDE * torch.cos(lobes * torch.atan2(ny, nx) + angle)
    blob = radius2 <= limit * limit
    inside = torch.ones_like(ellipse)
    for index, member in ((1, ellipse), (2, line), (3, blob)):
        inside = torch.where(kind == index, member, inside)
    return inside
