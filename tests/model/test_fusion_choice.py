"""``fusion_error_weight: validation``: the weights chosen on the validation split, kept by checkpoints and export."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from isstad_plugin import AnomalyFusion, Isstad
from isstad_plugin.model import fusion_choice
from isstad_plugin.model.fusion import FUSION_WEIGHTS, aggregate_score, weighted_product
from isstad_plugin.model.fusion_choice import (
    CHECKPOINT_KEY,
    SCORE_CHECKPOINT_KEY,
    best_weight,
    image_aurocs,
    map_figures,
)
from tests.helpers import engine_for, small_datamodule, tiny_isstad


def _maps(informative: str, generator: torch.Generator) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], list]:
    """Two batches whose defect (a square) shows in one map only; the other map is noise."""
    masks = torch.zeros(2, 4, 1, 32, 32, dtype=torch.bool)
    masks[:, :, :, 8:16, 8:16] = True
    maps = []
    for mask in masks:
        signal = 0.5 * mask.float() + torch.rand(mask.shape, generator=generator)  # overlapping: P alone is best
        noise = torch.rand(mask.shape, generator=generator)
        maps.append((signal, noise) if informative == "E" else (noise, signal))
    return maps, list(masks)


@pytest.mark.parametrize(("informative", "chosen"), [("P", 0.0), ("E", 1.0)])
def test_the_weight_follows_the_map_that_shows_the_defect(informative, chosen):
    maps, masks = _maps(informative, torch.Generator().manual_seed(0))
    aurocs = map_figures(AnomalyFusion(sigma=0), maps, masks)
    weight = best_weight(aurocs)
    assert set(aurocs) == set(FUSION_WEIGHTS)
    assert weight == chosen and aurocs[weight] == max(aurocs.values())
    assert aurocs[0.5] < aurocs[weight], "the paper's product is worse when one map is noise"


@pytest.mark.parametrize(("informative", "chosen"), [("P", 0.0), ("E", 1.0)])
def test_the_image_score_weight_follows_the_map_that_tells_defective_images(informative, chosen):
    """Half the images are defective; one map shows it (a raised square), the other is noise."""
    generator = torch.Generator().manual_seed(1)
    labels = torch.tensor([0, 1] * 16)
    square = torch.zeros(32, 1, 32, 32)
    square[:, :, 8:16, 8:16] = labels.float().reshape(-1, 1, 1, 1)
    signal = 0.1 * square + torch.rand(square.shape, generator=generator)  # faint: only the signal map tells
    noise = torch.rand(square.shape, generator=generator)
    maps = [(signal, noise) if informative == "E" else (noise, signal)]
    aurocs = image_aurocs(AnomalyFusion(sigma=0, aggregation="topk", topk_fraction=0.05), maps, [labels])
    assert best_weight(aurocs) == chosen and aurocs[chosen] > 0.9 > aurocs[0.5] > aurocs[1.0 - chosen]


def test_the_image_score_takes_its_own_weight_and_the_map_keeps_its_own():
    generator = torch.Generator().manual_seed(2)
    error, probability = torch.rand(3, 1, 16, 16, generator=generator), torch.rand(3, 1, 16, 16, generator=generator)
    fusion = AnomalyFusion(sigma=0, aggregation="max", error_weight=0.0, score_error_weight=1.0)
    scores, score_map = fusion(error, probability)
    assert torch.allclose(score_map, weighted_product(error, probability, 0.0))
    assert torch.allclose(scores, aggregate_score(error.pow(2), "max"))  # w = 1: S = E^2, E alone ranks


class _RecordingPostProcessor:
    def __init__(self) -> None:
        self.scores: list[torch.Tensor] = []

    def on_validation_batch_end(self, trainer, module, outputs) -> None:
        self.scores.append(outputs.pred_score)

    def on_validation_epoch_end(self, trainer, module) -> None:
        pass


def test_without_masks_the_image_score_weight_is_still_chosen_and_its_scores_relearnt():
    generator = torch.Generator().manual_seed(1)
    labels = torch.tensor([0, 1] * 16)
    square = torch.zeros(32, 1, 32, 32)
    square[:, :, 8:16, 8:16] = labels.float().reshape(-1, 1, 1, 1)
    error = 0.1 * square + torch.rand(square.shape, generator=generator)  # E tells the images apart, P is noise
    probability = torch.rand(square.shape, generator=generator)
    fusion = AnomalyFusion(sigma=0, aggregation="topk", topk_fraction=0.05)
    module = SimpleNamespace(model=SimpleNamespace(fusion=fusion), post_processor=_RecordingPostProcessor())
    choice = fusion_choice.FusionWeightChoice()
    choice._maps, choice._batches = [(error, probability)], [(labels, None)]  # a Folder layout: labels, no masks
    choice.on_validation_epoch_end(SimpleNamespace(world_size=1), module)
    assert (fusion.error_weight, fusion.score_error_weight) == (0.5, 1.0)
    expected = aggregate_score(weighted_product(error, probability, 1.0), "topk", 0.05)
    assert torch.allclose(module.post_processor.scores[0], expected)


def test_a_fit_chooses_the_weight_on_validation_and_its_checkpoint_keeps_it(tmp_path, dataset_root, monkeypatch):
    monkeypatch.setattr(fusion_choice, "FUSION_WEIGHTS", (0.0, 0.9))  # never the paper's 0.5: thresholds relearnt
    model = tiny_isstad(stage1_epochs=1, fusion_error_weight="validation")
    datamodule = small_datamodule(dataset_root, val_split_mode="from_test", val_split_ratio=0.5, seed=0)
    engine = engine_for(tmp_path, max_epochs=2)
    engine.fit(model, datamodule=datamodule)
    weight = model.model.fusion.error_weight
    assert weight in (0.0, 0.9)
    thresholds = (float(model.post_processor.image_threshold), float(model.post_processor.pixel_threshold))
    path = engine.trainer.checkpoint_callback.best_model_path
    score_weight = model.model.fusion.score_error_weight
    assert score_weight in (0.0, 0.9)
    stored = torch.load(path, weights_only=False, map_location="cpu")
    assert (stored[CHECKPOINT_KEY], stored[SCORE_CHECKPOINT_KEY]) == (weight, score_weight)
    loaded = Isstad.load_from_checkpoint(path)
    assert loaded.model.fusion.error_weight == weight and loaded.hparams["fusion_error_weight"] == "validation"
    assert loaded.model.fusion.score_error_weight == score_weight
    # the thresholds are those of S at the chosen weight: validating a model fixed at that weight learns the same
    fixed = Isstad.load_from_checkpoint(path, fusion_error_weight=weight)
    engine_for(tmp_path / "again").validate(fixed, datamodule=datamodule)
    again = (float(fixed.post_processor.image_threshold), float(fixed.post_processor.pixel_threshold))
    assert again == pytest.approx(thresholds, rel=1e-4)


def test_a_weight_that_is_neither_a_number_nor_validation_is_named():
    with pytest.raises(ValueError, match=r"fusion_error_weight must be in \[0, 1\] .* or 'validation', got 'best'"):
        tiny_isstad(fusion_error_weight="best")
