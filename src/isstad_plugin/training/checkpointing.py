"""Checkpoints that do not depend on validation, and a readable error for a damaged checkpoint file.

anomalib writes ``weights/lightning/model.ckpt`` after validation, and the shipped configs validate once, at the end:
without :class:`IsstadCheckpoints` a fit interrupted at epoch 319 of 320 would leave no checkpoint at all. The
callback (added by :class:`~isstad_plugin.Isstad` to every fit) writes, next to ``model.ckpt``:

* ``last.ckpt``: the end of the last finished epoch (every ``every_n_epochs`` epochs and/or ``every_n_minutes``
  minutes), written to a temporary file and renamed, so an interruption never leaves a half-written file; resume from
  it with ``--ckpt_path``;
* ``stage1.ckpt``: the end of stage 1, usable as ``--model.stage1_checkpoint``.

It also makes the last epoch validate when ``check_val_every_n_epoch`` would skip it, so the thresholds are always
learnt on the trained model, and warns when they could not be learnt.
"""

from __future__ import annotations

import logging
import time
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

logger = logging.getLogger(__name__)

LAST = "last.ckpt"
STAGE1 = "stage1.ckpt"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read; the message names the file and what to do."""


class IsstadCheckpoints(Callback):
    """Write ``last.ckpt`` at epoch ends and ``stage1.ckpt`` at the end of stage 1, atomically.

    :class:`~isstad_plugin.Isstad` adds one with the defaults to every fit; to change them, put one in the trainer's
    callbacks (the model then adds none)::

        trainer:
          callbacks:
            - class_path: isstad_plugin.IsstadCheckpoints
              init_args: {every_n_epochs: null, every_n_minutes: 30}

    Args:
        dirpath: Folder of the files; ``None``: ``<default_root_dir>/weights/lightning`` (next to anomalib's
            ``model.ckpt``).
        every_n_epochs: Write ``last.ckpt`` after every n-th epoch; ``None`` for none.
        every_n_minutes: Also write it at the first epoch end at least this many minutes after the previous write.
        stage1: Write ``stage1.ckpt`` at the end of stage 1.
        validate_last_epoch: Validate in the last epoch even when ``check_val_every_n_epoch`` does not divide
            ``max_epochs``, so that the thresholds are learnt.

    Raises:
        ValueError: ``every_n_epochs`` or ``every_n_minutes`` out of range.
    """

    def __init__(
        self,
        dirpath: str | Path | None = None,
        every_n_epochs: int | None = 1,
        every_n_minutes: float | None = None,
        stage1: bool = True,
        validate_last_epoch: bool = True,
    ) -> None:
        if every_n_epochs is not None and every_n_epochs < 1:
            msg = f"IsstadCheckpoints every_n_epochs must be >= 1 or null, got {every_n_epochs}"
            raise ValueError(msg)
        if every_n_minutes is not None and not every_n_minutes > 0:
            msg = f"IsstadCheckpoints every_n_minutes must be > 0 or null, got {every_n_minutes}"
            raise ValueError(msg)
        self.dirpath = Path(dirpath) if dirpath is not None else None
        self.every_n_epochs = every_n_epochs
        self.every_n_minutes = every_n_minutes
        self.stage1 = stage1
        self.validate_last_epoch = validate_last_epoch
        self._last_write = time.monotonic()

    def folder(self, trainer: Trainer) -> Path:
        """Where the files go."""
        return self.dirpath or Path(trainer.default_root_dir) / "weights" / "lightning"

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Start the clock of ``every_n_minutes``."""
        del trainer, pl_module
        self._last_write = time.monotonic()

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Make the last epoch validate when ``check_val_every_n_epoch`` would skip it (thresholds are learnt there)."""
        del pl_module
        every = trainer.check_val_every_n_epoch
        last = trainer.max_epochs is not None and trainer.current_epoch + 1 == trainer.max_epochs
        if self.validate_last_epoch and last and every is not None and trainer.max_epochs % every:  # type: ignore[operator]
            logger.info(
                "ISSTAD: check_val_every_n_epoch %d does not divide max_epochs %d: validating in the last epoch to "
                "learn the thresholds",
                every,
                trainer.max_epochs,
            )
            trainer.check_val_every_n_epoch = 1

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Write ``stage1.ckpt`` at the end of stage 1 and ``last.ckpt`` when due."""
        if trainer.sanity_checking or getattr(trainer, "fast_dev_run", False):
            return
        model: Any = pl_module
        epoch = trainer.current_epoch
        stage1_ends = (
            self.stage1
            and getattr(model, "stage", None) == 1
            and model.variant.finetune
            and model.stage1_complete(epoch + 1, trainer.global_step)
        )
        if stage1_ends:
            self._write(trainer, STAGE1)
        if self._due(trainer, epoch, model):
            self._write(trainer, LAST)
            self._last_write = time.monotonic()

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Warn when the fit ends without learnt thresholds (F1 and labels would be meaningless)."""
        post_processor = getattr(pl_module, "post_processor", None)
        threshold = getattr(post_processor, "_image_threshold", None)
        enabled = getattr(post_processor, "enable_thresholding", False)
        if enabled and isinstance(threshold, torch.Tensor) and torch.isnan(threshold).all():
            logger.warning(
                "ISSTAD: the fit ended without a validation of the trained model (max_epochs %s, "
                "check_val_every_n_epoch %s, limit_val_batches %s): thresholds were not learnt, so F1 scores and "
                "predicted labels mean nothing; validate before testing (e.g. Engine.validate)",
                trainer.max_epochs,
                trainer.check_val_every_n_epoch,
                trainer.limit_val_batches,
            )

    def _due(self, trainer: Trainer, epoch: int, model: Any) -> bool:
        if trainer.max_epochs is not None and 0 < trainer.max_epochs <= epoch + 1:
            return True
        if getattr(model, "step_budget", 0) and model.budget_spent():
            return True
        if self.every_n_epochs is not None and (epoch + 1) % self.every_n_epochs == 0:
            return True
        minutes = self.every_n_minutes
        return minutes is not None and time.monotonic() - self._last_write >= minutes * 60

    def _write(self, trainer: Trainer, name: str) -> None:
        """``trainer.save_checkpoint`` to a temporary file, then an atomic rename (on the main process)."""
        target = self.folder(trainer) / name
        partial = target.with_name(f".{name}.partial")
        if trainer.is_global_zero:
            target.parent.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(partial)  # all ranks take part; rank 0 writes, then a barrier
        if trainer.is_global_zero:
            partial.replace(target)
            logger.debug("ISSTAD: wrote %s", target)


def check_checkpoint_file(path: str | Path, option: str = "--ckpt_path") -> Path:
    """Refuse a missing, truncated or non-checkpoint file with one line naming it, before torch reads it.

    A Lightning checkpoint is a zip archive (``torch.save``); a truncated copy has lost its central directory, which
    :mod:`zipfile` finds without reading the tensors.

    Args:
        path: The ``.ckpt`` file.
        option: How to name it in the message.

    Returns:
        The path.

    Raises:
        CheckpointError: The file is missing, empty, truncated or not a torch checkpoint.
    """
    file = Path(path).expanduser()
    advice = (
        "use another checkpoint of the run (weights/lightning/last.ckpt, stage1.ckpt or model.ckpt) or copy it again"
    )
    if not file.is_file():
        msg = f"{option} {file}: file not found: check the path ({advice})"
        raise CheckpointError(msg)
    size = file.stat().st_size
    if size == 0:
        msg = f"{option} {file} is empty (0 bytes): {advice}"
        raise CheckpointError(msg)
    try:
        with zipfile.ZipFile(file) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as error:
        msg = (
            f"{option} {file} is not a readable checkpoint ({size} bytes, {error}): it is truncated or not a torch "
            f"file; {advice}"
        )
        raise CheckpointError(msg) from None
    if not any(name.endswith("/data.pkl") or name == "data.pkl" for name in names):
        msg = f"{option} {file} is a zip archive but not a torch checkpoint (no data.pkl): {advice}"
        raise CheckpointError(msg)
    return file
