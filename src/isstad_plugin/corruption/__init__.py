"""Stage-2 pixel-level corruption of ISSTAD (paper §3.3.1 and §4.1.3 "Data Augmentation").

:class:`PixelCorruption` corrupts a batch of clean training images and returns pixel labels for the pixel classifier
head: 5/6 of the images get 1-100 random blocks, each with one or more of flip, rotation, blur, colour change and
Gaussian noise; a pixel is labelled 1 exactly where its value changed. See :mod:`isstad_plugin.corruption.params` for
the exact semantics and :mod:`isstad_plugin.corruption.render` for the vectorised renderer (the tests' loop oracle is
``tests/corruption/reference.py``).

Dtype rule: computation is in float32 and the corrupted batch is returned in the input dtype (float16, bfloat16,
float32 or float64); labels are always float32. Everything runs on the images' device.

Layer: beside ``data``, below ``training``. May import ``validation`` only.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from isstad_plugin.corruption.config import OPERATIONS, PAPER_CORRUPT_PROB, SHAPES, PaperConfig
from isstad_plugin.corruption.inputs import check_image_batch, resolve_generator
from isstad_plugin.corruption.paper import apply_paper, grey_images
from isstad_plugin.corruption.params import BlockParams

__all__ = [
    "OPERATIONS",
    "PAPER_CORRUPT_PROB",
    "SHAPES",
    "BlockParams",
    "PaperConfig",
    "PixelCorruption",
    "check_image_batch",
    "grey_images",
]


class PixelCorruption(nn.Module):
    """Corrupt clean images and label the corrupted pixels (ISSTAD stage 2). No trainable parameters.

    Args:
        config: The settings; ``None``: the defaults (:class:`PaperConfig`).
        **settings: Fields of :class:`PaperConfig` by name (``corrupt_prob``, ``num_blocks``, ``soft_prob``, ...)
            that replace ``config``'s; lists become tuples (as YAML and the command line give them).

    Raises:
        ValueError: An unknown setting (naming the nearest valid one) or a bad value, in one line.

    Example:
        >>> corruption = PixelCorruption()
        >>> corrupted, labels = corruption(torch.rand(4, 3, 64, 64), generator=0)
        >>> corrupted.shape, labels.shape
        (torch.Size([4, 3, 64, 64]), torch.Size([4, 1, 64, 64]))
    """

    def __init__(self, config: PaperConfig | None = None, **settings: Any) -> None:
        super().__init__()
        self.config = (config or PaperConfig()).replace(**settings)

    def extra_repr(self) -> str:
        """Show the settings in ``print(module)``."""
        return f"config={self.config}"

    @torch.no_grad()
    def forward(self, images: Tensor, generator: torch.Generator | int | None = None) -> tuple[Tensor, Tensor]:
        """Corrupt a batch.

        Args:
            images: ``(B, C, H, W)`` float images in [0, 1], ``C`` in {1, 3}, any device; ``H != W`` is fine.
            generator: Optional ``torch.Generator`` on the images' device, or an int seed, for reproducible output.

        Returns:
            ``(corrupted, labels)``: ``corrupted`` has the input's shape, dtype and device and values in [0, 1];
            ``labels`` is float32 ``(B, 1, H, W)`` in {0, 1}. Uncorrupted images are returned unchanged with zero
            labels.

        Raises:
            TypeError: ``images`` is not a float tensor, or ``generator`` has a wrong type.
            ValueError: wrong shape, channel count or value range, or a generator on another device.
        """
        low, high = check_image_batch(images)
        generator = resolve_generator(generator, images.device)
        batch, _, height, width = images.shape
        if images.numel() == 0:
            return images.clone(), torch.zeros((batch, 1, height, width), device=images.device)
        if low < 0 or high > 1:
            images = images.clamp(0.0, 1.0)
        return apply_paper(images, self.config, generator)
