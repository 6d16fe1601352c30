"""ISSTAD and the peers on the generated long, narrow strip with hairline cracks (48 x 128 px, cracks 1-2 px wide).

    .venv/bin/python benchmarks/long_narrow_cracks.py [--output reports/strip] [--stage1-steps N --stage2-steps N]

Generates the ``strip`` category (:mod:`isstad_plugin.data.synthetic`: 200 normal training images, 60 good and 80
cracked test images, seed 0) under ``<output>/data`` unless it is already there, then runs ``isstad benchmark`` on it
with ``configs/isstad_cpu_localise.yaml`` (``image_size: auto``: the strip is read at its native 48 x 128, never
squashed) against PaDiM and PatchCore (random ResNet-18, 128 px squares), and ``isstad diagnose`` on ISSTAD's
checkpoint (validation split only). Protocol: the benchmark's (fixed budget, last epoch tested, thresholds from a 30 %
validation split of the test folder that is not tested, no test-set selection).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from isstad_plugin.data.synthetic import generate_dataset
from isstad_plugin.tools.cli import main as isstad

REPO = Path(__file__).parents[1]
DATA = {"n_train": 200, "n_test_good": 60, "n_test_defect": 80, "image_size": 128, "seed": 0}


def run(output: Path, budget: list[str]) -> int:
    """Generate the set, benchmark, diagnose; the exit code of the first command that fails (0: all done)."""
    root = output / "data"
    generate_dataset(root, "strip", **DATA)
    config = str(REPO / "configs" / "isstad_cpu_localise.yaml")
    code = isstad(["benchmark", "--root", str(root), "--config", config, "--categories", "strip", "--models",
                   "isstad", "padim", "patchcore", "--output", str(output / "benchmark"), *budget])  # fmt: skip
    if code:
        return code
    checkpoint = next((output / "benchmark" / "runs" / "ISSTAD").rglob("model.ckpt"))
    return isstad(["diagnose", str(checkpoint), str(root), "strip", "--output", str(output / "diagnose")])


def main() -> int:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("reports/strip"))
    parser.add_argument("--stage1-steps", type=int)
    parser.add_argument("--stage2-steps", type=int)
    args = parser.parse_args()
    budget = [f"--stage{n}-steps={v}" for n, v in ((1, args.stage1_steps), (2, args.stage2_steps)) if v is not None]
    return run(args.output, budget)


if __name__ == "__main__":
    raise SystemExit(main())
