"""Loading official-format MAE checkpoints, built here in the official key layout (nothing is downloaded)."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from timm.models.vision_transformer import Block, PatchEmbed
from torch import nn

from isstad_plugin.model.patching import patchify, sincos_pos_embed
from isstad_plugin.model.weights import load_mae_weights
from tests.helpers import tiny_model


class MiniMae(nn.Module):
    """The attribute layout of facebookresearch/mae ``MaskedAutoencoderViT``, at a tiny size."""

    def __init__(self, size=32, patch=8, dim=32, depth=2, heads=2, dec_dim=32, dec_depth=2, dec_heads=2):
        super().__init__()
        norm = partial(nn.LayerNorm, eps=1e-6)
        grid = size // patch
        self.patch = patch
        self.patch_embed = PatchEmbed(size, patch, 3, dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(sincos_pos_embed(dim, (grid, grid)), requires_grad=False)
        self.blocks = nn.ModuleList(Block(dim, heads, 4.0, qkv_bias=True, norm_layer=norm) for _ in range(depth))
        self.norm = norm(dim)
        self.decoder_embed = nn.Linear(dim, dec_dim)
        self.mask_token = nn.Parameter(torch.randn(1, 1, dec_dim) * 0.02)
        self.decoder_pos_embed = nn.Parameter(sincos_pos_embed(dec_dim, (grid, grid)), requires_grad=False)
        self.decoder_blocks = nn.ModuleList(
            Block(dec_dim, dec_heads, 4.0, qkv_bias=True, norm_layer=norm) for _ in range(dec_depth)
        )
        self.decoder_norm = norm(dec_dim)
        self.decoder_pred = nn.Linear(dec_dim, patch * patch * 3)
        for p in self.parameters():  # random non-default values so that a wrong mapping shows
            if p.requires_grad:
                nn.init.normal_(p, std=0.1)

    def forward_unmasked(self, images):
        """MAE's forward_encoder/forward_decoder with mask ratio 0 and no shuffling, returning patch predictions."""
        x = self.patch_embed(images) + self.pos_embed[:, 1:]
        x = torch.cat([(self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1), x], dim=1)
        for blk in self.blocks:
            x = blk(x)
        x = self.decoder_embed(self.norm(x)) + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]


def save_checkpoint(tmp_path, module, drop_decoder=False):
    state = module.state_dict()
    if drop_decoder:  # like mae_pretrain_vit_large.pth: encoder only
        state = {k: v for k, v in state.items() if not k.startswith(("decoder", "mask_token"))}
    path = tmp_path / "mae.pth"
    torch.save({"model": state}, path)
    return path


def test_visualize_format_loads_encoder_decoder_and_reconstruction_head(tmp_path):
    mae = MiniMae()
    path = save_checkpoint(tmp_path, mae)
    model = tiny_model()
    report = load_mae_weights(model, path)
    assert not report.unexpected
    assert all(k.startswith("pixel_classifier_head") for k in report.missing)
    images = torch.rand(2, 3, 32, 32)  # [0, 1] pixels; MAE reads and writes them ImageNet-normalised
    with torch.no_grad():
        expected = mae.forward_unmasked(model.normalization.to_model(images))
        got = patchify(
            model.normalization.to_model(model.reconstruct_and_classify(images).reconstruction), model.patch_size
        )
    assert torch.allclose(got, expected, atol=1e-5)


def test_encoder_only_file_leaves_decoder_untouched(tmp_path):
    path = save_checkpoint(tmp_path, MiniMae(), drop_decoder=True)
    model = tiny_model()
    before = model.decoder.embed.weight.clone()
    report = load_mae_weights(model, path)
    assert "encoder.blocks.0.attn.qkv.weight" in report.loaded
    assert "decoder.embed.weight" in report.missing
    assert torch.equal(model.decoder.embed.weight, before)


