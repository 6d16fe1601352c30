"""The Lightning callback that moves an ISSTAD fit from stage 1 to stage 2 (paper Fig. 2)."""

from __future__ import annotations

import logging
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.strategies import DDPStrategy

logger = logging.getLogger(__name__)


class IsstadStageSwitch(Callback):
    """Switch to stage 2 at the start of epoch ``stage1_epochs`` (or of the first epoch after ``stage1_steps`` steps).

    Under a step budget the callback also ends the fit at the first epoch end after ``stage1_steps + stage2_steps``
    steps (the model's last validation, which learns the thresholds, has run at the end of that epoch).

    The switch freezes the encoder (``requires_grad`` off, eval mode), then rebuilds the optimiser and scheduler for
    the stage-2 parameters through ``trainer.strategy.setup_optimizers``; the model changes its loss and inputs from
    its ``stage``. The stage is stored in every checkpoint by the model, so ``ckpt_path`` resumes in the right stage
    with the right optimiser.

    Under DDP the callback turns on ``find_unused_parameters``: stage 1 leaves the pixel classifier head unused and
    stage 2 stops gradients into the encoder after the model was wrapped.
    """

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Let DDP tolerate parameters without gradients (set before the strategy wraps the model)."""
        del pl_module
        strategy = trainer.strategy
        if stage == "fit" and isinstance(strategy, DDPStrategy):
            # Lightning's public way is the strategy name "ddp_find_unused_parameters_true", chosen when the Trainer is
            # built; a callback sees the strategy only after that, and DDPStrategy has no public setter for its kwargs.
            strategy._ddp_kwargs.setdefault("find_unused_parameters", True)

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Enter stage 2 once stage 1 has run its epochs (or, with ``stage1_steps``, its optimiser steps)."""
        model: Any = pl_module  # an isstad_plugin.Isstad (not imported: it imports this module)
        done = model.stage1_complete(trainer.current_epoch, trainer.global_step)
        if model.stage == 1 and model.variant.finetune and done:
            model.enter_stage2()
            trainer.strategy.setup_optimizers(trainer)
            logger.info(
                "ISSTAD: stage 2 starts at epoch %d (encoder frozen: %s)",
                trainer.current_epoch,
                model.model.encoder_frozen,
            )

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Stop a step-budget fit once its steps are spent."""
        model: Any = pl_module
        if model.budget_spent():
            trainer.should_stop = True
