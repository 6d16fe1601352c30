"""The ISSTAD network in pure torch (paper section 3.1, Fig. 1).

A timm ViT encoder, a Transformer decoder (MAE's), a reconstruction head (LayerNorm + linear -> pixels) and a
pixel classifier head fed by every decoder block. In training mode :class:`IsstadModel` returns an
:class:`IsstadOutput`; in eval mode it returns anomalib's ``InferenceBatch(pred_score, anomaly_map)`` computed by the
paper's fusion of E and P (:mod:`isstad_plugin.model.fusion`).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Literal, NamedTuple, cast

import torch
from anomalib.data import InferenceBatch
from timm.models.vision_transformer import Block, VisionTransformer
from torch import nn

from isstad_plugin.model.attention import IsstadAttention
from isstad_plugin.model.fusion import AnomalyFusion, AnomalyMaps, MapSource, ScoreAggregation, level_probability
from isstad_plugin.model.fusion import reconstruction_error as squared_error
from isstad_plugin.model.normalization import PixelNormalization
from isstad_plugin.model.patching import (
    complementary_noise,
    patchify,
    random_masking,
    restore_order,
    sincos_pos_embed,
    unpatchify,
)
from isstad_plugin.model.presets import (
    ENCODER_PRESETS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    PAPER_DECODER_DEPTH,
    PAPER_DECODER_DIM,
    PAPER_DECODER_HEADS,
    PAPER_IMAGE_SIZE,
    PAPER_MASK_RATIO,
    PAPER_SMOOTHING_SIGMA,
)

ClassifierSharing = Literal["per_block", "shared"]
ClassifierOutput = Literal["sigmoid", "softmax"]

_layer_norm = partial(nn.LayerNorm, eps=1e-6)


class IsstadOutput(NamedTuple):
    """What the network returns in training mode.

    Attributes:
        reconstruction: ``(B, C, H, W)`` reconstructed image Î in the model's normalised space.
        level_logits: ``(B, L, K, H, W)`` pixel classifier logits of every decoder level (``K = 1`` for the
            sigmoid form, ``2`` for the official softmax form), or ``None`` in masked mode.
        mask: ``(B, N)`` patch mask (1 = masked) in masked mode, else ``None``.
    """

    reconstruction: torch.Tensor
    level_logits: torch.Tensor | None
    mask: torch.Tensor | None


class IsstadDecoder(nn.Module):
    """MAE decoder: linear projection, learned mask token, fixed 2-D sin-cos positions, Transformer blocks.

    Returns the output of every block so that the pixel classifier head can read all levels (paper eq. 4-5).

    Args:
        encoder_dim: Width of the encoder tokens.
        grid_size: ``(rows, cols)`` of the patch grid.
        dim: Decoder width.
        depth: Number of decoder blocks.
        heads: Attention heads per block.
        mlp_ratio: MLP hidden width as a multiple of ``dim``.
    """

    def __init__(
        self,
        encoder_dim: int,
        grid_size: tuple[int, int],
        dim: int,
        depth: int,
        heads: int,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        self.embed = nn.Linear(encoder_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.register_buffer("pos_embed", sincos_pos_embed(dim, grid_size), persistent=False)
        self.pos_embed: torch.Tensor
        self.blocks = nn.ModuleList(
            Block(
                dim,
                heads,
                mlp_ratio,
                qkv_bias=True,
                norm_layer=cast(type[nn.Module], _layer_norm),
                attn_layer=IsstadAttention,
            )
            for _ in range(depth)
        )

    def forward(self, tokens: torch.Tensor, ids_restore: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Decode encoder tokens.

        Args:
            tokens: ``(B, 1 + K, encoder_dim)`` encoder output, class token first.
            ids_restore: From :func:`~isstad_plugin.model.patching.random_masking` when patches were dropped; ``None``
                when the encoder saw every patch in order.

        Returns:
            One ``(B, 1 + N, dim)`` tensor per block, class token first, patches in the original order.
        """
        x = self.embed(tokens)
        if ids_restore is not None:
            patches = restore_order(x[:, 1:], ids_restore, self.mask_token)
            x = torch.cat([x[:, :1], patches], dim=1)
        x = x + self.pos_embed.to(x.dtype)
        levels = []
        for block in self.blocks:
            x = block(x)
            levels.append(x)
        return levels


