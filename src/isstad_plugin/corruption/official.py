"""Official-code-mode corruption: the augmentation of the official ISSTAD repository, on tensors and on any device.

The official code (``xjspin/ISSTAD``, ``step2_pixel_ss_learning/util/mvtecad_aug.py`` and ``util/mtvecad.py``, see
``official-code-notes.md`` §3) does, per training image:

1. with probability 2/3 (``random.randint(0, 2) != 0``) corrupt the image, else keep it with an all-zero label;
2. transform the WHOLE image by one uniformly chosen operation: ``colour`` (one of ColorJitter(0.8, 0.8, 0.8, 0.4),
   grayscale, GaussianBlur with radius U(15, 20), or one of the three pairs, applied in that order), ``flip``
   (horizontal, vertical or both) or ``noise`` (a 50 % blend with uniform random RGB noise);
3. draw a mask of ``randint(1, mask_num)`` shapes (rectangle, ellipse or polygon with 3-8 vertices), each with an
   origin uniform in the box minus 50 px and a width and height uniform in [10 px, remaining extent];
4. paste the transformed image through the mask; the label is the mask itself, even where nothing changed.

Kept: the rate, the three transform kinds and six colour variants, ColorJitter's factors and random order, the shape
kinds and their sampling rules, the mask-as-label rule. Changed: it runs on the batch tensor at the input resolution
(the official code works on the full-resolution PIL image before resizing), so its pixel constants (50 px margin,
10 px minimum size, blur radius 15-20 px) are scaled by ``side / 1024`` (MVTec AD images are mostly 1024 px); noise is
continuous uniform rather than 8-bit; masks are hard (the official bilinear resize of the label followed by
``.long()`` also yields a hard mask, slightly eroded). Dropped: the per-class Otsu "area limitation" box (shapes may
fall anywhere in the image) and ``remove_black``, which need per-class settings and foreground segmentation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import kornia
import torch
from torch import Tensor

from isstad_plugin.corruption.colour import GRAY_WEIGHTS
from isstad_plugin.corruption.sampling import integers, uniform
from isstad_plugin.validation import check_pair, check_probability

OFFICIAL_CORRUPT_PROB = 2 / 3
"""Official corruption rate: ``random.randint(0, 2) != 0``."""
OFFICIAL_MAX_SHAPES = 3
"""``mask_num`` of most MVTec AD classes in the official code."""
OFFICIAL_REFERENCE_SIDE = 1024
"""Image side at which the official pixel constants apply (MVTec AD full resolution)."""
TRANSFORMS = ("colour", "flip", "noise")
SHAPES = ("rectangle", "ellipse", "polygon")
# The six colour variants of the official RandomChoice, as (jitter, grayscale, blur) flags.
_COLOUR_VARIANTS = (
    (True, False, False),
    (False, True, False),
    (False, False, True),
    (True, True, False),
    (True, False, True),
    (False, True, True),
)


@dataclass(frozen=True)
class OfficialConfig:
    """Settings of the official-code mode.

    Attributes:
        corrupt_prob: Probability that an image is corrupted (official: 2/3).
        max_shapes: Shapes per mask are drawn from ``[1, max_shapes]`` (official ``mask_num``: 3 for most classes).
        jitter: ColorJitter ``(brightness, contrast, saturation, hue)`` (official: 0.8, 0.8, 0.8, 0.4).
        blur_radius: Gaussian blur standard deviation range at the reference side (official: 15-20 px).
        noise_alpha: Weight of the uniform noise in the noise blend (official: 0.5).
        origin_margin: Shape origins lie in ``[0, side - origin_margin]`` px at the reference side (official: 50).
        min_shape_size: Minimum shape width and height in px at the reference side (official: 10).
        polygon_vertices: Inclusive range of polygon vertex counts (official: 3 to 8).
        reference_side: Side, in px, at which the pixel constants above apply; they scale with ``side / reference``.
    """

    corrupt_prob: float = OFFICIAL_CORRUPT_PROB
    max_shapes: int = OFFICIAL_MAX_SHAPES
    jitter: tuple[float, float, float, float] = (0.8, 0.8, 0.8, 0.4)
    blur_radius: tuple[float, float] = (15.0, 20.0)
    noise_alpha: float = 0.5
    origin_margin: float = 50.0
    min_shape_size: float = 10.0
    polygon_vertices: tuple[int, int] = (3, 8)
    reference_side: int = OFFICIAL_REFERENCE_SIDE

    def __post_init__(self) -> None:
        """Check the settings and raise a one-line ``ValueError`` naming the bad one."""
        check_probability("corrupt_prob", self.corrupt_prob)
        if int(self.max_shapes) != self.max_shapes or self.max_shapes < 1:
            raise ValueError(f"max_shapes must be an integer >= 1, got {self.max_shapes}")
        check_pair("polygon_vertices", self.polygon_vertices, minimum=3, integers=True)


# ----------------------------------------------------------------------------------------------------------------------
# Whole-image transforms (each takes and returns a (n, C, H, W) float32 batch in [0, 1])
# ----------------------------------------------------------------------------------------------------------------------


def grayscale(images: Tensor) -> Tensor:
    """ITU-R 601 luma replicated to every channel (identity for one channel)."""
    if images.shape[1] == 1:
        return images
    weights = torch.tensor(GRAY_WEIGHTS, device=images.device).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True).expand_as(images).contiguous()


def _blend(images: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    """``factor * images + (1 - factor) * other`` clamped to [0, 1], with one factor per image."""
    factor = factor.view(-1, 1, 1, 1)
    return (factor * images + (1 - factor) * other).clamp(0.0, 1.0)


def adjust_brightness(images: Tensor, factor: Tensor) -> Tensor:
    """Scale intensities by a per-image factor, as torchvision's ``adjust_brightness``."""
    return _blend(images, torch.zeros_like(images), factor)


