"""Catch a diverging fit where it starts: the stage and the option to change, before anything non-finite is saved.

Three checks (all raise :class:`TrainingDivergedError`, a :class:`FloatingPointError`):

* per training step, the loss (``Isstad.training_step``) and, after the optimiser step, every trainable parameter
  (:class:`IsstadDivergenceGuard`): weights that became inf/NaN stop the fit in the stage whose step produced them;
* in stage 2, a non-finite loss whose cause is the frozen encoder (trained in stage 1) blames stage 1;
* once per validation, the statistics of the post-processor (:class:`~isstad_plugin.IsstadPostProcessor`):
  non-finite thresholds or normalisation bounds are never stored.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from isstad_plugin.training.two_stage import TwoStageModule


class TrainingDivergedError(FloatingPointError):
    """Training produced inf/NaN; the message names the stage and the option to change."""


def advice(stage: int) -> str:
    """What to do when ``stage`` diverged: lower its learning rate, or train in float32."""
    option = "--model.stage1_blr" if stage == 1 else "--model.stage2_lr"
    return f"lower {option} or train in float32 (--trainer.plugins.precision 32-true)"


class IsstadDivergenceGuard(Callback):
    """After every optimiser step, stop the fit if a trainable parameter became inf/NaN.

    The check costs one fused norm over the trainable parameters per step. The checkpoints written before (the last
    finished epoch) are kept: the exception stops the fit before anything else is saved.
    """

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Check the parameters the optimiser just updated."""
        del outputs, batch
        named = [(name, p) for name, p in pl_module.named_parameters() if p.requires_grad]
        if not named:
            return
        norms = torch._foreach_norm([p.detach() for _, p in named])
        finite = torch.isfinite(torch.stack([n.float() for n in norms]))
        if bool(finite.all()):
            return
        bad = [name for (name, _), ok in zip(named, finite.tolist(), strict=True) if not ok]
        stage = pl_module.stage if isinstance(pl_module, TwoStageModule) else 1
        msg = (
            f"training diverged in stage {stage} at epoch {trainer.current_epoch}, batch {batch_idx}: {len(bad)} "
            f"parameter tensor(s) became inf/NaN after the optimiser step (first: {bad[0]}); the checkpoints "
            f"already written are kept: {advice(stage)}"
        )
        raise TrainingDivergedError(msg)


def non_finite_loss_error(
    loss: torch.Tensor, epoch: int, stage: int, batch: object, encoder_broken: bool
) -> TrainingDivergedError:
    """The one-line error of a non-finite training loss; a broken stage-1 encoder is blamed on stage 1."""
    culprit = 1 if encoder_broken else stage
    cause = " (the encoder trained in stage 1 gives inf/NaN features: stage 1 diverged)" if culprit != stage else ""
    msg = (
        f"non-finite training loss ({loss.item()}) at epoch {epoch}, stage {stage}, batch {batch}{cause}: the "
        f"weights were not updated and the checkpoints already written are kept; {advice(culprit)}"
    )
    return TrainingDivergedError(msg)


def check_validation_statistics(values: dict[str, torch.Tensor], stage: int, epoch: int) -> None:
    """Refuse non-finite thresholds or normalisation bounds computed on validation.

    Args:
        values: Statistic name -> value, only those computed in this validation.
        stage: The model's stage (the one that produced the scores).
        epoch: The current epoch, for the message.

    Raises:
        TrainingDivergedError: A value is inf/NaN (named in the message).
    """
    bad = [name for name, value in values.items() if not bool(torch.isfinite(value).all())]
    if bad:
        msg = (
            f"validation at epoch {epoch} gave non-finite {', '.join(bad)}: the stage-{stage} model produces inf/NaN "
            f"anomaly scores, so nothing was saved: {advice(stage)}"
        )
        raise TrainingDivergedError(msg)
