"""The Slurm launcher against a real (local) Slurm cluster: .ci/slurm_up.sh, then SLURM_CONF=... pytest -m slurm.
Skipped unless SLURM_CONF is set and `sinfo` answers. Every wait is bounded."""
from __future__ import annotations

import os
import shutil
import subprocess

import pyarrow.parquet as pq
import pytest
from sweep_helpers import FAKE_RUNNER, subprocess_env, sweep_process, tiny_real_setup, tiny_study, write_study

from paper_repro.results import store
from paper_repro.results.collect import collect
from paper_repro.sweep.grid import load_study
from paper_repro.sweep.launch import DEFAULT_RUNNER


def _slurm_available() -> bool:
    if not os.environ.get("SLURM_CONF") or shutil.which("sinfo") is None:
        return False
    try:
        return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


# CI (.ci/run) starts a cluster and sets PAPER_REPRO_REQUIRE_SLURM=1: there a missing cluster fails, not skips
REQUIRED = os.environ.get("PAPER_REPRO_REQUIRE_SLURM") == "1"
pytestmark = [pytest.mark.slurm,
              pytest.mark.skipif(not REQUIRED and not _slurm_available(), reason="needs SLURM_CONF and a working sinfo")]

LAUNCHER = {"time_min": 10, "cpus_per_task": 1, "mem_gb": 1, "array_parallelism": 2, "cells_per_task": 2}


def run_slurm_sweep(study_file, runner, timeout_s=420):
    proc = sweep_process(study_file, "--launcher", "slurm", "--wait", "--wait-timeout", str(timeout_s - 60),
                         env=subprocess_env(), runner=runner)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"slurm sweep still running after {timeout_s}s:\n{out[-3000:]}")
    return proc.returncode, out


def check_cells(study_file, study_dir):
    cells = load_study(study_file).expand()
    for cell in cells:
        assert store.is_done(cell.results_dir, cell.study, cell.run_id), cell.run_id
        table = pq.read_table(store.cell_paths(cell.results_dir, cell.study, cell.run_id)["parquet"])
        assert set(table.column("run_id").to_pylist()) == {cell.run_id}
    assert len(set(pq.read_table(collect(study_dir)).column("run_id").to_pylist())) == len(cells)
    return cells


def test_slurm_array_with_fake_runner(tmp_path):
    study_file = write_study(tmp_path / "st.yaml", tiny_study("st", tmp_path / "results", launcher=LAUNCHER))
    rc, out = run_slurm_sweep(study_file, FAKE_RUNNER)
    assert rc == 0, out
    assert "submitted Slurm job" in out and "4 cells: 4 ran, 0 failed" in out, out
    check_cells(study_file, tmp_path / "results" / "st")
    assert list((tmp_path / "results" / "st" / "slurm").glob("*/*_log.out"))
    rc, out = run_slurm_sweep(study_file, FAKE_RUNNER, timeout_s=120)  # everything done: nothing submitted
    assert rc == 0 and "nothing to submit" in out, out


def test_slurm_array_with_real_run_cell(tmp_path):
    pytest.importorskip("paper_repro.train.cell")
    tiny = tiny_real_setup(tmp_path / "fixture")
    raw = tiny_study("tiny", tmp_path / "results", backbone=tiny["backbone"], data_dir=tiny["data"],
                     subset_dir=tmp_path / "subsets", launcher=LAUNCHER)
    study_file = write_study(tmp_path / "tiny.yaml", raw)
    rc, out = run_slurm_sweep(study_file, DEFAULT_RUNNER)
    assert rc == 0, out
    check_cells(study_file, tmp_path / "results" / "tiny")
