"""DDP on two CPU processes: both stages train, the switch happens on every rank, metrics cover the test set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from lightning.pytorch import seed_everything

from isstad_plugin import Isstad
from tests.helpers import engine_for, small_datamodule

SCRIPT = Path(__file__).parent / "scripts" / "ddp_fit.py"


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory, dataset_root):
    """One launch of the two processes: an epoch-budget fit and test, then a step-budget one."""
    out = tmp_path_factory.mktemp("ddp")
    root = Path(__file__).parents[2]  # this checkout's src/ first, whatever checkout the venv was installed from
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)])}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(dataset_root), str(out), "epochs", "steps"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


@pytest.mark.parametrize("unit", ["epochs", "steps"])
def test_ddp_two_processes(ddp_runs, tmp_path, dataset_root, unit):
    ranks = [json.loads((ddp_runs / unit / f"rank{r}.json").read_text()) for r in (0, 1)]
    for rank in ranks:
        assert rank["world_size"] == 2
        assert rank["stage"] == 2
        assert rank["encoder_frozen"]
        assert not rank["encoder_requires_grad"]
        assert rank["global_step"] == 6, "2 + 1 epochs of 2 steps (the step budget: 2 + 4 steps)"
    assert ranks[0]["fingerprint"] == pytest.approx(ranks[1]["fingerprint"], rel=1e-9), "ranks hold other weights"

    # The metrics DDP reported are those of one process testing the whole test set with the same weights.
    seed_everything(0)
    model = Isstad.load_from_checkpoint(ranks[0]["checkpoint"])
    datamodule = small_datamodule(dataset_root, eval_batch_size=2)
    single = engine_for(tmp_path / "single").test(model, datamodule=datamodule)[0]
    assert ranks[0]["test_images"] % 2 == 0, "an odd test set would be padded by the distributed sampler"
    for key, value in single.items():
        assert ranks[0]["metrics"][key] == pytest.approx(value, abs=1e-6), key