def adjust_contrast(images: Tensor, factor: Tensor) -> Tensor:
    """Blend with the per-image mean gray level, as torchvision's ``adjust_contrast``."""
    mean = grayscale(images)[:, :1].mean(dim=(-2, -1), keepdim=True)
    return _blend(images, mean.expand_as(images), factor)


def adjust_saturation(images: Tensor, factor: Tensor) -> Tensor:
    """Blend with the grayscale image, as torchvision's ``adjust_saturation`` (identity for one channel)."""
    if images.shape[1] == 1:
        return images
    return _blend(images, grayscale(images), factor)


def adjust_hue(images: Tensor, factor: Tensor) -> Tensor:
    """Rotate the hue by ``factor`` turns per image, as torchvision's ``adjust_hue`` (identity for one channel)."""
    if images.shape[1] == 1:
        return images
    return kornia.enhance.adjust_hue(images, factor * 2 * math.pi).clamp(0.0, 1.0)


def colour_jitter(images: Tensor, config: OfficialConfig, generator: torch.Generator | None) -> Tensor:
    """Apply torchvision's ``ColorJitter(b, c, s, h)``: the four adjustments, per-image factors, random order."""
    count, device = images.shape[0], images.device
    brightness, contrast, saturation, hue = config.jitter
    factors = [
        uniform((count,), max(0.0, 1 - brightness), 1 + brightness, generator, device),
        uniform((count,), max(0.0, 1 - contrast), 1 + contrast, generator, device),
        uniform((count,), max(0.0, 1 - saturation), 1 + saturation, generator, device),
        uniform((count,), -hue, hue, generator, device),
    ]
    adjustments = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)
    order = torch.rand((count, 4), generator=generator, device=device).argsort(dim=1)
    for position in range(4):
        for kind, adjust in enumerate(adjustments):
            chosen = torch.nonzero(order[:, position] == kind).squeeze(1)
            if chosen.numel() > 0:
                images = images.index_copy(0, chosen, adjust(images[chosen], factors[kind][chosen]))
    return images


def _gaussian_matrices(size: int, sigma: Tensor) -> Tensor:
    """``(n, size, size)`` matrices applying a 1-D Gaussian blur with edge replication, one sigma per image."""
    radius = max(1, math.ceil(3 * float(sigma.max())))
    taps = torch.arange(-radius, radius + 1, device=sigma.device, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps / sigma.unsqueeze(1)) ** 2)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)
    position = torch.arange(size, device=sigma.device)
    source = (position.unsqueeze(1) + taps.long().unsqueeze(0)).clamp(0, size - 1)
    matrices = torch.zeros((sigma.numel(), size, size), device=sigma.device)
    index = source.unsqueeze(0).expand(sigma.numel(), -1, -1)
    return matrices.scatter_add_(2, index, kernel.unsqueeze(1).expand(-1, size, -1).contiguous())


