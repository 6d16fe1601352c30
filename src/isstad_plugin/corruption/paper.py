"""Paper-mode pixel-level corruption (ISSTAD §3.3.1 and §4.1.3 "Data Augmentation"), vectorised.

The paper corrupts 5/6 of the training images by applying "random rotation, flipping, Gaussian noise addition, and
color variation" to 1-100 random-sized image blocks, and labels a pixel 1 exactly where its value changed.

Where the paper gives no number, the defaults aim at label statistics like real defects (a few per cent of an image,
as often at the border as in the centre, no colour on grey images, thin and irregular regions as well as rectangles):
block counts and sides are drawn log-uniformly, blocks may straddle the border (they are clipped), a block paints a
rectangle, an ellipse, a thin line or an irregular blob inside its box, and grey images get grey-only changes.
:data:`LEGACY_CONFIG` keeps the earlier statistics (uniform draws, blocks inside the image, rectangles, tinting).

Exactly-defined semantics (shared with the loop oracle in :mod:`isstad_plugin.corruption.reference`):

1. :func:`sample_params` draws everything random into a :class:`BlockParams` of tensors, so the vectorised path and the
   loop oracle consume identical parameters.
2. A block covers the pixels of its clipped box that lie inside its shape (:func:`inside_shape`, drawn from the
   unclipped box, so a shape cut by the border stays cut). Blocks of an image are applied in order
   ``k = 0 .. num_blocks - 1`` and the last block covering a pixel wins.
3. Each block's output is computed from the CLEAN image: output pixel ``p`` reads the clean image (or, for a blurred
   block, a level of its average-pooling pyramid) at ``c + A (p - c)`` with bilinear interpolation (border-clamped),
   where ``c`` is the block centre and ``A`` the block's flip/rotation matrix; then the colour map ``M v + t`` and
   Gaussian noise ``std * n`` (``n`` from the block's own standard-normal patch) are applied.
4. The result is clamped to [0, 1] and cast to the input dtype. A pixel is labelled 1 when any channel differs from the
   input by more than ``change_tolerance``; pixels labelled 0 are reset to the exact input value, so "label 0" and
   "pixel unchanged" are the same thing.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from isstad_plugin.corruption.sampling import integers, random_sign, uniform

# Paper constants (§4.1.3 "Data Augmentation").
PAPER_CORRUPT_PROB = 5 / 6
"""Fraction of training images that are corrupted (paper §4.1.3)."""
PAPER_NUM_BLOCKS = (1, 100)
"""Inclusive range of the number of blocks per corrupted image (paper §4.1.3)."""

# Choices this implementation makes where the paper gives no number.
DEFAULT_BLOCK_SIZE = (2, 0.25)
"""Block side range: at least ``2`` px, at most ``0.25`` of the image side (height and width drawn independently)."""
Distribution = Literal["uniform", "log_uniform"]
Placement = Literal["inside", "straddle"]

DEFAULT_COUNT_DISTRIBUTION: Distribution = "log_uniform"
"""Blocks per image drawn log-uniformly from ``num_blocks``: mostly a few, sometimes 100 (median 10 of 1-100)."""
DEFAULT_SIZE_DISTRIBUTION: Distribution = "log_uniform"
"""Block sides drawn log-uniformly: mostly small, sometimes a quarter of the image."""
DEFAULT_PLACEMENT: Placement = "straddle"
"""Blocks may lie partly outside the image and are clipped: every pixel row is covered at the same rate."""
DEFAULT_LINE_WIDTH = (1.0, 3.0)
"""Range of the width, in pixels, of ``line`` shapes (scratches, cracks)."""
BLOB_AMPLITUDE = 0.3
"""Radial modulation of ``blob`` shapes: the radius varies between ``1 - 2 * amplitude`` and ``1`` of the box's."""
BLOB_LOBES = (2, 5)
"""Inclusive range of the number of lobes of a ``blob`` shape."""
GREY_TOLERANCE = 2e-3
"""An RGB image counts as grey when no pixel's channels differ by more than this."""
DEFAULT_OPS_PER_BLOCK = (1, 3)
"""Inclusive range of distinct operation kinds per block ("a single region may undergo two or more operations")."""
DEFAULT_CHANGE_TOLERANCE = 1 / 255
"""A pixel counts as changed when some channel moved by more than one 8-bit grey level."""
DEFAULT_NOISE_STD = (0.05, 0.25)
"""Range of the per-block Gaussian noise standard deviation (images in [0, 1])."""
DEFAULT_COLOUR_STRENGTH = (0.1, 0.4)
"""Range of the magnitude of colour scale/shift/brightness/contrast changes (the sign is random)."""
DEFAULT_SMALL_ANGLE = (5.0, 30.0)
"""Range of the magnitude, in degrees, of small arbitrary rotations (the sign is random)."""
DEFAULT_RIGHT_ANGLE_PROB = 0.5
"""Probability that a rotation is a multiple of 90 degrees (90, 180 or 270) rather than a small angle."""
DEFAULT_BLUR_LEVELS = (1, 3)
"""Inclusive range of the blur level: level ``l`` reads a ``2**l``-times average-pooled copy of the clean image."""

