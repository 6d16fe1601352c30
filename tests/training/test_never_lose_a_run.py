"""Never lose a run: checkpoints every epoch, exact resume after kill -9, no overwritten runs, one-line errors.

The CLI runs (module fixture ``cli_runs``) overlap to keep the file short: an uninterrupted ``anomalib train`` (A), a
train killed (SIGKILL) in stage 1 (B), its resume with the documented command interrupted by Ctrl-C (SIGINT) in
stage 2 (B1), the resume of that with the command B1 printed (B2), ``anomalib test`` on A's checkpoint (C),
``anomalib predict`` with a truncated checkpoint (D), a train whose disk fills in stage 2 (E) and its resume on
another disk with the command E printed (E2).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from lightning.pytorch import Callback, seed_everything
from PIL import Image

from isstad_plugin import Isstad
from isstad_plugin.data import download
from isstad_plugin.model.weights import load_stage1_checkpoint
from isstad_plugin.tools import anomalib_corrections, cli_errors
from isstad_plugin.training.checkpointing import IsstadCheckpoints
from isstad_plugin.training.divergence import TrainingDivergedError
from tests.helpers import TINY_CLI_NETWORK, cli_train_args, engine_for, small_datamodule, tiny_isstad

REPO = Path(__file__).parents[2]
ANOMALIB = Path(sys.executable).parent / "anomalib"
RUN = Path("results/Isstad/MVTecAD/tiles")
TINY = [
    *TINY_CLI_NETWORK,
    "--model.stage1_steps",  # the CPU config's step budget, shortened: 16 images, batch 8, 2 + 3 epochs
    "4",
    "--model.stage2_steps",
    "6",
    "--model.stage1_warmup_steps",
    "0",
    "--trainer.logger",
    "false",
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.plugins.precision",
    "32-true",
]


def _env(**extra):
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "ISSTAD_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
    }
    for key in ("ISSTAD_PROBE_BLOCK", "ISSTAD_PROBE_MARKER", "ISSTAD_PROBE_METRICS", "ISSTAD_TRACEBACK"):
        env.pop(key, None)
    return {**env, **{k: str(v) for k, v in extra.items()}}


def _default_sigint():
    """Ctrl-C's default action in the child, also when pytest runs in the background (which ignores SIGINT)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Cli:
    """One ``anomalib`` process, its output in ``<cwd>/<name>.log``."""

    def __init__(self, name, args, cwd, **env):
        cwd.mkdir(parents=True, exist_ok=True)
        self.log = cwd / f"{name}.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [str(ANOMALIB), *map(str, args)],
                cwd=cwd,
                env=_env(**env),
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_default_sigint,
            )

    def wait(self, ok=True):
        rc = self.process.wait(timeout=300)
        assert (rc == 0) == ok, f"rc {rc}\n" + self.output()[-4000:]
        return self.output()

    def output(self):
        return self.log.read_text()

    def interrupt_when(self, marker, sig=signal.SIGINT):
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert self.process.poll() is None, self.output()[-4000:]
            assert time.monotonic() < deadline, "the fit never reached the blocking epoch"
            time.sleep(0.2)
        self.process.send_signal(sig)
        self.wait(ok=False)
        return marker.read_text()


