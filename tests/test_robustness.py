"""Bad inputs stop with one clear line and lose nothing; odd image formats work; runs are deterministic."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import Callback, seed_everything
from PIL import Image

from isstad_plugin import Isstad
from isstad_plugin.data import MVTec, generate_dataset, high_bit_depth
from isstad_plugin.data.checks import DatasetError
from isstad_plugin.model.loss import Stage1Loss
from tests.helpers import engine_for, small_datamodule, tiny_isstad


@pytest.fixture
def own_copy(tmp_path, dataset_root):
    """A private copy of the generated set that a test may damage."""
    root = tmp_path / "data"
    shutil.copytree(dataset_root, root)
    return root


def _fit(root, data_root, **model_args):
    seed_everything(0)
    model = tiny_isstad(**{"stage1_epochs": 1, **model_args})
    engine = engine_for(root, max_epochs=2)
    engine.fit(model, datamodule=small_datamodule(data_root))
    return engine, model


def test_truncated_image_is_named_and_earlier_results_are_kept(tmp_path, own_copy):
    _fit(tmp_path / "run", own_copy)  # an earlier run in the same folder: its checkpoints and images must survive
    earlier = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    assert any(p.suffix == ".ckpt" for p in earlier)
    bad = own_copy / "tiles" / "train" / "good" / "003.png"
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(DatasetError, match=r"cannot read image .*003\.png.*replace or remove the file"):
        _fit(tmp_path / "run", own_copy)
    assert all(p.read_bytes() == content for p, content in earlier.items())


def test_unreadable_image_in_a_folder_datamodule_is_named(tmp_path, own_copy):
    from anomalib.data import Folder

    category = own_copy / "tiles"
    bad = category / "test" / "hole" / "000.png"
    bad.write_bytes(b"not a png")
    datamodule = Folder(
        name="tiles",
        root=category,
        normal_dir="train/good",
        abnormal_dir="test/hole",
        normal_test_dir="test/good",
        train_batch_size=8,
        eval_batch_size=8,
        num_workers=0,
    )
    seed_everything(0)
    with pytest.raises(DatasetError, match=r"cannot read image .*hole/000\.png"):
        engine_for(tmp_path, max_epochs=2).fit(tiny_isstad(stage1_epochs=1), datamodule=datamodule)


def test_missing_mask_is_named(tmp_path, own_copy):
    mask = next((own_copy / "tiles" / "ground_truth" / "hole").glob("*_mask.png"))
    mask.unlink()
    with pytest.raises(DatasetError, match=r"no mask for the defect image .*hole"):
        _fit(tmp_path, own_copy)


def test_missing_dataset_folder_does_not_start_a_download(tmp_path):
    datamodule = MVTec(root=tmp_path / "nowhere", category="tiles", num_workers=0)
    with pytest.raises(DatasetError, match=r"nowhere/tiles has no train/ folder"):
        datamodule.prepare_data()


def test_empty_training_folder(tmp_path, own_copy):
    for image in (own_copy / "tiles" / "train" / "good").glob("*.png"):
        image.unlink()
    with pytest.raises(DatasetError, match=r"no training images in .*tiles/train/good: put the normal images there"):
        _fit(tmp_path, own_copy)


def _convert_images(root: Path, convert) -> None:
    for path in sorted((root / "tiles").rglob("*.png")):
        if "ground_truth" not in path.parts:
            convert(path)


def test_grayscale_rgba_16bit_and_non_square_images_train(tmp_path):
    root = tmp_path / "data"
    generate_dataset(root, "tiles", n_train=12, n_test_good=4, n_test_defect=1, image_size=64, seed=3)
    modes = iter(["L", "RGBA", "I;16", "RGB"] * 100)

    def convert(path):
        image = Image.open(path).convert("RGB").resize((96, 64))  # non-square
        mode = next(modes)
        if mode == "I;16":
            gray = np.asarray(image.convert("L"), dtype=np.uint16) * 257  # full 16-bit range
            Image.fromarray(gray).save(path)
        else:
            image.convert(mode).save(path)
        for mask in (root / "tiles" / "ground_truth").rglob(f"{path.stem}_mask.png"):
            if mask.parent.name == path.parent.name:
                Image.open(mask).resize((96, 64), Image.NEAREST).save(mask)

    _convert_images(root, convert)
    datamodule = small_datamodule(root)
    datamodule.setup()
    sixteen = next(i for i, p in enumerate(datamodule.train_data.samples.image_path) if Image.open(p).mode == "I;16")
    assert float(datamodule.train_data[sixteen].image.mean()) > 0.95, "anomalib alone clips (the opt-in is off)"
    with high_bit_depth.installed():
        image = datamodule.train_data[sixteen].image
        assert image.shape[0] == 3
        assert 0.05 < float(image.mean()) < 0.95, "a 16-bit image must not be read clipped to white"
        engine, model = _fit(tmp_path / "run", root)
        results = engine.test(model, datamodule=small_datamodule(root))[0]
    assert not high_bit_depth.is_installed()
    assert 0.0 <= results["image_AUROC"] <= 1.0


def test_predict_folder_reads_16bit_images_scaled(tmp_path):
    from anomalib.data import PredictDataset

    gray = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 8).astype(np.uint16)  # 0 ... 32760
    Image.fromarray(gray).save(tmp_path / "sixteen.png")
    callback = high_bit_depth.HighBitDepthImages()
    callback.setup(None, None, "predict")
    try:
        image = PredictDataset(tmp_path)[0].image
    finally:
        callback.teardown(None, None, "predict")
    assert float(image.max()) == pytest.approx(32760 / 65535, abs=1e-4), "clipped to 8 bits"
    assert not high_bit_depth.is_installed(), "the callback restores anomalib's reader"
    assert float(PredictDataset(tmp_path)[0].image.max()) == pytest.approx(1.0), "anomalib's own reader clips"


def test_checkpoint_of_another_model_is_refused(tmp_path):
    path = tmp_path / "padim.ckpt"
    torch.save(
        {
            "state_dict": {"model.memory_bank": torch.zeros(2)},
            "hyper_parameters": {"backbone": "resnet18"},
            "pytorch-lightning_version": "2.6.6",
        },
        path,
    )
    with pytest.raises(ValueError, match="not written by an Isstad model"):
        Isstad.load_from_checkpoint(path)


def test_resuming_with_another_architecture_is_refused(tmp_path, dataset_root):
    engine, _ = _fit(tmp_path / "first", dataset_root)
    checkpoint = (
        engine.trainer.checkpoint_callback.best_model_path or engine.trainer.checkpoint_callback.last_model_path
    )
    model = tiny_isstad(stage1_epochs=1, decoder_dim=64)
    with pytest.raises(ValueError, match=r"other model options \(decoder_dim\)"):
        engine_for(tmp_path / "second", max_epochs=3).fit(
            model, datamodule=small_datamodule(dataset_root), ckpt_path=checkpoint
        )


def test_checkpoint_with_other_options_rebuilds_for_testing(tmp_path, dataset_root):
    engine, trained = _fit(tmp_path / "first", dataset_root)
    checkpoint = engine.trainer.checkpoint_callback.best_model_path
    default_sized = tiny_isstad(decoder_dim=64, image_size=32)
    engine_for(tmp_path / "test").test(default_sized, datamodule=small_datamodule(dataset_root), ckpt_path=checkpoint)
    assert default_sized.model.decoder.embed.out_features == 32
    assert torch.equal(default_sized.model.decoder.embed.weight, trained.model.decoder.embed.weight)


def test_non_finite_loss_stops_with_epoch_and_stage_and_keeps_the_last_good_checkpoint(
    tmp_path, dataset_root, monkeypatch
):
    real = Stage1Loss.forward

    def breaks_in_second_epoch(self, *args):
        loss = real(self, *args)
        return loss * float("nan") if model.current_epoch == 1 else loss

    monkeypatch.setattr(Stage1Loss, "forward", breaks_in_second_epoch)
    seed_everything(0)
    model = tiny_isstad(stage1_epochs=2)
    engine = engine_for(tmp_path, max_epochs=3)
    with pytest.raises(FloatingPointError, match=r"non-finite training loss \(nan\) at epoch 1, stage 1"):
        engine.fit(model, datamodule=small_datamodule(dataset_root))
    saved = list(tmp_path.rglob("*.ckpt"))
    assert saved, "the checkpoint of epoch 0 is gone"
    state = torch.load(saved[0], weights_only=False)
    assert state["epoch"] == 0
    network = {k: v for k, v in state["state_dict"].items() if k.startswith("model.")}
    assert network
    assert all(torch.isfinite(v).all() for v in network.values())


def test_same_seed_same_weights_and_metrics(tmp_path, dataset_root):
    runs = []
    for name in ("a", "b"):
        engine, model = _fit(tmp_path / name, dataset_root)
        metrics = engine.test(model, datamodule=small_datamodule(dataset_root))[0]
        runs.append((metrics, {k: v.clone() for k, v in model.model.state_dict().items()}))
    (metrics_a, weights_a), (metrics_b, weights_b) = runs
    assert metrics_a == metrics_b
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)


class RssPerEpoch(Callback):
    """Resident memory of the process at every training epoch end (from /proc, in bytes)."""

    def __init__(self):
        self.rss = []

    def on_train_epoch_end(self, trainer, pl_module):
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        self.rss.append(pages * 4096)


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads /proc (Linux)")
def test_memory_does_not_grow_across_epochs(tmp_path, dataset_root):
    probe = RssPerEpoch()
    seed_everything(0)
    model = tiny_isstad(stage1_epochs=2)
    engine_for(tmp_path, max_epochs=9, callbacks=[probe]).fit(model, datamodule=small_datamodule(dataset_root))
    # epoch 3 (in stage 2, after the switch) against epoch 8: within 5 %
    assert probe.rss[8] <= probe.rss[3] * 1.05, [round(r / 2**20) for r in probe.rss]


def test_every_torch_load_in_the_package_is_weights_only():
    for path in (Path(__file__).parents[1] / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", None) == "load"
                and getattr(node.func.value, "id", None) == "torch"
            ):
                keywords = {k.arg: k.value for k in node.keywords}
                assert "weights_only" in keywords, f"{path}:{node.lineno} torch.load without weights_only"
                assert getattr(keywords["weights_only"], "value", None) is True, f"{path}:{node.lineno}"
