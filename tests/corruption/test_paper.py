"""Paper mode: sampled parameters, the vectorised renderer and the loop oracle."""

from __future__ import annotations

import pytest
import torch

from isstad_plugin.corruption import PixelCorruption
from isstad_plugin.corruption.config import PaperConfig
from isstad_plugin.corruption.params import sample_params
from isstad_plugin.corruption.render import apply_vectorised
from isstad_plugin.corruption.winner import last_block_index
from tests.corruption.reference import apply_loop
from tests.corruption.support import (
    TOL,
    assert_labels_match_change,
    block_masks,
    covered_by_valid_blocks,
    smooth_grey,
    textures,
)


@pytest.mark.parametrize(("shape", "seed"), [((4, 3, 64, 80), 0), ((3, 1, 33, 47), 1), ((2, 3, 96, 96), 2)])
def test_labels_are_exactly_the_changed_pixels(shape, seed):
    batch, channels, height, width = shape
    images = textures(batch, channels, height, width, seed=seed)
    params = sample_params(
        batch, channels, height, width, PaperConfig(corrupt_prob=1.0), torch.Generator().manual_seed(seed)
    )
    corrupted, labels = apply_vectorised(images, params)
    assert_labels_match_change(images, corrupted, labels)
    union = covered_by_valid_blocks(params, height, width)
    assert not labels.bool()[~union].any(), "a pixel outside every block is labelled"
    assert labels.flatten(1).amax(1).all(), "every corrupted image should have changed pixels"


@pytest.mark.parametrize(
    ("shape", "seed"), [((4, 3, 64, 80), 3), ((3, 1, 33, 47), 4), ((2, 3, 40, 24), 5), ((2, 3, 9, 7), 6)]
)
def test_vectorised_equals_loop_oracle(shape, seed):
    batch, channels, height, width = shape
    images = textures(batch, channels, height, width, seed=seed)
    params = sample_params(
        batch, channels, height, width, PaperConfig(corrupt_prob=0.9), torch.Generator().manual_seed(seed)
    )
    fast, fast_labels = apply_vectorised(images, params)
    slow, slow_labels = apply_loop(images, params)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=0)
    # Labels may only differ where the change sits within float rounding of the tolerance.
    change = (slow - images).abs().amax(dim=1, keepdim=True)
    differ = fast_labels != slow_labels
    assert not differ[(change - TOL).abs() > 1e-5].any()


def test_oracle_sees_every_operation_and_overlaps():
    shape = (6, 3, 48, 48)
    params = sample_params(*shape, PaperConfig(corrupt_prob=1.0), torch.Generator().manual_seed(11))
    valid = torch.arange(params.top.shape[1]) < params.num_blocks.unsqueeze(1)
    assert params.ops[valid].any(dim=0).all(), "some operation kind was never drawn; the equality test is weaker"
    assert (params.ops[valid].sum(-1) >= 2).any(), "no block combines operations"
    assert (params.geometry[valid].abs() % 1 > 0).any(), "no small-angle rotation drawn"
    images = textures(*shape, seed=11)
    torch.testing.assert_close(apply_vectorised(images, params)[0], apply_loop(images, params)[0], atol=1e-5, rtol=0)


def test_last_covering_block_wins():
    params = sample_params(3, 3, 30, 20, PaperConfig(corrupt_prob=1.0), torch.Generator().manual_seed(7))
    expected = torch.full((3, 30, 20), -1, dtype=torch.int32)
    k_max = params.top.shape[1]
    assert (params.shape != 0).any(), "no shaped block drawn; the test is weaker"
    for b, k, mask in block_masks(params, 30, 20):
        expected[b][mask] = b * k_max + k
    assert torch.equal(last_block_index(params, 30, 20).view(3, 30, 20), expected)


def test_corruption_rate_and_block_ranges():
    config = PaperConfig(operations=("flip", "colour"))
    params = sample_params(6000, 1, 16, 12, config, torch.Generator().manual_seed(0))
    corrupted = params.num_blocks > 0
    assert abs(corrupted.float().mean().item() - 5 / 6) < 0.03
    assert params.num_blocks[corrupted].min() >= 1 and params.num_blocks.max() <= 100
    counts = params.num_blocks[corrupted].float()
    assert abs(counts.median().item() - 10) <= 1 and abs(counts.mean().item() - 21.5) < 1.5, "log-uniform counts"

    params = sample_params(8, 3, 224, 160, PaperConfig(), torch.Generator().manual_seed(1))
    assert params.height.min() >= 1 and params.height.max() <= 56
    assert params.width.min() >= 1 and params.width.max() <= 40
    assert params.top.min() >= 0 and params.left.min() >= 0, "straddling boxes are clipped to the image"
    assert (params.top + params.height).max() <= 224 and (params.left + params.width).max() <= 160
    valid = torch.arange(100) < params.num_blocks.unsqueeze(1)
    ops_per_block = params.ops[valid].sum(-1)
    assert ops_per_block.min() >= 1 and ops_per_block.max() <= 3


@pytest.mark.parametrize("shapes", [("line",), ("ellipse", "blob"), ("rectangle", "ellipse", "line", "blob")])
def test_vectorised_equals_loop_with_shapes_and_grey(shapes):
    images = smooth_grey(4, 40, seed=5)
    config = PaperConfig(corrupt_prob=1.0, shapes=shapes)
    params = sample_params(
        4, 3, 40, 40, config, torch.Generator().manual_seed(6), grey=torch.tensor([1, 0, 1, 0]).bool()
    )
    fast, fast_labels = apply_vectorised(images, params)
    slow, _slow_labels = apply_loop(images, params)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=0)
    assert_labels_match_change(images, fast, fast_labels)
    assert not fast_labels.bool()[~covered_by_valid_blocks(params, 40, 40)].any()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda_and_matches_loop():
    images = textures(3, 3, 48, 64).cuda()
    params = sample_params(3, 3, 48, 64, PaperConfig(), torch.Generator("cuda").manual_seed(0), "cuda")
    fast, labels = apply_vectorised(images, params)
    assert fast.device.type == "cuda" and labels.device.type == "cuda"
    torch.testing.assert_close(fast, apply_loop(images, params)[0], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="generator"):
        PixelCorruption()(images, generator=torch.Generator())
