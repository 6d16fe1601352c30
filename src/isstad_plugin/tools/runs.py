"""How the ``isstad`` commands build and run a fit: an ISSTAD run of a config, fit-then-test, the held-out split.

:class:`IsstadRun` is the one way ``isstad demo`` and ``isstad benchmark`` turn a run config (the YAML that
``anomalib train --config`` reads) and stage lengths into the model and the trainer settings.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anomalib.data import AnomalibDataModule
from anomalib.engine import Engine
from anomalib.models.components import AnomalibModule

from isstad_plugin.data.folders import mvtec_layout_datamodule
from isstad_plugin.model.lightning_model import Isstad
from isstad_plugin.model.schedule import StageSchedule, Unit
from isstad_plugin.model.variants import get_variant
from isstad_plugin.tools.devices import device_args
from isstad_plugin.tools.run_config import RunConfig
from isstad_plugin.training.precision import resolve_precision

VAL_SPLIT_RATIO = 0.3
"""The protocol's validation split: this share of the test folder, held out for thresholds and never tested."""


@dataclass(frozen=True)
class IsstadRun:
    """An ISSTAD run of a run config with given stage lengths: its model and its trainer settings.

    Attributes:
        config: The run config (model options, trainer settings).
        stage1: Stage-1 length (for a one-stage variant: added to ``stage2``, the variant's one stage).
        stage2: Stage-2 length.
        unit: ``"epochs"`` or ``"steps"``.
        overrides: Model options that replace the config's (after the lengths).
    """

    config: RunConfig
    stage1: int
    stage2: int
    unit: Unit
    overrides: Mapping[str, Any] = field(default_factory=dict)

    @property
    def model_options(self) -> dict[str, Any]:
        """The config's model options with the lengths and the overrides."""
        variant = get_variant(str({**self.config.model, **self.overrides}.get("variant", "full")))
        lengths = StageSchedule.model_options(self.stage1, self.stage2, self.unit, variant.pretrain, variant.finetune)
        return {**self.config.model, **lengths, **self.overrides}

    def model(self, **components: Any) -> Isstad:
        """A new :class:`~isstad_plugin.Isstad` (``components``: anomalib's ``evaluator``, ``visualizer``, ...)."""
        return Isstad(**self.model_options, **components)

    @property
    def trainer_arguments(self) -> dict[str, Any]:
        """What Lightning must be told for these lengths (:meth:`StageSchedule.trainer_arguments`) and the precision.

        The precision is the config's, or the hardware's when it sets none.
        """
        precision = resolve_precision(self.config.trainer.get("precision"))
        return StageSchedule.trainer_arguments(self.stage1, self.stage2, self.unit) | {"precision": precision}

    def engine(self, root: Path, accelerator: str, devices: str | int, **settings: Any) -> Engine:
        """Anomalib's ``Engine`` under ``root``, with :attr:`trainer_arguments`, the devices and ``settings``."""
        return Engine(default_root_dir=root, **self.trainer_arguments, **device_args(accelerator, devices), **settings)


@dataclass
class FitTestResult:
    """Test metrics and the wall time of the fit and of the test."""

    metrics: dict[str, float]
    fit_seconds: float
    test_seconds: float


def fit_and_test(engine: Engine, model: AnomalibModule, datamodule: AnomalibDataModule) -> FitTestResult:
    """Train ``model`` (the last state is kept: no checkpoint is selected), then test it once.

    A fit stopped before its last epoch (by ``max_time``) skipped the validation that learns the post-processor's
    thresholds; it is run once before the test, outside the fit's time.
    """
    start = time.perf_counter()
    engine.fit(model, datamodule=datamodule)
    fit_seconds = time.perf_counter() - start
    if engine.trainer.max_epochs is not None and engine.trainer.current_epoch < engine.trainer.max_epochs:
        engine.validate(model, datamodule=datamodule)
    start = time.perf_counter()
    metrics = {key: float(value) for key, value in engine.test(model, datamodule=datamodule)[0].items()}
    return FitTestResult(metrics, fit_seconds, time.perf_counter() - start)


def held_out_datamodule(
    root: Path, category: str, seed: int, val_split_ratio: float, train_batch_size: int = 32, option: str = "--root"
) -> AnomalibDataModule:
    """An MVTec-layout datamodule whose validation split is held out of the test folder and never tested.

    ``isstad benchmark`` learns thresholds on that split and ``isstad diagnose`` compares maps on it; the
    same ``seed`` and ``val_split_ratio`` give both the same images. anomalib's ``MVTecAD`` reads a folder with a mask
    per defect image (PNG), its ``Folder`` any other MVTec layout (JPEG, masks optional: image metrics only).
    """
    split = {"val_split_mode": "from_test", "val_split_ratio": val_split_ratio, "seed": seed}
    batches = {"train_batch_size": train_batch_size, "eval_batch_size": 32, "num_workers": 0}
    return mvtec_layout_datamodule(root, category, option, **split, **batches)
