"""Writing a dataset: the MVTec AD folder layout, the PNG files and the manifest that makes a dataset reusable."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from isstad_plugin.data.synthetic.render import render_sample
from isstad_plugin.data.synthetic.spec import CATEGORY_DEFECTS, DEFECT_TYPES, MANIFEST_NAME, MIN_CHANGE, DatasetSpec

_LAYOUT_DIRS = ("train", "test", "ground_truth")
"""The generated folders of a category (deleted before writing)."""


def _write_png(path: Path, array: np.ndarray) -> None:
    """Write an RGB or single-channel uint8 array as PNG, creating its folder (works with non-ASCII paths).

    Args:
        path: Destination file.
        array: ``(H, W, 3)`` RGB or ``(H, W)`` grey uint8 array.

    Raises:
        OSError: If encoding fails.
    """
    pixels = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
    ok, encoded = cv2.imencode(".png", pixels)
    if not ok:
        msg = f"could not encode {path}"
        raise OSError(msg)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encoded.tobytes())


def _read_manifest(path: Path) -> dict[str, Any] | None:
    """Read a manifest, or return ``None`` when it is missing or unreadable.

    Args:
        path: Manifest file.

    Returns:
        The parsed manifest or ``None``.
    """
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _write_manifest(path: Path, spec: DatasetSpec, files: list[dict[str, Any]], *, complete: bool) -> None:
    """Write the manifest atomically (temporary file, then rename).

    Args:
        path: Manifest file.
        spec: Dataset parameters.
        files: One entry per written image.
        complete: Whether every file has been written.
    """
    manifest = {
        "generator": "isstad_plugin.data.synthetic",
        "complete": complete,
        "params": spec.manifest_params(),
        "mask_semantics": (
            f"mask = pixels whose 8-bit value differs from the clean image by >= {MIN_CHANGE} in some channel; "
            "all other pixels equal the clean image"
        ),
        "counts": {"images": len(files), "masks": sum(entry["mask_path"] is not None for entry in files)},
        "files": files,
    }
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    temporary.replace(path)


def _is_complete(category_root: Path, manifest: dict[str, Any]) -> bool:
    """Whether a manifest is marked complete and all the files it lists exist.

    Args:
        category_root: Dataset folder.
        manifest: Parsed manifest.

    Returns:
        ``True`` if the dataset can be reused as is.
    """
    if manifest.get("complete") is not True:
        return False
    files = manifest.get("files", [])
    paths = [entry["path"] for entry in files] + [entry["mask_path"] for entry in files if entry.get("mask_path")]
    return all((category_root / path).is_file() for path in paths)


def _can_reuse(category_root: Path, spec: DatasetSpec, *, overwrite: bool) -> bool:
    """Whether the folder already holds this complete dataset; refuse to replace another one unless ``overwrite``.

    Args:
        category_root: Dataset folder.
        spec: Requested parameters.
        overwrite: Whether another dataset (or foreign files) may be replaced.

    Returns:
        ``True`` to reuse the folder as is, ``False`` to (re)generate it.

    Raises:
        ValueError: If the folder holds other content and ``overwrite`` is False.
    """
    params = spec.manifest_params()
    existing = _read_manifest(category_root / MANIFEST_NAME)
    if existing is not None and existing.get("params") == params:
        return _is_complete(category_root, existing)
    if overwrite or not (category_root.is_dir() and any(category_root.iterdir())):
        return False
    if existing is not None and isinstance(existing.get("params"), dict):
        changed = sorted(key for key in params if existing["params"].get(key) != params[key])
        reason = f"was generated with different parameters ({', '.join(changed)})"
    else:
        reason = "is not empty and has no synthetic-dataset manifest"
    msg = f"{category_root} {reason}; pass overwrite=True or use another root"
    raise ValueError(msg)


def _clear_layout(category_root: Path) -> None:
    """Delete the generated parts of a dataset folder (split folders and manifest), leaving anything else.

    Args:
        category_root: Dataset folder.
    """
    for name in _LAYOUT_DIRS:
        shutil.rmtree(category_root / name, ignore_errors=True)
    (category_root / MANIFEST_NAME).unlink(missing_ok=True)


def _jobs(spec: DatasetSpec) -> list[tuple[str, str | None, int]]:
    """List the images to write.

    Args:
        spec: Dataset parameters.

    Returns:
        The ``(split, defect, index)`` of every image, in writing order.
    """
    good = [("train", None, i) for i in range(spec.n_train)] + [("test", None, i) for i in range(spec.n_test_good)]
    return good + [("test", defect, i) for defect in spec.defects for i in range(spec.n_test_defect)]


def _write_sample(category_root: Path, spec: DatasetSpec, split: str, defect: str | None, index: int) -> dict[str, Any]:
    """Render one image (and mask) into the layout and return its manifest entry.

    Args:
        category_root: Dataset folder.
        spec: Dataset parameters.
        split: ``"train"`` or ``"test"``.
        defect: Defect type, or ``None`` for a good image.
        index: Image index within its folder.

    Returns:
        The manifest entry.
    """
    sample = render_sample(spec.category, split, index, defect=defect, image_size=spec.image_size, seed=spec.seed)
    label = defect or "good"
    stem = f"{index:0{spec.name_width}d}"
    image_path = Path(split) / label / f"{stem}.png"
    _write_png(category_root / image_path, sample.image)
    mask_path = None
    if sample.mask is not None:
        mask_path = Path("ground_truth") / label / f"{stem}_mask.png"
        _write_png(category_root / mask_path, sample.mask)
    return {
        "path": image_path.as_posix(),
        "split": split,
        "label": label,
        "label_index": int(defect is not None),
        "defect_type": defect,
        "mask_path": mask_path.as_posix() if mask_path else None,
        "mask_pixels": int(np.count_nonzero(sample.mask)) if sample.mask is not None else 0,
        "n_defects": sample.n_defects,
    }


def generate_dataset(
    root: str | Path,
    category: str = "tiles",
    *,
    n_train: int = 120,
    n_test_good: int = 30,
    n_test_defect: int = 10,
    image_size: int = 128,
    defects: Sequence[str] | None = None,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic dataset in the MVTec AD layout and return its category folder.

    A complete dataset already at ``root/category`` with the same parameters is reused without rendering anything.
    With ``overwrite=True``, the ``train``, ``test`` and ``ground_truth`` folders and the manifest are deleted first
    (other files in the folder are left alone).

    Args:
        root: Dataset root, as passed to ``anomalib.data.MVTecAD(root=...)``.
        category: Surface category, one of :data:`~isstad_plugin.data.synthetic.spec.CATEGORIES`.
        n_train: Number of good training images (at least 1).
        n_test_good: Number of good test images.
        n_test_defect: Number of test images per defect type.
        image_size: Side length of the square images, between :data:`~isstad_plugin.data.synthetic.spec.MIN_IMAGE_SIZE`
            and :data:`~isstad_plugin.data.synthetic.spec.MAX_IMAGE_SIZE`.
        defects: Defect types to include, from :data:`~isstad_plugin.data.synthetic.spec.DEFECT_TYPES`; ``None``: the
            category's (:data:`~isstad_plugin.data.synthetic.spec.CATEGORY_DEFECTS`, else every type).
        seed: Non-negative seed; the same parameters always give byte-identical files.
        overwrite: Replace an existing dataset generated with other parameters (or not by this function).

    Returns:
        ``Path(root) / category``.

    Raises:
        ValueError: If an argument is invalid, or the folder holds another dataset and ``overwrite`` is False.
    """
    chosen = CATEGORY_DEFECTS.get(category, DEFECT_TYPES) if defects is None else defects
    spec = DatasetSpec(category, n_train, n_test_good, n_test_defect, image_size, chosen, seed)
    category_root = Path(root) / spec.category
    if _can_reuse(category_root, spec, overwrite=overwrite):
        return category_root
    _clear_layout(category_root)
    category_root.mkdir(parents=True, exist_ok=True)
    manifest_path = category_root / MANIFEST_NAME
    _write_manifest(manifest_path, spec, [], complete=False)
    files = [_write_sample(category_root, spec, *job) for job in _jobs(spec)]
    _write_manifest(manifest_path, spec, files, complete=True)
    return category_root
