"""The ISSTAD network in pure torch (paper section 3.1, Fig. 1).

A timm ViT encoder, a Transformer decoder (MAE's), a reconstruction head (LayerNorm + linear -> pixels) and a
pixel classifier head fed by every decoder block. In training mode :class:`IsstadModel` returns an
:class:`IsstadOutput`; in eval mode it returns anomalib's ``InferenceBatch(pred_score, anomaly_map)`` computed by the
paper's fusion of E and P (:mod:`isstad_plugin.model.fusion`).

The network takes and returns images in ``[0, 1]``; it normalises them with ImageNet statistics inside itself
(:attr:`IsstadModel.normalization`, exported with it), as the MAE checkpoints expect, and maps the reconstruction head's
output back to ``[0, 1]``. The pre-processor only resizes.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, cast

import torch
from anomalib.data import InferenceBatch
from torch import nn

from isstad_plugin.model.config import NetworkConfig
from isstad_plugin.model.fusion import AnomalyFusion, AnomalyMaps, level_probability
from isstad_plugin.model.fusion import reconstruction_error as squared_error
from isstad_plugin.model.heads import PixelClassifierHead, ReconstructionHead
from isstad_plugin.model.hybrid import CnnPatchEmbed, hide_masked_patches
from isstad_plugin.model.normalization import PixelNormalization
from isstad_plugin.model.patching import complementary_noise, noise_mask, patchify, random_masking, unpatchify
from isstad_plugin.model.tiling import check_tile_size, tiler_for
from isstad_plugin.model.transformer import IsstadDecoder, build_encoder, init_mae_layer

IN_CHANNELS = 3
"""Image channels (RGB; grey images are read as three equal channels)."""
INFERENCE_SEED = 0
"""Seed of the masks of masked inference (Model I), so that its scores are deterministic."""


class IsstadOutput(NamedTuple):
    """What the network returns in training mode.

    Attributes:
        reconstruction: ``(B, C, H, W)`` reconstructed image Î in ``[0, 1]`` pixels (not clamped).
        level_logits: ``(B, L, 1, H, W)`` pixel classifier logits of every decoder level, or ``None`` in masked
            mode.
        mask: ``(B, N)`` patch mask (1 = masked) in masked mode, else ``None``.
    """

    reconstruction: torch.Tensor
    level_logits: torch.Tensor | None
    mask: torch.Tensor | None


class IsstadModel(nn.Module):
    """ViT encoder + Transformer decoder + reconstruction head + pixel classifier head (paper Fig. 1).

    Args:
        config: The network's options (:class:`~isstad_plugin.model.config.NetworkConfig`); ``None``: the paper's.
        **options: Fields of :class:`~isstad_plugin.model.config.NetworkConfig` that replace ``config``'s, e.g.
            ``IsstadModel(image_size=128, encoder="vit_tiny_patch8")``.

    Raises:
        ValueError: On a configuration that cannot work, naming the option.
    """

    def __init__(self, config: NetworkConfig | None = None, **options: Any) -> None:
        super().__init__()
        self.config = config = dataclasses.replace(config or NetworkConfig(), **options)
        encoder, decoder_dim, decoder_depth = config.encoder_size, config.decoder_dim, config.decoder_depth
        self.patch_size = encoder.patch_size
        self.image_size = config.network_hw
        self.grid_size = (self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size)
        self.inference_mask_ratio = config.inference_mask_ratio
        self.encoder = build_encoder(self.image_size, encoder, config.encoder_backbone)
        self.decoder = IsstadDecoder(encoder.dim, self.grid_size, decoder_dim, decoder_depth, config.decoder_heads)
        self.reconstruction_head = ReconstructionHead(decoder_dim, self.patch_size, IN_CHANNELS)
        self.pixel_classifier_head = PixelClassifierHead(
            decoder_dim, self.patch_size, decoder_depth, config.classifier_upsampling
        )
        self.normalization = PixelNormalization()
        self.fusion = AnomalyFusion(
            sigma=config.smoothing_sigma,
            aggregation=config.score_aggregation,
            topk_fraction=config.topk_fraction,
            source=config.map_source,
        )
        self.encoder_frozen = False
        self.tiler = tiler_for(config)  # anomalib's TilerConfigurationCallback may set another
        torch.nn.init.normal_(self.decoder.mask_token, std=0.02)  # MAE's initialisation of the decoder and heads
        for module in (self.decoder, self.reconstruction_head, self.pixel_classifier_head):
            module.apply(init_mae_layer)

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

    def compile_blocks(self) -> None:
        """``torch.compile`` every encoder and decoder block in place (inductor; state-dict keys unchanged)."""
        for block in [*cast(nn.Sequential, self.encoder.blocks), *self.decoder.blocks]:
            block.compile()

    # ----------------------------------------------------------------------------------------------- forward
    def encode(
        self,
        images: torch.Tensor,
        mask_ratio: float = 0.0,
        noise: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Run the ViT encoder, on a random subset of patches when ``mask_ratio > 0``.

        Args:
            images: ``(B, C, H, W)`` images in ``[0, 1]`` (normalised here, with :attr:`normalization`).
            mask_ratio: Fraction of patches dropped before the encoder (MAE); ``0`` keeps all, in order.
            noise: Optional ``(B, N)`` masking scores (lowest kept) instead of random ones.

        Returns:
            ``(tokens, mask, ids_restore)``: ``(B, 1 + K, D)`` encoder tokens with the class token first; ``mask`` and
            ``ids_restore`` as in :func:`~isstad_plugin.model.patching.random_masking`, or ``None`` when nothing is
            masked.
        """
        model_images = self.normalization.to_model(images)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.encoder_frozen):
            enc = self.encoder
            pos_embed, cls_token = cast(torch.Tensor, enc.pos_embed), cast(torch.Tensor, enc.cls_token)
            if mask_ratio > 0 and isinstance(enc.patch_embed, CnnPatchEmbed):  # hide masked pixels from the CNN
                if noise is None:
                    noise = torch.rand(len(model_images), self.grid_size[0] * self.grid_size[1],
                                       device=model_images.device)  # fmt: skip
                model_images = hide_masked_patches(model_images, noise_mask(noise, mask_ratio), self.patch_size)
            x = enc.patch_embed(model_images)
            x = x + pos_embed[:, 1:].to(x.dtype)
            mask = ids_restore = None
            if mask_ratio > 0:
                x, mask, ids_restore = random_masking(x, mask_ratio, noise=noise)
            cls = (cls_token + pos_embed[:, :1]).to(x.dtype).expand(x.shape[0], -1, -1)
            x = enc.blocks(torch.cat([cls, x], dim=1))
            return enc.norm(x), mask, ids_restore

    def forward(self, images: torch.Tensor, mask_ratio: float = 0.0) -> IsstadOutput | InferenceBatch:
        """Masked mode (``mask_ratio > 0``, stage 1) or full mode (stage 2 and inference).

        Args:
            images: ``(B, C, H, W)`` images in ``[0, 1]`` at ``image_size``.
            mask_ratio: Fraction of patches hidden from the encoder; only used in training mode.

        Returns:
            In training mode an :class:`IsstadOutput`; in eval mode ``InferenceBatch(pred_score, anomaly_map)``
            with the fused score map S at input resolution.
        """
        if not self.training:
            scores, score_map = self.fusion(*self._full_maps(images))
            return InferenceBatch(pred_score=scores, anomaly_map=score_map)
        return self.reconstruct_and_classify(images, mask_ratio, with_classifier=mask_ratio == 0)

    def reconstruct_and_classify(
        self,
        images: torch.Tensor,
        mask_ratio: float = 0.0,
        with_classifier: bool = True,
        noise: torch.Tensor | None = None,
    ) -> IsstadOutput:
        """Encoder, decoder and heads on ``[0, 1]`` images; the reconstruction is returned in ``[0, 1]`` too.

        The network itself works in ImageNet-normalised space (as the MAE checkpoints): :attr:`normalization` maps
        the input there and the reconstruction head's output back. The pixel classifier head runs only when
        ``with_classifier``.
        """
        tokens, mask, ids_restore = self.encode(images, mask_ratio, noise)
        levels = self.decoder(tokens, ids_restore)
        patches = self.reconstruction_head(levels[-1][:, 1:])
        reconstruction = self.normalization.to_unit(unpatchify(patches, self.patch_size, self.grid_size))
        logits = None
        if with_classifier:
            logits = self.pixel_classifier_head([level[:, 1:] for level in levels], self.grid_size)
        return IsstadOutput(reconstruction=reconstruction, level_logits=logits, mask=mask)

    def anomaly_maps(self, images: torch.Tensor) -> AnomalyMaps:
        """Smoothed E, P and S for ``[0, 1]`` ``images`` (for reports and the paper's Fig. 5 panels)."""
        return self.fusion.maps(*self._full_maps(images))

    def _full_maps(self, images: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Raw E and P of whole images: per tile and stitched back with anomalib's ``Tiler`` when the model tiles.

        The maps are stitched before the fusion smooths them, so tile seams are smoothed like any other pixel.
        """
        tiler = self.tiler
        if tiler is None:
            return self._error_and_probability(images)
        check_tile_size(tiler, self.image_size)
        error, probability = (
            None if m is None else tiler.untile(m) for m in self._error_and_probability(tiler.tile(images))
        )
        return error, probability

    def masked_reconstruction(self, images: torch.Tensor) -> torch.Tensor:
        """Reconstruct every patch from passes in which it is masked (Model I inference), deterministically.

        Args:
            images: ``(B, C, H, W)`` images in ``[0, 1]``.

        Returns:
            ``(B, C, H, W)`` reconstruction in ``[0, 1]``, each patch averaged over the passes that hid it.
        """
        generator = torch.Generator(device=images.device).manual_seed(INFERENCE_SEED)
        ratio, length = self.inference_mask_ratio, self.grid_size[0] * self.grid_size[1]
        total = count = images.new_zeros(())
        for noise in complementary_noise(len(images), length, ratio, generator):
            output = self.reconstruct_and_classify(images, ratio, with_classifier=False, noise=noise)
            hidden = cast(torch.Tensor, output.mask).unsqueeze(-1)
            total = total + patchify(output.reconstruction, self.patch_size) * hidden
            count = count + hidden
        return unpatchify(total / count.clamp_min(1), self.patch_size, self.grid_size)

    def _error_and_probability(self, images: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if self.inference_mask_ratio > 0:
            return squared_error(images, self.masked_reconstruction(images)), None
        source = self.fusion.source  # S reads E and P; the ablation models' E or P alone
        output = self.reconstruct_and_classify(images, with_classifier=source != "reconstruction")
        error = squared_error(images, output.reconstruction) if source != "classification" else None
        logits = output.level_logits
        probability = None if logits is None else level_probability(self.pixel_classifier_head.probabilities(logits))
        return error, probability
