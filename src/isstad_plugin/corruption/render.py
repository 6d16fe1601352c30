"""The vectorised paper-mode renderer: applies a :class:`~isstad_plugin.corruption.params.BlockParams` to a batch.

It implements the semantics documented in :mod:`isstad_plugin.corruption.params` without any Python loop over images
or blocks: :func:`~isstad_plugin.corruption.winner.last_block_index` finds each pixel's winning block, the per-block
values are laid out in a :class:`BlockTable`, and the covered pixels are rendered in chunks from their winning block
only, reading the clean batch or a level of its blur pyramid.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from isstad_plugin.corruption.geometry import (
    bilinear_corners,
    block_affine,
    blur_pyramid,
    level_coordinates,
    source_coordinates,
)
from isstad_plugin.corruption.params import BlockParams
from isstad_plugin.corruption.winner import CHUNK_PIXELS, last_block_index

CHANGE_TOLERANCE = 1 / 255
"""A pixel counts as changed when some channel moved by more than this: one 8-bit grey level."""


def _interpolate(images: Tensor, image: Tensor, sy: Tensor, sx: Tensor) -> list[Tensor]:
    """Border-clamped bilinear samples of images ``image`` of a ``(B, C, h, w)`` batch, one ``(n,)`` tensor per channel.

    Args:
        images: Contiguous float32 batch (a level of the clean batch's blur pyramid).
        image: ``(n,)`` int32 image indices.
        sy: ``(n,)`` float32 rows on ``images``.
        sx: ``(n,)`` float32 columns on ``images``.

    Returns:
        The ``C`` channels of the samples.
    """
    _, channels, height, width = images.shape
    plane = height * width
    y0, y1, x0, x1, wy, wx = bilinear_corners(sy, sx, height, width)
    base = image * (channels * plane)
    row0, row1 = base + y0 * width, base + y1 * width
    corners = (row0 + x0, row0 + x1, row1 + x0, row1 + x1)
    samples = []
    for c in range(channels):
        v00, v01, v10, v11 = (images.view(-1).index_select(0, corner + c * plane) for corner in corners)
        samples.append(torch.lerp(torch.lerp(v00, v01, wx), torch.lerp(v10, v11, wx), wy))
    return samples


class BlockTable(NamedTuple):
    """Per-block values for per-pixel gathers, flat over the ``N = B * K`` blocks (index ``b * K + k``, always last).

    Read paths: ``level`` is -1 for unblurred blocks whose source map sends the block's integer pixels to integer
    pixels inside the image (identity, flips, most right-angle rotations): those read the flat clean offset
    ``step_y * y + step_x * x + start`` directly, which is what bilinear interpolation returns there. Other blocks
    interpolate level ``level`` of the blur pyramid: 0 (the clean batch) for unblurred ones, their blur level for
    blurred ones. Integer fields are int32.

    Attributes:
        level: ``(N,)`` read path: -1 (direct) or the pyramid level interpolated.
        affine: ``(6, N)`` float32 source maps ``[a00, a01, oy, a10, a11, ox]``
            (:func:`~isstad_plugin.corruption.geometry.block_affine`).
        step_y: ``(N,)`` row stride of the direct read.
        step_x: ``(N,)`` column stride of the direct read.
        start: ``(N,)`` offset of the direct read.
        colour: ``(N,)`` bool, blocks whose colour map is not the identity.
        colour_matrix: ``(C, C, N)`` float32 colour matrices ``M``.
        colour_shift: ``(C, N)`` float32 colour offsets ``t``.
        noise_std: ``(N,)`` float32 noise standard deviation (0: no noise).
        noise_origin: ``(N,)`` offset in the noise of image pixel ``(0, 0)`` in the block's patch,
            ``noise_start - top * width - left``, so pixel ``(y, x)`` reads ``noise_origin + y * width + x``.
        noise_plane: ``(N,)`` channel stride of the noise patch: 0 for grey images (one noise channel), ``h * w``.
        width: ``(N,)`` clipped box width.
    """

    level: Tensor
    affine: Tensor
    step_y: Tensor
    step_x: Tensor
    start: Tensor
    colour: Tensor
    colour_matrix: Tensor
    colour_shift: Tensor
    noise_std: Tensor
    noise_origin: Tensor
    noise_plane: Tensor
    width: Tensor


def _flat(table: Tensor) -> Tensor:
    """Move the leading ``(B, K)`` dims of ``table`` last and flatten them to ``N``; int64 becomes int32."""
    flat = table.movedim((0, 1), (-2, -1)).reshape(*table.shape[2:], -1).contiguous()
    return flat.int() if flat.dtype == torch.long else flat


def block_table(params: BlockParams, channels: int, height: int, width: int) -> BlockTable:
    """Lay the sampled parameters out as a :class:`BlockTable` for a ``(B, C, H, W)`` batch.

    Args:
        params: Sampled block parameters.
        channels: Number of channels ``C``.
        height: Image height ``H``.
        width: Image width ``W``.

    Returns:
        The flat per-block table.
    """
    batch = params.top.shape[0]
    affine = block_affine(params)
    bottom, right = params.top + params.height - 1, params.left + params.width - 1
    corner_y = torch.stack([params.top, params.top, bottom, bottom]).float()
    corner_x = torch.stack([params.left, right, params.left, right]).float()
    source_y, source_x = source_coordinates(corner_y, corner_x, affine.unsqueeze(1))
    inside = ((source_y >= 0) & (source_y <= height - 1) & (source_x >= 0) & (source_x <= width - 1)).all(dim=0)
    direct = (affine == affine.round()).all(dim=0) & inside & (params.blur_level == 0)
    image_start = torch.arange(batch, device=affine.device).unsqueeze(1) * (channels * height * width)
    integer = affine.round().long()
    eye = torch.eye(channels, device=affine.device)
    return BlockTable(
        level=_flat(torch.where(direct, -1, params.blur_level)),
        affine=affine.reshape(6, -1).contiguous(),
        step_y=_flat(torch.where(direct, integer[0] * width + integer[3], width)),
        step_x=_flat(torch.where(direct, integer[1] * width + integer[4], 1)),
        start=_flat(image_start + torch.where(direct, integer[2] * width + integer[5], 0)),
        colour=_flat((params.colour_matrix != eye).any(-1).any(-1) | (params.colour_offset != 0).any(-1)),
        colour_matrix=_flat(params.colour_matrix),
        colour_shift=_flat(params.colour_offset),
        noise_std=_flat(params.noise_std),
        noise_origin=_flat(params.noise_start - params.top * params.width - params.left),
        noise_plane=_flat(torch.where(params.grey.unsqueeze(1), 0, params.height * params.width)),
        width=_flat(params.width),
    )


def _read_direct(clean: Tensor, table: BlockTable, y: Tensor, x: Tensor, block: Tensor) -> Tensor:
    """Read every pixel of the contiguous float32 ``clean`` batch at its direct offset; returns ``(C, n)``."""
    offset = table.step_y.index_select(0, block) * y + table.step_x.index_select(0, block) * x
    offset = offset + table.start.index_select(0, block)
    _, channels, height, width = clean.shape
    values = clean.new_empty((channels, block.numel()))
    for c in range(channels):
        torch.index_select(clean.view(-1), 0, offset + c * (height * width), out=values[c])
    return values


def _read_interpolated(
    pyramid: list[Tensor], table: BlockTable, values: Tensor, image: Tensor, y: Tensor, x: Tensor, block: Tensor
) -> None:
    """Overwrite, in ``values``, the pixels of interpolated blocks with bilinear samples of their pyramid level."""
    level = table.level.index_select(0, block)
    for index, source in enumerate(pyramid):
        chosen = torch.nonzero(level == index).squeeze(1)
        if chosen.numel() == 0:
            continue
        affine = table.affine.index_select(1, block.index_select(0, chosen))
        sy, sx = source_coordinates(y.index_select(0, chosen).float(), x.index_select(0, chosen).float(), affine)
        if index > 0:
            sy, sx = level_coordinates(sy, 0.5**index), level_coordinates(sx, 0.5**index)
        for value, sample in zip(values, _interpolate(source, image.index_select(0, chosen), sy, sx), strict=True):
            value.scatter_(0, chosen, sample)


def _apply_colour(table: BlockTable, values: Tensor, block: Tensor) -> None:
    """Apply, in place, the colour map ``M v + t`` of the pixels whose block has a non-identity one.

    ``M v`` is summed over ``j = 0, 1, ...`` before ``t`` is added. The sampled maps
    (:mod:`~isstad_plugin.corruption.colour`) have at most one non-zero term per output channel where ``t != 0``, so
    any order of the sum gives the same bits except within grayscale's three products. (A batched ``matmul`` or
    ``einsum`` gives the same bits on CPU but is about 2x slower here.)
    """
    chosen = torch.nonzero(table.colour.index_select(0, block)).squeeze(1)
    if chosen.numel() == 0:
        return
    chosen_block = block.index_select(0, chosen)
    channels = values.shape[0]
    # Gathering from the 2-D view is several times faster than index_select along the last dim of a 3-D tensor.
    matrix = table.colour_matrix.flatten(0, 1).index_select(1, chosen_block).view(channels, channels, -1)
    shift = table.colour_shift.index_select(1, chosen_block)
    mixed = (matrix * values.index_select(1, chosen)).sum(dim=1) + shift
    for value, channel in zip(values, mixed, strict=True):
        value.scatter_(0, chosen, channel)


def _add_noise(table: BlockTable, noise: Tensor, values: Tensor, y: Tensor, x: Tensor, block: Tensor) -> None:
    """Add, in place, ``std * n`` from each noisy block's own noise patch."""
    std = table.noise_std.index_select(0, block)
    chosen = torch.nonzero(std).squeeze(1)
    if chosen.numel() == 0:
        return
    chosen_block = block.index_select(0, chosen)
    offset = y.index_select(0, chosen) * table.width.index_select(0, chosen_block) + x.index_select(0, chosen)
    offset = offset + table.noise_origin.index_select(0, chosen_block)
    noise_plane, std = table.noise_plane.index_select(0, chosen_block), std.index_select(0, chosen)
    for c in range(values.shape[0]):
        values[c].index_add_(0, chosen, std * noise.index_select(0, offset + c * noise_plane))


