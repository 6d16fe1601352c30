"""Loop implementation of the paper-mode corruption: the tests' oracle and the benchmark's baseline (not shipped).

It implements exactly the semantics documented in :mod:`isstad_plugin.corruption.params`, in the most direct way: for
each image, for each block in order, compute the block's patch from the clean image and paste it over the output
through the block's shape mask, so the last block covering a pixel wins. It shares only the sampled
:class:`~isstad_plugin.corruption.params.BlockParams`, the coordinate and shape formulas and the blur pyramid with
the vectorised path (:mod:`isstad_plugin.corruption.render`); the pixel enumeration, winner selection (painting in
order), interpolation, colour, noise and the final clamp/label step are written independently.
"""

from __future__ import annotations

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
from isstad_plugin.corruption.render import CHANGE_TOLERANCE
from isstad_plugin.corruption.shapes import inside_shape


def sample_bilinear(image: Tensor, sy: Tensor, sx: Tensor) -> Tensor:
    """Bilinearly sample a ``(C, H, W)`` image at float coordinates ``(h, w)``; returns ``(C, h, w)``."""
    _, height, width = image.shape
    y0, y1, x0, x1, wy, wx = bilinear_corners(sy, sx, height, width)
    top = image[:, y0, x0] * (1 - wx) + image[:, y0, x1] * wx
    bottom = image[:, y1, x0] * (1 - wx) + image[:, y1, x1] * wx
    return top * (1 - wy) + bottom * wy


def render_block(pyramid: list[Tensor], params: BlockParams, affine: Tensor, b: int, k: int) -> Tensor:
    """Compute the ``(C, h, w)`` patch of block ``k`` of image ``b`` from the clean image.

    Args:
        pyramid: Blur pyramid of the clean image, each level ``(C, h_l, w_l)`` float32 (level 0 is the clean image).
        params: Sampled parameters.
        affine: This block's ``(6,)`` source map from :func:`~isstad_plugin.corruption.geometry.block_affine`.
        b: Image index.
        k: Block index.

    Returns:
        The block's float32 patch, not yet clamped.
    """
    top, left, height, width, level = (
        int(v[b, k]) for v in (params.top, params.left, params.height, params.width, params.blur_level)
    )
    rows = torch.arange(top, top + height, device=pyramid[0].device, dtype=torch.float32)
    cols = torch.arange(left, left + width, device=pyramid[0].device, dtype=torch.float32)
    y, x = torch.meshgrid(rows, cols, indexing="ij")
    sy, sx = source_coordinates(y, x, affine)
    if level > 0:
        sy, sx = level_coordinates(sy, 0.5**level), level_coordinates(sx, 0.5**level)
    patch = sample_bilinear(pyramid[level], sy, sx)
    patch = torch.einsum("ij,jhw->ihw", params.colour_matrix[b, k], patch)
    patch = patch + params.colour_offset[b, k][:, None, None]
    std = float(params.noise_std[b, k])
    if std > 0:
        start = int(params.noise_start[b, k])
        channels = 1 if bool(params.grey[b]) else patch.shape[0]
        noise = params.noise[start : start + channels * height * width].view(channels, height, width)
        patch = patch + std * noise
    return patch


def block_shape_mask(params: BlockParams, b: int, k: int) -> Tensor:
    """The ``(h, w)`` bool mask of the pixels of block ``k`` of image ``b``'s box that lie inside its shape."""
    top, left, height, width = (int(v[b, k]) for v in (params.top, params.left, params.height, params.width))
    rows = torch.arange(top, top + height, device=params.top.device, dtype=torch.float32)
    cols = torch.arange(left, left + width, device=params.top.device, dtype=torch.float32)
    y, x = torch.meshgrid(rows, cols, indexing="ij")
    return inside_shape(y, x, params.shape[b, k], params.shape_geometry[b, k])


def apply_loop(
    images: Tensor, params: BlockParams, change_tolerance: float = CHANGE_TOLERANCE
) -> tuple[Tensor, Tensor]:
    """Apply sampled block parameters image by image and block by block.

    Args:
        images: ``(B, C, H, W)`` float images in [0, 1].
        params: Parameters from :func:`~isstad_plugin.corruption.params.sample_params`.
        change_tolerance: A pixel is labelled changed when some channel moved by more than this.

    Returns:
        ``(corrupted, labels)``, the same as
        :func:`~isstad_plugin.corruption.render.apply_vectorised` up to float rounding.
    """
    clean = images.float()
    out = clean.clone()
    affine = block_affine(params)
    for b in range(images.shape[0]):
        levels = int(params.blur_level[b].max())
        pyramid = [level.squeeze(0) for level in blur_pyramid(clean[b : b + 1], levels)]
        for k in range(int(params.num_blocks[b])):
            patch = render_block(pyramid, params, affine[:, b, k], b, k)
            top, left = int(params.top[b, k]), int(params.left[b, k])
            region = out[b, :, top : top + patch.shape[1], left : left + patch.shape[2]]
            region.copy_(torch.where(block_shape_mask(params, b, k), patch, region))
    return finalise(images, out, change_tolerance)


def finalise(images: Tensor, corrupted: Tensor, change_tolerance: float) -> tuple[Tensor, Tensor]:
    """Clamp, cast back to the input dtype, label the changed pixels and reset the unchanged ones.

    Args:
        images: Clean input ``(B, C, H, W)``.
        corrupted: Float32 corrupted batch, any range; it is clamped in place.
        change_tolerance: A pixel is changed when some channel moved by more than this.

    Returns:
        ``(corrupted, labels)``: the corrupted images in the input dtype, equal to the input wherever the label is 0,
        and float32 labels ``(B, 1, H, W)`` in {0, 1}.
    """
    out = corrupted.clamp_(0.0, 1.0).to(images.dtype)
    changed = (out.float() - images.float()).abs_().amax(dim=1, keepdim=True) > change_tolerance
    return torch.where(changed, out, images), changed.float()
