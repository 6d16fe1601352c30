"""Deprecated: the stage switch is part of :class:`~isstad_plugin.Isstad` (its ``on_train_epoch_start``).

``IsstadStageSwitch`` was the Lightning callback that moved a fit from stage 1 to stage 2. Since the schedule moved
into :class:`~isstad_plugin.model.schedule.StageSchedule` and the switch into the model's own hooks (as anomalib's
DSR switches phase), the callback does nothing; it stays importable so that configs and code that name it still run.
"""

from __future__ import annotations

import warnings

from lightning.pytorch import Callback


class IsstadStageSwitch(Callback):
    """Deprecated no-op (see the module docstring); remove it from ``trainer.callbacks``."""

    def __init__(self) -> None:
        warnings.warn(
            "IsstadStageSwitch is deprecated and does nothing: Isstad switches stage in its own hooks; remove it",
            DeprecationWarning,
            stacklevel=2,
        )
