"""Inference of the paper (section 3.5): the reconstruction error E, the pixel anomaly probability P and their fusion S.

``E = mean_c (I - Î)^2`` (eq. 15-18), ``P = mean_l P^[l]`` (eq. 19), both Gaussian-smoothed, ``S = G(G(E) ⊙ G(P))``
(eq. 20-21, smoothed again as the paper and the official code do) and the image score is ``mean(S)`` (eq. 22), with
``max`` and the mean of the top-k fraction selectable.

"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from kornia.filters import filter2d_separable, get_gaussian_kernel1d
from torch import nn

ScoreAggregation = Literal["mean", "max", "topk"]
MapSource = Literal["fusion", "reconstruction", "classification"]


class AnomalyMaps(NamedTuple):
    """The three maps of the paper's Fig. 4, each ``(B, 1, H, W)``, smoothed.

    Attributes:
        error: ``G(E)``, the smoothed channel-mean squared reconstruction error, or ``None`` without reconstruction.
        probability: ``G(P)``, the smoothed mean of the level probabilities, or ``None`` without a classifier.
        score: The map the image score is computed from: ``G(G(E) ⊙ G(P))`` for the fusion, else ``G(E)`` or ``G(P)``.
    """

    error: torch.Tensor | None
    probability: torch.Tensor | None
    score: torch.Tensor


def reconstruction_error(images: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
    """E: the channel mean of the squared difference (paper eq. 15-18).

    Args:
        images: ``(B, C, H, W)`` inputs in ``[0, 1]``.
        reconstructions: ``(B, C, H, W)`` reconstructions in ``[0, 1]``.

    Returns:
        ``(B, 1, H, W)`` error map.
    """
    return (images - reconstructions).pow(2).mean(dim=1, keepdim=True)


def level_probability(probabilities: torch.Tensor) -> torch.Tensor:
    """P: the mean over decoder levels of the pixel anomaly probabilities (paper eq. 19).

    Args:
        probabilities: ``(B, L, H, W)`` per-level probabilities.

    Returns:
        ``(B, 1, H, W)`` probability map.
    """
    return probabilities.mean(dim=1, keepdim=True)


def aggregate_score(
    score_map: torch.Tensor, how: ScoreAggregation = "mean", topk_fraction: float = 0.01
) -> torch.Tensor:
    """Image anomaly score from a ``(B, 1, H, W)`` map: mean (paper eq. 22), max, or mean of the top-k fraction.

    Args:
        score_map: ``(B, 1, H, W)`` anomaly score map.
        how: ``"mean"``, ``"max"`` or ``"topk"``.
        topk_fraction: Fraction of pixels averaged by ``"topk"``.

    Returns:
        ``(B,)`` image scores.
    """
    flat = score_map.flatten(1)
    if how == "mean":
        return flat.mean(dim=1)
    if how == "max":
        return flat.amax(dim=1)
    k = max(1, round(flat.shape[1] * topk_fraction))
    return flat.topk(k, dim=1).values.mean(dim=1)


def check_fusion_options(sigma: float, aggregation: str, topk_fraction: float, source: str) -> None:
    """The one range check of the fusion options (``Isstad``'s and :class:`AnomalyFusion`'s), naming the option.

    Raises:
        ValueError: A value the fusion cannot use.
    """
    if sigma < 0:
        msg = f"smoothing_sigma must be >= 0, got {sigma}"
        raise ValueError(msg)
    if aggregation not in ("mean", "max", "topk"):
        msg = f"score_aggregation must be 'mean', 'max' or 'topk', got {aggregation!r}"
        raise ValueError(msg)
    if not 0 < topk_fraction <= 1:
        msg = f"topk_fraction must be in (0, 1], got {topk_fraction}"
        raise ValueError(msg)
    if source not in ("fusion", "reconstruction", "classification"):
        msg = f"map source must be 'fusion', 'reconstruction' or 'classification', got {source!r}"
        raise ValueError(msg)


class AnomalyFusion(nn.Module):
    """Fuses E and P into S and the image score (paper section 3.5), as one small export-friendly module.

    Args:
        sigma: Standard deviation of the Gaussian smoothing in pixels; ``0`` disables smoothing.
        aggregation: How the image score is taken from the score map: ``"mean"`` (paper), ``"max"``, ``"topk"``.
        topk_fraction: Fraction of pixels averaged when ``aggregation="topk"``.
        source: ``"fusion"`` (S, the paper's model), ``"reconstruction"`` (E alone) or ``"classification"`` (P alone),
            the latter two for the ablation models.
    """

    def __init__(
        self,
        *,
        sigma: float = 4.0,
        aggregation: ScoreAggregation = "mean",
        topk_fraction: float = 0.01,
        source: MapSource = "fusion",
    ) -> None:
        super().__init__()
        check_fusion_options(sigma, aggregation, topk_fraction, source)
        self.aggregation: ScoreAggregation = aggregation
        self.topk_fraction = topk_fraction
        self.source: MapSource = source
        self.sigma = sigma
        # Same support as scipy.ndimage.gaussian_filter (truncate=4): radius = round(4 * sigma).
        radius = int(4 * sigma + 0.5)
        kernel = get_gaussian_kernel1d(2 * radius + 1, sigma) if sigma > 0 else torch.ones(1, 1)
        self.register_buffer("kernel", kernel.reshape(1, -1), persistent=False)
        self.kernel: torch.Tensor

    def smooth(self, maps: torch.Tensor) -> torch.Tensor:
        """Gaussian-smooth ``(B, 1, H, W)`` maps with reflect borders (identity when ``sigma == 0``)."""
        if self.sigma == 0:
            return maps
        kernel = self.kernel.to(maps.dtype)
        return filter2d_separable(maps, kernel, kernel, border_type="reflect")

    def maps(self, error: torch.Tensor | None, probability: torch.Tensor | None) -> AnomalyMaps:
        """Smooth E and P and build the score map.

        Args:
            error: ``(B, 1, H, W)`` E, needed unless ``source == "classification"``.
            probability: ``(B, 1, H, W)`` P, needed unless ``source == "reconstruction"``.

        Returns:
            The smoothed maps.
        """
        smooth_error = self.smooth(error) if error is not None else None
        smooth_prob = self.smooth(probability) if probability is not None else None
        return AnomalyMaps(smooth_error, smooth_prob, self.score_map(smooth_error, smooth_prob))

    def score_map(self, error: torch.Tensor | None, probability: torch.Tensor | None) -> torch.Tensor:
        """S from the smoothed G(E) and G(P): the one place S is computed (inference, export, diagnose, benchmarks).

        Args:
            error: ``(B, 1, H, W)`` G(E), needed unless ``source == "classification"``.
            probability: ``(B, 1, H, W)`` G(P), needed unless ``source == "reconstruction"``.

        Returns:
            ``G(G(E) ⊙ G(P))`` for the fusion (paper eq. 20-21), else G(E) or G(P) alone, by ``source``.
        """
        if self.source == "reconstruction":
            return _required(error, "E")
        if self.source == "classification":
            return _required(probability, "P")
        return self.smooth(_required(error, "E") * _required(probability, "P"))

    def forward(
        self, error: torch.Tensor | None, probability: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(image_scores (B,), score_map (B, 1, H, W))``."""
        maps = self.maps(error, probability)
        return aggregate_score(maps.score, self.aggregation, self.topk_fraction), maps.score


def _required(value: torch.Tensor | None, name: str) -> torch.Tensor:
    if value is None:
        msg = f"the anomaly fusion needs {name}, but the model produced none"
        raise ValueError(msg)
    return value
