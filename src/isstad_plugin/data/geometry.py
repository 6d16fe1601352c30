"""The input geometry that follows the data: ``image_size: auto`` from the training images' sizes.

A square input squashes long, narrow images (a 100 x 256 crack image loses half its height, and a 1-2 px crack with
it). ``auto`` keeps the training images' median aspect ratio and spends the same number of pixels (so the same
number of tokens, the same compute) as the square default: ``H * W <= pixels``, ``W / H`` = the median aspect, both
multiples of the patch side, and never larger than the median training image (no upsampling). Only the training
images are read (their headers), so nothing of the test or validation split decides the geometry.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Sequence
from pathlib import Path

from anomalib.data import Folder, MVTecAD
from PIL import Image

from isstad_plugin.data.checks import FOLDER_EXTENSIONS

logger = logging.getLogger(__name__)

MAX_SIZE_SAMPLES = 512
"""At most this many training images (evenly spread over the sorted list) are read for their sizes."""


def train_image_paths(datamodule: object) -> list[Path]:
    """The training images of an anomalib datamodule, before or after its ``setup``.

    ``MVTecAD`` (and the plugin's ``MVTec``) read ``<root>/<category>/train/good``, ``Folder`` its ``normal_dir``; any
    other datamodule after ``setup`` its ``train_data.samples.image_path``.

    Returns:
        The image paths, sorted; empty when none can be found.
    """
    if isinstance(datamodule, MVTecAD):
        return _listed([Path(datamodule.root) / datamodule.category / "train" / "good"])
    if isinstance(datamodule, Folder):
        dirs = [datamodule.normal_dir] if isinstance(datamodule.normal_dir, str | Path) else datamodule.normal_dir
        root = Path(datamodule.root) if datamodule.root else Path()
        return _listed([root / str(d) for d in dirs if not isinstance(d, bytes)])
    samples = getattr(getattr(datamodule, "train_data", None), "samples", None)
    if samples is not None and "image_path" in samples:
        return sorted(Path(p) for p in samples.image_path)
    return []


def image_sizes(paths: Sequence[Path], limit: int = MAX_SIZE_SAMPLES) -> list[tuple[int, int]]:
    """``(height, width)`` of up to ``limit`` images spread evenly over ``paths`` (headers only)."""
    step = max(1, math.ceil(len(paths) / limit))
    sizes = []
    for path in paths[::step]:
        with Image.open(path) as image:
            width, height = image.size
        sizes.append((height, width))
    return sizes


def auto_image_size(sizes: Sequence[tuple[int, int]], patch: int, pixels: int) -> tuple[int, int]:
    """The input ``(height, width)`` for images of ``sizes``: their median aspect within a pixel budget.

    Args:
        sizes: ``(height, width)`` of the training images.
        patch: Patch side; both sides are multiples of it.
        pixels: Budget of ``height * width`` (the square default's, e.g. ``128 * 128``).

    Returns:
        ``(height, width)``, each at least one patch.

    Raises:
        ValueError: ``sizes`` is empty.
    """
    if not sizes:
        raise ValueError("model.image_size auto: found no training images; pass --model.image_size [H, W]")
    aspect = statistics.median(w / h for h, w in sizes)
    height = math.sqrt(pixels / aspect)
    median_height, median_width = statistics.median(h for h, _ in sizes), statistics.median(w for _, w in sizes)
    scale = min(1.0, median_height / height, median_width / (height * aspect))
    height *= scale
    rows = max(1, math.floor(height / patch + 0.5))
    cols = max(1, math.floor(height * aspect / patch + 0.5))
    while rows * cols * patch * patch > pixels and max(rows, cols) > 1:  # rounding up may exceed the budget
        if cols >= rows:
            cols -= 1
        else:
            rows -= 1
    return rows * patch, cols * patch


def resolve_image_size(datamodule: object, patch: int, pixels: int) -> tuple[int, int]:
    """``image_size: auto`` for a fit on ``datamodule``, logged once with what it was derived from.

    Raises:
        ValueError: No training image could be found, in one line naming the option.
    """
    sizes = image_sizes(train_image_paths(datamodule))
    size = auto_image_size(sizes, patch, pixels)
    logger.info(
        "Isstad: image_size auto -> [%d, %d] (median training image %d x %d, median aspect W/H %.2f, %d images "
        "measured, budget %d px)",
        *size,
        statistics.median(h for h, _ in sizes),
        statistics.median(w for _, w in sizes),
        statistics.median(w / h for h, w in sizes),
        len(sizes),
        pixels,
    )
    return size


def _listed(folders: Sequence[Path]) -> list[Path]:
    found = (p for folder in folders if folder.is_dir() for p in folder.rglob("*"))
    return sorted(p for p in found if p.suffix.lower() in FOLDER_EXTENSIONS)  # the images a Folder reads
