"""PixelCorruption as a module: rates, reproducibility, dtypes, input checks."""

from __future__ import annotations

import pytest
import torch

from isstad_plugin.corruption import PixelCorruption
from tests.corruption.support import assert_labels_match_change, textures


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


def test_module_has_no_parameters():
    assert list(PixelCorruption().parameters()) == []
