"""``fusion_error_weight: validation``: the weights of E in S chosen on the validation split, not on the test set.

The paper's ``S = G(G(E) ⊙ G(P))`` weighs E and P alike. Where one map is much noisier than the other (E on a
texture that a small model reconstructs poorly, for instance), the product localises worse than P alone: on Magnetic
Tile's validation split S had pixel AUROC 0.735, P 0.770 (``benchmarks/results/magnetic_tile_localise_diagnose.md``).
:class:`FusionWeightChoice` scores every weight of :data:`~isstad_plugin.model.fusion.FUSION_WEIGHTS` on the
validation images of the fit (their masks and labels; never the test images) and keeps two (ties: the one closest to
the paper's 0.5):

* the map's weight, whose S has the best mean of pixel AUROC and AUPRO (anomalib's two pixel metrics: the first
  counts pixels, so large defects dominate it; the second counts each defect region alike); without masks, the
  weight it had;
* the image score's weight, whose image score has the best image AUROC (the map's weight when the validation split
  has only one class).

Then the post-processor learns its normalisation and thresholds again from those S. The grid holds 0 (P alone) and 1
(E alone), so on the validation split S is never below E or P on its criterion.

A callback rather than ``Isstad`` hooks: it must run after the post-processor's ``on_validation_epoch_end`` (the
callbacks run in their order, the model's hooks before them), and it keeps the maps of one validation only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Protocol, cast

import torch
from anomalib.metrics import AUPRO
from lightning.pytorch import Callback, LightningModule, Trainer
from torchmetrics.functional.classification import binary_auroc

from isstad_plugin.model.fusion import FUSION_WEIGHTS, AnomalyFusion, aggregate_score, weighted_product

logger = logging.getLogger(__name__)

CHECKPOINT_KEY = "isstad_fusion_error_weight"
"""Where a checkpoint keeps the map's weight (chosen or the option)."""
SCORE_CHECKPOINT_KEY = "isstad_fusion_score_error_weight"
"""Where a checkpoint keeps the image score's weight (older checkpoints: the map's)."""


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


def map_figures(
    fusion: AnomalyFusion, maps: list[tuple[torch.Tensor, torch.Tensor]], masks: list[torch.Tensor]
) -> dict[float, float]:
    """The mean of S's pixel AUROC and AUPRO (false-positive limit 0.3) for every weight of :data:`FUSION_WEIGHTS`.

    Args:
        fusion: The model's fusion (its smoothing).
        maps: Smoothed ``(E, P)`` of each batch, ``(B, 1, H, W)`` each.
        masks: Ground truth of each batch, ``(B, H, W)`` or ``(B, 1, H, W)``.
    """
    target = torch.cat([m.reshape(m.shape[0], *m.shape[-2:]) for m in masks]).int()
    figures = {}
    for weight in FUSION_WEIGHTS:
        score = torch.cat([_score_map(fusion, e, p, weight)[:, 0] for e, p in maps])
        aupro = AUPRO(fields=("anomaly_map", "gt_mask"), dist_sync_fn=_this_rank_only)  # ranks averaged after
        aupro.update(cast("Any", SimpleNamespace(anomaly_map=score, gt_mask=target)))  # it reads its fields only
        figures[weight] = (float(binary_auroc(score.reshape(-1), target.reshape(-1))) + float(aupro.compute())) / 2
    return figures


def image_aurocs(
    fusion: AnomalyFusion, maps: list[tuple[torch.Tensor, torch.Tensor]], labels: list[torch.Tensor]
) -> dict[float, float]:
    """Image AUROC of the image score for every weight of :data:`FUSION_WEIGHTS` (``labels``: ``(B,)`` each)."""
    target = torch.cat(labels).int()
    scores = {
        weight: torch.cat([_image_scores(fusion, _score_map(fusion, e, p, weight)) for e, p in maps])
        for weight in FUSION_WEIGHTS
    }
    return {weight: float(binary_auroc(score, target)) for weight, score in scores.items()}


