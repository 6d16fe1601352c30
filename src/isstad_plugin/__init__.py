"""ISSTAD for anomalib: a Transformer anomaly detector trained in two stages.

Public names follow the paper (Jin et al., "ISSTAD: Incremental Self-Supervised Learning Based on Transformer for
Anomaly Detection and Localization"): the network is :class:`IsstadModel`, the anomalib model is :class:`Isstad`.

The names are imported on first use (PEP 562), so that ``import isstad_plugin`` and the ``isstad`` command start
without loading torch and anomalib. Importing the package changes nothing in other libraries, except in the process of
the ``anomalib`` command, which imports it to read ``--model isstad_plugin.Isstad``: there the corrections of
:mod:`isstad_plugin.tools.anomalib_corrections` are installed (for ISSTAD models only).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from isstad_plugin import data as data
    from isstad_plugin.corruption import PixelCorruption
    from isstad_plugin.model.config import CorruptionOptions, LossConfig, NetworkConfig, RuntimeConfig, TrainingConfig
    from isstad_plugin.model.fusion import AnomalyFusion, AnomalyMaps
    from isstad_plugin.model.lightning_model import Isstad
    from isstad_plugin.model.options import IsstadConfig
    from isstad_plugin.model.post_processor import IsstadPostProcessor
    from isstad_plugin.model.torch_model import IsstadModel, IsstadOutput
    from isstad_plugin.model.variants import VARIANTS, Variant
    from isstad_plugin.training.checkpointing import IsstadCheckpoints
    from isstad_plugin.training.precision import HardwarePrecision

_LAZY = {  # the public names by the module that defines them, relative to this package
    ".corruption": ("PixelCorruption",),
    ".model.config": ("CorruptionOptions", "LossConfig", "NetworkConfig", "RuntimeConfig", "TrainingConfig"),
    ".model.fusion": ("AnomalyFusion", "AnomalyMaps"),
    ".model.lightning_model": ("Isstad",),
    ".model.options": ("IsstadConfig",),
    ".model.post_processor": ("IsstadPostProcessor",),
    ".model.torch_model": ("IsstadModel", "IsstadOutput"),
    ".model.variants": ("VARIANTS", "Variant"),
    ".training.checkpointing": ("IsstadCheckpoints",),
    ".training.precision": ("HardwarePrecision",),
}

__all__ = [
    "VARIANTS",
    "AnomalyFusion",
    "AnomalyMaps",
    "CorruptionOptions",
    "HardwarePrecision",
    "Isstad",
    "IsstadCheckpoints",
    "IsstadConfig",
    "IsstadModel",
    "IsstadOutput",
    "IsstadPostProcessor",
    "LossConfig",
    "NetworkConfig",
    "PixelCorruption",
    "RuntimeConfig",
    "TrainingConfig",
    "Variant",
]
__version__ = "0.1.0"


def _install_cli_corrections() -> None:
    """Under the ``anomalib`` command only: correct its Engine and CLI for ISSTAD runs (see anomalib_corrections)."""
    from isstad_plugin.tools.cli_errors import running_anomalib_cli

    if running_anomalib_cli():
        from isstad_plugin.tools.anomalib_corrections import install

        install()


def __getattr__(name: str) -> Any:
    """Import a public name (and, for ``Isstad``, the ``MVTec`` datamodule alias) when it is first used."""
    if name == "data":
        return importlib.import_module("isstad_plugin.data")
    module = next((module for module, names in _LAZY.items() if name in names), None)
    if module is None:
        msg = f"module 'isstad_plugin' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__, "data"])


_install_cli_corrections()
