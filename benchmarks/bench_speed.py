"""Training speed of ISSTAD on this machine, in one process: matmul rate, network step, stage-2 step, real fit.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_speed.py \
        --data-root /work/shared/data/magnetic_tile_defect --category magnetic_tile --limit-train-batches 24

Prints Markdown tables:

1. the square matmul rate (``--matmul-size``, fp32 and bf16) in GFLOP/s;
2. the bare network step (forward + backward + AdamW of the config's network, batch ``--batch``) in img/s, its
   FLOP/img (``torch.utils.flop_counter``, forward + backward of the float32 step, used for both precisions: the bf16
   step's explicit attention counts its matmuls differently) and its share of the matmul rate of the same
   precision, for both stages and both precisions; stage 1 with the MAE loss, stage 2 (frozen encoder) with an MSE +
   logit loss;
3. the whole stage-2 ``training_step`` (corruption, SSIM and classification losses; no optimiser) and the
   corruption alone, with the corruption's share of the step;
4. with ``--data-root``: a real ``Engine.fit`` (one stage-1 and one stage-2 epoch of ``--limit-train-batches``
   batches) in the precision the config picks, img/s per stage over the batches after the first two, and its ratio
   to the bare step of that stage and precision.

Times are medians over ``--repeats`` timed steps after two warm-up steps; on a shared machine run it when idle, or
with ``--threads 1 --clock cpu``: the process's CPU time instead of wall time, which other processes do not inflate.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch.utils.flop_counter import FlopCounterMode

from isstad_plugin import Isstad
from isstad_plugin.model.loss import masked_patch_mse
from isstad_plugin.model.optimizers import stage1_optimizer, stage2_optimizer
from isstad_plugin.model.patching import patchify

try:
    from isstad_plugin.training.precision import bf16_is_fast, resolve_precision
except ImportError:  # an older isstad_plugin (to measure the "before" of a change): bf16 as its CPU config had

    def bf16_is_fast(device: str = "cpu") -> tuple[bool, str]:
        return True, "not detected (older isstad_plugin)"

    def resolve_precision(value: str | None, device: str | None = None) -> str:
        return "bf16-mixed" if value in (None, "auto") else str(value)


from isstad_plugin.tools.run_config import RunConfig, load_run_config, packaged_config

_CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = [time.perf_counter]


def clock() -> float:
    """The clock chosen by ``--clock``: wall time, or this process's CPU time (robust on a shared machine)."""
    return _clock[0]()


