"""Every file in configs/ builds its model and names real trainer and datamodule options."""

from __future__ import annotations

import importlib
import inspect
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from lightning.pytorch import Trainer

from isstad_plugin import Isstad
from isstad_plugin.tools.run_config import load_run_config

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))


def test_there_are_configs():
    assert {p.name for p in CONFIGS} >= {"isstad.yaml", "isstad_cpu.yaml", "isstad_cpu_folder.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_builds_model_and_names_valid_options(path):
    content = yaml.safe_load(path.read_text())
    config = load_run_config(path)
    model = Isstad(**config.model)
    if model.schedule.steps:  # the model ends the fit; thresholds are learnt at the end of its last epoch
        assert content["trainer"]["max_epochs"] == -1 and content["trainer"]["check_val_every_n_epoch"] == 1
    else:
        assert model.stage1_epochs < content["trainer"]["max_epochs"]
    trainer_options = set(inspect.signature(Trainer.__init__).parameters)
    assert set(content["trainer"]) <= trainer_options
    module_name, class_name = content["data"]["class_path"].rsplit(".", 1)
    datamodule_class = getattr(importlib.import_module(module_name), class_name)
    assert set(config.data) <= set(inspect.signature(datamodule_class.__init__).parameters)


def test_the_wheel_ships_the_repository_configs(tmp_path):
    """``isstad demo`` reads ``packaged_config``: a built wheel must carry every file of configs/, unchanged."""
    repo = Path(__file__).parents[2]
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)]
    subprocess.run([*build, str(repo)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("isstad_plugin-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        for config in CONFIGS:
            assert archive.read(f"isstad_plugin/configs/{config.name}") == config.read_bytes()


def test_load_run_config_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_run_config(tmp_path / "missing.yaml")
    other = tmp_path / "other.yaml"
    other.write_text("model:\n  class_path: anomalib.models.Padim\n")
    with pytest.raises(ValueError, match=r"isstad_plugin\.Isstad"):
        load_run_config(other)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_learns_thresholds_on_a_validation_split_that_is_not_tested(path, dataset_root, tmp_path):
    """Every shipped config takes its validation split from the test images (never `same_as_test`)."""
    content = yaml.safe_load(path.read_text())
    data = content["data"]["init_args"]
    assert data["val_split_mode"] == "from_test"
    assert 0.0 < data["val_split_ratio"] < 1.0
    trainer = content["trainer"]
    if content["model"]["init_args"].get("stage1_steps"):  # a step budget: the model validates only at its end
        assert trainer.get("check_val_every_n_epoch") == 1 and trainer.get("max_epochs") == -1
    elif "max_epochs" in trainer:  # thresholds are learnt once, on the trained model
        assert trainer.get("check_val_every_n_epoch") == trainer["max_epochs"]
    module_name, class_name = content["data"]["class_path"].rsplit(".", 1)
    datamodule_class = getattr(importlib.import_module(module_name), class_name)
    if class_name == "Folder":  # the config's own layout: good/ and defect/ under root
        tiles = dataset_root / "tiles"
        root = tmp_path / "parts"
        shutil.copytree(tiles / "train" / "good", root / "good")
        for image in (tiles / "test").rglob("*.png"):
            folder = "good" if image.parent.name == "good" else "defect"
            (root / folder).mkdir(exist_ok=True)
            shutil.copy(image, root / folder / f"test_{image.parent.name}_{image.name}")
        datamodule = datamodule_class(**{**data, "root": root})
    else:
        datamodule = datamodule_class(**{**data, "root": dataset_root, "category": "tiles"})
    datamodule.setup()
    val, test = datamodule.val_data.samples, datamodule.test_data.samples
    assert set(val.label_index) == {0, 1}, "thresholds need normal and defect images"
    assert not set(val.image_path) & set(test.image_path)


def test_benchmark_splits_validation_from_the_test_folder(dataset_root):
    from isstad_plugin.tools.runs import held_out_datamodule

    datamodule = held_out_datamodule(dataset_root, "tiles", seed=0, val_split_ratio=0.3)
    datamodule.setup()
    assert not set(datamodule.val_data.samples.image_path) & set(datamodule.test_data.samples.image_path)
    assert len(datamodule.val_data.samples) > 0