def gaussian_blur(images: Tensor, sigma: Tensor) -> Tensor:
    """Separable Gaussian blur with a per-image standard deviation (in px) and replicated edges."""
    _, _, height, width = images.shape
    rows = _gaussian_matrices(height, sigma).unsqueeze(1)
    cols = _gaussian_matrices(width, sigma).unsqueeze(1)
    return (rows @ images @ cols.transpose(-1, -2)).clamp(0.0, 1.0)


def _apply_where(images: Tensor, flags: Tensor, transform: Callable[[Tensor], Tensor]) -> Tensor:
    """Return ``images`` with ``transform`` applied to the images whose flag is set (computed on those only)."""
    chosen = torch.nonzero(flags).squeeze(1)
    if chosen.numel() == 0:
        return images
    return images.index_copy(0, chosen, transform(images.index_select(0, chosen)))


def colour_transform(images: Tensor, config: OfficialConfig, generator: torch.Generator | None) -> Tensor:
    """The official ``color`` transform: one of jitter, grayscale, blur or a pair of them (in that order), per image."""
    count, device = images.shape[0], images.device
    _, _, height, width = images.shape
    variant = integers((count,), 0, len(_COLOUR_VARIANTS) - 1, generator, device)
    flags = torch.tensor(_COLOUR_VARIANTS, device=device)[variant]
    sigma = uniform((count,), *config.blur_radius, generator, device)
    sigma = sigma * math.sqrt(height * width) / config.reference_side
    images = _apply_where(images, flags[:, 0], lambda chosen: colour_jitter(chosen, config, generator))
    images = _apply_where(images, flags[:, 1], grayscale)
    blurred = torch.nonzero(flags[:, 2]).squeeze(1)
    if blurred.numel() > 0:
        images = images.index_copy(0, blurred, gaussian_blur(images[blurred], sigma[blurred]))
    return images


def flip_transform(images: Tensor, generator: torch.Generator | None) -> Tensor:
    """The official ``flip`` transform: horizontal, vertical or both, chosen per image."""
    variant = integers((images.shape[0],), 0, 2, generator, images.device).view(-1, 1, 1, 1)
    images = torch.where(variant != 1, images.flip(-1), images)
    return torch.where(variant != 0, images.flip(-2), images)


def noise_transform(images: Tensor, config: OfficialConfig, generator: torch.Generator | None) -> Tensor:
    """The official ``noise`` transform: blend with uniform noise, ``(1 - alpha) x + alpha U(0, 1)``."""
    noise = torch.rand(images.shape, generator=generator, device=images.device)
    return torch.lerp(images, noise, config.noise_alpha)


def transform_images(images: Tensor, config: OfficialConfig, generator: torch.Generator | None) -> Tensor:
    """Apply one uniformly chosen whole-image transform (``colour``, ``flip`` or ``noise``) per image."""
    kind = integers((images.shape[0],), 0, len(TRANSFORMS) - 1, generator, images.device)
    images = _apply_where(images, kind == 0, lambda chosen: colour_transform(chosen, config, generator))
    images = _apply_where(images, kind == 1, lambda chosen: flip_transform(chosen, generator))
    return _apply_where(images, kind == 2, lambda chosen: noise_transform(chosen, config, generator))


# ----------------------------------------------------------------------------------------------------------------------
# Shape masks
# ----------------------------------------------------------------------------------------------------------------------


