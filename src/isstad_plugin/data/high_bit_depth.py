"""16-bit (and 32-bit integer or float) grayscale images in anomalib's image datasets: an explicit opt-in.

anomalib 2.7 reads every dataset image with ``PIL.Image.open(path).convert("RGB")``, which clips 16-bit values to
255: a 16-bit image becomes almost white. :func:`install` makes the image datasets (``anomalib.data.datasets.base.
image``, used by MVTecAD, Folder and the other image datamodules) read such images scaled by their bit depth to
``[0, 1]`` and repeated over three channels; 8-bit images keep anomalib's own reader. It also covers
``anomalib predict --data DIR`` (``anomalib.data.predict``) and the synthetic validation split
(``anomalib.data.utils.synthetic``).

Importing ``isstad_plugin`` changes nothing in anomalib. Opt in with one of:

* Python, for the whole process: ``high_bit_depth.install()`` (``uninstall()`` restores anomalib's reader);
* Python, for a block: ``with high_bit_depth.installed(): engine.fit(...)``;
* anomalib's CLI, for one run: ``--trainer.callbacks+=isstad_plugin.data.high_bit_depth.HighBitDepthImages`` (the
  callback installs the reader when the run is set up and restores anomalib's at its end).

``isstad demo`` uses it for the data it reads. Exported models are fed by anomalib's inferencers, which still read
8-bit images: convert 16-bit images before inference there.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from anomalib.data import predict as anomalib_predict
from anomalib.data.datasets.base import image as anomalib_image_dataset
from anomalib.data.utils import synthetic as anomalib_synthetic
from anomalib.data.utils.image import read_image as anomalib_read_image
from lightning.pytorch import Callback, LightningModule, Trainer
from PIL import Image

from isstad_plugin.data.reversible import installed_for_block

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


_MODULES = (anomalib_image_dataset, anomalib_predict, anomalib_synthetic)


def install() -> None:
    """Make anomalib's image datasets, predict folders and synthetic splits use :func:`read_image` (idempotent)."""
    for module in _MODULES:
        module.read_image = read_image  # type: ignore[attr-defined]


def uninstall() -> None:
    """Give anomalib its own reader back (idempotent)."""
    for module in _MODULES:
        module.read_image = anomalib_read_image  # type: ignore[attr-defined]


def is_installed() -> bool:
    """Whether anomalib's image datasets currently use :func:`read_image`."""
    return all(getattr(module, "read_image", None) is read_image for module in _MODULES)


def installed() -> AbstractContextManager[None]:
    """Use :func:`read_image` inside the ``with`` block; the previous reader is restored after it."""
    return installed_for_block(is_installed, install, uninstall)


class HighBitDepthImages(Callback):
    """A Lightning callback that reads 16-bit images scaled during one run (for ``--trainer.callbacks``).

    The reader is installed when the trainer sets up (before the datamodule reads an image) and anomalib's reader is
    restored at teardown, unless it was installed before the run.
    """

    def __init__(self) -> None:
        self._restore = False

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Install the reader for this run."""
        if not is_installed():
            install()
            self._restore = True

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Restore anomalib's reader if this callback installed ours."""
        if self._restore:
            uninstall()
            self._restore = False