OPERATIONS = ("flip", "rotate", "blur", "colour", "noise")
"""Operation kinds, in the fixed order in which they are composed inside a block."""
SHAPES = ("rectangle", "ellipse", "line", "blob")
"""Region shapes a block may paint inside its box."""
DISTRIBUTIONS = ("uniform", "log_uniform")
PLACEMENTS = ("inside", "straddle")

COLOUR_CHANGES_RGB = ("permute", "scale", "shift", "brightness_contrast", "grayscale")
COLOUR_CHANGES_GRAY = ("scale", "shift", "brightness_contrast")
_GRAY_WEIGHTS = (0.299, 0.587, 0.114)
# The five non-identity permutations of three channels.
_CHANNEL_PERMUTATIONS = ((0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))
# cos and sin of 90, 180 and 270 degrees, exact.
_RIGHT_ANGLE_COS = (0.0, -1.0, 0.0)
_RIGHT_ANGLE_SIN = (1.0, 0.0, -1.0)


@dataclass(frozen=True)
class PaperConfig:
    """Settings of the paper-mode corruption; the defaults follow the paper where it gives a number.

    Attributes:
        corrupt_prob: Probability that an image is corrupted (paper §4.1.3: 5/6).
        num_blocks: Inclusive range of blocks per corrupted image (paper §4.1.3: 1 to 100).
        block_size: ``(min_px, max_fraction)``: block height and width are drawn independently and uniformly from
            ``[min_px, max(min_px, floor(max_fraction * side))]``, capped at the side.
        operations: Operation kinds that blocks may use, a subset of :data:`OPERATIONS`.
        ops_per_block: Inclusive range of the number of distinct operation kinds per block (capped at the number of
            kinds enabled).
        change_tolerance: A pixel is labelled changed when some channel moved by more than this.
        noise_std: Range of the per-block Gaussian noise standard deviation.
        colour_strength: Range of the magnitude of colour changes.
        small_angle: Range of the magnitude, in degrees, of small rotations.
        right_angle_prob: Probability that a rotation is a multiple of 90 degrees.
        blur_levels: Inclusive range of the blur level ``l``: a blurred block reads, bilinearly, the clean image
            average-pooled ``l`` times by 2x2 (see :func:`blur_pyramid`), a low-pass of width about ``2**l`` px.
        count_distribution: How the number of blocks is drawn from ``num_blocks``: ``"uniform"`` or
            ``"log_uniform"``.
        size_distribution: How block sides are drawn from ``block_size``: ``"uniform"`` or ``"log_uniform"``.
        placement: ``"inside"`` (boxes wholly inside the image) or ``"straddle"`` (any box that overlaps the image,
            clipped to it).
        shapes: Region shapes drawn uniformly per block, a subset of :data:`SHAPES`.
        line_width: Range of the width in pixels of ``line`` shapes.
        preserve_grey: Grey images (equal channels) get only grey changes: no channel permutation or per-channel
            colour change, the same noise in every channel.
    """

    corrupt_prob: float = PAPER_CORRUPT_PROB
    num_blocks: tuple[int, int] = PAPER_NUM_BLOCKS
    block_size: tuple[int, float] = DEFAULT_BLOCK_SIZE
    operations: tuple[str, ...] = OPERATIONS
    ops_per_block: tuple[int, int] = DEFAULT_OPS_PER_BLOCK
    change_tolerance: float = DEFAULT_CHANGE_TOLERANCE
    noise_std: tuple[float, float] = DEFAULT_NOISE_STD
    colour_strength: tuple[float, float] = DEFAULT_COLOUR_STRENGTH
    small_angle: tuple[float, float] = DEFAULT_SMALL_ANGLE
    right_angle_prob: float = DEFAULT_RIGHT_ANGLE_PROB
    blur_levels: tuple[int, int] = DEFAULT_BLUR_LEVELS
    count_distribution: Distribution = DEFAULT_COUNT_DISTRIBUTION
    size_distribution: Distribution = DEFAULT_SIZE_DISTRIBUTION
    placement: Placement = DEFAULT_PLACEMENT
    shapes: tuple[str, ...] = SHAPES
    line_width: tuple[float, float] = DEFAULT_LINE_WIDTH
    preserve_grey: bool = True

    def __post_init__(self) -> None:
        """Check every setting and raise a one-line ``ValueError`` naming the bad one."""
        _check_probability("corrupt_prob", self.corrupt_prob)
        _check_probability("right_angle_prob", self.right_angle_prob)
        _check_int_range("num_blocks", self.num_blocks, minimum=1)
        _check_int_range("ops_per_block", self.ops_per_block, minimum=1)
        _check_int_range("blur_levels", self.blur_levels, minimum=1)
        _check_float_range("noise_std", self.noise_std)
        _check_float_range("colour_strength", self.colour_strength)
        _check_float_range("small_angle", self.small_angle)
        min_px, max_fraction = self.block_size
        if int(min_px) != min_px or min_px < 1 or not 0 < max_fraction <= 1:
            raise ValueError(f"block_size must be (min_px >= 1 integer, 0 < max_fraction <= 1), got {self.block_size}")
        unknown = [name for name in self.operations if name not in OPERATIONS]
        if unknown or not self.operations:
            raise ValueError(f"operations must be a non-empty subset of {OPERATIONS}, got {self.operations}")
        if not 0 <= self.change_tolerance < 1:
            raise ValueError(f"change_tolerance must be in [0, 1), got {self.change_tolerance}")
        _check_choice("count_distribution", self.count_distribution, DISTRIBUTIONS)
        _check_choice("size_distribution", self.size_distribution, DISTRIBUTIONS)
        _check_choice("placement", self.placement, PLACEMENTS)
        if not self.shapes or any(name not in SHAPES for name in self.shapes):
            raise ValueError(f"shapes must be a non-empty subset of {SHAPES}, got {self.shapes}")
        _check_float_range("line_width", self.line_width)
        if self.line_width[0] <= 0:
            raise ValueError(f"line_width must be positive, got {self.line_width}")

    @property
    def kinds(self) -> tuple[str, ...]:
        """Enabled operation kinds, in composition order and without duplicates."""
        return tuple(name for name in OPERATIONS if name in self.operations)


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
        shape: ``(B, K)`` int64 index into :data:`SHAPES`.
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


