"""The pre-processor's geometry: resizing it in place once ``image_size: auto`` is chosen.

ISSTAD's pre-processor only resizes: the network normalises ``[0, 1]`` pixels itself.
"""

from __future__ import annotations

from anomalib.pre_processing import PreProcessor
from anomalib.pre_processing.utils.transform import get_exportable_transform
from torchvision.transforms.v2 import Compose, Resize, Transform


def resize_pre_processor(pre_processor: PreProcessor, size: tuple[int, int]) -> None:
    """Set every ``Resize`` of ``pre_processor``'s transform to ``size`` and rebuild its export transform.

    The pre-processor is changed in place because the trainer already holds it as a callback.
    """
    for transform in _flat(pre_processor.transform):
        if isinstance(transform, Resize):
            transform.size = list(size)
    pre_processor.export_transform = get_exportable_transform(pre_processor.transform)


def _flat(transform: Transform | None) -> list[Transform]:
    if transform is None:
        return []
    if isinstance(transform, Compose):
        return [t for child in transform.transforms for t in _flat(child)]
    return [transform]
