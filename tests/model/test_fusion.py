"""S has one implementation: every caller's S is :meth:`AnomalyFusion.score_map`'s on the same E and P."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from isstad_plugin.model.fusion import AnomalyFusion
from tests.helpers import tiny_model


@pytest.mark.parametrize("variant", ["full", "IV", "VII"])
def test_inference_and_export_take_s_from_score_map(variant: str) -> None:
    model = tiny_model(variant=variant, smoothing_sigma=1.0).eval()
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    fusion = model.fusion
    with torch.no_grad():
        error, probability = model._full_maps(images)
        smoothed = [None if m is None else fusion.smooth(m) for m in (error, probability)]
        expected = fusion.score_map(*smoothed)
        assert torch.equal(model(images).anomaly_map, expected)  # test, predict and the torch/ONNX export
        assert torch.equal(model.anomaly_maps(images).score, expected)  # panels and reports


def test_s_is_the_papers_plain_product() -> None:
    fusion = AnomalyFusion(sigma=0.0)
    error, probability = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
    assert torch.equal(fusion.score_map(error, probability), error * probability)


def test_diagnose_takes_s_from_score_map() -> None:
    from isstad_plugin.tools.diagnose import named_maps

    fusion = AnomalyFusion(sigma=1.0)
    maps = fusion.maps(torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16))
    assert torch.equal(cast(torch.Tensor, named_maps(maps)["S"]), fusion.score_map(maps.error, maps.probability))


def test_the_error_map_benchmark_takes_s_from_score_map() -> None:
    from benchmarks.error_map_variants import VARIANTS, figures

    generator = np.random.default_rng(0)
    masks = np.zeros((4, 16, 16), dtype=bool)
    masks[2:, 4:8, 4:8] = True
    split: dict[str, Any] = {
        "masks": masks,
        "labels": np.array([0, 0, 1, 1]),
        "kinds": np.array(["good", "good", "crack", "crack"]),
        "P": generator.random((4, 16, 16), dtype=np.float32),
    }
    split |= {name: generator.random((4, 16, 16), dtype=np.float32) for name in VARIANTS}
    fusion = AnomalyFusion(sigma=1.0)
    table = figures(SimpleNamespace(model=SimpleNamespace(fusion=fusion)), split)  # type: ignore[arg-type]
    probability = fusion.smooth(torch.from_numpy(split["P"]).unsqueeze(1))
    for name in VARIANTS:
        error = fusion.smooth(torch.from_numpy(split[name]).unsqueeze(1))
        fused = fusion.score_map(error, probability)
        assert table[name]["S pixel"] == roc_auc_score(masks.ravel(), fused[:, 0].numpy().ravel())
