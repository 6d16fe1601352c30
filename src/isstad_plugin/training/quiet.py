"""Warnings that ISSTAD runs cause by design, silenced only where they arise and only for these messages.

Lightning warns, at the start of a fit, about settings that ISSTAD chooses on purpose:

* ``Precision bf16-mixed is not supported by the model summary``: the weights of ``bf16-mixed`` (which
  :class:`~isstad_plugin.HardwarePrecision` picks on bf16 hardware) are float32, the size Lightning then prints;
* ``The number of training batches (N) is smaller than the logging interval Trainer(log_every_n_steps=50)``: ISSTAD
  logs once per epoch, never per step;
* ``Found N module(s) in eval mode at the start of training``: a fit resumed in stage 2 has its frozen encoder in
  eval mode (paper 3.3.2).

And torchmetrics warns ``The compute method of metric AUROC was called before the update method`` for each pixel
metric of anomalib's evaluator when the test images have no masks (image-level labels only): anomalib skips those
metrics by design (``strict=False``) and :mod:`isstad_plugin.data.checks` says so in one line.

:class:`QuietByDesign` (added by :class:`~isstad_plugin.Isstad` to every fit and test) ignores the first three
between a fit's ``setup`` and ``on_train_start`` (the model summary, the loop's checks), and the last one between
the end of a test epoch whose skipped metrics were never updated and the end of the test; it removes its filters
then. Every other warning, and these same ones elsewhere, are shown as usual.
"""

from __future__ import annotations

import warnings
from typing import Any, cast

from lightning.pytorch import Callback, LightningModule, Trainer

FIT_START = (
    r"Precision bf16-mixed is not supported by the model summary",
    r"The number of training batches \(\d+\) is smaller than the logging interval",
    r"Found \d+ module\(s\) in eval mode at the start of training",
)
"""The start-of-fit messages :class:`QuietByDesign` ignores (regular expressions matched at the start)."""

SKIPPED_METRICS = (r"The ``compute`` method of metric \w+ was called before the ``update`` method",)
"""The message of a metric anomalib skips (no masks), ignored at the end of such a test."""


class QuietByDesign(Callback):
    """Ignore the warnings an ISSTAD run causes by design, where it causes them (see the module docstring)."""

    def __init__(self) -> None:
        self._filters: list[Any] = []

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Ignore the :data:`FIT_START` warnings until training starts."""
        del trainer, pl_module
        if stage == "fit":
            self._ignore(FIT_START)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Show every warning again: the checks have run."""
        del trainer, pl_module
        self._remove()

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Ignore the :data:`SKIPPED_METRICS` warnings when a metric anomalib may skip got no batch (no masks)."""
        del trainer
        metrics = getattr(getattr(pl_module, "evaluator", None), "test_metrics", None) or []
        if any(not getattr(m, "strict", True) and getattr(m, "_update_count", 1) == 0 for m in metrics):
            self._ignore(SKIPPED_METRICS)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Show every warning again: the metrics have been computed."""
        del trainer, pl_module
        self._remove()

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Remove the filters of a run that ended early (an error)."""
        del trainer, pl_module, stage
        self._remove()

    def _ignore(self, messages: tuple[str, ...]) -> None:
        for message in messages:
            warnings.filterwarnings("ignore", message=message)
            self._filters.append(warnings.filters[0])

    def _remove(self) -> None:
        """Remove the filters, without resetting the warnings' registries (a warning shown once stays once)."""
        filters = cast("list[Any]", warnings.filters)
        for entry in self._filters:
            if entry in filters:
                filters.remove(entry)
        self._filters = []
