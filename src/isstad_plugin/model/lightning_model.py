"""ISSTAD as an anomalib model: both training stages in one fit (paper Fig. 2), fused S map at inference.

Example:
    >>> from anomalib.data import MVTecAD
    >>> from anomalib.engine import Engine
    >>> from isstad_plugin import Isstad
    >>> model = Isstad(encoder="vit_tiny_patch8", image_size=128, stage1_epochs=5)  # doctest: +SKIP
    >>> Engine(max_epochs=15).train(model, datamodule=MVTecAD(category="bottle"))  # doctest: +SKIP

From the command line::

    anomalib train --model isstad_plugin.Isstad --data MVTecAD --data.category bottle \
        --model.stage1_epochs 120 --trainer.max_epochs 320
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, cast

import torch
from anomalib import LearningType
from anomalib.data import Batch, MVTecAD
from anomalib.metrics import Evaluator
from anomalib.models.components import AnomalibModule
from anomalib.post_processing import PostProcessor
from anomalib.pre_processing import PreProcessor
from anomalib.visualization import Visualizer
from lightning.pytorch import Callback
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.types import STEP_OUTPUT, OptimizerLRSchedulerConfig
from torchvision.transforms.v2 import Compose, Normalize, Resize

from isstad_plugin.corruption import PixelCorruption
from isstad_plugin.data.cache import TrainDataCache
from isstad_plugin.data.checks import check_datamodule, check_mvtec_layout
from isstad_plugin.model.augmentation import mae_augmentation
from isstad_plugin.model.fusion import ScoreAggregation
from isstad_plugin.model.loss import LOSS_PRESETS, LossPreset, Stage2Loss, Stage2Weights, masked_patch_mse
from isstad_plugin.model.optimizers import OptimizerSettings, stage1_optimizer, stage2_optimizer
from isstad_plugin.model.post_processor import IsstadPostProcessor
from isstad_plugin.model.presets import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PAPER_IMAGE_SIZE,
    PAPER_MASK_RATIO,
    PAPER_STAGE1_EPOCHS,
)
from isstad_plugin.model.stage_switch import IsstadStageSwitch
from isstad_plugin.model.torch_model import ClassifierOutput, ClassifierSharing, IsstadModel
from isstad_plugin.model.variants import Variant, get_variant
from isstad_plugin.model.weights import load_mae_weights, load_stage1_checkpoint
from isstad_plugin.training import engine_patches
from isstad_plugin.training.checkpointing import IsstadCheckpoints
from isstad_plugin.training.divergence import (
    IsstadDivergenceGuard,
    TrainingDivergedError,
    advice,
    stage1_encoder_broken,
)
from isstad_plugin.training.rng import capture_rng_state, restore_rng_state

logger = logging.getLogger(__name__)

# Engine behaviours for ISSTAD runs (resumed fits test the final model, test/predict write their own folders,
# one-line CLI errors): installed once, when the model is first used, not when the package is imported.
engine_patches.install()

DEFAULT_MAX_EPOCHS = 1000
"""Lightning's ``max_epochs`` when none is given (a step budget stops the fit long before)."""
STEP_BUDGET_WARMUP_FRACTION = 0.05
"""Stage-1 warm-up share of a step budget when ``stage1_warmup_steps`` is unset (MAE: 40 of 800 epochs)."""

_PRESET_HEADS: dict[str, tuple[ClassifierSharing, ClassifierOutput, str]] = {
    "paper": ("per_block", "sigmoid", "paper"),  # per-block projections, eq. 10 BCE, block corruption
    "official": ("shared", "softmax", "official"),  # one shared projection, 2-class CE, shape-paste corruption
}


_DEFAULTS: dict[str, Any] = {}  # the constructor's defaults, filled in after the class definition
_NETWORK_KEYS = (
    "variant",
    "preset",
    "image_size",
    "encoder",
    "patch_size",
    "encoder_dim",
    "encoder_depth",
    "encoder_heads",
    "decoder_dim",
    "decoder_depth",
    "decoder_heads",
    "classifier_sharing",
    "classifier_output",
    "mask_ratio",
    "smoothing_sigma",
    "score_aggregation",
    "topk_fraction",
)


