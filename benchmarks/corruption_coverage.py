"""Label coverage of the stage-2 corruption: how much of an image, and where, the pixel classifier is taught to flag.

    .venv/bin/python benchmarks/corruption_coverage.py [--images DIR] [--size 128] [--count 512] [--seed 0]

Corrupts ``--count`` images (the PNG/JPG files under ``--images``, resized to ``--size``; generated textures without
it) with the current defaults and with the CPU configs' soft regions, and prints one Markdown table each of: the
per-image label coverage of corrupted images (mean, percentiles), the share of all training pixels labelled, the label
rate by distance to the border, and whether grey images stay grey. Real defects cover about 0.2-4 % of an image and
touch the border as often as the centre.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms.v2.functional import pil_to_tensor, resize

from isstad_plugin.corruption import PaperConfig, PixelCorruption

CPU_SOFT_PROB = 0.5
"""Share of corrupted images given a soft region in the CPU configs (``soft_prob``)."""
BANDS = ((0, 4), (4, 8), (8, 16), (16, 32), (32, 10_000))
"""Distance-to-border bands in pixels (start inclusive, end exclusive)."""


def load_images(folder: Path | None, size: int, count: int, seed: int) -> torch.Tensor:
    """``(count, 3, size, size)`` float images in [0, 1]: files under ``folder`` (repeated), or generated textures."""
    if folder is None:
        generator = torch.Generator().manual_seed(seed)
        base = torch.rand((count, 1, size // 8, size // 8), generator=generator)
        smooth = torch.nn.functional.interpolate(base, size=(size, size), mode="bilinear", align_corners=False)
        return (0.5 * smooth + 0.1 * torch.rand((count, 1, size, size), generator=generator)).expand(-1, 3, -1, -1)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"))
    if not files:
        raise SystemExit(f"--images {folder}: no PNG/JPG/BMP files found")
    images = []
    for index in range(count):
        with Image.open(files[index % len(files)]) as image:
            tensor = pil_to_tensor(image.convert("RGB")).float() / 255
        images.append(resize(tensor, [size, size], antialias=True).clamp(0, 1))
    return torch.stack(images)


def coverage_rows(config: PaperConfig, images: torch.Tensor, seed: int) -> dict[str, float]:
    """Coverage statistics of one corruption config on ``images``."""
    corrupted, labels = PixelCorruption(**dataclasses.asdict(config))(images, generator=seed)
    per_image = labels.flatten(1).mean(1)
    hit = per_image[labels.flatten(1).amax(1) > 0]
    quantiles = torch.quantile(hit, torch.tensor([0.1, 0.5, 0.9])).tolist() if hit.numel() else [0.0] * 3
    size = images.shape[-1]
    index = torch.arange(size)
    distance = torch.minimum(torch.minimum(index, size - 1 - index).view(-1, 1), torch.minimum(index, size - 1 - index))
    row = {
        "mean coverage": float(hit.mean()) if hit.numel() else 0.0,
        "p10": quantiles[0],
        "median": quantiles[1],
        "p90": quantiles[2],
        "all pixels": float(labels.mean()),
    }
    rate = labels.mean(dim=(0, 1))
    for low, high in BANDS:
        band = (distance >= low) & (distance < high)
        row[f"{low}-{high if high < 10_000 else ''} px"] = float(rate[band].mean())
    grey = (images.amax(1) - images.amin(1)).flatten(1).amax(1) <= 2e-3
    spread = (corrupted.amax(1) - corrupted.amin(1)).flatten(1).amax(1)
    row["grey kept"] = float((spread[grey] <= 2e-3).float().mean()) if grey.any() else float("nan")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=None, help="folder of normal images (default: generated)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--count", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    images = load_images(args.images, args.size, args.count, args.seed)
    rows = {"current defaults": coverage_rows(PaperConfig(), images, args.seed)}
    soft = dataclasses.replace(PaperConfig(), soft_prob=CPU_SOFT_PROB)
    rows[f"+ soft regions ({CPU_SOFT_PROB}, CPU configs)"] = coverage_rows(soft, images, args.seed)
    source = args.images or "generated grey textures"
    print(f"{args.count} images from {source} at {args.size} px, seed {args.seed}; coverage of corrupted images\n")
    header = list(next(iter(rows.values())))
    print("| config | " + " | ".join(header) + " |")
    print("|---" * (len(header) + 1) + "|")
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(f"{row[key]:.3f}" for key in header) + " |")


if __name__ == "__main__":
    main()