def _train(dataset_root, logger=False):
    """The CPU config, shortened; ``logger=True`` keeps its CSVLogger (``config.yaml`` then goes to its folder)."""
    at = TINY.index("--trainer.logger")
    options = TINY if not logger else TINY[:at] + TINY[at + 2 :]
    return cli_train_args(dataset_root, "--trainer.callbacks+=tests.cli_probe.CliProbe", *options)


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _last_line(text):
    return [line for line in text.splitlines() if line.strip()][-1]


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory, dataset_root):
    work = tmp_path_factory.mktemp("runs")
    a_dir, b_dir = work / "a", work / "b"
    runs = {"work": work, "a": a_dir / RUN / "v0", "b": b_dir / RUN / "v0", "b1": b_dir / RUN / "v1"}
    truncated = work / "truncated.ckpt"
    truncated.write_bytes(b"PK\x03\x04" + bytes(4996))  # the first 5000 bytes of a zip: a copy that stopped early
    predict = ["predict", "--model", "isstad_plugin.Isstad", "--ckpt_path", truncated, "--data", dataset_root]
    d = Cli("d", predict, work / "d")
    a = Cli("a", _train(dataset_root), a_dir, ISSTAD_PROBE_METRICS=work / "a.json")
    e = Cli("e", _train(dataset_root), work / "e", ISSTAD_PROBE_FULL_DISK=2)
    b = Cli("b", _train(dataset_root, logger=True), b_dir, ISSTAD_PROBE_BLOCK=1, ISSTAD_PROBE_MARKER=work / "b.marker")
    runs["b_marker"] = b.interrupt_when(work / "b.marker", signal.SIGKILL)
    runs["b_files"] = sorted(p.name for p in (runs["b"] / "weights" / "lightning").iterdir())
    runs["b_latest"] = (b_dir / RUN / "latest").exists()
    last = runs["b"] / "weights" / "lightning" / "last.ckpt"
    runs["b_last"] = torch.load(last, weights_only=False, map_location="cpu")
    resume = ["train", "--config", runs["b"] / "config.yaml", "--ckpt_path", last]  # docs/how-to/resume.md
    b1 = Cli("b1", resume, b_dir, ISSTAD_PROBE_BLOCK=3, ISSTAD_PROBE_MARKER=work / "b1.marker")
    a.wait()
    runs["a_before_test"] = _snapshot(runs["a"])
    a_model = runs["a"] / "weights" / "lightning" / "model.ckpt"
    test = ["test", "--model", "isstad_plugin.Isstad", "--ckpt_path", a_model, "--data", "MVTecAD"]
    c = Cli("c", [*test, "--data.root", dataset_root, "--data.category", "tiles", "--trainer.logger", "false"], a_dir)
    runs["b1_marker"] = b1.interrupt_when(work / "b1.marker", signal.SIGINT)
    runs["b1_line"] = _last_line(b1.output())
    runs["b1_partials"] = list(b_dir.rglob("*.partial"))
    runs["b_latest_after_b1"] = (b_dir / RUN / "latest").exists()
    last1 = runs["b1"] / "weights" / "lightning" / "last.ckpt"
    runs["b1_last_epoch"] = torch.load(last1, weights_only=False, map_location="cpu")["epoch"]
    b2 = Cli("b2", _printed_command(runs["b1_line"]), b_dir, ISSTAD_PROBE_METRICS=work / "b2.json")
    runs["e_line"] = _last_line(e.wait(ok=False))
    runs["e_partials"] = list((work / "e").rglob("*.partial"))
    runs["e2_root"] = work / "larger_disk"
    e2 = Cli("e2", [*_printed_command(runs["e_line"]), "--default_root_dir", runs["e2_root"]], work / "e2")
    runs["d_output"] = d.wait(ok=False)
    c.wait()
    b2.wait()
    e2.wait()
    runs["b2"] = b_dir / RUN / "v2"
    runs["b_latest_final"] = (b_dir / RUN / "latest").resolve()
    return runs


def _printed_command(line):
    """The arguments of the ``anomalib train ...`` command quoted in a printed line (run verbatim)."""
    found = re.search(r"`anomalib (train [^`]*)`", line)
    assert found, f"no command in {line!r}"
    return shlex.split(found[1])


def _weights(path):
    return torch.load(path, weights_only=False, map_location="cpu")["state_dict"]


def test_kill_9_in_stage1_and_stage2_then_documented_resume_matches_the_uninterrupted_run(cli_runs):
    assert cli_runs["b_marker"] == "1 1", "B was not interrupted in stage 1"
    assert cli_runs["b1_marker"] == "3 2", "B1 was not interrupted in stage 2"
    assert cli_runs["b_last"]["epoch"] == 0
    assert cli_runs["b_last"]["isstad_stage"] == 1
    assert cli_runs["b1_last_epoch"] == 2
    final = _weights(cli_runs["a"] / "weights" / "lightning" / "model.ckpt")
    resumed = _weights(cli_runs["b2"] / "weights" / "lightning" / "model.ckpt")
    assert final.keys() == resumed.keys()
    for key, value in final.items():
        assert torch.allclose(value, resumed[key], atol=1e-6, equal_nan=False), f"{key} differs after two resumes"
    assert torch.isfinite(final["post_processor._image_threshold"])
    uninterrupted = json.loads((cli_runs["work"] / "a.json").read_text())
    after_resume = json.loads((cli_runs["work"] / "b2.json").read_text())  # the test step of the resumed train
    assert uninterrupted.keys() >= {"image_AUROC", "image_F1Score", "pixel_AUROC", "pixel_F1Score"}
    for key, value in uninterrupted.items():
        assert after_resume[key] == pytest.approx(value, abs=1e-5), key
    assert uninterrupted["image_F1Score"] > 0, "thresholds were not learnt (max_epochs < check_val_every_n_epoch)"


