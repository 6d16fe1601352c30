"""Soft, low-contrast regions: shading, gain, contrast loss and blur that fade in smoothly (beyond the paper).

The paper's blocks are sharp-edged and at most a quarter of the image. Many real defects are not: uneven shading,
stains, discolouration, glare or a blurred patch change a large part of a surface by a few grey levels, with no edge
to find. A soft region is drawn as a smooth random field (two octaves of coarse Gaussian noise plus a random ramp,
upsampled bicubically) thresholded at a drawn coverage and feathered by a drawn width, so regions range from
sharp-edged bands to diffuse stains and cover a drawn share of the image. Inside it (weight ``alpha`` in [0, 1]) one
operation moves the image: ``x + alpha * s`` (shading), ``x * (1 + alpha * s)`` (gain), a contrast change around the
local mean, or a blend towards a Gaussian blur.

**Label rule.** A pixel is labelled 1 when some channel moved by more than ``soft_label_threshold`` (default 0.02,
about 5 grey levels). Pixels that moved by less stay as moved and labelled 0: a soft region has no edge, so the label
marks where the change is visible, not where the field starts.
"""

from __future__ import annotations

import math

import torch
from kornia.filters import gaussian_blur2d
from torch import Tensor
from torch.nn.functional import interpolate

from isstad_plugin.corruption.config import PaperConfig
from isstad_plugin.corruption.sampling import integers, random_sign, uniform

SOFT_OPERATIONS = ("shading", "gain", "contrast", "blur")
"""What a soft region does to the pixels under it."""
FIELD_CELLS = (3, 6)
"""Coarse grid cells along the short side of the two octaves of the region's random field."""
BLUR_SIGMA = 2.0
"""Standard deviation in pixels of the blur a ``blur`` region blends towards (and of the local mean of ``contrast``)."""
SOFT_FEATHER = (0.05, 1.0)
"""Range of a soft region's edge width, in standard deviations of its random field (0.05: sharp, 1: diffuse)."""


def smooth_field(
    batch: int, height: int, width: int, generator: torch.Generator | None, device: torch.device
) -> Tensor:
    """A ``(B, 1, H, W)`` low-frequency random field with zero mean and unit standard deviation per image.

    Two octaves of coarse Gaussian noise (:data:`FIELD_CELLS` cells along the short side, the long side in
    proportion) upsampled bicubically, plus a linear ramp in a random direction (bands and gradients).
    """
    field = torch.zeros((batch, 1, height, width), device=device)
    short = min(height, width)
    for cells in FIELD_CELLS:
        grid = (max(2, round(cells * height / short)), max(2, round(cells * width / short)))
        noise = torch.randn((batch, 1, *grid), generator=generator, device=device)
        field += interpolate(noise, size=(height, width), mode="bicubic", align_corners=False)
    angle = uniform((batch, 1, 1, 1), 0.0, 2 * math.pi, generator, device)
    ramp_weight = uniform((batch, 1, 1, 1), 0.0, 2.0, generator, device)
    rows = torch.linspace(-1.0, 1.0, height, device=device).view(1, 1, -1, 1)
    cols = torch.linspace(-1.0, 1.0, width, device=device).view(1, 1, 1, -1)
    field = field + ramp_weight * (rows * torch.cos(angle) + cols * torch.sin(angle))
    flat = field.flatten(1)
    mean, std = flat.mean(1).view(-1, 1, 1, 1), flat.std(1).clamp_min(1e-6).view(-1, 1, 1, 1)
    return (field - mean) / std


