"""Every file in configs/ builds its model and names real trainer and datamodule options."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest
import yaml
from lightning.pytorch import Trainer

from isstad_plugin import Isstad
from isstad_plugin.run_config import load_run_config, packaged_config

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))


def test_there_are_configs():
    assert {p.name for p in CONFIGS} >= {"isstad.yaml", "isstad_cpu.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_builds_model_and_names_valid_options(path):
    content = yaml.safe_load(path.read_text())
    config = load_run_config(path)
    model = Isstad(**config.model)
    assert model.stage1_epochs < content["trainer"]["max_epochs"]
    trainer_options = set(inspect.signature(Trainer.__init__).parameters)
    assert set(content["trainer"]) <= trainer_options
    module_name, class_name = content["data"]["class_path"].rsplit(".", 1)
    datamodule_class = getattr(importlib.import_module(module_name), class_name)
    assert set(config.data) <= set(inspect.signature(datamodule_class.__init__).parameters)


def test_packaged_configs_are_the_repository_configs():
    assert packaged_config("isstad_cpu.yaml").read_text() == (CONFIGS[0].parent / "isstad_cpu.yaml").read_text()


def test_load_run_config_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_run_config(tmp_path / "missing.yaml")
    other = tmp_path / "other.yaml"
    other.write_text("model:\n  class_path: anomalib.models.Padim\n")
    with pytest.raises(ValueError, match=r"isstad_plugin\.Isstad"):
        load_run_config(other)