def test_ctrl_c_prints_the_resume_command_and_leaves_no_partial_file(cli_runs):
    last = cli_runs["b1"] / "weights" / "lightning" / "last.ckpt"
    assert cli_runs["b1_line"] == (
        f"warning: fit interrupted: resume: `anomalib train --config {cli_runs['b1'] / 'config.yaml'} "
        f"--ckpt_path {last}`"
    )
    assert not cli_runs["b1_partials"]  # B2 ran the printed command: the test above compares its weights


def test_a_resume_in_stage2_gives_no_eval_mode_warning(cli_runs):
    output = (cli_runs["work"] / "b" / "b2.log").read_text()
    assert "Restored all states from the checkpoint" in output, "B2 did not resume"
    assert "module(s) in eval mode" not in output  # the frozen encoder of stage 2, by design


def test_the_printed_full_disk_fix_runs_verbatim_and_gives_the_uninterrupted_weights(cli_runs):
    line = cli_runs["e_line"]
    assert line.startswith("error: no space left on the device of ")
    assert "to write last.ckpt (" in line and "the previous checkpoint is kept): free space there and resume: `" in line
    assert line.endswith("(add `--default_root_dir DIR` to continue on a larger disk)")
    assert not cli_runs["e_partials"]
    final = _weights(cli_runs["a"] / "weights" / "lightning" / "model.ckpt")
    (moved,) = cli_runs["e2_root"].rglob("model.ckpt")  # the resumed run is on the other disk
    resumed = _weights(moved)
    assert final.keys() == resumed.keys()
    assert all(torch.equal(value, resumed[key]) for key, value in final.items())


def test_checkpoint_every_epoch_and_at_the_end_of_stage1(cli_runs):
    # killed in epoch 1: epoch 0 is kept; no model.ckpt, which would hold no thresholds (the fit validates at its end)
    assert cli_runs["b_files"] == ["last.ckpt"]
    assert (cli_runs["b"] / "config.yaml").is_file(), "the run folder lacks the config that resumes it"
    last = torch.load(cli_runs["b"] / "weights" / "lightning" / "last.ckpt", weights_only=False, map_location="cpu")
    assert last["epoch"] == 0
    lightning = cli_runs["a"] / "weights" / "lightning"
    assert sorted(p.name for p in lightning.iterdir()) == ["last.ckpt", "model.ckpt", "stage1.ckpt"]
    stage1 = torch.load(lightning / "stage1.ckpt", weights_only=False, map_location="cpu")
    assert (stage1["epoch"], stage1["isstad_stage"]) == (1, 1)
    model = Isstad(
        image_size=64,
        encoder="vit_micro_patch8",
        encoder_depth=1,
        decoder_dim=32,
        decoder_depth=1,
        classifier_upsampling="overlap",
    )  # as the shipped config the run read
    report = load_stage1_checkpoint(model.model, lightning / "stage1.ckpt")  # usable as --model.stage1_checkpoint
    assert "encoder.cls_token" in report.loaded


def test_a_cli_fit_prints_each_log_line_once(cli_runs):
    output = (cli_runs["work"] / "a" / "a.log").read_text()
    assert output.count("Initializing Isstad model.") == 1, "anomalib's log lines are printed twice"
    assert "weights_only" not in output


def test_failed_runs_do_not_move_latest(cli_runs):
    assert not cli_runs["b_latest"], "an interrupted first run made `latest` point at it"
    assert not cli_runs["b_latest_after_b1"]
    assert cli_runs["b_latest_final"] == cli_runs["b2"].resolve()


