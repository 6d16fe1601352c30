"""Trust: model.ckpt only with learnt thresholds, atomic checkpoint writes, a full disk in one line, clean saves.

The fits are tiny step-budget fits of the generated ``tiles`` set (16 training images, batch 8: 2 steps an epoch).
"""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from anomalib.deploy import ExportType
from lightning.pytorch import Callback, seed_everything
from PIL import Image

from isstad_plugin.data.checks import check_masks, warn_non_binary_masks
from isstad_plugin.tools import cli
from isstad_plugin.training import checkpoint_io
from isstad_plugin.training.checkpoint_io import AtomicCheckpointIO, CheckpointWriteError
from isstad_plugin.training.checkpointing import CheckpointError, LearntModelCheckpoint, missing_statistics
from tests.helpers import engine_for, small_datamodule, tiny_isstad

STAGE1_STEPS, STAGE2_STEPS = 2, 4  # epochs 0 (stage 1), 1 and 2 (stage 2); the fit validates in epoch 2 only


class StopAfter(Callback):
    """Raise ``KeyboardInterrupt``-like failure at the end of an epoch: a fit interrupted there."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise SystemExit("interrupted")


def _model():
    seed_everything(0)
    return tiny_isstad(stage1_steps=STAGE1_STEPS, stage2_steps=STAGE2_STEPS, stage1_warmup_steps=1)


def _engine(root, **kwargs):
    return engine_for(root, max_epochs=-1, check_val_every_n_epoch=1, **kwargs)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, dataset_root):
    """A fit stopped at the end of epoch 1 (stage 2, thresholds not learnt yet): its weights folder."""
    root = tmp_path_factory.mktemp("interrupted")
    with pytest.raises(SystemExit):
        _engine(root, callbacks=[StopAfter(1)]).fit(_model(), datamodule=small_datamodule(dataset_root))
    return _weights_folder(root)


def _weights_folder(root: Path) -> Path:
    """``<run>/weights/lightning`` of the one run under ``root`` (the Engine adds ``Isstad/MVTecAD/tiles/v0``)."""
    (folder,) = root.rglob("weights/lightning")
    return folder


class Records(logging.Handler):
    """The messages of one logger, at every level, while in a ``with`` block."""

    def __init__(self, name: str) -> None:
        super().__init__(logging.DEBUG)
        self.logger, self.messages = logging.getLogger(name), []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> Records:
        self.level = self.logger.level
        self.logger.addHandler(self)
        self.logger.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self.level)


CHECKPOINT_LOGGER = "lightning.pytorch.trainer.connectors.checkpoint_connector"


@pytest.fixture(scope="module")
def finished(tmp_path_factory, dataset_root):
    """A whole fit, its engine, what Lightning's checkpoint connector logged in it, and in one plain save."""
    root = tmp_path_factory.mktemp("finished")
    engine = _engine(root)
    with Records(CHECKPOINT_LOGGER) as fit:
        engine.fit(_model(), datamodule=small_datamodule(dataset_root))
    with Records(CHECKPOINT_LOGGER) as plain:
        engine.trainer.save_checkpoint(root / "probe.ckpt")
    return _weights_folder(root), engine, fit.messages, plain.messages


def test_an_interrupted_fit_leaves_no_model_ckpt(interrupted):
    names = sorted(p.name for p in interrupted.iterdir())
    assert names == ["last.ckpt", "stage1.ckpt"], "model.ckpt of a model without thresholds, or a partial file"
    last = torch.load(interrupted / "last.ckpt", weights_only=False, map_location="cpu")
    assert torch.isnan(last["state_dict"]["post_processor._image_threshold"])