def _check_probability(name: str, value: float) -> None:
    """Raise ``ValueError`` unless ``0 <= value <= 1``."""
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value}")


def _check_int_range(name: str, value: tuple[int, int], minimum: int) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer pair ``minimum <= low <= high``."""
    low, high = value
    if int(low) != low or int(high) != high or not minimum <= low <= high:
        raise ValueError(f"{name} must be integers ({minimum} <= low <= high), got {value}")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _check_float_range(name: str, value: tuple[float, float]) -> None:
    """Raise ``ValueError`` unless ``value`` is a pair ``0 <= low <= high``."""
    low, high = value
    if not 0 <= low <= high:
        raise ValueError(f"{name} must be a pair 0 <= low <= high, got {value}")


LEGACY_CONFIG = PaperConfig(
    block_size=(4, 0.25),
    count_distribution="uniform",
    size_distribution="uniform",
    placement="inside",
    shapes=("rectangle",),
    preserve_grey=False,
)
"""The statistics of releases up to 0.x: uniform draws, rectangles wholly inside the image, colour on grey images.

About half of a corrupted image is labelled and the border is almost never; kept for comparison
(``benchmarks/corruption_coverage.py``) and for reproducing earlier runs.
"""


# ----------------------------------------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------------------------------------


def _side_range(side: int, block_size: tuple[int, float]) -> tuple[int, int]:
    """Inclusive range of a block side for an image side of ``side`` pixels."""
    min_px, max_fraction = block_size
    low = min(int(min_px), side)
    high = min(max(low, math.floor(max_fraction * side)), side)
    return low, high


def _draw_count(
    shape: tuple[int, ...],
    low: Tensor | int,
    high: Tensor | int,
    distribution: str,
    generator: torch.Generator | None,
    device: torch.device,
) -> Tensor:
    """Draw int64 values from ``[low, high]`` (inclusive), uniformly or log-uniformly (``low >= 1``)."""
    if distribution == "uniform":
        return integers(shape, low, high, generator, device)
    low_t = torch.as_tensor(low, device=device).float()
    high_t = torch.maximum(torch.as_tensor(high, device=device).float(), low_t)
    log_value = uniform(shape, 0.0, 1.0, generator, device) * torch.log((high_t + 1) / low_t) + torch.log(low_t)
    return torch.minimum(torch.exp(log_value).floor(), high_t).long()


def _place(side: int, size: Tensor, placement: str, generator: torch.Generator | None) -> tuple[Tensor, Tensor, Tensor]:
    """Draw the first row (or column) of boxes of ``size`` px along an image side.

    ``"inside"`` keeps boxes wholly inside; ``"straddle"`` draws any start from ``1 - size`` to ``side - 1`` and clips
    the box, so each pixel is covered with the same probability ``size / (side + size - 1)`` up to the border.

    Returns:
        ``(start, clipped_start, clipped_size)``.
    """
    if placement == "inside":
        start = integers(tuple(size.shape), 0, side - size, generator, size.device)
        return start, start, size
    start = integers(tuple(size.shape), 1 - size, side - 1, generator, size.device)
    clipped_start = start.clamp(min=0)
    return start, clipped_start, torch.clamp(start + size, max=side) - clipped_start


def _sample_shapes(
    top: Tensor,
    left: Tensor,
    block_h: Tensor,
    block_w: Tensor,
    config: PaperConfig,
    generator: torch.Generator | None,
) -> tuple[Tensor, Tensor]:
    """Draw each block's shape kind and its ``(B, K, 7)`` geometry from the unclipped box (see :class:`BlockParams`)."""
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
    """Whether pixels ``(y, x)`` lie inside their block's shape (element-wise; shared by both implementations).

    Args:
        y: Pixel rows (float32).
        x: Pixel columns (float32).
        kind: Shape index into :data:`SHAPES`, broadcasting with ``y``.
        geometry: ``(..., 7)`` shape geometry (see :class:`BlockParams`), its leading shape broadcasting with ``y``.

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


def _sample_ops(
    shape: tuple[int, int], config: PaperConfig, generator: torch.Generator | None, device: torch.device
) -> Tensor:
    """Choose, per block, a uniform number of distinct operation kinds from ``config.kinds``."""
    n_kinds = len(config.kinds)
    low, high = config.ops_per_block
    count = integers(shape, min(low, n_kinds), min(high, n_kinds), generator, device)
    scores = torch.rand((*shape, n_kinds), generator=generator, device=device)
    rank = scores.argsort(dim=-1).argsort(dim=-1)
    return rank < count.unsqueeze(-1)


def _sample_geometry(flip: Tensor, rotate: Tensor, config: PaperConfig, generator: torch.Generator | None) -> Tensor:
    """Build the ``(B, K, 2, 2)`` matrices ``A = F R`` of the blocks (identity where both kinds are off).

    ``F`` flips rows (vertical flip) or columns (horizontal flip); ``R`` rotates by a multiple of 90 degrees (exact
    cos/sin) or by a small angle.
    """
    shape, device = tuple(flip.shape), flip.device
    vertical = torch.rand(shape, generator=generator, device=device) < 0.5
    flip_rows = torch.where(flip & vertical, -1.0, 1.0)
    flip_cols = torch.where(flip & ~vertical, -1.0, 1.0)

    right = torch.rand(shape, generator=generator, device=device) < config.right_angle_prob
    quarter = integers(shape, 0, 2, generator, device)
    small = random_sign(shape, generator, device) * uniform(shape, *config.small_angle, generator, device)
    small = torch.deg2rad(small)
    cos = torch.where(right, torch.tensor(_RIGHT_ANGLE_COS, device=device)[quarter], torch.cos(small))
    sin = torch.where(right, torch.tensor(_RIGHT_ANGLE_SIN, device=device)[quarter], torch.sin(small))
    cos = torch.where(rotate, cos, 1.0)
    sin = torch.where(rotate, sin, 0.0)
    row0 = torch.stack([flip_rows * cos, -flip_rows * sin], dim=-1)
    row1 = torch.stack([flip_cols * sin, flip_cols * cos], dim=-1)
    return torch.stack([row0, row1], dim=-2)


def _sample_colour(
    colour: Tensor, channels: int, config: PaperConfig, generator: torch.Generator | None, grey: Tensor
) -> tuple[Tensor, Tensor]:
    """Build per-block colour maps ``v -> M v + t`` (identity where ``colour`` is off).

    Every colour change of the paper's "colour variation" is affine: channel permutation, per-channel scale, per-channel
    shift, brightness-contrast around mid-grey, and grayscale (RGB only). Blocks of ``grey`` images (``(B,)`` bool)
    draw only from :data:`COLOUR_CHANGES_GRAY`, with the same scale and shift in every channel.
    """
    shape, device = tuple(colour.shape), colour.device
    eye = torch.eye(channels, device=device).expand(*shape, channels, channels)
    changes = COLOUR_CHANGES_RGB if channels == 3 else COLOUR_CHANGES_GRAY
    change = integers(shape, 0, len(changes) - 1, generator, device)
    if channels == 3:
        grey_change = integers(shape, 1, len(COLOUR_CHANGES_GRAY), generator, device)  # scale, shift, b/c in RGB order
        change = torch.where(grey.unsqueeze(1), grey_change, change)
    strength = config.colour_strength

    def magnitude(extra: tuple[int, ...] = ()) -> Tensor:
        full = (*shape, *extra)
        return random_sign(full, generator, device) * uniform(full, *strength, generator, device)

    def per_channel() -> Tensor:
        value = magnitude((channels,))
        return torch.where(grey[:, None, None], value[..., :1].expand_as(value), value)

    scale = torch.diag_embed(1.0 + per_channel())
    shift = per_channel()
    contrast = 1.0 + magnitude()
    brightness = magnitude()
    bc_matrix = contrast[..., None, None] * eye
    bc_offset = (0.5 * (1.0 - contrast) + brightness).unsqueeze(-1).expand(*shape, channels)

    matrices = {"scale": scale, "shift": eye, "brightness_contrast": bc_matrix}
    offsets = {"scale": torch.zeros_like(shift), "shift": shift, "brightness_contrast": bc_offset}
    if channels == 3:
        permutations = torch.eye(3, device=device)[torch.tensor(_CHANNEL_PERMUTATIONS, device=device)]
        which = integers(shape, 0, len(_CHANNEL_PERMUTATIONS) - 1, generator, device)
        gray_row = torch.tensor(_GRAY_WEIGHTS, device=device)
        matrices["permute"] = permutations[which]
        matrices["grayscale"] = gray_row.expand(*shape, 3, 3)
        offsets["permute"] = offsets["grayscale"] = torch.zeros_like(shift)

    matrix, offset = eye, torch.zeros_like(shift)
    for index, name in enumerate(changes):
        chosen = colour & (change == index)
        matrix = torch.where(chosen[..., None, None], matrices[name], matrix)
        offset = torch.where(chosen[..., None], offsets[name], offset)
    return matrix.contiguous(), offset.contiguous()


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
    num_blocks = _draw_count((batch,), *config.num_blocks, config.count_distribution, generator, device)
    num_blocks = torch.where(corrupt, num_blocks, 0)
    if grey is None or not config.preserve_grey or channels == 1:
        grey = torch.zeros((batch,), dtype=torch.bool, device=device)

    h_low, h_high = _side_range(height, config.block_size)
    w_low, w_high = _side_range(width, config.block_size)
    box_h = _draw_count(shape, h_low, h_high, config.size_distribution, generator, device)
    box_w = _draw_count(shape, w_low, w_high, config.size_distribution, generator, device)
    unclipped_top, box_top, block_h = _place(height, box_h, config.placement, generator)
    unclipped_left, box_left, block_w = _place(width, box_w, config.placement, generator)
    shape_kind, shape_geometry = _sample_shapes(unclipped_top, unclipped_left, box_h, box_w, config, generator)

    ops = _sample_ops(shape, config, generator, device)
    kinds = config.kinds

    def enabled(name: str) -> Tensor:
        return ops[..., kinds.index(name)] if name in kinds else torch.zeros(shape, dtype=torch.bool, device=device)

    geometry = _sample_geometry(enabled("flip"), enabled("rotate"), config, generator)
    blur_level = integers(shape, config.blur_levels[0], config.blur_levels[1], generator, device)
    blur_level = torch.where(enabled("blur"), blur_level, 0)
    colour_matrix, colour_offset = _sample_colour(enabled("colour"), channels, config, generator, grey)
    valid = torch.arange(k_max, device=device) < num_blocks.unsqueeze(1)
    noisy = enabled("noise") & valid
    noise_std = torch.where(noisy, uniform(shape, *config.noise_std, generator, device), 0.0)
    noise_channels = torch.where(grey, 1, channels).unsqueeze(1)
    noise_size = torch.where(noisy, noise_channels * block_h * block_w, 0)
    noise_start = torch.cumsum(noise_size.reshape(-1), dim=0).view(shape) - noise_size
    noise = torch.randn((int(noise_size.sum()),), generator=generator, device=device)
    return BlockParams(
        num_blocks=num_blocks,
        top=box_top,
        left=box_left,
        height=block_h,
        width=block_w,
        shape=shape_kind,
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


# ----------------------------------------------------------------------------------------------------------------------
# Shared pieces of the semantics
# ----------------------------------------------------------------------------------------------------------------------


def block_affine(params: BlockParams) -> Tensor:
    """Per-block affine source maps as a float32 ``(6, B, K)`` tensor ``[a00, a01, oy, a10, a11, ox]``.

    Output pixel ``(y, x)`` of a block reads the source at ``(a00 y + a01 x + oy, a10 y + a11 x + ox)``, which is
    ``c + A (p - c)`` with ``A = params.geometry`` and ``c = (top + (height - 1) / 2, left + (width - 1) / 2)`` the
    block centre. For identity, flips and most right-angle rotations every entry is an integer, so integer pixels map
    exactly to integer pixels.
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
    sy: Tensor, sx: Tensor, height: Tensor | int, width: Tensor | int
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Border-clamped bilinear corners: ``y0, y1, x0, x1`` (int32) and weights ``wy, wx`` (float32).

    ``height`` and ``width`` are ints or int32 tensors broadcasting with the coordinates. At integer coordinates the
    weights are exactly 0, so interpolation returns the pixel value exactly.
    """
    last_y = torch.as_tensor(height, dtype=torch.int32, device=sy.device) - 1
    last_x = torch.as_tensor(width, dtype=torch.int32, device=sx.device) - 1
    sy = torch.minimum(sy.clamp(min=0), last_y.to(sy.dtype))
    sx = torch.minimum(sx.clamp(min=0), last_x.to(sx.dtype))
    fy, fx = sy.floor(), sx.floor()
    y0, x0 = fy.int(), fx.int()
    y1 = torch.minimum(y0 + 1, last_y)
    x1 = torch.minimum(x0 + 1, last_x)
    return y0, y1, x0, x1, sy - fy, sx - fx


def average_pool_2x2(images: Tensor) -> Tensor:
    """2x2 average pooling with ceil mode: a partial window at an odd border averages the pixels it holds.

    An odd last row or column is duplicated first, which gives exactly that average.
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
    """
    pyramid = [images]
    for _ in range(levels):
        pyramid.append(average_pool_2x2(pyramid[-1]))
    return pyramid


def level_coordinates(coordinate: Tensor, scale: Tensor | float) -> Tensor:
    """Map full-resolution pixel coordinates to a pyramid level of scale ``2**-level`` (pixel centres stay aligned)."""
    return (coordinate + 0.5) * scale - 0.5


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


# ----------------------------------------------------------------------------------------------------------------------
# Vectorised application
# ----------------------------------------------------------------------------------------------------------------------

CHUNK_PIXELS = 1 << 16
"""Pixels processed per step of the vectorised path: bounds the temporaries (a few MiB) whatever the batch size."""


def last_block_index(params: BlockParams, height: int, width: int) -> Tensor:
    """For every pixel of the batch, the flat index ``b * K + k`` of the last block covering it, or -1.

    Instead of ``B x K x H x W`` coverage masks, the pixels of every valid block's box are enumerated, for runs of
    consecutive blocks holding about :data:`CHUNK_PIXELS` pixels, those outside the block's shape dropped
    (:func:`inside_shape`), and the rest scattered with ``amax``; memory stays small and time scales with the total
    box area.

    Returns:
        ``(B * H * W,)`` int32 tensor, in row-major ``(b, y, x)`` order.
    """
    batch, k_max = params.top.shape
    device = params.top.device
    valid = torch.arange(k_max, device=device) < params.num_blocks.unsqueeze(1)
    area = torch.where(valid, params.height * params.width, 0).reshape(-1)
    end = torch.cumsum(area, dim=0)
    start = (end - area).int()
    block_base = (torch.arange(batch, device=device).unsqueeze(1) * height + params.top) * width + params.left
    block_base, block_w = block_base.reshape(-1).int(), params.width.reshape(-1).int()
    shaped = bool((params.shape != 0).any())  # only rectangles: every box pixel is covered
    block_top, block_left = params.top.reshape(-1).int(), params.left.reshape(-1).int()
    block_shape, block_geometry = params.shape.reshape(-1), params.shape_geometry.reshape(-1, 7)
    winner = torch.full((batch * height * width,), -1, dtype=torch.int32, device=device)
    ends = end.tolist()
    first = 0
    while first < len(ends) and ends[first] - int(area[first]) < ends[-1]:
        done = ends[first - 1] if first > 0 else 0
        last = max(bisect.bisect_right(ends, done + CHUNK_PIXELS), first + 1)
        block = torch.arange(first, last, dtype=torch.int32, device=device).repeat_interleave(area[first:last])
        enumerated = torch.arange(done, done + block.numel(), dtype=torch.int32, device=device)
        local = enumerated - start.index_select(0, block)
        w = block_w.index_select(0, block)
        row = torch.div(local, w, rounding_mode="floor")
        pixel = block_base.index_select(0, block) + row * (width - w) + local
        if shaped:
            y = (block_top.index_select(0, block) + row).float()
            x = (block_left.index_select(0, block) + local - row * w).float()
            inside = inside_shape(y, x, block_shape.index_select(0, block), block_geometry.index_select(0, block))
            block = torch.where(inside, block, -1)
        winner.scatter_reduce_(0, pixel.long(), block, reduce="amax")
        first = last
    return winner


def _interpolate(
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
    """
    y0, y1, x0, x1, wy, wx = bilinear_corners(sy, sx, height, width)
    row0, row1 = base + y0 * width, base + y1 * width
    corners = (row0 + x0, row0 + x1, row1 + x0, row1 + x1)
    samples = []
    for c in range(channels):
        v00, v01, v10, v11 = (flat.index_select(0, corner + c * plane) for corner in corners)
        samples.append(torch.lerp(torch.lerp(v00, v01, wx), torch.lerp(v10, v11, wx), wy))
    return samples