def test_anomalib_test_after_train_leaves_the_run_byte_for_byte(cli_runs):
    run = cli_runs["a"]
    after = _snapshot(run)
    before = cli_runs["a_before_test"]
    assert {k: v for k, v in after.items() if k.parts[0] != "test"} == before
    written = {k for k in after if k.parts[0] == "test"}
    assert Path("test/v0/config.yaml") in written
    assert any(k.suffix == ".png" for k in written)


def test_truncated_checkpoint_is_the_last_line_of_a_real_cli(cli_runs):
    last = _last_line(cli_runs["d_output"])
    assert last.startswith("error: --ckpt_path ")
    assert "truncated.ckpt is not a readable checkpoint" in last
    assert "Traceback" not in cli_runs["d_output"]
    assert "╭" not in cli_runs["d_output"], "the rich traceback was printed"


# ------------------------------------------------------------------------------------------------ bad inputs
@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    """Run ``anomalib <args>`` in this process; return the last printed line (the CLI's error hook included).

    The CLI corrections are installed for the call, as in the ``anomalib`` command's process, and removed after it.
    """
    from anomalib.cli.cli import AnomalibCLI

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ISSTAD_OFFLINE", "1")

    def run(*args, fails=True):
        capsys.readouterr()
        try:
            with anomalib_corrections.installed():
                AnomalibCLI([str(a) for a in args])
        except BaseException as error:
            assert fails, traceback.format_exc()
            cli_errors.one_line_excepthook(traceback.print_exception, type(error), error, error.__traceback__)
        else:
            assert not fails, "the command did not fail"
        captured = capsys.readouterr()
        return _last_line(captured.out + captured.err)

    return run


def _fit_args(root, category="tiles", data="MVTecAD"):
    options = [a for a in TINY if a != "--trainer.plugins.precision" and a != "32-true"]
    return ["fit", "--model", "isstad_plugin.Isstad", *options, "--data", data, "--data.root", root]


def test_image_size_not_divisible_by_the_patch(cli, dataset_root):
    line = cli("fit", "--model", "isstad_plugin.Isstad", "--model.image_size", "100", "--data", "MVTecAD")
    assert line == (
        "error: --model isstad_plugin.Isstad: image_size (100, 100) is not divisible by patch_size 16: use sides "
        "that are multiples of 16 (e.g. 96)"
    )


def test_image_size_zero_says_it_must_be_positive(cli):
    line = cli("fit", "--model", "isstad_plugin.Isstad", "--model.image_size", "0", "--data", "MVTecAD")
    assert line.startswith("error: --model isstad_plugin.Isstad: image_size (0, 0) must be positive: use sides ")
    assert "divisible" not in line


def test_a_fit_that_fails_in_setup_leaves_no_run_folder(cli, tmp_path, dataset_root):
    missing = tmp_path / "none.pth"
    line = cli(*_fit_args(dataset_root), "--data.category", "tiles", "--model.encoder_weights", missing)
    assert line.startswith("error: ") and "encoder_weights" in line and str(missing) in line
    assert not list(tmp_path.rglob("config.yaml")), "a run folder holding only config.yaml was left"
    assert not list(tmp_path.rglob("v0"))