def median_seconds(call: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    """Median wall time of ``call()`` over ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = clock()
        call()
        times.append(clock() - start)
    return statistics.median(times)


def matmul_gflops(size: int, dtype: torch.dtype, repeats: int) -> float:
    """Square ``size`` x ``size`` matmul rate in GFLOP/s (``2 n^3`` per product)."""
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    return 2 * size**3 / median_seconds(lambda: a @ b, repeats) / 1e9


def build_model(config: RunConfig, stage: int, compile_blocks: bool = False) -> Isstad:
    """The config's Isstad in training mode, in ``stage`` (the encoder frozen in stage 2), optionally compiled."""
    torch.manual_seed(0)
    model = Isstad(**{**config.model, "visualizer": False, "evaluator": False})
    if stage == 2:
        model.enter_stage2()
    if compile_blocks:
        model.model.compile_blocks()
    return model.train()


def _fused(function: Callable[..., Any]) -> dict[str, bool]:
    return {"fused": True} if "fused" in inspect.signature(function).parameters else {}


def network_step(model: Isstad, images: torch.Tensor, bf16: bool) -> Callable[[], None]:
    """One forward + backward + AdamW step of the bare network (no corruption, no SSIM) as a closure."""
    net, settings = model.model, model.optimizer_settings
    if model.stage == 1:
        optimizer, _ = stage1_optimizer(net, settings, len(images), 100, 10, **_fused(stage1_optimizer))
    else:
        optimizer, _ = stage2_optimizer(net, settings, **_fused(stage2_optimizer))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            if model.stage == 1:
                out = net(images, mask_ratio=net.config.mask_ratio)
                target, prediction = (patchify(x, net.patch_size) for x in (images, out.reconstruction.float()))
                loss = masked_patch_mse(target, prediction, out.mask)
            else:
                out = net.reconstruct_and_classify(images)
                loss = F.mse_loss(out.reconstruction.float(), images) + out.level_logits.float().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def flops_per_image(step: Callable[[], None], batch: int) -> float:
    """FLOP per image of one call of ``step`` (forward and backward matmuls/convolutions)."""
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return counter.get_total_flops() / batch


def stage2_training_step(
    model: Isstad, images: torch.Tensor, bf16: bool
) -> tuple[Callable[[], None], Callable[[], None]]:
    """Closures of the model's whole stage-2 loss + backward (as in a fit, no optimiser) and of the corruption alone."""
    model.log = lambda *a, **k: None  # type: ignore[method-assign]
    model.log_dict = lambda *a, **k: None  # type: ignore[method-assign]
    clean = images.clamp(0, 1)

    def train() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model._stage2_step(images)
        loss.backward()
        model.zero_grad(set_to_none=True)

    def corrupt() -> None:
        model.pixel_corruption(clean)

    return train, corrupt


def fit_rates(args: argparse.Namespace, config: RunConfig, precision: str) -> dict[int, tuple[float, float]]:
    """Per stage of a real ``Engine.fit`` (one epoch each): img/s after the first two batches, and epoch seconds."""
    from anomalib.data import MVTecAD
    from anomalib.engine import Engine
    from lightning.pytorch import Callback

    class Clock(Callback):
        def __init__(self) -> None:
            self.marks: dict[int, list[tuple[float, int]]] = {}
            self.starts: dict[int, float] = {}

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            self.starts[trainer.current_epoch + 1] = clock()  # stage1_epochs=1: epoch 0 is stage 1

        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            self.marks.setdefault(pl_module.stage, []).append((clock(), len(batch.image)))

    epochs = Clock()
    data = {**config.data, "root": args.data_root, "category": args.category, "train_batch_size": args.batch}
    data["num_workers"] = args.num_workers
    datamodule = MVTecAD(**{k: v for k, v in data.items() if k != "seed"})
    cache = {} if args.train_cache_gb is None else {"train_cache_gb": args.train_cache_gb}
    model = Isstad(**{**config.model, **cache, "stage1_epochs": 1, "visualizer": False})
    with tempfile.TemporaryDirectory() as root:
        engine = Engine(
            default_root_dir=root,
            max_epochs=2,
            limit_train_batches=args.limit_train_batches,
            limit_val_batches=1,
            check_val_every_n_epoch=2,
            precision=precision,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            accelerator="cpu",
            devices=1,
            callbacks=[epochs],
        )
        engine.fit(model, datamodule=datamodule)
    rates = {}
    for stage, marks in epochs.marks.items():
        (start, _), rest = marks[1], marks[2:]  # from the end of the second batch: steady state
        if rest:
            rates[stage] = (sum(n for _, n in rest) / (rest[-1][0] - start), marks[-1][0] - epochs.starts[stage])
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None, help="run config (default: the packaged isstad_cpu.yaml)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per measurement (median)")
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--data-root", type=Path, default=None, help="MVTec-layout root for the real fit")
    parser.add_argument("--category", default=None)
    parser.add_argument("--limit-train-batches", type=int, default=24, help="batches per fit epoch")
    parser.add_argument("--num-workers", type=int, default=0, help="train loader worker processes of the real fit")
    parser.add_argument("--precision", default="auto", help="real fit: auto, bf16-mixed or 32-true")
    parser.add_argument("--train-cache-gb", type=float, default=None, help="real fit: cache limit (0: off)")
    parser.add_argument(
        "--clock",
        choices=sorted(_CLOCKS),
        default="wall",
        help="wall time, or process CPU time (use with --threads 1 on a busy machine: contention-free figures)",
    )
    parser.add_argument("--compile", action="store_true", help="network steps with torch.compile'd blocks")
    parser.add_argument("--skip-network", action="store_true", help="only the real fit")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("isstad_plugin").setLevel(logging.INFO)  # the cache and precision lines
    if args.threads:
        torch.set_num_threads(args.threads)
    _clock[0] = _CLOCKS[args.clock]
    config = load_run_config(args.config or packaged_config("isstad_cpu.yaml"))
    size = int(config.model.get("image_size", 224))
    fast, reason = bf16_is_fast("cpu")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}, bf16 fast: {fast} ({reason}); {config.model.get('encoder')} "
        f"{size} px, batch {args.batch}, medians of {args.repeats}, {args.clock} clock"
    )
    step_rates: dict[tuple[int, bool], float] = {}
    if not args.skip_network:
        matmul = {
            bf16: matmul_gflops(args.matmul_size, torch.bfloat16 if bf16 else torch.float32, args.repeats)
            for bf16 in (False, True)
        }
        print(f"\n| matmul {args.matmul_size}² | GFLOP/s |\n|---|---|")
        for bf16, rate in matmul.items():
            print(f"| {'bf16' if bf16 else 'fp32'} | {rate:.0f} |")
        print("\n| network step | precision | img/s | GFLOP/img | GFLOP/s | % of matmul |\n|---|---|---|---|---|---|")
        images = torch.rand(args.batch, 3, size, size)  # [0, 1] pixels, as the pre-processor gives
        for stage in (1, 2):
            for bf16 in (False, True):
                step = network_step(build_model(config, stage, args.compile), images, bf16)
                rate = args.batch / median_seconds(step, args.repeats)
                if not bf16:  # the work of the float32 step (fused attention) for both: the kernels differ in bf16
                    flops = flops_per_image(step, args.batch)
                step_rates[(stage, bf16)] = rate
                print(
                    f"| stage {stage} | {'bf16' if bf16 else 'fp32'} | {rate:.1f} | {flops / 1e9:.2f} | "
                    f"{rate * flops / 1e9:.0f} | {100 * rate * flops / 1e9 / matmul[bf16]:.0f} % |"
                )
        print(
            "\n| stage-2 training_step (no optimiser) | precision | img/s | corruption ms/batch | corruption share |"
            "\n|---|---|---|---|---|"
        )
        for bf16 in (False, True):
            train, corrupt = stage2_training_step(build_model(config, 2), images, bf16)
            step_s, corrupt_s = median_seconds(train, args.repeats), median_seconds(corrupt, args.repeats)
            print(
                f"| loss + backward | {'bf16' if bf16 else 'fp32'} | {args.batch / step_s:.1f} | "
                f"{corrupt_s * 1e3:.1f} | {100 * corrupt_s / step_s:.1f} % |"
            )
    if args.data_root is not None:
        if not args.category:
            parser.error("--category is needed with --data-root")
        precision = resolve_precision(args.precision, "cpu")
        rates = fit_rates(args, config, precision)
        bf16 = precision == "bf16-mixed"
        print(
            f"\n| real fit ({args.category}, {precision}, {args.limit_train_batches} batches/epoch, "
            f"{args.num_workers} workers) | img/s | % of bare step | epoch s |\n|---|---|---|---|"
        )
        for stage, (rate, seconds) in sorted(rates.items()):
            bare = step_rates.get((stage, bf16))
            share = f"{100 * rate / bare:.0f} %" if bare else "-"
            print(f"| stage {stage} | {rate:.1f} | {share} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
