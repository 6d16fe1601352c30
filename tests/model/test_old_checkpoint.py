"""A checkpoint written before the network took ``[0, 1]`` pixels still loads and scores the same.

``tests/data/isstad_before_pixel_space.ckpt`` is a tiny 32-px ISSTAD fitted (1 + 1 epochs on the generated tiles) with
the code of commit 54cb696, whose pre-processor normalised with ImageNet statistics; the JSON beside it holds that
code's scores of two fixed random images.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from isstad_plugin import Isstad

DATA = Path(__file__).parents[1] / "data"


def test_a_checkpoint_of_the_normalising_pre_processor_scores_as_before():
    model = Isstad.load_from_checkpoint(DATA / "isstad_before_pixel_space.ckpt", map_location="cpu").eval()
    expected = json.loads((DATA / "isstad_before_pixel_space.json").read_text())
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        output = model.model(model.pre_processor.transform(images))
    assert output.pred_score.tolist() == pytest.approx(expected["pred_score"], rel=1e-4)
    assert output.anomaly_map.sum(dim=(1, 2, 3)).tolist() == pytest.approx(expected["anomaly_map_sum"], rel=1e-4)
    assert torch.isfinite(model.post_processor.image_threshold)  # the learnt thresholds came with it
