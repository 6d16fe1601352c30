"""Speed paths keep the numerics: train-data cache, precision choice, fused optimisers, attention."""

from __future__ import annotations

import logging
import shutil

import pytest
import torch
from lightning.pytorch import Callback
from torchvision.transforms.v2 import Compose, Normalize, RandomHorizontalFlip, Resize

from isstad_plugin.data.cache import CachedTrainDataset, TrainDataCache, split_deterministic
from tests.helpers import engine_for, small_datamodule, tiny_isstad


def _setup(root, **overrides):
    datamodule = small_datamodule(root, **overrides)
    datamodule.setup("fit")
    datamodule.train_data.augmentations = Resize((64, 64), antialias=True)  # as anomalib adds the model's Resize
    return datamodule


def test_split_deterministic_keeps_random_transforms_per_access():
    flip = RandomHorizontalFlip()
    resize, norm = Resize(8), Normalize([0.5], [0.5])
    assert split_deterministic(None) == ([], [])
    assert split_deterministic(resize) == ([resize], [])
    assert split_deterministic(Compose([resize, norm])) == ([resize, norm], [])
    assert split_deterministic(Compose([resize, flip, norm])) == ([resize], [flip, norm])
    assert split_deterministic(Compose([flip, resize])) == ([], [flip, resize])


def test_cached_items_equal_uncached(dataset_root):
    datamodule = _setup(dataset_root)
    dataset = datamodule.train_data
    cached = CachedTrainDataset(dataset)
    assert "decoded and resized once" in cached.fill(max_bytes=1 << 30)
    assert len(cached) == len(dataset) and cached.collate_fn == dataset.collate_fn
    for index in (0, len(dataset) - 1):
        a, b = dataset[index], cached[index]
        assert torch.equal(a.image, b.image) and torch.equal(a.gt_mask, b.gt_mask)
        assert a.image_path == b.image_path and int(a.gt_label) == int(b.gt_label)
    assert dataset.augmentations is not None  # the dataset's own pipeline is left as it was


def test_random_augmentations_still_run_on_every_access(dataset_root):
    datamodule = _setup(dataset_root)
    dataset = datamodule.train_data
    dataset.augmentations = Compose([Resize((64, 64), antialias=True), RandomHorizontalFlip(p=1.0)])
    cached = CachedTrainDataset(dataset)
    assert "per access: RandomHorizontalFlip" in cached.fill(max_bytes=1 << 30)
    assert torch.equal(cached[0].image, dataset[0].image)
    assert torch.equal(cached.items[0].image.flip(-1), cached[0].image)  # the flip is not cached


def test_cache_declines_over_the_limit_with_one_line(dataset_root):
    cached = CachedTrainDataset(_setup(dataset_root).train_data)
    message = cached.fill(max_bytes=1000)
    assert "--model.train_cache_gb" in message and "\n" not in message
    assert cached.items is None
    assert cached[0].image.shape[-2:] == (64, 64)  # read from disk as before


class _Probe(Callback):
    def __init__(self):
        self.datasets = []

    def on_train_epoch_start(self, trainer, pl_module):
        self.datasets.append(trainer.train_dataloader.dataset)


@pytest.mark.parametrize("cache_gb", [4.0, 0.0])
def test_fit_uses_the_cache_and_gives_the_datamodule_back(dataset_root, tmp_path, cache_gb, caplog):
    torch.manual_seed(0)
    datamodule = small_datamodule(dataset_root)
    model = tiny_isstad(stage1_epochs=1, train_cache_gb=cache_gb)
    probe = _Probe()
    engine = engine_for(tmp_path, max_epochs=2, callbacks=[probe], limit_train_batches=2, limit_val_batches=1)
    with caplog.at_level(logging.INFO, logger="isstad_plugin.data.cache"):
        engine.fit(model, datamodule=datamodule)
    if cache_gb:
        assert all(isinstance(d, CachedTrainDataset) and d.items is not None for d in probe.datasets)
        assert any("train-data cache:" in r.message for r in caplog.records)
    else:
        assert not any(isinstance(d, CachedTrainDataset) for d in probe.datasets)
    assert not isinstance(datamodule.train_data, CachedTrainDataset)


