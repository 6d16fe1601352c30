"""`isstad diagnose`: the figures from known maps, and the command on a trained checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest

from isstad_plugin.tools.cli import main
from isstad_plugin.tools.diagnose import ScoredSplit, diagnose_figures, edge_mask
from tests.model.test_schedule import step_run  # noqa: F401  (the trained step-budget run, a fixture)


def _split(probability_off_defect: float) -> ScoredSplit:
    """Two good and two defective 16-px images; P is 1 on the defect, ``probability_off_defect`` off it on defects."""
    masks = np.zeros((4, 16, 16), dtype=bool)
    masks[2, 4:8, 4:8] = masks[3, 0:3, 10:14] = True  # the second defect touches the border
    probability = np.full((4, 16, 16), 0.1)
    probability[2:][~masks[2:]] = probability_off_defect
    probability[masks] = 1.0
    error = np.where(masks, 0.5, 0.2)
    labels = np.array([0, 0, 1, 1])
    scores = {f"{name} mean": maps.reshape(4, -1).mean(1) for name, maps in (("P", probability), ("E", error))}
    return ScoredSplit(
        maps={"E": error, "P": probability},
        scores=scores,
        masks=masks,
        labels=labels,
        kinds=np.array(["good", "good", "hole", "edge"]),
    )


def test_figures_from_known_maps():
    localising = diagnose_figures(_split(0.1), edge_band=3)
    assert localising["background_lift"] == pytest.approx(1.0)
    assert localising["mean_P"]["inside the defect"] == pytest.approx(1.0)
    assert localising["pixel_auroc"]["P"] == pytest.approx(1.0)
    assert localising["edge_band_pixel_auroc"]["P"] == pytest.approx(1.0)
    assert set(localising["per_defect_type"]) == {"hole", "edge"}
    shares = [row["share of defect pixels"] for row in localising["per_defect_type"].values()]
    assert shares == pytest.approx([12 / 28, 16 / 28])  # "edge" (3 x 4 px) sorts before "hole" (4 x 4 px)
    image_level = diagnose_figures(_split(0.4), edge_band=3)
    assert image_level["background_lift"] == pytest.approx(4.0), "P raised over the whole defective image"
    assert image_level["background_lift_beyond_8px"] == pytest.approx(4.0)


def test_edge_mask():
    band = edge_mask((6, 8), 2)
    assert band[0].all() and band[:, -1].all() and band[1, 1]
    assert not band[2:4, 2:6].any()


def test_diagnose_command_on_a_trained_checkpoint(tmp_path, dataset_root, step_run):  # noqa: F811
    """`isstad diagnose` on the step-budget run of tests/model/test_schedule.py: tables, JSON, panels on the split."""
    checkpoint = step_run[1][-1]
    assert main(["diagnose", str(checkpoint), str(dataset_root), "tiles", "--output", str(tmp_path)]) == 0
    figures = json.loads((tmp_path / "diagnose.json").read_text())
    assert 0 < figures["defective"] < figures["images"]
    assert set(figures["pixel_auroc"]) == {"E", "P", "S"}
    assert figures["background_lift"] > 0
    assert "P background lift" in (tmp_path / "diagnose.md").read_text()
    assert (tmp_path / "panels.png").stat().st_size > 10_000
