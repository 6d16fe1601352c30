"""``isstad diagnose``: what E, P and S each contribute, measured on the validation split only.

For a trained checkpoint and an MVTec-layout category, the validation split that ``isstad benchmark`` holds out of the
test folder (never tested) is scored and the maps are compared:

* image AUROC of E, P and S with each score aggregation (mean, max, top-k);
* pixel AUROC of E, P and S over the whole split, per defect type, and inside an edge band;
* P's **background lift**: mean P outside the ground truth on defective images divided by mean P on good images.
  1.0 means P is not an image-level cue (it stays as low off the defect as on a good image); far above 1, P says
  "this image is defective" everywhere instead of "here". It is also given outside the ground truth grown by
  :data:`LIFT_MARGIN` pixels, which tells P spilling just around a defect from an image-wide rise;
* E/P/S panels with colour bars for the first defective images.

Choosing settings from these figures never looks at the tested images.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from anomalib.pre_processing import PreProcessor
from sklearn.metrics import roc_auc_score

from isstad_plugin.model.fusion import AnomalyMaps, ScoreAggregation, aggregate_score
from isstad_plugin.model.lightning_model import Isstad
from isstad_plugin.tools.report import markdown_table, resized_masks, save_panels
from isstad_plugin.tools.runs import VAL_SPLIT_RATIO, held_out_datamodule
from isstad_plugin.training.checkpoint_io import check_checkpoint_file

logger = logging.getLogger(__name__)

MAPS = ("E", "P", "S")
AGGREGATIONS: tuple[ScoreAggregation, ...] = ("mean", "max", "topk")
EDGE_BAND = 16
"""Width in pixels (at the model's input size) of the border band whose pixel AUROC is reported."""
PANEL_ROWS = 6
LIFT_MARGIN = 8
"""The background lift is also given outside the ground truth grown by this many pixels (one patch at 8-px patches):
a lift that falls towards 1 there comes from P spilling around the defects, not from an image-level cue."""


@dataclass
class DiagnoseOptions:
    """Options of ``isstad diagnose``.

    Attributes:
        checkpoint: An Isstad ``.ckpt``.
        root: MVTec-layout root.
        category: Category folder under ``root``.
        output: Folder of ``diagnose.md``, ``diagnose.json`` and ``panels.png``.
        seed: Seed of the split (as ``isstad benchmark``).
    """

    checkpoint: Path
    root: Path
    category: str
    output: Path = Path("reports/diagnose")
    seed: int = 0


@dataclass
class ScoredSplit:
    """The validation split's maps at the model's input size, as numpy arrays.

    Attributes:
        maps: ``"E"``/``"P"``/``"S"`` -> ``(N, H, W)`` maps (absent when the variant has no such map).
        scores: ``"S mean"`` ... -> ``(N,)`` image scores.
        masks: ``(N, H, W)`` bool ground truth.
        labels: ``(N,)`` image labels (1 = defective).
        kinds: ``(N,)`` defect type of each image (``good`` for normal ones).
    """

    maps: dict[str, np.ndarray] = field(default_factory=dict)
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    masks: np.ndarray = field(default_factory=lambda: np.zeros(0))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0))
    kinds: np.ndarray = field(default_factory=lambda: np.zeros(0))


def run_diagnose(options: DiagnoseOptions) -> dict[str, Any]:
    """Score the validation split, write ``diagnose.md``/``diagnose.json``/``panels.png`` and return the figures."""
    check_checkpoint_file(options.checkpoint, "checkpoint")  # read by torch.load, not Lightning's checkpoint IO
    model = cast(Isstad, Isstad.load_from_checkpoint(options.checkpoint, strict=False, map_location="cpu")).eval()
    split, images, masks, kinds = score_split(model, options)
    figures = diagnose_figures(split, EDGE_BAND, model.model.fusion.aggregation)
    options.output.mkdir(parents=True, exist_ok=True)
    (options.output / "diagnose.json").write_text(json.dumps(figures, indent=2) + "\n")
    (options.output / "diagnose.md").write_text(markdown(figures, options) + "\n")
    save_panels(model.model, images, masks, options.output / "panels.png", titles=kinds)
    return figures


