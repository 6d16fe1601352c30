"""Checkpoints that do not depend on validation, and a readable error for a damaged checkpoint file.

anomalib writes ``weights/lightning/model.ckpt`` after validation, and the shipped configs validate once, at the end:
without :class:`IsstadCheckpoints` a fit interrupted at epoch 319 of 320 would leave no checkpoint at all. The
callback (added by :class:`~isstad_plugin.Isstad` to every fit) writes, next to ``model.ckpt``:

* ``last.ckpt``: the end of the last finished epoch (every ``every_n_epochs`` epochs and/or ``every_n_minutes``
  minutes), written to a temporary file and renamed, so an interruption never leaves a half-written file; resume from
  it with ``--ckpt_path``;
* ``stage1.ckpt``: the end of stage 1, usable as ``--model.stage1_checkpoint``.

It also makes the last epoch validate when ``check_val_every_n_epoch`` would skip it, so the thresholds are always
learnt on the trained model, warns when they could not be learnt, says where the model was saved, and after a Ctrl-C
or ``SIGTERM`` prints the command that resumes the fit as the last line. The run's ``config.yaml`` is written when the
fit starts (a fit that fails in setup leaves none). At setup it makes the trainer write every file
atomically (:class:`~isstad_plugin.training.checkpoint_io.AtomicCheckpointIO`, unless the user chose a
``CheckpointIO``).

anomalib's ``model.ckpt`` is written by :class:`LearntModelCheckpoint` (``Isstad.configure_callbacks`` puts it in
place of anomalib's default one): only once the thresholds and normalisation statistics are learnt, so that an
interrupted fit never leaves a ``model.ckpt`` that calls every image normal. :func:`require_statistics` stops
``predict`` and ``export`` of a model without them in one line.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import torch
from anomalib.callbacks.checkpoint import ModelCheckpoint
from anomalib.engine.plugins import AnomalibCheckpointIO
from anomalib.post_processing import PostProcessor
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from isstad_plugin.training.checkpoint_io import AtomicCheckpointIO, CheckpointError, resume_hint
from isstad_plugin.training.two_stage import TwoStageModule

logger = logging.getLogger(__name__)

LAST = "last.ckpt"
STAGE1 = "stage1.ckpt"


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

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Write checkpoints atomically (unless the user chose an IO)."""
        del pl_module, stage
        current = trainer.strategy.checkpoint_io
        if type(current) is AnomalibCheckpointIO:
            trainer.strategy.checkpoint_io = AtomicCheckpointIO(current.extra_safe_globals)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Put the run's config in its folder, once the fit has started (a fit that fails in setup leaves none)."""
        del pl_module
        save_run_config(trainer)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        """After Ctrl-C or ``SIGTERM``, print one line: how to resume (printed, not logged: it is the last line)."""
        del pl_module
        interrupted = isinstance(exception, KeyboardInterrupt | SIGTERMException)
        if interrupted and trainer.is_global_zero and trainer.state.fn == TrainerFn.FITTING:
            sys.stdout.flush()
            print(f"warning: fit interrupted: {resume_hint(self.folder(trainer))}", file=sys.stderr, flush=True)

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
        epoch = trainer.current_epoch
        two_stage = pl_module if isinstance(pl_module, TwoStageModule) else None
        if self.stage1 and two_stage is not None and two_stage.stage1_ends(epoch + 1, trainer.global_step):
            self._write(trainer, STAGE1)
        if self._due(trainer, epoch, two_stage):
            self._write(trainer, LAST)
            self._last_write = time.monotonic()

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Say where the model was saved; warn when the fit ends without learnt thresholds (F1, labels meaningless)."""
        saved = getattr(trainer.checkpoint_callback, "best_model_path", "")
        if saved and trainer.is_global_zero:
            logger.info("ISSTAD: model saved: %s (the --ckpt_path of test, predict and export)", saved)
        if "_image_threshold" in missing_statistics(pl_module):
            logger.warning(
                "ISSTAD: the fit ended without a validation of the trained model (max_epochs %s, "
                "check_val_every_n_epoch %s, limit_val_batches %s): thresholds were not learnt, so F1 scores and "
                "predicted labels mean nothing; validate before testing (e.g. Engine.validate)",
                trainer.max_epochs,
                trainer.check_val_every_n_epoch,
                trainer.limit_val_batches,
            )

    def _due(self, trainer: Trainer, epoch: int, model: TwoStageModule | None) -> bool:
        if trainer.max_epochs is not None and 0 < trainer.max_epochs <= epoch + 1:
            return True
        if model is not None and model.budget_spent():
            return True
        if self.every_n_epochs is not None and (epoch + 1) % self.every_n_epochs == 0:
            return True
        minutes = self.every_n_minutes
        return minutes is not None and time.monotonic() - self._last_write >= minutes * 60

    def _write(self, trainer: Trainer, name: str) -> None:
        """``trainer.save_checkpoint`` (all ranks take part; rank 0 writes, atomically with the IO set up here)."""
        target = self.folder(trainer) / name
        trainer.save_checkpoint(target, weights_only=False)
        logger.debug("ISSTAD: wrote %s", target)


def save_run_config(trainer: Trainer) -> Path | None:
    """Write the CLI's config into the run folder, ``<run>/config.yaml``, which the resume command reads.

    Lightning's ``SaveConfigCallback`` (added by ``anomalib train``/``fit``) writes it into the logger's folder, which
    the shipped configs put elsewhere (``logs/<name>/version_<n>``); this writes the same file beside ``weights/``.

    Returns:
        The file written, or ``None`` (no CLI config, or the logger's folder is the run folder).
    """
    log_dir = trainer.log_dir  # on every rank: it broadcasts
    target = Path(trainer.default_root_dir) / "config.yaml"
    savers = [c for c in trainer.callbacks if isinstance(c, SaveConfigCallback)]  # type: ignore[attr-defined]
    if not savers or not trainer.is_global_zero or (log_dir and Path(log_dir).resolve() == target.parent.resolve()):
        return None
    saver = savers[0]
    target.parent.mkdir(parents=True, exist_ok=True)
    saver.parser.save(saver.config, str(target), skip_none=False, overwrite=True, multifile=saver.multifile)
    return target


class LearntModelCheckpoint(ModelCheckpoint):
    """anomalib's ``model.ckpt`` callback that writes only a model whose thresholds and normalisation are learnt.

    Its state key is that of anomalib's callback, so checkpoints of either resume with the other.
    """

    @property
    def state_key(self) -> str:
        """The state key of anomalib's ``ModelCheckpoint``."""
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def _should_skip_saving_checkpoint(self, trainer: Trainer) -> bool:
        return super()._should_skip_saving_checkpoint(trainer) or bool(missing_statistics(trainer.lightning_module))


def use_learnt_model_checkpoint(trainer: Trainer) -> None:
    """Put a :class:`LearntModelCheckpoint` in the place of anomalib's default ``model.ckpt`` callback, if in use.

    Replaced in the trainer's list, not returned by ``configure_callbacks``: Lightning would then print an override
    line, and drop every other callback of anomalib's ``ModelCheckpoint`` type with it. Nothing is replaced when the
    trainer holds a callback of a base class of it (e.g. Lightning's own ``ModelCheckpoint``): Lightning's replacement
    rule would drop that one too.
    """
    callbacks = trainer.callbacks  # type: ignore[attr-defined]
    bases = set(LearntModelCheckpoint.__mro__) - {ModelCheckpoint}
    if any(type(callback) in bases for callback in callbacks):
        return
    for index, callback in enumerate(callbacks):
        if type(callback) is ModelCheckpoint and callback.filename == "model" and callback.monitor is None:
            callbacks[index] = LearntModelCheckpoint(
                dirpath=callback.dirpath, filename="model", auto_insert_metric_name=False
            )
            return


def missing_statistics(module: object) -> list[str]:
    """Names of the post-processor's enabled thresholds and normalisation statistics that are not finite (not learnt).

    The pixel threshold is not required: without masks in validation anomalib uses the image threshold for pixels.
    """
    post_processor = getattr(module, "post_processor", None)
    if not isinstance(post_processor, PostProcessor):
        return []
    names = ["_image_threshold"] if post_processor.enable_thresholding else []
    if post_processor.enable_normalization:
        names += ["image_min", "image_max", "pixel_min", "pixel_max"]
    return [name for name in names if not torch.isfinite(getattr(post_processor, name)).all()]


def require_statistics(module: object, source: str) -> None:
    """Stop in one line when ``module`` has no learnt thresholds or normalisation (predict, export).

    Args:
        module: The loaded model.
        source: How to name where it came from (e.g. ``--ckpt_path <file>``).

    Raises:
        CheckpointError: Some statistics are NaN: the model was saved before the fit validated.
    """
    missing = missing_statistics(module)
    if missing:
        msg = (
            f"{source} has no learnt thresholds/normalisation ({', '.join(missing)} is NaN): it was saved before the "
            "fit validated (an interrupted run); use weights/lightning/model.ckpt of a finished fit, or resume the fit "
            "from its last.ckpt"
        )
        raise CheckpointError(msg)
