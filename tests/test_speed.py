"""Speed paths keep the numerics: train-data cache, precision choice, fused optimisers, attention."""

from __future__ import annotations

import logging

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
    from isstad_plugin.precision import bf16_is_fast, cpu_flags

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert cpu_flags(info) == {"fpu", "avx2", "avx512f", "avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") is None
    assert bf16_is_fast("cpu", {"avx512f", "avx512_bf16"})[0]
    assert bf16_is_fast("cpu", {"amx_bf16"})[0]
    fast, reason = bf16_is_fast("cpu", {"avx2", "avx512f"})
    assert not fast and "no avx512_bf16" in reason
    assert not bf16_is_fast("mps")[0]


def test_bf16_on_cuda_follows_compute_capability(monkeypatch):
    from isstad_plugin import precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    assert precision.bf16_is_fast("cuda")[0]
    assert precision.default_device() == "cuda"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    assert not precision.bf16_is_fast("cuda:0")[0]


def test_resolve_precision_keeps_a_forced_choice(monkeypatch, caplog):
    from isstad_plugin import precision

    assert precision.resolve_precision("32-true") == "32-true"
    assert precision.resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"
    precision.hardware_precision.cache_clear()
    monkeypatch.setattr(precision, "bf16_is_fast", lambda device: (False, "test"))
    with caplog.at_level(logging.INFO, logger="isstad_plugin.precision"):
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
