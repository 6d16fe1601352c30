"""The two-stage schedule, in one place: how long each stage trains, which stage an epoch is in, what Lightning needs.

Stages are measured in epochs (the paper's 120 + 200: ``stage1_epochs`` and ``trainer.max_epochs``) or in optimiser
steps (a step budget: ``stage1_steps`` + ``stage2_steps``, which ends the fit itself). :class:`StageSchedule` resolves
:class:`~isstad_plugin.model.config.TrainingConfig` against the variant (one-stage variants train one stage) and a
``stage1_checkpoint`` (which skips stage 1); it answers when stage 1 has run its length
(:meth:`~StageSchedule.stage1_ends`), whether a step budget is spent, which trainer settings let it run
(:meth:`~StageSchedule.trainer_arguments`, :meth:`~StageSchedule.check_trainer`) and which model options give a
length (:meth:`~StageSchedule.model_options`). :class:`~isstad_plugin.Isstad` switches stage in its own
``on_train_epoch_start`` from it (as anomalib's two-phase DSR does); the ``isstad`` commands and the callbacks of
:mod:`isstad_plugin.training` ask the model, never their own copy of the rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from lightning.pytorch import Trainer

from isstad_plugin.model.config import TrainingConfig
from isstad_plugin.model.options import IsstadConfig
from isstad_plugin.model.presets import PAPER_STAGE1_EPOCHS
from isstad_plugin.model.variants import Variant

DEFAULT_MAX_EPOCHS = 1000
"""Lightning's ``max_epochs`` when none is given (a step budget stops the fit long before)."""
STEP_BUDGET_WARMUP_FRACTION = 0.05
"""Stage-1 warm-up share of a step budget when ``stage1_warmup_steps`` is unset (MAE: 40 of 800 epochs)."""


Unit = Literal["epochs", "steps"]