def _polygon_mask(vertex_y: Tensor, vertex_x: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """Even-odd fill of polygons ``(n, V)`` at integer pixel positions; returns ``(n, H, W)`` bool.

    Unused trailing vertices repeat the last vertex: their zero-length edges never cross a scan line.
    """
    inside = torch.zeros((vertex_y.shape[0], rows.shape[0], cols.shape[0]), dtype=torch.bool, device=rows.device)
    py, px = rows.view(1, -1, 1), cols.view(1, 1, -1)
    count = vertex_y.shape[1]
    for i in range(count):
        y0, x0 = vertex_y[:, i].view(-1, 1, 1), vertex_x[:, i].view(-1, 1, 1)
        y1, x1 = vertex_y[:, (i + 1) % count].view(-1, 1, 1), vertex_x[:, (i + 1) % count].view(-1, 1, 1)
        straddles = (y0 > py) != (y1 > py)
        crossing_x = x0 + (x1 - x0) * (py - y0) / torch.where(y1 == y0, 1.0, y1 - y0)
        inside ^= straddles & (px < crossing_x)
    return inside


def sample_mask(
    batch: int, height: int, width: int, config: OfficialConfig, generator: torch.Generator | None, device: torch.device
) -> Tensor:
    """Draw the official union-of-shapes masks, ``(B, H, W)`` bool.

    Each image gets ``randint(1, max_shapes)`` shapes. A rectangle or ellipse has an origin uniform in
    ``[0, side - margin]`` and a size uniform in ``[min_size, side - origin]`` (the rectangle includes both edges, as
    PIL draws it; the ellipse is inscribed in that box); a polygon has 3-8 vertices uniform in
    ``[0, side - margin]``.
    """
    slots = config.max_shapes
    shape = (batch, slots)
    scale_y, scale_x = height / config.reference_side, width / config.reference_side
    margin_y = max(1, min(height - 1, round(config.origin_margin * scale_y)))
    margin_x = max(1, min(width - 1, round(config.origin_margin * scale_x)))
    min_h = max(1, round(config.min_shape_size * scale_y))
    min_w = max(1, round(config.min_shape_size * scale_x))
    count = integers((batch,), 1, slots, generator, device)
    kind = integers(shape, 0, len(SHAPES) - 1, generator, device)
    top = integers(shape, 0, height - margin_y, generator, device)
    left = integers(shape, 0, width - margin_x, generator, device)
    box_h = integers(shape, min_h, height - top, generator, device)
    box_w = integers(shape, min_w, width - left, generator, device)
    low, high = config.polygon_vertices
    vertices = integers(shape, low, high, generator, device)
    vertex_y = integers((*shape, high), 0, height - margin_y, generator, device).float()
    vertex_x = integers((*shape, high), 0, width - margin_x, generator, device).float()
    last = (vertices - 1).unsqueeze(-1)
    used = torch.arange(high, device=device) < vertices.unsqueeze(-1)
    vertex_y = torch.where(used, vertex_y, vertex_y.gather(-1, last))
    vertex_x = torch.where(used, vertex_x, vertex_x.gather(-1, last))

    rows = torch.arange(height, device=device, dtype=torch.float32)
    cols = torch.arange(width, device=device, dtype=torch.float32)
    py, px = rows.view(1, 1, -1, 1), cols.view(1, 1, 1, -1)
    top_f, left_f = top.float()[..., None, None], left.float()[..., None, None]
    box_h_f, box_w_f = box_h.float()[..., None, None], box_w.float()[..., None, None]
    rectangle = (py >= top_f) & (py <= top_f + box_h_f) & (px >= left_f) & (px <= left_f + box_w_f)
    ellipse = ((py - top_f - box_h_f / 2) / (box_h_f / 2)) ** 2 + ((px - left_f - box_w_f / 2) / (box_w_f / 2)) ** 2
    polygon = _polygon_mask(vertex_y.view(batch * slots, -1), vertex_x.view(batch * slots, -1), rows, cols)
    shapes = torch.stack([rectangle, ellipse <= 1, polygon.view(batch, slots, height, width)])
    chosen = shapes.gather(0, kind.view(1, batch, slots, 1, 1).expand(1, -1, -1, height, width)).squeeze(0)
    active = torch.arange(slots, device=device) < count.unsqueeze(1)
    return (chosen & active[..., None, None]).any(dim=1)


def apply_official(
    images: Tensor, config: OfficialConfig, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Corrupt a batch the way the official code does.

    Args:
        images: ``(B, C, H, W)`` float images in [0, 1] (already validated).
        config: Official-mode settings.
        generator: Optional generator on the images' device.

    Returns:
        ``(corrupted, labels)``: the corrupted batch in the input dtype and float32 ``(B, 1, H, W)`` labels equal to
        the pasted shape mask (1 inside the shapes even where the transform left a pixel unchanged).
    """
    batch, _, height, width = images.shape
    device = images.device
    clean = images.float()
    corrupt = torch.rand((batch,), generator=generator, device=device) < config.corrupt_prob
    mask = sample_mask(batch, height, width, config, generator, device) & corrupt.view(-1, 1, 1)
    transformed = transform_images(clean, config, generator)
    corrupted = torch.where(mask.unsqueeze(1), transformed.to(images.dtype), images)
    return corrupted, mask.unsqueeze(1).float()
