"""Write a preview grid of the synthetic dataset: per category, good images and one image per defect type.

One row per category. Defect images carry a red outline drawn two pixels outside their ground-truth mask, so that the
defect itself stays visible inside it. Nothing is written to a dataset folder; the samples are rendered in memory with
``render_sample``.

Usage::

    python scripts/synthetic_preview.py [--output docs/_static/synthetic_preview.png] [--size 128] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from isstad_plugin.data.synthetic import CATEGORIES, DEFECT_TYPES, render_sample

N_GOOD = 3
OUTLINE_GAP = 2
LABEL_WIDTH = 70
HEADER_HEIGHT = 18
GAP = 2


def outline(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Return a copy of an RGB image with a red contour around the (slightly dilated) mask.

    Args:
        image: Uint8 RGB image.
        mask: Uint8 0/255 mask, or ``None``.

    Returns:
        The annotated image.
    """
    annotated = image.copy()
    if mask is not None:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * OUTLINE_GAP + 1, 2 * OUTLINE_GAP + 1))
        contours, _ = cv2.findContours(cv2.dilate(mask, kernel), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(annotated, contours, -1, (255, 40, 40), 1)
    return annotated


def category_row(category: str, size: int, seed: int) -> list[np.ndarray]:
    """Render the row of one category: good images, then one outlined image per defect type.

    Args:
        category: Surface category.
        size: Image size in pixels.
        seed: Dataset seed.

    Returns:
        The tiles, left to right.
    """
    samples = [render_sample(category, "train", i, image_size=size, seed=seed) for i in range(N_GOOD)]
    samples += [render_sample(category, "test", 0, defect=d, image_size=size, seed=seed) for d in DEFECT_TYPES]
    return [outline(s.image, s.mask) for s in samples]


def put_text(canvas: np.ndarray, text: str, x: int, y: int) -> None:
    """Draw a small white label.

    Args:
        canvas: RGB canvas, modified in place.
        text: Label text.
        x: Left edge.
        y: Baseline.
    """
    cv2.putText(canvas, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (235, 235, 235), 1, cv2.LINE_AA)


def build_grid(size: int, seed: int) -> np.ndarray:
    """Assemble the whole preview.

    Args:
        size: Image size in pixels.
        seed: Dataset seed.

    Returns:
        Uint8 RGB canvas.
    """
    columns = ["good"] * N_GOOD + list(DEFECT_TYPES)
    n_rows = len(CATEGORIES)
    height = HEADER_HEIGHT + n_rows * (size + GAP)
    width = LABEL_WIDTH + len(columns) * (size + GAP)
    canvas = np.full((height, width, 3), 30, np.uint8)
    for col, name in enumerate(columns):
        put_text(canvas, name, LABEL_WIDTH + col * (size + GAP) + 4, HEADER_HEIGHT - 5)
    for r, category in enumerate(CATEGORIES):
        top = HEADER_HEIGHT + r * (size + GAP)
        put_text(canvas, category, 4, top + size // 2)
        for col, tile in enumerate(category_row(category, size, seed)):
            left = LABEL_WIDTH + col * (size + GAP)
            canvas[top : top + size, left : left + size] = tile
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("docs/_static/synthetic_preview.png"))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    grid = build_grid(args.size, args.seed)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise SystemExit(f"could not encode {args.output}")
    args.output.write_bytes(encoded.tobytes())
    print(f"wrote {args.output} ({grid.shape[1]}x{grid.shape[0]}, {len(encoded) // 1024} KiB)")


if __name__ == "__main__":
    main()
