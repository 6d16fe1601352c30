"""The hybrid encoder's patch embedding: an ImageNet CNN's feature maps as the ViT's tokens (ViT paper 3.1, "Hybrid").

Dosovitskiy et al. (ICLR 2021, section 3.1) feed a ViT with the feature map of a CNN instead of raw patches: each
position of the map is a token. Here a frozen timm CNN (``features_only``, ImageNet weights) gives its maps at the
strides ``p / 2``, ``p`` and ``2p`` (``p`` the patch size: 4, 8, 16 for the CPU recipes' 8-px patches, as PaDiM reads
EfficientNet's ``blocks.1/2/4``); they are resampled to stride ``p``, concatenated and projected by a 1 x 1
convolution to the encoder width. The token grid is therefore the same ``(H / p, W / p)`` grid as a plain ViT's, and
the decoder, both heads, E, P and S are unchanged.

The CNN stays frozen in both stages (its batch norms in eval mode): stage 1 trains the projection and the ViT blocks on
top of it, as MAE trains a ViT, so the ImageNet features are kept as they are. Stage-1 masking hides the masked patches'
pixels *before* the CNN (:func:`hide_masked_patches`), so a visible token's features cannot carry what the masked
patches hold through the CNN's receptive field (ConvMAE's masked convolution, Gao et al. 2022).
"""

from __future__ import annotations

import difflib
import functools
from typing import cast

import timm
import torch
import torch.nn.functional as F  # noqa: N812
from timm.models import FeatureInfo
from torch import nn


def check_backbone(backbone: str, patch_size: int) -> None:
    """Raise a one-line ``ValueError`` unless ``backbone`` is a timm CNN with a feature map at stride ``patch_size``."""
    if not timm.is_model(backbone):
        close = difflib.get_close_matches(backbone, timm.list_models(), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        msg = f"unknown encoder_backbone {backbone!r}: {hint}give a timm CNN name (e.g. efficientnet_lite0) or null"
        raise ValueError(msg)
    feature_levels(backbone, patch_size)


@functools.cache
def feature_levels(backbone: str, patch_size: int) -> tuple[int, ...]:
    """Indices of ``backbone``'s timm feature levels at strides ``p / 2``, ``p`` and ``2p`` (built once per pair).

    Raises:
        ValueError: The backbone has no feature map at stride ``patch_size``.
    """
    try:
        network = timm.create_model(backbone, pretrained=False, features_only=True)
        strides = cast(FeatureInfo, network.feature_info).reduction()
    except (RuntimeError, TypeError) as error:  # a timm model without features_only (a ViT, say)
        msg = f"encoder_backbone {backbone} has no timm feature maps ({error}): choose a CNN such as efficientnet_lite0"
        raise ValueError(msg) from None
    if patch_size not in strides:
        msg = (
            f"encoder_backbone {backbone} has feature maps at strides {strides}, none at the patch size {patch_size}: "
            "set --model.patch_size to one of them"
        )
        raise ValueError(msg)
    return tuple(i for i, stride in enumerate(strides) if stride in {patch_size // 2, patch_size, 2 * patch_size})


class CnnPatchEmbed(nn.Module):
    """A frozen timm CNN's feature maps at strides ``p / 2, p, 2p``, resampled to ``p`` and projected to tokens.

    Behaves as timm's ``PatchEmbed``: ``(B, 3, H, W)`` ImageNet-normalised images in, ``(B, N, dim)`` tokens out,
    ``N = (H / p) * (W / p)`` in row-major order.

    Args:
        backbone: timm model name (e.g. ``"efficientnet_lite0"``); built without weights, which
            :func:`~isstad_plugin.model.weights.load_backbone_weights` loads before a fit.
        patch_size: Token stride ``p`` in pixels.
        dim: Token width.
    """

    def __init__(self, backbone: str, patch_size: int, dim: int) -> None:
        super().__init__()
        levels = feature_levels(backbone, patch_size)
        self.backbone = timm.create_model(backbone, pretrained=False, features_only=True, out_indices=levels)
        self.backbone.requires_grad_(False)
        self.patch_size = patch_size
        channels = cast(FeatureInfo, self.backbone.feature_info).channels()
        self.proj = nn.Conv2d(sum(channels), dim, kernel_size=1)

    def train(self, mode: bool = True) -> CnnPatchEmbed:
        """Set training mode for the projection; the frozen CNN stays in eval mode (its batch norms too)."""
        super().train(mode)
        self.backbone.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` normalised images -> ``(B, N, dim)`` tokens."""
        grid = (images.shape[-2] // self.patch_size, images.shape[-1] // self.patch_size)
        with torch.no_grad():
            maps = [resample(level, grid) for level in self.backbone(images)]
        tokens = self.proj(torch.cat(maps, dim=1))
        return tokens.flatten(2).transpose(1, 2)


def resample(feature_map: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """A ``(B, C, h, w)`` map at ``grid``: average-pooled when finer, bilinearly upsampled when coarser."""
    if feature_map.shape[-2:] == grid:
        return feature_map
    if feature_map.shape[-2] > grid[0]:
        return F.adaptive_avg_pool2d(feature_map, grid)
    return F.interpolate(feature_map, size=grid, mode="bilinear", align_corners=False)


def hide_masked_patches(images: torch.Tensor, mask: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Set the pixels of masked patches to 0 (the ImageNet mean colour of normalised images).

    Args:
        images: ``(B, C, H, W)`` normalised images.
        mask: ``(B, N)`` patch mask, 1 = masked, patches in row-major order.
        patch_size: Patch side ``p``.

    Returns:
        The images with every masked ``p x p`` patch set to 0.
    """
    rows, cols = images.shape[-2] // patch_size, images.shape[-1] // patch_size
    keep = (1 - mask).reshape(-1, 1, rows, cols).to(images.dtype)
    return images * keep.repeat_interleave(patch_size, dim=2).repeat_interleave(patch_size, dim=3)
