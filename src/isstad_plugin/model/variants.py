"""The paper's ablation models I-VIII and the full model (section 4.3, Table 3) as data.

A :class:`Variant` fixes which training stages run, whether stage-2 inputs are corrupted, which losses are active and
which map scores an image. The option groups (corruption, loss weights, fusion) and the stage schedule are built from
the row that ``variant="VII"`` names (:mod:`~isstad_plugin.model.config`, :mod:`~isstad_plugin.model.schedule`); the
rest of the package asks those built parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from isstad_plugin.model.fusion import MapSource


@dataclass(frozen=True)
class Variant:
    """One row of the paper's Table 3.

    Attributes:
        name: ``"I"`` ... ``"VIII"`` or ``"full"``.
        summary: One line of what the model is.
        pretrain: Stage 1 (MAE on normal images) runs first; stage 2 then keeps the encoder frozen.
        finetune: A second stage runs (all models but I). Without ``pretrain`` it trains the whole network.
        corrupt: Stage-2 inputs go through the pixel-level corruption (data augmentation column of Table 3).
        reconstruction_loss: The reconstruction head is trained in the second stage (MSE + SSIM).
        classification_loss: The pixel classifier head is trained (cross-entropy).
        map_source: What scores a pixel: ``"reconstruction"`` (E), ``"classification"`` (P) or ``"fusion"`` (S).
        masked_inference: Test images are 75 % masked and the reconstruction error of masked patches scores them.
    """

    name: str
    summary: str
    pretrain: bool
    finetune: bool
    corrupt: bool
    reconstruction_loss: bool
    classification_loss: bool
    map_source: MapSource
    masked_inference: bool = False


TABLE_3 = """
name  pretrain finetune corrupt reconstruction_loss classification_loss map_source     masked_inference summary
I     yes      no       no      no                  no                  reconstruction yes              MAE as is: masked training, 75 % masked test input, reconstruction error
II    no       yes      no      yes                 no                  reconstruction no               plain autoencoder: full image in and out, reconstruction error
III   no       yes      yes     yes                 no                  reconstruction no               denoising autoencoder: corrupted input, clean target, reconstruction error
IV    no       yes      yes     no                  yes                 classification no               pixel classifier only: corrupted input, pixel probability
V     no       yes      yes     yes                 yes                 fusion         no               fusion of III and IV without stage-1 pre-training
VI    yes      yes      no      yes                 no                  reconstruction no               stage 1 + plain autoencoder
VII   yes      yes      yes     yes                 no                  reconstruction no               stage 1 + denoising autoencoder (ISSTAD without the classification loss)
VIII  yes      yes      yes     no                  yes                 classification no               stage 1 + pixel classifier (ISSTAD without the reconstruction loss)
full  yes      yes      yes     yes                 yes                 fusion         no               ISSTAD: stage 1 + denoising reconstruction and pixel classification, fused S = E x P
"""  # noqa: E501
"""The paper's Table 3 (and the full model), one row per model; the columns are :class:`Variant`'s fields."""


def _row(line: str) -> Variant:
    """One row of :data:`TABLE_3` as a :class:`Variant`."""
    name, pretrain, finetune, corrupt, reconstruction, classification, source, masked, summary = line.split(None, 8)
    yes = {"yes": True, "no": False}
    return Variant(name, summary, yes[pretrain], yes[finetune], yes[corrupt], yes[reconstruction],
                   yes[classification], cast(MapSource, source), yes[masked])  # fmt: skip


VARIANTS: dict[str, Variant] = {v.name: v for v in map(_row, TABLE_3.strip().splitlines()[1:])}
"""Every selectable variant by name."""


def get_variant(name: str) -> Variant:
    """Look a variant up by name (``"full"``, ``"I"`` ... ``"VIII"``; case-insensitive for the Roman numerals).

    Raises:
        ValueError: Unknown name.
    """
    key = name if name == "full" else name.upper()
    if key not in VARIANTS:
        msg = f"variant must be one of {list(VARIANTS)}, got {name!r}"
        raise ValueError(msg)
    return VARIANTS[key]