def apply_vectorised(images: Tensor, params: BlockParams) -> tuple[Tensor, Tensor]:
    """Apply sampled block parameters to a batch without any Python loop over images or blocks.

    The covered pixels are processed in chunks of :data:`~isstad_plugin.corruption.winner.CHUNK_PIXELS` (a loop
    over pixel ranges, not over blocks): each pixel is rendered from its winning block only, then clamped, cast,
    compared with the input and labelled (rule 4 of :mod:`isstad_plugin.corruption.params`). Every pixel first reads
    its direct source (see :class:`BlockTable`); pixels of interpolated blocks are then overwritten. The colour map is
    applied only where it is not the identity and noise only where its std is not zero (skipping them changes
    nothing). Pixel offsets are int32 (small temporaries are much cheaper than int64 on CPU), so a batch must hold
    fewer than ``2**31`` values.

    Args:
        images: ``(B, C, H, W)`` float images in [0, 1] (already validated).
        params: Parameters from :func:`~isstad_plugin.corruption.params.sample_params` for this batch shape.

    Returns:
        ``(corrupted, labels)``: the corrupted images in the input dtype, equal to the input wherever the label is 0,
        and float32 labels ``(B, 1, H, W)`` in {0, 1}.
    """
    batch, channels, height, width = images.shape
    if max(images.numel(), params.noise.numel()) >= 2**31:
        raise ValueError(f"batch too large for the vectorised path ({images.numel()} values, int32 offsets); split it")
    plane = height * width
    out = images.contiguous().clone()
    labels = torch.zeros((batch, 1, height, width), dtype=torch.float32, device=images.device)
    winner = last_block_index(params, height, width)
    pixel = torch.nonzero(winner >= 0).squeeze(1).int()
    if pixel.numel() == 0:
        return out, labels
    pyramid = blur_pyramid(images.float().contiguous(), int(params.blur_level.max()))
    table = block_table(params, channels, height, width)
    out_flat, labels_flat = out.view(-1), labels.view(-1)
    channel_step = plane * torch.arange(channels, dtype=torch.int32, device=images.device).unsqueeze(1)
    for first in range(0, pixel.numel(), CHUNK_PIXELS):
        chunk = pixel[first : first + CHUNK_PIXELS]
        image = torch.div(chunk, plane, rounding_mode="floor")
        within = chunk - image * plane
        y = torch.div(within, width, rounding_mode="floor")
        x, block = within - y * width, winner.index_select(0, chunk)
        values = _read_direct(pyramid[0], table, y, x, block)
        _read_interpolated(pyramid, table, values, image, y, x, block)
        _apply_colour(table, values, block)
        _add_noise(table, params.noise, values, y, x, block)
        index = (image * (channels * plane) + within).unsqueeze(0) + channel_step
        old = out_flat.index_select(0, index.view(-1)).view(channels, -1)
        new = values.clamp_(0.0, 1.0).to(images.dtype)
        changed = (new.float() - old.float()).abs_().amax(dim=0) > CHANGE_TOLERANCE
        out_flat.scatter_(0, index.view(-1).long(), torch.where(changed, new, old).view(-1))
        labels_flat.scatter_(0, chunk.long(), changed.float())
    return out, labels
