"""Large images in tiles: anomalib's ``Tiler`` cuts the whole image into network-sized tiles and stitches E, P back.

With ``tile_size`` set, ``image_size`` is the size the pre-processor gives the whole image and ``tile_size`` the
network's input. :class:`~isstad_plugin.IsstadModel` follows anomalib's tiling convention (a ``tiler`` attribute,
as PaDiM and PatchCore have, which anomalib's ``TilerConfigurationCallback`` may also set): at inference it tiles the
input, computes E and P per tile, stitches them with ``Tiler.untile`` and fuses the full-size maps, so S and the image
score come from the whole image. Training draws a random subset of the tiles (:func:`training_tiles`).
"""

from __future__ import annotations

import torch
from anomalib.data.utils.tiler import Tiler

from isstad_plugin.model.config import NetworkConfig


def tiler_for(config: NetworkConfig) -> Tiler | None:
    """The ``Tiler`` of ``config`` (``tile_size`` and ``tile_stride``), or ``None`` without tiling."""
    tile = config.tile_hw
    if tile is None:
        return None
    return Tiler(tile_size=tile, stride=config.tile_stride or tile)


def check_tile_size(tiler: Tiler, network_size: tuple[int, int]) -> None:
    """Refuse a tiler (e.g. set by anomalib's ``TilerConfigurationCallback``) whose tiles are not the network's input.

    Raises:
        ValueError: In one line naming both sizes.
    """
    tile = (tiler.tile_size_h, tiler.tile_size_w)
    if tile != tuple(network_size):
        msg = (
            f"tiles of {list(tile)} px do not fit the network's input of {list(network_size)} px: set "
            "--model.tile_size to the tile size (and --model.image_size to the whole image's)"
        )
        raise ValueError(msg)


def training_tiles(tiler: Tiler, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random ``len(images)`` of the tiles of ``images``, so a training step costs the same with tiling as without."""
    tiles = tiler.tile(images)
    keep = torch.randperm(tiles.shape[0], generator=generator, device=tiles.device)[: images.shape[0]]
    return tiles[keep]
