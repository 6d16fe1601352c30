"""The ``isstad`` command: ``isstad demo`` and ``isstad benchmark``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``isstad`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return args.run(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"isstad {args.command}: error: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="isstad", description="ISSTAD anomaly detection (anomalib plugin).")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="train and test a small ISSTAD on generated data, write a report")
    demo.add_argument("--output", type=Path, default=Path("reports/demo"), help="report folder (default: %(default)s)")
    demo.add_argument("--fast", action="store_true", help="smoke run in well under a minute (numbers mean nothing)")
    demo.add_argument("--seed", type=int, default=0, help="seed of data generation and training")
    demo.add_argument("--data-root", type=Path, default=None, help="MVTec-layout root to use instead of generated data")
    demo.add_argument("--category", default="tiles", help="category folder (generated: tiles, metal, fabric, wood, parts)")
    demo.add_argument("--config", type=Path, default=None, help="run config (default: configs/isstad_cpu.yaml)")
    demo.set_defaults(run=_run_demo)
    return parser


def _run_demo(args: argparse.Namespace) -> int:
    from isstad_plugin.demo import DemoOptions, run_demo  # noqa: PLC0415 - keep `isstad --help` fast

    result = run_demo(
        DemoOptions(output=args.output, fast=args.fast, seed=args.seed, data_root=args.data_root,
                    category=args.category, config=args.config)
    )
    metrics = result.metrics
    print()
    print(f"ISSTAD demo finished: image AUROC {metrics.get('image_AUROC', float('nan')):.3f}, "
          f"pixel AUROC {metrics.get('pixel_AUROC', float('nan')):.3f}")
    print(f"  fit {result.fit_seconds:.0f} s, test {result.test_seconds:.0f} s, peak memory {result.peak_rss_mb:.0f} MB")
    print(f"  report: {result.report}/metrics.md, panels: {result.report}/panels.png, "
          f"anomalib images: {result.report}/anomalib/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
