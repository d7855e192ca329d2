"""The local launcher with a fake cell runner (no training): skip/force/retry rules, dry run, shards, kill -9
and concurrent sweepers. The same scenarios with the real run_cell are in test_reliability.py."""
from __future__ import annotations

import argparse
import collections

import pyarrow.parquet as pq
import pytest
from sweep_helpers import (FAKE_RUNNER, fake_run_cell, kill_and_resume, subprocess_env, sweep_process, tiny_study,
                           write_study)

from paper_repro.results import store
from paper_repro.results.collect import collect
from paper_repro.sweep import claims
from paper_repro.sweep.grid import load_study
from paper_repro.sweep.launch import add_sweep_arguments, run_sweep, sweep_main


@pytest.fixture
def study_file(tmp_path):
    return write_study(tmp_path / "st.yaml", tiny_study("st", tmp_path / "results"))


def test_local_sweep_skips_done_and_force_reruns(study_file, tmp_path):
    first = run_sweep(study_file, runner=fake_run_cell, progress=False)
    assert len(first.ran) == 4 and first.ok
    again = run_sweep(study_file, runner=fake_run_cell, progress=False)
    assert again.ran == [] and len(again.skipped_done) == 4
    forced = run_sweep(study_file, runner=fake_run_cell, force=True, progress=False)
    assert sorted(forced.ran) == sorted(first.ran)
    starts = [e["run_id"] for e in claims.read_events(tmp_path / "results" / "st") if e["event"] == "start"]
    assert sorted(starts) == sorted(first.ran * 2)
    assert not list((tmp_path / "results" / "st" / "claims").glob("*.claim"))  # all released


def test_failures_are_recorded_skipped_and_retried(study_file, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL_METHODS", "dwatt")
    result = run_sweep(study_file, runner=fake_run_cell, progress=False)
    assert len(result.ran) == 2 and len(result.failed) == 2 and not result.ok
    sdir = tmp_path / "results" / "st"
    for rid in result.failed:
        text = (sdir / "failures" / f"{rid}.txt").read_text()
        assert "RuntimeError: fake failure of dwatt" in text and "Traceback" in text
    skipped = run_sweep(study_file, runner=fake_run_cell, progress=False)
    assert sorted(skipped.skipped_failed) == sorted(result.failed) and not skipped.ok
    monkeypatch.delenv("FAKE_FAIL_METHODS")
    retried = run_sweep(study_file, runner=fake_run_cell, retry_failed=True, progress=False)
    assert sorted(retried.ran) == sorted(result.failed) and retried.ok
    assert not list((sdir / "failures").glob("*.txt"))


def test_partial_parquet_without_marker_is_rerun(study_file, tmp_path):
    cells = load_study(study_file).expand()
    paths = store.cell_paths(tmp_path / "results", "st", cells[0].run_id)
    paths["parquet"].parent.mkdir(parents=True)
    paths["parquet"].write_bytes(b"PAR1 truncated")
    result = run_sweep(study_file, runner=fake_run_cell, progress=False)
    assert cells[0].run_id in result.ran
    pq.read_table(paths["parquet"])  # overwritten with a complete file


def test_dry_run_table_and_cost(study_file, tmp_path, capsys, monkeypatch):
    run_sweep(study_file, dry_run=True)
    out = capsys.readouterr().out
    assert "estimated cost: unknown for 4 cells" in out and out.count(" pending") >= 4
    cells = load_study(study_file).expand()
    fake_run_cell(cells[0])                     # last, data seed 0: done, timed ~1 s
    claims.write_failure(tmp_path / "results" / "st", cells[1].run_id, "boom")
    run_sweep(study_file, dry_run=True)
    out = capsys.readouterr().out
    header, *rows = out.split("\n\n")[0].splitlines()
    assert header.split() == ["run_id", "backbone", "method", "sampler", "size", "data_seed", "seed", "status"]
    status = {row.split()[0]: row.split()[-1] for row in rows}
    assert status == {cells[0].run_id: "done", cells[1].run_id: "failed", cells[2].run_id: "pending",
                      cells[3].run_id: "pending"}
    assert "(1 done, 2 pending, 1 failed, 0 claimed); 2 would run" in out
    assert "for 2 cells (0 from their (backbone, method) mean, 2 from the overall mean" in out


def test_shards_partition_the_cells(study_file):
    ids = [c.run_id for c in load_study(study_file).expand()]
    got = []
    for i in range(3):
        got += run_sweep(study_file, shard=(i, 3), runner=fake_run_cell, progress=False).ran
    assert sorted(got) == sorted(ids)


def test_cli_parsing_and_exit_codes(study_file, tmp_path, capsys):
    parser = add_sweep_arguments(argparse.ArgumentParser())
    args = parser.parse_args([str(study_file), "--dry-run", "train.steps=6", "--shard", "1/2"])
    assert args.overrides == ["train.steps=6"] and args.shard == (1, 2) and args.dry_run
    assert sweep_main(args) == 0
    bad = parser.parse_args([str(study_file), "model.head.name=nope"])
    assert sweep_main(bad) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args([str(study_file), "--shard", "2/2"])


def test_kill_9_then_rerun_completes_every_cell_once(tmp_path):
    results = tmp_path / "results"
    study_file = write_study(tmp_path / "st.yaml", tiny_study("st", results))
    reference = write_study(tmp_path / "ref.yaml", tiny_study("ref", results))
    env = subprocess_env(FAKE_CELL_SECONDS="1.0")
    events = kill_and_resume(study_file, results / "st", reference, results / "ref", runner=FAKE_RUNNER, env=env,
                             timeout_s=120)
    if sum(e["event"] == "start" for e in events) == 5:  # killed mid-cell: its claim was taken over
        assert [e for e in events if e["event"] == "takeover"]


def test_two_concurrent_sweepers_run_each_cell_once(tmp_path):
    results = tmp_path / "results"
    study_file = write_study(tmp_path / "st.yaml", tiny_study("st", results, data_seeds=(0, 1, 2, 3)))
    log = tmp_path / "starts.log"
    env = subprocess_env(FAKE_CELL_SECONDS="0.5", FAKE_STARTS_LOG=str(log))
    procs = [sweep_process(study_file, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    starts = collections.Counter(line.split()[0] for line in log.read_text().splitlines())
    assert len(starts) == 8 and set(starts.values()) == {1}
    assert len({line.split()[1] for line in log.read_text().splitlines()}) == 2, "one sweeper did everything"
    assert pq.read_table(collect(results / "st")).num_rows == 16
