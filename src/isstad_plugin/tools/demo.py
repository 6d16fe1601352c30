"""``isstad demo``: generate a dataset, train both stages of a small ISSTAD on the CPU, test it, write a report.

Everything is offline: the data is generated procedurally (:mod:`isstad_plugin.data.synthetic`) unless
``--data-root`` points at an MVTec-layout folder of the user's, which is read as ``isstad benchmark`` reads it
(:func:`~isstad_plugin.data.folders.mvtec_layout_datamodule`: anomalib's ``MVTecAD`` for PNG images with masks, else its
``Folder``, any image type; masks optional, without them only image metrics are computed). The loss per epoch is
logged with Lightning's ``CSVLogger`` and plotted to ``loss_curve.png``.
"""

from __future__ import annotations

import logging
import resource
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from anomalib.data import AnomalibDataModule
from anomalib.pre_processing import PreProcessor
from lightning.pytorch import seed_everything
from lightning.pytorch.loggers import CSVLogger

from isstad_plugin.data import high_bit_depth
from isstad_plugin.data.folders import mvtec_layout_datamodule
from isstad_plugin.data.synthetic import generate_dataset
from isstad_plugin.model.lightning_model import Isstad
from isstad_plugin.model.schedule import Unit
from isstad_plugin.tools.report import resized_masks, save_loss_curve, save_panels, write_metrics
from isstad_plugin.tools.run_config import RunConfig, isstad_config, load_run_config, packaged_config, stage_lengths
from isstad_plugin.tools.runs import VAL_SPLIT_RATIO, FitTestResult, IsstadRun, fit_and_test

logger = logging.getLogger(__name__)

DEMO_DATA: dict[str, Any] = {"n_train": 120, "n_test_good": 40, "n_test_defect": 12}
"""Generated demo set: normal training images, good and (per defect type) defective test images."""
FAST_DATA: dict[str, Any] = {"n_train": 24, "n_test_good": 8, "n_test_defect": 3}
FAST_OVERRIDES = {"image_size": 64}
FAST_BUDGET = 2
"""Length of the smoke run: this many epochs or steps, half of them in each stage."""
DEMO_STEPS = 720
"""Step budget on the generated demo set (the config's stage split kept): about 100 epochs of its 120 images."""


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
        accelerator: Lightning accelerator; ``auto`` is a CUDA GPU when torch sees one, else the CPU.
        devices: Device count or list; ``auto`` is one device.
    """

    output: Path = Path("reports/demo")
    fast: bool = False
    seed: int = 0
    data_root: Path | None = None
    category: str = "tiles"
    config: Path | None = None
    accelerator: str = "auto"
    devices: str | int = "auto"


@dataclass
class DemoResult(FitTestResult):
    """What the demo produced: the test metrics and wall times, the report folder, the peak memory, the loss curve."""

    report: Path
    peak_rss_mb: float
    loss_curve: Path


def run_demo(options: DemoOptions) -> DemoResult:
    """Run the demo end to end and return its metrics and report folder."""
    config = load_run_config(options.config or packaged_config("isstad_cpu.yaml"))
    stage1, stage2, unit = _budget(config, options)
    run = IsstadRun(config, stage1, stage2, unit, FAST_OVERRIDES if options.fast else {})
    output = options.output.resolve()
    root = _dataset_root(options, output, max(isstad_config(run.model_options).network.image_hw))
    datamodule = _datamodule(config, root, options)

    seed_everything(options.seed, workers=True)
    model = run.model()
    csv_logger = CSVLogger(save_dir=output, name="logs", version="")  # output/logs/metrics.csv
    engine = run.engine(
        output / "anomalib", options.accelerator, options.devices, logger=csv_logger, log_every_n_steps=1
    )
    with high_bit_depth.installed():  # the user's 16-bit images are read scaled, for this run only
        result = fit_and_test(engine, model, datamodule)
        _write_panels(model, datamodule, output / "panels.png")
    protocol = (
        f"{'fast smoke run, ' if options.fast else ''}{stage1} stage-1 + {stage2} stage-2 {unit}, last epoch tested, "
        f"thresholds learnt on a validation split taken from the test folder and not tested (seed {options.seed})"
    )
    times = {"fit_seconds": result.fit_seconds, "test_seconds": result.test_seconds}
    write_metrics({**result.metrics, **times}, output, f"ISSTAD demo on {root.name}/{options.category}", protocol)
    curve = save_loss_curve(output / "logs" / "metrics.csv", output / "loss_curve.png")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return DemoResult(result.metrics, result.fit_seconds, result.test_seconds, output, peak, curve)


def _budget(config: RunConfig, options: DemoOptions) -> tuple[int, int, Unit]:
    """Stage lengths and unit: the config's; on generated data a step budget is scaled to :data:`DEMO_STEPS`."""
    stage1, stage2, unit = stage_lengths(config)
    if options.fast:
        return FAST_BUDGET // 2, FAST_BUDGET - FAST_BUDGET // 2, unit
    if unit == "steps" and options.data_root is None:
        first = max(1, round(DEMO_STEPS * stage1 / (stage1 + stage2)))
        return first, DEMO_STEPS - first, unit
    return stage1, stage2, unit


def _dataset_root(options: DemoOptions, output: Path, image_size: int) -> Path:
    """``data_root``, or generated squares of side ``image_size`` under ``output``.

    ``image_size`` is the model's longer input side (``auto``: the side of its pixel budget's square, which it keeps).
    """
    if options.data_root is not None:
        return options.data_root
    counts = FAST_DATA if options.fast else DEMO_DATA
    generate_dataset(output / "data", options.category, **counts, image_size=image_size, seed=options.seed)
    return output / "data"


SHARED_DATA_ARGS = ("train_batch_size", "eval_batch_size", "num_workers", "val_split_ratio", "test_split_ratio")
"""Datamodule settings the demo takes from its config, whichever datamodule the config names."""


def _datamodule(config: RunConfig, root: Path, options: DemoOptions) -> AnomalibDataModule:
    """``MVTecAD`` where it reads the folder (the generated data), else ``Folder`` over that layout (any image type).

    Thresholds are always learnt on a validation split taken from the test folder and never tested.
    """
    shared = {key: config.data[key] for key in SHARED_DATA_ARGS if key in config.data}
    data_args = {"val_split_ratio": VAL_SPLIT_RATIO, **shared, "val_split_mode": "from_test", "seed": options.seed}
    return mvtec_layout_datamodule(root, options.category, "--data-root", **data_args)


def _write_panels(model: Isstad, datamodule: AnomalibDataModule, path: Path) -> None:
    """Fig.-5-style panels for one test image of every defect type (and one good one)."""
    dataset = datamodule.test_data
    kinds = [Path(image_path).parent.name for image_path in dataset.samples.image_path]
    chosen = {kind: kinds.index(kind) for kind in dict.fromkeys(kinds)}  # the first image of every defect type
    items = [dataset[i] for i in chosen.values()]
    transform = cast(Callable[[torch.Tensor], torch.Tensor], cast(PreProcessor, model.pre_processor).transform)
    images = torch.stack([transform(cast(torch.Tensor, item.image)) for item in items])
    masks = None  # image-level labels only: the GT column says "no GT"
    if any(item.gt_mask is not None for item in items):
        size = images.shape[-2:]
        masks = torch.stack(
            [torch.zeros(size) if i.gt_mask is None else resized_masks(i.gt_mask[None], size)[0] for i in items]
        )
    save_panels(model.model, images, masks, path, titles=list(chosen))
