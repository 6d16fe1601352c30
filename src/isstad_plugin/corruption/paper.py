"""The paper mode's entry point: grey detection, sampling and rendering of one batch (paper §3.3.1 and §4.1.3).

Its pieces: :mod:`~isstad_plugin.corruption.config` (settings), :mod:`~isstad_plugin.corruption.params` (the block
table, its sampling and the exact semantics) and :mod:`~isstad_plugin.corruption.render` (the vectorised renderer); the
tests' loop oracle is ``tests/corruption/reference.py``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from isstad_plugin.corruption.config import GREY_TOLERANCE, PaperConfig
from isstad_plugin.corruption.params import sample_params
from isstad_plugin.corruption.render import apply_vectorised
from isstad_plugin.corruption.soft import add_soft_regions


def grey_images(images: Tensor) -> Tensor:
    """``(B,)`` bool: the RGB images whose channels are equal (up to :data:`GREY_TOLERANCE`) at every pixel."""
    if images.shape[1] == 1:
        return torch.ones(images.shape[0], dtype=torch.bool, device=images.device)
    spread = images.amax(dim=1) - images.amin(dim=1)
    return spread.flatten(1).amax(dim=1) <= GREY_TOLERANCE


def apply_paper(
    images: Tensor,
    config: PaperConfig,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Corrupt a batch the way the paper does.

    Args:
        images: ``(B, C, H, W)`` float images in [0, 1] (already validated and clamped).
        config: Paper-mode settings.
        generator: Optional generator on the images' device.

    Returns:
        ``(corrupted, labels)``: the corrupted batch in the input dtype and float32 ``(B, 1, H, W)`` labels of the
        changed pixels; without soft regions it equals the input wherever the label is 0 (a soft region may move
        unlabelled pixels by up to ``soft_label_threshold``, :mod:`~isstad_plugin.corruption.soft`).
    """
    batch, channels, height, width = images.shape
    grey = grey_images(images) if config.preserve_grey else None
    params = sample_params(batch, channels, height, width, config, generator, images.device, grey)
    corrupted, labels = apply_vectorised(images, params, config.change_tolerance)
    if config.soft_prob == 0:
        return corrupted, labels
    draw = torch.rand((batch,), generator=generator, device=images.device)
    chosen = (params.num_blocks > 0) & (draw < config.soft_prob)
    return add_soft_regions(images, corrupted, labels, chosen, params.grey, config, generator)
