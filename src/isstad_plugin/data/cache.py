"""Keep the decoded and resized training images in memory for the whole fit (:class:`TrainDataCache`).

anomalib's datasets read, decode and resize every image on every access (the model's ``Resize`` is appended to the
datamodule's augmentations), and its train loader has one process by default: on a small CPU that is about half of
an ISSTAD fit. The cache runs the *deterministic* part of the train augmentations once per fit and keeps the items as
tensors; random augmentations a user configured still run on every access, after the cached part. The items are the
ones anomalib would have produced (same decode, same transforms), so training numerics do not change.

The cache is bounded: when the training set would need more than the limit, the fit runs uncached and one log line
names the size, the limit and the option that raises it (``--model.train_cache_gb``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import torch
from anomalib.data.transforms import ExportableCenterCrop, SquarePad
from lightning.pytorch import Callback, LightningModule, Trainer
from torch.utils.data import Dataset
from torchvision.transforms import v2

logger = logging.getLogger(__name__)

GIB = 1024**3

_DETERMINISTIC: tuple[type, ...] = (v2.CenterCrop, v2.Grayscale, v2.Identity, v2.Normalize, v2.Resize, v2.ToDtype)
_DETERMINISTIC += (v2.ToImage, v2.ToPureTensor, ExportableCenterCrop, SquarePad)  # the last two: anomalib's


def split_deterministic(transform: v2.Transform | Callable[..., Any] | None) -> tuple[list[Any], list[Any]]:
    """Split a train augmentation pipeline into its deterministic head and the rest.

    The head is the longest prefix of transforms that give the same output for the same input on every call (resize,
    crop, normalise, ...); everything from the first other transform on (random flips, colour jitter, unknown
    transforms) is the rest, to be run on every access.

    Args:
        transform: A torchvision v2 transform, a ``Compose`` of them, or ``None``.

    Returns:
        ``(head, rest)`` lists of transforms.
    """
    if transform is None:
        return [], []
    steps = list(transform.transforms) if isinstance(transform, v2.Compose) else [transform]
    for index, step in enumerate(steps):
        if not isinstance(step, _DETERMINISTIC) or isinstance(step, v2.Compose):
            return steps[:index], steps[index:]
    return steps, []


def _compose(steps: Sequence[Any]) -> v2.Compose | None:
    return v2.Compose(list(steps)) if steps else None


def item_bytes(item: Any) -> int:
    """Bytes held by the tensors of a dataset item."""
    fields = vars(item).values() if hasattr(item, "__dict__") else item
    return sum(value.numel() * value.element_size() for value in fields if isinstance(value, torch.Tensor))


def available_memory_bytes() -> int | None:
    """Memory the OS reports as available, or ``None`` where it cannot tell."""
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return None


class CachedTrainDataset(Dataset):
    """An anomalib dataset whose items come from memory once :meth:`fill` has run.

    Before :meth:`fill` (and if it declines) every access goes to the wrapped dataset. Attributes other than the
    item access (``samples``, ``collate_fn``, ``task``, ...) are the wrapped dataset's.

    Args:
        dataset: The anomalib dataset (its ``augmentations`` are split by :func:`split_deterministic`).
    """

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset
        self.items: list[Any] | None = None
        self.rest: Any = None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:
        if name in ("dataset", "items", "rest"):  # not set yet (unpickling)
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, index: int) -> Any:
        if self.items is None:
            return self.dataset[index]
        item = self.items[index]
        if self.rest is None:
            return item
        if item.gt_mask is None:
            return replace(item, image=self.rest(item.image))
        image, mask = self.rest(item.image, item.gt_mask)
        return replace(item, image=image, gt_mask=mask)

    def fill(self, max_bytes: int) -> str:
        """Read every item through the deterministic head of the augmentations and keep it (in threads).

        Args:
            max_bytes: Do nothing when the items would need more memory than this.

        Returns:
            One line saying what was cached (or why not), for the log.
        """
        count = len(self.dataset)
        if count == 0:
            return "train-data cache: empty training set, nothing cached"
        augmentations = self.dataset.augmentations
        head, rest = split_deterministic(augmentations)
        start = time.perf_counter()
        self.dataset.augmentations = _compose(head)
        try:
            first = self.dataset[0]
            need = item_bytes(first) * count
            if need > max_bytes:
                return (
                    f"train-data cache off: {count} images need {need / GIB:.2f} GiB, more than the limit of "
                    f"{max_bytes / GIB:.2f} GiB; raise --model.train_cache_gb to cache them (images are read and "
                    "resized every epoch meanwhile)"
                )
            with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:  # decoding frees the GIL
                items = [first, *pool.map(self.dataset.__getitem__, range(1, count))]
        finally:
            self.dataset.augmentations = augmentations
        self.items, self.rest = items, _compose(rest)
        note = f"; per access: {', '.join(type(t).__name__ for t in rest)}" if rest else ""
        return (
            f"train-data cache: {count} images ({need / GIB:.3f} GiB) decoded and resized once in "
            f"{time.perf_counter() - start:.1f} s{note}"
        )


class TrainDataCache(Callback):
    """Wrap the datamodule's training set in a :class:`CachedTrainDataset` for the duration of a fit.

    The wrapper replaces ``datamodule.train_data`` in ``setup`` (before Lightning builds the train loader), is filled
    in ``on_fit_start`` (after the model has checked the dataset) and is removed in ``teardown``. Fits without an
    anomalib datamodule (dataloaders passed directly) are left alone.

    Args:
        max_gb: Memory limit of the cache in GiB; it is also capped at half the memory available when the fit starts.
            ``0`` turns the cache off.
    """

    def __init__(self, max_gb: float = 4.0) -> None:
        self.max_gb = max_gb
        self._wrapped: CachedTrainDataset | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Put the wrapper in place of ``datamodule.train_data`` before the train loader is built."""
        datamodule = getattr(trainer, "datamodule", None)
        if stage != "fit" or self.max_gb <= 0 or datamodule is None:
            return
        dataset = getattr(datamodule, "train_data", None)
        if dataset is None or isinstance(dataset, CachedTrainDataset) or not hasattr(dataset, "augmentations"):
            return
        self._wrapped = CachedTrainDataset(dataset)
        datamodule.train_data = self._wrapped

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Decode and resize the training set once (within the memory limit)."""
        if self._wrapped is None or self._wrapped.items is not None:
            return
        limit = int(self.max_gb * GIB)
        available = available_memory_bytes()
        if available is not None:
            limit = min(limit, available // 2)
        logger.info(self._wrapped.fill(limit))

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Give the datamodule its own training set back and free the cache."""
        if stage != "fit" or self._wrapped is None:
            return
        datamodule: Any = getattr(trainer, "datamodule", None)
        if getattr(datamodule, "train_data", None) is self._wrapped:
            datamodule.train_data = datamodule.train_data.dataset
        self._wrapped = None
