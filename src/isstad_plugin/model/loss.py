"""Losses of the two training stages (paper eq. 3 and 8-14).

Stage 1 is MAE's: the mean squared error on the masked patches, in MAE's target space, ImageNet-normalised pixels
(:class:`Stage1Loss` normalises the ``[0, 1]`` input and reconstruction). Stage 2 is
``λ0·MSE + λ1·(1 - SSIM) + λ2·mean_l CE_l``, the classification term a pixel-weighted binary cross-entropy
(paper eq. 10, weight ω on the corrupted pixels). Reconstruction terms are computed on ``[0, 1]`` pixels against the
clean image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F  # noqa: N812
from pytorch_msssim import ssim
from torch import nn

from isstad_plugin.model.normalization import PixelNormalization
from isstad_plugin.model.patching import patchify


def masked_patch_mse(target: torch.Tensor, prediction: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Stage-1 loss (paper eq. 3, MAE): mean squared error over the masked patches only.

    Args:
        target: ``(B, N, p * p * C)`` patches of the input.
        prediction: ``(B, N, p * p * C)`` predicted patches.
        mask: ``(B, N)``, 1 for masked patches.

    Returns:
        Scalar loss.
    """
    per_patch = (prediction - target).pow(2).mean(dim=-1)
    return (per_patch * mask).sum() / mask.sum().clamp_min(1)


class Stage1Loss(nn.Module):
    """Stage-1 loss of ``[0, 1]`` images and reconstructions, in the network's normalised space (MAE's targets).

    Args:
        normalization: The network's :class:`~isstad_plugin.model.normalization.PixelNormalization`.
        patch_size: The network's patch side.
    """

    def __init__(self, normalization: PixelNormalization, patch_size: int) -> None:
        super().__init__()
        self.normalization = normalization
        self.patch_size = patch_size

    def forward(self, images: torch.Tensor, reconstruction: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """:func:`masked_patch_mse` of the normalised ``images`` and ``reconstruction``, patch by patch."""
        to_model = self.normalization.to_model
        target = patchify(to_model(images), self.patch_size)
        return masked_patch_mse(target, patchify(to_model(reconstruction), self.patch_size), mask)


@dataclass(frozen=True)
class Stage2Weights:
    """Weights of the stage-2 loss terms.

    Attributes:
        mse: λ0, weight of the mean squared reconstruction error (eq. 8).
        ssim: λ1, weight of ``1 - SSIM`` (eq. 9).
        classification: λ2, weight of the classification loss averaged over decoder levels (eq. 11, 13).
        anomalous: Weight of the corrupted (label 1) pixels in the classification loss (ω in eq. 10).
    """

    mse: float
    ssim: float
    classification: float
    anomalous: float


class Stage2Losses(NamedTuple):
    """The terms of the stage-2 loss (unweighted) and their weighted sum."""

    total: torch.Tensor
    mse: torch.Tensor
    ssim: torch.Tensor
    classification: torch.Tensor


class Stage2Loss(nn.Module):
    """Stage-2 loss: ``λ0·MSE + λ1·(1 - SSIM) + λ2·mean_l CE_l`` (paper eq. 12-14).

    Args:
        weights: The term weights; a term with weight 0 is not computed.
    """

    def __init__(self, weights: Stage2Weights) -> None:
        super().__init__()
        self.weights = weights

    def forward(
        self,
        reconstruction: torch.Tensor,
        target: torch.Tensor,
        level_logits: torch.Tensor | None,
        labels: torch.Tensor,
    ) -> Stage2Losses:
        """Compute the loss.

        Args:
            reconstruction: ``(B, C, H, W)`` Î in ``[0, 1]`` pixel units.
            target: ``(B, C, H, W)`` what Î should match, in ``[0, 1]``.
            level_logits: ``(B, L, K, H, W)`` pixel classifier logits, or ``None`` when classification is off.
            labels: ``(B, 1, H, W)`` corruption labels in ``{0, 1}``.

        Returns:
            The weighted total and the unweighted terms.
        """
        w = self.weights
        zero = reconstruction.new_zeros(())
        mse = F.mse_loss(reconstruction.float(), target.float()) if w.mse else zero
        ssim_loss = ssim_loss_fp32(reconstruction, target) if w.ssim else zero
        cls = zero
        if w.classification and level_logits is not None:
            cls = classification_loss(level_logits, labels, w.anomalous)
        total = w.mse * mse + w.ssim * ssim_loss + w.classification * cls
        return Stage2Losses(total=total, mse=mse, ssim=ssim_loss, classification=cls)


def ssim_loss_fp32(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - SSIM`` (pytorch-msssim, 11-px Gaussian window, sigma 1.5) on ``[0, 1]`` images, always in float32.

    SSIM's variances are differences of filtered squares; under bf16 autocast its convolutions lose so much precision
    that a variance can reach zero or below and SSIM becomes infinite, so autocast is turned off here.
    """
    with torch.autocast(reconstruction.device.type, enabled=False):
        return 1 - ssim(reconstruction.float(), target.float(), data_range=1.0)


def classification_loss(
    level_logits: torch.Tensor, labels: torch.Tensor, anomalous_weight: float = 1.0
) -> torch.Tensor:
    """Pixel-weighted binary cross-entropy of every level against the labels, averaged over levels (paper eq. 10-11).

    Args:
        level_logits: ``(B, L, 1, H, W)`` logits.
        labels: ``(B, 1, H, W)`` labels in ``{0, 1}``.
        anomalous_weight: Weight of label-1 pixels (ω); label-0 pixels weigh 1.

    Returns:
        Scalar loss.
    """
    batch, levels = level_logits.shape[:2]
    target = labels.float().expand(batch, levels, *labels.shape[-2:])
    pixel_weight = target * anomalous_weight + (1 - target)
    return F.binary_cross_entropy_with_logits(level_logits.float()[:, :, 0], target, weight=pixel_weight)