def test_a_finished_fit_writes_model_ckpt_with_learnt_statistics(finished):
    folder, engine, _, _ = finished
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt", "model.ckpt", "stage1.ckpt"]
    state = torch.load(folder / "model.ckpt", weights_only=False, map_location="cpu")["state_dict"]
    for name in ("_image_threshold", "image_min", "image_max", "pixel_min", "pixel_max"):
        assert torch.isfinite(state[f"post_processor.{name}"]), name
    assert isinstance(engine.trainer.checkpoint_callback, LearntModelCheckpoint)
    assert isinstance(engine.trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    assert missing_statistics(engine.model) == []


def test_saving_checkpoints_logs_no_weights_only_line(finished):
    _, _, fit, plain = finished
    assert any("weights_only" in m for m in plain), "the capture misses Lightning's line"
    assert not [m for m in fit if "weights_only" in m]


def test_predict_and_export_refuse_a_model_without_thresholds(tmp_path, interrupted, dataset_root):
    last = interrupted / "last.ckpt"
    engine = engine_for(tmp_path)
    with pytest.raises(CheckpointError, match=r"--ckpt_path .*last.ckpt has no learnt thresholds") as error:
        engine.predict(_model(), datamodule=small_datamodule(dataset_root), ckpt_path=last)
    assert "\n" not in str(error.value)
    with pytest.raises(CheckpointError, match="the model to export"):
        engine.export(_model(), ExportType.TORCH, export_root=tmp_path, ckpt_path=last)
    assert not list(tmp_path.rglob("*.pt")), "a model was exported"


def test_isstad_predict_gives_one_line_errors(tmp_path, interrupted, dataset_root, capsys):
    images = dataset_root / "tiles" / "test" / "good"
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    for ckpt, expected in ((bad, "bad.ckpt is not a readable checkpoint"), (interrupted / "last.ckpt", "no learnt")):
        capsys.readouterr()
        rc = cli.main(["predict", "--ckpt", str(ckpt), "--images", str(images), "--output", str(tmp_path / "out")])
        err = capsys.readouterr().err
        last = err.strip().splitlines()[-1]
        assert rc == 2
        assert last.startswith("isstad predict: error: --ckpt ") and expected in last, err
        assert "Traceback" not in err and "weights_only" not in last


def test_isstad_predict_flags_a_tiny_image_and_leaves_no_empty_folder(tmp_path, finished, dataset_root, caplog):
    import csv
    import shutil

    folder = finished[0]
    run = folder.parent.parent
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(dataset_root / "tiles" / "test" / "good" / "000.png", images / "normal.png")
    Image.new("RGB", (1, 1)).save(images / "dot.png")
    before = sorted(run.rglob("*"))
    output = tmp_path / "out"
    args = ["predict", "--ckpt", str(folder / "model.ckpt"), "--images", str(images), "--output", str(output)]
    with caplog.at_level(logging.WARNING):
        assert cli.main([*args, "--no-images", "--accelerator", "cpu"]) == 0
    rows = {Path(row["image_path"]).name: row for row in csv.DictReader((output / "predictions.csv").open())}
    assert (rows["dot.png"]["small_image"], rows["normal.png"]["small_image"]) == ("1", "0")
    (message,) = [r.getMessage() for r in caplog.records if "under 1/8" in r.getMessage()]
    assert message.startswith("1 image(s) have a side under 1/8 of the model's input 64x64: ")
    assert message.endswith(f"use larger images: {images / 'dot.png'}")
    assert sorted(run.rglob("*")) == before, "isstad predict wrote into the training run"
    written = sorted(str(path.relative_to(output)) for path in output.rglob("*"))
    assert written == ["predictions.csv", "predictions.json"], "folders (or links) of anomalib's workspace were left"


def test_a_test_without_masks_warns_of_no_skipped_metric_and_keeps_no_filter(tmp_path, dataset_root):
    import shutil
    import warnings

    from anomalib.data import Folder

    parts = tmp_path / "parts"
    shutil.copytree(dataset_root / "tiles" / "train" / "good", parts / "good")
    for defect in ("hole", "crack"):
        for image in (dataset_root / "tiles" / "test" / defect).glob("*.png"):
            (parts / "defect").mkdir(exist_ok=True)
            shutil.copy(image, parts / "defect" / f"{defect}_{image.name}")
    datamodule = Folder(
        name="parts", root=parts, normal_dir="good", abnormal_dir="defect", train_batch_size=8, eval_batch_size=8,
        num_workers=0, val_split_ratio=0.5, seed=0,
    )  # fmt: skip
    model = _model()
    engine = _engine(tmp_path / "run")
    engine.fit(model, datamodule=datamodule)
    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        shown = list(warnings.filters)
        results = engine.test(model, datamodule=datamodule)[0]
        assert warnings.filters == shown, "a filter was left behind"
    assert "image_AUROC" in results and not [key for key in results if key.startswith("pixel_")]
    assert not [w for w in seen if "before the ``update`` method" in str(w.message)]
    assert warnings.filters == before


def _full_disk(monkeypatch, after: int) -> None:
    """Let ``after`` checkpoint writes through, then make every write fail with ENOSPC in ``fsync``."""
    calls = {"n": 0}
    fsync = checkpoint_io.os.fsync

    def failing(descriptor):
        calls["n"] += 1
        if calls["n"] > 2 * after:  # a write fsyncs its file and its folder
            raise OSError(errno.ENOSPC, "No space left on device")
        fsync(descriptor)

    monkeypatch.setattr(checkpoint_io.os, "fsync", failing)


def test_a_full_disk_keeps_the_previous_checkpoint_and_names_the_folder(tmp_path, monkeypatch):
    target = tmp_path / "weights" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"epoch": 0, "weights": torch.ones(3)}, target)
    _full_disk(monkeypatch, after=0)
    with pytest.raises(CheckpointWriteError) as error:
        io.save_checkpoint({"epoch": 1, "weights": torch.zeros(3)}, target)
    message = str(error.value)
    assert message.startswith(f"no space left on the device of {target.parent} to write last.ckpt (")
    assert "MB needed, the previous checkpoint is kept" in message and "\n" not in message
    assert error.value.errno == errno.ENOSPC
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"], "a partial file was left"
    assert torch.load(target, weights_only=True)["epoch"] == 0


