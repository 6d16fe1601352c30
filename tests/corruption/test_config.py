"""Corruption settings: bad values give one-line errors naming the setting."""

from __future__ import annotations

import pytest
import torch

from isstad_plugin.corruption import PixelCorruption


def test_bad_settings_and_generator_are_rejected():
    with pytest.raises(ValueError, match="unknown corruption setting 'mode'"):
        PixelCorruption(mode="blocks")
    with pytest.raises(ValueError, match="num_blocks"):
        PixelCorruption(num_blocks=(0, 10))
    with pytest.raises(ValueError, match="operations"):
        PixelCorruption(operations=("flip", "swirl"))
    with pytest.raises(ValueError, match="corrupt_prob"):
        PixelCorruption(corrupt_prob=1.5)
    with pytest.raises(TypeError, match="generator"):
        PixelCorruption()(torch.rand(1, 3, 8, 8), generator="seed")


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"num_blocks": [0, 5]}, "num_blocks must be integers"),
        ({"operations": ["swirl"]}, "operations must be a non-empty subset"),
        ({"corrupt_prob": 1.5}, "corrupt_prob"),
        ({"soft_prob": -0.1}, "soft_prob"),
    ],
)
def test_bad_corruption_option_is_one_line_naming_it(options, words):
    from tests.helpers import tiny_isstad

    with pytest.raises(ValueError) as error:
        tiny_isstad(**options)
    message = str(error.value)
    assert words in message and "\n" not in message


def test_a_misspelt_option_names_the_nearest_one():
    from tests.helpers import tiny_isstad

    with pytest.raises(TypeError, match=r"unknown option.*soft_prb: did you mean 'soft_prob'"):
        tiny_isstad(soft_prb=0.25)


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"shapes": ["star"]}, "shapes must be a non-empty subset"),
        ({"line_width": [0, 1]}, "line_width must be positive"),
        ({"block_size": [2, 1.5]}, "block_size must be"),
        ({"noise_std": [0.3, 0.1]}, "noise_std must be a pair"),
        ({"shape": ["line"]}, "unknown corruption setting 'shape': did you mean 'shapes'?"),
    ],
)
def test_bad_corruption_setting_is_one_line_naming_it(settings, words):
    with pytest.raises(ValueError) as error:
        PixelCorruption(**settings)
    message = str(error.value)
    assert words in message and "\n" not in message
