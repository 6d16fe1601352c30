"""Colour changes of the paper-mode blocks: every "colour variation" is an affine map ``v -> M v + t``.

The changes are a channel permutation, a per-channel scale, a per-channel shift, brightness-contrast around mid-grey
and grayscale (RGB only).
"""

from __future__ import annotations

import torch
from torch import Tensor

from isstad_plugin.corruption.sampling import integers, random_sign, uniform

GRAY_WEIGHTS = (0.299, 0.587, 0.114)
"""ITU-R 601 luma weights of the R, G and B channels."""
COLOUR_CHANGES_RGB = ("permute", "scale", "shift", "brightness_contrast", "grayscale")
"""Colour changes of RGB images, drawn uniformly per block."""
COLOUR_CHANGES_GRAY = ("scale", "shift", "brightness_contrast")
"""Colour changes of one-channel images and of grey RGB images (the same scale and shift in every channel)."""
CHANNEL_PERMUTATIONS = ((0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))
"""The five non-identity permutations of three channels."""


def _candidate_maps(
    shape: tuple[int, ...],
    channels: int,
    strength: tuple[float, float],
    grey: Tensor,
    generator: torch.Generator | None,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Draw, for every block, the matrix and offset of every colour change; returns ``(matrices, offsets)`` by name."""
    device = grey.device
    eye = torch.eye(channels, device=device).expand(*shape, channels, channels)

    def magnitude(extra: tuple[int, ...] = ()) -> Tensor:
        full = (*shape, *extra)
        return random_sign(full, generator, device) * uniform(full, *strength, generator, device)

    def per_channel() -> Tensor:
        value = magnitude((channels,))
        return torch.where(grey[:, None, None], value[..., :1].expand_as(value), value)

    scale = torch.diag_embed(1.0 + per_channel())
    shift = per_channel()
    contrast = 1.0 + magnitude()
    brightness = magnitude()
    zero = torch.zeros_like(shift)
    matrices = {"scale": scale, "shift": eye, "brightness_contrast": contrast[..., None, None] * eye}
    offsets = {
        "scale": zero,
        "shift": shift,
        "brightness_contrast": (0.5 * (1.0 - contrast) + brightness).unsqueeze(-1).expand(*shape, channels),
    }
    if channels == 3:
        permutations = torch.eye(3, device=device)[torch.tensor(CHANNEL_PERMUTATIONS, device=device)]
        which = integers(shape, 0, len(CHANNEL_PERMUTATIONS) - 1, generator, device)
        matrices["permute"] = permutations[which]
        matrices["grayscale"] = torch.tensor(GRAY_WEIGHTS, device=device).expand(*shape, 3, 3)
        offsets["permute"] = offsets["grayscale"] = zero
    return matrices, offsets


def sample_colour(
    colour: Tensor, channels: int, strength: tuple[float, float], grey: Tensor, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """Build per-block colour maps ``v -> M v + t`` (identity where ``colour`` is off).

    Each block draws a change uniformly from the list of its channel count; blocks of ``grey`` RGB images draw only
    from :data:`COLOUR_CHANGES_GRAY`, with the same scale and shift in every channel.

    Args:
        colour: ``(B, K)`` bool, the blocks that change colour.
        channels: Number of channels ``C`` (1 or 3).
        strength: Range of the magnitude of the changes (the sign is random).
        grey: ``(B,)`` bool, images given grey-only changes.
        generator: Optional generator on the device of ``colour``.

    Returns:
        ``(M, t)``: contiguous float32 ``(B, K, C, C)`` and ``(B, K, C)``.
    """
    shape, device = tuple(colour.shape), colour.device
    changes = COLOUR_CHANGES_RGB if channels == 3 else COLOUR_CHANGES_GRAY
    change = integers(shape, 0, len(changes) - 1, generator, device)
    if channels == 3:
        grey_change = integers(shape, 1, len(COLOUR_CHANGES_GRAY), generator, device)  # scale, shift, b/c in RGB order
        change = torch.where(grey.unsqueeze(1), grey_change, change)
    matrices, offsets = _candidate_maps(shape, channels, strength, grey, generator)
    matrix = torch.eye(channels, device=device).expand(*shape, channels, channels)
    offset = torch.zeros_like(offsets["shift"])
    for index, name in enumerate(changes):
        chosen = colour & (change == index)
        matrix = torch.where(chosen[..., None, None], matrices[name], matrix)
        offset = torch.where(chosen[..., None], offsets[name], offset)
    return matrix.contiguous(), offset.contiguous()