@pytest.mark.parametrize("writes_before_full", [0, 1, 3])
def test_a_disk_that_fills_during_a_fit_ends_in_one_line_and_keeps_what_was_written(
    tmp_path, dataset_root, monkeypatch, writes_before_full
):
    # the writes of this fit: stage1.ckpt and last.ckpt (epoch 0), last.ckpt (epoch 1), last.ckpt and model.ckpt (2)
    _full_disk(monkeypatch, after=writes_before_full)
    with pytest.raises(CheckpointWriteError, match=r"no space left on the device of .*lightning to write"):
        _engine(tmp_path).fit(_model(), datamodule=small_datamodule(dataset_root))
    folders = list(tmp_path.rglob("weights/lightning"))
    files = sorted(folders[0].iterdir()) if folders else []
    assert not [p for p in files if p.name.endswith(".partial")]
    assert len(files) == writes_before_full if writes_before_full < 3 else len(files) >= 2
    for file in files:
        torch.load(file, weights_only=False, map_location="cpu")  # every file left is whole


_SIGNAL_DURING_WRITE = """
import os, signal, sys
from pathlib import Path
from isstad_plugin.training import checkpoint_io
target = Path(sys.argv[1])
checkpoint_io.write_atomically(b"old", target)
fsync = os.fsync
def signalled(descriptor):  # the signal lands while the partial file is open, before it is renamed
    checkpoint_io.os.fsync = fsync
    os.kill(os.getpid(), getattr(signal, sys.argv[2]))
    fsync(descriptor)
checkpoint_io.os.fsync = signalled
try:
    checkpoint_io.write_atomically(b"new" * 1000, target)
except KeyboardInterrupt:
    sys.exit(130)
"""


@pytest.mark.parametrize(("name", "rc"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_during_a_checkpoint_write_leaves_no_partial_file(tmp_path, name, rc):
    import os
    import signal
    import subprocess
    import sys

    target = tmp_path / "weights" / "last.ckpt"
    env = {**os.environ, "PYTHONPATH": str(Path(checkpoint_io.__file__).parents[2])}
    done = subprocess.run(
        [sys.executable, "-c", _SIGNAL_DURING_WRITE, str(target), name],
        env=env,
        capture_output=True,
        timeout=600,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # not ignored, also under a background pytest
    )
    assert done.returncode == rc, done.stderr.decode()[-2000:]
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"], "a partial file was left"
    assert target.read_bytes() == b"old"


def test_masks_with_intermediate_values_are_counted_in_one_warning(tmp_path, caplog):
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    binary, soft = np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8)
    binary[2:4, 2:4] = 255
    soft[2:4, 2:4], soft[4, 2:4] = 255, 128  # an anti-aliased edge
    masks = []
    for name, mask in (("binary", binary), ("soft", soft)):
        masks.append(str(tmp_path / f"{name}_mask.png"))
        Image.fromarray(mask).save(masks[-1])
    non_binary = check_masks([str(image)] * 2, masks, [1, 1])
    assert non_binary == [masks[1]]
    with caplog.at_level(logging.WARNING):
        warn_non_binary_masks(non_binary, total=2)
    (record,) = caplog.records
    assert record.getMessage().startswith("1 of 2 mask files are not binary")
    assert "every value > 0 counts as defect" in record.getMessage()


def test_binary_masks_give_no_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        warn_non_binary_masks([], total=5)
    assert not caplog.records


def test_user_model_checkpoints_are_kept(tmp_path, dataset_root):
    from anomalib.callbacks import ModelCheckpoint  # with Lightning's own, anomalib adds its default beside it

    mine = ModelCheckpoint(dirpath=tmp_path / "mine", filename="{epoch}", save_top_k=-1)
    engine = _engine(tmp_path, callbacks=[mine])
    engine.fit(_model(), datamodule=small_datamodule(dataset_root))
    assert mine in engine.trainer.callbacks, "the user's ModelCheckpoint was replaced"
    assert not any(isinstance(c, LearntModelCheckpoint) for c in engine.trainer.callbacks)
    assert len(sorted(Path(tmp_path / "mine").glob("*.ckpt"))) == 3  # every epoch, as the user asked