@dataclass(frozen=True)
class _Sources:
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


def _sources(clean: Tensor, levels: int) -> _Sources:
    """Build the blur pyramid of the clean batch and lay its pooled levels out flat."""
    pyramid = blur_pyramid(clean, levels)
    sizes = [level.numel() for level in pyramid]
    starts = [0, 0, *itertools.accumulate(sizes[1:])][: levels + 1]
    pooled = torch.cat([level.reshape(-1) for level in pyramid[1:]]) if levels > 0 else clean.new_empty(0)
    as_tensor = functools.partial(torch.tensor, dtype=torch.int32, device=clean.device)
    _, channels, height, width = clean.shape
    return _Sources(
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


def _per_block_tables(params: BlockParams, channels: int, height: int, width: int) -> dict[str, Tensor]:
    """Flat ``(B * K,)`` per-block tables for per-pixel gathers.

    Read paths: ``path`` is 0 for unblurred blocks whose source map sends the block's integer pixels to integer pixels
    inside the image (identity, flips, most right-angle rotations): those read the flat clean offset
    ``step_y * y + step_x * x + start`` directly, which is what bilinear interpolation returns there. ``path`` is 1
    for other unblurred blocks (interpolated from the clean batch) and 2 for blurred ones (interpolated from their
    pyramid level). Colour entries are ``matrix_i_j`` and ``offset_i``; ``colour`` flags non-identity colour maps.
    Integer tables are int32.
    """
    batch, k_max = params.top.shape
    affine = block_affine(params)
    corner_y = torch.stack([params.top, params.top, params.top + params.height - 1, params.top + params.height - 1])
    corner_x = torch.stack([params.left, params.left + params.width - 1, params.left, params.left + params.width - 1])
    source_y, source_x = source_coordinates(corner_y.float(), corner_x.float(), affine.unsqueeze(1))
    inside = ((source_y >= 0) & (source_y <= height - 1) & (source_x >= 0) & (source_x <= width - 1)).all(dim=0)
    direct = (affine == affine.round()).all(dim=0) & inside & (params.blur_level == 0)
    image_start = torch.arange(batch, device=affine.device).unsqueeze(1) * (channels * height * width)
    integer = affine.round().long()
    tables = {name: affine[i] for i, name in enumerate(("a00", "a01", "oy", "a10", "a11", "ox"))}
    tables["path"] = torch.where(params.blur_level > 0, 2, torch.where(direct, 0, 1))
    tables["step_y"] = torch.where(direct, integer[0] * width + integer[3], width)
    tables["step_x"] = torch.where(direct, integer[1] * width + integer[4], 1)
    tables["start"] = image_start + torch.where(direct, integer[2] * width + integer[5], 0)
    tables["blur_level"] = params.blur_level
    tables["noise_std"] = params.noise_std
    tables["noise_start"] = params.noise_start
    tables["top"], tables["left"] = params.top, params.left
    tables["width"] = params.width
    tables["noise_plane"] = torch.where(params.grey.unsqueeze(1), 0, params.height * params.width)
    eye = torch.eye(channels, device=affine.device)
    tables["colour"] = (params.colour_matrix != eye).any(-1).any(-1) | (params.colour_offset != 0).any(-1)
    for i in range(channels):
        tables[f"offset_{i}"] = params.colour_offset[..., i]
        for j in range(channels):
            tables[f"matrix_{i}_{j}"] = params.colour_matrix[..., i, j]
    tables = {name: table.expand(batch, k_max).reshape(-1).contiguous() for name, table in tables.items()}
    return {name: table.int() if table.dtype == torch.long else table for name, table in tables.items()}


def _render_pixels(
    sources: _Sources, noise: Tensor, tables: dict[str, Tensor], image: Tensor, y: Tensor, x: Tensor, block: Tensor
) -> Tensor:
    """Compute the corrupted float32 values of pixels ``(image, y, x)`` from their winning ``block``.

    Every pixel first reads its direct source (path 0, see :func:`_per_block_tables`); pixels of interpolated blocks
    are then overwritten. The colour map is applied only where it is not the identity and noise only where its std is
    not zero (skipping them changes nothing).

    Args:
        sources: Output of :func:`_sources`.
        noise: The flat standard-normal noise patches (``BlockParams.noise``).
        tables: Output of :func:`_per_block_tables`.
        image: ``(n,)`` int32 image indices.
        y: ``(n,)`` int32 rows.
        x: ``(n,)`` int32 columns.
        block: ``(n,)`` int32 flat indices ``b * K + k`` of the winning blocks.

    Returns:
        Unclamped float32 values ``(C, n)``.
    """
    channels, height, width = sources.channels, sources.height, sources.width
    plane = height * width

    def per_pixel(name: str, blocks: Tensor = block) -> Tensor:
        return tables[name].index_select(0, blocks)

    offset = per_pixel("step_y") * y + per_pixel("step_x") * x + per_pixel("start")
    values = sources.clean.new_empty((channels, block.numel()))
    for c in range(channels):
        torch.index_select(sources.clean, 0, offset + c * plane, out=values[c])

    path = per_pixel("path")
    for kind in (1, 2):
        chosen = torch.nonzero(path == kind).squeeze(1)
        if chosen.numel() == 0:
            continue
        chosen_block = block.index_select(0, chosen)
        affine = torch.stack([per_pixel(name, chosen_block) for name in ("a00", "a01", "oy", "a10", "a11", "ox")])
        sy, sx = source_coordinates(y.index_select(0, chosen).float(), x.index_select(0, chosen).float(), affine)
        chosen_image = image.index_select(0, chosen)
        if kind == 1:
            samples = _interpolate(
                sources.clean, chosen_image * (channels * plane), sy, sx, height, width, plane, channels
            )
        else:
            level = per_pixel("blur_level", chosen_block)
            level_h, level_w = sources.level_height.index_select(0, level), sources.level_width.index_select(0, level)
            level_plane = level_h * level_w
            base = sources.level_start.index_select(0, level) + chosen_image * channels * level_plane
            scale = sources.level_scale.index_select(0, level)
            samples = _interpolate(
                sources.pooled,
                base,
                level_coordinates(sy, scale),
                level_coordinates(sx, scale),
                level_h,
                level_w,
                level_plane,
                channels,
            )
        for value, sample in zip(values, samples, strict=True):
            value.scatter_(0, chosen, sample)

    chosen = torch.nonzero(per_pixel("colour")).squeeze(1)
    if chosen.numel() > 0:
        chosen_block = block.index_select(0, chosen)
        selected = [value.index_select(0, chosen) for value in values]
        for i in range(channels):
            mixed = per_pixel(f"offset_{i}", chosen_block)
            for j in range(channels):
                mixed = mixed + per_pixel(f"matrix_{i}_{j}", chosen_block) * selected[j]
            values[i].scatter_(0, chosen, mixed)

    std = per_pixel("noise_std")
    chosen = torch.nonzero(std).squeeze(1)
    if chosen.numel() > 0:
        chosen_block = block.index_select(0, chosen)
        row = y.index_select(0, chosen) - per_pixel("top", chosen_block)
        col = x.index_select(0, chosen) - per_pixel("left", chosen_block)
        offset = per_pixel("noise_start", chosen_block) + row * per_pixel("width", chosen_block) + col
        noise_plane, std = per_pixel("noise_plane", chosen_block), std.index_select(0, chosen)
        for c in range(channels):
            values[c].index_add_(0, chosen, std * noise.index_select(0, offset + c * noise_plane))
    return values


def apply_vectorised(
    images: Tensor, params: BlockParams, change_tolerance: float = DEFAULT_CHANGE_TOLERANCE
) -> tuple[Tensor, Tensor]:
    """Apply sampled block parameters to a batch without any Python loop over images or blocks.

    The covered pixels are processed in chunks of :data:`CHUNK_PIXELS` (a loop over pixel ranges, not over blocks):
    each pixel is rendered from its winning block only, then clamped, cast, compared with the input and labelled as
    :func:`finalise` does for whole images. Pixel offsets are int32 (small temporaries are much cheaper than int64 on
    CPU), so a batch must hold fewer than ``2**31`` values.

    Args:
        images: ``(B, C, H, W)`` float images in [0, 1] (already validated).
        params: Parameters from :func:`sample_params` for this batch shape.
        change_tolerance: A pixel is labelled changed when some channel moved by more than this.

    Returns:
        ``(corrupted, labels)`` as described in :func:`finalise`.
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
    sources = _sources(images.float().contiguous(), int(params.blur_level.max()))
    tables = _per_block_tables(params, channels, height, width)
    out_flat, labels_flat = out.view(-1), labels.view(-1)
    channel_step = plane * torch.arange(channels, dtype=torch.int32, device=images.device).unsqueeze(1)
    for first in range(0, pixel.numel(), CHUNK_PIXELS):
        chunk = pixel[first : first + CHUNK_PIXELS]
        image = torch.div(chunk, plane, rounding_mode="floor")
        within = chunk - image * plane
        y = torch.div(within, width, rounding_mode="floor")
        values = _render_pixels(
            sources, params.noise, tables, image, y, within - y * width, winner.index_select(0, chunk)
        )
        index = (image * (channels * plane) + within).unsqueeze(0) + channel_step
        old = out_flat.index_select(0, index.view(-1)).view(channels, -1)
        new = values.clamp_(0.0, 1.0).to(images.dtype)
        changed = (new.float() - old.float()).abs_().amax(dim=0) > change_tolerance
        out_flat.scatter_(0, index.view(-1).long(), torch.where(changed, new, old).view(-1))
        labels_flat.scatter_(0, chunk.long(), changed.float())
    return out, labels
