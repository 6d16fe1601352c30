"""Random draws shared by the block and soft-region sampling: every draw takes an optional generator and a device."""

from __future__ import annotations

import torch
from torch import Tensor


def uniform(
    shape: tuple[int, ...], low: float, high: float, generator: torch.Generator | None, device: torch.device
) -> Tensor:
    """Draw float32 values uniformly from ``[low, high)``."""
    return low + (high - low) * torch.rand(shape, generator=generator, device=device)


def integers(
    shape: tuple[int, ...],
    low: Tensor | int,
    high: Tensor | int,
    generator: torch.Generator | None,
    device: torch.device,
) -> Tensor:
    """Draw int64 values uniformly from ``[low, high]`` (inclusive; bounds may be broadcastable tensors).

    A ``high`` below ``low`` is raised to ``low``.
    """
    low_t, high_t = torch.as_tensor(low, device=device), torch.as_tensor(high, device=device)
    span = torch.maximum(high_t, low_t) - low_t + 1
    u = torch.rand(shape, generator=generator, device=device)
    return low_t + torch.minimum((u * span).long(), span - 1)


def random_sign(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    """Draw float32 values in ``{-1, +1}`` with equal probability."""
    return torch.where(torch.rand(shape, generator=generator, device=device) < 0.5, -1.0, 1.0)


def log_uniform_integers(
    shape: tuple[int, ...],
    low: Tensor | int,
    high: Tensor | int,
    generator: torch.Generator | None,
    device: torch.device,
) -> Tensor:
    """Draw int64 values log-uniformly from ``[low, high]`` (inclusive, ``low >= 1``): mostly small, sometimes ``high``.

    A ``high`` below ``low`` is raised to ``low``.
    """
    low_t = torch.as_tensor(low, device=device).float()
    high_t = torch.maximum(torch.as_tensor(high, device=device).float(), low_t)
    log_value = uniform(shape, 0.0, 1.0, generator, device) * torch.log((high_t + 1) / low_t) + torch.log(low_t)
    return torch.minimum(torch.exp(log_value).floor(), high_t).long()
