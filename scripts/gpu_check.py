"""GPU check of the paper network (ViT-L/16 at 224 px, random init): bf16 training steps and eval parity (≤ 5 min).

    PYTHONPATH=src HF_HUB_OFFLINE=1 .venv/bin/python scripts/gpu_check.py            # on a CUDA machine
    PYTHONPATH=src .venv/bin/python scripts/gpu_check.py --device cpu --tiny         # dry run of the script on a CPU

What it does, on generated images (nothing is downloaded):

1. the device's measured bf16 matmul rate (8192², or 2048² with ``--tiny``) and, where the device is known, its
   data-sheet dense bf16 peak;
2. ``--steps`` training steps of each stage in bf16 autocast with the model's own losses (stage 1: MAE loss on
   masked patches; stage 2: corruption, MSE + SSIM + pixel classification, frozen encoder) and fused AdamW: every
   loss must be finite; prints img/s, FLOP/img, the fraction of the bf16 peak and the peak memory per stage;
3. eval outputs (anomaly map S and image score) of the trained network in bf16 autocast vs float32 on the same
   images: the largest difference relative to the float32 range must be ≤ ``--tolerance`` (default 0.05: bf16 has
   8 mantissa bits, and S is a product of two smoothed maps);
4. unless ``--skip-fit``: a short ``Engine.fit`` (2 + 2 batches, one epoch per stage) with ``accelerator="auto"``
   and the :class:`~isstad_plugin.HardwarePrecision` plugin on a generated MVTec-layout set, which exercises the
   train-data cache, the stage switch and the precision choice on the GPU.

Exit status 0 when every check passes, 1 when one fails (the failing check is printed), 2 without a CUDA device.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.flop_counter import FlopCounterMode

if TYPE_CHECKING:  # imported in main, after the device check: 'no CUDA device' answers in a second
    from isstad_plugin import Isstad

# Data-sheet dense bf16 tensor-core peaks (TFLOP/s), SXM parts; matched against torch.cuda.get_device_name().
BF16_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0}
TINY = {"encoder": "vit_tiny_patch8", "image_size": 64, "decoder_dim": 64, "decoder_depth": 2, "decoder_heads": 2}


def spec_peak(device: torch.device) -> float | None:
    """Data-sheet bf16 peak of a known GPU in FLOP/s, else ``None``."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, tflops in BF16_PEAK_TFLOPS.items():
        if key in name:
            return tflops * 1e12
    return None


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (timing)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(device: torch.device, size: int) -> float:
    """Measured bf16 matmul rate in FLOP/s (median of 10)."""
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ a
    times = []
    for _ in range(10):
        synchronize(device)
        start = time.perf_counter()
        a @ a
        synchronize(device)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / sorted(times)[len(times) // 2]


def train_stage(model: Isstad, images: torch.Tensor, stage: int, steps: int) -> dict[str, Any]:
    """``steps`` bf16 training steps of one stage with the model's losses; losses, img/s, FLOP/img, peak memory."""
    device = images.device
    if stage == 2:
        model.enter_stage2()
    params = [p for p in model.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, fused=True)

    def step() -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = model._stage1_step(images) if stage == 1 else model._stage2_step(images)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    losses = [step(), step()]  # warm-up
    synchronize(device)
    start = time.perf_counter()
    losses += [step() for _ in range(steps)]
    synchronize(device)
    seconds = time.perf_counter() - start
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
    return {
        "losses": [float(loss) for loss in losses],
        "img_s": steps * len(images) / seconds,
        "flop_img": counter.get_total_flops() / len(images),
        "peak_gib": peak / 1024**3,
    }


def eval_parity(model: Isstad, images: torch.Tensor) -> tuple[float, float]:
    """Largest bf16-vs-float32 difference of the S map and of the score, relative to the float32 range."""
    model.eval()
    with torch.no_grad():
        reference = model.model(images)
        with torch.autocast(images.device.type, dtype=torch.bfloat16):
            fast = model.model(images)
    span = (reference.anomaly_map.max() - reference.anomaly_map.min()).clamp_min(1e-12)
    map_error = float((fast.anomaly_map.float() - reference.anomaly_map).abs().max() / span)
    score_span = reference.anomaly_map.max().clamp_min(1e-12)  # scores are means of S: compare on S's scale
    score_error = float((fast.pred_score.float() - reference.pred_score).abs().max() / score_span)
    return map_error, score_error


def short_fit(args: argparse.Namespace, options: dict[str, Any]) -> str:
    """Two-stage ``Engine.fit`` of 2 batches per stage on generated data with accelerator auto; a one-line summary."""
    from anomalib.data import MVTecAD
    from anomalib.engine import Engine

    from isstad_plugin import HardwarePrecision, Isstad
    from isstad_plugin.data import generate_dataset

    size = int(options.get("image_size", 224))
    with tempfile.TemporaryDirectory() as root:
        generate_dataset(root, "tiles", n_train=2 * args.batch, n_test_good=4, n_test_defect=2, image_size=size)
        datamodule = MVTecAD(root=root, category="tiles", train_batch_size=args.batch, eval_batch_size=8,
                             num_workers=0, val_split_mode="from_test", val_split_ratio=0.5)  # fmt: skip
        model = Isstad(**options, stage1_epochs=1, stage1_warmup_epochs=0, visualizer=False)
        engine = Engine(default_root_dir=root, max_epochs=2, limit_train_batches=2, limit_val_batches=1,
                        accelerator="auto", devices=1, logger=False, enable_progress_bar=False,
                        plugins=[HardwarePrecision()])  # fmt: skip
        start = time.perf_counter()
        engine.fit(model, datamodule=datamodule)
        trainer = engine.trainer
        loss = float(trainer.callback_metrics.get("train_loss", float("nan")))
        if model.stage != 2 or not torch.isfinite(torch.tensor(loss)):
            msg = f"short fit: stage {model.stage}, last train_loss {loss}"
            raise AssertionError(msg)
        return (
            f"short fit OK: accelerator {type(trainer.accelerator).__name__}, precision {trainer.precision}, "
            f"stage 2 train_loss {loss:.4f}, {time.perf_counter() - start:.1f} s"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="a small network (dry run of the script on a CPU)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--tolerance", type=float, default=0.05)
    parser.add_argument("--skip-fit", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: run this on a GPU machine (or --device cpu --tiny for a dry run)")
        return 2
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        print(f"device: {torch.cuda.get_device_name(device)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    from isstad_plugin import Isstad

    options: dict[str, Any] = dict(TINY) if args.tiny else {}  # {} = the paper network: ViT-L/16, 224 px
    torch.manual_seed(0)
    model = Isstad(**options, visualizer=False, evaluator=False).to(device).train()
    model.log = lambda *a, **k: None  # type: ignore[method-assign]  # no Trainer here
    model.log_dict = lambda *a, **k: None  # type: ignore[method-assign]
    size = model.model.image_size
    images = torch.rand(args.batch, 3, *size, generator=torch.Generator().manual_seed(0)).to(device)  # [0, 1]
    measured = matmul_rate(device, 2048 if args.tiny else 8192)
    sheet = spec_peak(device)
    print(
        f"bf16 matmul: {measured / 1e12:.1f} TFLOP/s measured" + (f", {sheet / 1e12:.0f} data sheet" if sheet else "")
    )
    peak = sheet or measured
    failures = []
    print(
        "| stage | img/s | GFLOP/img | % of bf16 peak | peak memory GiB | first / last loss |\n"
        "|---|---|---|---|---|---|"
    )
    for stage in (1, 2):
        result = train_stage(model, images, stage, args.steps)
        losses = result["losses"]
        if not all(torch.isfinite(torch.tensor(losses))):
            failures.append(f"stage {stage}: non-finite loss {losses}")
        share = 100 * result["img_s"] * result["flop_img"] / peak
        print(
            f"| {stage} | {result['img_s']:.1f} | {result['flop_img'] / 1e9:.1f} | {share:.0f} % | "
            f"{result['peak_gib']:.1f} | {losses[0]:.4f} / {losses[-1]:.4f} |"
        )
    map_error, score_error = eval_parity(model, images)
    ok = map_error <= args.tolerance and score_error <= args.tolerance
    print(
        f"eval bf16 vs fp32: S map {map_error:.2e}, score {score_error:.2e} of the fp32 range "
        f"(tolerance {args.tolerance})"
    )
    if not ok:
        failures.append(f"eval parity: map {map_error:.2e}, score {score_error:.2e} > {args.tolerance}")
    if not args.skip_fit:
        try:
            print(short_fit(args, options))
        except Exception as error:  # any failure of the fit is reported as a failed check
            failures.append(f"short fit: {type(error).__name__}: {error}")
    for failure in failures:
        print(f"FAILED {failure}")
    print("GPU check passed" if not failures else "GPU check FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