def test_a_decoder_of_another_width_is_left_out_and_the_encoder_loaded(tmp_path, caplog):
    path = save_checkpoint(tmp_path, MiniMae(dec_dim=64))  # the model's decoder is 32 wide
    model = tiny_model()
    before = model.decoder.embed.weight.clone()
    with caplog.at_level("INFO", logger="isstad_plugin.model.weights"):
        report = load_mae_weights(model, path)
    assert "encoder.blocks.0.attn.qkv.weight" in report.loaded
    assert not any(k.startswith(("decoder.", "reconstruction_head.")) for k in report.loaded)
    assert torch.equal(model.decoder.embed.weight, before)
    assert "its decoder does not fit" in caplog.text


def test_extra_decoder_blocks_in_file_are_reported_not_loaded(tmp_path):
    path = save_checkpoint(tmp_path, MiniMae(dec_depth=3))
    report = load_mae_weights(tiny_model(), path)
    assert any(k.startswith("decoder.blocks.2.") for k in report.unexpected)


def test_other_image_size_reuses_the_fixed_position_tables(tmp_path):
    path = save_checkpoint(tmp_path, MiniMae())
    model = tiny_model(image_size=48)
    load_mae_weights(model, path)
    assert model.encoder.pos_embed.shape[1] == 1 + 36


def test_missing_file_is_one_clear_line(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"encoder_weights file not found: .*missing\.pth.*local path"):
        load_mae_weights(tiny_model(), tmp_path / "missing.pth")


def test_wrong_architecture_names_key_and_both_shapes(tmp_path):
    path = save_checkpoint(tmp_path, MiniMae(dim=64, heads=4))
    with pytest.raises(ValueError, match=r"'encoder\.cls_token' has shape \(1, 1, 64\) in the file and \(1, 1, 32\)"):
        load_mae_weights(tiny_model(), path)


def test_not_an_mae_file(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"state_dict": {"conv.weight": torch.zeros(1)}}, path)
    with pytest.raises(ValueError, match="not an MAE or timm ViT checkpoint"):
        load_mae_weights(tiny_model(), path)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="could not be read"):
        load_mae_weights(tiny_model(), garbage)


def test_unreachable_hub_says_pass_a_local_file(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="pass its local path"):
        load_mae_weights(tiny_model(), "timm:vit_tiny_patch16_224.augreg_in21k")


def _timm_vit(**options):
    """A tiny timm ViT with a LEARNED position table (as DeiT, AugReg) and random weights, in timm's own layout."""
    from timm.models.vision_transformer import VisionTransformer

    vit = VisionTransformer(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=10, **options)
    for p in vit.parameters():
        nn.init.normal_(p, std=0.1)
    return vit.eval()


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_a_timm_layout_vit_file_loads_into_the_encoder(tmp_path, suffix):
    vit = _timm_vit()
    path = tmp_path / f"vit_tiny_timm{suffix}"
    if suffix == ".pth":
        torch.save(vit.state_dict(), path)
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(path))
    model = tiny_model().eval()
    report = load_mae_weights(model, path)
    assert "encoder.pos_embed" in report.loaded and "encoder.blocks.1.mlp.fc2.weight" in report.loaded
    assert "encoder.head.weight" in report.unexpected
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        tokens, _, _ = model.encode(images)
        expected = vit.forward_features(model.normalization.to_model(images))
    assert torch.allclose(tokens, expected, atol=1e-5)


def test_a_learned_position_table_is_resized_to_the_model_grid(tmp_path):
    from timm.layers import resample_abs_pos_embed

    vit = _timm_vit()
    path = tmp_path / "vit.pth"
    torch.save(vit.state_dict(), path)
    model = tiny_model(image_size=(48, 64))
    load_mae_weights(model, path)
    expected = resample_abs_pos_embed(vit.pos_embed.detach(), [6, 8], num_prefix_tokens=1)
    assert torch.allclose(model.encoder.pos_embed, expected)


def test_a_cnn_file_is_not_a_vit_and_says_so_in_one_line(tmp_path):
    import timm

    path = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet18").state_dict(), path)
    with pytest.raises(ValueError, match=r"not an MAE or timm ViT checkpoint .* configured encoder vit_micro_patch8"):
        load_mae_weights(tiny_model(), path)
