"""A callback for CLI tests (``--trainer.callbacks+=tests.cli_probe.CliProbe``), driven by environment variables.

* ``ISSTAD_PROBE_BLOCK=<epoch>``: at the second batch of that epoch, touch ``ISSTAD_PROBE_MARKER`` and wait (until the
  test sends SIGINT), so that a fit is interrupted at a known place;
* ``ISSTAD_PROBE_METRICS=<file>``: write the test metrics there as JSON;
* ``ISSTAD_PROBE_FULL_DISK=<epoch>``: from that epoch on, every checkpoint write fails with ``ENOSPC`` (a full disk).
"""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path

from lightning.pytorch import Callback


class CliProbe(Callback):
    """See the module docstring."""

    def on_train_epoch_start(self, trainer, pl_module):
        full = os.environ.get("ISSTAD_PROBE_FULL_DISK")
        if full and trainer.current_epoch == int(full):
            from isstad_plugin.training import checkpoint_io

            def no_space(descriptor):
                raise OSError(errno.ENOSPC, "No space left on device")

            checkpoint_io.os.fsync = no_space  # the module's os: a child process of the test, which then ends

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
