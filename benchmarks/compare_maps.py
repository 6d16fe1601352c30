"""Image AUROC of E, P and S with each score aggregation, on the VALIDATION split only (never the test split).

    .venv/bin/python benchmarks/compare_maps.py CHECKPOINT ROOT CATEGORY [--val-ratio 0.3] [--seed 0]

The validation split is the one `isstad demo` / `isstad benchmark` hold out of the test folder (anomalib's
``val_split_mode=from_test`` with the same ratio and seed), so choosing a setting from this table does not look at the
images that are tested.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from sklearn.metrics import roc_auc_score

from isstad_plugin import Isstad
from isstad_plugin.fusion import aggregate_score
from isstad_plugin.runs import held_out_datamodule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("root")
    parser.add_argument("category")
    parser.add_argument("--val-ratio", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--topk-fraction", type=float, default=0.01)
    args = parser.parse_args()
    model = Isstad.load_from_checkpoint(args.checkpoint, strict=False).eval()  # benchmark runs add AUPRO state
    datamodule = held_out_datamodule(Path(args.root), args.category, args.seed, args.val_ratio)
    datamodule.setup()
    scores: dict[str, list[float]] = {}
    labels: list[int] = []
    with torch.no_grad():
        for batch in datamodule.val_dataloader():
            maps = model.model.anomaly_maps(model.pre_processor.transform(batch.image))
            for name, values in (("S", maps.score), ("E", maps.error), ("P", maps.probability)):
                if values is None:
                    continue
                for how in ("mean", "max", "topk"):
                    scores.setdefault(f"{name} {how}", []).extend(
                        aggregate_score(values, how, args.topk_fraction).tolist()
                    )
            labels += batch.gt_label.int().tolist()
    print(f"validation split: {len(labels)} images, {sum(labels)} anomalous")
    print("| map | aggregation | image AUROC |\n|---|---|---|")
    for key, values in scores.items():
        name, how = key.split()
        print(f"| {name} | {how} | {roc_auc_score(labels, values):.3f} |")


if __name__ == "__main__":
    main()
