"""The anomalib command line with the plugin: train with a config, the `--data MVTec` alias, export, predict."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from isstad_plugin.tools import anomalib_corrections
from tests.helpers import TINY_CLI_NETWORK, cli_train_args

REPO = Path(__file__).parents[2]
ANOMALIB = Path(sys.executable).parent / "anomalib"
TINY = [
    *TINY_CLI_NETWORK,
    "--model.stage1_steps",
    "2",
    "--model.stage2_steps",
    "2",
    "--trainer.logger",
    "false",
    "--trainer.enable_progress_bar",
    "false",
]


def _anomalib(*args, cwd):
    # this checkout's src/ (a relative PYTHONPATH=src would not reach the cwd of the run, and the editable install
    # of the environment may point at another checkout)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRUST_REMOTE_CODE": "1", "PYTHONPATH": str(REPO / "src")}
    result = subprocess.run(
        [str(ANOMALIB), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def trained_with_config(tmp_path_factory, dataset_root):
    """`anomalib train --config configs/isstad_cpu.yaml` on the generated data, tiny settings."""
    work = tmp_path_factory.mktemp("cli")
    # the config picks the precision from the hardware; forced here
    result = _anomalib(*cli_train_args(dataset_root, "--trainer.plugins.precision", "32-true", *TINY), cwd=work)
    checkpoint = next(work.glob("results/Isstad/MVTecAD/tiles/v0/weights/lightning/model.ckpt"))
    return work, checkpoint, result.stdout


def test_train_with_config_prints_metrics_and_writes_images(trained_with_config):
    work, checkpoint, stdout = trained_with_config
    assert "image_AUROC" in stdout
    assert "pixel_AUROC" in stdout
    assert checkpoint.is_file()
    assert any((work / "results/Isstad/MVTecAD/tiles/v0/images").rglob("*.png"))


def test_export_and_predict_from_the_cli_checkpoint(trained_with_config, dataset_root):
    work, checkpoint, _ = trained_with_config
    _anomalib(
        "export",
        "--model",
        "isstad_plugin.Isstad",
        "--export_type",
        "torch",
        "--ckpt_path",
        checkpoint,
        "--export_root",
        work / "exported",
        cwd=work,
    )
    assert (work / "exported" / "weights" / "torch" / "model.pt").is_file()
    before = set(work.rglob("*.png"))
    # The checkpoint carries the tiny network's options: --model needs none of them repeated.
    _anomalib(
        "predict",
        "--model",
        "isstad_plugin.Isstad",
        "--ckpt_path",
        checkpoint,
        "--data",
        dataset_root / "tiles" / "test" / "hole",
        cwd=work,
    )
    written = {p.name for p in set(work.rglob("*.png")) - before}
    assert written == {p.name for p in (dataset_root / "tiles" / "test" / "hole").glob("*.png")}


def test_data_mvtec_alias(tmp_path, dataset_root, monkeypatch, capsys):
    """In this process (as the ``anomalib`` command runs it: with the CLI corrections), to spare a start-up."""
    from anomalib.cli.cli import AnomalibCLI

    monkeypatch.chdir(tmp_path)
    args = ["train", "--model", "isstad_plugin.Isstad", "--data", "MVTec", "--data.root", dataset_root,
            "--data.category", "tiles", "--data.num_workers", "0", "--data.train_batch_size", "8", *TINY]  # fmt: skip
    with anomalib_corrections.installed():
        AnomalibCLI([str(a) for a in args])
    assert "image_AUROC" in capsys.readouterr().out
    assert (tmp_path / "results" / "Isstad" / "MVTec" / "tiles" / "v0" / "config.yaml").is_file()


# ------------------------------------------------------------------------------------------------ unknown options
def test_a_misspelt_model_option_is_one_line_naming_the_nearest_and_the_help_works(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO / "src")}
    config = REPO / "configs" / "isstad_cpu.yaml"
    command = [str(ANOMALIB), "train", "--config", str(config), "--model.stage1_step", "3"]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("error") or line.startswith("  ")]
    help_command = "anomalib train --model.help isstad_plugin.Isstad"
    assert lines[-1] == (
        f"error: unknown option model.stage1_step; did you mean model.stage1_steps? see `{help_command}`"
    )
    assert "NestedArg" not in result.stderr and "Union subtypes" not in result.stderr
    assert not list(tmp_path.iterdir()), "a refused command wrote files"
    listed = subprocess.run(
        [str(ANOMALIB), *help_command.split()[1:]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert listed.returncode == 0 and "--model.stage1_steps" in listed.stdout


_JSONARGPARSE_DATA = """Parser key "data":
  Does not validate against any of the Union subtypes
  Subtypes: [<class 'NoneType'>, <class 'anomalib.data.datamodules.base.image.AnomalibDataModule'>]
  Errors:
    - Expected a <class 'NoneType'>
    - Problem with given class_path 'anomalib.data.MVTecAD':
        Option 'categry' is not accepted
  Given value type: <class 'jsonargparse._util.NestedArg'>
  Given value: NestedArg(key='categry', val='x')"""

_JSONARGPARSE_VALUE = """Parser key "trainer.max_epochs":
  Does not validate against any of the Union subtypes
  Subtypes: [<class 'NoneType'>, <class 'int'>]
  Errors:
    - Expected a <class 'NoneType'>
    - Expected a <class 'int'>
  Given value type: <class 'str'>
  Given value: x"""


def test_jsonargparse_reports_become_one_line():
    from isstad_plugin.tools.cli_errors import parse_error_line

    assert parse_error_line(_JSONARGPARSE_DATA, []) == (
        "unknown option data.categry; did you mean data.category? "
        "see `anomalib train --data.help anomalib.data.MVTecAD`"
    )
    assert parse_error_line(_JSONARGPARSE_VALUE, [], "fit") == (
        "invalid value x for trainer.max_epochs (expected null or int); see `anomalib fit --help -vv`"
    )
    unrecognized = parse_error_line("Unrecognized arguments: --trainer.max_epoch 3", ["trainer.max_epochs", "model"])
    assert (
        unrecognized
        == "unknown option trainer.max_epoch; did you mean trainer.max_epochs? see `anomalib train --help -vv`"
    )
    assert parse_error_line("something else", []) is None


def test_the_isstad_command_names_a_misspelt_option_in_one_line(capsys):
    from isstad_plugin.tools import cli

    assert cli.main(["demo", "--fats"]) == 2
    assert capsys.readouterr().err == (
        "isstad demo: error: unknown option --fats; did you mean --fast? see `isstad demo --help`\n"
    )
    with pytest.raises(SystemExit) as exit_:
        cli.main(["predict", "--ckpt", "a.ckpt", "--imags", "folder"])  # --images is required: the typo is named
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        "isstad predict: error: unknown option --imags; did you mean --images? see `isstad predict --help`\n"
    )


# ------------------------------------------------------------------------------------------------ noise
BY_DESIGN_WARNINGS = (
    "will override existing callbacks",  # Lightning, when configure_callbacks replaces a trainer's callback
    "is not supported by the model summary",  # bf16-mixed
    "log_every_n_steps",
    "module(s) in eval mode",
    "Seed set to",
    "was called before the ``update`` method",
)


def test_a_tiny_fit_prints_few_plugin_lines_and_none_of_the_warnings_it_causes(tmp_path, dataset_root):
    """The shipped config (CSV logger, precision plugin) with bf16 forced: the model summary's warning case."""
    at = TINY.index("--trainer.logger")
    args = TINY[:at] + TINY[at + 2 :]  # the config's CSVLogger: the log_every_n_steps case
    result = _anomalib(*cli_train_args(dataset_root, "--trainer.plugins.precision", "bf16-mixed", *args), cwd=tmp_path)
    output = result.stdout + result.stderr
    plugin_info = [line for line in output.splitlines() if " - isstad_plugin." in line and " - INFO - " in line]
    assert 1 <= len(plugin_info) <= 5, "\n".join(plugin_info)
    assert any(
        "ISSTAD: model saved: " in line and line.endswith("model.ckpt (the --ckpt_path of test, predict and export)")
        for line in plugin_info
    )
    assert [w for w in BY_DESIGN_WARNINGS if w in output] == []
    lines = [line for line in output.splitlines() if line.strip()]
    assert not {line for line in lines if lines.count(line) > 1}, "a line printed twice"
