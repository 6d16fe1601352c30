"""Rendering one image: its seeded random streams, the clean surface, the defects and the exact mask."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from isstad_plugin.data.synthetic.backgrounds import SURFACES, Surface
from isstad_plugin.data.synthetic.defects import DEFECTS
from isstad_plugin.data.synthetic.spec import (
    CATEGORIES,
    DEFECT_TYPES,
    GENERATOR_VERSION,
    MAX_DEFECT_AREA,
    MIN_CHANGE,
    MIN_DEFECT_AREA,
    SPLITS,
    band_rows,
    check_image_size,
)
from isstad_plugin.validation import check_choice, check_int

_TWO_DEFECT_PROBABILITY = 0.2
_MAX_ATTEMPTS = 60


@dataclass(frozen=True)
class SyntheticSample:
    """One rendered image.

    Attributes:
        image: Uint8 ``(H, W, 3)`` RGB image as written to disk.
        clean: Uint8 ``(H, W, 3)`` RGB image before the defects were painted (equal to ``image`` for good samples).
        mask: Uint8 ``(H, W)`` mask with values 0 and 255, or ``None`` for good samples.
        n_defects: Number of defects painted (0, 1 or 2).
    """

    image: np.ndarray
    clean: np.ndarray
    mask: np.ndarray | None
    n_defects: int


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """Round a ``[0, 1]`` float image to uint8.

    Args:
        image: Float image.

    Returns:
        Uint8 image of the same shape.
    """
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _sample_rng(
    seed: int, category: str, split: str, defect: str | None, index: int, stream: int
) -> np.random.Generator:
    """The random generator of one stream (0: surface, 1: defects) of one image.

    Args:
        seed: Dataset seed.
        category: Surface category.
        split: ``"train"`` or ``"test"``.
        defect: Defect type, or ``None`` for good images.
        index: Image index within its folder.
        stream: 0 for the surface, 1 for the defects.

    Returns:
        A freshly seeded generator.
    """
    defect_id = 0 if defect is None else 1 + DEFECT_TYPES.index(defect)
    key = [seed, GENERATOR_VERSION, CATEGORIES.index(category), SPLITS.index(split), defect_id, index, stream]
    return np.random.default_rng(key)


def _paint_defects(rng: np.random.Generator, surface: Surface, defect: str, rows: slice) -> SyntheticSample:
    """Paint one or two defects, retrying until the changed area of the kept ``rows`` is within the allowed range.

    Args:
        rng: Random generator of the defect stream.
        surface: The clean surface.
        defect: Defect type.
        rows: The rows of the canvas the image keeps (all of them for a square category).

    Returns:
        The sample: the defective image (reset to the clean one outside the mask), the 0/255 mask, the defect count.

    Raises:
        RuntimeError: If no attempt lands within the area range (not expected for valid image sizes).
    """
    clean = _to_uint8(surface.image)[rows]
    n_defects = 2 if rng.random() < _TWO_DEFECT_PROBABILITY else 1
    for _ in range(_MAX_ATTEMPTS):
        painted = surface.image
        for _ in range(n_defects):
            target, alpha = DEFECTS[defect](rng, surface, painted)
            painted = painted + (target - painted) * alpha[..., None]
        image = _to_uint8(painted)[rows]
        changed = np.abs(image.astype(np.int16) - clean).max(axis=2) >= MIN_CHANGE
        if MIN_DEFECT_AREA <= changed.mean() <= MAX_DEFECT_AREA:
            mask = changed.astype(np.uint8) * 255
            return SyntheticSample(np.where(changed[..., None], image, clean), clean, mask, n_defects)
    msg = f"could not paint a '{defect}' defect covering {MIN_DEFECT_AREA:.1%}-{MAX_DEFECT_AREA:.0%} of the image"
    raise RuntimeError(msg)


def render_sample(
    category: str, split: str, index: int, *, defect: str | None = None, image_size: int = 128, seed: int = 0
) -> SyntheticSample:
    """Render one image exactly as :func:`~isstad_plugin.data.synthetic.generate_dataset` writes it.

    Pixels outside the mask are byte-identical to the clean image; every pixel inside it changed by at least
    :data:`~isstad_plugin.data.synthetic.spec.MIN_CHANGE` grey levels in some channel.

    Args:
        category: Surface category, one of :data:`~isstad_plugin.data.synthetic.spec.CATEGORIES`.
        split: ``"train"`` or ``"test"``.
        index: Image index within its folder (the ``000`` in ``000.png``).
        defect: Defect type (test split only), or ``None`` for a good image.
        image_size: Side length in pixels (the width of a long category: ``spec.LONG_CATEGORIES``).
        seed: Dataset seed.

    Returns:
        The rendered sample, with its clean version.

    Raises:
        ValueError: If an argument is out of range, or a defect is asked for in the train split.
    """
    check_choice("category", category, CATEGORIES)
    check_choice("split", split, SPLITS)
    if defect is not None:
        check_choice("defect", defect, DEFECT_TYPES)
        if split != "test":
            msg = "defect images only exist in the test split"
            raise ValueError(msg)
    check_int("index", index, 0)
    check_int("seed", seed, 0)
    check_image_size(category, image_size)
    surface = SURFACES[category](_sample_rng(seed, category, split, defect, index, 0), image_size)
    rows = band_rows(category, image_size)
    if defect is None:
        clean = _to_uint8(surface.image)[rows]
        return SyntheticSample(image=clean, clean=clean, mask=None, n_defects=0)
    return _paint_defects(_sample_rng(seed, category, split, defect, index, 1), surface, defect, rows)
