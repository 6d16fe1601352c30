"""Stage-2 pixel-level corruption of ISSTAD (paper §3.3.1 and §4.1.3 "Data Augmentation").

:class:`PixelCorruption` corrupts a batch of clean training images and returns pixel labels for the pixel classifier
head. Two modes:

* ``"paper"`` (default): 5/6 of the images get 1-100 random blocks, each with one or more of flip, rotation, blur,
  colour change and Gaussian noise; a pixel is labelled 1 exactly where its value changed. See
  :mod:`isstad_plugin.corruption.params` for the exact semantics and :mod:`isstad_plugin.corruption.render` for the
  vectorised renderer (the tests' loop oracle is ``tests/corruption/reference.py``).
* ``"official"``: the official code's augmentation, 2/3 of the images get a whole-image transform pasted through
  1-3 random shapes, labelled with the shape mask. See :mod:`isstad_plugin.corruption.official`.

Dtype rule: computation is in float32 and the corrupted batch is returned in the input dtype (float16, bfloat16,
float32 or float64); labels are always float32. Everything runs on the images' device.

Layer: beside ``data``, below ``training``. May import ``validation`` only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import Tensor, nn

from isstad_plugin.corruption.config import OPERATIONS, PAPER_CORRUPT_PROB, SHAPES, PaperConfig
from isstad_plugin.corruption.inputs import check_image_batch, resolve_generator
from isstad_plugin.corruption.official import OFFICIAL_CORRUPT_PROB, OfficialConfig, apply_official
from isstad_plugin.corruption.paper import apply_paper, grey_images
from isstad_plugin.corruption.params import BlockParams

__all__ = [
    "OFFICIAL_CORRUPT_PROB",
    "OPERATIONS",
    "PAPER_CORRUPT_PROB",
    "SHAPES",
    "BlockParams",
    "OfficialConfig",
    "PaperConfig",
    "PixelCorruption",
    "check_image_batch",
    "corruption_config",
    "grey_images",
]


def corruption_config(
    mode: str = "paper", corrupt_prob: float | None = None, settings: Mapping[str, Any] | None = None
) -> PaperConfig | OfficialConfig:
    """Build and validate the settings of a corruption mode.

    Args:
        mode: ``"paper"`` or ``"official"``.
        corrupt_prob: Fraction of images corrupted; ``None`` keeps the mode's (paper 5/6, official 2/3).
        settings: Other fields of :class:`PaperConfig` or :class:`OfficialConfig` by name; lists become tuples (as
            YAML and the command line give them).

    Returns:
        The mode's frozen config.

    Raises:
        ValueError: An unknown mode or setting, or a bad value, in one line naming it.
    """
    if mode not in ("paper", "official"):
        raise ValueError(f"mode must be 'paper' or 'official', got {mode!r}")
    config_class: type[PaperConfig] | type[OfficialConfig] = PaperConfig if mode == "paper" else OfficialConfig
    names = sorted(field.name for field in dataclasses.fields(config_class) if field.name != "corrupt_prob")
    values = {name: tuple(value) if isinstance(value, list) else value for name, value in (settings or {}).items()}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"unknown {mode}-mode corruption setting(s) {unknown}; choose from {names}")
    if corrupt_prob is not None:
        values["corrupt_prob"] = corrupt_prob
    return config_class(**values)  # type: ignore[arg-type]  # checked by the config's __post_init__


class PixelCorruption(nn.Module):
    """Corrupt clean images and label the corrupted pixels (ISSTAD stage 2). No trainable parameters.

    Args:
        mode: ``"paper"`` (blocks, labels = changed pixels) or ``"official"`` (shapes, labels = shape mask).
        corrupt_prob: Probability that an image is corrupted; ``None`` uses the mode's value (paper 5/6, official
            2/3).
        **settings: Any other field of the mode's config: :class:`PaperConfig` (``num_blocks``, ``block_size``,
            ``count_distribution``, ``size_distribution``, ``placement``, ``shapes``, ``line_width``, ``operations``,
            ``ops_per_block``, ``noise_std``, ``colour_strength``, ``small_angle``, ``right_angle_prob``,
            ``blur_levels``, ``change_tolerance``, ``preserve_grey``) or :class:`OfficialConfig` (``max_shapes``, ...).

    Example:
        >>> corruption = PixelCorruption()
        >>> corrupted, labels = corruption(torch.rand(4, 3, 64, 64), generator=0)
        >>> corrupted.shape, labels.shape
        (torch.Size([4, 3, 64, 64]), torch.Size([4, 1, 64, 64]))
    """

    def __init__(
        self,
        mode: Literal["paper", "official"] = "paper",
        corrupt_prob: float | None = None,
        **settings: Any,
    ) -> None:
        super().__init__()
        self.config = corruption_config(mode, corrupt_prob, settings)
        self.mode = mode

    def extra_repr(self) -> str:
        """Show the mode and the settings in ``print(module)``."""
        return f"mode={self.mode!r}, config={self.config}"

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
        if isinstance(self.config, OfficialConfig):
            return apply_official(images, self.config, generator)
        return apply_paper(images, self.config, generator)
