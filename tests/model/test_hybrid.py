"""The hybrid encoder: an ImageNet CNN's feature maps as the ViT's tokens (model/hybrid.py)."""

from __future__ import annotations

import pytest
import torch

from isstad_plugin.model.hybrid import CnnPatchEmbed, hide_masked_patches
from isstad_plugin.model.patching import noise_mask, random_masking
from tests.helpers import tiny_model

HYBRID = {"encoder_backbone": "efficientnet_lite0"}


def test_tokens_are_the_cnn_maps_on_the_patch_grid():
    model = tiny_model(image_size=(32, 48), **HYBRID)
    embed = model.encoder.patch_embed
    assert isinstance(embed, CnnPatchEmbed)
    assert embed.backbone.feature_info.reduction() == [4, 8, 16]  # p / 2, p, 2p for 8-px patches
    tokens = embed(torch.rand(2, 3, 32, 48))
    assert tokens.shape == (2, 4 * 6, model.config.encoder_size.dim)


def test_the_cnn_stays_frozen_and_in_eval_mode_while_the_projection_trains():
    model = tiny_model(**HYBRID).train()
    embed = model.encoder.patch_embed
    assert not embed.backbone.training and embed.proj.training
    assert not any(p.requires_grad for p in embed.backbone.parameters())
    output = model.reconstruct_and_classify(torch.rand(2, 3, 32, 32), mask_ratio=0.5)
    output.reconstruction.mean().backward()
    assert embed.proj.weight.grad is not None
    assert all(p.grad is None for p in embed.backbone.parameters())
    running = embed.backbone.bn1.running_mean.clone()
    model.reconstruct_and_classify(torch.rand(2, 3, 32, 32))
    assert torch.equal(running, embed.backbone.bn1.running_mean)  # eval-mode batch norms learn no statistics


def test_noise_mask_is_the_mask_random_masking_draws():
    noise = torch.rand(3, 16, generator=torch.Generator().manual_seed(0))
    _, mask, _ = random_masking(torch.zeros(3, 16, 4), 0.75, noise=noise)
    assert torch.equal(noise_mask(noise, 0.75), mask)


def test_masked_patches_are_hidden_from_the_cnn():
    """Stage 1: what masked patches hold cannot reach the visible tokens through the CNN's receptive field."""
    model = tiny_model(**HYBRID).eval()
    images = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    noise = torch.rand(1, 16, generator=torch.Generator().manual_seed(1))
    mask = noise_mask(noise, 0.75)
    changed = images + hide_masked_patches(torch.rand_like(images), 1 - mask, 8)  # new content in masked patches only
    assert not torch.equal(changed, images)
    with torch.no_grad():
        first, _, _ = model.encode(images, 0.75, noise=noise)
        second, _, _ = model.encode(changed, 0.75, noise=noise)
        unmasked_first, _, _ = model.encode(images)
        unmasked_second, _, _ = model.encode(changed)
    assert torch.equal(first, second)
    assert not torch.allclose(unmasked_first, unmasked_second)


def test_plain_encoder_masking_is_unchanged_by_the_hybrid_path():
    torch.manual_seed(0)
    model = tiny_model().train()
    torch.manual_seed(3)
    first = model.reconstruct_and_classify(torch.ones(1, 3, 32, 32), 0.75, with_classifier=False).mask
    torch.manual_seed(3)
    expected = random_masking(torch.zeros(1, 16, 1), 0.75)[1]
    assert torch.equal(first, expected)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"encoder_backbone": "efficientnet_lite9"}, r"unknown encoder_backbone 'efficientnet_lite9': did you mean"),
        ({"encoder_backbone": "efficientnet_lite0", "patch_size": 12}, r"none at the patch size 12"),
    ],
)
def test_bad_backbones_are_one_line(options, message):
    with pytest.raises(ValueError, match=message):
        tiny_model(image_size=48, **options)