class ReconstructionHead(nn.Module):
    """Reconstruction head (RCH): LayerNorm + linear projection of each patch token to its pixels.

    Args:
        dim: Decoder width.
        patch_size: Patch side in pixels.
        channels: Image channels.
    """

    def __init__(self, dim: int, patch_size: int, channels: int) -> None:
        super().__init__()
        self.norm = _layer_norm(dim)
        self.proj = nn.Linear(dim, patch_size * patch_size * channels)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, N, dim)`` patch tokens (no class token) -> ``(B, N, p * p * C)`` patch pixels."""
        return self.proj(self.norm(tokens))


class PixelClassifierHead(nn.Module):
    """Pixel classifier head (PCH): a linear projection of every decoder level's patch tokens to pixel logits.

    Args:
        dim: Decoder width.
        patch_size: Patch side in pixels.
        num_levels: Number of decoder blocks read.
        sharing: ``"per_block"`` (one projection per block, the paper's text) or ``"shared"`` (one projection for all
            blocks, the official code).
        output: ``"sigmoid"`` (one logit per pixel, the paper's eq. 10) or ``"softmax"`` (two classes, official code).
    """

    def __init__(
        self,
        dim: int,
        patch_size: int,
        num_levels: int,
        sharing: ClassifierSharing = "per_block",
        output: ClassifierOutput = "sigmoid",
    ) -> None:
        super().__init__()
        if sharing not in ("per_block", "shared"):
            msg = f"classifier_sharing must be 'per_block' or 'shared', got {sharing!r}"
            raise ValueError(msg)
        if output not in ("sigmoid", "softmax"):
            msg = f"classifier_output must be 'sigmoid' or 'softmax', got {output!r}"
            raise ValueError(msg)
        self.patch_size = patch_size
        self.output: ClassifierOutput = output
        self.classes = 1 if output == "sigmoid" else 2
        count = num_levels if sharing == "per_block" else 1
        self.proj = nn.ModuleList(nn.Linear(dim, patch_size * patch_size * self.classes) for _ in range(count))

    def forward(self, levels: Sequence[torch.Tensor], grid_size: tuple[int, int]) -> torch.Tensor:
        """Project every level.

        Args:
            levels: One ``(B, N, dim)`` patch-token tensor per decoder block (no class token).
            grid_size: ``(rows, cols)`` of the patch grid.

        Returns:
            ``(B, L, K, H, W)`` logits.
        """
        projections = [self.proj[i if len(self.proj) > 1 else 0](tokens) for i, tokens in enumerate(levels)]
        stacked = torch.stack(projections, dim=1)  # (B, L, N, p*p*K)
        batch, num_levels = stacked.shape[:2]
        maps = unpatchify(stacked.flatten(0, 1), self.patch_size, grid_size)
        return maps.reshape(batch, num_levels, *maps.shape[1:])

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """``(B, L, K, H, W)`` logits -> ``(B, L, H, W)`` probabilities of the anomalous class ``P^[l]``."""
        if self.output == "sigmoid":
            return torch.sigmoid(logits[:, :, 0])
        return torch.softmax(logits, dim=2)[:, :, 1]


class IsstadModel(nn.Module):
    """ViT encoder + Transformer decoder + reconstruction head + pixel classifier head (paper Fig. 1).

    Args:
        image_size: Input side, or ``(height, width)``; both must be multiples of the patch size.
        encoder: Name of an encoder preset in :data:`~isstad_plugin.model.presets.ENCODER_PRESETS`.
        patch_size: Patch side; ``None`` takes the preset's.
        encoder_dim: Encoder width; ``None`` takes the preset's.
        encoder_depth: Encoder blocks; ``None`` takes the preset's.
        encoder_heads: Encoder attention heads; ``None`` takes the preset's.
        decoder_dim: Decoder width (paper: 512).
        decoder_depth: Decoder blocks (paper: 8); the pixel classifier reads all of them.
        decoder_heads: Decoder attention heads (MAE: 16).
        mlp_ratio: MLP width multiple in every block.
        in_channels: Image channels.
        mask_ratio: Stage-1 masking ratio used by :meth:`forward` when ``mask_ratio`` is not given (paper: 0.75).
        classifier_sharing: ``"per_block"`` (paper) or ``"shared"`` (official) pixel classifier projections.
        classifier_output: ``"sigmoid"`` (paper) or ``"softmax"`` (official, two classes).
        smoothing_sigma: Gaussian smoothing of E, P and S in pixels (official: 4).
        score_aggregation: Image score from S: ``"mean"`` (paper), ``"max"`` or ``"topk"``.
        topk_fraction: Fraction of pixels averaged by ``"topk"``.
        map_source: ``"fusion"`` (S = E ⊙ P), ``"reconstruction"`` (E) or ``"classification"`` (P).
        inference_mask_ratio: ``> 0`` scores masked inputs (ablation Model I): several passes whose visible patches
            partition the image, each patch reconstructed from the passes that mask it.
        inference_seed: Seed of the inference masks, so that masked inference is deterministic.
        mean: Per-channel normalisation mean of the inputs.
        std: Per-channel normalisation std of the inputs.

    Raises:
        ValueError: On a configuration that cannot work, naming the option.
    """

    def __init__(
        self,
        image_size: int | Sequence[int] = PAPER_IMAGE_SIZE,
        encoder: str = "vit_large_patch16",
        patch_size: int | None = None,
        encoder_dim: int | None = None,
        encoder_depth: int | None = None,
        encoder_heads: int | None = None,
        decoder_dim: int = PAPER_DECODER_DIM,
        decoder_depth: int = PAPER_DECODER_DEPTH,
        decoder_heads: int = PAPER_DECODER_HEADS,
        mlp_ratio: float = 4.0,
        in_channels: int = 3,
        mask_ratio: float = PAPER_MASK_RATIO,
        classifier_sharing: ClassifierSharing = "per_block",
        classifier_output: ClassifierOutput = "sigmoid",
        smoothing_sigma: float = PAPER_SMOOTHING_SIGMA,
        score_aggregation: ScoreAggregation = "mean",
        topk_fraction: float = 0.01,
        map_source: MapSource = "fusion",
        inference_mask_ratio: float = 0.0,
        inference_seed: int = 0,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        if encoder not in ENCODER_PRESETS:
            msg = f"encoder must be one of {sorted(ENCODER_PRESETS)}, got {encoder!r}"
            raise ValueError(msg)
        preset = ENCODER_PRESETS[encoder]
        self.patch_size = patch_size or preset.patch_size
        self.image_size = _pair(image_size)
        enc_dim = encoder_dim or preset.dim
        enc_depth = encoder_depth or preset.depth
        enc_heads = encoder_heads or preset.heads
        _check_config(self.image_size, self.patch_size, enc_dim, enc_heads, decoder_dim, decoder_depth, decoder_heads)
        _check_mask_ratio(mask_ratio)
        _check_mask_ratio(inference_mask_ratio)
        self.mask_ratio = mask_ratio
        self.inference_mask_ratio = inference_mask_ratio
        self.inference_seed = inference_seed
        self.grid_size = (self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size)
        self.in_channels = in_channels

        self.encoder = _build_encoder(
            self.image_size, self.patch_size, in_channels, enc_dim, enc_depth, enc_heads, mlp_ratio
        )
        self.decoder = IsstadDecoder(enc_dim, self.grid_size, decoder_dim, decoder_depth, decoder_heads, mlp_ratio)
        self.reconstruction_head = ReconstructionHead(decoder_dim, self.patch_size, in_channels)
        self.pixel_classifier_head = PixelClassifierHead(
            decoder_dim, self.patch_size, decoder_depth, classifier_sharing, classifier_output
        )
        self.normalization = PixelNormalization(mean, std)
        self.fusion = AnomalyFusion(smoothing_sigma, score_aggregation, topk_fraction, map_source)
        self.encoder_frozen = False
        self._init_decoder_weights()

    # ----------------------------------------------------------------------------------------------- stages
    def freeze_encoder(self) -> None:
        """Stage 2: stop gradients into the encoder and keep it in eval mode (paper 3.3.2)."""
        self.encoder.requires_grad_(False)
        self.encoder.eval()
        self.encoder_frozen = True

    def train(self, mode: bool = True) -> IsstadModel:
        """Set training mode; a frozen encoder stays in eval mode."""
        super().train(mode)
        if self.encoder_frozen:
            self.encoder.eval()
        return self

    def compile_blocks(self, **options: object) -> None:
        """``torch.compile`` every encoder and decoder block in place (inductor; state-dict keys unchanged).

        Args:
            **options: Keyword arguments of :func:`torch.compile` (``mode``, ``dynamic``, ...).
        """
        blocks = [*cast(nn.Sequential, self.encoder.blocks), *self.decoder.blocks]
        for block in blocks:
            block.compile(**options)

    # ----------------------------------------------------------------------------------------------- forward
    def encode(
        self,
        images: torch.Tensor,
        mask_ratio: float = 0.0,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Run the ViT encoder, on a random subset of patches when ``mask_ratio > 0``.

        Args:
            images: ``(B, C, H, W)`` normalised images.
            mask_ratio: Fraction of patches dropped before the encoder (MAE); ``0`` keeps all, in order.
            generator: Optional generator for reproducible masks.
            noise: Optional ``(B, N)`` masking scores (lowest kept) instead of random ones.

        Returns:
            ``(tokens, mask, ids_restore)``: ``(B, 1 + K, D)`` encoder tokens with the class token first; ``mask`` and
            ``ids_restore`` as in :func:`~isstad_plugin.model.patching.random_masking`, or ``None`` when nothing is
            masked.
        """
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.encoder_frozen):
            enc = self.encoder
            pos_embed, cls_token = cast(torch.Tensor, enc.pos_embed), cast(torch.Tensor, enc.cls_token)
            x = enc.patch_embed(images)
            x = x + pos_embed[:, 1:].to(x.dtype)
            mask = ids_restore = None
            if mask_ratio > 0:
                x, mask, ids_restore = random_masking(x, mask_ratio, generator, noise)
            cls = (cls_token + pos_embed[:, :1]).to(x.dtype).expand(x.shape[0], -1, -1)
            x = torch.cat([cls, x], dim=1)
            x = enc.blocks(x)
            return enc.norm(x), mask, ids_restore

    def forward(
        self,
        images: torch.Tensor,
        mask_ratio: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> IsstadOutput | InferenceBatch:
        """Masked mode (``mask_ratio > 0``, stage 1) or full mode (stage 2 and inference).

        Args:
            images: ``(B, C, H, W)`` normalised images at ``image_size``.
            mask_ratio: Fraction of patches hidden from the encoder; only used in training mode.
            generator: Optional generator for reproducible masks.

        Returns:
            In training mode an :class:`IsstadOutput`; in eval mode ``InferenceBatch(pred_score, anomaly_map)``
            with the fused score map S at input resolution.
        """
        if not self.training:
            scores, score_map = self.fusion(*self._error_and_probability(images))
            return InferenceBatch(pred_score=scores, anomaly_map=score_map)
        return self.decode(images, mask_ratio, generator, with_classifier=mask_ratio == 0)

    def decode(
        self,
        images: torch.Tensor,
        mask_ratio: float = 0.0,
        generator: torch.Generator | None = None,
        with_classifier: bool = True,
        noise: torch.Tensor | None = None,
    ) -> IsstadOutput:
        """Encoder, decoder and heads; the pixel classifier head runs only when ``with_classifier``."""
        tokens, mask, ids_restore = self.encode(images, mask_ratio, generator, noise)
        levels = self.decoder(tokens, ids_restore)
        patches = self.reconstruction_head(levels[-1][:, 1:])
        reconstruction = unpatchify(patches, self.patch_size, self.grid_size)
        logits = None
        if with_classifier:
            logits = self.pixel_classifier_head([level[:, 1:] for level in levels], self.grid_size)
        return IsstadOutput(reconstruction=reconstruction, level_logits=logits, mask=mask)

    def anomaly_maps(self, images: torch.Tensor) -> AnomalyMaps:
        """Smoothed E, P and S for normalised ``images`` (for reports and the paper's Fig. 5 panels)."""
        return self.fusion.maps(*self._error_and_probability(images))

    def masked_reconstruction(self, images: torch.Tensor) -> torch.Tensor:
        """Reconstruct every patch from passes in which it is masked (Model I inference), deterministically.

        Args:
            images: ``(B, C, H, W)`` normalised images.

        Returns:
            ``(B, C, H, W)`` reconstruction, each patch averaged over the passes that hid it.
        """
        generator = torch.Generator(device=images.device).manual_seed(self.inference_seed)
        length = self.grid_size[0] * self.grid_size[1]
        total = count = None
        for noise in complementary_noise(images.shape[0], length, self.inference_mask_ratio, generator):
            output = self.decode(images, self.inference_mask_ratio, with_classifier=False, noise=noise)
            hidden = cast(torch.Tensor, output.mask).unsqueeze(-1)
            patches = self.patchify(output.reconstruction) * hidden
            total = patches if total is None else total + patches
            count = hidden if count is None else count + hidden
        assert total is not None and count is not None
        return unpatchify(total / count.clamp_min(1), self.patch_size, self.grid_size)

    def _error_and_probability(self, images: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        unit = self.normalization.to_unit
        if self.inference_mask_ratio > 0:
            return squared_error(unit(images), unit(self.masked_reconstruction(images))), None
        need_classifier = self.fusion.source != "reconstruction"
        output = self.decode(images, with_classifier=need_classifier)
        error = None
        if self.fusion.source != "classification":
            error = squared_error(unit(images), unit(output.reconstruction))
        probability = None
        if output.level_logits is not None:
            probability = level_probability(self.pixel_classifier_head.probabilities(output.level_logits))
        return error, probability

    # ----------------------------------------------------------------------------------------------- helpers
    def patchify(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, N, p * p * C)`` with this model's patch size."""
        return patchify(images, self.patch_size)

    def _init_decoder_weights(self) -> None:
        """MAE's initialisation for the decoder and heads: xavier-uniform linears, N(0, 0.02) mask token."""
        torch.nn.init.normal_(self.decoder.mask_token, std=0.02)
        for module in (self.decoder, self.reconstruction_head, self.pixel_classifier_head):
            module.apply(_init_mae_layer)


def _build_encoder(
    image_size: tuple[int, int],
    patch_size: int,
    in_channels: int,
    dim: int,
    depth: int,
    heads: int,
    mlp_ratio: float,
) -> VisionTransformer:
    """A timm ViT with class token and a fixed sin-cos position embedding, as MAE's encoder."""
    encoder = VisionTransformer(
        img_size=image_size,
        patch_size=patch_size,
        in_chans=in_channels,
        num_classes=0,
        embed_dim=dim,
        depth=depth,
        num_heads=heads,
        mlp_ratio=mlp_ratio,
        qkv_bias=True,
        class_token=True,
        global_pool="token",
        norm_layer=_layer_norm,
        attn_layer=IsstadAttention,
    )
    grid = (image_size[0] // patch_size, image_size[1] // patch_size)
    pos_embed, cls_token = cast(nn.Parameter, encoder.pos_embed), cast(nn.Parameter, encoder.cls_token)
    pos_embed.data.copy_(sincos_pos_embed(dim, grid))
    pos_embed.requires_grad_(False)
    torch.nn.init.normal_(cls_token, std=0.02)
    return encoder


def _init_mae_layer(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        torch.nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.constant_(module.bias, 0)
    elif isinstance(module, nn.LayerNorm):
        nn.init.constant_(module.bias, 0)
        nn.init.constant_(module.weight, 1.0)


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    values = tuple(int(s) for s in size)
    if len(values) != 2:
        msg = f"image_size must be an int or (height, width), got {size!r}"
        raise ValueError(msg)
    return (values[0], values[1])


def _check_config(
    image_size: tuple[int, int],
    patch_size: int,
    encoder_dim: int,
    encoder_heads: int,
    decoder_dim: int,
    decoder_depth: int,
    decoder_heads: int,
) -> None:
    """Raise a ``ValueError`` naming the first option that cannot work."""
    if patch_size < 1 or any(side <= 0 or side % patch_size for side in image_size):
        msg = (
            f"image_size {image_size} is not divisible by patch_size {patch_size}: "
            f"use sides that are multiples of {patch_size} (e.g. {max(1, image_size[0] // patch_size) * patch_size})"
        )
        raise ValueError(msg)
    if decoder_depth < 1:
        msg = f"decoder_depth must be >= 1 (the heads read the decoder blocks), got {decoder_depth}"
        raise ValueError(msg)
    for name, dim, heads in (("encoder", encoder_dim, encoder_heads), ("decoder", decoder_dim, decoder_heads)):
        if heads < 1 or dim % heads:
            msg = f"{name}_dim {dim} is not divisible by {name}_heads {heads}: pick a head count that divides it"
            raise ValueError(msg)
        if dim % 4:
            msg = f"{name}_dim must be a multiple of 4 for the 2-D sin-cos position embedding, got {dim}"
            raise ValueError(msg)


def _check_mask_ratio(mask_ratio: float) -> None:
    if not 0 <= mask_ratio < 1:
        msg = f"mask_ratio must be in [0, 1), got {mask_ratio}"
        raise ValueError(msg)
