"""Post-processor of ISSTAD's fused S map: anomalib's normalisation and F1-adaptive thresholds, learnt on validation."""

from __future__ import annotations

from typing import Any

from anomalib.post_processing import PostProcessor
from lightning import LightningModule, Trainer

from isstad_plugin.training.divergence import check_validation_statistics


class IsstadPostProcessor(PostProcessor):
    """anomalib's :class:`~anomalib.post_processing.PostProcessor` for the anomaly map (S) and the image score.

    Statistics (min/max for normalisation, F1-adaptive thresholds) are collected on the validation set, as anomalib
    does, but only on batches that the model scored: during stage 1 the pixel classifier is not trained yet, so
    :class:`~isstad_plugin.Isstad` skips validation and the statistics come from the trained model. When validation
    holds no anomalous image, the thresholds fall back to the highest normal score and anomalib's
    ``F1AdaptiveThreshold`` warns so, because F1 thresholds then only bound the false positives. Non-finite statistics
    stop the fit (:func:`~isstad_plugin.training.divergence.check_validation_statistics`) before a checkpoint stores
    them.

    Args:
        **kwargs: :class:`~anomalib.post_processing.PostProcessor` options (sensitivities, enable flags).
    """

    def on_validation_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, *args: Any, **kwargs: Any
    ) -> None:
        """Update the statistics with a scored batch; skip batches the model did not score."""
        if outputs is None or getattr(outputs, "pred_score", None) is None:
            return
        super().on_validation_batch_end(trainer, pl_module, outputs, *args, **kwargs)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Compute thresholds and normalisation from the scored batches."""
        computed = self._updated_statistics()
        super().on_validation_epoch_end(trainer, pl_module)
        check_validation_statistics(
            {name: getattr(self, name) for name in computed}, int(getattr(pl_module, "stage", 2)), trainer.current_epoch
        )

    def _updated_statistics(self) -> list[str]:
        """Names of the buffers that this validation's ``super().on_validation_epoch_end`` will overwrite."""
        names = []
        if self.enable_thresholding:
            names += ["_image_threshold"] if self._image_threshold_metric.update_called else []
            names += ["_pixel_threshold"] if self._pixel_threshold_metric.update_called else []
        if self.enable_normalization:
            names += ["image_min", "image_max"] if self._image_min_max_metric.update_called else []
            names += ["pixel_min", "pixel_max"] if self._pixel_min_max_metric.update_called else []
        return names
