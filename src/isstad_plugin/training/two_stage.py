"""What the training callbacks may read of a two-stage model, and what DDP must allow for it.

The callbacks of this folder (checkpoints, divergence guard) serve :class:`~isstad_plugin.Isstad`, which lives a layer
above (``model/``) and imports them; they read its state through :class:`TwoStageModule`, a typed protocol, instead
of importing it. :func:`allow_unused_parameters` is the one DDP setting a two-stage fit needs.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from lightning.pytorch import Trainer
from lightning.pytorch.strategies import DDPStrategy


@runtime_checkable
class TwoStageModule(Protocol):
    """The part of a two-stage model (``Isstad``) that callbacks read.

    Attributes:
        stage: The current stage, 1 (masked autoencoder) or 2 (restoration and pixel classification).
    """

    stage: int

    def stage1_ends(self, epochs_done: int, global_step: int) -> bool:
        """Whether the epoch end after ``epochs_done`` epochs and ``global_step`` steps ends stage 1."""
        ...

    def budget_spent(self) -> bool:
        """Whether a step budget has run all its steps (``False`` for an epoch budget)."""
        ...


def allow_unused_parameters(trainer: Trainer) -> None:
    """Let DDP tolerate parameters without gradients; call before the strategy wraps the model (``setup``).

    Stage 1 leaves the pixel classifier head unused and stage 2 stops gradients into the encoder after the model was
    wrapped. Lightning's public way is the strategy name ``ddp_find_unused_parameters_true``, chosen when the Trainer
    is built; the model sees the strategy only after that, and ``DDPStrategy`` has no public setter for its kwargs.
    """
    strategy = trainer.strategy
    if isinstance(strategy, DDPStrategy):
        strategy._ddp_kwargs.setdefault("find_unused_parameters", True)
