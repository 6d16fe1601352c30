"""ISSTAD as an anomalib model: both training stages in one fit (paper Fig. 2), fused S map at inference.

The options are the fields of :mod:`isstad_plugin.model.config` (network, corruption, loss, training, runtime); the
stage schedule is :class:`~isstad_plugin.model.schedule.StageSchedule`, and the switch from stage 1 to stage 2
happens in this module's own ``on_train_epoch_start`` (as in anomalib's two-phase DSR).

Example:
    >>> from anomalib.data import MVTecAD
    >>> from anomalib.engine import Engine
    >>> from isstad_plugin import Isstad
    >>> model = Isstad(encoder="vit_tiny_patch8", image_size=128, stage1_epochs=5)  # doctest: +SKIP
    >>> Engine(max_epochs=15).train(model, datamodule=MVTecAD(category="bottle"))  # doctest: +SKIP

From the command line: ``anomalib train --model isstad_plugin.Isstad --data MVTecAD --trainer.max_epochs 320``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any, cast

import torch
from anomalib import LearningType
from anomalib.data import Batch
from anomalib.metrics import Evaluator
from anomalib.models.components import AnomalibModule
from anomalib.post_processing import PostProcessor
from anomalib.pre_processing import PreProcessor
from anomalib.visualization import Visualizer
from lightning.pytorch import Callback
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.types import STEP_OUTPUT, OptimizerLRSchedulerConfig
from torchvision.transforms.v2 import Compose, Resize

from isstad_plugin.data.cache import TrainDataCache
from isstad_plugin.data.checks import check_fit_data
from isstad_plugin.data.geometry import resolve_image_size
from isstad_plugin.model.augmentation import mae_augmentation
from isstad_plugin.model.loss import Stage1Loss, Stage2Loss
from isstad_plugin.model.optimizers import (
    check_own_optimizers,
    effective_batch_size,
    stage1_optimizer,
    stage2_optimizer,
)
from isstad_plugin.model.options import IsstadConfig, options_doc, options_signature
from isstad_plugin.model.post_processor import IsstadPostProcessor
from isstad_plugin.model.pre_processor import resize_pre_processor
from isstad_plugin.model.presets import PAPER_IMAGE_SIZE
from isstad_plugin.model.schedule import StageSchedule
from isstad_plugin.model.tiling import training_tiles
from isstad_plugin.model.torch_model import IsstadModel
from isstad_plugin.model.weights import load_initial_weights
from isstad_plugin.training.checkpointing import IsstadCheckpoints, require_statistics, use_learnt_model_checkpoint
from isstad_plugin.training.divergence import IsstadDivergenceGuard, non_finite_loss_error
from isstad_plugin.training.quiet import QuietByDesign
from isstad_plugin.training.rng import capture_rng_state, restore_rng_state
from isstad_plugin.training.two_stage import allow_unused_parameters

logger = logging.getLogger(__name__)


class Isstad(AnomalibModule):
    """ISSTAD: incremental self-supervised learning based on Transformer (Jin et al.), for anomalib.

    Stage 1 trains the network as a masked autoencoder on normal images for ``stage1_epochs`` epochs; stage 2 (the
    remaining ``trainer.max_epochs - stage1_epochs`` epochs) freezes the encoder and trains the decoder to restore
    corrupted normal images and classify the corrupted pixels. At test time ``S = G(G(E) ⊙ G(P))`` is the anomaly map
    and ``mean(S)`` the image score.

    Options: one grouped :class:`~isstad_plugin.IsstadConfig` (``config=``) and/or flat keywords, as the CLI and
    YAML name them (``image_size=[96, 256]``, ``--model.image_size``); flat ones win.

    Args:
        config: Every option, grouped; ``None``: the defaults. Flat ``options`` override its fields.
        {options}
        pre_processor: anomalib pre-processor, ``True`` for resize to ``image_size`` (the network takes ``[0, 1]``
            pixels and normalises them itself).
        post_processor: anomalib post-processor, ``True`` for :class:`~isstad_plugin.IsstadPostProcessor`.
        evaluator: anomalib evaluator, ``True`` for image/pixel AUROC and F1.
        visualizer: anomalib visualizer, ``True`` for the image visualizer.

    Raises:
        TypeError: An unknown option.
        ValueError: Options that contradict each other or the variant, naming them.
    """

    model: IsstadModel

    def __init__(
        self,
        *,
        config: IsstadConfig | None = None,
        pre_processor: PreProcessor | bool = True,
        post_processor: PostProcessor | bool = True,
        evaluator: Evaluator | bool = True,
        visualizer: Visualizer | bool = True,
        **options: Any,  # flat fields of config's groups (CLI, YAML); the signature set below the class lists them
    ) -> None:
        config = IsstadConfig.from_options({**(config or IsstadConfig()).options(), **options})
        if pre_processor is True:
            pre_processor = self.configure_pre_processor(config.network.image_hw)
        # Called by name, not through super(): Lightning's hyperparameter collection then stops at anomalib's
        # arguments, and the options are saved below, every one, defaults included.
        AnomalibModule.__init__(
            self, pre_processor=pre_processor, post_processor=post_processor, evaluator=evaluator, visualizer=visualizer
        )
        self.save_hyperparameters(config.options())
        self._build(config)

    def _build(self, config: IsstadConfig) -> None:
        """Create the network, corruption, loss and stage from the options.

        One place for both ``__init__`` and loading a checkpoint written with other network options.
        """
        network = config.network
        self.config = config
        self.schedule = StageSchedule.resolve(config)
        self.loss_weights = config.loss.weights(network)
        self.pixel_corruption = config.corruption.build(network)
        self.model = IsstadModel(network)
        self.stage1_augmentation = mae_augmentation(network.network_hw) if config.training.stage1_augment else None
        self.stage1_loss = Stage1Loss(self.model.normalization, self.model.patch_size)
        self.loss = Stage2Loss(self.loss_weights)
        self.optimizer_settings = dataclasses.replace(config.training, stage1_warmup_steps=self.schedule.warmup_steps)
        self._compiled = False
        self.stage = self.schedule.first_stage
        if self.stage == 2:
            self.enter_stage2()
        self._initial_weights_done = False

    def _rebuild(self, config: IsstadConfig) -> None:
        """Rebuild for other network options (``image_size: auto`` chosen, a checkpoint's network); saved with it."""
        self.hparams.update(config.options())
        self._build(config)

    @property
    def stage1_epochs(self) -> int:
        """Stage-1 epochs of an epoch budget (see :class:`~isstad_plugin.model.schedule.StageSchedule`)."""
        return self.schedule.stage1_epochs

    # ------------------------------------------------------------------------------------------------ anomalib
    @classmethod
    def configure_pre_processor(cls, image_size: tuple[int, int] | None = None) -> PreProcessor:
        """Resize to ``image_size`` (224 px by default); the network normalises the ``[0, 1]`` pixels itself."""
        size = image_size or (PAPER_IMAGE_SIZE, PAPER_IMAGE_SIZE)
        return PreProcessor(transform=Compose([Resize(size, antialias=True)]))

    def configure_post_processor(self) -> PostProcessor:
        """Normalisation and thresholds of the S map, learnt on validation (:class:`IsstadPostProcessor`)."""
        return IsstadPostProcessor()

    def configure_callbacks(self) -> Sequence[Callback] | Callback:
        """Anomalib's callbacks, the divergence guard, the train-data cache, the checkpoints.

        :class:`~isstad_plugin.IsstadCheckpoints` is added only when the trainer has none (the user's settings win);
        anomalib's ``model.ckpt`` callback is replaced, in its place, by :class:`~isstad_plugin.training.checkpointing.
        LearntModelCheckpoint`, which writes only a model with learnt thresholds. Callbacks the trainer already holds
        (from an earlier fit or test of this trainer) are not returned again, so Lightning reports no override.
        """
        callbacks = super().configure_callbacks()
        callbacks = list(callbacks) if isinstance(callbacks, Sequence) else [callbacks]
        own = [IsstadDivergenceGuard(), TrainDataCache(self.config.runtime.train_cache_gb), QuietByDesign()]
        trainer_callbacks = list(getattr(self._trainer, "callbacks", None) or [])
        if not any(isinstance(c, IsstadCheckpoints) for c in trainer_callbacks):
            own.append(IsstadCheckpoints())
        if self._trainer is not None:
            use_learnt_model_checkpoint(self._trainer)
        held = {type(c) for c in trainer_callbacks}
        new = [c for c in callbacks if not any(c is t for t in trainer_callbacks)]
        return new + [c for c in own if type(c) not in held]

    learning_type = LearningType.ONE_CLASS  # ISSTAD trains on normal images only

    @property
    def trainer_arguments(self) -> dict[str, Any]:
        """No sanity validation: before training the S map means nothing."""
        return {"num_sanity_val_steps": 0}

    # ------------------------------------------------------------------------------------------------ stages
    def enter_stage2(self) -> None:
        """Switch to stage 2; with pre-training the encoder is frozen (paper 3.3.2)."""
        self.stage = 2
        if self.schedule.pretrained:
            self.model.freeze_encoder()

    def prepare_data(self) -> None:
        """Before a fit, check an MVTecAD folder before anomalib indexes it (one-line errors, see data.checks).

        ``image_size: auto`` is chosen here too, before the datamodule's ``setup`` reads the pre-processor's size.
        """
        if self.trainer.state.fn == TrainerFn.FITTING:
            check_fit_data(getattr(self._trainer, "datamodule", None), indexed=False)
            self._resolve_image_size()

    def _resolve_image_size(self) -> None:
        """Choose ``image_size: auto`` from the training images and rebuild the network and pre-processor for it.

        Done once per fit (``prepare_data``, and ``setup`` on the ranks that do not prepare data); the chosen
        ``[height, width]`` replaces ``auto`` in the hyperparameters, so checkpoints, ``predict`` and ``export`` use it.
        """
        network = self.config.network
        if network.image_size != "auto":
            return
        datamodule = getattr(self._trainer, "datamodule", None)
        size = resolve_image_size(datamodule, network.patch, network.auto_image_pixels)
        self._rebuild(dataclasses.replace(self.config, network=dataclasses.replace(network, image_size=size)))
        if isinstance(self.pre_processor, PreProcessor):
            resize_pre_processor(self.pre_processor, size)

    def setup(self, stage: str) -> None:
        """Check the budget and the data, and load initial weights before a fresh fit (not when resuming).

        With ``compile_network`` the Transformer blocks are compiled here, once, for every stage.
        """
        runtime = self.config.runtime
        if runtime.compile_network and not self._compiled:
            self.model.compile_blocks()
            self._compiled = True
        if stage != "fit":
            return
        self._resolve_image_size()
        check_own_optimizers(self)
        self.schedule.check_trainer(self.trainer)
        allow_unused_parameters(self.trainer)
        check_fit_data(getattr(self.trainer, "datamodule", None), indexed=True)
        if self.trainer.ckpt_path is None and not self._initial_weights_done:
            load_initial_weights(self.model, runtime)
        self._initial_weights_done = True

    def on_train_epoch_start(self) -> None:
        """Enter stage 2 at the first epoch the schedule puts there: freeze the encoder, rebuild the optimisers.

        The optimiser and scheduler of the stage-2 parameters come from :meth:`configure_optimizers` through
        ``trainer.strategy.setup_optimizers``; the stage is stored in every checkpoint, so ``ckpt_path`` resumes in the
        right stage with the right optimiser.
        """
        trainer = self.trainer
        if self.stage1_ends(trainer.current_epoch, trainer.global_step):
            self.enter_stage2()
            trainer.strategy.setup_optimizers(trainer)
            frozen = self.model.encoder_frozen
            logger.info("ISSTAD: stage 2 starts at epoch %d (encoder frozen: %s)", trainer.current_epoch, frozen)

    def on_train_epoch_end(self) -> None:
        """End a step-budget fit once its steps are spent (its last validation, which learns thresholds, has run)."""
        if self.budget_spent():
            self.trainer.should_stop = True

    def stage1_ends(self, epochs_done: int, global_step: int) -> bool:
        """Whether the epoch end after ``epochs_done`` epochs and ``global_step`` steps ends stage 1."""
        return self.schedule.stage1_ends(self.stage, epochs_done, global_step)

    def budget_spent(self) -> bool:
        """Whether a step budget has run all its steps (always ``False`` for an epoch budget)."""
        return self.schedule.spent(self.trainer.global_step)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the stage and the random state, so that a resumed fit continues as the uninterrupted one would."""
        super().on_save_checkpoint(checkpoint)
        checkpoint["isstad_stage"] = self.stage
        checkpoint["isstad_stage1_epochs"] = self.stage1_epochs
        checkpoint["isstad_rng"] = capture_rng_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Adopt the checkpoint's network options, stage and (when resuming a fit) random state.

        Called before the weights are copied: a checkpoint written with other network options (image size, encoder,
        ...) rebuilds the network for testing, predicting and exporting, so ``--ckpt_path`` needs no repeated model
        options; resuming a fit with other options is refused.
        """
        if "isstad_stage" not in checkpoint:
            msg = "the checkpoint was not written by an Isstad model (no 'isstad_stage' entry): pass an Isstad .ckpt"
            raise ValueError(msg)
        super().on_load_checkpoint(checkpoint)
        resuming = self._trainer is not None and self.trainer.training
        config = self.config.with_checkpoint_network(checkpoint.get("hyper_parameters", {}), resuming)
        if config is not self.config:
            self._rebuild(config)
        if checkpoint.get("isstad_stage", self.stage) == 2 and self.stage == 1:
            self.enter_stage2()
        self._initial_weights_done = True
        if resuming and "isstad_rng" in checkpoint:
            restore_rng_state(checkpoint["isstad_rng"])

    # ------------------------------------------------------------------------------------------------ steps
    def training_step(self, batch: Batch, *args: Any, **kwargs: Any) -> STEP_OUTPUT:
        """Stage 1: MAE loss on masked patches. Stage 2: restoration + pixel classification of corrupted images."""
        del kwargs
        images = cast(torch.Tensor, batch.image)
        if self.model.tiler is not None:
            images = training_tiles(self.model.tiler, images)
        loss = self._stage1_step(images) if self.stage == 1 else self._stage2_step(images)
        if not torch.isfinite(loss):  # blamed on stage 1 when the frozen encoder it trained gives inf/NaN features
            frozen = self.stage == 2 and self.schedule.pretrained
            with torch.no_grad():
                broken = frozen and not self.model.encode(images)[0].isfinite().all()
            raise non_finite_loss_error(loss, self.current_epoch, self.stage, args[0] if args else "?", broken)
        return {"loss": loss}

    def _stage1_step(self, images: torch.Tensor) -> torch.Tensor:
        if self.stage1_augmentation is not None:
            images = self.stage1_augmentation(images)
        output = self.model(images, mask_ratio=self.model.config.mask_ratio)
        loss = self.stage1_loss(images, output.reconstruction, cast(torch.Tensor, output.mask))
        self._log_losses(len(images), train_loss=loss)
        return loss

    def _stage2_step(self, images: torch.Tensor) -> torch.Tensor:
        clean = images.clamp(0, 1)
        if self.pixel_corruption is not None:
            with torch.autocast(clean.device.type, enabled=False):
                corrupted, labels = self.pixel_corruption(clean.float())
        else:
            corrupted, labels = clean, torch.zeros_like(clean[:, :1])
        with_classifier = self.loss_weights.classification > 0
        output = self.model.reconstruct_and_classify(corrupted, with_classifier=with_classifier)
        losses = self.loss(output.reconstruction, clean, output.level_logits, labels)
        terms = {"train_mse": losses.mse, "train_ssim_loss": losses.ssim, "train_cls": losses.classification}
        self._log_losses(len(images), train_loss=losses.total, **terms)
        return losses.total

    def _log_losses(self, batch_size: int, **values: torch.Tensor) -> None:
        self.log(
            "train_loss", values.pop("train_loss"), on_step=False, on_epoch=True, prog_bar=True, batch_size=batch_size
        )
        self.log_dict({**values, "stage": float(self.stage)}, on_step=False, on_epoch=True, batch_size=batch_size)

    def validation_step(self, batch: Batch, *args: Any, **kwargs: Any) -> STEP_OUTPUT:
        """Score the batch for the post-processor's statistics.

        Skipped during stage 1 of a two-stage fit and, in a fit with a step budget, before the epoch that spends it
        (a separate ``validate`` always scores).
        """
        del args, kwargs
        fitting = self._trainer is not None and self.trainer.state.fn == TrainerFn.FITTING
        if (self.stage == 1 and self.schedule.two_stages) or (
            fitting and self.schedule.steps and not self.budget_spent()
        ):
            return None
        return batch.update(**self.model(batch.image)._asdict())

    # ------------------------------------------------------------------------------------------------ optimisers
    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        """The current stage's AdamW and schedule: stage 1 per step, stage 2 per epoch (per step with a step budget)."""
        trainer, settings = self.trainer, self.optimizer_settings
        fused = not trainer.gradient_clip_val  # Lightning refuses to clip the gradients of fused optimisers
        if self.stage == 2:
            steps = self.schedule.stage2_steps or None
            optimizer, scheduler = stage2_optimizer(self.model, settings, steps, fused=fused)
            interval = "step" if steps else "epoch"
        else:
            per_epoch, total = self.schedule.stage1_schedule_steps(
                trainer.max_epochs, trainer.estimated_stepping_batches
            )
            batch = effective_batch_size(trainer)
            optimizer, scheduler = stage1_optimizer(self.model, settings, batch, per_epoch, total, fused=fused)
            interval = "step"
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}

    # ------------------------------------------------------------------------------------------------ predict, export
    def on_predict_start(self) -> None:
        """Refuse to predict with a model whose thresholds were never learnt (every image would be called normal)."""
        path = self.trainer.ckpt_path
        require_statistics(self, f"--ckpt_path {path}" if path else "the model to predict with")

    def to_torch(self, *args: Any, **kwargs: Any) -> Any:
        """The torch export of anomalib, refused for a model without learnt thresholds."""
        require_statistics(self, "the model to export (--ckpt_path)")
        return super().to_torch(*args, **kwargs)

    def to_onnx(self, *args: Any, **kwargs: Any) -> Any:
        """The ONNX export (also the first step of OpenVINO's), refused for a model without learnt thresholds."""
        require_statistics(self, "the model to export (--ckpt_path)")
        return super().to_onnx(*args, **kwargs)


Isstad.__init__.__signature__ = options_signature(Isstad.__init__)  # type: ignore[attr-defined]
Isstad.__doc__ = (Isstad.__doc__ or "").replace("        {options}", options_doc())
