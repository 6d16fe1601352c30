"""Geometry that follows the data: image_size auto, tiles, the image-guided pixel classifier head."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from isstad_plugin.data.geometry import auto_image_size, image_sizes, train_image_paths
from isstad_plugin.model.patching import overlap_unpatchify
from isstad_plugin.model.tiling import check_tile_size
from tests.helpers import tiny_isstad, tiny_model


def test_auto_size_keeps_the_median_aspect_within_the_budget():
    assert auto_image_size([(100, 256)] * 3, 8, 128 * 128) == (80, 200)  # a long, narrow crack image
    assert auto_image_size([(256, 218), (256, 200), (196, 256)], 8, 128 * 128) == (136, 120)
    height, width = auto_image_size([(300, 900)], 16, 224 * 224)
    assert height % 16 == 0 and width % 16 == 0 and height * width <= 224 * 224
    assert abs(width / height - 3) < 0.35


def test_auto_size_never_upsamples_small_images():
    assert auto_image_size([(48, 64)] * 4, 8, 128 * 128) == (48, 64)


def test_auto_size_reads_only_the_training_folder(tmp_path):
    train = tmp_path / "cat" / "train" / "good"
    train.mkdir(parents=True)
    for index in range(3):
        Image.new("RGB", (256, 100)).save(train / f"{index}.png")
    test = tmp_path / "cat" / "test" / "good"
    test.mkdir(parents=True)
    Image.new("RGB", (50, 500)).save(test / "other.png")
    from anomalib.data import MVTecAD

    paths = train_image_paths(MVTecAD(root=tmp_path, category="cat"))
    assert len(paths) == 3 and image_sizes(paths) == [(100, 256)] * 3


def test_auto_size_is_resolved_at_fit_and_stored_in_the_hyperparameters(tmp_path):
    train = tmp_path / "cat" / "train" / "good"
    train.mkdir(parents=True)
    for index in range(2):
        Image.new("RGB", (96, 32)).save(train / f"{index}.png")
    from anomalib.data import MVTecAD

    model = tiny_isstad(image_size="auto", auto_image_pixels=32 * 64)

    class Trainer:  # the part of a Lightning Trainer that the geometry reads
        datamodule = MVTecAD(root=tmp_path, category="cat")

    model._trainer = Trainer()  # type: ignore[assignment]
    model._resolve_image_size()
    assert model.model.image_size == (24, 80)
    assert model.hparams["image_size"] == (24, 80)
    resize = model.pre_processor.transform.transforms[0]
    assert list(resize.size) == [24, 80]


@pytest.mark.parametrize(
    ("options", "match"),
    [({"image_size": "wide"}, "image_size"), ({"image_size": [32, 32, 3]}, "image_size"),
     ({"tile_size": 64}, "tile_size"), ({"tile_stride": 16}, "tile_stride"),
     ({"image_size": "auto", "tile_size": 16}, "explicit image_size"), ({"auto_image_pixels": 10}, "auto_image_pixels"),
     ({"classifier_upsampling": "bilinear"}, "classifier_upsampling"),
     ({"classifier_upsampling": "overlap", "patch_size": 5, "image_size": 40}, "even patch_size")],
)  # fmt: skip
def test_bad_geometry_options_are_one_line_errors(options, match):
    with pytest.raises(ValueError, match=match):
        tiny_model(**options)


def test_tiled_maps_are_the_per_tile_maps_stitched_back():
    model = tiny_model(image_size=(32, 64), tile_size=(16, 32), smoothing_sigma=0.0).eval()
    images = torch.rand(2, 3, 32, 64)
    with torch.no_grad():
        error, probability = model._full_maps(images)
        tiles = model.tiler.tile(images)
        tile_error, tile_probability = model._error_and_probability(tiles)
        assert torch.equal(model.tiler.untile(tile_error), error)
        assert torch.equal(model.tiler.untile(tile_probability), probability)
        assert model(images).anomaly_map.shape == (2, 1, 32, 64)


def test_tile_round_trip_is_the_identity_on_maps():
    model = tiny_model(image_size=(48, 64), tile_size=16, tile_stride=8)
    maps = torch.rand(3, 1, 48, 64)
    assert torch.allclose(model.tiler.untile(model.tiler.tile(maps)), maps)


def test_a_tiler_that_does_not_fit_the_network_is_refused():
    from anomalib.data.utils.tiler import Tiler

    with pytest.raises(ValueError, match="tile_size"):
        check_tile_size(Tiler(tile_size=24, stride=24), (16, 16))


def test_overlapping_windows_that_are_constant_blend_bilinearly():
    values = torch.randn(2, 12, 3)  # a 3 x 4 grid, 3 channels, one value per token
    windows = values[:, :, None, :].expand(-1, -1, 8 * 8, -1).reshape(2, 12, -1)  # 2p x 2p windows, p = 4
    blended = overlap_unpatchify(windows, 4, (3, 4))
    grid = values.transpose(1, 2).reshape(2, 3, 3, 4)
    expected = torch.nn.functional.interpolate(grid, scale_factor=4, mode="bilinear", align_corners=False)
    assert torch.allclose(blended, expected, atol=1e-6)
    blocks = blended.unfold(2, 4, 4).unfold(3, 4, 4).flatten(-2)
    assert blocks.std(-1).mean() > 0.05  # not constant per patch, unlike the paper's head


def test_the_overlap_head_paints_pixels_between_patches_and_trains():
    torch.manual_seed(0)
    model = tiny_model(classifier_upsampling="overlap")
    patch = model.patch_size
    assert model.pixel_classifier_head.proj[0].out_features == (2 * patch) ** 2  # one sigmoid logit a pixel
    output = model(torch.rand(2, 3, 32, 32))
    assert output.level_logits.shape[-2:] == (32, 32)
    output.level_logits.sum().backward()
    assert model.pixel_classifier_head.proj[0].weight.grad is not None
