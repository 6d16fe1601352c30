"""The one place where images move between ``[0, 1]`` pixels and the network's normalised space.

:class:`~isstad_plugin.IsstadModel` takes and returns ``[0, 1]`` images, so the corruption transform, the SSIM loss
and the reconstruction error E all work on pixels; inside, its encoder reads and its reconstruction head writes
ImageNet-normalised images (as the MAE checkpoints do), through this module, which is part of the network (and of its
export). The stage-1 loss is computed in that normalised space, MAE's target space (its ``norm_pix_loss`` off).
"""

from __future__ import annotations

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""Per-channel input mean of the MAE checkpoints and of anomalib's default normalisation."""
IMAGENET_STD = (0.229, 0.224, 0.225)
"""Per-channel input standard deviation of the MAE checkpoints and of anomalib's default normalisation."""


class PixelNormalization(nn.Module):
    """Per-channel affine map between ``[0, 1]`` pixels and the model's ImageNet-normalised input space."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).reshape(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).reshape(1, -1, 1, 1), persistent=False)
        self.mean: torch.Tensor
        self.std: torch.Tensor

    def to_unit(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised images -> ``[0, 1]`` pixels (not clamped)."""
        return images * self.std.to(images.dtype) + self.mean.to(images.dtype)

    def to_model(self, images: torch.Tensor) -> torch.Tensor:
        """``[0, 1]`` pixels -> normalised images."""
        return (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)
