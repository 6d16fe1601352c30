"""The pure-torch network: shapes, patching, masking, determinism, fusion and configuration errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from isstad_plugin import IsstadModel
from isstad_plugin.model.fusion import AnomalyFusion, aggregate_score
from isstad_plugin.model.patching import patchify, random_masking, restore_order, unpatchify
from tests.helpers import tiny_model


@pytest.mark.parametrize("size", [(32, 32), (32, 48)])
def test_patchify_unpatchify_round_trip(size):
    images = torch.randn(2, 3, *size)
    patches = patchify(images, 8)
    assert patches.shape == (2, (size[0] // 8) * (size[1] // 8), 8 * 8 * 3)
    assert torch.equal(unpatchify(patches, 8, (size[0] // 8, size[1] // 8)), images)


def test_patchify_puts_one_patch_per_token():
    images = torch.zeros(1, 1, 16, 16)
    images[0, 0, 8:16, 0:8] = 1.0  # bottom-left patch -> token 2 in row-major order
    patches = patchify(images, 8)
    assert patches[0].sum(dim=1).tolist() == [0.0, 0.0, 64.0, 0.0]


@pytest.mark.parametrize("ratio", [0.0, 0.5, 0.75, 0.9])
def test_random_masking_keeps_round_fraction_and_restores_order(ratio):
    tokens = torch.arange(2 * 36, dtype=torch.float32).reshape(2, 36, 1).expand(-1, -1, 4).contiguous()
    kept, mask, ids_restore = random_masking(tokens, ratio, torch.Generator().manual_seed(0))
    keep = round(36 * (1 - ratio))
    assert kept.shape == (2, keep, 4)
    assert mask.sum(dim=1).tolist() == [36 - keep] * 2
    token = torch.full((1, 1, 4), -1.0)
    restored = restore_order(kept, ids_restore, token)
    visible = mask == 0
    assert torch.equal(restored[visible], tokens[visible])
    assert torch.all(restored[~visible] == -1)


def test_shapes_in_every_mode():
    model = tiny_model(image_size=(32, 48))
    images = torch.randn(3, 3, 32, 48)
    masked = model(images, mask_ratio=0.75)
    assert masked.reconstruction.shape == (3, 3, 32, 48)
    assert masked.level_logits is None
    assert masked.mask.shape == (3, 4 * 6)
    full = model(images)
    assert full.mask is None
    assert full.level_logits.shape == (3, 2, 1, 32, 48)  # one map per decoder block
    model.eval()
    result = model(images)
    assert result.pred_score.shape == (3,)
    assert result.anomaly_map.shape == (3, 1, 32, 48)


def test_the_head_is_one_projection_per_level_with_one_logit_per_pixel():
    model = tiny_model()
    assert len(model.pixel_classifier_head.proj) == model.config.decoder_depth
    logits = model(torch.randn(2, 3, 32, 32)).level_logits
    assert logits.shape == (2, 2, 1, 32, 32)
    probs = model.pixel_classifier_head.probabilities(logits)
    assert torch.equal(probs, torch.sigmoid(logits[:, :, 0]))


def test_eval_forward_is_deterministic_and_uses_every_patch_in_order():
    model = tiny_model().eval()
    images = torch.randn(2, 3, 32, 32)
    first, second = model(images), model(images)
    assert torch.equal(first.pred_score, second.pred_score)
    assert torch.equal(first.anomaly_map, second.anomaly_map)
    # Changing one patch changes the reconstruction of that patch most: tokens are not shuffled.
    with torch.no_grad():
        base = model.reconstruct_and_classify(images).reconstruction
        changed = images.clone()
        changed[:, :, :8, :8] += 3.0
        delta = (model.reconstruct_and_classify(changed).reconstruction - base).abs().mean(dim=(0, 1))
    assert delta[:8, :8].mean() > delta[8:, 8:].mean()


def test_frozen_encoder_gets_no_gradient_and_stays_in_eval():
    model = tiny_model()
    model.freeze_encoder()
    model.train()
    assert not model.encoder.training
    assert model.decoder.training
    out = model(torch.randn(2, 3, 32, 32))
    (out.reconstruction.mean() + out.level_logits.mean()).backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    assert model.decoder.embed.weight.grad is not None


def test_fusion_matches_hand_computed_example_without_smoothing():
    fusion = AnomalyFusion(sigma=0)
    error = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    prob = torch.tensor([[[[0.5, 0.0], [1.0, 0.25]]]])
    score, score_map = fusion(error, prob)
    assert torch.allclose(score_map, torch.tensor([[[[0.5, 0.0], [3.0, 1.0]]]]))
    assert torch.allclose(score, torch.tensor([4.5 / 4]))
    assert aggregate_score(score_map, "max").item() == 3.0
    assert aggregate_score(score_map, "topk", topk_fraction=0.5).item() == 2.0


def test_fusion_smoothing_matches_scipy_gaussian_filter():
    rng = np.random.default_rng(0)
    error_np, prob_np = rng.random((40, 36)), rng.random((40, 36))
    fusion = AnomalyFusion(sigma=2.0)
    maps = fusion.maps(torch.from_numpy(error_np)[None, None].float(), torch.from_numpy(prob_np)[None, None].float())
    # torch "reflect" padding is scipy's "mirror" mode; same 4-sigma support.
    g_error = gaussian_filter(error_np, 2.0, mode="mirror", truncate=4.0)
    g_prob = gaussian_filter(prob_np, 2.0, mode="mirror", truncate=4.0)
    expected = gaussian_filter(g_error * g_prob, 2.0, mode="mirror", truncate=4.0)
    assert np.allclose(maps.error[0, 0].numpy(), g_error, atol=1e-5)
    assert np.allclose(maps.score[0, 0].numpy(), expected, atol=1e-5)


def test_model_fusion_is_reconstruction_error_times_probability():
    model = tiny_model(smoothing_sigma=0.0).eval()
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out = model.reconstruct_and_classify(images)
        error = (images - out.reconstruction).pow(2).mean(dim=1, keepdim=True)
        prob = torch.sigmoid(out.level_logits[:, :, 0]).mean(dim=1, keepdim=True)
        result = model(images)
    assert torch.allclose(result.anomaly_map, error * prob, atol=1e-6)
    assert torch.allclose(result.pred_score, (error * prob).mean(dim=(1, 2, 3)), atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"image_size": 30}, "image_size"),
        ({"encoder_dim": 30, "encoder_heads": 4}, "encoder_dim"),
        ({"decoder_dim": 30, "decoder_heads": 4}, "decoder_dim"),
        ({"mask_ratio": 1.0}, "mask_ratio"),
        ({"mask_ratio": -0.1}, "mask_ratio"),
        ({"decoder_depth": 0}, "decoder_depth"),
        ({"encoder": "vit_gigantic"}, "encoder"),
        ({"score_aggregation": "median"}, "score_aggregation"),
        ({"smoothing_sigma": -1.0}, "smoothing_sigma"),
    ],
)
def test_bad_configuration_names_the_option(kwargs, option):
    base = {"image_size": 32, "encoder": "vit_micro_patch8", "decoder_dim": 32, "decoder_depth": 1, "decoder_heads": 4}
    with pytest.raises(ValueError, match=option):
        IsstadModel(**{**base, **kwargs})


def test_ssim_loss_stays_finite_under_bf16_autocast():
    from isstad_plugin.model.loss import ssim_loss_fp32

    generator = torch.Generator().manual_seed(0)
    target = 0.5 + 0.01 * torch.rand(4, 3, 64, 64, generator=generator)  # flat images: tiny variances
    reconstruction = (target + 0.005 * torch.randn(4, 3, 64, 64, generator=generator)).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = ssim_loss_fp32(reconstruction, target)
    assert loss.dtype == torch.float32
    # bf16 convolutions would give 0.082 here (and +-inf on some batches); float32 gives the true 0.027
    assert float(loss) == pytest.approx(float(ssim_loss_fp32(reconstruction, target)), abs=1e-6)
    assert float(loss) == pytest.approx(0.027, abs=0.002)