def test_fit_losses_equal_with_and_without_cache(dataset_root, tmp_path):
    def losses(cache_gb):
        torch.manual_seed(0)
        model = tiny_isstad(stage1_epochs=1, train_cache_gb=cache_gb)
        engine = engine_for(tmp_path / str(cache_gb), max_epochs=2, limit_train_batches=2, limit_val_batches=1)
        engine.fit(model, datamodule=small_datamodule(dataset_root, seed=0))
        return {k: float(v) for k, v in engine.trainer.callback_metrics.items() if k.startswith("train")}

    with_cache, without = losses(4.0), losses(0.0)
    assert with_cache and with_cache == pytest.approx(without, rel=1e-6, abs=1e-7)


def test_cache_callback_ignores_fits_without_datamodule():
    callback = TrainDataCache()

    class _Trainer:
        datamodule = None

    callback.setup(_Trainer(), None, "fit")  # type: ignore[arg-type]
    assert callback._wrapped is None


# ---------------------------------------------------------------------------------------------------- precision
def test_cpu_flags_and_bf16_detection(tmp_path):
    from isstad_plugin.training.precision import bf16_is_fast, cpu_flags

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert cpu_flags(info) == {"fpu", "avx2", "avx512f", "avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") is None
    assert bf16_is_fast("cpu", {"avx512f", "avx512_bf16"})[0]
    assert bf16_is_fast("cpu", {"amx_bf16"})[0]
    fast, reason = bf16_is_fast("cpu", {"avx2", "avx512f"})
    assert not fast and "no avx512_bf16" in reason
    assert not bf16_is_fast("mps")[0]


def test_bf16_is_off_where_the_cpu_flags_cannot_be_read(monkeypatch):
    from isstad_plugin.training import precision

    monkeypatch.setattr(precision, "cpu_flags", lambda: None)
    assert precision.bf16_is_fast("cpu") == (False, "CPU flags unreadable (no /proc/cpuinfo)")


def test_bf16_on_cuda_follows_compute_capability(monkeypatch):
    from isstad_plugin.training import precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    assert precision.bf16_is_fast("cuda")[0]
    assert precision.default_device() == "cuda"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    assert not precision.bf16_is_fast("cuda:0")[0]


def test_resolve_precision_keeps_a_forced_choice(monkeypatch, caplog):
    from isstad_plugin.training import precision

    assert precision.resolve_precision("32-true") == "32-true"
    assert precision.resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"
    precision.hardware_precision.cache_clear()
    monkeypatch.setattr(precision, "bf16_is_fast", lambda device: (False, "test"))
    with caplog.at_level(logging.INFO, logger="isstad_plugin.training.precision"):
        assert precision.resolve_precision("auto", "cpu") == "32-true"
        assert precision.resolve_precision(None, "cpu") == "32-true"
    assert sum("ISSTAD precision on cpu: 32-true" in r.message for r in caplog.records) == 1  # logged once
    precision.hardware_precision.cache_clear()


