"""16-bit (and 32-bit integer or float) grayscale images in anomalib's image datasets.

anomalib 2.7 reads every dataset image with ``PIL.Image.open(path).convert("RGB")``, which clips 16-bit values to
255: a 16-bit image becomes almost white. :func:`install` makes the image datasets (``anomalib.data.datasets.base.
image``, used by MVTecAD, Folder and the other image datamodules) read such images scaled by their bit depth to
``[0, 1]`` and repeated over three channels; 8-bit images keep anomalib's own reader. It also covers
``anomalib predict --data DIR`` (``anomalib.data.predict``) and the synthetic validation split
(``anomalib.data.utils.synthetic``). It is installed when ``isstad_plugin`` is imported. Exported models are fed
by anomalib's inferencers, which still read 8-bit images: convert 16-bit images before inference there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from anomalib.data import predict as anomalib_predict
from anomalib.data.datasets.base import image as anomalib_image_dataset
from anomalib.data.utils import synthetic as anomalib_synthetic
from anomalib.data.utils.image import read_image as anomalib_read_image
from PIL import Image

HIGH_BIT_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
"""PIL modes that hold more than 8 bits per channel."""


def _full_scale(mode: str, largest: float) -> float:
    """The value that maps to 1.

    16-bit full scale (also for 32-bit integer files holding 16-bit data), 1.0 for float images in ``[0, 1]``, else
    the largest value.
    """
    if mode.startswith("I;16") or (mode == "I" and largest <= 65535):
        return 65535.0
    if mode == "F" and largest <= 1.0:
        return 1.0
    return max(largest, 1.0)


def read_image(path: str | Path, as_tensor: bool = False) -> Any:
    """Anomalib's ``read_image`` that also reads high-bit-depth grayscale images, scaled to ``[0, 1]``.

    Args:
        path: Image file.
        as_tensor: Return a ``(3, H, W)`` float tensor instead of an ``(H, W, 3)`` array.

    Returns:
        The image in ``[0, 1]``, as anomalib's reader returns it.
    """
    with Image.open(path) as image:
        mode = image.mode
        if mode not in HIGH_BIT_DEPTH_MODES:
            return anomalib_read_image(path, as_tensor=as_tensor)
        values = np.asarray(image, dtype=np.float64)
    scale = _full_scale(mode, float(values.max()))
    gray = np.clip(values / scale, 0.0, 1.0).astype(np.float32)
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    if as_tensor:
        from torchvision.tv_tensors import Image as ImageTensor

        return ImageTensor(torch.from_numpy(rgb).permute(2, 0, 1).contiguous())
    return rgb


def install() -> None:
    """Make anomalib's image datasets, predict folders and synthetic splits use :func:`read_image` (idempotent)."""
    for module in (anomalib_image_dataset, anomalib_predict, anomalib_synthetic):
        module.read_image = read_image  # type: ignore[attr-defined]
