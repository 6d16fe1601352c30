"""Report files: metric tables (JSON and Markdown) and panels like the paper's Fig. 5 (input, E, P, S, GT)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from isstad_plugin.torch_model import IsstadModel


def write_metrics(metrics: Mapping[str, Any], folder: Path, title: str, protocol: str) -> tuple[Path, Path]:
    """Write ``metrics.json`` and ``metrics.md`` (a two-column table under its title and protocol line).

    Args:
        metrics: Metric name -> value (numbers are shown with 4 decimals in Markdown).
        folder: Output folder (created).
        title: Table title.
        protocol: One sentence saying how the numbers were obtained (data, epochs, selection).

    Returns:
        The JSON and Markdown paths.
    """
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / "metrics.json"
    json_path.write_text(json.dumps({"title": title, "protocol": protocol, "metrics": dict(metrics)}, indent=2) + "\n")
    rows = [f"| {name} | {_fmt(value)} |" for name, value in metrics.items()]
    markdown = "\n".join([f"## {title}", "", f"Protocol: {protocol}", "", "| metric | value |", "|---|---|", *rows])
    md_path = folder / "metrics.md"
    md_path.write_text(markdown + "\n")
    return json_path, md_path


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


@torch.no_grad()
def save_panels(
    model: IsstadModel,
    images: torch.Tensor,
    masks: torch.Tensor | None,
    path: Path,
    titles: Sequence[str] | None = None,
) -> Path:
    """Save one row per image: input, E, P, S and ground truth (the paper's Fig. 5).

    E, P and S are drawn with one colour scale per column (0 to the 99.9th percentile over all rows).

    Args:
        model: A trained network (put in eval mode here).
        images: ``(N, C, H, W)`` images already pre-processed (resized and normalised) for ``model``.
        masks: ``(N, H, W)`` ground-truth masks, or ``None``.
        path: Output PNG path.
        titles: Optional row labels (e.g. the defect type).

    Returns:
        ``path``.
    """
    model.eval()
    maps = model.anomaly_maps(images)
    pixels = model.normalization.to_unit(images).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
    columns: list[tuple[str, np.ndarray | None]] = [
        ("E (reconstruction error)", _maps_or_none(maps.error)),
        ("P (pixel classifier)", _maps_or_none(maps.probability)),
        ("S = E ⊙ P", _maps_or_none(maps.score)),
    ]
    rows = len(images)
    fig, axes = plt.subplots(rows, 5, figsize=(10, 2.1 * rows), squeeze=False)
    for row in range(rows):
        _show(axes[row, 0], pixels[row].squeeze(), "input", cmap="gray")
        for col, (name, values) in enumerate(columns, start=1):
            # One colour scale per column, shared by all rows, so that a normal image looks normal.
            vmax = None if values is None else float(np.quantile(values, 0.999)) or 1.0
            _show(axes[row, col], None if values is None else values[row], name, cmap="inferno", vmax=vmax)
        gt = None if masks is None else masks[row].float().cpu().numpy()
        _show(axes[row, 4], gt, "GT", cmap="gray", vmax=1.0)
        if titles is not None:
            axes[row, 0].set_ylabel(titles[row], fontsize=9)
    for col, name in enumerate(["input", *(name for name, _ in columns), "GT"]):
        axes[0, col].set_title(name, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _maps_or_none(maps: torch.Tensor | None) -> np.ndarray | None:
    return None if maps is None else maps[:, 0].float().cpu().numpy()


def _show(axis: Any, image: np.ndarray | None, name: str, cmap: str, vmax: float | None = None) -> None:
    axis.set_xticks([])
    axis.set_yticks([])
    if image is None:
        axis.text(0.5, 0.5, f"no {name.split()[0]}", ha="center", va="center", fontsize=8)
        return
    if image.ndim == 3:
        axis.imshow(image)
    else:
        axis.imshow(image, cmap=cmap, vmin=0.0, vmax=vmax)
