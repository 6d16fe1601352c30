"""The Transformer parts of the ISSTAD network (paper 3.1): MAE's ViT encoder and decoder, built from timm's blocks.

The encoder is timm's :class:`~timm.models.vision_transformer.VisionTransformer` with a class token and a fixed 2-D
sin-cos position embedding (as MAE); the decoder projects the encoder tokens, puts the learned mask token where
patches were dropped and returns the output of every block, which the pixel classifier head reads.
"""

from __future__ import annotations

from functools import partial
from typing import cast

import torch
from timm.models.vision_transformer import Block, VisionTransformer
from torch import nn

from isstad_plugin.model.attention import IsstadAttention
from isstad_plugin.model.hybrid import CnnPatchEmbed
from isstad_plugin.model.patching import restore_order, sincos_pos_embed
from isstad_plugin.model.presets import EncoderPreset

MLP_RATIO = 4.0
"""MLP width of every block as a multiple of the token width (MAE, timm)."""

layer_norm = partial(nn.LayerNorm, eps=1e-6)
"""MAE's LayerNorm (eps 1e-6)."""


def build_encoder(image_size: tuple[int, int], size: EncoderPreset, backbone: str | None = None) -> VisionTransformer:
    """A timm ViT on RGB images with class token and a fixed sin-cos position embedding, as MAE's encoder.

    With ``backbone`` (a timm CNN name) it is the hybrid encoder: the patch embedding is that CNN's feature maps
    (:class:`~isstad_plugin.model.hybrid.CnnPatchEmbed`) instead of a linear projection of pixel patches.
    """
    patch_size = size.patch_size
    encoder = VisionTransformer(
        img_size=image_size,
        patch_size=patch_size,
        num_classes=0,
        embed_dim=size.dim,
        depth=size.depth,
        num_heads=size.heads,
        mlp_ratio=MLP_RATIO,
        qkv_bias=True,
        norm_layer=layer_norm,
        attn_layer=IsstadAttention,
    )
    if backbone is not None:
        encoder.patch_embed = CnnPatchEmbed(backbone, patch_size, size.dim)
    grid = (image_size[0] // patch_size, image_size[1] // patch_size)
    pos_embed, cls_token = cast(nn.Parameter, encoder.pos_embed), cast(nn.Parameter, encoder.cls_token)
    pos_embed.data.copy_(sincos_pos_embed(size.dim, grid))
    pos_embed.requires_grad_(False)
    torch.nn.init.normal_(cls_token, std=0.02)
    return encoder


class IsstadDecoder(nn.Module):
    """MAE decoder: linear projection, learned mask token, fixed 2-D sin-cos positions, Transformer blocks.

    Returns the output of every block so that the pixel classifier head can read all levels (paper eq. 4-5).

    Args:
        encoder_dim: Width of the encoder tokens.
        grid_size: ``(rows, cols)`` of the patch grid.
        dim: Decoder width.
        depth: Number of decoder blocks.
        heads: Attention heads per block.
    """

    def __init__(self, encoder_dim: int, grid_size: tuple[int, int], dim: int, depth: int, heads: int) -> None:
        super().__init__()
        self.embed = nn.Linear(encoder_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.register_buffer("pos_embed", sincos_pos_embed(dim, grid_size), persistent=False)
        self.pos_embed: torch.Tensor
        self.blocks = nn.ModuleList(
            Block(
                dim,
                heads,
                MLP_RATIO,
                qkv_bias=True,
                norm_layer=cast(type[nn.Module], layer_norm),
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


def init_mae_layer(module: nn.Module) -> None:
    """MAE's initialisation of one layer: xavier-uniform linears with zero bias (LayerNorms keep torch's unit init)."""
    if isinstance(module, nn.Linear):
        torch.nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
