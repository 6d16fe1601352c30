"""Isstad as an anomalib model: both stages in one Engine fit, stage switch, resume, options, checkpoints."""

from __future__ import annotations

import pytest
import torch
from anomalib.engine import Engine
from lightning.pytorch import Callback, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint

from isstad_plugin import Isstad
from tests.helpers import engine_for, small_datamodule, tiny_isstad


class StageProbe(Callback):
    """Snapshots parameters when stage 2 starts and checks what the optimiser holds."""

    def __init__(self):
        self.encoder = self.decoder = None
        self.optimizer_params = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if pl_module.stage == 2 and self.encoder is None:
            self.encoder = {k: v.clone() for k, v in pl_module.model.encoder.state_dict().items()}
            self.decoder = {k: v.clone() for k, v in pl_module.model.decoder.state_dict().items()}
            self.optimizer_params = {id(p) for g in trainer.optimizers[0].param_groups for p in g["params"]}


def test_fit_runs_both_stages_freezes_encoder_and_tests(tmp_path, dataset_root):
    seed_everything(0)
    model = tiny_isstad(stage1_epochs=1)
    probe = StageProbe()
    engine = engine_for(tmp_path, max_epochs=3, callbacks=[probe])
    datamodule = small_datamodule(dataset_root)
    engine.fit(model, datamodule=datamodule)

    assert model.stage == 2
    assert probe.encoder is not None, "stage 2 never started"
    for key, value in model.model.encoder.state_dict().items():
        assert torch.equal(value, probe.encoder[key]), f"encoder parameter {key} changed in stage 2"
    changed = [k for k, v in model.model.decoder.state_dict().items() if not torch.equal(v, probe.decoder[k])]
    assert changed, "no decoder parameter changed in stage 2"
    encoder_ids = {id(p) for p in model.model.encoder.parameters()}
    assert not probe.optimizer_params & encoder_ids, "the stage-2 optimiser holds encoder parameters"
    assert id(model.model.pixel_classifier_head.proj[0].weight) in probe.optimizer_params
    assert "train_loss" in engine.trainer.callback_metrics

    results = engine.test(model, datamodule=datamodule)[0]
    for metric in ("image_AUROC", "pixel_AUROC", "image_F1Score", "pixel_F1Score"):
        assert 0.0 <= results[metric] <= 1.0
    predictions = engine.predict(model, datamodule=datamodule)
    assert predictions[0].anomaly_map.shape[-2:] == (64, 64)
    assert predictions[0].pred_label is not None  # thresholds were learnt on validation


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, dataset_root):
    """An uninterrupted 4-epoch fit (2 + 2) keeping a checkpoint after every epoch."""
    root = tmp_path_factory.mktemp("reference")
    return _fit(root, dataset_root)


class EveryEpoch(ModelCheckpoint):
    """Keeps every epoch's checkpoint, beside the Engine's own ModelCheckpoint."""

    @property
    def state_key(self):
        return "every-epoch"


def _fit(root, dataset_root, ckpt_path=None):
    seed_everything(0)
    model = tiny_isstad(stage1_epochs=2)
    keep = EveryEpoch(dirpath=root / "epochs", filename="{epoch}", save_top_k=-1, every_n_epochs=1)
    engine = engine_for(root, max_epochs=4, callbacks=[keep])
    datamodule = small_datamodule(dataset_root)
    engine.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    metrics = engine.test(model, datamodule=datamodule)[0]
    weights = {k: v.clone() for k, v in model.model.state_dict().items()}
    return metrics, sorted((root / "epochs").glob("epoch=*.ckpt")), weights


@pytest.mark.parametrize(("epoch", "stage"), [(0, 1), (2, 2)])
def test_resume_reaches_the_uninterrupted_metrics(tmp_path, dataset_root, reference_run, epoch, stage):
    metrics, checkpoints, weights = reference_run
    checkpoint = next(c for c in checkpoints if c.name == f"epoch={epoch}.ckpt")
    assert torch.load(checkpoint, weights_only=False)["isstad_stage"] == stage
    resumed, _, resumed_weights = _fit(tmp_path, dataset_root, ckpt_path=checkpoint)
    for key, value in metrics.items():
        assert resumed[key] == pytest.approx(value, abs=1e-5), key
    for key, value in weights.items():
        assert torch.allclose(resumed_weights[key], value, atol=1e-6), f"{key} differs after resuming"


