"""Reading the run configurations in ``configs/`` (anomalib CLI format) for the ``isstad`` commands.

The same YAML files serve ``anomalib train --config`` and ``isstad demo``/``isstad benchmark``, so that a setting
lives in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml


@dataclass
class RunConfig:
    """The parts of an anomalib CLI config that the ``isstad`` commands use.

    Attributes:
        model: ``model.init_args`` (keyword arguments of :class:`~isstad_plugin.Isstad`).
        trainer: ``trainer`` settings (``max_epochs``, ``precision``, ...).
        data: ``data.init_args`` (datamodule keyword arguments).
        seed: ``seed_everything``.
    """

    model: dict[str, Any] = field(default_factory=dict)
    trainer: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    seed: int = 0


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
    return RunConfig(
        model=dict(model.get("init_args") or {}),
        trainer=dict(content.get("trainer") or {}),
        data=dict((content.get("data") or {}).get("init_args") or {}),
        seed=int(content.get("seed_everything", 0) or 0),
    )


def budget_trainer_args(stage1: int, stage2: int, unit: str) -> dict[str, Any]:
    """Trainer settings for a fit of ``stage1 + stage2`` epochs or optimiser steps, thresholds learnt once at the end.

    Args:
        stage1: Stage-1 length.
        stage2: Stage-2 length.
        unit: ``"epochs"`` or ``"steps"`` (a step budget: the model's ``stage1_steps``/``stage2_steps`` end the fit;
            the trainer validates every epoch, which the model skips until the budget is spent).

    Returns:
        Keyword arguments of :class:`lightning.pytorch.Trainer` (or anomalib's ``Engine``).
    """
    if unit == "steps":
        return {"max_epochs": -1, "check_val_every_n_epoch": 1}
    total = stage1 + stage2
    return {"max_epochs": total, "check_val_every_n_epoch": total}


def stage_lengths(config: RunConfig) -> tuple[int, int, str]:
    """``(stage1, stage2, unit)`` of a run config: its ``stage1_steps``/``stage2_steps``, or its epoch settings."""
    if config.model.get("stage1_steps") or config.model.get("stage2_steps"):
        return int(config.model.get("stage1_steps") or 0), int(config.model.get("stage2_steps") or 0), "steps"
    stage1 = int(config.model.get("stage1_epochs") or 0)
    return stage1, int(config.trainer.get("max_epochs", stage1 + 1)) - stage1, "epochs"
