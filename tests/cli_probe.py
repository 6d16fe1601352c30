"""A callback for CLI tests (``--trainer.callbacks+=tests.cli_probe.CliProbe``), driven by environment variables.

* ``ISSTAD_PROBE_BLOCK=<epoch>``: at the second batch of that epoch, touch ``ISSTAD_PROBE_MARKER`` and wait (until the
  test sends SIGINT), so that a fit is interrupted at a known place;
* ``ISSTAD_PROBE_METRICS=<file>``: write the test metrics there as JSON.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from lightning.pytorch import Callback


class CliProbe(Callback):
    """See the module docstring."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        block = os.environ.get("ISSTAD_PROBE_BLOCK")
        if block and trainer.current_epoch == int(block) and batch_idx == 1:
            Path(os.environ["ISSTAD_PROBE_MARKER"]).write_text(f"{trainer.current_epoch} {pl_module.stage}")
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # SIGINT arrives here as KeyboardInterrupt
                time.sleep(0.05)

    def on_test_end(self, trainer, pl_module):
        target = os.environ.get("ISSTAD_PROBE_METRICS")
        if target:
            metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
            Path(target).write_text(json.dumps(metrics))
