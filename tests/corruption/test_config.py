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
        ({"shape": ["line"]}, "unknown corruption setting 'shape': did you mean 'shapes'?"),
    ],
)
def test_bad_corruption_setting_is_one_line_naming_it(settings, words):
    from tests.helpers import tiny_isstad

    with pytest.raises(ValueError) as error:
        tiny_isstad(corruption_settings=settings)
    message = str(error.value)
    assert message.startswith("model.corruption_settings: ") and words in message and "\n" not in message
