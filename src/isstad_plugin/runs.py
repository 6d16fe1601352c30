"""Timed fit-then-test of an anomalib model, shared by ``isstad demo`` and ``isstad benchmark``."""

from __future__ import annotations

import time
from dataclasses import dataclass

from anomalib.data import AnomalibDataModule
from anomalib.engine import Engine
from anomalib.models.components import AnomalibModule


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
    trainer = engine.trainer
    if trainer.max_epochs is not None and trainer.current_epoch < trainer.max_epochs:
        engine.validate(model, datamodule=datamodule)
    start = time.perf_counter()
    metrics = {key: float(value) for key, value in engine.test(model, datamodule=datamodule)[0].items()}
    return FitTestResult(metrics, fit_seconds, time.perf_counter() - start)