@dataclass(frozen=True)
class StageSchedule:
    """The resolved schedule of both stages.

    Attributes:
        stage1_epochs: Stage-1 epochs of an epoch budget (0 under a step budget, without stage 1 or pre-training).
        stage1_steps: Stage-1 optimiser steps of a step budget (0 without one).
        stage2_steps: Stage-2 optimiser steps of a step budget (0 without one).
        warmup_steps: Stage-1 warm-up in steps, or ``None`` to use ``stage1_warmup_epochs``.
        two_stages: Whether the variant trains stage 2 after stage 1 (``False``: one stage, all of the fit).
        pretrained: Whether stage 1 pre-trains the encoder, which stage 2 then keeps frozen (paper 3.3.2).
    """

    stage1_epochs: int
    stage1_steps: int
    stage2_steps: int
    warmup_steps: int | None
    two_stages: bool = True
    pretrained: bool = True

    @classmethod
    def resolve(cls, config: IsstadConfig) -> StageSchedule:
        """The schedule of ``config``'s training options for its variant; one-line errors for contradicting lengths."""
        training, variant = config.training, config.network.variant_spec
        stage1_checkpoint = config.runtime.stage1_checkpoint
        stage1_steps, stage2_steps = _step_budget(training, variant)
        _check_stage1_steps(training.stage1_steps, variant, stage1_checkpoint)
        epochs = 0 if stage1_steps + stage2_steps else training.stage1_epochs
        warmup = training.stage1_warmup_steps
        if warmup is None and stage1_steps:
            warmup = max(1, round(STEP_BUDGET_WARMUP_FRACTION * stage1_steps))
        stage1_epochs = _stage1_epochs(variant, epochs, stage1_checkpoint)
        return cls(stage1_epochs, stage1_steps, stage2_steps, warmup, variant.finetune, variant.pretrain)

    @property
    def steps(self) -> int:
        """Optimiser steps of the whole fit under a step budget (0: the fit's length is in epochs)."""
        return self.stage1_steps + self.stage2_steps

    @property
    def first_stage(self) -> int:
        """The stage of the first epoch: 2 when stage 1 is skipped (``stage1_checkpoint``, Models without stage 1)."""
        return 1 if (self.stage1_epochs > 0 or self.stage1_steps > 0 or not self.two_stages) else 2

    def stage1_ends(self, stage: int, epochs_done: int, global_step: int) -> bool:
        """Whether stage 1, in ``stage`` after ``epochs_done`` epochs and ``global_step`` steps, has run its length.

        At an epoch end ``stage1.ckpt`` is then due; at the next epoch's start stage 2 begins (a step budget switches
        between epochs, at the first boundary after stage 1's steps).
        """
        done = global_step >= self.stage1_steps if self.steps else epochs_done >= self.stage1_epochs
        return stage == 1 and self.two_stages and done

    def spent(self, global_step: int) -> bool:
        """Whether a step budget has run all its steps (always ``False`` for an epoch budget)."""
        return bool(self.steps) and global_step >= self.steps

    def stage1_schedule_steps(self, max_epochs: int | None, stepping_batches: float) -> tuple[int, int]:
        """``(steps per epoch, stage-1 steps)`` of stage 1's per-step learning-rate schedule.

        Args:
            max_epochs: The trainer's ``max_epochs`` (an epoch budget).
            stepping_batches: The trainer's ``estimated_stepping_batches`` over the whole fit.
        """
        if self.steps:
            return 1, self.stage1_steps
        epochs = max_epochs if max_epochs is not None and max_epochs > 0 else 1
        per_epoch = max(1, math.ceil(stepping_batches / epochs))
        return per_epoch, per_epoch * (self.stage1_epochs if self.two_stages else epochs)

    def lengths(self, max_epochs: int | None) -> tuple[int, int, Unit]:
        """``(stage1, stage2, unit)``: the steps of a step budget, or the epochs (stage 2: ``max_epochs - stage 1``)."""
        if self.steps:
            return self.stage1_steps, self.stage2_steps, "steps"
        total = max_epochs if max_epochs is not None and max_epochs > 0 else self.stage1_epochs + 1
        return self.stage1_epochs, total - self.stage1_epochs, "epochs"

    @staticmethod
    def trainer_arguments(stage1: int, stage2: int, unit: Unit) -> dict[str, Any]:
        """What Lightning must be told for a fit of ``stage1 + stage2`` epochs or steps (thresholds learnt at the end).

        A step budget ends the fit itself (the model validates only once its steps are spent); an epoch budget runs
        ``max_epochs`` epochs and validates in the last one.
        """
        if unit == "steps":
            return {"max_epochs": -1, "check_val_every_n_epoch": 1}
        total = stage1 + stage2
        return {"max_epochs": total, "check_val_every_n_epoch": total}

    @staticmethod
    def model_options(
        stage1: int, stage2: int, unit: Unit, pretrain: bool = True, finetune: bool = True
    ) -> dict[str, int | None]:
        """The ``Isstad`` options that give a fit these lengths (the other unit's options unset).

        A variant with one stage (``pretrain`` or ``finetune`` off) trains it for ``stage1 + stage2``, so every
        variant of a benchmark gets the same budget.
        """
        options: dict[str, int | None] = {"stage1_epochs": None, "stage1_steps": None, "stage2_steps": None}
        if pretrain and finetune:
            options |= (
                {"stage1_steps": stage1, "stage2_steps": stage2} if unit == "steps" else {"stage1_epochs": stage1}
            )
        elif unit == "steps":  # one stage trains for both lengths (in epochs: for all of trainer.max_epochs)
            options["stage1_steps" if pretrain else "stage2_steps"] = stage1 + stage2
        return options

    def check_trainer(self, trainer: Trainer) -> None:
        """Refuse trainer settings under which this schedule cannot run, in one line naming the option."""
        if self.steps:
            self._check_step_trainer(trainer)
            return
        max_epochs = trainer.max_epochs
        if self.two_stages and max_epochs is not None and 0 <= max_epochs <= self.stage1_epochs:
            msg = (
                f"trainer.max_epochs ({max_epochs}) must exceed model.stage1_epochs ({self.stage1_epochs}): stage 2 "
                f"runs for max_epochs - stage1_epochs epochs (paper: 120 + 200, i.e. --trainer.max_epochs 320)"
            )
            raise ValueError(msg)

    def _check_step_trainer(self, trainer: Trainer) -> None:
        if trainer.check_val_every_n_epoch != 1:
            msg = (
                "a step budget (model.stage1_steps/stage2_steps) learns thresholds at the end of its last epoch: set "
                f"--trainer.check_val_every_n_epoch 1 (got {trainer.check_val_every_n_epoch})"
            )
            raise ValueError(msg)
        max_epochs, max_steps = trainer.max_epochs, trainer.max_steps
        if (max_epochs is not None and 0 <= max_epochs < DEFAULT_MAX_EPOCHS) or 0 <= max_steps < self.steps:
            msg = (
                f"a step budget ends the fit itself after {self.steps} steps: set --trainer.max_epochs -1 and "
                f"leave --trainer.max_steps unset (got max_epochs {max_epochs}, max_steps {max_steps})"
            )
            raise ValueError(msg)


