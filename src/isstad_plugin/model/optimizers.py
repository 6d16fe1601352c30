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

import torch
from lightning.pytorch import LightningModule, Trainer
from timm.optim import param_groups_weight_decay
from torch import nn

from isstad_plugin.model.config import TrainingConfig

ADAMW_BETAS = (0.9, 0.95)
"""AdamW betas of both stages (MAE)."""


def stage1_optimizer(
    model: nn.Module,
    settings: TrainingConfig,
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
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=ADAMW_BETAS, fused=True if fuse else None)
    warmup_steps = settings.stage1_warmup_steps
    warmup = settings.stage1_warmup_epochs * steps_per_epoch if warmup_steps is None else warmup_steps
    total = max(1, total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(step, warmup, total))
    return optimizer, scheduler


def stage2_optimizer(
    model: nn.Module, settings: TrainingConfig, total_steps: int | None = None, fused: bool = False
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
        betas=ADAMW_BETAS,
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


def effective_batch_size(trainer: Trainer) -> int:
    """Images per optimiser step over all devices and accumulated batches (stage 1 scales its rate with it)."""
    batch_size = getattr(trainer.train_dataloader, "batch_size", None) or 1
    return int(batch_size * trainer.accumulate_grad_batches * trainer.world_size)


def check_own_optimizers(module: LightningModule) -> None:
    """Refuse the CLI's ``--optimizer`` / ``--lr_scheduler``, which replace ``configure_optimizers`` on the instance.

    Raises:
        ValueError: They were given; the message names the model options to use instead.
    """
    if "configure_optimizers" in module.__dict__:
        msg = (
            "--optimizer / --lr_scheduler would replace ISSTAD's two-stage optimisers: remove them and set "
            "--model.stage1_blr, --model.stage2_lr, --model.weight_decay, --model.stage2_t_max instead"
        )
        raise ValueError(msg)
