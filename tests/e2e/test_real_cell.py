"""End to end on the real data and model: one few-shot cell of all-MiniLM-L6-v2 on the shared CoNLL-03 copy,
plus the `paper-repro cell` command line's handling of bad input."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from paper_repro.cli import main
from paper_repro.config import CellConfig, apply_overrides
from paper_repro.results.schema import CELL_SCHEMA
from paper_repro.results.store import cell_paths, is_done

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_real_minilm_cell(real_data_dir, minilm_available, tmp_path):
    config = apply_overrides(CellConfig(), {
        "study": "e2e", "results_dir": str(tmp_path / "results"), "data.data_dir": str(real_data_dir),
        "data.subset_dir": str(tmp_path / "subsets"),   # never write subset files into the checkout from a test
        "model.backbone": "minilm-l6", "data.size": 50, "train.step_rule": "fixed", "train.steps": 100,
        "train.eval_points": 2,
        "data.dev_subsample": 300,
    })
    from paper_repro.train.cell import run_cell

    started = time.perf_counter()
    path = run_cell(config)
    seconds = time.perf_counter() - started
    paths = cell_paths(config.results_dir, "e2e", config.run_id)
    assert path == paths["parquet"] and is_done(config.results_dir, "e2e", config.run_id)
    table = pq.read_table(path)
    assert table.schema.equals(CELL_SCHEMA, check_metadata=False)
    df = table.to_pandas()
    assert list(zip(df.step, df.split, df.eval_sentences)) == [(60, "dev", 300), (100, "dev", 300), (100, "test", 3453)]
    manifest = json.loads(paths["manifest"].read_text())
    assert manifest["data"]["train"]["sentences"] == 14041 and manifest["subset"]["n_sentences"] == 50
    assert manifest["features"]["lost_words_test"] == 0
    test_row = df[df.split == "test"].iloc[0]
    first_dev, last_dev = df[df.split == "dev"].f1.tolist()
    # a broken pipeline (labels misaligned, windows lost, scoring wrong) stays near 0
    assert test_row.f1 > 0.25, f"test F1 {test_row.f1:.3f} after 100 steps on 50 sentences ({seconds:.0f}s)"
    assert last_dev > first_dev
    assert test_row.f1 >= test_row.f1_strict - 1e-9        # the conlleval (default) mode never scores lower here
    assert all(math.isfinite(test_row[m]) for m in ["precision", "recall", "f1_PER", "f1_LOC", "f1_ORG", "f1_MISC"])
    assert not (tmp_path / "subsets").exists() or len(list((tmp_path / "subsets").iterdir())) == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["cell", "train.steps=abc"], "train.steps: expected int"),
        (["cell", "train.stepz=3"], "unknown config key train.stepz"),
        (["cell", "train.steps"], "expected key=value"),
        (["cell", "model.head.name=dwat"], "model.head.name: unknown method 'dwat' (did you mean dwatt?) (known: "),
        (["cell", "data.sampler=kshot"], "data.sampler: unknown sampler 'kshot'"),
        (["cell", "model.pooling=max"], "model.pooling: unknown value 'max'"),
    ],
)
def test_cli_bad_override(argv, message, capsys):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("paper-repro: error: ") and message in err


def test_cli_missing_data_dir(tiny_backbone_dir, tmp_path, capsys):
    argv = ["cell", f"data.data_dir={tmp_path / 'nowhere'}", f"model.backbone={tiny_backbone_dir}", f"results_dir={tmp_path}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "data directory not found" in err


def test_cli_unknown_backbone(tiny_conll_dir, tmp_path, capsys):
    argv = ["cell", f"data.data_dir={tiny_conll_dir}", f"model.backbone={tmp_path / 'no-model'}",
            f"results_dir={tmp_path}", f"data.subset_dir={tmp_path}", "data.size=4"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    # caught by the same check as a sweep's, before anything is loaded
    assert err.count("\n") == 1 and err.startswith("paper-repro: error: model.backbone: local backbone path ")


def test_cli_cell_runs_and_prints_path(tiny_cell_config, tmp_path, capsys):
    config = tiny_cell_config(tmp_path, "train.steps=2")
    yaml_path = tmp_path / "cell.yaml"
    yaml_path.write_text(config.to_yaml())
    assert main(["cell", "--config", str(yaml_path), "train.seed=5"]) == 0
    printed = capsys.readouterr().out.strip()
    expected = apply_overrides(config, ["train.seed=5"])
    assert printed == str(cell_paths(config.results_dir, config.study, expected.run_id)["parquet"])


def test_cli_exit_status_from_the_shell():
    script = shutil.which("paper-repro", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "paper_repro.cli"]
    done = subprocess.run([*command, "cell", "train.steps=abc"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["paper-repro: error: train.steps: expected int, got 'abc'"]
