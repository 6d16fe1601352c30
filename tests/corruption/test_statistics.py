"""Label statistics like real defects (docs/corruption.md, "Label coverage")."""

from __future__ import annotations

import torch

from isstad_plugin.corruption import PixelCorruption
from tests.corruption.support import smooth_grey


def test_default_coverage_is_within_the_documented_ranges():
    _, labels = PixelCorruption(corrupt_prob=1.0)(smooth_grey(256, 128), generator=0)
    coverage = labels.flatten(1).mean(1)
    assert (coverage > 0).float().mean() > 0.95, "almost every corrupted image has labelled pixels"
    assert 0.03 <= coverage.mean() <= 0.12, "docs/corruption.md: mean 3-12 % of a corrupted image"
    assert 0.01 <= coverage.median() <= 0.06, "docs/corruption.md: median 1-6 %"


def test_border_pixels_are_labelled_as_often_as_the_centre():
    _, labels = PixelCorruption(corrupt_prob=1.0, num_blocks=(20, 40))(smooth_grey(400, 64), generator=1)
    rate = labels.mean(dim=(0, 1))
    border = torch.cat(
        [rate[:4].reshape(-1), rate[-4:].reshape(-1), rate[4:-4, :4].reshape(-1), rate[4:-4, -4:].reshape(-1)]
    )
    centre = rate[16:-16, 16:-16]
    assert 0.85 <= border.mean() / centre.mean() <= 1.15


def test_grey_inputs_stay_grey_and_colour_inputs_still_get_colour():
    grey = smooth_grey(64, 48, seed=2)
    corrupted, labels = PixelCorruption(corrupt_prob=1.0)(grey, generator=3)
    assert labels.any()
    assert (corrupted.amax(1) - corrupted.amin(1)).max() <= 2e-3, "a grey image was tinted"
    colour = torch.rand((64, 3, 48, 48), generator=torch.Generator().manual_seed(4))
    corrupted, labels = PixelCorruption(corrupt_prob=1.0, operations=("colour",))(colour, generator=3)
    assert labels.any()
    kept = PixelCorruption(corrupt_prob=1.0, preserve_grey=False)(grey, generator=3)[0]
    assert (kept.amax(1) - kept.amin(1)).max() > 0.05, "preserve_grey=False must allow colour on grey images"


def test_line_shapes_are_thin():
    images = smooth_grey(64, 128, seed=7)
    config = {"corrupt_prob": 1.0, "num_blocks": (1, 1), "block_size": (24, 0.25)}
    _, lines = PixelCorruption(shapes=("line",), line_width=(1.0, 2.0), **config)(images, generator=8)
    _, boxes = PixelCorruption(shapes=("rectangle",), **config)(images, generator=8)
    assert lines.sum() < 0.25 * boxes.sum()


def test_soft_regions_of_the_cpu_configs_keep_coverage_in_the_documented_range():
    _, labels = PixelCorruption(corrupt_prob=1.0, soft_prob=0.5)(smooth_grey(256, 128), generator=0)
    coverage = labels.flatten(1).mean(1)
    assert 0.06 <= coverage.mean() <= 0.3, "docs/corruption.md: mean 6-30 % of a corrupted image with soft regions"
    assert 0.02 <= coverage.median() <= 0.25, "docs/corruption.md: median 2-25 %"
    rate = labels.mean(dim=(0, 1))
    border = torch.cat([rate[:4].reshape(-1), rate[-4:].reshape(-1)])
    assert 0.8 <= border.mean() / rate[32:-32, 32:-32].mean() <= 1.25, "soft regions reach the border too"
