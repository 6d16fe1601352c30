"""Tests of the stage-2 pixel-level corruption (isstad_plugin.corruption)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from isstad_plugin.corruption import PixelCorruption
from isstad_plugin.corruption.official import OfficialConfig, apply_official
from isstad_plugin.corruption.paper import (
    DEFAULT_CHANGE_TOLERANCE,
    LEGACY_CONFIG,
    PaperConfig,
    apply_vectorised,
    inside_shape,
    last_block_index,
    sample_params,
)
from isstad_plugin.corruption.reference import apply_loop

TOL = DEFAULT_CHANGE_TOLERANCE


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def textures(batch: int, channels: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Images with structure (gradients + checkerboard + noise), so that flips and blurs change pixels."""
    g = torch.Generator().manual_seed(seed)
    y = torch.linspace(0, 1, height).view(1, 1, -1, 1)
    x = torch.linspace(0, 1, width).view(1, 1, 1, -1)
    checker = ((torch.arange(height).view(-1, 1) // 4 + torch.arange(width).view(1, -1) // 4) % 2).float()
    base = 0.4 * y + 0.3 * x + 0.2 * checker
    noise = 0.1 * torch.rand((batch, channels, height, width), generator=g)
    return (base + noise).clamp(0, 1).expand(batch, channels, height, width).contiguous()


def block_masks(params, height: int, width: int):
    """Yield ``(b, k, mask)``: each valid block's (H, W) coverage, painted pixel by pixel from its box and shape."""
    y, x = torch.meshgrid(torch.arange(height).float(), torch.arange(width).float(), indexing="ij")
    for b in range(params.top.shape[0]):
        for k in range(int(params.num_blocks[b])):
            t, lft = int(params.top[b, k]), int(params.left[b, k])
            box = (y >= t) & (y < t + int(params.height[b, k])) & (x >= lft) & (x < lft + int(params.width[b, k]))
            yield b, k, box & inside_shape(y, x, params.shape[b, k], params.shape_geometry[b, k])


def covered_by_valid_blocks(params, height: int, width: int) -> torch.Tensor:
    """(B, 1, H, W) union of the valid blocks, by direct painting (independent of the implementations)."""
    union = torch.zeros((params.top.shape[0], 1, height, width), dtype=torch.bool)
    for b, _, mask in block_masks(params, height, width):
        union[b, 0] |= mask
    return union


def assert_labels_match_change(images, corrupted, labels, tol=TOL):
    change = (corrupted.float() - images.float()).abs().amax(dim=1, keepdim=True)
    assert labels.dtype == torch.float32
    assert set(labels.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(labels.bool(), change > tol)
    unchanged = ~labels.bool().expand_as(images)
    assert torch.equal(corrupted[unchanged], images[unchanged])


# ----------------------------------------------------------------------------------------------------------------------
# Paper mode
# ----------------------------------------------------------------------------------------------------------------------


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
    config = dataclasses.replace(LEGACY_CONFIG, operations=("flip", "colour"))
    params = sample_params(6000, 1, 16, 12, config, torch.Generator().manual_seed(0))
    corrupted = params.num_blocks > 0
    assert abs(corrupted.float().mean().item() - 5 / 6) < 0.03
    assert params.num_blocks[corrupted].min() >= 1 and params.num_blocks.max() <= 100
    assert abs(params.num_blocks[corrupted].float().mean().item() - 50.5) < 2.0

    params = sample_params(8, 3, 224, 160, LEGACY_CONFIG, torch.Generator().manual_seed(1))
    assert params.height.min() >= 4 and params.height.max() <= 56
    assert params.width.min() >= 4 and params.width.max() <= 40
    assert (params.top + params.height).max() <= 224 and (params.left + params.width).max() <= 160
    valid = torch.arange(100) < params.num_blocks.unsqueeze(1)
    ops_per_block = params.ops[valid].sum(-1)
    assert ops_per_block.min() >= 1 and ops_per_block.max() <= 3


def test_corrupted_image_fraction_through_module():
    corruption = PixelCorruption()
    _, labels = corruption(textures(600, 3, 16, 16), generator=3)
    fraction = labels.flatten(1).amax(1).mean().item()
    assert abs(fraction - 5 / 6) < 0.06


def test_uncorrupted_images_are_returned_unchanged():
    images = textures(4, 3, 32, 32)
    corrupted, labels = PixelCorruption(corrupt_prob=0.0)(images, generator=0)
    assert torch.equal(corrupted, images) and not labels.any()
    _, labels = PixelCorruption(corrupt_prob=1.0)(images, generator=0)
    assert labels.flatten(1).amax(1).all()


def test_flip_of_uniform_image_is_not_labelled_but_colour_change_is():
    images = torch.tensor([0.3, 0.5, 0.7]).view(1, 3, 1, 1).expand(2, 3, 32, 32).contiguous()
    corrupted, labels = PixelCorruption(corrupt_prob=1.0, operations=("flip",))(images, generator=0)
    assert torch.equal(corrupted, images) and not labels.any()
    corrupted, labels = PixelCorruption(corrupt_prob=1.0, operations=("colour",))(images, generator=0)
    assert labels.flatten(1).amax(1).all()
    assert_labels_match_change(images, corrupted, labels)


def test_same_seed_same_output_and_different_seed_differs():
    images = textures(3, 3, 40, 40)
    corruption = PixelCorruption(corrupt_prob=1.0)
    first, first_labels = corruption(images, generator=torch.Generator().manual_seed(5))
    second, second_labels = corruption(images, generator=torch.Generator().manual_seed(5))
    assert torch.equal(first, second) and torch.equal(first_labels, second_labels)
    assert torch.equal(corruption(images, generator=5)[0], first)
    assert not torch.equal(corruption(images, generator=6)[0], first)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("channels", [1, 3])
def test_dtype_shape_range_and_labels(dtype, channels):
    images = textures(3, channels, 24, 40).to(dtype)
    corrupted, labels = PixelCorruption(corrupt_prob=1.0)(images, generator=1)
    assert corrupted.shape == images.shape and corrupted.dtype == dtype and corrupted.device == images.device
    assert labels.shape == (3, 1, 24, 40)
    assert corrupted.min() >= 0 and corrupted.max() <= 1
    assert_labels_match_change(images, corrupted, labels)


def test_loop_implementation_through_module_matches():
    images = textures(2, 3, 32, 24)
    fast = PixelCorruption()(images, generator=9)
    slow = PixelCorruption(implementation="loop")(images, generator=9)
    torch.testing.assert_close(fast[0], slow[0], atol=1e-5, rtol=0)


def test_inputs_slightly_out_of_range_are_clamped():
    images = textures(2, 3, 16, 16)
    images[0, 0, 0, 0], images[1, 0, 0, 0] = -5e-4, 1 + 5e-4
    corrupted, _ = PixelCorruption()(images, generator=0)
    assert corrupted.min() >= 0 and corrupted.max() <= 1


@pytest.mark.parametrize(
    ("bad", "error", "words"),
    [
        (torch.rand(3, 16, 16), ValueError, "(B, C, H, W)"),
        ((torch.rand(2, 3, 8, 8) * 255).to(torch.uint8), TypeError, "float"),
        (torch.rand(2, 4, 8, 8), ValueError, "1 or 3 channels"),
        (torch.rand(2, 3, 8, 8) * 2 - 1, ValueError, "[0, 1]"),
        (torch.full((1, 3, 4, 4), float("nan")), ValueError, "NaN"),
        ([[0.5]], TypeError, "torch.Tensor"),
    ],
)
def test_bad_input_gives_clear_error(bad, error, words):
    with pytest.raises(error, match=None) as info:
        PixelCorruption()(bad)
    message = str(info.value)
    assert words in message and "\n" not in message


def test_bad_settings_and_generator_are_rejected():
    with pytest.raises(ValueError, match="mode"):
        PixelCorruption(mode="blocks")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_blocks"):
        PixelCorruption(num_blocks=(0, 10))
    with pytest.raises(ValueError, match="operations"):
        PixelCorruption(operations=("flip", "swirl"))
    with pytest.raises(ValueError, match="corrupt_prob"):
        PixelCorruption(corrupt_prob=1.5)
    with pytest.raises(TypeError, match="generator"):
        PixelCorruption()(torch.rand(1, 3, 8, 8), generator="seed")


def test_module_has_no_parameters():
    assert list(PixelCorruption().parameters()) == []
    assert list(PixelCorruption(mode="official").parameters()) == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda_and_matches_loop():
    images = textures(3, 3, 48, 64).cuda()
    params = sample_params(3, 3, 48, 64, PaperConfig(), torch.Generator("cuda").manual_seed(0), "cuda")
    fast, labels = apply_vectorised(images, params)
    assert fast.device.type == "cuda" and labels.device.type == "cuda"
    torch.testing.assert_close(fast, apply_loop(images, params)[0], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="generator"):
        PixelCorruption()(images, generator=torch.Generator())


# ----------------------------------------------------------------------------------------------------------------------
# Official mode
# ----------------------------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------------------------
# Label statistics like real defects (docs/corruption.md, "Label coverage")
# ----------------------------------------------------------------------------------------------------------------------


def smooth_grey(batch: int, side: int, seed: int = 0) -> torch.Tensor:
    """Grey (equal-channel) RGB images with texture at several scales, so every operation changes pixels."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.nn.functional.interpolate(torch.rand((batch, 1, side // 8, side // 8), generator=g), size=side)
    return (0.6 * coarse + 0.3 * torch.rand((batch, 1, side, side), generator=g)).expand(-1, 3, -1, -1).contiguous()


def test_default_coverage_is_within_the_documented_ranges():
    _, labels = PixelCorruption(corrupt_prob=1.0)(smooth_grey(256, 128), generator=0)
    coverage = labels.flatten(1).mean(1)
    assert (coverage > 0).float().mean() > 0.95, "almost every corrupted image has labelled pixels"
    assert 0.03 <= coverage.mean() <= 0.12, "docs/corruption.md: mean 3-12 % of a corrupted image"
    assert 0.01 <= coverage.median() <= 0.06, "docs/corruption.md: median 1-6 %"
    _, legacy = PixelCorruption(**dataclasses.asdict(dataclasses.replace(LEGACY_CONFIG, corrupt_prob=1.0)))(
        smooth_grey(64, 128), generator=0
    )
    assert legacy.mean() > 0.3, "the legacy statistics label about half of an image"


def test_border_pixels_are_labelled_as_often_as_the_centre():
    _, labels = PixelCorruption(corrupt_prob=1.0, num_blocks=(20, 40))(smooth_grey(400, 64), generator=1)
    rate = labels.mean(dim=(0, 1))
    border = torch.cat(
        [rate[:4].reshape(-1), rate[-4:].reshape(-1), rate[4:-4, :4].reshape(-1), rate[4:-4, -4:].reshape(-1)]
    )
    centre = rate[16:-16, 16:-16]
    assert 0.85 <= border.mean() / centre.mean() <= 1.15
    _, legacy = PixelCorruption(**dataclasses.asdict(dataclasses.replace(LEGACY_CONFIG, corrupt_prob=1.0)))(
        smooth_grey(200, 64), generator=1
    )
    legacy_rate = legacy.mean(dim=(0, 1))
    assert legacy_rate[0].mean() < 0.5 * legacy_rate[32].mean(), "the legacy placement starves the border"


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


def test_line_shapes_are_thin():
    images = smooth_grey(64, 128, seed=7)
    config = {"corrupt_prob": 1.0, "num_blocks": (1, 1), "block_size": (24, 0.25), "size_distribution": "uniform"}
    _, lines = PixelCorruption(shapes=("line",), line_width=(1.0, 2.0), **config)(images, generator=8)
    _, boxes = PixelCorruption(shapes=("rectangle",), **config)(images, generator=8)
    assert lines.sum() < 0.25 * boxes.sum()


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"num_blocks": [0, 5]}, "num_blocks must be integers"),
        ({"shapes": ["star"]}, "shapes must be a non-empty subset"),
        ({"placement": "outside"}, "placement must be one of"),
        ({"count_distribution": "normal"}, "count_distribution must be one of"),
        ({"size_distribution": "normal"}, "size_distribution must be one of"),
        ({"line_width": [0, 1]}, "line_width must be positive"),
        ({"block_size": [2, 1.5]}, "block_size must be"),
        ({"noise_std": [0.3, 0.1]}, "noise_std must be a pair"),
        ({"colour": 1}, "unknown paper-mode corruption setting(s) ['colour']"),
    ],
)
def test_bad_corruption_setting_is_one_line_naming_it(settings, words):
    from tests.helpers import tiny_isstad

    with pytest.raises(ValueError) as error:
        tiny_isstad(corruption_settings=settings)
    message = str(error.value)
    assert message.startswith("model.corruption_settings: ") and words in message and "\n" not in message
