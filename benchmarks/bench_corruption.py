"""Throughput of the stage-2 pixel corruption on the CPU: vectorised path vs the loop oracle (same semantics).

    .venv/bin/python benchmarks/bench_corruption.py --threads 2 --repeats 5

Two timings per implementation, over ``--repeats`` calls after one warm-up call (best and median; images/s use the
best, which is the robust statistic on a shared machine):

* ``apply``: applying already-sampled block parameters (``apply_vectorised`` vs ``apply_loop`` on the same params);
* ``forward``: the whole ``PixelCorruption.forward`` (input checks + parameter sampling + apply); for the loop,
  sampling + ``apply_loop`` (the loop oracle lives in ``tests/corruption/reference.py``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from isstad_plugin.corruption import PixelCorruption
from isstad_plugin.corruption.config import PaperConfig
from isstad_plugin.corruption.params import sample_params
from isstad_plugin.corruption.render import apply_vectorised

sys.path.insert(0, str(Path(__file__).parents[1]))  # the loop oracle of the tests
from tests.corruption.reference import apply_loop


def textures(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    """Procedural RGB images: gradients, a checkerboard and noise."""
    g = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(0, 1, size)
    checker = ((torch.arange(size).view(-1, 1) // 8 + torch.arange(size).view(1, -1) // 8) % 2).float()
    base = torch.stack([ramp.view(-1, 1).expand(size, size), ramp.view(1, -1).expand(size, size), checker])
    return (0.8 * base + 0.2 * torch.rand((batch, 3, size, size), generator=g)).clamp(0, 1)


def timings(call: Callable[[int], object], repeats: int) -> tuple[float, float]:
    """Best and median wall time, in seconds, of ``call(i)`` over ``repeats`` calls, after one warm-up call."""
    call(-1)
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        call(i)
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def milliseconds(pair: tuple[float, float] | None) -> str:
    """Format ``(best, median)`` seconds as ``"best / median"`` milliseconds."""
    return "-" if pair is None else f"{pair[0] * 1e3:.1f} / {pair[1] * 1e3:.1f}"


def rate(pair: tuple[float, float] | None, batch: int) -> str:
    """Images per second at the best time."""
    return "-" if pair is None else f"{batch / pair[0]:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per measurement (default 5)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    images = textures(args.batch, args.size)
    config = PaperConfig()
    params = [
        sample_params(args.batch, 3, args.size, args.size, config, torch.Generator().manual_seed(i))
        for i in range(-1, args.repeats)
    ]
    vectorised = PixelCorruption()
    vec_apply = timings(lambda i: apply_vectorised(images, params[i + 1]), args.repeats)
    loop_apply = timings(lambda i: apply_loop(images, params[i + 1]), args.repeats)
    vec_forward = timings(lambda i: vectorised(images, generator=i + 1), args.repeats)

    def loop(i: int) -> object:
        generator = torch.Generator().manual_seed(i + 1)
        return apply_loop(images, sample_params(args.batch, 3, args.size, args.size, config, generator))

    loop_forward = timings(loop, args.repeats)
    rows = [
        ("paper vectorised", vec_apply, vec_forward),
        ("paper loop", loop_apply, loop_forward),
    ]

    print(
        f"batch {args.batch} x 3 x {args.size} x {args.size}, CPU, {args.threads} thread(s), "
        f"{args.repeats} repeats, torch {torch.__version__}"
    )
    print("| implementation     | apply ms best / median | apply img/s | forward ms best / median | forward img/s |")
    print("|--------------------|------------------------|-------------|--------------------------|---------------|")
    for name, apply_s, forward_s in rows:
        print(
            f"| {name:<18} | {milliseconds(apply_s):>22} | {rate(apply_s, args.batch):>11} | "
            f"{milliseconds(forward_s):>24} | {rate(forward_s, args.batch):>13} |"
        )
    print(
        f"speed-up vectorised / loop (best times): apply {loop_apply[0] / vec_apply[0]:.1f}x, "
        f"forward {loop_forward[0] / vec_forward[0]:.1f}x; "
        f"(medians: apply {loop_apply[1] / vec_apply[1]:.1f}x, forward {loop_forward[1] / vec_forward[1]:.1f}x)"
    )


if __name__ == "__main__":
    main()
