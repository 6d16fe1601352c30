"""Tests of the procedural MVTec-layout dataset generator."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from isstad_plugin.data.synthetic import CATEGORIES, DEFECT_TYPES, generate_dataset, render_sample
from isstad_plugin.data.synthetic.spec import (
    LONG_CATEGORIES,
    MANIFEST_NAME,
    MAX_DEFECT_AREA,
    MIN_CHANGE,
    MIN_DEFECT_AREA,
    image_hw,
)

SMALL = {"n_train": 6, "n_test_good": 3, "n_test_defect": 2, "image_size": 64, "seed": 3}
TINY = {"n_train": 2, "n_test_good": 1, "n_test_defect": 1, "image_size": 48}


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("synthetic"), "tiles", **SMALL)


def read_rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def all_files(category_root: Path) -> dict[str, bytes]:
    return {p.relative_to(category_root).as_posix(): p.read_bytes() for p in sorted(category_root.rglob("*.png"))}


def test_layout_is_mvtec(small_dataset: Path) -> None:
    assert small_dataset.name == "tiles"
    assert sorted(p.name for p in (small_dataset / "train" / "good").iterdir()) == [f"{i:03d}.png" for i in range(6)]
    assert sorted(p.name for p in (small_dataset / "test").iterdir()) == sorted(["good", *DEFECT_TYPES])
    assert len(list((small_dataset / "test" / "good").iterdir())) == 3
    assert sorted(p.name for p in (small_dataset / "ground_truth").iterdir()) == sorted(DEFECT_TYPES)
    for defect in DEFECT_TYPES:
        assert sorted(p.name for p in (small_dataset / "test" / defect).iterdir()) == ["000.png", "001.png"]
        masks = sorted(p.name for p in (small_dataset / "ground_truth" / defect).iterdir())
        assert masks == ["000_mask.png", "001_mask.png"]
        with Image.open(small_dataset / "ground_truth" / defect / "000_mask.png") as mask:
            assert mask.mode == "L"
            assert mask.size == (64, 64)
            assert set(np.unique(np.asarray(mask)).tolist()) == {0, 255}
    with Image.open(small_dataset / "train" / "good" / "000.png") as image:
        assert image.mode == "RGB"
        assert image.size == (64, 64)
    assert not (small_dataset / "ground_truth" / "good").exists()


def test_manifest_lists_every_file(small_dataset: Path) -> None:
    manifest = json.loads((small_dataset / MANIFEST_NAME).read_text())
    assert manifest["complete"] is True
    assert manifest["params"] == {
        "generator_version": manifest["params"]["generator_version"],
        "category": "tiles",
        "defects": list(DEFECT_TYPES),
        **SMALL,
    }
    files = manifest["files"]
    assert len(files) == 6 + 3 + 2 * len(DEFECT_TYPES)
    listed = {entry["path"] for entry in files} | {entry["mask_path"] for entry in files if entry["mask_path"]}
    assert listed == set(all_files(small_dataset))
    for entry in files:
        if entry["defect_type"] is None:
            assert (entry["label"], entry["label_index"], entry["mask_path"]) == ("good", 0, None)
            assert entry["mask_pixels"] == 0
        else:
            mask = np.asarray(Image.open(small_dataset / entry["mask_path"]))
            assert entry["label"] == entry["defect_type"]
            assert entry["label_index"] == 1
            assert entry["mask_pixels"] == int(np.count_nonzero(mask))
            assert entry["n_defects"] in (1, 2)


def test_anomalib_mvtec_reads_dataset(small_dataset: Path) -> None:
    from anomalib.data import MVTecAD

    datamodule = MVTecAD(
        root=small_dataset.parent, category="tiles", train_batch_size=4, eval_batch_size=4, num_workers=0
    )
    datamodule.setup()
    assert len(datamodule.train_data) == 6
    assert len(datamodule.test_data) == 3 + 2 * len(DEFECT_TYPES)
    samples = datamodule.test_data.samples
    abnormal = samples[samples.label_index == 1]
    assert len(abnormal) == 2 * len(DEFECT_TYPES)
    for row in abnormal.itertuples():
        assert Path(row.mask_path).name == Path(row.image_path).stem + "_mask.png"
        assert Path(row.mask_path).parent.name == Path(row.image_path).parent.name
    for index in range(len(datamodule.test_data)):
        item = datamodule.test_data[index]
        assert item.gt_mask is not None
        assert tuple(item.gt_mask.shape[-2:]) == (64, 64)
        assert bool(item.gt_mask.any()) == bool(item.gt_label)


def test_anomalib_folder_reads_dataset(small_dataset: Path) -> None:
    from anomalib.data import Folder

    datamodule = Folder(
        name="synthetic_tiles",
        root=small_dataset,
        normal_dir="train/good",
        normal_test_dir="test/good",
        abnormal_dir=[f"test/{defect}" for defect in DEFECT_TYPES],
        mask_dir=[f"ground_truth/{defect}" for defect in DEFECT_TYPES],
        train_batch_size=4,
        eval_batch_size=4,
        num_workers=0,
    )
    datamodule.setup()
    assert len(datamodule.train_data) == 6
    assert len(datamodule.test_data) + len(datamodule.val_data) == 3 + 2 * len(DEFECT_TYPES)


def test_same_seed_is_byte_identical_and_other_seed_differs(tmp_path: Path) -> None:
    first = all_files(generate_dataset(tmp_path / "a", "parts", seed=5, **TINY))
    second = all_files(generate_dataset(tmp_path / "b", "parts", seed=5, **TINY))
    other = all_files(generate_dataset(tmp_path / "c", "parts", seed=6, **TINY))
    assert first == second
    assert first.keys() == other.keys()
    assert all(first[name] != other[name] for name in first if not name.startswith("ground_truth"))


def test_images_do_not_depend_on_counts_or_defect_list(small_dataset: Path, tmp_path: Path) -> None:
    subset = generate_dataset(tmp_path, "tiles", **{**SMALL, "n_train": 2, "n_test_defect": 1}, defects=("crack",))
    for name, data in all_files(subset).items():
        assert data == (small_dataset / name).read_bytes(), name


def test_masks_cover_exactly_the_defects(small_dataset: Path) -> None:
    manifest = json.loads((small_dataset / MANIFEST_NAME).read_text())
    for entry in manifest["files"]:
        if entry["defect_type"] is None:
            continue
        image = read_rgb(small_dataset / entry["path"])
        mask = np.asarray(Image.open(small_dataset / entry["mask_path"])) > 0
        index = int(Path(entry["path"]).stem)
        sample = render_sample("tiles", "test", index, defect=entry["defect_type"], image_size=64, seed=SMALL["seed"])
        np.testing.assert_array_equal(sample.image, image)
        np.testing.assert_array_equal(sample.mask > 0, mask)
        assert np.array_equal(image[~mask], sample.clean[~mask])
        change = np.abs(image.astype(int) - sample.clean.astype(int)).max(axis=2)
        assert change[mask].min() >= MIN_CHANGE
        assert MIN_DEFECT_AREA <= mask.mean() <= MAX_DEFECT_AREA


@pytest.mark.parametrize("category", CATEGORIES)
@pytest.mark.parametrize("size", [32, 96])
def test_every_defect_renders_within_area_range(category: str, size: int) -> None:
    width = round(size * LONG_CATEGORIES.get(category, 1))  # a long category's shorter side is `size`
    height = image_hw(category, width)[0]
    for defect in DEFECT_TYPES:
        for index in range(2):
            sample = render_sample(category, "test", index, defect=defect, image_size=width, seed=1)
            assert sample.mask is not None
            assert sample.image.shape == (height, width, 3)
            assert sample.mask.shape == (height, width)
            mask = sample.mask > 0
            assert MIN_DEFECT_AREA <= mask.mean() <= MAX_DEFECT_AREA, (category, defect, index)
            assert np.array_equal(sample.image[~mask], sample.clean[~mask])
            changed = np.abs(sample.image.astype(int) - sample.clean.astype(int)).max(axis=2) >= MIN_CHANGE
            assert np.array_equal(changed, mask)


@pytest.mark.parametrize("category", CATEGORIES)
def test_normal_images_vary_but_are_clean(category: str) -> None:
    samples = [
        render_sample(category, "train", index, image_size=64 if category != "strip" else 128) for index in range(3)
    ]
    for sample in samples:
        assert sample.mask is None
        assert sample.n_defects == 0
        assert np.array_equal(sample.image, sample.clean)
        assert sample.image.std() > 2
    differences = [np.abs(a.image.astype(int) - b.image.astype(int)).mean() for a, b in itertools.pairwise(samples)]
    assert min(differences) > 1


def test_reuse_does_not_rewrite(tmp_path: Path) -> None:
    root = generate_dataset(tmp_path, "wood", **TINY)
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    assert generate_dataset(tmp_path, "wood", **TINY) == root
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == stamps


def test_incomplete_dataset_is_regenerated(tmp_path: Path) -> None:
    root = generate_dataset(tmp_path, "fabric", **TINY)
    before = all_files(root)
    (root / "test" / "hole" / "000.png").unlink()
    generate_dataset(tmp_path, "fabric", **TINY)
    assert all_files(root) == before


def test_different_parameters_need_overwrite(tmp_path: Path) -> None:
    generate_dataset(tmp_path, "metal", seed=0, **TINY)
    with pytest.raises(ValueError, match=r"different parameters \(seed\); pass overwrite=True or use another root"):
        generate_dataset(tmp_path, "metal", seed=1, **TINY)
    root = generate_dataset(tmp_path, "metal", seed=1, overwrite=True, **{**TINY, "n_test_defect": 0})
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    assert manifest["params"]["seed"] == 1
    assert not (root / "ground_truth").exists()
    assert sorted(p.name for p in (root / "test").iterdir()) == ["good"]


def test_foreign_folder_needs_overwrite(tmp_path: Path) -> None:
    (tmp_path / "tiles").mkdir()
    (tmp_path / "tiles" / "readme.txt").write_text("someone else's data")
    with pytest.raises(ValueError, match="no synthetic-dataset manifest; pass overwrite=True"):
        generate_dataset(tmp_path, "tiles", **TINY)
    generate_dataset(tmp_path, "tiles", overwrite=True, **TINY)
    assert (tmp_path / "tiles" / "readme.txt").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"defects": ("scratch", "dent")}, "unknown defect type 'dent'"),
        ({"defects": "scratch"}, "not a string"),
        ({"defects": ()}, "at least one"),
        ({"category": "bottle"}, "unknown category 'bottle'"),
        ({"image_size": 16}, "image_size must be between 32"),
        ({"image_size": 64.0}, "image_size must be an integer"),
        ({"n_train": 0}, "n_train must be >= 1"),
        ({"n_test_good": -1}, "n_test_good must be >= 0"),
        ({"n_test_defect": -2}, "n_test_defect must be >= 0"),
        ({"seed": -1}, "seed must be >= 0"),
        ({"n_train": True}, "n_train must be an integer"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_dataset(tmp_path, **{"n_train": 1, "n_test_good": 0, "n_test_defect": 0, **kwargs})
    assert not any(tmp_path.iterdir())


def test_render_sample_rejects_defects_in_train() -> None:
    with pytest.raises(ValueError, match="only exist in the test split"):
        render_sample("tiles", "train", 0, defect="hole")


def test_default_dataset_is_fast(tmp_path: Path) -> None:
    import time

    start = time.perf_counter()
    root = generate_dataset(tmp_path)
    elapsed = time.perf_counter() - start
    assert len(list(root.rglob("*.png"))) == 120 + 30 + 2 * 10 * len(DEFECT_TYPES)
    assert cv2.imread(str(root / "train" / "good" / "000.png")).shape == (128, 128, 3)
    assert elapsed < 30


def test_the_strip_is_long_and_narrow_with_hairline_cracks(tmp_path: Path) -> None:
    root = generate_dataset(tmp_path, "strip", n_train=2, n_test_good=1, n_test_defect=3, image_size=128)
    assert sorted(p.name for p in (root / "test").iterdir()) == ["crack", "good"], "cracks only, by default"
    for path in sorted((root / "ground_truth" / "crack").glob("*.png")):
        mask = np.asarray(Image.open(path)) > 0
        assert mask.shape == (48, 128)
        widths = [run for row in mask.T for run in _runs(row)] + [run for row in mask for run in _runs(row)]
        assert np.median(widths) <= 2, "a hairline: most runs across the crack are 1-2 px"
    with pytest.raises(ValueError, match=r"image_size of 'strip' \(its width\) must be at least 84"):
        render_sample("strip", "train", 0, image_size=64)


def _runs(line: np.ndarray) -> list[int]:
    """Lengths of the runs of True in a 1-D bool array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], line.astype(int), [0]])))
    return list(edges[1::2] - edges[::2])
