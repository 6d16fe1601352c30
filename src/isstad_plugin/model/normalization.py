"""The one place where images move between the model's normalised space and ``[0, 1]`` pixels.

The network reads and reconstructs ImageNet-normalised images (as the MAE checkpoints do); the corruption
transform, the SSIM loss and the reconstruction error E work on ``[0, 1]`` pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from isstad_plugin.model.presets import IMAGENET_MEAN, IMAGENET_STD


class PixelNormalization(nn.Module):
    """Per-channel affine map between ``[0, 1]`` pixels and the model's normalised input space.

    Args:
        mean: Per-channel mean subtracted by the pre-processor.
        std: Per-channel standard deviation divided by the pre-processor.
    """

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        super().__init__()
        if len(mean) != len(std):
            msg = f"normalisation mean and std must have the same length, got {len(mean)} and {len(std)}"
            raise ValueError(msg)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1), persistent=False)
        self.mean: torch.Tensor
        self.std: torch.Tensor

    def to_unit(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised images -> ``[0, 1]`` pixels (not clamped)."""
        return images * self.std.to(images.dtype) + self.mean.to(images.dtype)

    def to_model(self, images: torch.Tensor) -> torch.Tensor:
        """``[0, 1]`` pixels -> normalised images."""
        return (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)
