"""Patch and token utilities shared by the encoder, decoder and heads (as in MAE's ``models_mae.py``).

Every function here is pure: tensors in, tensors out. Images are ``(B, C, H, W)``; token sequences are
``(B, N, D)`` with ``N = (H / p) * (W / p)`` patches in row-major order.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images into flattened non-overlapping patches.

    Args:
        images: ``(B, C, H, W)`` images; ``H`` and ``W`` must be multiples of ``patch_size``.
        patch_size: Side ``p`` of a square patch in pixels.

    Returns:
        ``(B, N, p * p * C)`` patches, pixels of one patch in ``(row, column, channel)`` order as in MAE.
    """
    batch, channels, height, width = images.shape
    rows, cols = height // patch_size, width // patch_size
    x = images.reshape(batch, channels, rows, patch_size, cols, patch_size)
    x = torch.einsum("nchpwq->nhwpqc", x)
    return x.reshape(batch, rows * cols, patch_size * patch_size * channels)


def unpatchify(patches: torch.Tensor, patch_size: int, grid_size: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`patchify`.

    Args:
        patches: ``(B, N, p * p * C)`` flattened patches.
        patch_size: Side ``p`` of a square patch in pixels.
        grid_size: ``(rows, cols)`` of the patch grid, ``rows * cols == N``.

    Returns:
        ``(B, C, rows * p, cols * p)`` images.
    """
    batch = patches.shape[0]
    rows, cols = grid_size
    channels = patches.shape[-1] // (patch_size * patch_size)
    x = patches.reshape(batch, rows, cols, patch_size, patch_size, channels)
    x = torch.einsum("nhwpqc->nchpwq", x)
    return x.reshape(batch, channels, rows * patch_size, cols * patch_size)


def tent_window(patch_size: int) -> torch.Tensor:
    """The ``(2p, 2p)`` bilinear tent of :func:`overlap_unpatchify`: its copies at stride ``p`` sum to 1."""
    ramp = 1 - (torch.arange(2 * patch_size) + 0.5 - patch_size).abs() / patch_size
    return ramp[:, None] * ramp[None, :]


def overlap_unpatchify(windows: torch.Tensor, patch_size: int, grid_size: tuple[int, int]) -> torch.Tensor:
    """Blend one ``2p x 2p`` window per patch, centred on it, into an image: a learned upsampling of the tokens.

    Each window is weighted by :func:`tent_window` and added to its neighbours' (every pixel gets four windows), then
    divided by the sum of the weights, so windows that are constant give the bilinear interpolation of their values:
    the result is not constant per patch. Equivalent to a transposed convolution (kernel ``2p``, stride ``p``) whose
    kernel carries the tent; built from reshapes, pads and sums only, so it exports to ONNX.

    Args:
        windows: ``(B, N, 2p * 2p * C)`` windows, pixels in ``(row, column, channel)`` order as in :func:`patchify`.
        patch_size: Side ``p`` of a square patch in pixels; even.
        grid_size: ``(rows, cols)`` of the patch grid, ``rows * cols == N``.

    Returns:
        ``(B, C, rows * p, cols * p)`` images.
    """
    tent = tent_window(patch_size).to(windows)
    blended = _add_windows(windows, tent[:, :, None], patch_size, grid_size)
    weights = _add_windows(windows.new_ones(1, windows.shape[1], tent.numel()), tent[:, :, None], patch_size, grid_size)
    return blended / weights


def _add_windows(
    windows: torch.Tensor, tent: torch.Tensor, patch_size: int, grid_size: tuple[int, int]
) -> torch.Tensor:
    """The tent-weighted sum of the windows: each of a window's four ``p x p`` quarters lands on its own grid cell."""
    p, (rows, cols) = patch_size, grid_size
    batch = windows.shape[0]
    x = windows.reshape(batch, rows, cols, 2 * p, 2 * p, -1) * tent
    total = torch.zeros(())
    for top in (0, 1):
        for left in (0, 1):
            quarter = x[:, :, :, top * p : (top + 1) * p, left * p : (left + 1) * p]
            image = unpatchify(quarter.flatten(3), p, grid_size)
            total = total + torch.nn.functional.pad(image, (left * p, (1 - left) * p, top * p, (1 - top) * p))
    half = p // 2  # a window starts half a patch before its patch
    return total[..., half : half + rows * p, half : half + cols * p]


def random_masking(
    tokens: torch.Tensor,
    mask_ratio: float,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep a random subset of tokens per sample, by argsort of uniform noise (MAE).

    Args:
        tokens: ``(B, N, D)`` patch tokens.
        mask_ratio: Fraction of tokens to drop, in ``[0, 1)``.
        generator: Optional random generator for reproducible masks.
        noise: Optional ``(B, N)`` scores replacing the uniform noise; the lowest ones are kept.

    Returns:
        ``(kept, mask, ids_restore)``: ``kept`` is ``(B, round((1 - ratio) * N), D)`` in random order, ``mask`` is
        ``(B, N)`` with 1 for dropped tokens and 0 for kept ones (in the original order), and ``ids_restore``
        ``(B, N)`` puts a sequence in shuffled order back into the original order.
    """
    batch, length, dim = tokens.shape
    len_keep = round(length * (1 - mask_ratio))
    if noise is None:
        noise = torch.rand(batch, length, device=tokens.device, generator=generator)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :len_keep]
    kept = torch.gather(tokens, 1, ids_keep.unsqueeze(-1).expand(-1, -1, dim))
    mask = torch.ones(batch, length, device=tokens.device)
    mask[:, :len_keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return kept, mask, ids_restore


def noise_mask(noise: torch.Tensor, mask_ratio: float) -> torch.Tensor:
    """The ``(B, N)`` mask (1 = masked) that :func:`random_masking` draws from ``noise`` and ``mask_ratio``."""
    len_keep = round(noise.shape[1] * (1 - mask_ratio))
    ranks = torch.argsort(torch.argsort(noise, dim=1), dim=1)
    return (ranks >= len_keep).to(noise.dtype)


def complementary_noise(
    batch: int, length: int, mask_ratio: float, generator: torch.Generator | None = None
) -> list[torch.Tensor]:
    """Noise for :func:`random_masking` that makes passes whose visible sets partition the patches.

    A random order of the patches is cut into ``ceil(N / keep)`` groups of ``keep = round((1 - ratio) * N)``; pass
    ``k`` keeps group ``k`` visible, so every patch is masked in all passes but one.

    Args:
        batch: Number of samples.
        length: Number of patches ``N``.
        mask_ratio: Fraction of patches masked per pass, in ``(0, 1)``.
        generator: Optional random generator (on the tokens' device).

    Returns:
        One ``(B, N)`` noise tensor per pass.
    """
    keep = max(1, round(length * (1 - mask_ratio)))
    device = generator.device if generator is not None else None
    rank = torch.argsort(torch.argsort(torch.rand(batch, length, generator=generator, device=device), dim=1), dim=1)
    return [torch.remainder(rank - k * keep, length).float() for k in range(math.ceil(length / keep))]


def restore_order(kept: torch.Tensor, ids_restore: torch.Tensor, mask_token: torch.Tensor) -> torch.Tensor:
    """Append mask tokens to the kept tokens and put every token back in its original place.

    Args:
        kept: ``(B, K, D)`` kept tokens in shuffled order (no class token).
        ids_restore: ``(B, N)`` from :func:`random_masking`.
        mask_token: ``(1, 1, D)`` learned token standing for a dropped patch.

    Returns:
        ``(B, N, D)`` tokens in the original patch order.
    """
    batch, kept_len, dim = kept.shape
    fill = mask_token.expand(batch, ids_restore.shape[1] - kept_len, dim).to(kept.dtype)
    tokens = torch.cat([kept, fill], dim=1)
    return torch.gather(tokens, 1, ids_restore.unsqueeze(-1).expand(-1, -1, dim))


def sincos_pos_embed(dim: int, grid_size: tuple[int, int], cls_token: bool = True) -> torch.Tensor:
    """Fixed 2-D sine-cosine positional embedding (MAE's ``get_2d_sincos_pos_embed``), for any grid shape.

    Args:
        dim: Embedding width; must be a multiple of 4.
        grid_size: ``(rows, cols)`` of the patch grid.
        cls_token: Prepend an all-zero row for the class token.

    Returns:
        ``(1, rows * cols [+ 1], dim)`` float32 tensor.
    """
    rows, cols = grid_size
    grid_h = np.arange(rows, dtype=np.float64)
    grid_w = np.arange(cols, dtype=np.float64)
    grid = np.meshgrid(grid_w, grid_h)  # w first, as in MAE
    emb_h = _sincos_1d(dim // 2, grid[0].reshape(-1))
    emb_w = _sincos_1d(dim // 2, grid[1].reshape(-1))
    emb = np.concatenate([emb_h, emb_w], axis=1)
    if cls_token:
        emb = np.concatenate([np.zeros([1, dim]), emb], axis=0)
    return torch.from_numpy(emb).float().unsqueeze(0)


def _sincos_1d(dim: int, positions: np.ndarray) -> np.ndarray:
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    out = np.einsum("m,d->md", positions, omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)
