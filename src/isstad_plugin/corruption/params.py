"""The paper-mode block table: what is random about one call, how it is drawn, and what applying it means.

Exactly-defined semantics (shared by the vectorised renderer :mod:`isstad_plugin.corruption.render` and the loop
oracle of the tests, ``tests/corruption/reference.py``):

1. :func:`sample_params` draws everything random into a :class:`BlockParams` of tensors, so the vectorised path and the
   loop oracle consume identical parameters.
2. A block covers the pixels of its clipped box that lie inside its shape
   (:func:`~isstad_plugin.corruption.shapes.inside_shape`, drawn from the unclipped box, so a shape cut by the border
   stays cut). Blocks of an image are applied in order ``k = 0 .. num_blocks - 1`` and the last block covering a pixel
   wins.
3. Each block's output is computed from the CLEAN image: output pixel ``p`` reads the clean image (or, for a blurred
   block, a level of its average-pooling pyramid) at ``c + A (p - c)`` with bilinear interpolation (border-clamped),
   where ``c`` is the block centre and ``A`` the block's flip/rotation matrix; then the colour map ``M v + t`` and
   Gaussian noise ``std * n`` (``n`` from the block's own standard-normal patch) are applied.
4. The result is clamped to [0, 1] and cast to the input dtype. A pixel is labelled 1 when any channel differs from the
   input by more than :data:`~isstad_plugin.corruption.render.CHANGE_TOLERANCE`; pixels labelled 0 are reset to the
   exact input value, so "label 0" and "pixel unchanged" are the same thing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from isstad_plugin.corruption.colour import sample_colour
from isstad_plugin.corruption.config import PaperConfig
from isstad_plugin.corruption.sampling import integers, log_uniform_integers, random_sign, uniform
from isstad_plugin.corruption.shapes import sample_shapes

OPS_PER_BLOCK = (1, 3)
"""Inclusive range of distinct operation kinds per block ("a single region may undergo two or more operations")."""
SMALL_ANGLE = (5.0, 30.0)
"""Range of the magnitude, in degrees, of small arbitrary rotations (the sign is random)."""
RIGHT_ANGLE_PROB = 0.5
"""Probability that a rotation is a multiple of 90 degrees (90, 180 or 270) rather than a small angle."""
BLUR_LEVELS = (1, 3)
"""Inclusive range of the blur level ``l``: a blurred block reads, bilinearly, the clean image average-pooled ``l``
times by 2x2 (:func:`~isstad_plugin.corruption.geometry.blur_pyramid`), a low-pass of width about ``2**l`` px."""

# cos and sin of 90, 180 and 270 degrees, exact.
_RIGHT_ANGLE_COS = (0.0, -1.0, 0.0)
_RIGHT_ANGLE_SIN = (1.0, 0.0, -1.0)


@dataclass(frozen=True)
class BlockParams:
    """Everything random about one paper-mode call, as tensors on the images' device (``K = num_blocks[1]``).

    Blocks ``k >= num_blocks[b]`` are padding and must be ignored. Disabled operations hold identity values (identity
    geometry and colour matrices, zero offset, zero noise std, blur level 0), so applying a block never needs the
    ``ops`` flags; they are kept for inspection and statistics.

    Attributes:
        num_blocks: ``(B,)`` int64, number of blocks of each image; 0 for images left clean.
        top: ``(B, K)`` int64, first row of each block's box, clipped to the image.
        left: ``(B, K)`` int64, first column of each block's box, clipped to the image.
        height: ``(B, K)`` int64, clipped box height in pixels (at least 1).
        width: ``(B, K)`` int64, clipped box width in pixels (at least 1).
        shape: ``(B, K)`` int64 index into :data:`~isstad_plugin.corruption.config.SHAPES`.
        shape_geometry: ``(B, K, 7)`` float32 ``[cy, cx, ry, rx, angle, line_width, lobes]``: centre and half-sides
            of the UNCLIPPED box, the line direction or blob phase in radians, the line width, the blob's lobes.
        grey: ``(B,)`` bool, images given grey-only changes (one noise channel, grey colour maps).
        ops: ``(B, K, len(config.kinds))`` bool, which operation kinds each block uses.
        geometry: ``(B, K, 2, 2)`` float32 matrix ``A`` in (row, column) order: output pixel ``p`` reads the source
            at ``c + A (p - c)`` with ``c`` the block centre.
        blur_level: ``(B, K)`` int64 blur level; 0 means no blur.
        colour_matrix: ``(B, K, C, C)`` float32 colour matrix ``M``.
        colour_offset: ``(B, K, C)`` float32 colour offset ``t``.
        noise_std: ``(B, K)`` float32 noise standard deviation; 0 means no noise.
        noise_start: ``(B, K)`` int64 offset in ``noise`` of the block's ``(C', height, width)`` noise patch (only
            meaningful where ``noise_std > 0``); ``C' = 1`` for grey images, ``C`` otherwise.
        noise: Flat float32 standard-normal values: one ``(C', height, width)`` patch per valid noisy block.
    """

    num_blocks: Tensor
    top: Tensor
    left: Tensor
    height: Tensor
    width: Tensor
    shape: Tensor
    shape_geometry: Tensor
    grey: Tensor
    ops: Tensor
    geometry: Tensor
    blur_level: Tensor
    colour_matrix: Tensor
    colour_offset: Tensor
    noise_std: Tensor
    noise_start: Tensor
    noise: Tensor


def _side_range(side: int, block_size: tuple[int, float]) -> tuple[int, int]:
    """Inclusive range of a block side for an image side of ``side`` pixels."""
    min_px, max_fraction = block_size
    low = min(int(min_px), side)
    high = min(max(low, math.floor(max_fraction * side)), side)
    return low, high


def _place(side: int, size: Tensor, generator: torch.Generator | None) -> tuple[Tensor, Tensor, Tensor]:
    """Draw the first row (or column) of boxes of ``size`` px along an image side.

    Any start from ``1 - size`` to ``side - 1`` is drawn and the box is clipped (it straddles the border), so each
    pixel is covered with the same probability ``size / (side + size - 1)`` up to the border.

    Returns:
        ``(start, clipped_start, clipped_size)``.
    """
    start = integers(tuple(size.shape), 1 - size, side - 1, generator, size.device)
    clipped_start = start.clamp(min=0)
    return start, clipped_start, torch.clamp(start + size, max=side) - clipped_start


def _sample_ops(
    shape: tuple[int, int], config: PaperConfig, generator: torch.Generator | None, device: torch.device
) -> Tensor:
    """Choose, per block, a uniform number of distinct operation kinds from ``config.kinds``."""
    n_kinds = len(config.kinds)
    low, high = OPS_PER_BLOCK
    count = integers(shape, min(low, n_kinds), min(high, n_kinds), generator, device)
    scores = torch.rand((*shape, n_kinds), generator=generator, device=device)
    rank = scores.argsort(dim=-1).argsort(dim=-1)
    return rank < count.unsqueeze(-1)


def _sample_geometry(flip: Tensor, rotate: Tensor, generator: torch.Generator | None) -> Tensor:
    """Build the ``(B, K, 2, 2)`` matrices ``A = F R`` of the blocks (identity where both kinds are off).

    ``F`` flips rows (vertical flip) or columns (horizontal flip); ``R`` rotates by a multiple of 90 degrees (exact
    cos/sin) or by a small angle.
    """
    shape, device = tuple(flip.shape), flip.device
    vertical = torch.rand(shape, generator=generator, device=device) < 0.5
    flip_rows = torch.where(flip & vertical, -1.0, 1.0)
    flip_cols = torch.where(flip & ~vertical, -1.0, 1.0)

    right = torch.rand(shape, generator=generator, device=device) < RIGHT_ANGLE_PROB
    quarter = integers(shape, 0, 2, generator, device)
    small = random_sign(shape, generator, device) * uniform(shape, *SMALL_ANGLE, generator, device)
    small = torch.deg2rad(small)
    cos = torch.where(right, torch.tensor(_RIGHT_ANGLE_COS, device=device)[quarter], torch.cos(small))
    sin = torch.where(right, torch.tensor(_RIGHT_ANGLE_SIN, device=device)[quarter], torch.sin(small))
    cos = torch.where(rotate, cos, 1.0)
    sin = torch.where(rotate, sin, 0.0)
    row0 = torch.stack([flip_rows * cos, -flip_rows * sin], dim=-1)
    row1 = torch.stack([flip_cols * sin, flip_cols * cos], dim=-1)
    return torch.stack([row0, row1], dim=-2)


def _sample_noise(
    noisy: Tensor, patch_size: Tensor, config: PaperConfig, generator: torch.Generator | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Draw the noise of the ``noisy`` blocks, each with a patch of ``patch_size`` values.

    Returns:
        ``(noise_std, noise_start, noise)`` as in :class:`BlockParams`.
    """
    shape, device = tuple(noisy.shape), noisy.device
    noise_std = torch.where(noisy, uniform(shape, *config.noise_std, generator, device), 0.0)
    noise_size = torch.where(noisy, patch_size, 0)
    noise_start = torch.cumsum(noise_size.reshape(-1), dim=0).view(shape) - noise_size
    noise = torch.randn((int(noise_size.sum()),), generator=generator, device=device)
    return noise_std, noise_start, noise


def sample_params(
    batch: int,
    channels: int,
    height: int,
    width: int,
    config: PaperConfig,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    grey: Tensor | None = None,
) -> BlockParams:
    """Draw the random parameters of one paper-mode call.

    Args:
        batch: Number of images ``B``.
        channels: Number of channels ``C`` (1 or 3).
        height: Image height ``H``.
        width: Image width ``W``.
        config: Corruption settings.
        generator: Optional generator on ``device``; the draws are reproducible with it.
        device: Device of the returned tensors.
        grey: Optional ``(B,)`` bool, images to give grey-only changes (ignored unless ``config.preserve_grey``).

    Returns:
        The sampled :class:`BlockParams`.
    """
    device = torch.device(device)
    k_max = config.num_blocks[1]
    shape = (batch, k_max)
    corrupt = torch.rand((batch,), generator=generator, device=device) < config.corrupt_prob
    num_blocks = log_uniform_integers((batch,), *config.num_blocks, generator, device)
    num_blocks = torch.where(corrupt, num_blocks, 0)
    if grey is None or not config.preserve_grey or channels == 1:
        grey = torch.zeros((batch,), dtype=torch.bool, device=device)
    box_h = log_uniform_integers(shape, *_side_range(height, config.block_size), generator, device)
    box_w = log_uniform_integers(shape, *_side_range(width, config.block_size), generator, device)
    unclipped_top, top, block_h = _place(height, box_h, generator)
    unclipped_left, left, block_w = _place(width, box_w, generator)
    kind, shape_geometry = sample_shapes(unclipped_top, unclipped_left, box_h, box_w, config, generator)
    ops = _sample_ops(shape, config, generator, device)

    def enabled(name: str) -> Tensor:
        if name not in config.kinds:
            return torch.zeros(shape, dtype=torch.bool, device=device)
        return ops[..., config.kinds.index(name)]

    geometry = _sample_geometry(enabled("flip"), enabled("rotate"), generator)
    blur_level = integers(shape, *BLUR_LEVELS, generator, device)
    blur_level = torch.where(enabled("blur"), blur_level, 0)
    colour_matrix, colour_offset = sample_colour(enabled("colour"), channels, config.colour_strength, grey, generator)
    valid = torch.arange(k_max, device=device) < num_blocks.unsqueeze(1)
    patch_size = torch.where(grey, 1, channels).unsqueeze(1) * block_h * block_w
    noise_std, noise_start, noise = _sample_noise(enabled("noise") & valid, patch_size, config, generator)
    return BlockParams(
        num_blocks=num_blocks,
        top=top,
        left=left,
        height=block_h,
        width=block_w,
        shape=kind,
        shape_geometry=shape_geometry,
        grey=grey,
        ops=ops,
        geometry=geometry,
        blur_level=blur_level,
        colour_matrix=colour_matrix,
        colour_offset=colour_offset,
        noise_std=noise_std,
        noise_start=noise_start,
        noise=noise,
    )
