"""Reliability with the real `run_cell` on a tiny invented fixture (random 2-layer BERT, 40 train sentences):
kill -9 mid-sweep and rerun, two concurrent sweepers, determinism."""
from __future__ import annotations

import collections

import pyarrow.parquet as pq
import pytest
from sweep_helpers import (kill_and_resume, metrics, subprocess_env, sweep_process, tiny_real_setup, tiny_study,
                           write_study)

pytest.importorskip("paper_repro.train.cell")

from paper_repro.config import apply_overrides  # noqa: E402
from paper_repro.results.collect import collect  # noqa: E402
from paper_repro.sweep import claims  # noqa: E402
from paper_repro.sweep.grid import load_study  # noqa: E402
from paper_repro.sweep.launch import DEFAULT_RUNNER  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_real_setup(tmp_path_factory.mktemp("tiny"))


def real_study(tiny, root, name, **kw):
    raw = tiny_study(name, root / "results", backbone=tiny["backbone"], data_dir=tiny["data"],
                     subset_dir=root / "subsets", **kw)
    return write_study(root / f"{name}.yaml", raw)


def test_kill_9_mid_sweep_then_rerun_equals_uninterrupted(tiny, tmp_path):
    # ~200 steps (about a second per cell here) so that the kill lands inside the sweep
    study_file = real_study(tiny, tmp_path, "st", steps=200)
    reference = real_study(tiny, tmp_path, "ref", steps=200)
    events = kill_and_resume(study_file, tmp_path / "results" / "st", reference, tmp_path / "results" / "ref",
                             runner=DEFAULT_RUNNER, env=subprocess_env(), timeout_s=300)
    if sum(e["event"] == "start" for e in events) == 5:
        assert [e for e in events if e["event"] == "takeover"]


def test_two_concurrent_sweepers_run_each_cell_once(tiny, tmp_path):
    study_file = real_study(tiny, tmp_path, "st", data_seeds=(0, 1, 2, 3), steps=60)
    procs = [sweep_process(study_file, env=subprocess_env(), runner=DEFAULT_RUNNER) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    events = claims.read_events(tmp_path / "results" / "st")
    starts = collections.Counter(e["run_id"] for e in events if e["event"] == "start")
    assert len(starts) == 8 and set(starts.values()) == {1}, starts
    table = pq.read_table(collect(tmp_path / "results" / "st"))
    assert len(set(table.column("run_id").to_pylist())) == 8


def test_deterministic_config_gives_identical_metrics(tiny, tmp_path):
    from paper_repro.train.cell import run_cell

    cell = load_study(real_study(tiny, tmp_path, "det", steps=20)).expand()[-1]  # dwatt
    assert cell.train.deterministic
    tables = []
    for where in ("a", "b"):
        out = run_cell(apply_overrides(cell, {"results_dir": str(tmp_path / where)}))
        tables.append(pq.read_table(out))
    assert metrics(tables[0]) == metrics(tables[1])