def test_a_disk_full_at_the_first_checkpoint_prints_a_start_again_command_that_runs(cli, tmp_path, dataset_root):
    import errno

    from isstad_plugin.training import checkpoint_io

    fsync = checkpoint_io.os.fsync

    def no_space(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    checkpoint_io.os.fsync = no_space
    try:
        line = cli(*_fit_args(dataset_root), "--data.category", "tiles", "--data.num_workers", "0")
    finally:
        checkpoint_io.os.fsync = fsync
    assert line.startswith("error: no space left on the device of ") and "(no last.ckpt yet)" in line, line
    command = _printed_command(line)
    assert "--ckpt_path" not in command and Path(command[command.index("--config") + 1]).is_file()
    cli(*command, "--default_root_dir", tmp_path / "larger", fails=False)
    assert list((tmp_path / "larger").rglob("model.ckpt"))


def test_missing_mvtecad_root_offline_is_one_line_and_creates_nothing(cli, tmp_path):
    line = cli(*_fit_args(tmp_path / "nowhere"), "--data.category", "bottle", "--data.num_workers", "0")
    assert line.startswith(f"error: dataset folder {tmp_path / 'nowhere' / 'bottle'} has no train/ folder")
    assert line.endswith("MVTec AD (about 5 GB) cannot be downloaded: www.mydrive.ch is unreachable (offline?)")
    assert not (tmp_path / "nowhere").exists()


def test_misspelled_mvtecad_category_is_named(cli, dataset_root):
    line = cli(*_fit_args(dataset_root), "--data.category", "Tiles", "--data.num_workers", "0")
    assert line.startswith(f"error: dataset folder {dataset_root / 'Tiles'} has no train/ folder")
    assert "'Tiles' is not an MVTec AD category (did you mean 'tile'?)" in line


def test_failed_mvtecad_download_is_one_line(cli, tmp_path, monkeypatch):
    from anomalib.data.datamodules.image import mvtecad

    def no_network(*args):
        (tmp_path / "fresh").mkdir(exist_ok=True)  # anomalib creates the root before downloading
        raise URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(download, "download_host_reachable", lambda url: True)
    monkeypatch.setattr(mvtecad, "download_and_extract", no_network)
    line = cli(*_fit_args(tmp_path / "fresh"), "--data.category", "bottle", "--data.num_workers", "0")
    assert line.startswith(f"error: download of MVTec AD into {tmp_path / 'fresh'} failed (URLError:")
    assert line.endswith("extract it and pass --data.root")
    assert not (tmp_path / "fresh").exists(), "the empty folder of the failed download was left behind"


def test_wrong_size_mask_names_the_file_and_the_fix(cli, tmp_path, dataset_root):
    root = tmp_path / "data"
    shutil.copytree(dataset_root, root)
    mask = next((root / "tiles" / "ground_truth" / "hole").glob("*_mask.png"))
    Image.open(mask).resize((32, 32), Image.NEAREST).save(mask)
    line = cli(*_fit_args(root), "--data.category", "tiles", "--data.num_workers", "0")
    assert line == (
        f"error: mask {mask} is 32x32 but its image {root / 'tiles' / 'test' / 'hole' / mask.name[:-9]}.png is "
        "64x64: resize the mask to 64x64 (nearest neighbour, to keep it binary) or replace it"
    )


def test_predict_skips_corrupt_images_lists_them_last_and_keeps_the_run(cli, cli_runs, tmp_path, dataset_root):
    folder = tmp_path / "images"
    folder.mkdir()
    for image in sorted((dataset_root / "tiles" / "test" / "hole").glob("*.png"))[:2]:
        shutil.copy(image, folder / image.name)
    shutil.copy(dataset_root / "tiles" / "test" / "good" / "000.png", folder / "good.png")
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    run = cli_runs["a"]
    before = _snapshot(run)
    checkpoint = run / "weights" / "lightning" / "model.ckpt"
    line = cli("predict", "--model", "isstad_plugin.Isstad", "--ckpt_path", checkpoint, "--data", folder, fails=False)
    assert line == (
        "warning: predict skipped 1 unreadable image(s), replace or remove them and predict again: "
        f"{folder / 'broken.png'}"
    )
    assert {k: v for k, v in _snapshot(run).items() if k.parts[0] != "predict"} == before
    written = {p.name for p in (run / "predict").rglob("*.png")}
    assert written == {"000.png", "001.png", "good.png"}


def test_diverging_stage1_names_stage1_blr_and_saves_nothing_non_finite(cli, tmp_path, dataset_root):
    line = cli(
        *_fit_args(dataset_root), "--data.category", "tiles", "--data.num_workers", "0", "--model.stage1_blr", "1e6"
    )
    assert line.startswith("error: ")
    assert "stage 1" in line
    assert line.endswith("lower --model.stage1_blr or train in float32 (--trainer.plugins.precision 32-true)")
    for checkpoint in tmp_path.rglob("*.ckpt"):
        state = torch.load(checkpoint, weights_only=False, map_location="cpu")["state_dict"]
        assert all(torch.isfinite(v).all() for k, v in state.items() if k.startswith("model."))


class BreakEncoder(Callback):
    """Puts a NaN into the frozen encoder when stage 2 starts (as a diverged stage 1 would leave it)."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if pl_module.stage == 2:
            with torch.no_grad():
                pl_module.model.encoder.cls_token.fill_(float("nan"))


def test_stage2_failure_caused_by_stage1_blames_stage1(tmp_path, dataset_root):
    seed_everything(0)
    model = tiny_isstad(stage1_epochs=1)
    engine = engine_for(tmp_path, max_epochs=2, callbacks=[BreakEncoder()])
    with pytest.raises(TrainingDivergedError, match=r"stage 2.*stage 1 diverged.*lower --model\.stage1_blr"):
        engine.fit(model, datamodule=small_datamodule(dataset_root))


def test_parameters_that_become_non_finite_stop_the_step_that_made_them(tmp_path, dataset_root, monkeypatch):
    from isstad_plugin.model import optimizers

    real = optimizers.stage2_optimizer

    def poisoned(*args, **kwargs):
        optimizer, scheduler = real(*args, **kwargs)
        step = optimizer.step

        def nan_step(*a, **k):
            result = step(*a, **k)
            with torch.no_grad():
                next(p for g in optimizer.param_groups for p in g["params"]).fill_(float("inf"))
            return result

        optimizer.step = nan_step
        return optimizer, scheduler

    monkeypatch.setattr("isstad_plugin.model.lightning_model.stage2_optimizer", poisoned)
    seed_everything(0)
    engine = engine_for(tmp_path, max_epochs=3)
    with pytest.raises(TrainingDivergedError, match=r"diverged in stage 2 at epoch 1, batch 0.*--model\.stage2_lr"):
        engine.fit(tiny_isstad(stage1_epochs=1), datamodule=small_datamodule(dataset_root))
    last = torch.load(next(tmp_path.rglob("last.ckpt")), weights_only=False)
    assert last["epoch"] == 0
    assert all(torch.isfinite(v).all() for k, v in last["state_dict"].items() if k.startswith("model."))


def test_non_finite_validation_statistics_are_never_stored(tmp_path, dataset_root, monkeypatch):
    real = Isstad.validation_step

    def nan_scores(self, batch, *args, **kwargs):
        out = real(self, batch, *args, **kwargs)
        return None if out is None else out.update(pred_score=out.pred_score * float("nan"))

    monkeypatch.setattr(Isstad, "validation_step", nan_scores)
    seed_everything(0)
    engine = engine_for(tmp_path, max_epochs=2)
    with pytest.raises(TrainingDivergedError, match=r"validation at epoch 1 gave non-finite _image_threshold"):
        engine.fit(tiny_isstad(stage1_epochs=1), datamodule=small_datamodule(dataset_root))
    saved = list(tmp_path.rglob("*.ckpt"))
    assert saved, "the checkpoint of epoch 0 is gone"
    for checkpoint in saved:  # only epoch 0 (stage 1, nothing scored) was saved: no threshold was ever computed
        assert torch.load(checkpoint, weights_only=False)["epoch"] == 0


def test_checkpoint_options_are_checked_and_minutes_work(tmp_path, dataset_root):
    with pytest.raises(ValueError, match="every_n_epochs must be >= 1"):
        IsstadCheckpoints(every_n_epochs=0)
    seed_everything(0)
    every_minute = IsstadCheckpoints(every_n_epochs=None, every_n_minutes=1e-6, dirpath=tmp_path / "mine")
    engine = engine_for(tmp_path / "run", max_epochs=2, callbacks=[every_minute])
    engine.fit(tiny_isstad(stage1_epochs=1), datamodule=small_datamodule(dataset_root))
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["last.ckpt", "stage1.ckpt"]
    assert not list((tmp_path / "run").rglob("last.ckpt")), "the model added a second IsstadCheckpoints"
    assert np.isfinite(float(torch.load(tmp_path / "mine" / "last.ckpt", weights_only=False)["epoch"]))


def test_truncated_stage1_checkpoint_is_named(tmp_path):
    from isstad_plugin.training.checkpointing import CheckpointError

    broken = tmp_path / "stage1.ckpt"
    broken.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(CheckpointError, match=r"^stage1_checkpoint .*stage1\.ckpt is not a readable checkpoint"):
        load_stage1_checkpoint(tiny_isstad().model, broken)
