"""Fit and test a tiny Isstad with DDP on 2 CPU processes (gloo); run by tests/training/test_ddp.py.

Lightning's DDP launcher starts this script again for rank 1, so it must be run as a script:
    python tests/training/scripts/ddp_fit.py DATA_ROOT OUT_DIR [epochs] [steps]
One fit and test per budget unit (default both), one after the other in the same two processes (the process group
and the imports are paid once). Each rank writes OUT_DIR/<unit>/rank<N>.json; rank 0 also writes the test metrics
and the checkpoint path.
"""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parents[3]))

import torch
from lightning.pytorch import seed_everything
from tests.helpers import engine_for, small_datamodule, tiny_isstad

from isstad_plugin.model.schedule import StageSchedule


def main() -> None:
    data_root, out = Path(sys.argv[1]), Path(sys.argv[2])
    for unit in sys.argv[3:] or ["epochs", "steps"]:
        fit_and_report(data_root, out / unit, unit)


def fit_and_report(data_root: Path, out: Path, unit: str) -> None:
    seed_everything(0)
    # 16 images, batch 4 on each of 2 ranks: 2 steps an epoch
    model = tiny_isstad(stage1_steps=2, stage2_steps=4) if unit == "steps" else tiny_isstad(stage1_epochs=1)
    budget = StageSchedule.trainer_arguments(1, 2, unit)
    # a root per rank: anomalib's Engine makes a new version folder on every rank, and two ranks entering the second fit
    # together race for the same v<N> (FileExistsError); the checkpoints are written by rank 0 alone
    root = out / f"rank{os.environ.get('LOCAL_RANK', '0')}"
    engine = engine_for(root, devices=2, strategy="ddp", **budget)
    datamodule = small_datamodule(data_root, train_batch_size=4, eval_batch_size=2)
    engine.fit(model, datamodule=datamodule)
    rank = engine.trainer.global_rank
    fingerprint = sum(float(p.double().sum()) for p in model.model.parameters())
    report = {
        "rank": rank,
        "stage": model.stage,
        "encoder_frozen": model.model.encoder_frozen,
        "encoder_requires_grad": any(p.requires_grad for p in model.model.encoder.parameters()),
        "fingerprint": fingerprint,
        "world_size": engine.trainer.world_size,
        "global_step": engine.trainer.global_step,
    }
    results = engine.test(model, datamodule=datamodule)
    if rank == 0:
        report["metrics"] = results[0]
        report["checkpoint"] = engine.trainer.checkpoint_callback.best_model_path
        report["test_images"] = len(datamodule.test_data)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{rank}.json").write_text(json.dumps(report))
    torch.distributed.barrier()


if __name__ == "__main__":
    main()
