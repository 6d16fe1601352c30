"""Write a PNG grid of clean / corrupted / label examples of the stage-2 pixel corruption (cf. paper Fig. 3).

    .venv/bin/python scripts/corruption_grid.py                      # procedural images
    .venv/bin/python scripts/corruption_grid.py --images path/to/dir # your own images (png/jpg/bmp/tif)

Columns: clean image, its corruption and the label. Labels are white where a pixel is labelled anomalous.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from PIL import Image, ImageDraw

from isstad_plugin.corruption import PixelCorruption

DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "_static" / "corruption_grid.png"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
COLUMNS = ("clean", "corrupted", "label")


def procedural_images(count: int, size: int, seed: int) -> torch.Tensor:
    """Colour gradients, a checkerboard, a smooth noise texture and a disc 'object', cycled to ``count`` images."""
    g = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(0, 1, size)
    y, x = ramp.view(-1, 1).expand(size, size), ramp.view(1, -1).expand(size, size)
    gradient = torch.stack([x, y, 1 - x * y])
    checker = (torch.arange(size).view(-1, 1) // (size // 8) + torch.arange(size).view(1, -1) // (size // 8)) % 2
    checkerboard = torch.stack([0.2 + 0.6 * checker, 0.3 + 0.4 * checker, 0.8 - 0.5 * checker]).float()
    coarse = torch.rand((1, 3, 8, 8), generator=g)
    texture = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)[0].clamp(0, 1)
    texture = (0.85 * texture + 0.15 * torch.rand((3, size, size), generator=g)).clamp(0, 1)
    radius = ((y - 0.5) ** 2 + (x - 0.5) ** 2).sqrt()
    disc = (radius < 0.3).float()
    obj = torch.stack([0.15 + 0.7 * disc, 0.15 + 0.45 * disc * (1 - radius), 0.2 + 0.1 * disc])
    obj = (obj + 0.05 * torch.rand((3, size, size), generator=g)).clamp(0, 1)
    bank = [gradient, checkerboard, texture, obj]
    return torch.stack([bank[i % len(bank)] for i in range(count)])


def folder_images(folder: Path, count: int, size: int) -> torch.Tensor:
    """Load up to ``count`` images from ``folder`` as RGB, resized to ``size`` x ``size``."""
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:count]
    if not paths:
        raise SystemExit(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found in {folder}")
    images = []
    for path in paths:
        with Image.open(path) as image:
            resized = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
            array = np.asarray(resized, dtype=np.float32) / 255
        images.append(torch.from_numpy(array).permute(2, 0, 1))
    return torch.stack(images)


def to_rgb_uint8(image: torch.Tensor) -> np.ndarray:
    """``(C, H, W)`` float in [0, 1] (C = 1 or 3) to an ``(H, W, 3)`` uint8 array."""
    image = image.float().expand(3, -1, -1) if image.shape[0] == 1 else image.float()
    return (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def make_grid(rows: list[list[torch.Tensor]], size: int, pad: int = 4, header: int = 18) -> Image.Image:
    """Lay ``rows`` of ``(C, size, size)`` tiles out under the column titles."""
    width = len(COLUMNS) * (size + pad) + pad
    height = header + len(rows) * (size + pad) + pad
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for column, title in enumerate(COLUMNS):
        draw.text((pad + column * (size + pad) + 2, 3), title, fill="black")
    for row, tiles in enumerate(rows):
        for column, tile in enumerate(tiles):
            corner = (pad + column * (size + pad), header + row * (size + pad))
            canvas.paste(Image.fromarray(to_rgb_uint8(tile)), corner)
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=None, help="folder of images to use instead of procedural ones")
    parser.add_argument("--count", type=int, default=4, help="number of example rows (default 4)")
    parser.add_argument("--size", type=int, default=160, help="image side in pixels (default 160)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    torch.set_num_threads(1)

    if args.images is None:
        images = procedural_images(args.count, args.size, args.seed)
    else:
        images = folder_images(args.images, args.count, args.size)
    # corrupt_prob=1 so that every example shows a corruption; training uses the paper's 5/6.
    corrupted, labels = PixelCorruption(corrupt_prob=1.0)(images, generator=args.seed)
    rows = [[images[i], corrupted[i], labels[i]] for i in range(images.shape[0])]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    make_grid(rows, args.size).save(args.output)
    print(f"wrote {args.output} ({images.shape[0]} rows); labelled pixels: {labels.mean().item():.0%}")


if __name__ == "__main__":
    main()
