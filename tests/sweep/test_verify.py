"""`paper-repro verify`: a committed cell re-run from its manifest reproduces its metrics; a tampered result
is reported as different; a cell of an older config schema (protocol v1) is refused before any training."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from paper_repro.config import ConfigError
from paper_repro.results.store import cell_paths
from paper_repro.sweep.verify import verify
from paper_repro.train.cell import run_cell


@pytest.fixture()
def committed(tiny_cell_config, tmp_path):
    config = tiny_cell_config(tmp_path / "committed", "model.head.name=dwatt", "train.steps=4",
                              "train.deterministic=true")
    run_cell(config)
    return config


def test_rerun_reproduces_and_tampering_is_caught(committed, tmp_path):
    study_dir = tmp_path / "committed" / "results" / "tiny"
    verdicts = first = verify(study_dir, sample=None, scratch=tmp_path / "scratch", log=lambda *_: None)
    assert [(v.run_id, v.ok) for v in verdicts] == [(committed.run_id, True)]
    assert verdicts[0].max_diff <= 1e-6 and verdicts[0].rows == 3      # 2 dev points + test
    path = cell_paths(committed.results_dir, committed.study, committed.run_id)["parquet"]
    table = pq.read_table(path)
    f1 = pa.compute.add(table.column("f1"), 0.1)
    pq.write_table(table.set_column(table.schema.get_field_index("f1"), "f1", f1), path)
    verdicts = verify(study_dir, sample=None, scratch=tmp_path / "scratch2", log=lambda *_: None)
    assert not verdicts[0].ok and verdicts[0].max_diff == pytest.approx(0.1) and verdicts[0].worst.startswith("f1 at")
    # --record: one row per re-run, appended, with the code and device of the cell and of the re-run
    import pandas as pd

    from paper_repro.results.manifest import git_state
    from paper_repro.sweep.verify import RECORD_COLUMNS, record

    record(study_dir, first, 0.005, date="2026-11-26")
    path = record(study_dir, verdicts, 0.005, date="2026-11-27")
    table = pd.read_csv(path)
    assert list(table.columns) == RECORD_COLUMNS and list(table["ok"]) == [True, False]
    assert list(table["worst"])[0] == "identical" and table["max_diff"].iloc[1] == pytest.approx(0.1)
    sha = git_state()[0][:12]
    assert table["ran_at"].iloc[0].startswith(sha) and table["rerun_at"].iloc[0].startswith(sha)
    assert " on cpu:" in table["rerun_at"].iloc[0] and "threads=" in table["rerun_at"].iloc[0]
    # the re-run's CPU kernel set, from its manifest's `cpu`
    assert table["rerun_at"].iloc[0].endswith(f"({torch.backends.cpu.get_cpu_capability()}))")


def test_old_config_schema_is_refused_before_training(committed, tmp_path):
    paths = cell_paths(committed.results_dir, committed.study, committed.run_id)
    manifest = json.loads(paths["manifest"].read_text())
    del manifest["config"]["train"]["step_rule"]          # what a protocol-v1 manifest looks like
    paths["manifest"].write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="older config schema"):
        verify(tmp_path / "committed" / "results" / "tiny", sample=None, scratch=tmp_path / "s", log=lambda *_: None)
    assert not (tmp_path / "s").exists()
    with pytest.raises(ConfigError, match="no done cells"):
        verify(tmp_path / "nothing", sample=1, log=lambda *_: None)


@pytest.mark.parametrize("sample", ["0", "-1", "two"])
def test_a_sample_that_is_not_a_positive_count_is_refused(sample, tmp_path):
    import argparse

    from paper_repro.sweep.verify import add_verify_arguments, verify_main

    args = add_verify_arguments(argparse.ArgumentParser()).parse_args([str(tmp_path), "--sample", sample])
    with pytest.raises(ConfigError, match=rf"--sample '{sample}': expected a positive integer or 'all'"):
        verify_main(args)
