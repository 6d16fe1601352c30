"""Small builders shared by the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from anomalib.data import MVTecAD
from anomalib.engine import Engine

from isstad_plugin import Isstad, IsstadModel

TINY_NETWORK: dict[str, Any] = {
    "encoder": "vit_micro_patch8",
    "encoder_dim": 32,
    "encoder_depth": 2,
    "encoder_heads": 2,
    "decoder_dim": 32,
    "decoder_depth": 2,
    "decoder_heads": 2,
    "smoothing_sigma": 1.0,
}
"""Patch 8, 2 encoder and 2 decoder blocks of width 32: small enough for CPU tests."""


TINY_CLI_NETWORK = [
    "--model.image_size",
    "64",
    "--model.encoder",
    "vit_micro_patch8",
    "--model.encoder_depth",
    "1",
    "--model.decoder_dim",
    "32",
    "--model.decoder_depth",
    "1",
    "--model.decoder_heads",
    "2",
]
"""Command-line options of a 64-px network small enough for CLI tests on a CPU."""


def cli_train_args(dataset_root: Path, *extra: object) -> list[object]:
    """``anomalib train`` with ``configs/isstad_cpu.yaml`` on the generated ``tiles`` set, batch 8, then ``extra``."""
    config = Path(__file__).parents[1] / "configs" / "isstad_cpu.yaml"
    return [
        "train",
        "--config",
        config,
        "--data.root",
        dataset_root,
        "--data.category",
        "tiles",
        "--data.train_batch_size",
        "8",
        *extra,
    ]


def tiny_model(**overrides: Any) -> IsstadModel:
    """A 32-px IsstadModel of :data:`TINY_NETWORK` size."""
    return IsstadModel(**{"image_size": 32, **TINY_NETWORK, **overrides})


def tiny_isstad(**overrides: Any) -> Isstad:
    """A 64-px Isstad of :data:`TINY_NETWORK` size, no warm-up, no visualizer."""
    config = {"image_size": 64, **TINY_NETWORK, "stage1_warmup_epochs": 0, "stage1_blr": 0.01, "visualizer": False}
    return Isstad(**{**config, **overrides})


def small_datamodule(root: Path, **overrides: Any) -> MVTecAD:
    """The generated tiles set (see ``dataset_root``) as an MVTecAD datamodule, batch 8, no worker processes."""
    config: dict[str, Any] = {
        "root": root,
        "category": "tiles",
        "train_batch_size": 8,
        "eval_batch_size": 8,
        "num_workers": 0,
    }
    config.update(overrides)
    return MVTecAD(**config)


def engine_for(root: Path, **kwargs: Any) -> Engine:
    """A quiet single-device CPU Engine writing under ``root``; ``kwargs`` override any setting."""
    settings: dict[str, Any] = {
        "logger": False,
        "enable_progress_bar": False,
        "accelerator": "cpu",
        "devices": 1,
        "enable_model_summary": False,
    }
    return Engine(default_root_dir=root, **{**settings, **kwargs})