def test_stage1_checkpoint_skips_stage1(tmp_path, dataset_root, reference_run):
    _, checkpoints, _ = reference_run
    stage1_end = next(c for c in checkpoints if c.name == "epoch=1.ckpt")
    model = tiny_isstad(stage1_checkpoint=str(stage1_end))
    assert model.stage == 2
    assert model.stage1_epochs == 0
    engine = engine_for(tmp_path, max_epochs=1)
    engine.fit(model, datamodule=small_datamodule(dataset_root))
    saved = torch.load(stage1_end, weights_only=False)["state_dict"]
    assert torch.equal(model.model.encoder.cls_token, saved["model.encoder.cls_token"])


def test_stage1_checkpoint_with_a_step_budget_starts_stage2_at_step_0(tmp_path, dataset_root, reference_run):
    _, checkpoints, _ = reference_run
    stage1_end = next(c for c in checkpoints if c.name == "epoch=1.ckpt")
    model = tiny_isstad(stage1_checkpoint=str(stage1_end), stage1_steps=0, stage2_steps=4)
    assert model.stage == 2
    engine = engine_for(tmp_path, max_epochs=-1, check_val_every_n_epoch=1)
    engine.fit(model, datamodule=small_datamodule(dataset_root))
    assert engine.trainer.global_step == 4  # the small set is 2 batches an epoch: 2 epochs of stage 2
    assert model.stage == 2
    assert torch.isfinite(model.post_processor.image_threshold)


def test_stage1_checkpoint_written_too_early_is_refused(tmp_path, dataset_root, reference_run):
    _, checkpoints, _ = reference_run
    first = next(c for c in checkpoints if c.name == "epoch=0.ckpt")
    model = tiny_isstad(stage1_checkpoint=str(first))
    with pytest.raises(ValueError, match="finish stage 1 first"):
        engine_for(tmp_path, max_epochs=1).fit(model, datamodule=small_datamodule(dataset_root))


def test_checkpoint_reloads_for_testing(tmp_path, dataset_root, reference_run):
    metrics, checkpoints, _ = reference_run
    model = Isstad.load_from_checkpoint(checkpoints[-1])
    assert model.stage == 2
    assert model.model.encoder_frozen
    results = Engine(default_root_dir=tmp_path, logger=False, enable_progress_bar=False).test(
        model, datamodule=small_datamodule(dataset_root)
    )[0]
    assert results["image_AUROC"] == pytest.approx(metrics["image_AUROC"], abs=1e-6)


def test_too_few_epochs_for_stage2(tmp_path, dataset_root):
    with pytest.raises(ValueError, match=r"trainer.max_epochs \(2\) must exceed model.stage1_epochs \(2\)"):
        engine_for(tmp_path, max_epochs=2).fit(tiny_isstad(stage1_epochs=2), datamodule=small_datamodule(dataset_root))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"variant": "II", "stage1_epochs": 3}, "no stage-1 pre-training"),
        ({"variant": "IV", "mse_weight": 1.0}, "trains no reconstruction"),
        ({"variant": "VII", "classification_weight": 1.0}, "trains no pixel classifier"),
        ({"variant": "VI", "corrupt_prob": 0.5}, "trains on clean images"),
        ({"stage1_checkpoint": "x.ckpt", "stage1_epochs": 5}, "skips stage 1"),
        ({"variant": "I", "stage1_checkpoint": "x.ckpt"}, "nothing to train"),
        ({"variant": "IX"}, "variant must be one of"),
    ],
)
def test_contradicting_options_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_isstad(**kwargs)


def test_cli_optimizer_override_is_refused(tmp_path, dataset_root):
    model = tiny_isstad(stage1_epochs=1)
    model.configure_optimizers = lambda: torch.optim.SGD(model.parameters(), lr=0.1)  # what --optimizer does
    with pytest.raises(ValueError, match="would replace ISSTAD's two-stage optimisers"):
        engine_for(tmp_path, max_epochs=2).fit(model, datamodule=small_datamodule(dataset_root))
