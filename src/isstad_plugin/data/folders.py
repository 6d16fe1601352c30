"""An MVTec-layout folder as anomalib's ``Folder`` datamodule: any image type, masks optional.

anomalib's ``MVTecAD`` reads only ``.png`` files and needs a mask for every defect image. A user's own inspection data
is often JPEG and has image-level labels only. :func:`mvtec_layout_folder` reads the same layout
(``<root>/<category>/train/good``, ``test/good``, ``test/<defect>``, optionally ``ground_truth/<defect>``) with
anomalib's ``Folder``, which reads every image extension torchvision knows (``.jpg``, ``.jpeg``, ``.png``, ``.bmp``,
``.tif``, ``.webp``, ... in any case). Without ``ground_truth/`` only image metrics are computed.
:func:`mvtec_layout_datamodule` takes ``MVTecAD`` where it can read the folder and ``Folder`` elsewhere (``isstad
benchmark`` and ``isstad diagnose``, for ISSTAD and every peer alike).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from anomalib.data import Folder, MVTecAD

from isstad_plugin.data.checks import FOLDER_EXTENSIONS, DatasetError, require_category_folder

logger = logging.getLogger(__name__)


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
        FileNotFoundError: ``<root>/<category>/train/good`` does not exist (the message names the folder layout).
    """
    require_category_folder(Path(root), category, "root")
    category_dir = Path(root) / category
    test = category_dir / "test"
    defects = _subfolders(test)
    masks = [category_dir / "ground_truth" / d.name for d in defects]
    has_masks = bool(defects) and all(m.is_dir() for m in masks)
    return Folder(
        name=category,
        normal_dir=category_dir / "train" / "good",
        normal_test_dir=test / "good" if (test / "good").is_dir() else None,
        abnormal_dir=defects or None,
        mask_dir=masks if has_masks else None,
        **kwargs,
    )


def mvtec_layout_datamodule(root: Path, category: str, option: str = "--root", **kwargs: Any) -> MVTecAD | Folder:
    """Anomalib's ``MVTecAD`` where it reads the folder (PNG images, a mask folder per defect), else a ``Folder``.

    Args:
        root: Dataset root holding ``<category>/``.
        category: Category folder.
        option: The command-line option that named ``root``, for the messages.
        **kwargs: Further datamodule options (batch sizes, ``val_split_mode``, ``val_split_ratio``, ``seed``, ...).

    Raises:
        FileNotFoundError: No ``<root>/<category>/train/good``.
        DatasetError: A layout neither can read (no defect test images, masks for some defect folders only), in one
            line naming the folder and the fix.
    """
    require_category_folder(root, category, option)
    category_dir = root / category
    defects = _defect_folders(category_dir)
    masks = category_dir / "ground_truth"
    unmasked = [d.name for d in defects if not (masks / d.name).is_dir()]
    if masks.is_dir() and unmasked:
        msg = (
            f"{masks} has no folder for test/{unmasked[0]}: add ground_truth/{unmasked[0]}/<name>_mask.png for every "
            "defect folder, or remove ground_truth/ for image metrics only"
        )
        raise DatasetError(msg)
    images = [p for d in (category_dir / "train", category_dir / "test") for p in d.rglob("*") if p.is_file()]
    if masks.is_dir() and all(p.suffix == ".png" for p in images if p.suffix in FOLDER_EXTENSIONS):
        return MVTecAD(root=root, category=category, **kwargs)
    logger.info("%s: read with anomalib's Folder (%s)", category_dir, "masks" if masks.is_dir() else "no masks")
    return mvtec_layout_folder(root, category, **kwargs)


def _defect_folders(category_dir: Path) -> list[Path]:
    """The ``test/<defect>`` folders holding images; raise in one line when there are none."""
    test = category_dir / "test"
    defects = [d for d in _subfolders(test) if any(p.suffix in FOLDER_EXTENSIONS for p in d.rglob("*"))]
    if not defects:
        msg = (
            f"{test}: no defect images; put them in test/<defect>/ next to test/good/ (masks, optional, in "
            "ground_truth/<defect>/<name>_mask.png)"
        )
        raise DatasetError(msg)
    return defects


def _subfolders(test: Path) -> list[Path]:
    """The sorted folders of ``test/`` but ``good`` (none when ``test/`` is missing)."""
    return sorted(p for p in test.iterdir() if p.is_dir() and p.name != "good") if test.is_dir() else []
