"""Optimisers and learning-rate schedules of the two stages (paper 4.1.3).

Stage 1: AdamW, ``lr = blr * batch / 256``, betas (0.9, 0.95), weight decay 0.05 (not on biases and norms, as MAE),
linear warm-up then half-cycle cosine decay, stepped every iteration. Stage 2: AdamW on the trainable parameters,
cosine annealing stepped every epoch with ``T_max = 30`` (a 60-epoch period) between ``min_lr`` and ``lr``.

``fused=True`` runs AdamW as one fused kernel per step where torch has one (CPU and CUDA, floating-point
parameters): same update rule, 2.4x faster than the per-parameter loop on a CPU (``docs/speed.md``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from timm.optim import param_groups_weight_decay
from torch import nn


@dataclass(frozen=True)
class OptimizerSettings:
    """Settings of both stages.

    Attributes:
        stage1_blr: Stage-1 base learning rate; the rate used is ``blr * effective_batch / 256``.
        stage1_warmup_epochs: Linear warm-up length of stage 1, in epochs (fractional allowed).
        stage1_warmup_steps: Linear warm-up length of stage 1 in optimiser steps; wins over the epochs when set.
        stage2_lr: Stage-2 maximum learning rate.
        stage2_min_lr: Stage-2 minimum learning rate.
        stage2_t_max: Stage-2 cosine half-period in epochs.
        betas: AdamW betas of both stages.
        weight_decay: AdamW weight decay of both stages.
    """

    stage1_blr: float = 1e-3
    stage1_warmup_epochs: float = 10.0
    stage1_warmup_steps: int | None = None
    stage2_lr: float = 1e-3
    stage2_min_lr: float = 1e-9
    stage2_t_max: int = 30
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.05


def stage1_optimizer(
    model: nn.Module,
    settings: OptimizerSettings,
    effective_batch: int,
    steps_per_epoch: int,
    total_steps: int,
    fused: bool = False,
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW with MAE's linear scaling, warm-up and half-cycle cosine decay to 0, stepped per iteration.

    Args:
        model: The network; parameters with ``requires_grad=False`` are skipped.
        settings: Optimiser settings.
        effective_batch: Images per optimiser step over all devices.
        steps_per_epoch: Optimiser steps per epoch (to convert ``stage1_warmup_epochs``).
        total_steps: Stage-1 length in optimiser steps.
        fused: Use torch's fused AdamW where the parameters allow it (:func:`can_fuse`).

    Returns:
        ``(optimizer, scheduler)``.
    """
    lr = settings.stage1_blr * effective_batch / 256
    groups = param_groups_weight_decay(model, settings.weight_decay)
    fuse = fused and can_fuse(model.parameters())
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=settings.betas, fused=True if fuse else None)
    if settings.stage1_warmup_steps is not None:
        warmup: float = settings.stage1_warmup_steps
    else:
        warmup = settings.stage1_warmup_epochs * steps_per_epoch
    total = max(1, total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(step, warmup, total))
    return optimizer, scheduler


def stage2_optimizer(
    model: nn.Module,
    settings: OptimizerSettings,
    total_steps: int | None = None,
    fused: bool = False,
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW over the trainable parameters with cosine annealing.

    Without ``total_steps`` the schedule is the paper's: ``T_max = stage2_t_max`` epochs, stepped per epoch. With it
    (a step budget), one half-cycle over ``total_steps`` optimiser steps, stepped per step. ``fused`` uses torch's
    fused AdamW where the parameters allow it (:func:`can_fuse`).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params,
        lr=settings.stage2_lr,
        betas=settings.betas,
        weight_decay=settings.weight_decay,
        fused=True if fused and can_fuse(params) else None,
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=total_steps or settings.stage2_t_max, eta_min=settings.stage2_min_lr
    )
    return optimizer, scheduler


def can_fuse(params: Iterable[torch.Tensor]) -> bool:
    """Whether torch's fused AdamW takes these parameters: floating point, all on the CPU or all on one CUDA device."""
    devices = set()
    for param in params:
        if not param.is_floating_point():
            return False
        devices.add(param.device)
    return len(devices) == 1 and next(iter(devices)).type in ("cpu", "cuda")


def warmup_cosine(step: float, warmup_steps: float, total_steps: float) -> float:
    """MAE's learning-rate factor: linear warm-up to 1, then half-cycle cosine down to 0 at ``total_steps``."""
    if step < warmup_steps:
        return step / warmup_steps
    progress = (step - warmup_steps) / max(1.0, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
