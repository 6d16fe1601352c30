"""A new user's path: a fast `isstad --help`, the device options, mask-less JPG folders, `isstad predict`."""

from __future__ import annotations

import csv
import json
import logging
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from isstad_plugin.data import generate_dataset
from isstad_plugin.data.checks import DatasetError, check_mvtec_layout
from isstad_plugin.tools.cli import main
from isstad_plugin.tools.devices import device_args

REPO = Path(__file__).parents[2]
ISSTAD = Path(sys.executable).parent / "isstad"


def _as_jpg_without_masks(root: Path) -> Path:
    """Convert a generated MVTec-layout set to JPEG and drop its ground_truth/ (image-level labels only)."""
    for path in sorted(root.rglob("*.png")):
        if "ground_truth" not in path.parts:
            Image.open(path).convert("RGB").save(path.with_suffix(".jpg"), quality=95)
            path.unlink()
    for folder in root.glob("*/ground_truth"):
        shutil.rmtree(folder)
    return root


@pytest.fixture(scope="module")
def jpg_root(tmp_path_factory):
    """An MVTec-layout set of JPEGs without masks: 16 normal training images, 4 good and 10 defective test images."""
    root = tmp_path_factory.mktemp("jpg")
    generate_dataset(root, "tiles", n_train=16, n_test_good=4, n_test_defect=2, image_size=64, seed=1)
    return _as_jpg_without_masks(root)


# ------------------------------------------------------------------------------------------------ start-up
def test_help_and_version_answer_fast_without_torch():
    code = (
        "import sys; from isstad_plugin.tools.cli import _parser; _parser().format_help(); "
        "heavy = [m for m in ('torch', 'anomalib', 'lightning', 'matplotlib') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    start = time.perf_counter()
    result = subprocess.run([str(ISSTAD), "--help"], capture_output=True, text=True, check=True)
    assert time.perf_counter() - start < 2.0
    assert "{demo,benchmark,diagnose,predict}" in result.stdout
    version = subprocess.run([str(ISSTAD), "--version"], capture_output=True, text=True, check=True).stdout
    assert version.strip() == "isstad-plugin 0.1.0"


# ------------------------------------------------------------------------------------------------ devices
def test_auto_picks_the_gpu_when_torch_sees_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device_args() == {"accelerator": "gpu", "devices": 1}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device_args() == {"accelerator": "cpu", "devices": 1}
    assert device_args("cuda", "2") == {"accelerator": "cuda", "devices": 2}
    assert device_args("gpu", "0,1") == {"accelerator": "gpu", "devices": "0,1"}


class _StopError(Exception):
    """Raised by the fake Engine once it has recorded its arguments."""


def _recording_engine(seen):
    def engine(**kwargs):
        seen.update(kwargs)
        raise _StopError

    return engine


def test_demo_and_benchmark_train_on_the_gpu_auto_finds(monkeypatch, tmp_path, dataset_root):
    import isstad_plugin.tools.benchmark as benchmark
    import isstad_plugin.tools.runs as runs

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))  # bf16-capable, for precision
    seen: dict = {}
    monkeypatch.setattr(runs, "Engine", _recording_engine(seen))  # the demo's engine: IsstadRun.engine
    with pytest.raises(_StopError):
        main(["demo", "--fast", "--output", str(tmp_path / "demo")])
    assert (seen["accelerator"], seen["devices"]) == ("gpu", 1)

    seen.clear()
    monkeypatch.setattr(benchmark, "Engine", _recording_engine(seen))
    args = ["benchmark", "--root", str(dataset_root), "--categories", "tiles", "--models", "padim"]
    with pytest.raises(_StopError):
        main([*args, "--output", str(tmp_path / "bench"), "--accelerator", "cpu", "--devices", "2"])
    assert (seen["accelerator"], seen["devices"]) == ("cpu", 2)


# ------------------------------------------------------------------------------------------------ data
def test_mvtec_layout_errors_point_to_folder(tmp_path, jpg_root):
    with pytest.raises(DatasetError, match=r"holds \.jpg images but anomalib's MVTecAD reads only \.png: use"):
        check_mvtec_layout(jpg_root / "tiles")
    png = tmp_path / "png"
    generate_dataset(png, "tiles", n_train=2, n_test_good=1, n_test_defect=1, image_size=32, seed=0)
    shutil.rmtree(png / "tiles" / "ground_truth")
    with pytest.raises(DatasetError, match=r"no ground_truth/ folder: .*anomalib\.data\.Folder"):
        check_mvtec_layout(png / "tiles")


