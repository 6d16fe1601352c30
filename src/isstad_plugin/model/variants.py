"""The paper's ablation models I-VIII and the full model (section 4.3, Table 3) as data.

A :class:`Variant` fixes which training stages run, whether stage-2 inputs are corrupted, which losses are active and
which map scores an image. :class:`~isstad_plugin.Isstad` reads one by name (``variant="VII"``).
"""

from __future__ import annotations

from dataclasses import dataclass

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


_TABLE: tuple[tuple[str, bool, bool, bool, bool, bool, MapSource, bool, str], ...] = (
    # name, pretrain, finetune, corrupt, reconstruction_loss, classification_loss, map_source, masked_inference,
    # summary
    ("I", True, False, False, False, False, "reconstruction", True,
     "MAE as is: masked training, 75 % masked test input, reconstruction error"),
    ("II", False, True, False, True, False, "reconstruction", False,
     "plain autoencoder: full image in and out, reconstruction error"),
    ("III", False, True, True, True, False, "reconstruction", False,
     "denoising autoencoder: corrupted input, clean target, reconstruction error"),
    ("IV", False, True, True, False, True, "classification", False,
     "pixel classifier only: corrupted input, pixel probability"),
    ("V", False, True, True, True, True, "fusion", False,
     "fusion of III and IV without stage-1 pre-training"),
    ("VI", True, True, False, True, False, "reconstruction", False,
     "stage 1 + plain autoencoder"),
    ("VII", True, True, True, True, False, "reconstruction", False,
     "stage 1 + denoising autoencoder (ISSTAD without the classification loss)"),
    ("VIII", True, True, True, False, True, "classification", False,
     "stage 1 + pixel classifier (ISSTAD without the reconstruction loss)"),
    ("full", True, True, True, True, True, "fusion", False,
     "ISSTAD: stage 1 + denoising reconstruction and pixel classification, fused S = E x P"),
)  # fmt: skip
"""The paper's Table 3, one row per model, in :class:`Variant`'s field order."""

VARIANTS: dict[str, Variant] = {row[0]: Variant(row[0], row[-1], *row[1:-1]) for row in _TABLE}
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