def named_maps(maps: AnomalyMaps) -> dict[str, torch.Tensor | None]:
    """E, P and S by name (S is the model's, :meth:`~isstad_plugin.AnomalyFusion.score_map`)."""
    return dict(zip(MAPS, (maps.error, maps.probability, maps.score), strict=True))


@torch.no_grad()
def score_split(model: Isstad, options: DiagnoseOptions) -> tuple[ScoredSplit, torch.Tensor, torch.Tensor, list[str]]:
    """Maps and image scores of the validation split; also the first defective images for the panels."""
    datamodule = held_out_datamodule(options.root, options.category, options.seed, VAL_SPLIT_RATIO, option="root")
    datamodule.setup()
    collected: dict[str, list[np.ndarray]] = defaultdict(list)
    panels: list[tuple[torch.Tensor, torch.Tensor, str]] = []
    fraction = model.model.fusion.topk_fraction
    transform = cast(Callable[[torch.Tensor], torch.Tensor], cast(PreProcessor, model.pre_processor).transform)
    for batch in datamodule.val_dataloader():
        images = transform(batch.image)
        maps = model.model.anomaly_maps(images)
        size = images.shape[-2:]
        gt = batch.gt_mask if batch.gt_mask is not None else torch.zeros(len(images), *size)
        gt = resized_masks(gt, size) > 0.5
        for name, values in named_maps(maps).items():
            if values is None:
                continue
            collected[name].append(values[:, 0].float().numpy())
            for how in AGGREGATIONS:
                collected[f"{name} {how}"].append(aggregate_score(values, how, fraction).float().numpy())
        collected["masks"].append(gt.numpy())
        collected["labels"].append(batch.gt_label.int().numpy())
        batch_kinds = [Path(path).parent.name for path in batch.image_path]
        collected["kinds"].append(np.array(batch_kinds))
        panels += [(images[i], gt[i], kind) for i, kind in enumerate(batch_kinds) if kind != "good"]
        del panels[PANEL_ROWS:]
    joined = {key: np.concatenate(values) for key, values in collected.items()}
    split = ScoredSplit(
        maps={name: joined[name] for name in MAPS if name in joined},
        scores={key: joined[key] for key in joined if " " in key},
        masks=joined["masks"],
        labels=joined["labels"],
        kinds=joined["kinds"],
    )
    panel_images, panel_masks, kinds = zip(*panels, strict=True)
    return split, torch.stack(panel_images), torch.stack(panel_masks), list(kinds)


def diagnose_figures(
    split: ScoredSplit, edge_band: int = EDGE_BAND, aggregation: ScoreAggregation = "mean"
) -> dict[str, Any]:
    """All figures of the diagnosis from a scored split (pure numpy; see the module docstring).

    Per defect type, the image AUROC is given for the model's own ``aggregation`` only.
    """
    good, band = split.kinds == "good", edge_mask(split.masks.shape[-2:], edge_band)
    figures: dict[str, Any] = {
        "images": len(split.labels),
        "defective": int(split.labels.sum()),
        "image_auroc": {key: _auroc(split.labels, values) for key, values in split.scores.items()},
        "pixel_auroc": {name: _auroc(split.masks, values) for name, values in split.maps.items()},
        "edge_band_pixel_auroc": {name: _auroc(split.masks[:, band], v[:, band]) for name, v in split.maps.items()},
    }
    per_type: dict[str, dict[str, float | None]] = {}
    total = max(1, int(split.masks.sum()))
    for kind in sorted(set(split.kinds.tolist()) - {"good"}):
        chosen = good | (split.kinds == kind)
        row: dict[str, float | None] = {"share of defect pixels": float(split.masks[split.kinds == kind].sum() / total)}
        row |= {f"pixel {name}": _auroc(split.masks[chosen], values[chosen]) for name, values in split.maps.items()}
        for key in (f"{name} {aggregation}" for name in split.maps):
            row[f"image {key}"] = _auroc(split.labels[chosen], split.scores[key][chosen])
        per_type[kind] = row
    figures["per_defect_type"] = per_type
    if "P" in split.maps:
        means = mean_probabilities(split.maps["P"], split.masks, split.labels)
        figures["background_lift"] = _lift(means["off the defect"], means["good images"])
        figures[f"background_lift_beyond_{LIFT_MARGIN}px"] = _lift(
            means[f"off the defect + {LIFT_MARGIN} px"], means["good images"]
        )
        figures["mean_P"] = means
    return figures


