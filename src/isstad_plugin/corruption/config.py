"""Settings of the paper-mode corruption: the paper's numbers, our defaults where it gives none, and their checks.

The paper corrupts 5/6 of the training images by applying "random rotation, flipping, Gaussian noise addition, and
color variation" to 1-100 random-sized image blocks, and labels a pixel 1 exactly where its value changed.

Where the paper gives no number, the defaults aim at label statistics like real defects (a few per cent of an image,
as often at the border as in the centre, no colour on grey images, thin and irregular regions as well as rectangles):
block counts and sides are drawn log-uniformly (mostly a few small blocks, sometimes 100 or a quarter of the image),
blocks may straddle the border (they are clipped, so every pixel row is covered at the same rate), a block paints a
rectangle, an ellipse, a thin line or an irregular blob inside its box, and grey images get grey-only changes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from isstad_plugin.validation import check_names, check_pair, check_probability, check_subset

# Paper constants (§4.1.3 "Data Augmentation").
PAPER_CORRUPT_PROB = 5 / 6
"""Fraction of training images that are corrupted (paper §4.1.3)."""
PAPER_NUM_BLOCKS = (1, 100)
"""Inclusive range of the number of blocks per corrupted image (paper §4.1.3)."""
DEFAULT_SOFT_PROB = 0.0
"""Share of corrupted images that also get a soft region (:mod:`~isstad_plugin.corruption.soft`); 0: the paper's."""

OPERATIONS = ("flip", "rotate", "blur", "colour", "noise")
"""Operation kinds, in the fixed order in which they are composed inside a block."""
SHAPES = ("rectangle", "ellipse", "line", "blob")
"""Region shapes a block may paint inside its box."""


@dataclass(frozen=True)
class PaperConfig:
    """Settings of the paper-mode corruption; the defaults follow the paper where it gives a number.

    The numbers no setting reaches are constants beside their use (for instance
    :data:`~isstad_plugin.corruption.params.OPS_PER_BLOCK` and
    :data:`~isstad_plugin.corruption.render.CHANGE_TOLERANCE`), listed in ``docs/corruption.md``.

    Attributes:
        corrupt_prob: Probability that an image is corrupted (paper §4.1.3: 5/6).
        num_blocks: Inclusive range of blocks per corrupted image (paper §4.1.3: 1 to 100), drawn log-uniformly
            (median 10 of 1-100).
        block_size: ``(min_px, max_fraction)``: block height and width are drawn independently and log-uniformly
            from ``[min_px, max(min_px, floor(max_fraction * side))]``, capped at the side; default: at least 2 px, at
            most a quarter of the side.
        operations: Operation kinds that blocks may use, a subset of :data:`OPERATIONS`.
        noise_std: Range of the per-block Gaussian noise standard deviation (images in [0, 1]).
        colour_strength: Range of the magnitude of colour scale/shift/brightness/contrast changes (the sign is random).
        shapes: Region shapes drawn uniformly per block, a subset of :data:`SHAPES`.
        line_width: Range of the width in pixels of ``line`` shapes (scratches, cracks).
        preserve_grey: Grey images (equal channels) get only grey changes: no channel permutation or per-channel
            colour change, the same noise in every channel.
        soft_prob: Share of corrupted images that also get one soft, low-contrast region (shading, gain, contrast,
            blur with a feathered edge; :mod:`~isstad_plugin.corruption.soft`). 0 (default) is the paper's corruption.
        soft_coverage: Range of the share of the image a soft region covers.
        soft_strength: Range of the magnitude of a soft region's brightness or gain change (the sign is random).
        soft_label_threshold: A pixel under a soft region is labelled 1 when some channel moved by more than this
            (default 0.02, about 5 grey levels).
    """

    corrupt_prob: float = PAPER_CORRUPT_PROB
    num_blocks: tuple[int, int] = PAPER_NUM_BLOCKS
    block_size: tuple[int, float] = (2, 0.25)
    operations: tuple[str, ...] = OPERATIONS
    noise_std: tuple[float, float] = (0.05, 0.25)
    colour_strength: tuple[float, float] = (0.1, 0.4)
    shapes: tuple[str, ...] = SHAPES
    line_width: tuple[float, float] = (1.0, 3.0)
    preserve_grey: bool = True
    soft_prob: float = DEFAULT_SOFT_PROB
    soft_coverage: tuple[float, float] = (0.05, 0.6)
    soft_strength: tuple[float, float] = (0.03, 0.2)
    soft_label_threshold: float = 0.02

    def __post_init__(self) -> None:
        """Check every setting and raise a one-line ``ValueError`` naming the bad one."""
        check_probability("corrupt_prob", self.corrupt_prob)
        check_probability("soft_prob", self.soft_prob)
        check_pair("num_blocks", self.num_blocks, minimum=1, integers=True)
        for name in ("noise_std", "colour_strength", "line_width", "soft_coverage", "soft_strength"):
            check_pair(name, getattr(self, name))
        if not (self.soft_coverage[0] > 0 and self.soft_coverage[1] <= 1):
            raise ValueError(f"soft_coverage must lie in (0, 1], got {self.soft_coverage}")
        if not 0 <= self.soft_label_threshold < 1:
            raise ValueError(f"soft_label_threshold must be in [0, 1), got {self.soft_label_threshold}")
        if self.line_width[0] <= 0:
            raise ValueError(f"line_width must be positive, got {self.line_width}")
        min_px, max_fraction = self.block_size
        if int(min_px) != min_px or min_px < 1 or not 0 < max_fraction <= 1:
            raise ValueError(f"block_size must be (min_px >= 1 integer, 0 < max_fraction <= 1), got {self.block_size}")
        check_subset("operations", self.operations, OPERATIONS)
        check_subset("shapes", self.shapes, SHAPES)

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
