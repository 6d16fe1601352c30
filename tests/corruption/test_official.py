"""Official-code mode: whole-image transforms pasted through shapes, labelled with the mask."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from isstad_plugin.corruption import PixelCorruption
from isstad_plugin.corruption.official import OfficialConfig, apply_official
from tests.corruption.support import TOL, textures


@pytest.mark.parametrize(("shape", "dtype"), [((4, 3, 64, 80), torch.float32), ((3, 1, 40, 24), torch.bfloat16)])
def test_official_mode_shapes_and_mask_labels(shape, dtype):
    images = textures(*shape).to(dtype)
    corrupted, labels = PixelCorruption(mode="official", corrupt_prob=1.0)(images, generator=2)
    assert corrupted.shape == images.shape and corrupted.dtype == dtype
    assert labels.shape == (shape[0], 1, *shape[2:]) and labels.dtype == torch.float32
    assert set(labels.unique().tolist()) <= {0.0, 1.0}
    outside = ~labels.bool().expand_as(images)
    assert torch.equal(corrupted[outside], images[outside])
    assert labels.flatten(1).amax(1).all(), "every corrupted image has a non-empty mask"
    assert corrupted.min() >= 0 and corrupted.max() <= 1


def test_official_labels_are_the_mask_even_where_nothing_changed():
    images = torch.full((8, 3, 32, 32), 0.5)
    config = dataclasses.replace(OfficialConfig(), corrupt_prob=1.0)
    corrupted, labels = apply_official(images, config, torch.Generator().manual_seed(0))
    changed = (corrupted - images).abs().amax(1, keepdim=True) > TOL
    assert labels.sum() > changed.sum(), "flips and grayscale of a uniform image change nothing but are labelled"


def test_official_rate_is_two_thirds():
    _, labels = PixelCorruption(mode="official")(textures(900, 1, 16, 16), generator=4)
    assert abs(labels.flatten(1).amax(1).mean().item() - 2 / 3) < 0.06
