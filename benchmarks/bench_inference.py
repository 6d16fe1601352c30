"""Inference throughput of ISSTAD: torch eager vs the exported ONNX (ONNX Runtime) and OpenVINO graphs, same inputs.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_inference.py --batch 8 --repeats 5

The config's network (``--config``, default the packaged ``isstad_cpu.yaml``) with random weights, or a trained
``--ckpt``, is exported through anomalib (``to_onnx`` / ``to_openvino`` at the config's image size; the graphs
contain the pre-processor, the network, the E/P fusion and the post-processor) and every runtime scores the same
batch of images. Throughput is img/s at the median of ``--repeats`` timed calls after two warm-up calls; parity is the
largest absolute difference of the anomaly map and the image score from torch eager in float32 (the export tests hold
it under 1e-4). OpenVINO runs with ``INFERENCE_PRECISION_HINT`` f32 (parity) and with its default (bf16 on CPUs with
AMX / AVX512-BF16: faster, not held to 1e-4).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from isstad_plugin import Isstad
from isstad_plugin.tools.run_config import load_run_config, packaged_config


def median_seconds(call: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``call()`` over ``repeats`` calls after two warm-up calls."""
    call()
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def build(config_path: Path | None, ckpt: Path | None) -> Isstad:
    """The model in eval mode with finite post-processor statistics (random weights unless ``ckpt``)."""
    if ckpt is not None:
        model = Isstad.load_from_checkpoint(str(ckpt), weights_only=True, map_location="cpu")
    else:
        config = load_run_config(config_path or packaged_config("isstad_cpu.yaml"))
        torch.manual_seed(0)
        model = Isstad(**{**config.model, "visualizer": False, "evaluator": False})
        post = model.post_processor
        for name, value in (("_image_threshold", 0.5), ("_pixel_threshold", 0.5), ("image_min", 0.0),
                            ("image_max", 1.0), ("pixel_min", 0.0), ("pixel_max", 1.0)):  # fmt: skip
            getattr(post, name).fill_(value)
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--ckpt", type=Path, default=None, help="a trained Isstad .ckpt instead of random weights")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = build(args.config, args.ckpt)
    size = model.model.image_size
    images = torch.rand(args.batch, 3, *size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = model(images)
    expected = {"pred_score": reference.pred_score.numpy(), "anomaly_map": reference.anomaly_map.numpy()}

    def eager(bf16: bool) -> Callable[[], object]:
        def call() -> object:
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return model(images)

        return call

    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory() as root:
        rows.append(("torch eager f32", args.batch / median_seconds(eager(False), args.repeats), "reference"))
        result = eager(True)()
        bf16_diff = float((result.anomaly_map.float() - reference.anomaly_map).abs().max())
        rows.append(("torch eager bf16 autocast", args.batch / median_seconds(eager(True), args.repeats),
                     f"{bf16_diff:.1e}"))  # fmt: skip
        try:
            import onnxruntime

            onnx_path = model.to_onnx(root, input_size=size)
            session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
            feed = {session.get_inputs()[0].name: images.numpy()}
            names = [o.name for o in session.get_outputs()]
            outputs = dict(zip(names, session.run(None, feed), strict=True))
            rate = args.batch / median_seconds(lambda: session.run(None, feed), args.repeats)
            rows.append(("ONNX Runtime (CPU EP)", rate, _diff(outputs, expected)))
        except ImportError as error:
            rows.append(("ONNX Runtime", float("nan"), f"not installed ({error.name})"))
        try:
            import openvino

            ov_path = model.to_openvino(Path(root) / "ov", input_size=size)
            core = openvino.Core()
            for label, config in (("OpenVINO f32", {"INFERENCE_PRECISION_HINT": "f32"}), ("OpenVINO default", {})):
                compiled = core.compile_model(str(ov_path), "CPU", config)
                result = compiled(images.numpy())
                outputs = {port.get_any_name(): result[port] for port in compiled.outputs}
                rate = args.batch / median_seconds(lambda c=compiled: c(images.numpy()), args.repeats)
                hint = compiled.get_property("INFERENCE_PRECISION_HINT")
                hint = hint.get_type_name() if hasattr(hint, "get_type_name") else hint
                rows.append((f"{label} ({hint})", rate, _diff(outputs, expected)))
        except ImportError as error:
            rows.append(("OpenVINO", float("nan"), f"not installed ({error.name})"))

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {model.hparams.get('encoder')} "
        f"{size[0]} px, batch {args.batch}, median of {args.repeats}"
    )
    print("| runtime | img/s | max abs diff vs torch f32 (map, score) |\n|---|---|---|")
    for name, rate, diff in rows:
        print(f"| {name} | {rate:.1f} | {diff} |")


def _diff(outputs: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> str:
    score = np.abs(np.asarray(outputs["pred_score"]).reshape(-1) - expected["pred_score"].reshape(-1)).max()
    anomaly_map = np.asarray(outputs["anomaly_map"]).reshape(expected["anomaly_map"].shape)
    return f"{np.abs(anomaly_map - expected['anomaly_map']).max():.1e}, {score:.1e}"


if __name__ == "__main__":
    main()
