"""Export through anomalib (torch, ONNX, OpenVINO): the exported graphs give the torch maps and scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from anomalib.deploy import ExportType
from lightning.pytorch import seed_everything

from tests.helpers import engine_for, small_datamodule, tiny_isstad


@pytest.fixture(scope="module")
def trained(tmp_path_factory, dataset_root):
    """A tiny Isstad after both stages, with post-processing statistics learnt on validation."""
    root = tmp_path_factory.mktemp("export")
    seed_everything(0)
    model = tiny_isstad(stage1_epochs=1)
    engine = engine_for(root, max_epochs=2)
    engine.fit(model, datamodule=small_datamodule(dataset_root))
    model.eval()
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(images)
    assert not torch.isnan(model.post_processor.image_max), "post-processor statistics missing"
    return engine, model, root, images, expected


def _assert_close(outputs, expected):
    np.testing.assert_allclose(np.asarray(outputs["pred_score"]).reshape(-1), expected.pred_score.numpy(), atol=1e-4)
    np.testing.assert_allclose(
        np.asarray(outputs["anomaly_map"]).reshape(expected.anomaly_map.shape), expected.anomaly_map.numpy(), atol=1e-4
    )


def test_torch_export_reloads_and_matches(trained, monkeypatch):
    engine, model, root, images, expected = trained
    path = engine.export(model, ExportType.TORCH, export_root=root)
    monkeypatch.setenv("TRUST_REMOTE_CODE", "1")  # anomalib's TorchInferencer unpickles the whole module
    from anomalib.deploy import TorchInferencer

    loaded = TorchInferencer(path=path, device="cpu").model
    with torch.no_grad():
        result = loaded(images)
    _assert_close({"pred_score": result.pred_score, "anomaly_map": result.anomaly_map}, expected)


def test_onnx_export_matches_torch(trained):
    onnxruntime = pytest.importorskip("onnxruntime", reason="the 'test' extra installs onnxruntime")
    engine, model, root, images, expected = trained
    path = engine.export(model, ExportType.ONNX, export_root=root, input_size=(64, 64))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    values = session.run(None, {session.get_inputs()[0].name: images.numpy()})
    _assert_close(dict(zip(names, values, strict=True)), expected)


def test_openvino_export_matches_torch(trained):
    openvino = pytest.importorskip("openvino", reason="the 'export' extra installs openvino")
    engine, model, root, images, expected = trained
    path = engine.export(model, ExportType.OPENVINO, export_root=root, input_size=(64, 64))
    # OpenVINO runs bf16 by default on CPUs with AMX (like this one): ask for f32 to compare with torch at 1e-4.
    compiled = openvino.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    result = compiled(images.numpy())
    outputs = {port.get_any_name(): result[port] for port in compiled.outputs}
    _assert_close(outputs, expected)


@pytest.mark.parametrize(
    "options",
    [{"tile_size": 32}, {"classifier_upsampling": "overlap"}, {"encoder_backbone": "efficientnet_lite0"}],
    ids=["tiled", "overlap", "hybrid"],
)
def test_tiled_overlap_and_hybrid_onnx_exports_give_the_whole_map(tmp_path, options):
    onnxruntime = pytest.importorskip("onnxruntime", reason="the 'test' extra installs onnxruntime")
    seed_everything(0)
    model = tiny_isstad(image_size=(32, 64), **options).eval()
    post = model.post_processor  # statistics as a validation would leave them (export refuses NaN ones)
    for name, value in (("_image_threshold", 0.5), ("image_min", 0.0), ("image_max", 1.0)):
        setattr(post, name, torch.tensor(value))
    post.pixel_min, post.pixel_max = torch.tensor(0.0), torch.tensor(1.0)
    images = torch.rand(1, 3, 32, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(images)
    assert expected.anomaly_map.shape[-2:] == (32, 64)  # tiled: 2 tiles of 32 px, stitched back
    path = model.to_onnx(export_root=tmp_path, input_size=(32, 64))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    values = session.run(None, {session.get_inputs()[0].name: images.numpy()})
    _assert_close(dict(zip(names, values, strict=True)), expected)


def test_export_refuses_a_model_without_learnt_thresholds(tmp_path):
    from isstad_plugin.training.checkpointing import CheckpointError

    with pytest.raises(CheckpointError, match="no learnt thresholds"):
        tiny_isstad().to_onnx(export_root=tmp_path, input_size=(64, 64))
