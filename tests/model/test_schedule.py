"""The stage schedule: lengths in epochs or steps, which stage an epoch is in, the switch, exact resume, bad budgets."""

from __future__ import annotations

import itertools

import pytest
import torch
from lightning.pytorch import Callback, seed_everything

from isstad_plugin.model.schedule import StageSchedule
from tests.helpers import engine_for, small_datamodule, tiny_isstad
from tests.model.test_lightning import EveryEpoch

STAGE1_STEPS = 3
STAGE2_STEPS = 5
MAX_STEPS = 8  # 16 training images, batch 8: 2 steps an epoch; stage 2 starts at epoch 2 (step 4), stops after 8


class StepLog(Callback):
    """Records (global step, stage, learning rate) before every training batch."""

    def __init__(self):
        self.rows = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.rows.append((trainer.global_step, pl_module.stage, trainer.optimizers[0].param_groups[0]["lr"]))


def _fit(root, dataset_root, ckpt_path=None, callbacks=()):
    seed_everything(0)
    model = tiny_isstad(
        stage1_steps=STAGE1_STEPS, stage2_steps=STAGE2_STEPS, stage1_augment=True, stage1_warmup_steps=1
    )
    keep = EveryEpoch(
        dirpath=root / "epochs", filename="{epoch}", save_top_k=-1, every_n_epochs=1, save_on_train_epoch_end=True
    )
    engine = engine_for(root, callbacks=[keep, *callbacks], **StageSchedule.trainer_arguments(0, 0, "steps"))
    datamodule = small_datamodule(dataset_root)
    engine.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    metrics = engine.test(model, datamodule=datamodule)[0]
    weights = {k: v.clone() for k, v in model.model.state_dict().items()}
    return metrics, sorted((root / "epochs").glob("epoch=*.ckpt")), weights, engine


@pytest.fixture(scope="module")
def step_run(tmp_path_factory, dataset_root):
    log = StepLog()
    result = _fit(tmp_path_factory.mktemp("steps"), dataset_root, callbacks=[log])
    return (*result, log)


def test_stage_switch_at_the_first_epoch_after_stage1_steps(step_run):
    metrics, _, _, engine, log = step_run
    assert engine.trainer.global_step == MAX_STEPS
    stages = {step: stage for step, stage, _ in log.rows}
    assert [stages[step] for step in range(MAX_STEPS)] == [1, 1, 1, 1, 2, 2, 2, 2]
    stage2_lr = [lr for _, stage, lr in log.rows if stage == 2]
    # one cosine over stage2_steps = 5 steps from stage2_lr (1e-3) to stage2_min_lr (1e-9), per step
    expected = [1e-9 + (1e-3 - 1e-9) * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * i / 5)).item()) for i in range(4)]
    assert stage2_lr == pytest.approx(expected, rel=1e-4)
    assert all(a > b for a, b in itertools.pairwise(stage2_lr)), "stage 2 decays per step"
    assert metrics["image_F1Score"] >= 0.0 and engine.model.post_processor.image_threshold.isfinite()


