"""Settings of the paper-mode corruption: the paper's numbers, our defaults where it gives none, and their checks.

The paper corrupts 5/6 of the training images by applying "random rotation, flipping, Gaussian noise addition, and
color variation" to 1-100 random-sized image blocks, and labels a pixel 1 exactly where its value changed.

Where the paper gives no number, the defaults aim at label statistics like real defects (a few per cent of an image,
as often at the border as in the centre, no colour on grey images, thin and irregular regions as well as rectangles):
block counts and sides are drawn log-uniformly, blocks may straddle the border (they are clipped), a block paints a
rectangle, an ellipse, a thin line or an irregular blob inside its box, and grey images get grey-only changes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from isstad_plugin.validation import check_choice, check_names, check_pair, check_probability, check_subset

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

DEFAULT_SOFT_PROB = 0.0
"""Share of corrupted images that also get a soft region (:mod:`~isstad_plugin.corruption.soft`); 0: the paper's."""
DEFAULT_SOFT_COVERAGE = (0.05, 0.6)
"""Range of the share of the image a soft region covers."""
DEFAULT_SOFT_FEATHER = (0.05, 1.0)
"""Range of a soft region's edge width, in standard deviations of its random field (0.05: sharp, 1: diffuse)."""
DEFAULT_SOFT_STRENGTH = (0.03, 0.2)
"""Range of the magnitude of a soft region's brightness or gain change (images in [0, 1]; the sign is random)."""
DEFAULT_SOFT_LABEL_THRESHOLD = 0.02
"""A pixel under a soft region is labelled changed when some channel moved by more than this (about 5 grey levels)."""

OPERATIONS = ("flip", "rotate", "blur", "colour", "noise")
"""Operation kinds, in the fixed order in which they are composed inside a block."""
SHAPES = ("rectangle", "ellipse", "line", "blob")
"""Region shapes a block may paint inside its box."""
DISTRIBUTIONS = ("uniform", "log_uniform")
"""Ways of drawing block counts and sides."""
PLACEMENTS = ("inside", "straddle")
"""Ways of placing block boxes."""


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
            average-pooled ``l`` times by 2x2 (see :func:`~isstad_plugin.corruption.geometry.blur_pyramid`), a
            low-pass of width about ``2**l`` px.
        count_distribution: How the number of blocks is drawn from ``num_blocks``: ``"uniform"`` or
            ``"log_uniform"``.
        size_distribution: How block sides are drawn from ``block_size``: ``"uniform"`` or ``"log_uniform"``.
        placement: ``"inside"`` (boxes wholly inside the image) or ``"straddle"`` (any box that overlaps the image,
            clipped to it).
        shapes: Region shapes drawn uniformly per block, a subset of :data:`SHAPES`.
        line_width: Range of the width in pixels of ``line`` shapes.
        preserve_grey: Grey images (equal channels) get only grey changes: no channel permutation or per-channel
            colour change, the same noise in every channel.
        soft_prob: Share of corrupted images that also get one soft, low-contrast region (shading, gain, contrast,
            blur with a feathered edge; :mod:`~isstad_plugin.corruption.soft`). 0 (default) is the paper's corruption.
        soft_coverage: Range of the share of the image a soft region covers.
        soft_feather: Range of a soft region's edge width (0.05: sharp edge, 1: diffuse).
        soft_strength: Range of the magnitude of a soft region's brightness or gain change.
        soft_label_threshold: A pixel under a soft region is labelled 1 when some channel moved by more than this.
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
    soft_prob: float = DEFAULT_SOFT_PROB
    soft_coverage: tuple[float, float] = DEFAULT_SOFT_COVERAGE
    soft_feather: tuple[float, float] = DEFAULT_SOFT_FEATHER
    soft_strength: tuple[float, float] = DEFAULT_SOFT_STRENGTH
    soft_label_threshold: float = DEFAULT_SOFT_LABEL_THRESHOLD

    def __post_init__(self) -> None:
        """Check every setting and raise a one-line ``ValueError`` naming the bad one."""
        check_probability("corrupt_prob", self.corrupt_prob)
        check_probability("right_angle_prob", self.right_angle_prob)
        check_probability("soft_prob", self.soft_prob)
        for name in ("soft_coverage", "soft_feather", "soft_strength"):
            check_pair(name, getattr(self, name))
        if not (self.soft_coverage[0] > 0 and self.soft_coverage[1] <= 1 and self.soft_feather[0] > 0):
            raise ValueError(
                f"soft_coverage must lie in (0, 1] and soft_feather be positive, got {self.soft_coverage}, "
                f"{self.soft_feather}"
            )
        if not 0 <= self.soft_label_threshold < 1:
            raise ValueError(f"soft_label_threshold must be in [0, 1), got {self.soft_label_threshold}")
        for name in ("num_blocks", "ops_per_block", "blur_levels"):
            check_pair(name, getattr(self, name), minimum=1, integers=True)
        for name in ("noise_std", "colour_strength", "small_angle", "line_width"):
            check_pair(name, getattr(self, name))
        if self.line_width[0] <= 0:
            raise ValueError(f"line_width must be positive, got {self.line_width}")
        min_px, max_fraction = self.block_size
        if int(min_px) != min_px or min_px < 1 or not 0 < max_fraction <= 1:
            raise ValueError(f"block_size must be (min_px >= 1 integer, 0 < max_fraction <= 1), got {self.block_size}")
        if not 0 <= self.change_tolerance < 1:
            raise ValueError(f"change_tolerance must be in [0, 1), got {self.change_tolerance}")
        check_subset("operations", self.operations, OPERATIONS)
        check_subset("shapes", self.shapes, SHAPES)
        for name, choices in (
            ("count_distribution", DISTRIBUTIONS),
            ("size_distribution", DISTRIBUTIONS),
            ("placement", PLACEMENTS),
        ):
            check_choice(name, getattr(self, name), choices)

    def replace(self, **settings: Any) -> PaperConfig:
        """A copy with ``settings`` (fields by name; lists become tuples, as YAML and the command line give them).

        Raises:
            ValueError: An unknown name (naming the nearest field) or a bad value, in one line.
        """
        check_names("corruption setting", settings, [f.name for f in dataclasses.fields(self)])
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
        return dataclasses.replace(self, **values)

    @property
    def kinds(self) -> tuple[str, ...]:
        """Enabled operation kinds, in composition order and without duplicates."""
        return tuple(name for name in OPERATIONS if name in self.operations)
