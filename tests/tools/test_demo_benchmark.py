"""Smoke tests of `isstad demo --fast` and `isstad benchmark` on tiny settings (their numbers mean nothing)."""

from __future__ import annotations

import json

from isstad_plugin.tools.cli import main


def test_demo_fast_writes_the_report(tmp_path, capsys):
    assert main(["demo", "--fast", "--output", str(tmp_path / "report")]) == 0
    report = tmp_path / "report"
    metrics = json.loads((report / "metrics.json").read_text())
    assert {"image_AUROC", "pixel_AUROC", "fit_seconds"} <= set(metrics["metrics"])
    assert "last epoch tested" in metrics["protocol"]
    assert (report / "metrics.md").read_text().startswith("## ISSTAD demo")
    assert (report / "panels.png").stat().st_size > 10_000
    assert any((report / "anomalib").rglob("images/**/*.png"))
    out = capsys.readouterr().out
    assert "ISSTAD demo finished: image AUROC" in out
    assert "peak memory" in out


def test_demo_on_a_users_folder(tmp_path, dataset_root):
    assert main(["demo", "--fast", "--output", str(tmp_path), "--data-root", str(dataset_root)]) == 0
    assert json.loads((tmp_path / "metrics.json").read_text())["title"].endswith("tiles")


def test_demo_reports_a_missing_folder_in_one_line(tmp_path, capsys):
    assert main(["demo", "--fast", "--data-root", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "no tiles/train/good folder" in err[0]


def test_benchmark_tiny_writes_tables(tmp_path, dataset_root):
    output = tmp_path / "bench"
    code = main(
        [
            "benchmark",
            "--root",
            str(dataset_root),
            "--categories",
            "tiles",
            "--models",
            "isstad",
            "padim",
            "draem",
            "--variants",
            "full",
            "IV",
            "--peer-image-sizes",
            "64",
            "--stage1-epochs",
            "1",
            "--stage2-epochs",
            "1",
            "--limit-train-batches",
            "1",
            "--batch-size",
            "4",
            "--output",
            str(output),
        ]
    )
    assert code == 0
    rows = json.loads((output / "results.json").read_text())["rows"]
    assert [r["model"] for r in rows] == ["ISSTAD", "ISSTAD Model IV", "DRAEM", "PaDiM"]
    for row in rows:
        assert 0.0 <= row["metrics"]["image_AUROC"] <= 1.0
        assert "pixel_AUPRO" in row["metrics"]
    table = (output / "results.md").read_text()
    assert "last epoch tested" in table
    assert "| category | ISSTAD | IV | DRAEM | PaDiM |" in table  # the paper's Table 4/5 layout
    assert (output / "results.csv").read_text().count("\n") == 5


def test_benchmark_rejects_unknown_model(tmp_path, dataset_root, capsys):
    code = main(["benchmark", "--root", str(dataset_root), "--categories", "tiles", "--models", "fastflow"])
    assert code == 2
    assert "unknown --models value 'fastflow': did you mean" in capsys.readouterr().err


def test_benchmark_reports_a_failed_model_and_runs_the_others(tmp_path, dataset_root, monkeypatch):
    import isstad_plugin.tools.benchmark as benchmark

    def fake_run(options, category, spec):
        if spec.name == "DRAEM":
            raise FloatingPointError("non-finite training loss (nan) at epoch 3, stage 1")
        return benchmark.Row(category, spec.name, {"image_AUROC": 0.5}, 1.0, 1.0, 1, spec.settings)

    monkeypatch.setattr(benchmark, "_run_one", fake_run)
    output = tmp_path / "bench"
    args = ["benchmark", "--root", str(dataset_root), "--categories", "tiles", "--models", "draem", "padim"]
    assert main([*args, "--output", str(output)]) == 0
    rows = json.loads((output / "results.json").read_text())["rows"]
    assert [r["model"] for r in rows] == ["DRAEM", "PaDiM"]
    assert "FAILED: non-finite training loss" in rows[0]["settings"]
    assert rows[1]["metrics"] == {"image_AUROC": 0.5}


def test_auroc_table_has_the_papers_layout():
    from isstad_plugin.tools.benchmark import Row, auroc_table

    rows = [
        Row("tile", "ISSTAD Model I", {"image_AUROC": 0.6}, 1.0, 1.0, 2, ""),
        Row("tile", "ISSTAD", {"image_AUROC": 0.8}, 1.0, 1.0, 2, ""),
        Row("wood", "ISSTAD Model I", {"image_AUROC": 0.7}, 1.0, 1.0, 2, ""),
        Row("wood", "ISSTAD", {}, 0.0, 0.0, 0, "FAILED: nan"),
    ]
    lines = auroc_table(rows, "image_AUROC", "Image AUROC")
    assert lines[2] == "| category | I | ISSTAD |"
    assert lines[4] == "| tile | 0.600 | 0.800 |"
    assert lines[5] == "| wood | 0.700 | - |"
    assert lines[6] == "| mean | 0.650 | - |"


def test_benchmark_epoch_options(tmp_path, dataset_root, capsys):
    from isstad_plugin.tools.cli import _batches

    assert _batches("1") == 1 and isinstance(_batches("1"), int)  # one batch, not 100 % of the epoch
    assert _batches("0.5") == 0.5
    args = ["benchmark", "--root", str(dataset_root), "--categories", "tiles", "--models", "isstad"]
    assert main([*args, "--stage1-epochs", "0", "--stage2-epochs", "40", "--output", str(tmp_path)]) == 2
    assert "ISSTAD stage lengths must both be at least 1 epochs, got 0 and 40" in capsys.readouterr().err
    assert main([*args, "--stage1-epochs", "2", "--stage2-steps", "40", "--output", str(tmp_path)]) == 2
    assert "--stage1/2-steps and --stage1/2-epochs both given" in capsys.readouterr().err


def test_benchmark_stage2_default_comes_from_the_config():
    from pathlib import Path

    from isstad_plugin.tools.benchmark import BenchmarkOptions, _isstad_specs

    (spec,) = _isstad_specs(BenchmarkOptions(root=Path(), categories=["x"], stage1_steps=100))
    model = spec.build()
    assert (model.schedule.stage1_steps, model.schedule.stage2_steps) == (
        100,
        3200,
    )  # configs/isstad_cpu.yaml: 1600 + 3200 steps
    assert spec.trainer_args.items() >= {"max_epochs": -1, "check_val_every_n_epoch": 1}.items()
    (spec,) = _isstad_specs(BenchmarkOptions(root=Path(), categories=["x"], stage1_epochs=5, stage2_epochs=7))
    assert spec.build().stage1_epochs == 5
    assert spec.trainer_args.items() >= {"max_epochs": 12, "check_val_every_n_epoch": 12}.items()


def test_benchmark_runs_imagenet_and_random_peers_side_by_side_at_two_sizes(tmp_path, dataset_root):
    output = tmp_path / "bench"
    args = ["benchmark", "--root", str(dataset_root), "--categories", "tiles", "--output", str(output)]
    args += ["--models", "padim", "padim-imagenet", "--peer-image-sizes", "32", "64", "--batch-size", "4"]
    assert main(args) == 0
    rows = json.loads((output / "results.json").read_text())["rows"]
    assert [r["model"] for r in rows] == ["PaDiM 32 px", "PaDiM ImageNet 32 px", "PaDiM 64 px", "PaDiM ImageNet 64 px"]
    assert "random init" in rows[0]["settings"] and "efficientnet_lite0 ImageNet" in rows[1]["settings"]
    assert all(0.0 <= r["metrics"]["image_AUROC"] <= 1.0 for r in rows)
    assert (output / "cost_quality_tiles.png").stat().st_size > 0


def test_benchmark_names_the_fix_for_missing_imagenet_weights(tmp_path, dataset_root, capsys):
    args = ["benchmark", "--root", str(dataset_root), "--categories", "tiles", "--models", "padim-imagenet"]
    code = main([*args, "--imagenet-weights", str(tmp_path / "lite0.pth"), "--output", str(tmp_path / "b")])
    assert code == 2
    assert "--imagenet-weights file not found" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()  # nothing was started
