"""Soft, low-contrast regions: labels are the pixels moved beyond the threshold, coverage, grey images, defaults."""

from __future__ import annotations

import pytest
import torch

from isstad_plugin.corruption import PixelCorruption
from isstad_plugin.corruption.soft import region_weights, smooth_field
from tests.corruption.support import textures

SOFT_ONLY = {"num_blocks": (1, 1), "block_size": (1, 0.01), "operations": ("colour",), "colour_strength": (0.0, 0.0)}
"""Blocks that change nothing, so only the soft region moves pixels."""


def test_labels_are_the_pixels_moved_beyond_the_threshold():
    images = textures(16, 3, 48, 64)
    corruption = PixelCorruption(corrupt_prob=1.0, soft_prob=1.0, **SOFT_ONLY)
    corrupted, labels = corruption(images, generator=0)
    moved = (corrupted - images).abs().amax(dim=1, keepdim=True)
    assert torch.equal(labels.bool(), moved > corruption.config.soft_label_threshold)
    assert labels.any()


def test_soft_regions_are_off_by_default_and_the_paper_output_is_unchanged():
    images = textures(8, 3, 32, 32)
    paper, paper_labels = PixelCorruption()(images, generator=4)
    off, off_labels = PixelCorruption(soft_prob=0.0)(images, generator=4)
    assert torch.equal(paper, off) and torch.equal(paper_labels, off_labels)


def test_clean_images_stay_clean_with_soft_regions():
    images = textures(6, 3, 32, 32)
    corrupted, labels = PixelCorruption(corrupt_prob=0.0, soft_prob=1.0)(images, generator=1)
    assert torch.equal(corrupted, images) and not labels.any()


def test_region_covers_the_drawn_share_and_fades_smoothly():
    field = smooth_field(64, 64, 96, torch.Generator().manual_seed(0), torch.device("cpu"))
    coverage = torch.full((64,), 0.4)
    alpha = region_weights(field, coverage, torch.full((64,), 0.5))
    share = (alpha > 0.5).float().flatten(1).mean(1)
    assert (share - 0.4).abs().max() < 0.02
    assert ((alpha > 0.05) & (alpha < 0.95)).any()  # feathered, not a hard edge


def test_grey_images_get_grey_changes_only():
    grey = textures(12, 1, 40, 40).expand(12, 3, 40, 40).contiguous()
    corrupted, _ = PixelCorruption(corrupt_prob=1.0, soft_prob=1.0)(grey, generator=2)
    assert (corrupted.amax(1) - corrupted.amin(1)).max() < 1e-6


def test_low_contrast_changes_are_mostly_small_and_large():
    images = textures(64, 3, 64, 64)
    corrupted, labels = PixelCorruption(corrupt_prob=1.0, soft_prob=1.0, **SOFT_ONLY)(images, generator=3)
    moved = (corrupted - images).abs().amax(1)[labels[:, 0].bool()]
    assert moved.median() < 0.15  # low contrast
    assert labels.flatten(1).mean(1).max() > 0.25  # some regions cover a large share


@pytest.mark.parametrize(
    ("settings", "name"),
    [({"soft_prob": 1.5}, "soft_prob"), ({"soft_coverage": (0.0, 0.5)}, "soft_coverage"),
     ({"soft_label_threshold": 1.0}, "soft_label_threshold"), ({"soft_strength": (0.3, 0.1)}, "soft_strength")],
)  # fmt: skip
def test_bad_soft_settings_name_the_setting(settings, name):
    with pytest.raises(ValueError, match=name):
        PixelCorruption(**settings)
