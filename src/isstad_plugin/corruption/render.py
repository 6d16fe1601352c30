"""The vectorised paper-mode renderer: applies a :class:`~isstad_plugin.corruption.params.BlockParams` to a batch.

It implements the semantics documented in :mod:`isstad_plugin.corruption.params` without any Python loop over images
or blocks: :func:`~isstad_plugin.corruption.winner.last_block_index` finds each pixel's winning block, the per-block
values are laid out in a :class:`BlockTable`, and the covered pixels are rendered in chunks from their winning block
only.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from isstad_plugin.corruption.geometry import block_affine, source_coordinates
from isstad_plugin.corruption.params import BlockParams
from isstad_plugin.corruption.sources import Sources, build_sources, sample_clean, sample_level
from isstad_plugin.corruption.winner import CHUNK_PIXELS, last_block_index

CHANGE_TOLERANCE = 1 / 255
"""A pixel counts as changed when some channel moved by more than this: one 8-bit grey level."""


class BlockTable(NamedTuple):
    """Per-block values for per-pixel gathers, flat over the ``N = B * K`` blocks (index ``b * K + k``, always last).

    Read paths: ``path`` is 0 for unblurred blocks whose source map sends the block's integer pixels to integer pixels
    inside the image (identity, flips, most right-angle rotations): those read the flat clean offset
    ``step_y * y + step_x * x + start`` directly, which is what bilinear interpolation returns there. ``path`` is 1
    for other unblurred blocks (interpolated from the clean batch) and 2 for blurred ones (interpolated from their
    pyramid level). Integer fields are int32.

    Attributes:
        path: ``(N,)`` read path, 0, 1 or 2.
        affine: ``(6, N)`` float32 source maps ``[a00, a01, oy, a10, a11, ox]``
            (:func:`~isstad_plugin.corruption.geometry.block_affine`).
        step_y: ``(N,)`` row stride of the direct read.
        step_x: ``(N,)`` column stride of the direct read.
        start: ``(N,)`` offset of the direct read.
        blur_level: ``(N,)`` pyramid level of blurred blocks (0 otherwise).
        colour: ``(N,)`` bool, blocks whose colour map is not the identity.
        colour_matrix: ``(C, C, N)`` float32 colour matrices ``M``.
        colour_shift: ``(C, N)`` float32 colour offsets ``t``.
        noise_std: ``(N,)`` float32 noise standard deviation (0: no noise).
        noise_start: ``(N,)`` offset of the block's noise patch.
        noise_plane: ``(N,)`` channel stride of the noise patch: 0 for grey images (one noise channel), ``h * w``.
        top: ``(N,)`` first row of the clipped box.
        left: ``(N,)`` first column of the clipped box.
        width: ``(N,)`` clipped box width.
    """

    path: Tensor
    affine: Tensor
    step_y: Tensor
    step_x: Tensor
    start: Tensor
    blur_level: Tensor
    colour: Tensor
    colour_matrix: Tensor
    colour_shift: Tensor
    noise_std: Tensor
    noise_start: Tensor
    noise_plane: Tensor
    top: Tensor
    left: Tensor
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
        path=_flat(torch.where(params.blur_level > 0, 2, torch.where(direct, 0, 1))),
        affine=affine.reshape(6, -1).contiguous(),
        step_y=_flat(torch.where(direct, integer[0] * width + integer[3], width)),
        step_x=_flat(torch.where(direct, integer[1] * width + integer[4], 1)),
        start=_flat(image_start + torch.where(direct, integer[2] * width + integer[5], 0)),
        blur_level=_flat(params.blur_level),
        colour=_flat((params.colour_matrix != eye).any(-1).any(-1) | (params.colour_offset != 0).any(-1)),
        colour_matrix=_flat(params.colour_matrix),
        colour_shift=_flat(params.colour_offset),
        noise_std=_flat(params.noise_std),
        noise_start=_flat(params.noise_start),
        noise_plane=_flat(torch.where(params.grey.unsqueeze(1), 0, params.height * params.width)),
        top=_flat(params.top),
        left=_flat(params.left),
        width=_flat(params.width),
    )


def _read_direct(sources: Sources, table: BlockTable, y: Tensor, x: Tensor, block: Tensor) -> Tensor:
    """Read every pixel at its direct offset (path 0); returns float32 ``(C, n)``."""
    offset = table.step_y.index_select(0, block) * y + table.step_x.index_select(0, block) * x
    offset = offset + table.start.index_select(0, block)
    values = sources.clean.new_empty((sources.channels, block.numel()))
    plane = sources.height * sources.width
    for c in range(sources.channels):
        torch.index_select(sources.clean, 0, offset + c * plane, out=values[c])
    return values


def _read_interpolated(
    sources: Sources, table: BlockTable, values: Tensor, image: Tensor, y: Tensor, x: Tensor, block: Tensor
) -> None:
    """Overwrite, in ``values``, the pixels of interpolated blocks (paths 1 and 2) with their bilinear samples."""
    path = table.path.index_select(0, block)
    for kind in (1, 2):
        chosen = torch.nonzero(path == kind).squeeze(1)
        if chosen.numel() == 0:
            continue
        chosen_block = block.index_select(0, chosen)
        affine = table.affine.index_select(1, chosen_block)
        sy, sx = source_coordinates(y.index_select(0, chosen).float(), x.index_select(0, chosen).float(), affine)
        chosen_image = image.index_select(0, chosen)
        if kind == 1:
            samples = sample_clean(sources, chosen_image, sy, sx)
        else:
            samples = sample_level(sources, chosen_image, table.blur_level.index_select(0, chosen_block), sy, sx)
        for value, sample in zip(values, samples, strict=True):
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
    row = y.index_select(0, chosen) - table.top.index_select(0, chosen_block)
    col = x.index_select(0, chosen) - table.left.index_select(0, chosen_block)
    offset = table.noise_start.index_select(0, chosen_block) + row * table.width.index_select(0, chosen_block) + col
    noise_plane, std = table.noise_plane.index_select(0, chosen_block), std.index_select(0, chosen)
    for c in range(values.shape[0]):
        values[c].index_add_(0, chosen, std * noise.index_select(0, offset + c * noise_plane))


def _render_pixels(
    sources: Sources, noise: Tensor, table: BlockTable, image: Tensor, y: Tensor, x: Tensor, block: Tensor
) -> Tensor:
    """Compute the corrupted float32 values of pixels ``(image, y, x)`` from their winning ``block``.

    Every pixel first reads its direct source (path 0, see :class:`BlockTable`); pixels of interpolated blocks are then
    overwritten. The colour map is applied only where it is not the identity and noise only where its std is not zero
    (skipping them changes nothing).

    Args:
        sources: Output of :func:`~isstad_plugin.corruption.sources.build_sources`.
        noise: The flat standard-normal noise patches (``BlockParams.noise``).
        table: Output of :func:`block_table`.
        image: ``(n,)`` int32 image indices.
        y: ``(n,)`` int32 rows.
        x: ``(n,)`` int32 columns.
        block: ``(n,)`` int32 flat indices ``b * K + k`` of the winning blocks.

    Returns:
        Unclamped float32 values ``(C, n)``.
    """
    values = _read_direct(sources, table, y, x, block)
    _read_interpolated(sources, table, values, image, y, x, block)
    _apply_colour(table, values, block)
    _add_noise(table, noise, values, y, x, block)
    return values


def apply_vectorised(images: Tensor, params: BlockParams) -> tuple[Tensor, Tensor]:
    """Apply sampled block parameters to a batch without any Python loop over images or blocks.

    The covered pixels are processed in chunks of :data:`~isstad_plugin.corruption.winner.CHUNK_PIXELS` (a loop
    over pixel ranges, not over blocks): each pixel is rendered from its winning block only, then clamped, cast,
    compared with the input and labelled (rule 4 of :mod:`isstad_plugin.corruption.params`). Pixel offsets are int32
    (small temporaries are much cheaper than int64 on CPU), so a batch must hold fewer than ``2**31`` values.

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
    sources = build_sources(images.float().contiguous(), int(params.blur_level.max()))
    table = block_table(params, channels, height, width)
    out_flat, labels_flat = out.view(-1), labels.view(-1)
    channel_step = plane * torch.arange(channels, dtype=torch.int32, device=images.device).unsqueeze(1)
    for first in range(0, pixel.numel(), CHUNK_PIXELS):
        chunk = pixel[first : first + CHUNK_PIXELS]
        image = torch.div(chunk, plane, rounding_mode="floor")
        within = chunk - image * plane
        y = torch.div(within, width, rounding_mode="floor")
        values = _render_pixels(
            sources, params.noise, table, image, y, within - y * width, winner.index_select(0, chunk)
        )
        index = (image * (channels * plane) + within).unsqueeze(0) + channel_step
        old = out_flat.index_select(0, index.view(-1)).view(channels, -1)
        new = values.clamp_(0.0, 1.0).to(images.dtype)
        changed = (new.float() - old.float()).abs_().amax(dim=0) > CHANGE_TOLERANCE
        out_flat.scatter_(0, index.view(-1).long(), torch.where(changed, new, old).view(-1))
        labels_flat.scatter_(0, chunk.long(), changed.float())
    return out, labels