def test_benchmark_reads_a_maskless_jpg_folder_for_isstad_and_the_peers(tmp_path, jpg_root):
    output = tmp_path / "bench"
    args = ["benchmark", "--root", str(jpg_root), "--categories", "tiles", "--models", "isstad", "padim",
            "--peer-image-sizes", "32", "--stage1-epochs", "1", "--stage2-epochs", "1", "--limit-train-batches", "1",
            "--batch-size", "4", "--budget-scales", "1", "2", "--output", str(output)]  # fmt: skip
    assert main(args) == 0
    rows = json.loads((output / "results.json").read_text())["rows"]
    assert [r["model"] for r in rows] == ["ISSTAD x1", "ISSTAD x2", "PaDiM"]
    assert [r["settings"].split(", ")[-1] for r in rows[:2]] == ["1+1 epochs", "2+2 epochs"]
    for row in rows:
        assert "FAILED" not in row["settings"] and 0.0 <= row["metrics"]["image_AUROC"] <= 1.0
        assert "pixel_AUROC" not in row["metrics"], "no masks: no pixel metric"
    assert Image.open(output / "cost_quality_tiles.png").size[0] > 500, "the cost-against-quality figure"


def _layout(root: Path, masks: tuple[str, ...], defects: tuple[str, ...] = ("hole", "crack")) -> Path:
    category = root / "tiles"
    generate_dataset(root, "tiles", n_train=2, n_test_good=1, n_test_defect=1, image_size=32, defects=defects)
    for folder in (category / "ground_truth").iterdir():
        if folder.name not in masks:
            shutil.rmtree(folder)
    return root


