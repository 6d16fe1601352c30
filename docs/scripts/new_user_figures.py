"""Pictures and numbers of the new-user pages (own images, inference), from one quick CPU run (about 3 min).

    PYTHONPATH=src .venv/bin/python docs/scripts/new_user_figures.py [--work /tmp/isstad_new_user]

1. Generates 32 normal training and 30 test images of hex nuts (category ``parts``), saves them as JPEG and drops the
   masks: a folder with image-level labels only, in the MVTec layout.
2. ``isstad demo --data-root`` on it with a 6 + 10 epoch copy of ``configs/isstad_cpu.yaml`` (a tiny budget: the
   pictures show what the commands write, not what a full run reaches).
3. ``isstad predict`` on its test images (the table and anomalib's pictures).
4. ONNX export of the checkpoint and onnxruntime on one JPEG file with the same pre-processing.

Writes ``docs/_static/{own_images_panels,loss_curve,predict_picture,onnx_on_a_file}.png`` and prints the figures
quoted by ``docs/how-to/own-images.md`` and ``docs/how-to/inference.md`` (also to ``<work>/figures.json``).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

DOCS = Path(__file__).resolve().parents[1]
REPO = DOCS.parent
STATIC = DOCS / "_static"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/isstad_new_user"))
    work = parser.parse_args().work
    shutil.rmtree(work, ignore_errors=True)
    figures: dict = {}

    from isstad_plugin.data import generate_dataset
    from isstad_plugin.tools.cli import main as isstad

    data = work / "my_data"
    generate_dataset(data, "parts", n_train=32, n_test_good=10, n_test_defect=4, image_size=128, seed=0)
    for path in sorted(data.rglob("*.png")):
        if "ground_truth" not in path.parts:
            Image.open(path).convert("RGB").save(path.with_suffix(".jpg"), quality=92)
        path.unlink()
    shutil.rmtree(data / "parts" / "ground_truth")

    config = yaml.safe_load((REPO / "configs" / "isstad_cpu.yaml").read_text())
    config["trainer"].update(max_epochs=16, check_val_every_n_epoch=16)
    config["model"]["init_args"].update(stage1_epochs=6, stage2_t_max=10)
    quick = work / "isstad_cpu_quick.yaml"
    quick.write_text(yaml.safe_dump(config, sort_keys=False))

    start = time.perf_counter()
    report = work / "report"
    isstad(["demo", "--data-root", str(data), "--category", "parts", "--config", str(quick), "--output", str(report)])
    figures["demo_seconds"] = round(time.perf_counter() - start)
    figures["demo_metrics"] = json.loads((report / "metrics.json").read_text())["metrics"]
    shutil.copy(report / "panels.png", STATIC / "own_images_panels.png")
    shutil.copy(report / "loss_curve.png", STATIC / "loss_curve.png")

    (checkpoint,) = report.glob("anomalib/**/weights/lightning/model.ckpt")
    predictions = work / "predict"
    isstad(
        ["predict", "--ckpt", str(checkpoint), "--images", str(data / "parts" / "test"), "--output", str(predictions)]
    )
    rows = list(csv.DictReader((predictions / "predictions.csv").open()))
    for row in rows:
        row["image_path"] = str(Path(row["image_path"]).relative_to(data))
    firsts = {Path(r["image_path"]).parent.name: r for r in reversed(rows)}  # the first row of every folder
    figures["predictions_head"] = rows[:3]
    figures["first_of_each_folder"] = list(firsts.values())
    figures["predicted_anomalous"] = {
        truth: [int(r["pred_label"]) for r in rows if ("good" in r["image_path"]) == (truth == "good")].count(1)
        for truth in ("good", "defect")
    }
    figures["counts"] = {"good": sum("good" in r["image_path"] for r in rows), "all": len(rows)}
    example = "parts/test/hole/000.jpg"
    Image.open(predictions / "images" / "hole" / "000.jpg").save(STATIC / "predict_picture.png")  # JPEG -> PNG
    figures.update(_onnx(checkpoint, data / example, work / "export", rows, example))
    print(json.dumps(figures, indent=2))
    (work / "figures.json").write_text(json.dumps(figures, indent=2) + "\n")


def _onnx(checkpoint: Path, image_file: Path, export_root: Path, rows: list[dict], example: str) -> dict:
    import onnxruntime
    import torch
    from anomalib.data.utils import read_image
    from anomalib.deploy import ExportType
    from anomalib.engine import Engine
    from matplotlib.figure import Figure
    from torchvision.transforms.v2.functional import resize

    from isstad_plugin import Isstad

    model = Isstad.load_from_checkpoint(checkpoint, weights_only=True, map_location="cpu")
    size = model.model.image_size
    engine = Engine(logger=False, accelerator="cpu", devices=1, default_root_dir=export_root)
    engine.export(model, ExportType.ONNX, export_root=export_root, input_size=tuple(size))
    onnx_file = next(export_root.rglob("model.onnx"))

    # The same pre-processing as `isstad predict`: RGB in [0, 1], CHW, resized to the model's input; the graph
    # normalises the image itself.
    image = resize(read_image(image_file, as_tensor=True), list(size), antialias=True)
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    values = session.run(None, {session.get_inputs()[0].name: image[None].numpy()})
    outputs = dict(zip([o.name for o in session.get_outputs()], values, strict=True))
    with torch.no_grad():
        reference = model.eval()(image[None])
    predicted = next(float(r["pred_score"]) for r in rows if r["image_path"] == example)
    fig = Figure(figsize=(6.4, 3.0), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.imshow(image.permute(1, 2, 0).numpy())
    left.set_title(f"{example.split('/', 2)[2]} (JPEG file)", fontsize=9)
    shown = right.imshow(outputs["anomaly_map"][0].squeeze(), cmap="inferno", vmin=0, vmax=1)
    right.set_title(
        f"ONNX anomaly_map: pred_score {float(outputs['pred_score'][0]):.3f}, label {bool(outputs['pred_label'][0])}",
        fontsize=9,
    )
    fig.colorbar(shown, ax=right, shrink=0.9)
    for axis in (left, right):
        axis.set_xticks([])
        axis.set_yticks([])
    fig.savefig(STATIC / "onnx_on_a_file.png", dpi=110)
    return {
        "onnx_pred_score": float(outputs["pred_score"][0]),
        "torch_pred_score": float(reference.pred_score[0]),
        "predict_csv_pred_score": predicted,
        "max_abs_map_difference_onnx_torch": float(
            np.abs(outputs["anomaly_map"].squeeze() - reference.anomaly_map.numpy().squeeze()).max()
        ),
    }


if __name__ == "__main__":
    main()
