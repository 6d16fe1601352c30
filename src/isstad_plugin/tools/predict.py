"""``isstad predict`` and :class:`PredictionTable`: a per-image table of scores and labels for a folder of images.

anomalib's ``predict`` writes one picture per image (input, anomaly map, predicted mask) but no table. The
:class:`PredictionTable` callback collects, for every predicted image, its path, the normalised score, the label and
the share of its pixels in the predicted mask, and writes ``predictions.csv`` and ``predictions.json``.

An image far smaller than the model's input (a side under 1/8 of the input's, :data:`SMALL_IMAGE_FRACTION`) is upscaled
so much that its score means little: it is flagged (``small_image`` 1) and named in one warning line.

Scores are anomalib's normalised scores: the post-processor maps the threshold learnt on the validation split to
0.5 and the validation minimum and maximum to about 0 and 1 (clamped to ``[0, 1]``); an image is labelled anomalous
when its score is at least 0.5.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, cast

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from PIL import Image

from isstad_plugin.tools.devices import device_args

logger = logging.getLogger(__name__)

SMALL_IMAGE_FRACTION = 1 / 8
"""An image with a side under this fraction of the model's input side is flagged as too small to score."""


@dataclass
class Prediction:
    """One predicted image.

    Attributes:
        image_path: The image file.
        pred_score: Normalised anomaly score in ``[0, 1]``; 0.5 is the threshold learnt on validation.
        pred_label: 1 for anomalous (``pred_score >= 0.5``), 0 for normal.
        anomalous_area: Fraction of the image's pixels in the predicted anomaly mask (``nan`` without a mask).
        small_image: 1 when a side of the file is under 1/8 of the model's input side (upscaled that much, its score
            means little), else 0.
    """

    image_path: str
    pred_score: float
    pred_label: int
    anomalous_area: float
    small_image: int = 0


class PredictionTable(Callback):
    """Collect every predicted image's score and label; write ``predictions.csv`` and ``predictions.json``.

    Works with ``Engine.predict`` and with the CLI: ``anomalib predict ...
    --trainer.callbacks+=isstad_plugin.tools.predict.PredictionTable --trainer.callbacks.output_dir reports/predict``.

    The model's post-processor is a callback too, and Lightning runs the model's callbacks after the trainer's: when a
    batch ends, its scores may not be normalised yet. A batch is therefore read one hook later (when the next batch
    ends, or when the epoch ends), by which time every callback has post-processed it; one batch is held at a time.

    Args:
        output_dir: Folder of the two files (created).
    """

    def __init__(self, output_dir: str | Path = "predictions") -> None:
        self.output_dir = Path(output_dir)
        self.rows: list[Prediction] = []
        self._pending: Any = None
        self._input_hw: tuple[int, int] | None = None

    def on_predict_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Start an empty table; note the model's input size (to flag images far smaller than it)."""
        self.rows, self._pending, self._input_hw = [], None, input_hw(pl_module)

    def on_predict_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, *args: Any, **kwargs: Any
    ) -> None:
        """Read the previous batch (post-processed by now); keep this one for later."""
        self._flush()
        self._pending = outputs

    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Read the last batch and write the table."""
        self._flush()
        small = [row.image_path for row in self.rows if row.small_image]
        if trainer.is_global_zero:
            write_predictions(self.rows, self.output_dir)
            if small and self._input_hw is not None:
                logger.warning(small_images_message(small, self._input_hw))

    def _flush(self) -> None:
        if self._pending is not None:
            self.rows += predictions_of(self._pending, self._input_hw)
            self._pending = None


def input_hw(module: LightningModule) -> tuple[int, int] | None:
    """The input size of an ISSTAD model (``None`` for other models)."""
    return getattr(getattr(getattr(module, "model", None), "config", None), "image_hw", None)


def is_small_image(path: str | Path, input_hw: tuple[int, int] | None) -> bool:
    """Whether a side of the image file is under :data:`SMALL_IMAGE_FRACTION` of the model's input side.

    Only the file's header is read; a file that cannot be opened (or a model of unknown input size) is not flagged.
    """
    if input_hw is None:
        return False
    try:
        with Image.open(path) as image:
            width, height = image.size
    except OSError:
        return False
    return height < input_hw[0] * SMALL_IMAGE_FRACTION or width < input_hw[1] * SMALL_IMAGE_FRACTION


def small_images_message(paths: list[str], input_hw: tuple[int, int]) -> str:
    """One line naming the images far smaller than the model's input."""
    shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
    return (
        f"{len(paths)} image(s) have a side under 1/8 of the model's input {input_hw[0]}x{input_hw[1]}: upscaled that "
        f"much, their scores mean little (small_image 1 in predictions.csv); use larger images: {shown}"
    )


