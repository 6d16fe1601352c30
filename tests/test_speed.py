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