def _lift(outside: float | None, reference: float | None) -> float | None:
    """Mean P off the defect ÷ mean P on good images (``None`` without both)."""
    return outside / reference if outside is not None and reference else None


def mean_probabilities(probability: np.ndarray, masks: np.ndarray, labels: np.ndarray) -> dict[str, float | None]:
    """Mean P on good images, and on defective ones off the defect, off it by :data:`LIFT_MARGIN` px and inside it."""
    defective, normal = labels == 1, labels == 0
    regions = {
        "good images": probability[normal],
        "off the defect": probability[defective][~masks[defective]],
        f"off the defect + {LIFT_MARGIN} px": probability[defective][~dilate(masks, LIFT_MARGIN)[defective]],
        "inside the defect": probability[defective][masks[defective]],
    }
    return {name: float(values.mean()) if values.size else None for name, values in regions.items()}


def dilate(masks: np.ndarray, margin: int) -> np.ndarray:
    """``(N, H, W)`` bool masks grown by ``margin`` pixels (a square structuring element)."""
    grown = F.max_pool2d(torch.from_numpy(masks).float()[:, None], 2 * margin + 1, stride=1, padding=margin)
    return grown[:, 0].numpy() > 0


def edge_mask(size: tuple[int, ...], band: int) -> np.ndarray:
    """``(H, W)`` bool: the pixels less than ``band`` pixels from the border."""
    band_mask = np.ones(size, dtype=bool)
    band_mask[band : size[0] - band, band : size[1] - band] = False
    return band_mask


def _auroc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    labels, scores = np.asarray(labels).reshape(-1), np.asarray(scores).reshape(-1)
    if labels.min(initial=0) == labels.max(initial=0):
        return None
    return float(roc_auc_score(labels, scores))


def markdown(figures: dict[str, Any], options: DiagnoseOptions) -> str:
    """The figures as Markdown tables, under the protocol line."""
    image_auroc, pixel, edge = figures["image_auroc"], figures["pixel_auroc"], figures["edge_band_pixel_auroc"]
    lines = [
        f"## ISSTAD diagnosis: {options.category}",
        "",
        f"Protocol: validation split only ({figures['images']} images, {figures['defective']} defective; "
        f"{VAL_SPLIT_RATIO:.0%} of the test folder, seed {options.seed}; never tested), checkpoint "
        f"`{options.checkpoint}`.",
        "",
    ]
    band = f"pixel AUROC, {EDGE_BAND}-px edge band"
    header = ["map", "image AUROC mean", "max", "top-k", "pixel AUROC", band]
    rows = [
        [name, *(image_auroc.get(f"{name} {how}") for how in AGGREGATIONS), pixel[name], edge[name]] for name in pixel
    ]
    lines += markdown_table(header, rows, _cell)
    beyond = _cell(figures.get(f"background_lift_beyond_{LIFT_MARGIN}px"))
    lines += [
        "",
        f"P background lift: {_cell(figures.get('background_lift'))} (1.0: P is not an image-level cue); "
        f"outside the ground truth grown by {LIFT_MARGIN} px: {beyond}",
    ]
    means: dict[str, float | None] = figures.get("mean_P", {})
    if means:
        lines.append("Mean P: " + ", ".join(f"{name} {_cell(value)}" for name, value in means.items()))
    per_type: dict[str, dict[str, float | None]] = figures["per_defect_type"]
    if per_type:
        columns = list(next(iter(per_type.values())))
        rows = [[kind, *(row[c] for c in columns)] for kind, row in per_type.items()]
        lines += ["", *markdown_table(["defect type", *columns], rows, _cell)]
    return "\n".join(lines)


def _cell(value: object) -> str:
    return "n/a" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
