"""``fusion_error_weight: validation``: the weight chosen on the validation masks, kept by checkpoints and export."""

from __future__ import annotations

import pytest
import torch

from isstad_plugin import AnomalyFusion, Isstad
from isstad_plugin.model import fusion_choice
from isstad_plugin.model.fusion import FUSION_WEIGHTS
from isstad_plugin.model.fusion_choice import CHECKPOINT_KEY, best_weight, pixel_aurocs
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
    aurocs = pixel_aurocs(AnomalyFusion(sigma=0), maps, masks)
    weight = best_weight(aurocs)
    assert set(aurocs) == set(FUSION_WEIGHTS)
    assert weight == chosen and aurocs[weight] == max(aurocs.values())
    assert aurocs[0.5] < aurocs[weight], "the paper's product is worse when one map is noise"


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
    assert torch.load(path, weights_only=False, map_location="cpu")[CHECKPOINT_KEY] == weight
    loaded = Isstad.load_from_checkpoint(path)
    assert loaded.model.fusion.error_weight == weight and loaded.hparams["fusion_error_weight"] == "validation"
    # the thresholds are those of S at the chosen weight: validating a model fixed at that weight learns the same
    fixed = Isstad.load_from_checkpoint(path, fusion_error_weight=weight)
    engine_for(tmp_path / "again").validate(fixed, datamodule=datamodule)
    again = (float(fixed.post_processor.image_threshold), float(fixed.post_processor.pixel_threshold))
    assert again == pytest.approx(thresholds, rel=1e-4)


def test_a_weight_that_is_neither_a_number_nor_validation_is_named():
    with pytest.raises(ValueError, match=r"fusion_error_weight must be in \[0, 1\] .* or 'validation', got 'best'"):
        tiny_isstad(fusion_error_weight="best")
