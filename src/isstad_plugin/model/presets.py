"""Named architecture presets and the paper's constants, in one place.

Paper references are to Jin et al., ISSTAD (EAAI 2025 / arXiv 2303.17354). Run configurations (epochs, batch
sizes, data) live in the repository's ``configs/`` folder; this module only names sizes and constants that code
needs as defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from isstad_plugin.model.loss import Stage2Weights

ClassifierUpsampling = Literal["patch", "overlap"]


@dataclass(frozen=True)
class EncoderPreset:
    """Size of a ViT encoder.

    Attributes:
        dim: Token width.
        depth: Number of Transformer blocks.
        heads: Number of attention heads.
        patch_size: Patch side in pixels.
    """

    dim: int
    depth: int
    heads: int
    patch_size: int


ENCODER_PRESETS: dict[str, EncoderPreset] = {
    # Paper 4.1.3: MAE ViT-Large/16 at 224 px (the official checkpoints mae_pretrain_vit_large.pth and
    # mae_visualize_vit_large.pth have this shape).
    "vit_large_patch16": EncoderPreset(dim=1024, depth=24, heads=16, patch_size=16),
    "vit_base_patch16": EncoderPreset(dim=768, depth=12, heads=12, patch_size=16),
    "vit_small_patch16": EncoderPreset(dim=384, depth=12, heads=6, patch_size=16),
    "vit_tiny_patch16": EncoderPreset(dim=192, depth=12, heads=3, patch_size=16),
    # Sizes that train both stages on a 2-core CPU in minutes.
    "vit_tiny_patch8": EncoderPreset(dim=192, depth=6, heads=3, patch_size=8),
    "vit_micro_patch8": EncoderPreset(dim=128, depth=4, heads=4, patch_size=8),
}
"""Encoder sizes selectable by name (``encoder=...``); each field can be overridden explicitly."""

PAPER_IMAGE_SIZE = 224
"""Input side in pixels (paper 4.1.3: 3 x 224 x 224, 14 x 14 patches of 16 px)."""

PAPER_DECODER_DIM = 512
"""Decoder width (paper 4.1.3: feature token dimension 512)."""
PAPER_DECODER_DEPTH = 8
"""Decoder Transformer blocks (paper 4.1.3: 8)."""
PAPER_DECODER_HEADS = 16
"""Decoder attention heads (MAE's ViT-L decoder: 16)."""

PAPER_STAGE1_EPOCHS = 120
"""Stage-1 epochs per class (paper 4.1.3); stage 2 then runs 200 more (``trainer.max_epochs = 320``)."""

PAPER_MASK_RATIO = 0.75
"""Stage 1 masks 75 % of the patches (paper 3.2)."""

PAPER_SMOOTHING_SIGMA = 4.0
"""Gaussian smoothing of E, P and S in pixels (official code: scipy ``gaussian_filter(sigma=4)``)."""


PAPER_LOSS = Stage2Weights(mse=2.0, ssim=0.1, classification=1.0, anomalous=1.0)
"""The stage-2 loss weights where their options are unset.

Paper 3.3.3 gives the form but not the values of λ0, λ1, λ2, ω. We take the official code's relative weights (MSE x0.5
on [-1, 1] pixels = x2 on [0, 1] pixels; SSIM x0.1; classification x1) and an unweighted BCE.
"""
