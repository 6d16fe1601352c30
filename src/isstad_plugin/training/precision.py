"""Training precision picked from the hardware: ``bf16-mixed`` where bf16 runs fast, ``32-true`` elsewhere.

bf16 autocast pays on CPUs with bf16 instructions (AVX512-BF16, AMX) and on CUDA GPUs of compute capability 8.0 or
newer; elsewhere (AVX2/AVX-512 CPUs without them, older GPUs) bf16 is emulated and slower than float32.
:func:`hardware_precision` detects which case a device is in (CPU flags, CUDA capability; float32 where the CPU flags
cannot be read, as outside Linux) and logs the choice once per device.

Two ways to use it:

* ``isstad`` commands and Python code: ``Engine(precision=resolve_precision("auto", "cpu"))``;
* the anomalib CLI or a config: ``--trainer.plugins isstad_plugin.HardwarePrecision`` (or ``trainer.plugins`` in the
  YAML), which picks the precision when the Trainer is built. Force one with ``--trainer.plugins.precision
  32-true`` (or ``bf16-mixed``); without the plugin, ``--trainer.precision`` works as usual.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Literal

import torch
from lightning.pytorch.plugins.precision import MixedPrecision

logger = logging.getLogger(__name__)

PrecisionName = Literal["bf16-mixed", "32-true"]
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
"""``/proc/cpuinfo`` flags of CPUs that run bf16 matmuls natively."""


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str] | None:
    """The CPU feature flags of ``cpuinfo``, or ``None`` where the file cannot be read (not Linux)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return None


def bf16_is_fast(device: str = "cpu", flags: set[str] | None = None) -> tuple[bool, str]:
    """Whether bf16 autocast is faster than float32 on ``device``, and why.

    Args:
        device: ``"cpu"`` or ``"cuda"`` (``"cuda:N"``); any other device type answers no.
        flags: CPU flags to judge instead of this machine's (for tests).

    Returns:
        ``(fast, reason)``, the reason a short phrase for the log.
    """
    kind = torch.device(device).type
    if kind == "cuda":
        if not torch.cuda.is_available():
            return False, "no CUDA device"
        major, minor = torch.cuda.get_device_capability(torch.device(device))
        fast = major >= 8
        return fast, f"CUDA compute capability {major}.{minor} ({'>=' if fast else '<'} 8.0)"
    if kind != "cpu":
        return False, f"{kind} device"
    flags = cpu_flags() if flags is None else flags
    if flags is None:
        return False, "CPU flags unreadable (no /proc/cpuinfo)"
    found = sorted(set(BF16_CPU_FLAGS) & flags)
    return bool(found), f"CPU flags: {', '.join(found) if found else 'no avx512_bf16 / amx_bf16'}"


@functools.cache
def hardware_precision(device: str = "cpu") -> PrecisionName:
    """``"bf16-mixed"`` where bf16 is fast on ``device``, else ``"32-true"``; logged once per device."""
    fast, reason = bf16_is_fast(device)
    choice: PrecisionName = "bf16-mixed" if fast else "32-true"
    logger.info("ISSTAD precision on %s: %s (%s)", device, choice, reason)
    return choice


def default_device() -> str:
    """The device ``accelerator="auto"`` trains on: ``"cuda"`` when there is a GPU, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_precision(value: str | int | None, device: str | None = None) -> str:
    """A Trainer ``precision``: ``"auto"`` / ``None`` become :func:`hardware_precision`, anything else is kept.

    Args:
        value: A Lightning precision (``"bf16-mixed"``, ``"32-true"``, ``32``, ...), ``"auto"`` or ``None``.
        device: The training device; ``None`` takes :func:`default_device`.
    """
    if value is None or value == "auto":
        return hardware_precision(device or default_device())
    return str(value)


class HardwarePrecision(MixedPrecision):
    """Lightning precision plugin that runs bf16 autocast only where bf16 is fast (see :func:`hardware_precision`).

    ``anomalib train ... --trainer.plugins isstad_plugin.HardwarePrecision``; leave ``--trainer.precision`` unset.

    Args:
        device: Training device type; ``None``: ``"cuda"`` when a GPU is visible, else ``"cpu"``.
        precision: ``"auto"`` (detect), or force ``"bf16-mixed"`` / ``"32-true"``.
    """

    def __init__(self, device: str | None = None, precision: Literal["auto", "bf16-mixed", "32-true"] = "auto") -> None:
        device = device or default_device()
        chosen = resolve_precision(precision, device)
        if chosen not in ("bf16-mixed", "32-true"):
            msg = f"HardwarePrecision precision must be 'auto', 'bf16-mixed' or '32-true', got {precision!r}"
            raise ValueError(msg)
        super().__init__("bf16-mixed", torch.device(device).type)
        self.precision = chosen  # type: ignore[assignment]

    def autocast_context_manager(self) -> torch.autocast:
        """bf16 autocast, turned off when float32 was chosen."""
        return torch.autocast(
            self.device, dtype=torch.bfloat16, enabled=self.precision == "bf16-mixed", cache_enabled=False
        )
