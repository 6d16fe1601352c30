"""The typed configuration: Isstad's options, signature and docstring come from the dataclasses of model.config."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from isstad_plugin import AnomalyFusion, Isstad, IsstadModel, NetworkConfig
from isstad_plugin.model.config import TrainingConfig
from isstad_plugin.model.options import CONFIGS, IsstadConfig, changed_network_options, option_defaults
from tests.helpers import TINY_NETWORK

PROCESSORS = ("config", "pre_processor", "post_processor", "evaluator", "visualizer")


def test_signature_lists_every_field_with_its_default_and_type():
    parameters = inspect.signature(Isstad).parameters
    fields = [f for group in CONFIGS for f in dataclasses.fields(group)]
    assert list(parameters) == [f.name for f in fields] + list(PROCESSORS)
    for f in fields:
        assert parameters[f.name].default == option_defaults()[f.name]
        assert parameters[f.name].annotation is not inspect.Parameter.empty
        assert parameters[f.name].kind is inspect.Parameter.KEYWORD_ONLY


def test_every_option_has_a_doc_line_in_isstads_docstring():
    doc = Isstad.__doc__ or ""
    for name in option_defaults():
        line = next((text for text in doc.splitlines() if text.strip().startswith(f"{name}:")), "")
        assert len(line.split(":", 1)[1].strip()) > 10, f"{name} has no description in its group's Attributes"


def test_hyperparameters_are_every_option_and_rebuild_the_same_model():
    model = Isstad(image_size=64, **TINY_NETWORK, stage1_steps=10, stage2_steps=20, visualizer=False)
    assert set(model.hparams) == set(option_defaults())
    assert IsstadConfig.from_options(model.hparams) == model.config
    assert model.hparams["decoder_dim"] == TINY_NETWORK["decoder_dim"] and model.hparams["stage1_epochs"] is None


def test_a_config_object_gives_the_same_model_and_flat_options_override_it():
    network = NetworkConfig(image_size=64, **TINY_NETWORK)
    config = IsstadConfig(network=network, training=TrainingConfig(stage1_steps=10, stage2_steps=20))
    grouped = Isstad(config=config, visualizer=False)
    flat = Isstad(image_size=64, **TINY_NETWORK, stage1_steps=10, stage2_steps=20, visualizer=False)
    assert grouped.config == flat.config == config and dict(grouped.hparams) == dict(flat.hparams)
    overridden = Isstad(config=config, stage2_steps=5, visualizer=False)
    assert overridden.config.training.stage2_steps == 5 and overridden.config.network == network


def test_fusion_options_are_checked_once_for_isstad_and_anomaly_fusion():
    with pytest.raises(ValueError, match="topk_fraction must be in"):
        Isstad(**TINY_NETWORK, topk_fraction=0)
    with pytest.raises(ValueError, match="topk_fraction must be in"):
        AnomalyFusion(topk_fraction=0)


def test_unknown_option_is_named():
    with pytest.raises(TypeError, match="imge_size"):
        Isstad(imge_size=64)


def test_removed_options_load_at_their_old_default_and_refuse_another_value():
    """Checkpoints written before store the removed options; their old default is what the package does now."""
    model = Isstad(**TINY_NETWORK, fusion_error_weight=0.5, load_decoder_weights=True)
    assert "fusion_error_weight" not in model.hparams
    with pytest.raises(ValueError, match="option fusion_error_weight was removed"):
        Isstad(**TINY_NETWORK, fusion_error_weight=0.25)


def test_network_options_decide_checkpoint_compatibility():
    saved = NetworkConfig(image_size=64, **TINY_NETWORK)
    assert changed_network_options(saved, dataclasses.replace(saved)) == []
    assert changed_network_options(saved, dataclasses.replace(saved, image_size=96, decoder_depth=3)) == [
        "image_size",
        "decoder_depth",
    ]


def test_isstad_model_takes_a_network_config_or_its_fields():
    config = NetworkConfig(image_size=32, **TINY_NETWORK)
    by_config, by_fields = IsstadModel(config), IsstadModel(image_size=32, **TINY_NETWORK)
    assert by_config.config == by_fields.config == config
    assert [p.shape for p in by_config.parameters()] == [p.shape for p in by_fields.parameters()]


def test_rectangular_input_size_reaches_the_network_and_the_pre_processor():
    model = Isstad(image_size=[32, 48], **TINY_NETWORK, visualizer=False)
    assert model.model.image_size == (32, 48) and model.config.network.image_size == (32, 48)
    resize = model.pre_processor.transform.transforms[0]
    assert tuple(resize.size) == (32, 48)
