"""Cost of the localisation options in a stage-2 training step on this machine (seconds per step).

    .venv/bin/python benchmarks/bench_localisation_cost.py --image-size 136 120 --batch 16

One stage-2 step of the CPU network (corruption, forward with the pixel classifier head, the stage-2 loss, backward,
AdamW) under bf16 autocast, for the paper's head and corruption and for each option alone: ``classifier_upsampling:
overlap`` and ``soft_prob``. The figure is the median of ``--steps``
steps after two warm-up steps.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch

from isstad_plugin import Isstad

NETWORK: dict[str, Any] = {"encoder": "vit_tiny_patch8", "decoder_dim": 128, "decoder_depth": 4, "decoder_heads": 4}
"""The network of ``configs/isstad_cpu.yaml``."""


def step_seconds(image_size: list[int], batch: int, steps: int, bf16: bool, **options: Any) -> float:
    """Median seconds of one stage-2 step of an ``Isstad`` built with ``options``."""
    torch.manual_seed(0)
    model = Isstad(image_size=image_size, visualizer=False, **NETWORK, **options)
    model.enter_stage2()
    network = model.model
    optimizer = torch.optim.AdamW([p for p in network.parameters() if p.requires_grad], lr=1e-4)
    clean = torch.rand(batch, 3, *image_size)
    times = []
    for _ in range(steps + 2):
        start = time.perf_counter()
        corrupted, labels = model.pixel_corruption(clean)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            output = network.reconstruct_and_classify(corrupted, with_classifier=True)
            losses = model.loss(output.reconstruction.float(), clean, output.level_logits, labels)
        losses.total.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - start)
    return statistics.median(times[2:])


def main() -> None:
    """Print one line per setting."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, nargs=2, default=[136, 120], metavar=("H", "W"))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    args = parser.parse_args()
    settings: list[dict[str, Any]] = [
        {},
        {"classifier_upsampling": "overlap"},
        {"soft_prob": 0.25},
        {"soft_prob": 0.5},
    ]
    for options in settings:
        seconds = step_seconds(args.image_size, args.batch, args.steps, not args.fp32, **options)
        print(f"{options or 'paper head and corruption'}: {seconds:.3f} s per stage-2 step")


if __name__ == "__main__":
    main()
