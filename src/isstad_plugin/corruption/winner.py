"""Which block paints each pixel, found without per-block masks.

The winner is the last valid block whose shape covers the pixel (rule 2 of the semantics in
:mod:`isstad_plugin.corruption.params`).
"""

from __future__ import annotations

import bisect
from typing import NamedTuple

import torch
from torch import Tensor

from isstad_plugin.corruption.params import BlockParams
from isstad_plugin.corruption.shapes import inside_shape

CHUNK_PIXELS = 1 << 16
"""Pixels processed per step of the vectorised path: bounds the temporaries (a few MiB) whatever the batch size."""


class _Boxes(NamedTuple):
    """Flat ``(N,)`` tables of the blocks' clipped boxes, ``N = B * K`` (int32 unless noted).

    Attributes:
        area: int64 pixel count of each box, 0 for padding blocks.
        end: int64 running total of ``area``: the box's pixels are numbers ``end - area .. end - 1``.
        first: Number of the box's first pixel (``end - area``).
        base: Flat ``(b, y, x)`` index of the box's top-left pixel.
        top: First row.
        left: First column.
        width: Box width.
        shape: int64 shape index.
        geometry: ``(N, 7)`` float32 shape geometry.
    """

    area: Tensor
    end: Tensor
    first: Tensor
    base: Tensor
    top: Tensor
    left: Tensor
    width: Tensor
    shape: Tensor
    geometry: Tensor


def _boxes(params: BlockParams, height: int, width: int) -> _Boxes:
    """Lay the valid blocks' boxes out flat for enumeration."""
    batch, k_max = params.top.shape
    device = params.top.device
    valid = torch.arange(k_max, device=device) < params.num_blocks.unsqueeze(1)
    area = torch.where(valid, params.height * params.width, 0).reshape(-1)
    end = torch.cumsum(area, dim=0)
    base = (torch.arange(batch, device=device).unsqueeze(1) * height + params.top) * width + params.left
    return _Boxes(
        area=area,
        end=end,
        first=(end - area).int(),
        base=base.reshape(-1).int(),
        top=params.top.reshape(-1).int(),
        left=params.left.reshape(-1).int(),
        width=params.width.reshape(-1).int(),
        shape=params.shape.reshape(-1),
        geometry=params.shape_geometry.reshape(-1, 7),
    )


def _run_pixels(boxes: _Boxes, first: int, last: int, done: int, width: int, shaped: bool) -> tuple[Tensor, Tensor]:
    """Enumerate the pixels of boxes ``first .. last - 1`` (pixel numbers from ``done`` on).

    Returns:
        ``(pixel, block)``: int32 flat pixel indices and the flat index of their block, -1 outside the block's shape.
    """
    device = boxes.base.device
    block = torch.arange(first, last, dtype=torch.int32, device=device).repeat_interleave(boxes.area[first:last])
    enumerated = torch.arange(done, done + block.numel(), dtype=torch.int32, device=device)
    local = enumerated - boxes.first.index_select(0, block)
    w = boxes.width.index_select(0, block)
    row = torch.div(local, w, rounding_mode="floor")
    pixel = boxes.base.index_select(0, block) + row * (width - w) + local
    if shaped:
        y = (boxes.top.index_select(0, block) + row).float()
        x = (boxes.left.index_select(0, block) + local - row * w).float()
        inside = inside_shape(y, x, boxes.shape.index_select(0, block), boxes.geometry.index_select(0, block))
        block = torch.where(inside, block, -1)
    return pixel, block


def last_block_index(params: BlockParams, height: int, width: int) -> Tensor:
    """For every pixel of the batch, the flat index ``b * K + k`` of the last block covering it, or -1.

    Instead of ``B x K x H x W`` coverage masks, the pixels of every valid block's box are enumerated, for runs of
    consecutive blocks holding about :data:`CHUNK_PIXELS` pixels, those outside the block's shape dropped
    (:func:`~isstad_plugin.corruption.shapes.inside_shape`), and the rest scattered with ``amax``; memory stays small
    and time scales with the total box area.

    Args:
        params: Sampled block parameters.
        height: Image height ``H``.
        width: Image width ``W``.

    Returns:
        ``(B * H * W,)`` int32 tensor, in row-major ``(b, y, x)`` order.
    """
    boxes = _boxes(params, height, width)
    shaped = bool((params.shape != 0).any())  # only rectangles: every box pixel is covered
    winner = torch.full((params.top.shape[0] * height * width,), -1, dtype=torch.int32, device=params.top.device)
    ends = boxes.end.tolist()
    first = 0
    while first < len(ends) and ends[first] - int(boxes.area[first]) < ends[-1]:
        done = ends[first - 1] if first > 0 else 0
        last = max(bisect.bisect_right(ends, done + CHUNK_PIXELS), first + 1)
        pixel, block = _run_pixels(boxes, first, last, done, width, shaped)
        winner.scatter_reduce_(0, pixel.long(), block, reduce="amax")
        first = last
    return winner
