"""Train ISSTAD in tiles on generated 1024 x 2048 images and draw the full-size stitched E, P and S of a test image.

The images are two 1024-px renders of one synthetic surface side by side (the seam is in every image, so it is
normal); each test image has one defect in one half. The model reads 128-px tiles (``tile_size``) of the whole
1024 x 2048 image (``image_size``): anomalib's ``Tiler`` cuts it, E and P are stitched back and fused at full size.

Usage::

    .venv/bin/python scripts/large_image_tiles.py [--output reports/large] [--steps 300 600] [--category tiles]

Writes ``<output>/metrics.json`` (anomalib's test metrics on the generated test split, then ``isstad predict`` on the
full-size test files; with ``--onnx`` also the ONNX export run as the inference how-to runs it, against the torch
model) and ``<output>/panels.png`` (input, E, P, S and ground truth of the first defect images at 1024 x 2048), which
``docs/how-to/large-images.md`` shows. ``--reuse`` skips the fit when ``<output>/runs`` holds a ``model.ckpt``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

HEIGHT, HALF = 1024, 1024
TILE = 128


def write_pair(left: np.ndarray, right: np.ndarray, path: Path) -> None:
    """Write two square uint8 images (RGB or masks) side by side."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.concatenate([left, right], axis=1)
    cv2.imwrite(str(path), image[..., ::-1] if image.ndim == 3 else image)


def generate(root: Path, category: str, n_train: int, n_test: int) -> None:
    """An MVTec-layout set of 1024 x 2048 images under ``root/category``."""
    from isstad_plugin.data.synthetic import DEFECT_TYPES, render_sample
    from isstad_plugin.data.synthetic.render import SyntheticSample

    def render(split: str, index: int, defect: str | None = None) -> SyntheticSample:
        return render_sample(category, split, index, defect=defect, image_size=HALF)

    base = root / category
    for index in range(n_train):
        write_pair(
            render("train", 2 * index).image, render("train", 2 * index + 1).image, base / f"train/good/{index:03}.png"
        )
    for index in range(n_test):
        write_pair(
            render("test", 2 * index).image, render("test", 2 * index + 1).image, base / f"test/good/{index:03}.png"
        )
    for number, defect in enumerate(DEFECT_TYPES[:3]):
        for index in range(n_test):
            good, bad = render("test", 100 + index), render("test", index, defect)
            mask = np.zeros((HEIGHT, HALF), np.uint8)
            pair = (good.image, bad.image) if (index + number) % 2 else (bad.image, good.image)
            masks = (mask, bad.mask) if (index + number) % 2 else (bad.mask, mask)
            write_pair(*pair, base / f"test/{defect}/{index:03}.png")
            write_pair(*masks, base / f"ground_truth/{defect}/{index:03}_mask.png")


def main() -> None:
    """Generate the set, fit in tiles, test, and draw the panels."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("reports/large"))
    parser.add_argument("--steps", type=int, nargs=2, default=(300, 600), metavar=("STAGE1", "STAGE2"))
    parser.add_argument("--category", default="tiles")
    parser.add_argument("--train-images", type=int, default=24)
    parser.add_argument("--test-images", type=int, default=4, help="per defect type, and good")
    parser.add_argument("--reuse", action="store_true", help="test the model.ckpt of an earlier run of this script")
    parser.add_argument("--onnx", action="store_true", help="also export to ONNX and compare (slow: 128 tiles a graph)")
    args = parser.parse_args()

    import torch
    from anomalib.data import MVTecAD
    from anomalib.engine import Engine

    from isstad_plugin import Isstad
    from isstad_plugin.tools.report import save_panels

    root = args.output / "data"
    if not (root / args.category / "train").is_dir():
        generate(root, args.category, args.train_images, args.test_images)
    model = Isstad(
        image_size=[HEIGHT, 2 * HALF],
        tile_size=TILE,
        encoder="vit_tiny_patch8",
        decoder_dim=128,
        decoder_depth=4,
        decoder_heads=4,
        classifier_upsampling="overlap",
        soft_prob=0.5,
        stage1_steps=args.steps[0],
        stage2_steps=args.steps[1],
        stage1_blr=1e-2,
        stage1_warmup_steps=20,
        smoothing_sigma=2.0,
        score_aggregation="topk",
        visualizer=False,
    )
    data = MVTecAD(
        root=root, category=args.category, train_batch_size=8, eval_batch_size=2, num_workers=0,
        val_split_mode="from_test", val_split_ratio=0.3, seed=0,
    )  # fmt: skip
    engine = Engine(max_epochs=-1, default_root_dir=args.output / "runs", logger=False)
    previous = sorted((args.output / "runs").rglob("weights/lightning/model.ckpt"))
    if args.reuse and previous:
        model = Isstad.load_from_checkpoint(previous[-1], map_location="cpu")
        model.visualizer = None
        metrics = engine.test(model, datamodule=data, ckpt_path=previous[-1])[0]
    else:
        engine.fit(model, datamodule=data)
        metrics = engine.test(model, datamodule=data)[0]
    checkpoint = sorted((args.output / "runs").rglob("weights/lightning/model.ckpt"))[-1]
    batch = next(b for b in data.test_dataloader() if b.gt_label.any())
    chosen = batch.gt_label.bool()
    images = model.pre_processor.transform(batch.image[chosen])
    model.eval()
    with torch.no_grad():
        save_panels(model.model, images, batch.gt_mask[chosen].bool(), args.output / "panels.png")
    metrics |= deployment_checks(
        model, checkpoint, (root / args.category / "test").resolve(), args.output, onnx=args.onnx
    )
    (args.output / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))
    print(f"wrote {args.output / 'panels.png'}")


def deployment_checks(model: Any, checkpoint: Path, test_folder: Path, output: Path, onnx: bool) -> dict[str, Any]:
    """``isstad predict`` on the full-size files; with ``onnx``, the export run as docs/how-to/inference.md runs it."""
    import onnxruntime
    import torch
    from anomalib.data.utils import read_image

    from isstad_plugin.tools.predict import PredictOptions, run_predict

    result = run_predict(PredictOptions(checkpoint, test_folder, output / "predict", batch_size=2, save_images=False))
    rows = {Path(str(row.image_path)).relative_to(test_folder).as_posix(): row for row in result.rows}
    path = sorted(test_folder.glob("crack/*.png"))[0]
    predicted = {
        "isstad_predict_images": len(result.rows),
        "isstad_predict_anomalous_of_defects": sum(
            bool(row.pred_label) for name, row in rows.items() if not name.startswith("good/")
        ),
        "isstad_predict_score_of_first_crack": float(rows[path.relative_to(test_folder).as_posix()].pred_score),
    }
    if not onnx:
        return predicted
    exported = model.to_onnx(output / "export", input_size=(HEIGHT, 2 * HALF))
    image = read_image(path, as_tensor=True)[None]  # (1, 3, 1024, 2048) in [0, 1]: already the input size
    session = onnxruntime.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    values = session.run(None, {session.get_inputs()[0].name: image.numpy()})
    onnx = dict(zip([o.name for o in session.get_outputs()], values, strict=True))
    with torch.no_grad():
        torch_out = model(image)
    return predicted | {
        "onnx_anomaly_map_shape": list(onnx["anomaly_map"].shape),
        "onnx_pred_score": float(onnx["pred_score"].reshape(-1)[0]),
        "torch_pred_score": float(torch_out.pred_score.reshape(-1)[0]),
        "onnx_vs_torch_max_map_difference": float(abs(onnx["anomaly_map"] - torch_out.anomaly_map.numpy()).max()),
    }


if __name__ == "__main__":
    main()