def _stage1_epochs(variant: Variant, stage1_epochs: int | None, stage1_checkpoint: str | None) -> int:
    if stage1_checkpoint and not variant.pretrain:
        msg = (
            f"variant {variant.name} has no stage-1 pre-training: drop stage1_checkpoint or pick a pre-trained variant"
        )
        raise ValueError(msg)
    if stage1_checkpoint and not variant.finetune:
        msg = f"variant {variant.name} is stage 1 alone: stage1_checkpoint would leave nothing to train"
        raise ValueError(msg)
    if not variant.finetune:
        return 0  # Model I is stage 1 alone: it trains for all of trainer.max_epochs
    if not variant.pretrain:
        if stage1_epochs:
            msg = f"variant {variant.name} has no stage-1 pre-training: stage1_epochs must be 0 or unset"
            raise ValueError(msg)
        return 0
    if stage1_checkpoint:
        if stage1_epochs:
            msg = "stage1_checkpoint skips stage 1: leave stage1_epochs unset (or 0)"
            raise ValueError(msg)
        return 0
    return PAPER_STAGE1_EPOCHS if stage1_epochs is None else stage1_epochs


def _check_stage1_steps(stage1_steps: int | None, variant: Variant, stage1_checkpoint: str | None) -> None:
    """``stage1_steps`` 0 means "stage 1 comes from ``stage1_checkpoint``"; any other length contradicts it."""
    if stage1_steps is None or not variant.pretrain:
        return
    if stage1_checkpoint and stage1_steps:
        msg = (
            f"stage1_checkpoint skips stage 1 but stage1_steps is {stage1_steps}: set --model.stage1_steps 0 "
            "(stage 2 then runs stage2_steps steps from step 0)"
        )
        raise ValueError(msg)
    if not stage1_checkpoint and not stage1_steps:
        msg = "stage1_steps 0 skips stage 1: pass --model.stage1_checkpoint (a finished stage 1) or a positive length"
        raise ValueError(msg)


def _step_budget(training: TrainingConfig, variant: Variant) -> tuple[int, int]:
    """``(stage1_steps, stage2_steps)`` of a step budget, ``(0, 0)`` without one."""
    stage1_steps, stage2_steps = training.stage1_steps, training.stage2_steps
    if stage1_steps is None and stage2_steps is None:
        return 0, 0
    if training.stage1_epochs:
        msg = (
            "stage1_steps/stage2_steps and stage1_epochs both set: give the budget in steps or in epochs (for epochs "
            "with a step config add --model.stage1_steps null --model.stage2_steps null)"
        )
        raise ValueError(msg)
    for name, value, needed in (
        ("stage1_steps", stage1_steps, variant.pretrain),
        ("stage2_steps", stage2_steps, variant.finetune),
    ):
        if needed and value is None:
            msg = f"a step budget for variant {variant.name} needs {name}: set both stage lengths"
            raise ValueError(msg)
        if not needed and value is not None:
            msg = f"variant {variant.name} has no {'stage 1' if name == 'stage1_steps' else 'stage 2'}: unset {name}"
            raise ValueError(msg)
    return stage1_steps or 0, stage2_steps or 0