@pytest.mark.parametrize(
    ("masks", "defects", "message"),
    [
        (("hole",), ("hole", "crack"), r"ground_truth has no folder for test/crack: add ground_truth/crack/"),
        ((), (), r"tiles/test: no defect images; put them in test/<defect>/"),
    ],
)
def test_benchmark_names_a_layout_it_cannot_read_in_one_line(tmp_path, capsys, masks, defects, message):
    root = _layout(tmp_path / "data", masks, defects or ("hole",))
    if not defects:
        shutil.rmtree(root / "tiles" / "test" / "hole")
    assert main(["benchmark", "--root", str(root), "--categories", "tiles", "--output", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(message, err[0]), err
    assert not (tmp_path / "b").exists(), "nothing written before the layout is read"


@pytest.mark.slow
def test_maskless_jpg_folder_trains_and_tests_with_the_cpu_recipe(tmp_path, jpg_root, caplog):
    """configs/isstad_cpu_folder.yaml (model, precision, datamodule) on good/ + defect/ JPEGs, 2 + 2 steps."""
    from anomalib.data import Folder
    from anomalib.engine import Engine
    from lightning.pytorch.loggers import CSVLogger

    from isstad_plugin import Isstad
    from isstad_plugin.model.schedule import StageSchedule
    from isstad_plugin.tools.run_config import load_run_config
    from isstad_plugin.training.precision import resolve_precision

    parts = tmp_path / "my_parts"
    for split, folder in (("train/good", "good"), ("test/good", "good"), ("test", "defect")):
        for image in (jpg_root / "tiles" / split).rglob("*.jpg"):
            if folder == "defect" and image.parent.name == "good":
                continue
            (parts / folder).mkdir(parents=True, exist_ok=True)
            shutil.copy(image, parts / folder / f"{image.parent.name}_{image.name}")
    config = load_run_config(REPO / "configs" / "isstad_cpu_folder.yaml")
    datamodule = Folder(**{**config.data, "root": parts})
    model = Isstad(**{**config.model, "stage1_steps": 2, "stage2_steps": 2})  # the recipe's step budget, shortened
    engine = Engine(
        default_root_dir=tmp_path / "run",
        **StageSchedule.trainer_arguments(2, 2, "steps"),
        precision=resolve_precision(config.trainer.get("precision")),
        logger=CSVLogger(tmp_path, name="logs", version=""),
        accelerator="cpu",
        devices=1,
        enable_progress_bar=False,
    )
    with caplog.at_level(logging.INFO, logger="isstad_plugin.data.checks"):
        engine.fit(model, datamodule=datamodule)
    results = engine.test(model, datamodule=datamodule)[0]
    assert 0.0 <= results["image_AUROC"] <= 1.0
    assert not [key for key in results if key.startswith("pixel_")]
    skipped = [r for r in caplog.records if "pixel metrics are skipped" in r.getMessage()]
    assert len(skipped) == 1
    val = set(datamodule.val_data.samples.image_path)
    assert val and not val & set(datamodule.test_data.samples.image_path), "validation images must not be tested"
    assert (tmp_path / "logs" / "metrics.csv").read_text().count("\n") >= 3  # header + one row per epoch


@pytest.fixture(scope="module")
def demo_on_jpgs(tmp_path_factory, jpg_root):
    """`isstad demo --fast --data-root` on the mask-less JPEG set."""
    output = tmp_path_factory.mktemp("demo_jpg")
    assert main(["demo", "--fast", "--output", str(output), "--data-root", str(jpg_root), "--accelerator", "cpu"]) == 0
    return output


@pytest.mark.slow
def test_demo_reads_a_maskless_jpg_folder(demo_on_jpgs, capsys):
    metrics = json.loads((demo_on_jpgs / "metrics.json").read_text())["metrics"]
    assert 0.0 <= metrics["image_AUROC"] <= 1.0
    assert "pixel_AUROC" not in metrics
    assert (demo_on_jpgs / "panels.png").stat().st_size > 10_000
    assert (demo_on_jpgs / "loss_curve.png").stat().st_size > 5_000
    rows = list(csv.DictReader((demo_on_jpgs / "logs" / "metrics.csv").open()))
    assert [r["train_loss"] for r in rows if r["train_loss"]], "one train_loss per epoch"


@pytest.mark.slow
def test_predict_writes_a_table_of_scores_and_pictures(demo_on_jpgs, jpg_root, tmp_path, capsys):
    (checkpoint,) = demo_on_jpgs.glob("anomalib/**/weights/lightning/model.ckpt")
    images = jpg_root / "tiles" / "test"
    output = tmp_path / "predict"
    args = ["predict", "--ckpt", str(checkpoint), "--images", str(images), "--output", str(output)]
    assert main([*args, "--accelerator", "cpu"]) == 0
    rows = list(csv.DictReader((output / "predictions.csv").open()))
    assert len(rows) == len(list(images.rglob("*.jpg"))) == 14
    for row in rows:
        assert 0.0 <= float(row["pred_score"]) <= 1.0
        assert int(row["pred_label"]) == int(float(row["pred_score"]) >= 0.5)
    # The table holds the post-processed (normalised) scores: those of the model's own forward (the exported path).
    from anomalib.data.utils import read_image
    from torchvision.transforms.v2.functional import resize

    from isstad_plugin import Isstad

    model = Isstad.load_from_checkpoint(checkpoint, weights_only=True, map_location="cpu").eval()
    files = [Path(r["image_path"]) for r in rows[:3]]
    batch = torch.stack([resize(read_image(f, as_tensor=True), [64, 64], antialias=True) for f in files])
    with torch.no_grad():
        expected = model(batch).pred_score
    assert [float(r["pred_score"]) for r in rows[:3]] == pytest.approx(expected.tolist(), abs=1e-3)
    payload = json.loads((output / "predictions.json").read_text())
    assert len(payload["predictions"]) == 14
    assert "0.5 is the threshold" in payload["score"]
    assert len(list((output / "images").rglob("*.jpg"))) == 14
    assert "14 images scored" in capsys.readouterr().out


def test_panels_have_a_colour_bar_under_each_map_column(tmp_path):
    from isstad_plugin.tools.report import save_panels
    from tests.helpers import tiny_model

    model = tiny_model()
    figure = save_panels(model, torch.rand(2, 3, 32, 32), None, tmp_path / "panels.png", titles=["a", "b"])
    assert len(figure.axes) == 2 * 5 + 3
    assert (tmp_path / "panels.png").stat().st_size > 0
