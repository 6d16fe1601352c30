"""Fit and test anomalib's PaDiM and PatchCore (random-init backbones), optionally after an ISSTAD fit.

``python peers_after_isstad.py DATA OUT [--isstad]`` prints one JSON line: the peers' test metrics, the files their runs
wrote (relative to ``OUT``), and whether any anomalib/Python object the plugin could touch differs from before.
With ``--isstad`` an ISSTAD model is fitted in Python first (which must change nothing), then the peers run with the
CLI corrections installed, as in the process of an ``anomalib`` command that read ``isstad_plugin``.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import matplotlib
from anomalib.cli import cli as anomalib_cli
from anomalib.data import MVTecAD, PredictDataset
from anomalib.data.datasets.base import image as anomalib_image_dataset
from anomalib.engine import Engine
from anomalib.engine import engine as engine_module
from anomalib.models import Padim, Patchcore
from lightning.pytorch import seed_everything


def watched() -> dict[str, object]:
    """Every object ``isstad_plugin.tools.anomalib_corrections`` replaces when it is installed, and a few more."""
    objects: dict[str, object] = {
        name: getattr(Engine, name) for name in ("_setup_workspace", "fit", "train", "test", "predict", "validate")
    }
    objects |= {
        "export": Engine.export,
        "create_versioned_dir": engine_module.create_versioned_dir,
        "MVTecAD.prepare_data": MVTecAD.prepare_data,
        "PredictDataset.__init__": PredictDataset.__init__,
        "AnomalibCLI.before_instantiate_classes": anomalib_cli.AnomalibCLI.before_instantiate_classes,
        "sys.excepthook": sys.excepthook,
        "root log handlers": tuple(logging.getLogger().handlers),
        "image dataset read_image": anomalib_image_dataset.read_image,
        "matplotlib backend": matplotlib.get_backend(),
    }
    return objects


def datamodule(root: Path) -> MVTecAD:
    return MVTecAD(root=root, category="tiles", train_batch_size=8, eval_batch_size=8, num_workers=0, seed=0)


def engine(root: Path) -> Engine:
    return Engine(
        default_root_dir=root, logger=False, enable_progress_bar=False, accelerator="cpu", devices=1, max_epochs=1
    )


def main() -> None:
    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    before = watched()
    if "--isstad" in sys.argv:
        sys.path.insert(0, str(Path(__file__).parents[3]))
        from tests.helpers import engine_for, small_datamodule, tiny_isstad

        import isstad_plugin.tools.demo
        import isstad_plugin.tools.report  # noqa: F401  (their imports must change nothing either)

        engine_for(out / "isstad", max_epochs=2).train(tiny_isstad(stage1_epochs=1), datamodule=small_datamodule(data))
    changed = sorted(name for name, value in watched().items() if value != before[name])
    if "--isstad" in sys.argv:
        from isstad_plugin.tools.anomalib_corrections import install

        install()
    metrics = {}
    padim_size, core_size = Padim.configure_pre_processor((64, 64)), Patchcore.configure_pre_processor((64, 64))
    for name, build in (
        ("padim", lambda: Padim(backbone="resnet18", pre_trained=False, pre_processor=padim_size, visualizer=False)),
        (
            "patchcore",
            lambda: Patchcore(backbone="resnet18", pre_trained=False, pre_processor=core_size, visualizer=False),
        ),
    ):
        seed_everything(0, workers=True)
        results = engine(out / name).train(build(), datamodule=datamodule(data))[0]
        metrics[name] = {key: round(float(value), 6) for key, value in results.items()}
    files = sorted(str(p.relative_to(out)) for name in metrics for p in (out / name).rglob("*"))
    print(
        json.dumps({"metrics": metrics, "files": files, "changed": changed, "plugin": "isstad_plugin" in sys.modules})
    )


if __name__ == "__main__":
    main()
