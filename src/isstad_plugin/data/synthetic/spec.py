"""What a synthetic dataset holds: the categories, defect types and limits, and :class:`DatasetSpec`.

This module only checks and describes arguments; it draws nothing (no OpenCV).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from isstad_plugin.validation import check_choice, check_int

DEFECT_TYPES: tuple[str, ...] = ("scratch", "hole", "crack", "stain", "missing")
"""Defect types, in the order used for seeding and folder listing."""

CATEGORIES: tuple[str, ...] = ("tiles", "metal", "fabric", "wood", "parts", "strip")
"""Surface categories: ceramic tiles, brushed metal, woven fabric, wood grain, a hex nut on a conveyor belt, and a long
narrow steel strip (:data:`LONG_CATEGORIES`) with hairline cracks."""

LONG_CATEGORIES: dict[str, float] = {"strip": 8 / 3}
"""Width : height of the categories whose images are not square; their ``image_size`` is the width."""

CATEGORY_DEFECTS: dict[str, tuple[str, ...]] = {"strip": ("crack",)}
"""Default defect types of a category (the others: every type). A strip 128 px long (48 high): cracks 1-2 px wide."""

SPLITS: tuple[str, ...] = ("train", "test")
"""Dataset splits, in the order used for seeding."""

MIN_IMAGE_SIZE = 32
MAX_IMAGE_SIZE = 1024
MIN_DEFECT_AREA = 0.002
"""Smallest fraction of the image a defect mask covers."""
MAX_DEFECT_AREA = 0.05
"""Largest fraction of the image a defect mask covers (all defects of the image together)."""
MIN_CHANGE = 8
"""A pixel belongs to the mask when some channel differs from the clean image by at least this many grey levels."""
GENERATOR_VERSION = 1
"""Bumped whenever the pictures change, so that cached datasets are not reused across versions."""
MANIFEST_NAME = "manifest.json"

_INT_MINIMA = {"n_train": 1, "n_test_good": 0, "n_test_defect": 0, "image_size": MIN_IMAGE_SIZE, "seed": 0}
"""Smallest value of the integer fields of :class:`DatasetSpec`, in the order they are checked."""


def image_hw(category: str, image_size: int) -> tuple[int, int]:
    """``(height, width)`` of a category's images: a square, or ``image_size`` wide for :data:`LONG_CATEGORIES`."""
    aspect = LONG_CATEGORIES.get(category, 1.0)
    return round(image_size / aspect), image_size


def band_rows(category: str, image_size: int) -> slice:
    """The rows of the square canvas (side ``image_size``) that a category's image keeps: its centred band."""
    height = image_hw(category, image_size)[0]
    top = (image_size - height) // 2
    return slice(top, top + height)


def check_image_size(category: str, image_size: int) -> None:
    """Refuse a size whose shorter side is below :data:`MIN_IMAGE_SIZE`, naming the smallest that works.

    Raises:
        ValueError: ``image_size`` too small for the category's aspect.
    """
    check_int("image_size", image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
    if min(image_hw(category, image_size)) < MIN_IMAGE_SIZE:
        smallest = math.ceil((MIN_IMAGE_SIZE - 0.5) * LONG_CATEGORIES[category])
        msg = f"image_size of '{category}' (its width) must be at least {smallest}, got {image_size}"
        raise ValueError(msg)


def normalise_defects(defects: Sequence[str]) -> tuple[str, ...]:
    """Validate a defect list and return it in :data:`DEFECT_TYPES` order.

    Args:
        defects: Requested defect types.

    Returns:
        The defect types, canonical order, no duplicates.

    Raises:
        ValueError: If the list is a bare string, empty, or names an unknown type.
    """
    if isinstance(defects, str):
        msg = f"defects must be a sequence of defect names, e.g. ({defects!r},), not a string"
        raise ValueError(msg)
    wanted = list(defects)
    if not wanted:
        msg = f"defects must name at least one of {', '.join(DEFECT_TYPES)}"
        raise ValueError(msg)
    for name in wanted:
        check_choice("defect type", name, DEFECT_TYPES)
    return tuple(name for name in DEFECT_TYPES if name in wanted)


@dataclass(frozen=True)
class DatasetSpec:
    """The validated arguments of :func:`~isstad_plugin.data.synthetic.generate_dataset`.

    Construction checks every field and normalises it: the counts, size and seed become plain ``int`` (numpy integers
    are accepted), and ``defects`` becomes a tuple in :data:`DEFECT_TYPES` order.

    Attributes:
        category: Surface category, one of :data:`CATEGORIES`.
        n_train: Number of good training images (at least 1).
        n_test_good: Number of good test images.
        n_test_defect: Number of test images per defect type.
        image_size: Side length of the square images (the width of :data:`LONG_CATEGORIES`), between
            :data:`MIN_IMAGE_SIZE` and :data:`MAX_IMAGE_SIZE`.
        defects: Defect types to include, from :data:`DEFECT_TYPES`.
        seed: Non-negative dataset seed.

    Raises:
        ValueError: If a field is invalid (the message names it).
    """

    category: str
    n_train: int
    n_test_good: int
    n_test_defect: int
    image_size: int
    defects: Sequence[str]
    seed: int

    def __post_init__(self) -> None:
        check_choice("category", self.category, CATEGORIES)
        for name, minimum in _INT_MINIMA.items():
            value = getattr(self, name)
            check_int(name, value, minimum, MAX_IMAGE_SIZE if name == "image_size" else None)
            object.__setattr__(self, name, int(value))
        check_image_size(self.category, self.image_size)
        object.__setattr__(self, "defects", normalise_defects(self.defects))

    def manifest_params(self) -> dict[str, Any]:
        """The parameters as recorded in (and compared with) the manifest.

        Returns:
            A JSON-ready dict: the generator version followed by the fields, ``defects`` as a list.
        """
        return {"generator_version": GENERATOR_VERSION, **asdict(self), "defects": list(self.defects)}

    @property
    def name_width(self) -> int:
        """Zero-padded width of the file names (at least 3, as in ``000.png``)."""
        return max(3, len(str(max(self.n_train, self.n_test_good, self.n_test_defect) - 1)))
