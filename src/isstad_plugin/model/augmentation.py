"""Stage-1 augmentation: MAE's random resized crop and horizontal flip, per image, on the batch.

MAE (``main_pretrain.py``) and the official ISSTAD code train stage 1 on ``RandomResizedCrop(224, scale=(0.2, 1.0))``
and ``RandomHorizontalFlip()``. Here the same transforms run on the already resized and normalised batch (kornia,
one draw per image), so they work with any anomalib datamodule and on any device.
"""

from __future__ import annotations

import kornia.augmentation as K  # noqa: N812
from torch import nn

MAE_CROP_SCALE = (0.2, 1.0)
"""Area range of MAE's random resized crop."""
MAE_CROP_RATIO = (3 / 4, 4 / 3)
"""Aspect-ratio range of MAE's random resized crop."""


def mae_augmentation(image_size: tuple[int, int]) -> nn.Module:
    """MAE's stage-1 augmentation for ``image_size`` batches: random resized crop, then horizontal flip.

    Args:
        image_size: ``(height, width)`` of the model's input; crops are resized back to it.

    Returns:
        A module mapping a ``(B, C, H, W)`` batch to an augmented batch of the same shape.
    """
    return K.AugmentationSequential(
        K.RandomResizedCrop(image_size, scale=MAE_CROP_SCALE, ratio=MAE_CROP_RATIO),
        K.RandomHorizontalFlip(),
    )