def store_weights(fusion: AnomalyFusion, checkpoint: dict[str, Any]) -> None:
    """Write the map's and the image score's weights into a checkpoint."""
    checkpoint[CHECKPOINT_KEY] = fusion.error_weight
    checkpoint[SCORE_CHECKPOINT_KEY] = fusion.score_error_weight


def restore_weights(fusion: AnomalyFusion, checkpoint: dict[str, Any]) -> None:
    """Read the weights of :func:`store_weights` (an older checkpoint's image score takes the map's weight)."""
    fusion.error_weight = checkpoint.get(CHECKPOINT_KEY, fusion.error_weight)
    fusion.score_error_weight = checkpoint.get(SCORE_CHECKPOINT_KEY, fusion.error_weight)


def best_weight(aurocs: dict[float, float]) -> float:
    """The weight with the best figure (to 4 decimals); of equals, the one closest to the paper's 0.5."""
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


def _image_scores(fusion: AnomalyFusion, score_map: torch.Tensor) -> torch.Tensor:
    return aggregate_score(score_map, fusion.aggregation, fusion.topk_fraction)


def _this_rank_only(state: torch.Tensor, group: Any = None) -> list[torch.Tensor]:
    """A ``dist_sync_fn`` that gathers nothing: the metric keeps this rank's state."""
    return [state]


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
        """Choose the weights and, when one changed, let the post-processor learn from those S again."""
        module: _Fused = pl_module
        fusion: AnomalyFusion = module.model.fusion
        if not self._maps:  # a validation the model skipped (stage 1, or before a step budget's last epoch)
            return
        masks = [mask for _, mask in self._batches if mask is not None]
        labels = [label for label, _ in self._batches if label is not None]
        has_masks = len(masks) == len(self._batches) and any(bool(m.any()) for m in masks)
        has_classes = len(labels) == len(self._batches) and len(torch.cat(labels).unique()) == 2
        on_maps = _across_ranks(trainer, map_figures(fusion, self._maps, masks) if has_masks else None)
        on_images = _across_ranks(trainer, image_aurocs(fusion, self._maps, labels) if has_classes else None)
        map_weight = fusion.error_weight
        if on_maps is None:
            logger.info("fusion_error_weight: validation has no defect masks, keeping %s for the map", map_weight)
        else:
            map_weight = _log_choice("map", on_maps, "(pixel AUROC + AUPRO) / 2")
        weights = map_weight, map_weight if on_images is None else _log_choice("image score", on_images, "image AUROC")
        if weights == (fusion.error_weight, fusion.score_error_weight):
            return
        fusion.error_weight, fusion.score_error_weight = weights
        self._replay(trainer, pl_module, fusion)

    def _replay(self, trainer: Trainer, pl_module: LightningModule, fusion: AnomalyFusion) -> None:
        """Have the post-processor learn its normalisation and thresholds from the S of the chosen weights."""
        module: _Fused = pl_module
        post_processor = module.post_processor
        for (error, probability), (labels, mask) in zip(self._maps, self._batches, strict=True):
            score_map = _score_map(fusion, error, probability, fusion.error_weight)
            image_map = _score_map(fusion, error, probability, fusion.score_error_weight)
            scored = _Scored(labels, mask, _image_scores(fusion, image_map), score_map)
            post_processor.on_validation_batch_end(trainer, pl_module, scored)
        post_processor.on_validation_epoch_end(trainer, pl_module)


def _log_choice(what: str, figures: dict[float, float], criterion: str) -> float:
    """The best weight of ``figures``, logged with them."""
    weight = best_weight(figures)
    table = ", ".join(f"{w:g}: {a:.4f}" for w, a in figures.items())
    logger.info("fusion weight of the %s: %g, chosen on the validation split (%s by weight: %s)", what, weight,
                criterion, table)  # fmt: skip
    return weight