@pytest.mark.parametrize(("epoch", "stage"), [(0, 1), (2, 2)])
def test_step_budget_resumes_exactly(tmp_path, dataset_root, step_run, epoch, stage):
    metrics, checkpoints, weights, _, _ = step_run
    checkpoint = next(c for c in checkpoints if c.name == f"epoch={epoch}.ckpt")
    assert torch.load(checkpoint, weights_only=False)["isstad_stage"] == stage
    resumed, _, resumed_weights, _ = _fit(tmp_path, dataset_root, ckpt_path=checkpoint)
    for key, value in metrics.items():
        assert resumed[key] == pytest.approx(value, abs=1e-5), key
    for key, value in weights.items():
        assert torch.allclose(resumed_weights[key], value, atol=1e-6), f"{key} differs after resuming"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"max_epochs": 3}, "a step budget ends the fit itself after 8 steps: set --trainer.max_epochs -1"),
        ({"max_steps": 5}, "a step budget ends the fit itself after 8 steps"),
        ({"check_val_every_n_epoch": 2}, "set --trainer.check_val_every_n_epoch 1"),
    ],
)
def test_bad_step_budget_is_one_line(tmp_path, dataset_root, overrides, message):
    budget = {**StageSchedule.trainer_arguments(0, 0, "steps"), **overrides}
    model = tiny_isstad(stage1_steps=STAGE1_STEPS, stage2_steps=STAGE2_STEPS)
    with pytest.raises(ValueError, match=message) as error:
        engine_for(tmp_path, **budget).fit(model, datamodule=small_datamodule(dataset_root))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"stage1_steps": 0, "stage2_steps": 5}, "stage1_steps 0 skips stage 1: pass --model.stage1_checkpoint"),
        ({"stage1_steps": -1, "stage2_steps": 5}, "stage1_steps must be >= 0"),
        ({"stage1_steps": 5, "stage2_steps": 0}, "stage2_steps must be >= 1"),
        (
            {"stage1_steps": 5, "stage2_steps": 5, "stage1_checkpoint": "x.ckpt"},
            "stage1_checkpoint skips stage 1 but stage1_steps is 5: set --model.stage1_steps 0",
        ),
        ({"stage1_steps": 5, "stage2_steps": 5, "stage1_epochs": 2}, "stage1_steps/stage2_steps and stage1_epochs"),
        ({"stage1_steps": 5}, "a step budget for variant full needs stage2_steps"),
        ({"stage1_steps": 5, "stage2_steps": 5, "variant": "III"}, "variant III has no stage 1: unset stage1_steps"),
        ({"stage2_steps": 5, "variant": "I"}, "a step budget for variant I needs stage1_steps"),
    ],
)
def test_contradicting_step_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        tiny_isstad(**options)


def test_a_separate_validation_of_a_step_budget_model_learns_thresholds(tmp_path, dataset_root, step_run):
    _, checkpoints, _, _, _ = step_run
    checkpoint = next(c for c in checkpoints if c.name == "epoch=2.ckpt")  # stage 2, budget not yet spent
    state = torch.load(checkpoint, weights_only=False)["state_dict"]
    assert torch.isnan(state["post_processor._image_threshold"]), "no thresholds before the last epoch"
    model = tiny_isstad(stage1_steps=STAGE1_STEPS, stage2_steps=STAGE2_STEPS)
    engine_for(tmp_path).validate(model, datamodule=small_datamodule(dataset_root), ckpt_path=checkpoint)
    assert torch.isfinite(model.post_processor.image_threshold)


# ------------------------------------------------------------------------------------------------ the schedule object
def _schedule(**options):
    return tiny_isstad(**options).schedule


def test_the_schedule_answers_which_stage_an_epoch_is_in():
    epochs = _schedule(stage1_epochs=3)
    assert [epochs.stage1_ends(1, epoch, 0) for epoch in range(5)] == [False, False, False, True, True]
    assert epochs.lengths(10) == (3, 7, "epochs")
    steps = _schedule(stage1_steps=STAGE1_STEPS, stage2_steps=STAGE2_STEPS)
    ends = [steps.stage1_ends(1, epoch, 2 * epoch) for epoch in range(4)]  # 2 steps an epoch
    assert ends == [False, False, True, True]
    assert steps.lengths(None) == (STAGE1_STEPS, STAGE2_STEPS, "steps") and not steps.spent(7) and steps.spent(8)
    assert steps.stage1_ends(1, 1, 4) and not steps.stage1_ends(2, 2, 4) and not steps.stage1_ends(1, 1, 2)
    assert not _schedule(variant="I").stage1_ends(1, 100, 10**6)  # stage 1 alone
    assert _schedule(variant="III").first_stage == 2  # no stage 1


def test_the_isstad_commands_read_a_config_with_the_models_own_rule():
    """An unset ``stage1_epochs`` is the paper's 120 for the model and for ``isstad demo``/``benchmark`` alike."""
    from isstad_plugin.tools.run_config import RunConfig, stage_lengths

    config = RunConfig(model={"image_size": 64, "stage1_epochs": None}, trainer={"max_epochs": 320})
    assert stage_lengths(config) == (120, 200, "epochs") == tiny_isstad(stage1_epochs=None).schedule.lengths(320)
    stepped = RunConfig(model={"stage1_steps": 4, "stage2_steps": 6})
    assert stage_lengths(stepped) == (4, 6, "steps")
    assert StageSchedule.model_options(4, 6, "steps") == {"stage1_steps": 4, "stage2_steps": 6, "stage1_epochs": None}
    assert StageSchedule.trainer_arguments(3, 2, "epochs") == {"max_epochs": 5, "check_val_every_n_epoch": 5}
