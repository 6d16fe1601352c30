"""ISSTAD for anomalib: a Transformer anomaly detector trained in two stages.

Public names follow the paper (Jin et al., "ISSTAD: Incremental Self-Supervised Learning Based on Transformer for
Anomaly Detection and Localization"): the network is :class:`IsstadModel`, the anomalib model is :class:`Isstad`.
"""

from isstad_plugin import data as data  # defines the `MVTec` datamodule alias, so `--data MVTec` resolves in the CLI
from isstad_plugin.callbacks import IsstadStageSwitch
from isstad_plugin.corruption import PixelCorruption
from isstad_plugin.fusion import AnomalyFusion, AnomalyMaps
from isstad_plugin.lightning_model import Isstad
from isstad_plugin.post_processor import IsstadPostProcessor
from isstad_plugin.precision import HardwarePrecision
from isstad_plugin.torch_model import IsstadModel, IsstadOutput
from isstad_plugin.variants import VARIANTS, Variant

__all__ = [
    "VARIANTS",
    "AnomalyFusion",
    "AnomalyMaps",
    "HardwarePrecision",
    "Isstad",
    "IsstadModel",
    "IsstadOutput",
    "IsstadPostProcessor",
    "IsstadStageSwitch",
    "PixelCorruption",
    "Variant",
]
__version__ = "0.1.0"