def predictions_of(batch: Any, input_hw: tuple[int, int] | None = None) -> list[Prediction]:
    """The rows of one predicted batch (an anomalib ``ImageBatch`` after post-processing).

    Images far smaller than ``input_hw`` (the model's input) are flagged (:func:`is_small_image`).
    """
    scores = torch.as_tensor(batch.pred_score).detach().float().cpu().reshape(-1)
    labels = scores >= 0.5 if batch.pred_label is None else torch.as_tensor(batch.pred_label).cpu().reshape(-1)
    areas = torch.full_like(scores, float("nan"))
    if getattr(batch, "pred_mask", None) is not None:
        areas = torch.as_tensor(batch.pred_mask).detach().float().cpu().reshape(len(scores), -1).mean(dim=1)
    return [
        Prediction(str(path), float(scores[i]), int(labels[i]), float(areas[i]), int(is_small_image(path, input_hw)))
        for i, path in enumerate(batch.image_path)
    ]


def write_predictions(rows: list[Prediction], folder: Path) -> None:
    """Write ``predictions.csv`` (one line per image) and ``predictions.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "predictions.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[field.name for field in fields(Prediction)])
        writer.writeheader()
        for row in rows:
            area = "" if math.isnan(row.anomalous_area) else f"{row.anomalous_area:.4f}"  # nan: no mask
            writer.writerow({**asdict(row), "pred_score": f"{row.pred_score:.4f}", "anomalous_area": area})
    payload = {
        "score": "normalised: 0.5 is the threshold learnt on the validation split; pred_label 1 = anomalous",
        "predictions": [asdict(row) for row in rows],
    }
    (folder / "predictions.json").write_text(json.dumps(payload, indent=2) + "\n")


@dataclass
class PredictOptions:
    """Options of ``isstad predict``.

    Attributes:
        ckpt: An ``Isstad`` checkpoint of a finished fit (thresholds learnt).
        images: An image file or a folder (searched recursively; every image type anomalib reads).
        output: Folder of ``predictions.csv``/``.json`` and (``save_images``) anomalib's pictures under ``images/``.
        batch_size: Images per forward pass.
        save_images: Write anomalib's picture of every image (input, anomaly map, predicted mask).
        accelerator: Lightning accelerator (``auto``: a CUDA GPU when torch sees one, else the CPU).
        devices: Device count or list (``auto``: one).
    """

    ckpt: Path
    images: Path
    output: Path = Path("reports/predict")
    batch_size: int = 8
    save_images: bool = True
    accelerator: str = "auto"
    devices: str | int = "auto"


def run_predict(options: PredictOptions) -> PredictionTable:
    """Score every image under ``options.images`` with the checkpoint; write the table (and pictures).

    Returns:
        The table: its ``rows``, written under its ``output_dir`` (the resolved ``options.output``).

    Raises:
        FileNotFoundError: The images do not exist.
        CheckpointError: The checkpoint is missing, truncated, not a checkpoint, or has no learnt thresholds.
    """
    from anomalib.visualization import ImageVisualizer
    from torch.utils.data import DataLoader
    from torchvision.transforms.v2 import Resize

    from isstad_plugin.data.predict import ReadablePredictDataset
    from isstad_plugin.model.lightning_model import Isstad
    from isstad_plugin.model.torch_model import IsstadModel
    from isstad_plugin.training.checkpoint_io import check_checkpoint_file
    from isstad_plugin.training.checkpointing import require_statistics

    output = options.output.resolve()
    check_checkpoint_file(options.ckpt, "--ckpt")  # read by torch.load below, not through Lightning's checkpoint IO
    model = Isstad.load_from_checkpoint(options.ckpt, weights_only=True, map_location="cpu")
    require_statistics(model, f"--ckpt {options.ckpt}")
    visualizer: Any = ImageVisualizer(output_dir=output / "images") if options.save_images else None
    model.visualizer = visualizer  # anomalib's pictures under output/images/, or none
    # Images of any size: resized to the model's input, as its pre-processor would, so that they batch together.
    whole_image = cast(IsstadModel, model.model).config.image_hw  # with tiles: the whole image, which the model tiles
    dataset = ReadablePredictDataset(options.images, transform=Resize(list(whole_image), antialias=True))
    loader = DataLoader(dataset, batch_size=options.batch_size, collate_fn=dataset.collate_fn)
    table = PredictionTable(output)
    # Lightning's Trainer, not anomalib's Engine: the model is loaded already, and nothing but the table and the
    # pictures is written (no workspace folders, no "ckpt_path is not provided" warning).
    trainer = Trainer(
        default_root_dir=output,
        callbacks=[table],
        logger=False,
        enable_progress_bar=False,
        **device_args(options.accelerator, options.devices),
    )
    trainer.predict(model, dataloaders=loader, return_predictions=False)
    return table
