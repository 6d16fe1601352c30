"""The plugin changes nothing in anomalib for anyone else; its CLI corrections are reversible and tested directly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from anomalib.data import MVTecAD, PredictDataset
from anomalib.engine import Engine
from anomalib.engine import engine as engine_module

from isstad_plugin.tools import anomalib_corrections

PEERS = Path(__file__).parent / "scripts" / "peers_after_isstad.py"


def _start_peers(data: Path, out: Path, *flags: str) -> subprocess.Popen:
    root = Path(__file__).parents[2]  # this checkout's src/ first, whatever checkout the venv was installed from
    path = os.pathsep.join([str(root / "src"), str(root)])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": path, "MPLBACKEND": "svg"}
    command = [sys.executable, str(PEERS), str(data), str(out), *flags]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def test_padim_and_patchcore_after_an_isstad_fit_behave_as_without_the_plugin(dataset_root, tmp_path):
    """Same metrics and files after a Python ISSTAD fit (which replaced nothing), with the CLI corrections in place."""
    runs = [_start_peers(dataset_root, tmp_path / "alone"), _start_peers(dataset_root, tmp_path / "after", "--isstad")]
    alone, after = (_result(process) for process in runs)  # the two processes run side by side
    assert not alone["plugin"] and after["plugin"]
    assert after["changed"] == [], "importing isstad_plugin and fitting Isstad replaced anomalib/Python objects"
    assert after["metrics"] == alone["metrics"]
    assert after["files"] == alone["files"]
    assert set(alone["metrics"]) == {"padim", "patchcore"} and all(alone["metrics"].values())


def _current() -> dict[str, object]:
    objects: dict[str, object] = {name: getattr(Engine, name) for name in anomalib_corrections.ENGINE_METHODS}
    return objects | {
        "create_versioned_dir": engine_module.create_versioned_dir,
        "MVTecAD.prepare_data": MVTecAD.prepare_data,
        "PredictDataset.__init__": PredictDataset.__init__,
        "excepthook": sys.excepthook,
    }


@pytest.fixture
def restored():
    """The corrections are uninstalled after the test, whatever it did."""
    was = anomalib_corrections.is_installed()
    yield
    if not was:
        anomalib_corrections.uninstall()


def test_install_replaces_only_the_listed_objects_and_uninstall_gives_them_back(restored):
    assert not anomalib_corrections.is_installed()
    before = _current()
    anomalib_corrections.install()
    anomalib_corrections.install()  # idempotent
    during = _current()
    replaced = sorted(name for name in before if during[name] is not before[name])
    assert replaced == sorted([*anomalib_corrections.ENGINE_METHODS, "create_versioned_dir", "MVTecAD.prepare_data"])
    assert (
        during["PredictDataset.__init__"] is before["PredictDataset.__init__"]
    )  # every model's predict data: untouched
    anomalib_corrections.uninstall()
    assert all(value is before[name] for name, value in _current().items())
    assert not anomalib_corrections.is_installed()


def test_installed_is_a_with_block(restored):
    before = _current()
    with anomalib_corrections.installed():
        assert Engine.train is not before["train"]
    assert all(value is before[name] for name, value in _current().items())