@pytest.mark.parametrize("forced", ["bf16-mixed", "32-true"])
def test_hardware_precision_plugin_drives_autocast(forced):
    from lightning.pytorch import Trainer

    from isstad_plugin import HardwarePrecision

    plugin = HardwarePrecision(device="cpu", precision=forced)
    trainer = Trainer(plugins=[plugin], accelerator="cpu", devices=1, logger=False, enable_checkpointing=False)
    assert trainer.precision == forced
    with trainer.strategy.precision_plugin.forward_context():
        dtype = (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
    assert dtype == (torch.bfloat16 if forced == "bf16-mixed" else torch.float32)
    with pytest.raises(ValueError, match="HardwarePrecision precision"):
        HardwarePrecision(device="cpu", precision="16-mixed")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------- the step
def _attention_pair():
    from timm.layers import Attention

    from isstad_plugin.model.attention import IsstadAttention

    torch.manual_seed(0)
    ours, timm_attention = IsstadAttention(64, num_heads=2), Attention(64, num_heads=2)
    timm_attention.load_state_dict(ours.state_dict())
    return ours, timm_attention, torch.randn(3, 17, 64)


def test_attention_explicit_path_equals_sdpa_in_float32(monkeypatch):
    from isstad_plugin.model import attention

    ours, reference, x = _attention_pair()
    assert torch.equal(ours(x), reference(x))  # float32: timm's own SDPA path
    monkeypatch.setattr(attention, "explicit_attention_wins", lambda x: True)
    explicit = ours(x)
    torch.testing.assert_close(explicit, reference(x), rtol=1e-5, atol=1e-5)


def test_attention_takes_explicit_matmuls_under_cpu_bf16_autocast():
    from isstad_plugin.model.attention import explicit_attention_wins

    ours, reference, x = _attention_pair()
    assert not explicit_attention_wins(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert explicit_attention_wins(x)
        fast, fused = ours(x), reference(x)
    assert explicit_attention_wins(x.bfloat16())
    torch.testing.assert_close(fast.float(), fused.float(), rtol=0.05, atol=0.02)  # bf16 rounding only


def test_network_keeps_state_dict_keys_of_timm_blocks():
    from timm.layers import Attention

    from isstad_plugin.model.attention import IsstadAttention
    from tests.helpers import tiny_model

    model = tiny_model()
    attentions = [m for m in model.modules() if isinstance(m, Attention)]
    assert attentions and all(isinstance(m, IsstadAttention) for m in attentions)
    assert "encoder.blocks.0.attn.qkv.weight" in model.state_dict()
    assert "decoder.blocks.0.attn.proj.bias" in model.state_dict()


@pytest.mark.parametrize("stage", [1, 2])
def test_fused_adamw_matches_the_loop(stage):
    from isstad_plugin.model.config import TrainingConfig
    from isstad_plugin.model.optimizers import can_fuse, stage1_optimizer, stage2_optimizer
    from tests.helpers import tiny_model

    settings = TrainingConfig(stage1_blr=0.05, stage1_warmup_epochs=0)
    results = []
    for fused in (False, True):
        torch.manual_seed(0)
        model = tiny_model()
        if stage == 2:
            model.freeze_encoder()
        if stage == 1:
            optimizer, _ = stage1_optimizer(model, settings, 4, 10, 1, fused=fused)
        else:
            optimizer, _ = stage2_optimizer(model, settings, fused=fused)
        assert bool(optimizer.defaults["fused"]) == fused
        images = torch.randn(4, 3, 32, 32)
        for _ in range(3):
            out = model.reconstruct_and_classify(images)
            loss = out.reconstruction.pow(2).mean() + out.level_logits.mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            out = model.reconstruct_and_classify(torch.ones(2, 3, 32, 32))
        results.append((loss.detach(), out.reconstruction, out.level_logits))
    # Outputs, not raw weights: the key bias of attention has a zero gradient in exact arithmetic (softmax ignores
    # it), so Adam turns rounding noise into +-lr steps that differ between the two kernels without effect.
    for fused_result, loop_result in zip(results[1], results[0], strict=True):
        torch.testing.assert_close(fused_result, loop_result, rtol=1e-4, atol=1e-5)
    assert not can_fuse([torch.zeros(2, dtype=torch.long)])


@pytest.mark.parametrize(("clip", "fused"), [(None, True), (1.0, None)])
def test_fit_uses_fused_adamw_unless_gradients_are_clipped(dataset_root, tmp_path, clip, fused):
    model = tiny_isstad(stage1_epochs=1)
    engine = engine_for(tmp_path, max_epochs=2, limit_train_batches=1, limit_val_batches=1, gradient_clip_val=clip)
    engine.fit(model, datamodule=small_datamodule(dataset_root))
    assert model.stage == 2
    assert engine.trainer.optimizers[0].defaults["fused"] is fused


# ---------------------------------------------------------------------------------------------------- GPU check
def _gpu_check(*args):
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo / "src"), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, str(repo / "scripts" / "gpu_check.py"), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without a GPU")
def test_gpu_check_says_when_there_is_no_gpu():
    result = _gpu_check()
    assert result.returncode == 2 and "no CUDA device" in result.stdout


def test_gpu_check_dry_run_on_cpu():
    result = _gpu_check("--device", "cpu", "--tiny", "--steps", "1", "--batch", "4")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "GPU check passed" in result.stdout and "short fit OK" in result.stdout
    assert "| 1 |" in result.stdout and "| 2 |" in result.stdout


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="inductor needs a C compiler")
def test_compiled_blocks_give_the_same_step():
    from tests.helpers import tiny_model

    results = []
    for compiled in (False, True):
        torch.manual_seed(0)
        model = tiny_model().train()
        if compiled:
            model.compile_blocks()
        out = model.reconstruct_and_classify(torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)))
        loss = out.reconstruction.pow(2).mean() + out.level_logits.mean()
        loss.backward()
        results.append((loss.detach(), model.decoder.blocks[0].attn.qkv.weight.grad.clone()))
        assert "encoder.blocks.0.attn.qkv.weight" in model.state_dict()  # keys unchanged by compiling
    torch.testing.assert_close(results[1], results[0], rtol=1e-4, atol=1e-5)