def region_weights(field: Tensor, coverage: Tensor, feather: Tensor) -> Tensor:
    """Feathered region weights ``alpha`` in [0, 1]: about ``coverage`` of each image lies above one half.

    The edge is a smoothstep from 0 to 1 across the field values ``threshold -+ feather / 2``, so ``alpha`` is exactly
    0 outside the region and its fringe: nothing moves there.

    Args:
        field: ``(B, 1, H, W)`` field from :func:`smooth_field`.
        coverage: ``(B,)`` share of the image inside the region.
        feather: ``(B,)`` edge width in units of the field's standard deviation (small: sharp edge).

    Returns:
        ``(B, 1, H, W)`` weights.
    """
    flat = field.flatten(1).sort(dim=1).values
    index = ((1 - coverage) * (flat.shape[1] - 1)).round().long().clamp(0, flat.shape[1] - 1)
    threshold = flat.gather(1, index.unsqueeze(1)).view(-1, 1, 1, 1)
    ramp = ((field - threshold) / feather.view(-1, 1, 1, 1) + 0.5).clamp(0.0, 1.0)
    return ramp * ramp * (3 - 2 * ramp)


def soft_targets(images: Tensor, strength: Tensor, grey: Tensor, generator: torch.Generator | None) -> Tensor:
    """``(B, N_ops, C, H, W)`` what each of :data:`SOFT_OPERATIONS` would make of each image at full weight.

    Args:
        images: ``(B, C, H, W)`` float32 images in [0, 1].
        strength: ``(B,)`` signed change of brightness or gain.
        grey: ``(B,)`` bool, images that keep equal channels (no tint).
        generator: Optional generator.
    """
    batch, channels = images.shape[:2]
    device = images.device
    tint = 1 + 0.3 * torch.randn((batch, channels, 1, 1), generator=generator, device=device)
    tint = torch.where(grey.view(-1, 1, 1, 1), torch.ones_like(tint), tint)
    shift = strength.view(-1, 1, 1, 1) * tint
    blurred = gaussian_blur2d(images, (int(4 * BLUR_SIGMA) * 2 + 1,) * 2, (BLUR_SIGMA, BLUR_SIGMA), "reflect")
    contrast = 1 + 4 * strength.view(-1, 1, 1, 1)  # +-0.03..0.2 -> 0.2..1.8 times the local contrast
    candidates = (images + shift, images * (1 + shift), blurred + (images - blurred) * contrast, blurred)
    return torch.stack(candidates, dim=1)


def add_soft_regions(
    clean: Tensor,
    corrupted: Tensor,
    labels: Tensor,
    chosen: Tensor,
    grey: Tensor,
    config: PaperConfig,
    generator: torch.Generator | None,
) -> tuple[Tensor, Tensor]:
    """Add one soft region to each ``chosen`` image and label the pixels it moves (see the module's label rule).

    Args:
        clean: ``(B, C, H, W)`` input images in [0, 1].
        corrupted: ``(B, C, H, W)`` the blocks' output (the region is applied on top of it).
        labels: ``(B, 1, H, W)`` float32 labels of the blocks.
        chosen: ``(B,)`` bool, images that get a region.
        grey: ``(B,)`` bool, images that get grey-only changes.
        config: Settings (``soft_*`` fields).
        generator: Optional generator on the images' device.

    Returns:
        ``(corrupted, labels)`` in the dtypes of the inputs.
    """
    batch, _, height, width = clean.shape
    device = clean.device
    base = corrupted.float()
    field = smooth_field(batch, height, width, generator, device)
    coverage = uniform((batch,), *config.soft_coverage, generator, device)
    feather = uniform((batch,), *SOFT_FEATHER, generator, device)
    alpha = region_weights(field, coverage, feather) * chosen.view(-1, 1, 1, 1)
    strength = uniform((batch,), *config.soft_strength, generator, device) * random_sign((batch,), generator, device)
    kind = integers((batch,), 0, len(SOFT_OPERATIONS) - 1, generator, device)
    targets = soft_targets(base, strength, grey, generator)
    target = targets[torch.arange(batch, device=device), kind]
    moved = (base + alpha * (target - base)).clamp(0.0, 1.0)
    changed = (moved - clean.float()).abs().amax(dim=1, keepdim=True) > config.soft_label_threshold
    soft_labels = changed & (alpha > 0)
    out = torch.where(chosen.view(-1, 1, 1, 1), moved, base).to(corrupted.dtype)
    return out, torch.maximum(labels, soft_labels.float())
