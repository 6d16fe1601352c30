"""The two heads of the ISSTAD network (paper 3.1, Fig. 1).

The reconstruction head (RCH) turns the last decoder block's patch tokens into pixels; the pixel classifier head (PCH)
turns every decoder block's patch tokens into per-pixel logits, one map per level, whose probabilities are averaged
into P at inference (:func:`~isstad_plugin.model.fusion.level_probability`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from isstad_plugin.model.patching import overlap_unpatchify, unpatchify
from isstad_plugin.model.presets import ClassifierUpsampling
from isstad_plugin.model.transformer import layer_norm
from isstad_plugin.validation import check_choice


def check_head_options(upsampling: object, patch_size: int) -> None:
    """The range check of the pixel classifier head's option ``classifier_upsampling``.

    Raises:
        ValueError: A value the head cannot use, naming the option.
    """
    check_choice("classifier_upsampling", upsampling, ("patch", "overlap"))
    if upsampling == "overlap" and patch_size % 2:
        msg = f"classifier_upsampling: overlap needs an even patch_size, got {patch_size}: use 'patch'"
        raise ValueError(msg)


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
    """Pixel classifier head (PCH): one linear projection per decoder level from its patch tokens to pixel logits.

    The paper's head projects each token to its own ``p x p`` pixels (``upsampling="patch"``), so a level's map is
    nearly constant per patch. ``upsampling="overlap"`` projects each token to a ``2p x 2p`` window centred on its
    patch and blends neighbouring windows with a bilinear tent (:func:`~isstad_plugin.model.patching.
    overlap_unpatchify`): a learned upsampling whose map is smooth across patch borders, at the cost of a wider
    linear layer only.

    Args:
        dim: Decoder width.
        patch_size: Patch side in pixels.
        num_levels: Number of decoder blocks read (one projection each, the paper's text).
        upsampling: ``"patch"`` (the paper's) or ``"overlap"`` (tent-blended ``2p x 2p`` windows; ``p`` even).
    """

    def __init__(self, dim: int, patch_size: int, num_levels: int, upsampling: ClassifierUpsampling = "patch") -> None:
        super().__init__()
        self.patch_size = patch_size
        self.upsampling: ClassifierUpsampling = upsampling
        side = 2 * patch_size if upsampling == "overlap" else patch_size
        self.proj = nn.ModuleList(nn.Linear(dim, side * side) for _ in range(num_levels))

    def forward(self, levels: Sequence[torch.Tensor], grid_size: tuple[int, int]) -> torch.Tensor:
        """Project every level to pixel logits.

        Args:
            levels: One ``(B, N, dim)`` patch-token tensor per decoder block (no class token).
            grid_size: ``(rows, cols)`` of the patch grid.

        Returns:
            ``(B, L, 1, H, W)`` logits (one per pixel, the paper's eq. 10).
        """
        projections = [proj(tokens) for proj, tokens in zip(self.proj, levels, strict=True)]
        stacked = torch.stack(projections, dim=1)  # (B, L, N, p*p)
        batch, num_levels = stacked.shape[:2]
        to_pixels = overlap_unpatchify if self.upsampling == "overlap" else unpatchify
        maps = to_pixels(stacked.flatten(0, 1), self.patch_size, grid_size)
        return maps.reshape(batch, num_levels, *maps.shape[1:])

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """``(B, L, 1, H, W)`` logits -> ``(B, L, H, W)`` anomaly probabilities ``P^[l]`` (sigmoid)."""
        return torch.sigmoid(logits[:, :, 0])
