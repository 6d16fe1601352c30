"""``isstad demo``: generate a dataset, train both stages of a small ISSTAD on the CPU, test it, write a report.

Everything is offline: the data is generated procedurally (:mod:`isstad_plugin.data.synthetic`) unless
``--data-root`` points at an MVTec-layout folder of the user's.
"""

from __future__ import annotations

import logging
import resource
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from anomalib.data import MVTecAD
from anomalib.engine import Engine
from anomalib.pre_processing import PreProcessor
from lightning.pytorch import seed_everything

from isstad_plugin.data.synthetic import generate_dataset
from isstad_plugin.lightning_model import Isstad
from isstad_plugin.precision import resolve_precision
from isstad_plugin.report import save_panels, write_metrics
from isstad_plugin.run_config import RunConfig, load_run_config, packaged_config
from isstad_plugin.runs import fit_and_test

logger = logging.getLogger(__name__)

DEMO_DATA = {"n_train": 120, "n_test_good": 40, "n_test_defect": 12}
"""Generated demo set: normal training images, good and (per defect type) defective test images."""
FAST_DATA = {"n_train": 24, "n_test_good": 8, "n_test_defect": 3}
FAST_OVERRIDES = {"image_size": 64, "stage1_epochs": 1}
FAST_EPOCHS = 2


@dataclass
class DemoOptions:
    """Options of ``isstad demo``.

    Attributes:
        output: Report folder.
        fast: A smoke run in well under a minute (tiny data, two epochs); its numbers mean nothing.
        seed: Seed of the data generator and of training.
        data_root: MVTec-layout root of the user's instead of generated data (``<root>/<category>/train/good`` ...).
        category: Category folder under ``data_root`` (generated data: the surface, default ``tiles``).
        config: Run config (anomalib CLI format); default ``configs/isstad_cpu.yaml``.
    """

    output: Path = Path("reports/demo")
    fast: bool = False
    seed: int = 0
    data_root: Path | None = None
    category: str = "tiles"
    config: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class DemoResult:
    """What the demo produced."""

    metrics: dict[str, float]
    report: Path
    fit_seconds: float
    test_seconds: float
    peak_rss_mb: float


def run_demo(options: DemoOptions) -> DemoResult:
    """Run the demo end to end and return its metrics and report folder."""
    config = load_run_config(options.config or packaged_config("isstad_cpu.yaml"))
    model_args = {**config.model, **(FAST_OVERRIDES if options.fast else {}), **options.overrides}
    max_epochs = FAST_EPOCHS if options.fast else int(config.trainer.get("max_epochs", 1))
    output = options.output.resolve()
    root = _dataset_root(options, output, int(model_args.get("image_size", 128)))
    datamodule = _datamodule(config, root, options)

    seed_everything(options.seed, workers=True)
    model = Isstad(**model_args)
    engine = Engine(
        default_root_dir=output / "anomalib",
        max_epochs=max_epochs,
        check_val_every_n_epoch=max_epochs,
        precision=resolve_precision(config.trainer.get("precision")),  # "auto" when unset: from the hardware
        logger=False,
        accelerator="cpu",
        devices=1,
    )
    result = fit_and_test(engine, model, datamodule)
    metrics, fit_seconds, test_seconds = result.metrics, result.fit_seconds, result.test_seconds

    protocol = (
        f"{'fast smoke run, ' if options.fast else ''}{model.stage1_epochs} stage-1 + "
        f"{max_epochs - model.stage1_epochs} stage-2 epochs, last epoch tested, thresholds learnt on a validation "
        f"split taken from the test folder and not tested (seed {options.seed})"
    )
    write_metrics(
        {**metrics, "fit_seconds": fit_seconds, "test_seconds": test_seconds},
        output,
        f"ISSTAD demo on {root.name}/{options.category}",
        protocol,
    )
    _write_panels(model, datamodule, output / "panels.png")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return DemoResult(metrics, output, fit_seconds, test_seconds, peak)


def _dataset_root(options: DemoOptions, output: Path, image_size: int) -> Path:
    if options.data_root is not None:
        category_dir = options.data_root / options.category
        if not (category_dir / "train" / "good").is_dir():
            msg = (
                f"--data-root {options.data_root}: no {options.category}/train/good folder; pass an MVTec-layout root "
                "and its category with --category"
            )
            raise FileNotFoundError(msg)
        return options.data_root
    counts = FAST_DATA if options.fast else DEMO_DATA
    root = output / "data"
    generate_dataset(
        root,
        options.category,
        n_train=counts["n_train"],
        n_test_good=counts["n_test_good"],
        n_test_defect=counts["n_test_defect"],
        image_size=image_size,
        seed=options.seed,
    )
    return root


def _datamodule(config: RunConfig, root: Path, options: DemoOptions) -> MVTecAD:
    data_args = {key: value for key, value in config.data.items() if key not in ("root", "category")}
    data_args.setdefault("val_split_mode", "from_test")
    data_args.setdefault("val_split_ratio", 0.3)
    return MVTecAD(root=root, category=options.category, seed=options.seed, **data_args)


def _write_panels(model: Isstad, datamodule: MVTecAD, path: Path) -> None:
    """Fig.-5-style panels for one test image of every defect type (and one good one)."""
    dataset = datamodule.test_data
    chosen: dict[str, int] = {}
    for index, image_path in enumerate(dataset.samples.image_path):
        defect = Path(image_path).parent.name
        chosen.setdefault(defect, index)
    items = [dataset[i] for i in chosen.values()]
    transform = cast(Callable[[torch.Tensor], torch.Tensor], cast(PreProcessor, model.pre_processor).transform)
    images = torch.stack([transform(cast(torch.Tensor, item.image)) for item in items])
    masks = torch.stack([_resized_mask(item.gt_mask, images.shape[-2:]) for item in items])
    save_panels(model.model, images, masks, path, titles=list(chosen))


def _resized_mask(mask: torch.Tensor | None, size: torch.Size) -> torch.Tensor:
    if mask is None:
        return torch.zeros(size)
    resized = torch.nn.functional.interpolate(mask.float()[None, None], size=tuple(size), mode="nearest")
    return resized[0, 0]
