"""Timed fit-then-test of an anomalib model and the held-out validation split, shared by the demo and benchmarks."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from anomalib.data import AnomalibDataModule, MVTecAD
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


def held_out_datamodule(
    root: Path, category: str, seed: int, val_split_ratio: float, train_batch_size: int = 32
) -> MVTecAD:
    """An MVTec-layout datamodule whose validation split is held out of the test folder and never tested.

    ``isstad benchmark`` learns thresholds on that split and ``isstad diagnose`` compares maps on it; the
    same ``seed`` and ``val_split_ratio`` give both the same images.
    """
    return MVTecAD(
        root=root,
        category=category,
        train_batch_size=train_batch_size,
        eval_batch_size=32,
        num_workers=0,
        val_split_mode="from_test",
        val_split_ratio=val_split_ratio,
        seed=seed,
    )
