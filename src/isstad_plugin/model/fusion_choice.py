"""``fusion_error_weight: validation``: the weight of E in S chosen on the validation split, not on the test set.

The paper's ``S = G(G(E) ⊙ G(P))`` weighs E and P alike. Where one map is much noisier than the other (E on a
texture that a small model reconstructs poorly, for instance), the product localises worse than P alone: on Magnetic
Tile's validation split S had pixel AUROC 0.735, P 0.770 (``benchmarks/results/magnetic_tile_localise_diagnose.md``).
:class:`FusionWeightChoice` scores every weight of :data:`~isstad_plugin.model.fusion.FUSION_WEIGHTS` on the
validation images of the fit (their masks; never the test images), keeps the one whose S has the best pixel AUROC
(ties: the one closest to the paper's 0.5) and has the post-processor learn its normalisation and thresholds again on
that S. The grid holds 0 (P alone) and 1 (E alone), so on the validation split S is never below E or P. Without masks
in the validation split the weight stays 0.5.

A callback rather than ``Isstad`` hooks: it must run after the post-processor's ``on_validation_epoch_end`` (the
callbacks run in their order, the model's hooks before them), and it keeps the maps of one validation only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torchmetrics.functional.classification import binary_auroc

from isstad_plugin.model.fusion import FUSION_WEIGHTS, AnomalyFusion, aggregate_score, weighted_product

logger = logging.getLogger(__name__)

CHECKPOINT_KEY = "isstad_fusion_error_weight"
"""Where a checkpoint keeps the chosen weight."""


@dataclass
class _Scored:
    """What the post-processor reads from a validation batch, for the weight chosen after the epoch."""

    gt_label: torch.Tensor | None
    gt_mask: torch.Tensor | None
    pred_score: torch.Tensor
    anomaly_map: torch.Tensor


class _Fused(Protocol):
    """The part of :class:`~isstad_plugin.Isstad` this callback reads."""

    model: Any
    post_processor: Any


def pixel_aurocs(
    fusion: AnomalyFusion, maps: list[tuple[torch.Tensor, torch.Tensor]], masks: list[torch.Tensor]
) -> dict[float, float]:
    """Pixel AUROC of S for every weight of :data:`FUSION_WEIGHTS`.

    Args:
        fusion: The model's fusion (its smoothing).
        maps: Smoothed ``(E, P)`` of each batch, ``(B, 1, H, W)`` each.
        masks: Ground truth of each batch, ``(B, H, W)`` or ``(B, 1, H, W)``.
    """
    target = torch.cat([m.reshape(-1) for m in masks]).int()
    aurocs = {}
    for weight in FUSION_WEIGHTS:
        score = torch.cat([_score_map(fusion, e, p, weight).reshape(-1) for e, p in maps])
        aurocs[weight] = float(binary_auroc(score, target))  # exact: one sort of the validation pixels
    return aurocs


def best_weight(aurocs: dict[float, float]) -> float:
    """The weight with the best AUROC (to 4 decimals); of equals, the one closest to the paper's 0.5."""
    return max(aurocs, key=lambda w: (round(aurocs[w], 4), -abs(w - 0.5)))


def _across_ranks(trainer: Trainer, aurocs: dict[float, float] | None) -> dict[float, float] | None:
    """The mean AUROCs of the ranks that had masks, the same on every rank (``aurocs`` as is on one device)."""
    if trainer.world_size == 1:
        return aurocs
    values = torch.tensor([*(aurocs or dict.fromkeys(FUSION_WEIGHTS, 0.0)).values(), float(aurocs is not None)])
    total = trainer.strategy.reduce(values, reduce_op="sum")
    return None if total[-1] == 0 else dict(zip(FUSION_WEIGHTS, (total[:-1] / total[-1]).tolist(), strict=True))


def _score_map(fusion: AnomalyFusion, error: torch.Tensor, probability: torch.Tensor, weight: float) -> torch.Tensor:
    return fusion.smooth(weighted_product(error.float(), probability.float(), weight))


class FusionWeightChoice(Callback):
    """Choose ``fusion_error_weight`` at each validation of a fit (see the module docstring)."""

    def __init__(self) -> None:
        self._maps: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._batches: list[tuple[torch.Tensor | None, torch.Tensor | None]] = []

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Forget the maps of an earlier validation."""
        self._maps, self._batches = [], []

    def on_validation_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, *args: Any, **kwargs: Any
    ) -> None:
        """Keep E and P of a batch the model scored (8 bytes a pixel: 22 MB for 173 images of 128 x 128)."""
        if outputs is None or getattr(outputs, "pred_score", None) is None:
            return
        module: _Fused = pl_module
        with torch.no_grad():
            maps = module.model.anomaly_maps(batch.image)
        if maps.error is None or maps.probability is None:  # an ablation model without E or P: nothing to weigh
            return
        self._maps.append((maps.error.float().cpu(), maps.probability.float().cpu()))  # as inference computes S
        self._batches.append((batch.gt_label, batch.gt_mask))

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Choose the weight and, when it changed, let the post-processor learn from that S again."""
        module: _Fused = pl_module
        fusion: AnomalyFusion = module.model.fusion
        masks = [mask for _, mask in self._batches if mask is not None]
        if not self._maps:  # a validation the model skipped (stage 1, or before a step budget's last epoch)
            return
        has_masks = len(masks) == len(self._batches) and any(bool(m.any()) for m in masks)
        aurocs = _across_ranks(trainer, pixel_aurocs(fusion, self._maps, masks) if has_masks else None)
        if aurocs is None:
            logger.info("fusion_error_weight: validation has no defect masks, keeping %s", fusion.error_weight)
            return
        weight = best_weight(aurocs)
        table = ", ".join(f"{w:g}: {a:.4f}" for w, a in aurocs.items())
        logger.info("fusion_error_weight %g chosen on the validation split (pixel AUROC of S by weight: %s)", weight,
                    table)  # fmt: skip
        if weight == fusion.error_weight:
            return
        fusion.error_weight = weight
        post_processor = module.post_processor
        for (error, probability), (labels, mask) in zip(self._maps, self._batches, strict=True):
            score_map = _score_map(fusion, error, probability, weight)
            scored = _Scored(
                labels, mask, aggregate_score(score_map, fusion.aggregation, fusion.topk_fraction), score_map
            )
            post_processor.on_validation_batch_end(trainer, pl_module, scored)
        post_processor.on_validation_epoch_end(trainer, pl_module)
