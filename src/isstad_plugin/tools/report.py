"""Report files: metric tables (JSON, Markdown), panels like the paper's Fig. 5 (input, E, P, S, GT), loss curves."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from isstad_plugin.model.torch_model import IsstadModel


def write_metrics(metrics: Mapping[str, Any], folder: Path, title: str, protocol: str) -> None:
    """Write ``metrics.json`` and ``metrics.md`` (a two-column table under its title and protocol line).

    Args:
        metrics: Metric name -> value (numbers are shown with 4 decimals in Markdown).
        folder: Output folder (created).
        title: Table title.
        protocol: One sentence saying how the numbers were obtained (data, epochs, selection).
    """
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / "metrics.json", folder / "metrics.md"
    json_path.write_text(json.dumps({"title": title, "protocol": protocol, "metrics": dict(metrics)}, indent=2) + "\n")
    table = markdown_table(
        ["metric", "value"], list(metrics.items()), lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)
    )
    md_path.write_text("\n".join([f"## {title}", "", f"Protocol: {protocol}", "", *table]) + "\n")


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]], cell: Callable[[Any], str]) -> list[str]:
    """A Markdown table's lines: header, rule, one line per row; every cell after the first is written by ``cell``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join([str(row[0]), *map(cell, row[1:])]) + " |" for row in rows]


@torch.no_grad()
def save_panels(
    model: IsstadModel,
    images: torch.Tensor,
    masks: torch.Tensor | None,
    path: Path,
    titles: Sequence[str] | None = None,
) -> Figure:
    """Save one row per image: input, E, P, S and ground truth (the paper's Fig. 5).

    E, P and S are drawn with one colour scale per column (0 to the 99.9th percentile over all rows), shown by a colour
    bar under each column. The figure is drawn without pyplot, so the caller's matplotlib backend is left alone.

    Args:
        model: A trained network (put in eval mode here).
        images: ``(N, C, H, W)`` images already pre-processed (resized and normalised) for ``model``.
        masks: ``(N, H, W)`` ground-truth masks, or ``None``.
        path: Output PNG path.
        titles: Optional row labels (e.g. the defect type).

    Returns:
        The figure written to ``path``: five columns per image, a colour bar under E, P and S.
    """
    model.eval()
    maps = model.anomaly_maps(images)
    pixels = images.clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
    named = {"E (reconstruction error)": maps.error, "P (pixel classifier)": maps.probability, "S = E ⊙ P": maps.score}
    columns = [(name, None if m is None else m[:, 0].float().cpu().numpy()) for name, m in named.items()]
    rows = len(images)
    aspect = images.shape[-2] / images.shape[-1]  # rows as high as the images: no gaps for long, narrow ones
    fig = Figure(figsize=(10, rows * (2.0 * aspect + 0.25) + 0.8), layout="constrained")
    axes = fig.subplots(rows, 5, squeeze=False)
    for col, (name, values) in enumerate(columns, start=1):
        # One colour scale per column, shared by all rows, so that a normal image looks normal.
        vmax = None if values is None else float(np.quantile(values, 0.999)) or 1.0
        shown = None
        for row in range(rows):
            shown = _show(axes[row, col], None if values is None else values[row], name, cmap="inferno", vmax=vmax)
        if shown is not None:
            fig.colorbar(shown, ax=axes[:, col].tolist(), location="bottom", shrink=0.8, aspect=25, pad=0.01)
    for row in range(rows):
        _show(axes[row, 0], pixels[row].squeeze(), "input", cmap="gray")
        _show(axes[row, 4], None if masks is None else masks[row].float().cpu().numpy(), "GT", cmap="gray", vmax=1.0)
        axes[row, 0].set_ylabel(titles[row] if titles is not None else "", fontsize=9)
    for col, name in enumerate(["input", *named, "GT"]):
        axes[0, col].set_title(name, fontsize=9)
    save_figure(fig, path)
    return fig


def save_loss_curve(metrics_csv: Path, path: Path, title: str = "ISSTAD training loss") -> Path:
    """Plot ``train_loss`` per epoch from a Lightning ``CSVLogger`` file, with the stage-2 start marked.

    Args:
        metrics_csv: ``metrics.csv`` written by :class:`lightning.pytorch.loggers.CSVLogger`.
        path: Output PNG path.
        title: Figure title.

    Returns:
        ``path``.

    Raises:
        ValueError: The file has no ``train_loss`` values.
    """
    with metrics_csv.open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("train_loss")]
    if not rows:
        msg = f"{metrics_csv} has no train_loss column values: was the run logged with a CSVLogger?"
        raise ValueError(msg)
    points = [(int(float(r["epoch"])) + 1, float(r["train_loss"]), int(float(r.get("stage") or 1))) for r in rows]
    fig = Figure(figsize=(6, 3.2), layout="constrained")
    axis = fig.subplots()
    for stage, colour in ((1, "tab:blue"), (2, "tab:orange")):
        shown = [(epoch, loss) for epoch, loss, of_stage in points if of_stage == stage]
        if shown:
            axis.plot(*zip(*shown, strict=True), marker=".", color=colour, label=f"stage {stage}")
    axis.set(xlabel="epoch", ylabel="train_loss (per-epoch mean)")
    axis.set_title(title, fontsize=10)
    axis.legend()
    axis.grid(alpha=0.3)
    return save_figure(fig, path)


def resized_masks(masks: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Masks ``(N, H, W)`` or ``(N, 1, H, W)`` resized to ``size`` by nearest neighbour: ``(N, *size)`` floats."""
    flat = masks.float().reshape(len(masks), 1, *masks.shape[-2:])
    return torch.nn.functional.interpolate(flat, size=tuple(size), mode="nearest")[:, 0]


def _show(axis: Any, image: np.ndarray | None, name: str, cmap: str, vmax: float | None = None) -> Any:
    """Draw one cell; return the image artist (``None`` for an empty cell)."""
    axis.set(xticks=[], yticks=[])
    if image is None:
        axis.text(0.5, 0.5, f"no {name.split()[0]}", ha="center", va="center", fontsize=8)
        return None
    if image.ndim == 3:
        return axis.imshow(image)
    return axis.imshow(image, cmap=cmap, vmin=0.0, vmax=vmax)


def save_figure(figure: Figure, path: Path) -> Path:
    """Write ``figure`` to the PNG ``path`` (its folder created); return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path