class Isstad(AnomalibModule):
    """ISSTAD: incremental self-supervised learning based on Transformer (Jin et al.), for anomalib.

    Stage 1 trains the network as a masked autoencoder on normal images for ``stage1_epochs`` epochs; stage 2 (the
    remaining ``trainer.max_epochs - stage1_epochs`` epochs) freezes the encoder and trains the decoder to restore
    corrupted normal images and classify the corrupted pixels. At test time ``S = G(G(E) ⊙ G(P))`` is the anomaly map
    and ``mean(S)`` the image score.

    Args:
        variant: ``"full"`` (the paper's model) or an ablation model ``"I"`` ... ``"VIII"`` (paper Table 3).
        preset: ``"paper"`` or ``"official"``: the defaults of the pixel classifier form, the loss weights and target
            and the corruption mode (see ``docs/configs.md``); every option below set explicitly wins over it.
        image_size: Input side in pixels (paper: 224); the pre-processor resizes to it.
        encoder: Encoder size preset (paper: ``"vit_large_patch16"``).
        patch_size: Patch side; ``None`` takes the preset's.
        encoder_dim: Encoder width override.
        encoder_depth: Encoder depth override.
        encoder_heads: Encoder heads override.
        decoder_dim: Decoder width (paper: 512).
        decoder_depth: Decoder blocks (paper: 8).
        decoder_heads: Decoder heads (paper: 16).
        classifier_sharing: ``"per_block"`` or ``"shared"``; ``None`` takes the preset's.
        classifier_output: ``"sigmoid"`` or ``"softmax"``; ``None`` takes the preset's.
        encoder_weights: Local path of an official MAE checkpoint, or ``timm:<tag>`` when a hub is reachable.
        load_decoder_weights: Also take the decoder from ``encoder_weights`` when the file has one.
        stage1_checkpoint: An Isstad ``.ckpt`` whose stage 1 is finished: its weights are loaded and stage 1 skipped.
        stage1_epochs: Epochs of stage 1; ``None``: 120 (paper) for variants with pre-training, 0 with
            ``stage1_checkpoint`` or without pre-training.
        stage1_steps: A step budget instead of epochs: stage 1 runs this many optimiser steps (rounded up to a whole
            epoch), so that the budget does not depend on the data size. Excludes ``stage1_epochs``.
        stage2_steps: With a step budget, stage 2 runs this many optimiser steps (rounded up to a whole epoch); the
            fit then stops by itself and learns the thresholds (``trainer.max_epochs`` -1). Both schedules run per
            step. One-stage variants set only their stage's length.
        stage1_augment: Stage 1 trains on MAE's augmentation (random resized crop, scale 0.2-1, and horizontal flip)
            of each batch, as MAE and the official code do.
        mask_ratio: Stage-1 masking ratio (paper: 0.75).
        stage1_blr: Stage-1 base learning rate, scaled by ``batch / 256`` (paper: 1e-3).
        stage1_warmup_epochs: Stage-1 warm-up epochs before the half-cycle cosine decay.
        stage1_warmup_steps: Stage-1 warm-up in optimiser steps (step budget; ``None``: 5 % of ``stage1_steps``).
        stage2_lr: Stage-2 maximum learning rate (paper: 1e-3).
        stage2_min_lr: Stage-2 minimum learning rate (paper: 1e-9).
        stage2_t_max: Stage-2 cosine half-period in epochs (paper: a 60-epoch period, ``T_max = 30``); with
            a step budget the stage-2 rate instead decays once, per step, over ``stage2_steps``.
        weight_decay: AdamW weight decay of both stages (paper: 0.05).
        mse_weight: λ0; ``None`` takes the preset's.
        ssim_weight: λ1; ``None`` takes the preset's.
        classification_weight: λ2; ``None`` takes the preset's.
        anomalous_weight: ω, weight of corrupted pixels in the cross-entropy; ``None`` takes the preset's.
        normal_weight: Weight of clean pixels in the cross-entropy; ``None`` takes the preset's.
        corruption: ``"paper"`` (random blocks) or ``"official"`` (shape paste); ``None`` takes the preset's.
        corrupt_prob: Fraction of training images corrupted; ``None`` takes the corruption mode's (paper 5/6).
        corruption_settings: Any other setting of the corruption mode by name (``num_blocks``, ``block_size``,
            ``shapes``, ``placement``, ``noise_std``, ...; see ``docs/corruption.md``); unset ones keep their defaults.
        smoothing_sigma: Gaussian smoothing of E, P and S in pixels (official: 4 at 224 px).
        score_aggregation: Image score from S: ``"mean"`` (paper), ``"max"`` or ``"topk"``.
        topk_fraction: Fraction of pixels averaged by ``"topk"``.
        train_cache_gb: Memory limit (GiB) of the training-image cache: the decoded, resized training images are kept
            in memory for the whole fit (:class:`~isstad_plugin.data.cache.TrainDataCache`); ``0`` turns it off.
        compile_network: ``torch.compile`` the Transformer blocks (inductor, CPU or CUDA) when the Trainer sets the
            model up; off by default (see ``docs/how-to/speed.md``).
        pre_processor: anomalib pre-processor, ``True`` for resize to ``image_size`` + ImageNet normalisation.
        post_processor: anomalib post-processor, ``True`` for :class:`~isstad_plugin.IsstadPostProcessor`.
        evaluator: anomalib evaluator, ``True`` for image/pixel AUROC and F1.
        visualizer: anomalib visualizer, ``True`` for the image visualizer.

    Raises:
        ValueError: Options that contradict each other or the variant, naming them.
    """

    model: IsstadModel

    def __init__(
        self,
        variant: str = "full",
        preset: LossPreset = "paper",
        image_size: int = PAPER_IMAGE_SIZE,
        encoder: str = "vit_large_patch16",
        patch_size: int | None = None,
        encoder_dim: int | None = None,
        encoder_depth: int | None = None,
        encoder_heads: int | None = None,
        decoder_dim: int = 512,
        decoder_depth: int = 8,
        decoder_heads: int = 16,
        classifier_sharing: ClassifierSharing | None = None,
        classifier_output: ClassifierOutput | None = None,
        encoder_weights: str | None = None,
        load_decoder_weights: bool = True,
        stage1_checkpoint: str | None = None,
        stage1_epochs: int | None = None,
        stage1_steps: int | None = None,
        stage2_steps: int | None = None,
        stage1_augment: bool = False,
        mask_ratio: float = PAPER_MASK_RATIO,
        stage1_blr: float = 1e-3,
        stage1_warmup_epochs: float = 10.0,
        stage1_warmup_steps: int | None = None,
        stage2_lr: float = 1e-3,
        stage2_min_lr: float = 1e-9,
        stage2_t_max: int = 30,
        weight_decay: float = 0.05,
        mse_weight: float | None = None,
        ssim_weight: float | None = None,
        classification_weight: float | None = None,
        anomalous_weight: float | None = None,
        normal_weight: float | None = None,
        corruption: Literal["paper", "official"] | None = None,
        corrupt_prob: float | None = None,
        corruption_settings: dict[str, Any] | None = None,
        smoothing_sigma: float = 4.0,
        score_aggregation: ScoreAggregation = "mean",
        topk_fraction: float = 0.01,
        train_cache_gb: float = 4.0,
        compile_network: bool = False,
        pre_processor: PreProcessor | bool = True,
        post_processor: PostProcessor | bool = True,
        evaluator: Evaluator | bool = True,
        visualizer: Visualizer | bool = True,
    ) -> None:
        if pre_processor is True:
            pre_processor = self.configure_pre_processor((image_size, image_size))
        super().__init__(
            pre_processor=pre_processor,
            post_processor=post_processor,
            evaluator=evaluator,
            visualizer=visualizer,
        )
        self._build(dict(self.hparams))

    def _build(self, options: dict[str, Any]) -> None:
        """Create the network, corruption, loss and stage from the constructor options.

        One place for both ``__init__`` and loading a checkpoint written with other options.
        """
        o = {**_DEFAULTS, **options}
        if o["preset"] not in _PRESET_HEADS:
            msg = f"preset must be 'paper' or 'official', got {o['preset']!r}"
            raise ValueError(msg)
        self.variant: Variant = get_variant(o["variant"])
        sharing, output, corruption_mode = _PRESET_HEADS[o["preset"]]
        self.stage1_steps, self.stage2_steps = _resolve_step_budget(
            self.variant, o["stage1_steps"], o["stage2_steps"], o["stage1_epochs"]
        )
        stage1_epochs = 0 if self.step_budget else o["stage1_epochs"]
        self.stage1_epochs = _resolve_stage1_epochs(self.variant, stage1_epochs, o["stage1_checkpoint"])
        self.loss_weights = _resolve_loss_weights(
            self.variant,
            o["preset"],
            o["mse_weight"],
            o["ssim_weight"],
            o["classification_weight"],
            o["anomalous_weight"],
            o["normal_weight"],
        )
        _check_corruption_options(self.variant, o["corruption"], o["corrupt_prob"], o["corruption_settings"])
        self.model = IsstadModel(
            image_size=o["image_size"],
            encoder=o["encoder"],
            patch_size=o["patch_size"],
            encoder_dim=o["encoder_dim"],
            encoder_depth=o["encoder_depth"],
            encoder_heads=o["encoder_heads"],
            decoder_dim=o["decoder_dim"],
            decoder_depth=o["decoder_depth"],
            decoder_heads=o["decoder_heads"],
            mask_ratio=o["mask_ratio"],
            classifier_sharing=o["classifier_sharing"] or sharing,
            classifier_output=o["classifier_output"] or output,
            smoothing_sigma=o["smoothing_sigma"],
            score_aggregation=o["score_aggregation"],
            topk_fraction=o["topk_fraction"],
            map_source=self.variant.map_source,
            inference_mask_ratio=o["mask_ratio"] if self.variant.masked_inference else 0.0,
        )
        mode = cast(Literal["paper", "official"], o["corruption"] or corruption_mode)
        try:
            self.corruption = PixelCorruption(
                mode=mode, corrupt_prob=o["corrupt_prob"], **(o["corruption_settings"] or {})
            )
        except ValueError as error:
            msg = f"model.corruption_settings: {error}"
            raise ValueError(msg) from None
        self.stage1_augmentation = mae_augmentation(o["image_size"]) if o["stage1_augment"] else None
        self.loss = Stage2Loss(self.loss_weights)
        self.optimizer_settings = OptimizerSettings(
            stage1_blr=o["stage1_blr"],
            stage1_warmup_epochs=o["stage1_warmup_epochs"],
            stage1_warmup_steps=_warmup_steps(o["stage1_warmup_steps"], self.stage1_steps),
            stage2_lr=o["stage2_lr"],
            stage2_min_lr=o["stage2_min_lr"],
            stage2_t_max=o["stage2_t_max"],
            weight_decay=o["weight_decay"],
        )
        self.encoder_weights = o["encoder_weights"]
        self.load_decoder_weights = o["load_decoder_weights"]
        self.stage1_checkpoint = o["stage1_checkpoint"]
        self.train_cache_gb = float(o["train_cache_gb"])
        self.compile_network = bool(o["compile_network"])
        self._compiled = False
        pretraining = self.stage1_epochs > 0 or self.stage1_steps > 0
        self.stage = 1 if (pretraining or not self.variant.finetune) else 2
        if self.stage == 2:
            self.enter_stage2()
        self._initial_weights_done = False

    # ------------------------------------------------------------------------------------------------ anomalib
    @classmethod
    def configure_pre_processor(cls, image_size: tuple[int, int] | None = None) -> PreProcessor:
        """Resize to ``image_size`` (224 px by default) and normalise with ImageNet statistics (as MAE)."""
        size = image_size or (PAPER_IMAGE_SIZE, PAPER_IMAGE_SIZE)
        return PreProcessor(
            transform=Compose([Resize(size, antialias=True), Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD)])
        )

    def configure_post_processor(self) -> PostProcessor:
        """Normalisation and thresholds of the S map, learnt on validation (:class:`IsstadPostProcessor`)."""
        return IsstadPostProcessor()

    def configure_callbacks(self) -> Sequence[Callback] | Callback:
        """Anomalib's callbacks, the stage switch, the divergence guard, the train-data cache and the checkpoints.

        :class:`~isstad_plugin.IsstadCheckpoints` is added only when the trainer has none, so the user's settings win.
        """
        callbacks = super().configure_callbacks()
        callbacks = list(callbacks) if isinstance(callbacks, Sequence) else [callbacks]
        callbacks += [IsstadStageSwitch(), IsstadDivergenceGuard(), TrainDataCache(self.train_cache_gb)]
        trainer_callbacks = getattr(self._trainer, "callbacks", None) or []
        if not any(isinstance(c, IsstadCheckpoints) for c in trainer_callbacks):
            callbacks.append(IsstadCheckpoints())
        return callbacks

    @property
    def learning_type(self) -> LearningType:
        """ISSTAD trains on normal images only."""
        return LearningType.ONE_CLASS

    @property
    def trainer_arguments(self) -> dict[str, Any]:
        """No sanity validation: before training the S map means nothing."""
        return {"num_sanity_val_steps": 0}

    # ------------------------------------------------------------------------------------------------ stages
    def enter_stage2(self) -> None:
        """Switch to stage 2; with pre-training the encoder is frozen (paper 3.3.2)."""
        self.stage = 2
        if self.variant.pretrain:
            self.model.freeze_encoder()

    def prepare_data(self) -> None:
        """Before a fit, check an MVTecAD folder before anomalib indexes it (one-line errors, see data.checks)."""
        datamodule = getattr(self._trainer, "datamodule", None)
        if self.trainer.state.fn == TrainerFn.FITTING and isinstance(datamodule, MVTecAD):
            check_mvtec_layout(Path(datamodule.root) / datamodule.category)

    def setup(self, stage: str) -> None:
        """Check the epoch budget and load initial weights before a fresh fit (not when resuming).

        With ``compile_network`` the Transformer blocks are compiled here, once, for every stage.
        """
        if self.compile_network and not self._compiled:
            self.model.compile_blocks()
            self._compiled = True
        if stage != "fit":
            return
        if "configure_optimizers" in self.__dict__:  # replaced by the CLI's --optimizer / --lr_scheduler
            msg = (
                "--optimizer / --lr_scheduler would replace ISSTAD's two-stage optimisers: remove them and set "
                "--model.stage1_blr, --model.stage2_lr, --model.weight_decay, --model.stage2_t_max instead"
            )
            raise ValueError(msg)
        self._check_epoch_budget()
        datamodule = getattr(self.trainer, "datamodule", None)
        if not isinstance(datamodule, MVTecAD):  # other datamodules are checked once anomalib has indexed them
            check_datamodule(datamodule)
        if self.trainer.ckpt_path is None and not self._initial_weights_done:
            if self.encoder_weights:
                load_mae_weights(self.model, self.encoder_weights, self.load_decoder_weights)
            if self.stage1_checkpoint:
                load_stage1_checkpoint(self.model, self.stage1_checkpoint)
        self._initial_weights_done = True

    def _check_epoch_budget(self) -> None:
        if self.step_budget:
            self._check_step_budget()
            return
        max_epochs = self.trainer.max_epochs
        if self.variant.finetune and max_epochs is not None and 0 <= max_epochs <= self.stage1_epochs:
            msg = (
                f"trainer.max_epochs ({max_epochs}) must exceed model.stage1_epochs ({self.stage1_epochs}): stage 2 "
                f"runs for max_epochs - stage1_epochs epochs (paper: 120 + 200, i.e. --trainer.max_epochs 320)"
            )
            raise ValueError(msg)

    def _check_step_budget(self) -> None:
        trainer = self.trainer
        if trainer.check_val_every_n_epoch != 1:
            msg = (
                "a step budget (model.stage1_steps/stage2_steps) learns thresholds at the end of its last epoch: set "
                f"--trainer.check_val_every_n_epoch 1 (got {trainer.check_val_every_n_epoch})"
            )
            raise ValueError(msg)
        max_epochs, max_steps = trainer.max_epochs, trainer.max_steps
        if (max_epochs is not None and 0 <= max_epochs < DEFAULT_MAX_EPOCHS) or 0 <= max_steps < self.step_budget:
            msg = (
                f"a step budget ends the fit itself after {self.step_budget} steps: set --trainer.max_epochs -1 and "
                f"leave --trainer.max_steps unset (got max_epochs {max_epochs}, max_steps {max_steps})"
            )
            raise ValueError(msg)

    @property
    def step_budget(self) -> int:
        """Optimiser steps of the whole fit under a step budget (0: the fit's length is in epochs)."""
        return self.stage1_steps + self.stage2_steps

    def stage1_complete(self, epochs_done: int, global_step: int) -> bool:
        """Whether stage 1 has run its length after ``epochs_done`` epochs and ``global_step`` optimiser steps."""
        if self.step_budget:
            return global_step >= self.stage1_steps
        return epochs_done >= self.stage1_epochs

    def budget_spent(self) -> bool:
        """Whether a step budget has run all its steps (always ``False`` for an epoch budget)."""
        return bool(self.step_budget) and self.trainer.global_step >= self.step_budget

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
        saved = {**_DEFAULTS, **checkpoint.get("hyper_parameters", {})}
        current = {**_DEFAULTS, **self.hparams}
        changed = sorted(k for k in _NETWORK_KEYS if saved.get(k) != current.get(k))
        if changed:
            if self._trainer is not None and self.trainer.training:
                msg = (
                    f"--ckpt_path was written with other model options ({', '.join(changed)}): resume with the "
                    "options of that run (e.g. its config.yaml)"
                )
                raise ValueError(msg)
            logger.info("Isstad: building the network of the checkpoint (%s differ)", ", ".join(changed))
            self.hparams.update({k: saved[k] for k in _DEFAULTS if k in saved})
            self._build(dict(self.hparams))
        if checkpoint.get("isstad_stage", self.stage) == 2 and self.stage == 1:
            self.enter_stage2()
        self._initial_weights_done = True
        if self._trainer is not None and self.trainer.training and "isstad_rng" in checkpoint:
            restore_rng_state(checkpoint["isstad_rng"])

    # ------------------------------------------------------------------------------------------------ steps
    def training_step(self, batch: Batch, *args: Any, **kwargs: Any) -> STEP_OUTPUT:
        """Stage 1: MAE loss on masked patches. Stage 2: restoration + pixel classification of corrupted images."""
        del kwargs
        images = cast(torch.Tensor, batch.image)
        loss = self._stage1_step(images) if self.stage == 1 else self._stage2_step(images)
        if not torch.isfinite(loss):
            batch_index = args[0] if args else "?"
            culprit = 1 if self.stage == 2 and stage1_encoder_broken(self, images) else self.stage
            cause = (
                " (the encoder trained in stage 1 gives inf/NaN features: stage 1 diverged)"
                if culprit != self.stage
                else ""
            )
            msg = (
                f"non-finite training loss ({loss.item()}) at epoch {self.current_epoch}, stage {self.stage}, batch "
                f"{batch_index}{cause}: the weights were not updated and the checkpoints already written are kept; "
                f"{advice(culprit)}"
            )
            raise TrainingDivergedError(msg)
        return {"loss": loss}

    def _stage1_step(self, images: torch.Tensor) -> torch.Tensor:
        if self.stage1_augmentation is not None:
            images = self.stage1_augmentation(images)
        output = self.model(images, mask_ratio=self.model.mask_ratio)
        loss = masked_patch_mse(self.model.patchify(images), self.model.patchify(output.reconstruction), output.mask)
        self._log_losses(len(images), train_loss=loss)
        return loss

    def _stage2_step(self, images: torch.Tensor) -> torch.Tensor:
        normalization = self.model.normalization
        clean = normalization.to_unit(images).clamp(0, 1)
        if self.variant.corrupt:
            with torch.autocast(clean.device.type, enabled=False):
                corrupted, labels = self.corruption(clean.float())
        else:
            corrupted, labels = clean, torch.zeros_like(clean[:, :1])
        output = self.model.decode(normalization.to_model(corrupted), with_classifier=self.variant.classification_loss)
        reconstruction = normalization.to_unit(output.reconstruction)
        target = clean if self.loss_weights.target == "clean" else corrupted
        losses = self.loss(reconstruction, target, output.level_logits, labels)
        self._log_losses(
            len(images),
            train_loss=losses.total,
            train_mse=losses.mse,
            train_ssim_loss=losses.ssim,
            train_cls=losses.classification,
        )
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
        if (self.stage == 1 and self.variant.finetune) or (fitting and self.step_budget and not self.budget_spent()):
            return None
        return batch.update(**self.model(batch.image)._asdict())

    # ------------------------------------------------------------------------------------------------ optimisers
    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        """The current stage's AdamW and schedule: stage 1 per step, stage 2 per epoch (per step with a step budget)."""
        trainer = self.trainer
        fused = not trainer.gradient_clip_val  # Lightning refuses to clip the gradients of fused optimisers
        if self.stage == 2:
            stage2_steps = self.stage2_steps or None
            optimizer, scheduler = stage2_optimizer(self.model, self.optimizer_settings, stage2_steps, fused=fused)
            interval = "step" if stage2_steps else "epoch"
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}
        if self.step_budget:
            steps_per_epoch, stage1_total = 1, self.stage1_steps
        else:
            max_epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else 1
            steps_per_epoch = max(1, math.ceil(trainer.estimated_stepping_batches / max_epochs))
            stage1_total = steps_per_epoch * (self.stage1_epochs if self.variant.finetune else max_epochs)
        optimizer, scheduler = stage1_optimizer(
            self.model,
            self.optimizer_settings,
            self._effective_batch_size(),
            steps_per_epoch,
            stage1_total,
            fused=fused,
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _effective_batch_size(self) -> int:
        loader = self.trainer.train_dataloader
        batch_size = getattr(loader, "batch_size", None) or 1
        return int(batch_size * self.trainer.accumulate_grad_batches * self.trainer.world_size)


_DEFAULTS.update(
    {
        name: parameter.default
        for name, parameter in inspect.signature(Isstad.__init__).parameters.items()
        if parameter.default is not inspect.Parameter.empty
        and name not in ("pre_processor", "post_processor", "evaluator", "visualizer")
    }
)


def _resolve_stage1_epochs(variant: Variant, stage1_epochs: int | None, stage1_checkpoint: str | None) -> int:
    if stage1_epochs is not None and stage1_epochs < 0:
        msg = f"stage1_epochs must be >= 0, got {stage1_epochs}"
        raise ValueError(msg)
    if stage1_checkpoint and not variant.pretrain:
        msg = (
            f"variant {variant.name} has no stage-1 pre-training: drop stage1_checkpoint or pick a pre-trained variant"
        )
        raise ValueError(msg)
    if stage1_checkpoint and not variant.finetune:
        msg = "variant I is stage 1 alone: stage1_checkpoint would leave nothing to train"
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


def _resolve_loss_weights(
    variant: Variant,
    preset: str,
    mse: float | None,
    ssim: float | None,
    classification: float | None,
    anomalous: float | None,
    normal: float | None,
) -> Stage2Weights:
    base = LOSS_PRESETS[preset]
    if not variant.reconstruction_loss and any(w for w in (mse, ssim)):
        msg = f"variant {variant.name} trains no reconstruction: mse_weight / ssim_weight must be unset or 0"
        raise ValueError(msg)
    if not variant.classification_loss and classification:
        msg = f"variant {variant.name} trains no pixel classifier: classification_weight must be unset or 0"
        raise ValueError(msg)
    return Stage2Weights(
        mse=(base.mse if mse is None else mse) if variant.reconstruction_loss else 0.0,
        ssim=(base.ssim if ssim is None else ssim) if variant.reconstruction_loss else 0.0,
        classification=(base.classification if classification is None else classification)
        if variant.classification_loss
        else 0.0,
        anomalous=base.anomalous if anomalous is None else anomalous,
        normal=base.normal if normal is None else normal,
        target=base.target,
    )


def _warmup_steps(warmup_steps: int | None, stage1_steps: int) -> int | None:
    """Stage-1 warm-up in steps: as given, else 5 % of a step budget (``None``: use the epochs)."""
    if warmup_steps is not None or not stage1_steps:
        return warmup_steps
    return max(1, round(STEP_BUDGET_WARMUP_FRACTION * stage1_steps))


def _resolve_step_budget(
    variant: Variant, stage1_steps: int | None, stage2_steps: int | None, stage1_epochs: int | None
) -> tuple[int, int]:
    """``(stage1_steps, stage2_steps)`` of a step budget, ``(0, 0)`` without one; one-line errors for bad budgets."""
    if stage1_steps is None and stage2_steps is None:
        return 0, 0
    for name, value in (("stage1_steps", stage1_steps), ("stage2_steps", stage2_steps)):
        if value is not None and value < 1:
            msg = f"{name} must be >= 1 (or unset), got {value}"
            raise ValueError(msg)
    if stage1_epochs:
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


def _check_corruption_options(
    variant: Variant, corruption: str | None, corrupt_prob: float | None, settings: dict[str, Any] | None
) -> None:
    if not variant.corrupt and (corruption is not None or corrupt_prob is not None or settings):
        msg = (
            f"variant {variant.name} trains on clean images: corruption / corrupt_prob / corruption_settings must be "
            "unset"
        )
        raise ValueError(msg)
