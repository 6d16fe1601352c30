"""Reading the run configurations in ``configs/`` (anomalib CLI format) for the ``isstad`` commands.

The same YAML files serve ``anomalib train --config`` and ``isstad demo``/``isstad benchmark``, so that a setting
lives in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from isstad_plugin.model.options import IsstadConfig, option_defaults
from isstad_plugin.model.schedule import StageSchedule, Unit


@dataclass
class RunConfig:
    """The parts of an anomalib CLI config that the ``isstad`` commands use.

    Attributes:
        model: ``model.init_args`` (keyword arguments of :class:`~isstad_plugin.Isstad`).
        trainer: ``trainer`` settings (``max_epochs``, ``precision``, ...).
        data: ``data.init_args`` (datamodule keyword arguments).
    """

    model: dict[str, Any] = field(default_factory=dict)
    trainer: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)


def packaged_config(name: str) -> Path:
    """Path of a config shipped with the package (``configs/<name>``)."""
    return Path(str(resources.files("isstad_plugin") / "configs" / name))


def load_run_config(path: str | Path) -> RunConfig:
    """Read a config file.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: It is not a mapping with a ``model`` section of ``isstad_plugin.Isstad``.
    """
    file = Path(path)
    if not file.is_file():
        msg = f"config file not found: {file}"
        raise FileNotFoundError(msg)
    content = yaml.safe_load(file.read_text())
    model = content.get("model", {}) if isinstance(content, dict) else None
    if not isinstance(model, dict) or model.get("class_path") != "isstad_plugin.Isstad":
        msg = f"config {file} has no 'model' section with class_path isstad_plugin.Isstad"
        raise ValueError(msg)
    data = (content.get("data") or {}).get("init_args") or {}
    return RunConfig(dict(model.get("init_args") or {}), dict(content.get("trainer") or {}), dict(data))


def stage_lengths(config: RunConfig) -> tuple[int, int, Unit]:
    """``(stage1, stage2, unit)`` of a run config: its step budget, or its epochs (stage 2: ``trainer.max_epochs``).

    The model's own rule applies (:class:`~isstad_plugin.model.schedule.StageSchedule`: unset ``stage1_epochs`` is the
    paper's 120).
    """
    return StageSchedule.resolve(isstad_config(config.model)).lengths(config.trainer.get("max_epochs"))


def isstad_config(model_options: Mapping[str, Any]) -> IsstadConfig:
    """The :class:`~isstad_plugin.IsstadConfig` of a config's model options (anomalib's components left out)."""
    known = option_defaults()
    return IsstadConfig.from_options({key: value for key, value in model_options.items() if key in known})
