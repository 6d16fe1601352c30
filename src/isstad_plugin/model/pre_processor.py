"""The pre-processor's geometry (resizing it in place once ``image_size: auto`` is chosen), and old checkpoints' one.

ISSTAD's pre-processor only resizes: the network normalises ``[0, 1]`` pixels itself. Checkpoints written before
(plugin 0.1.0, commit 54cb696 and earlier) carry a pre-processor that also normalised with ImageNet statistics;
:func:`drop_imagenet_normalize` takes that step out when such a checkpoint is loaded.
"""

from __future__ import annotations

import logging

from anomalib.pre_processing import PreProcessor
from anomalib.pre_processing.utils.transform import get_exportable_transform
from torchvision.transforms.v2 import Compose, Normalize, Resize, Transform

from isstad_plugin.model.normalization import IMAGENET_MEAN, IMAGENET_STD

logger = logging.getLogger(__name__)


def resize_pre_processor(pre_processor: PreProcessor, size: tuple[int, int]) -> None:
    """Set every ``Resize`` of ``pre_processor``'s transform to ``size`` and rebuild its export transform.

    The pre-processor is changed in place because the trainer already holds it as a callback.
    """
    for transform in _flat(pre_processor.transform):
        if isinstance(transform, Resize):
            transform.size = list(size)
    pre_processor.export_transform = get_exportable_transform(pre_processor.transform)


def drop_imagenet_normalize(pre_processor: PreProcessor) -> bool:
    """Remove an ImageNet ``Normalize`` from the pre-processor's ``Compose`` (the network does it now).

    Returns:
        Whether one was removed.
    """
    transform = pre_processor.transform
    if not isinstance(transform, Compose):
        return False
    kept = [t for t in transform.transforms if not _imagenet_normalize(t)]
    if len(kept) == len(transform.transforms):
        return False
    pre_processor.transform = Compose(kept)
    pre_processor.export_transform = get_exportable_transform(pre_processor.transform)
    logger.info("Isstad: the checkpoint's pre-processor normalised the images; the network does it now")
    return True


def _imagenet_normalize(transform: Transform) -> bool:
    if not isinstance(transform, Normalize):
        return False
    mean, std = [round(float(v), 6) for v in transform.mean], [round(float(v), 6) for v in transform.std]
    return mean == list(IMAGENET_MEAN) and std == list(IMAGENET_STD)


def _flat(transform: Transform | None) -> list[Transform]:
    if transform is None:
        return []
    if isinstance(transform, Compose):
        return [t for child in transform.transforms for t in _flat(child)]
    return [transform]
