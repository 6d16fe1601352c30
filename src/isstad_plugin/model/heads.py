"""The two heads of the ISSTAD network (paper 3.1, Fig. 1).

The reconstruction head (RCH) turns the last decoder block's patch tokens into pixels; the pixel classifier head (PCH)
turns every decoder block's patch tokens into per-pixel logits, one map per level, whose probabilities are averaged
into P at inference (:func:`~isstad_plugin.model.fusion.level_probability`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from isstad_plugin.model.patching import unpatchify
from isstad_plugin.model.presets import ClassifierOutput, ClassifierSharing
from isstad_plugin.model.transformer import layer_norm


class ReconstructionHead(nn.Module):
    """Reconstruction head (RCH): LayerNorm + linear projection of each patch token to its pixels.

    Args:
        dim: Decoder width.
        patch_size: Patch side in pixels.
        channels: Image channels.
    """

    def __init__(self, dim: int, patch_size: int, channels: int) -> None:
        super().__init__()
        self.norm = layer_norm(dim)
        self.proj = nn.Linear(dim, patch_size * patch_size * channels)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, N, dim)`` patch tokens (no class token) -> ``(B, N, p * p * C)`` patch pixels."""
        return self.proj(self.norm(tokens))


class PixelClassifierHead(nn.Module):
    """Pixel classifier head (PCH): a linear projection of every decoder level's patch tokens to pixel logits.

    Args:
        dim: Decoder width.
        patch_size: Patch side in pixels.
        num_levels: Number of decoder blocks read.
        sharing: ``"per_block"`` (one projection per block, the paper's text) or ``"shared"`` (one projection for all
            blocks, the official code).
        output: ``"sigmoid"`` (one logit per pixel, the paper's eq. 10) or ``"softmax"`` (two classes, official code).
    """

    def __init__(
        self,
        dim: int,
        patch_size: int,
        num_levels: int,
        sharing: ClassifierSharing = "per_block",
        output: ClassifierOutput = "sigmoid",
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.output: ClassifierOutput = output
        self.classes = 1 if output == "sigmoid" else 2
        count = num_levels if sharing == "per_block" else 1
        self.proj = nn.ModuleList(nn.Linear(dim, patch_size * patch_size * self.classes) for _ in range(count))

    def forward(self, levels: Sequence[torch.Tensor], grid_size: tuple[int, int]) -> torch.Tensor:
        """Project every level.

        Args:
            levels: One ``(B, N, dim)`` patch-token tensor per decoder block (no class token).
            grid_size: ``(rows, cols)`` of the patch grid.

        Returns:
            ``(B, L, K, H, W)`` logits.
        """
        projections = [self.proj[i if len(self.proj) > 1 else 0](tokens) for i, tokens in enumerate(levels)]
        stacked = torch.stack(projections, dim=1)  # (B, L, N, p*p*K)
        batch, num_levels = stacked.shape[:2]
        maps = unpatchify(stacked.flatten(0, 1), self.patch_size, grid_size)
        return maps.reshape(batch, num_levels, *maps.shape[1:])

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """``(B, L, K, H, W)`` logits -> ``(B, L, H, W)`` probabilities of the anomalous class ``P^[l]``."""
        if self.output == "sigmoid":
            return torch.sigmoid(logits[:, :, 0])
        return torch.softmax(logits, dim=2)[:, :, 1]
