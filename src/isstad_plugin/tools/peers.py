"""The models ``isstad benchmark`` runs, as data: :class:`ModelSpec`, and the anomalib peers trained from scratch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anomalib.metrics import AUPRO, AUROC, Evaluator, F1Score
from anomalib.models import Draem, Padim, Patchcore
from anomalib.models.components import AnomalibModule

PEERS = ("draem", "padim", "patchcore")
"""The anomalib models ``isstad benchmark --models`` can compare with."""


@dataclass(frozen=True)
class ModelSpec:
    """One model of a benchmark.

    Attributes:
        name: The model's row label.
        build: Builds a fresh model.
        budget: Trainer budget (``max_epochs``/``max_steps``, validation schedule).
        settings: What the row's settings column says.
        trainer_args: Other trainer arguments (precision, time cap).
    """

    name: str
    build: Callable[[], AnomalibModule]
    budget: dict[str, Any]
    settings: str
    trainer_args: dict[str, Any] = field(default_factory=dict)


def _epochs(epochs: int) -> dict[str, int]:
    """Trainer settings for a peer: ``epochs`` epochs, thresholds learnt in the last one."""
    return {"max_epochs": epochs, "check_val_every_n_epoch": epochs}


def peer_specs(
    models: Sequence[str], image_size: int, output: Path, draem_epochs: int, draem_minutes: float | None
) -> list[ModelSpec]:
    """The peers among ``models``, trained from scratch at ``image_size`` (DRAEM capped at ``draem_minutes``).

    Args:
        models: Model names; those in :data:`PEERS` are built.
        image_size: Input side in pixels.
        output: Benchmark folder (DRAEM gets an empty texture folder there, so it downloads nothing).
        draem_epochs: DRAEM's epochs.
        draem_minutes: DRAEM's wall-clock cap, or ``None``.
    """
    specs: list[ModelSpec] = []
    size = (image_size, image_size)
    if "draem" in models:
        dtd = output / "empty_dtd"  # an existing, empty folder: DRAEM then blends Perlin noise, no download
        dtd.mkdir(parents=True, exist_ok=True)
        cap = {"max_time": {"minutes": draem_minutes}} if draem_minutes else {}
        specs.append(
            ModelSpec(
                "DRAEM",
                lambda: Draem(
                    dtd_dir=dtd, pre_processor=Draem.configure_pre_processor(size), evaluator=benchmark_evaluator()
                ),
                _epochs(draem_epochs),
                f"from scratch, {draem_epochs} epoch(s)"
                + (f", capped at {draem_minutes:g} min" if draem_minutes else ""),
                cap,
            )
        )
    if "padim" in models:
        specs.append(
            ModelSpec(
                "PaDiM",
                lambda: Padim(
                    backbone="resnet18",
                    pre_trained=False,
                    pre_processor=Padim.configure_pre_processor(size),
                    evaluator=benchmark_evaluator(),
                ),
                _epochs(1),
                "resnet18, random init (pre_trained=False)",
            )
        )
    if "patchcore" in models:
        specs.append(
            ModelSpec(
                "PatchCore",
                lambda: Patchcore(
                    backbone="resnet18",
                    layers=("layer2", "layer3"),
                    pre_trained=False,
                    coreset_sampling_ratio=0.01,
                    pre_processor=Patchcore.configure_pre_processor(size),
                    evaluator=benchmark_evaluator(),
                ),
                _epochs(1),
                "resnet18 layer2+3, random init (pre_trained=False), coreset 1 %",
            )
        )
    return specs


def benchmark_evaluator() -> Evaluator:
    """Image AUROC and F1, pixel AUROC, AUPRO and F1 (the paper's Tables 1/2 report AUROC)."""
    return Evaluator(
        test_metrics=[
            AUROC(fields=["pred_score", "gt_label"], prefix="image_"),
            F1Score(fields=["pred_label", "gt_label"], prefix="image_"),
            AUROC(fields=["anomaly_map", "gt_mask"], prefix="pixel_", strict=False),
            AUPRO(fields=["anomaly_map", "gt_mask"], prefix="pixel_", strict=False),
            F1Score(fields=["pred_mask", "gt_mask"], prefix="pixel_", strict=False),
        ]
    )
