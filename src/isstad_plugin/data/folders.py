"""An MVTec-layout folder as anomalib's ``Folder`` datamodule: any image type, masks optional.

anomalib's ``MVTecAD`` reads only ``.png`` files and needs a mask for every defect image. A user's own inspection data
is often JPEG and has image-level labels only. :func:`mvtec_layout_folder` reads the same layout
(``<root>/<category>/train/good``, ``test/good``, ``test/<defect>``, optionally ``ground_truth/<defect>``) with
anomalib's ``Folder``, which reads every image extension torchvision knows (``.jpg``, ``.jpeg``, ``.png``, ``.bmp``,
``.tif``, ``.webp``, ... in any case). Without ``ground_truth/`` only image metrics are computed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from anomalib.data import Folder


def mvtec_layout_folder(root: str | Path, category: str, **kwargs: Any) -> Folder:
    """A ``Folder`` datamodule over an MVTec-layout category folder.

    Args:
        root: Dataset root holding ``<category>/``.
        category: Category folder.
        **kwargs: Further ``Folder`` options (batch sizes, ``val_split_mode``, ``val_split_ratio``, ``seed``, ...).

    Returns:
        The datamodule: ``train/good`` is the training set, ``test/good`` (if present) the normal test images,
        every other ``test/<defect>`` folder the defect images, ``ground_truth/<defect>`` (if present) their masks.

    Raises:
        FileNotFoundError: ``<root>/<category>/train/good`` does not exist.
    """
    category_dir = Path(root) / category
    train = category_dir / "train" / "good"
    if not train.is_dir():
        msg = f"{train} not found: put the normal training images in <root>/<category>/train/good"
        raise FileNotFoundError(msg)
    test = category_dir / "test"
    defects = sorted(p for p in test.iterdir() if p.is_dir() and p.name != "good") if test.is_dir() else []
    masks = [category_dir / "ground_truth" / d.name for d in defects]
    has_masks = bool(defects) and all(m.is_dir() for m in masks)
    return Folder(
        name=category,
        normal_dir=train,
        normal_test_dir=test / "good" if (test / "good").is_dir() else None,
        abnormal_dir=defects or None,
        mask_dir=masks if has_masks else None,
        **kwargs,
    )
