"""Checks of a dataset before a fit, so that bad inputs stop with one line naming the file and the fix.

anomalib's loaders fail deep inside a dataloader worker on an unreadable image, pair images and masks silently when
masks are missing, and clip 16-bit images to 8 bits. :func:`check_fit_data` is the one entry point of a fit (the
model calls it from ``prepare_data`` and ``setup``): :func:`check_mvtec_layout` before anomalib indexes an MVTecAD
folder, :func:`check_datamodule` once any other datamodule is indexed; both decode every image once before training
starts. :func:`require_category_folder` is the tools' check of a ``<root>/<category>`` argument.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from anomalib.data import MVTecAD
from anomalib.data.datasets.image.mvtecad import IMG_EXTENSIONS
from PIL import Image, UnidentifiedImageError
from torchvision.datasets.folder import IMG_EXTENSIONS as FOLDER_EXTENSIONS_LOWER

logger = logging.getLogger(__name__)

FOLDER_EXTENSIONS = tuple(sorted({*FOLDER_EXTENSIONS_LOWER, *(e.upper() for e in FOLDER_EXTENSIONS_LOWER)}))
"""What anomalib's ``Folder`` reads by default (torchvision's image extensions, any case)."""


class DatasetError(ValueError):
    """A dataset that cannot be trained or tested on; the message names the file or folder and the fix."""


def check_images(paths: Iterable[str | Path], split: str) -> None:
    """Open and decode every image; raise on the first one that cannot be read.

    Args:
        paths: Image files.
        split: Name of the split, for the message (``"train"``, ``"test"``, ...).

    Raises:
        DatasetError: A file is missing, unreadable or truncated, or the split is empty.
    """
    files = list(paths)
    if not files:
        msg = f"the {split} split has no images: check the dataset root, category and folder names"
        raise DatasetError(msg)
    for path in files:
        check_image(Path(path))


def check_image(path: Path) -> None:
    """Decode one image fully.

    Raises:
        DatasetError: The file is missing, not an image, or truncated.
    """
    if not path.is_file():
        msg = f"image file not found: {path}"
        raise DatasetError(msg)
    try:
        with Image.open(path) as image:
            image.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        msg = f"cannot read image {path} ({error}): replace or remove the file"
        raise DatasetError(msg) from None


def check_masks(image_paths: Iterable[str], mask_paths: Iterable[str], labels: Iterable[int]) -> list[str]:
    """Every anomalous test image needs a mask file of the same size.

    Args:
        image_paths: Test image files.
        mask_paths: Their mask files (empty for normal images).
        labels: 1 for anomalous images.

    Returns:
        The masks that are not binary (more than one non-zero value, e.g. anti-aliased edges), for
        :func:`warn_non_binary_masks`.

    Raises:
        DatasetError: An anomalous image has no mask, or its mask has another size.
    """
    non_binary: list[str] = []
    for image_path, mask_path, label in zip(image_paths, mask_paths, labels, strict=True):
        if int(label) != 1:
            continue
        if not mask_path or not Path(mask_path).is_file():
            msg = (
                f"no mask for the defect image {image_path}: put <name>_mask.png in ground_truth/<defect>/ "
                "(MVTec layout) or give the datamodule a mask folder"
            )
            raise DatasetError(msg)
        check_image(Path(mask_path))
        with Image.open(image_path) as image, Image.open(mask_path) as mask:
            if image.size != mask.size:
                (width, height), (mask_width, mask_height) = image.size, mask.size
                msg = (
                    f"mask {mask_path} is {mask_width}x{mask_height} but its image {image_path} is {width}x{height}: "
                    f"resize the mask to {width}x{height} (nearest neighbour, to keep it binary) or replace it"
                )
                raise DatasetError(msg)
            if len(np.unique(np.asarray(mask.convert("L")))) > 2:  # 0 and one defect value
                non_binary.append(str(mask_path))
    return non_binary


def warn_non_binary_masks(non_binary: list[str], total: int) -> None:
    """One warning line for masks with intermediate values: how anomalib binarises them, and how to change that.

    anomalib reads a mask pixel as defect when its value is above 0 (``read_mask``), so grey anti-aliased or blurred
    edges count as defect and widen every region; the pixel metrics then score those edges.
    """
    if non_binary:
        logger.warning(
            "%d of %d mask files are not binary (values between 0 and the defect value, e.g. anti-aliased edges; "
            "first: %s): every value > 0 counts as defect, which widens the regions; binarise them (e.g. value > 127) "
            "if their edges should not count",
            len(non_binary),
            total,
            non_binary[0],
        )


def check_datamodule(datamodule: object) -> None:
    """Check the train, validation and test splits of an anomalib datamodule that has been set up.

    Datamodules without anomalib's ``train_data`` / ``test_data`` (or dataloaders passed directly) are not checked.
    A split without any mask (image-level labels only, e.g. ``Folder`` without ``mask_dir``) is tested with image
    metrics only: one log line says so. Once one defect image of a split has a mask, every one needs one.

    Raises:
        DatasetError: An empty split, an unreadable image or a missing or mis-sized mask (one line naming it).
    """
    without_masks: list[str] = []
    non_binary: set[str] = set()
    masks_seen: set[str] = set()
    for split in ("train", "val", "test"):
        try:
            samples = getattr(datamodule, f"{split}_data").samples
        except (AttributeError, RuntimeError):  # no such split, or anomalib's "samples not set"
            continue
        check_images(samples.image_path, split)
        if split != "train" and "mask_path" in samples and "label_index" in samples:
            masks = samples.mask_path.fillna("").astype(str)
            defects = samples.label_index.astype(int) == 1
            if defects.any() and (masks[defects] == "").all():
                without_masks.append(split)
                continue
            non_binary.update(check_masks(samples.image_path, masks, samples.label_index))
            masks_seen.update(masks[defects])
    warn_non_binary_masks(sorted(non_binary), len(masks_seen))
    if without_masks:
        logger.info(
            "no masks in the %s split(s) (image-level labels only): pixel metrics are skipped and image metrics "
            "computed; give the datamodule masks (Folder: mask_dir) for pixel metrics",
            " and ".join(without_masks),
        )


def check_mvtec_layout(category_dir: Path) -> None:
    """Check an MVTec AD category folder before anomalib's ``MVTecAD`` indexes it.

    Only the files ``MVTecAD`` indexes (its ``IMG_EXTENSIONS``) are checked: ``train/good`` must hold images, every
    image under ``test/<defect>/`` (``defect != good``) needs ``ground_truth/<defect>/<name>_mask.png`` of the same
    size, and every file must decode.

    Raises:
        DatasetError: The first problem, in one line naming the file or folder and the fix.
    """
    train = sorted(_images(category_dir / "train" / "good"))
    if not train:
        others = sorted({p.suffix for p in _images(category_dir / "train" / "good", FOLDER_EXTENSIONS)})
        if others:
            msg = (
                f"{category_dir / 'train' / 'good'} holds {', '.join(others)} images but anomalib's MVTecAD reads only "
                ".png: use anomalib.data.Folder (configs/isstad_cpu_folder.yaml) or `isstad demo --data-root`"
            )
        else:
            msg = f"no training images in {category_dir / 'train' / 'good'}: put the normal images there"
        raise DatasetError(msg)
    check_images(train, "train")
    tests = sorted(_images(category_dir / "test"))
    check_images(tests, "test")
    defects = [p for p in tests if p.parent.name != "good"]
    if defects and not (category_dir / "ground_truth").is_dir():
        msg = (
            f"{category_dir} has defect images but no ground_truth/ folder: anomalib's MVTecAD needs a mask per defect "
            "image; for image-level labels only use anomalib.data.Folder (configs/isstad_cpu_folder.yaml) or "
            "`isstad demo --data-root`"
        )
        raise DatasetError(msg)
    masks = [str(category_dir / "ground_truth" / p.parent.name / f"{p.stem}_mask.png") for p in defects]
    warn_non_binary_masks(check_masks([str(p) for p in defects], masks, [1] * len(defects)), len(masks))


def check_fit_data(datamodule: object, indexed: bool) -> None:
    """Check the data of a fit at the right moment: an MVTecAD folder before indexing, other datamodules after.

    Args:
        datamodule: The trainer's datamodule (``None`` or plain dataloaders are not checked).
        indexed: ``False`` before the datamodule's ``setup`` (the model's ``prepare_data``), ``True`` after it.

    Raises:
        DatasetError: The first problem, in one line naming the file or folder and the fix.
    """
    if isinstance(datamodule, MVTecAD):
        if not indexed:
            check_mvtec_layout(Path(datamodule.root) / datamodule.category)
    elif indexed:
        check_datamodule(datamodule)


def require_category_folder(root: Path, category: str, option: str) -> None:
    """Refuse a ``<root>/<category>`` without ``train/good`` in one line naming the command-line ``option``.

    Raises:
        FileNotFoundError: The folder is missing.
    """
    if not (root / category / "train" / "good").is_dir():
        msg = (
            f"{option} {root}: no {category}/train/good folder; pass a root laid out as <root>/<category>/train/good, "
            "test/good, test/<defect> (MVTec layout) and its category"
        )
        raise FileNotFoundError(msg)


def missing_root_message(category_dir: Path) -> str:
    """The one-line message for an MVTec-layout category folder without ``train/`` (shared by the datamodules)."""
    return (
        f"dataset folder {category_dir} has no train/ folder: pass --data.root and --data.category of an "
        "MVTec-layout dataset (<root>/<category>/train/good, test/, ground_truth/)"
    )


def _images(folder: Path, extensions: tuple[str, ...] = IMG_EXTENSIONS) -> list[Path]:
    return [p for p in folder.rglob("*") if p.suffix in extensions]
