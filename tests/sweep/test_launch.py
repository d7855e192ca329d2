"""The local launcher with a fake cell runner (no training): skip/force/retry rules, dry run, shards, kill -9
and concurrent sweepers. The same scenarios with the real run_cell are in test_reliability.py."""
from __future__ import annotations

import argparse
import collections

import pyarrow.parquet as pq
import pytest
from sweep_helpers import (FAKE_RUNNER, fake_run_cell, kill_and_resume, subprocess_env, sweep_process, tiny_study,
                           write_study)

from paper_repro.config import ConfigError
from paper_repro.results import store
from paper_repro.results.collect import collect
from paper_repro.sweep import claims
from paper_repro.sweep.grid import load_study
from paper_repro.sweep.launch import add_sweep_arguments, run_sweep, sweep_main


@pytest.fixture
def study_file(tmp_path, tiny_conll_dir):
    # a data folder that exists wherever the tests run: the dry-run preflight calls a missing one an error
    return write_study(tmp_path / "st.yaml", tiny_study("st", tmp_path / "results", data_dir=tiny_conll_dir))


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


def test_stop_file_finishes_the_cell_in_flight_and_starts_no_other(study_file, tmp_path, capsys):
    """results/<study>/STOP: the running cell is written, no other starts, nothing counts as failed; the sweep
    refuses to start cells while it exists and runs the rest once it is deleted."""
    ran = []

    def runner(config):   # asks to stop while its cell runs
        ran.append(config.run_id)
        store.stop_file(config.results_dir, config.study).touch()
        return fake_run_cell(config)

    first = run_sweep(study_file, runner=runner, progress=False)
    stop = tmp_path / "results" / "st" / "STOP"
    assert first.ran == ran and len(ran) == 1 and first.ok and first.stop_file == str(stop)
    assert store.is_done(tmp_path / "results", "st", ran[0]) and "stopped by" in first.summary()
    assert not list((tmp_path / "results" / "st" / "claims").glob("*.claim"))
    again = run_sweep(study_file, runner=fake_run_cell, progress=False)
    assert again.ran == [] and again.stop_file and again.ok
    stop.unlink()
    rest = run_sweep(study_file, runner=fake_run_cell, progress=False)
    assert len(rest.ran) == 3 and not rest.stop_file and rest.skipped_done == ran


def test_finish_by_names_the_cells_it_cannot_price(study_file, tmp_path, capsys):
    """Cells whose backbone has no done cell, and whose price would need an encoder shape nobody has, are never
    priced at another backbone's cost: under --finish-by they start until the deadline itself, and the sweep says
    so, with their count and backbone."""
    import time

    from test_cost import done

    from paper_repro.config import apply_overrides

    cells = load_study(study_file).expand()
    other = apply_overrides(cells[0], {"model.backbone": str(tmp_path / "uninstalled-encoder")})
    done(other, 600.0, 200, 16)                          # the only timed cell: another backbone, shape unknown
    result = run_sweep(study_file, runner=fake_run_cell, progress=False, finish_by=time.time() + 3600)
    err = capsys.readouterr().err
    assert f"--finish-by: 4 cell(s) of {cells[0].model.backbone} cannot be priced" in err
    assert len(result.ran) == 4 and result.ok


def test_finish_by_starts_only_cells_whose_estimate_fits(study_file, tmp_path):
    """--finish-by: a cell starts only if 1.5 x its estimate ends in time; the estimate comes from the study's done
    cells (here: two cells that took 600 s each), and a sweep without a deadline is unaffected."""
    import time

    from test_cost import done

    from paper_repro.sweep.launch import FINISH_MARGIN, parse_finish_by, run_cells

    cells = load_study(study_file).expand()
    priced = {cells[0].run_id: 10.0, cells[1].run_id: 1000.0, cells[2].run_id: 1000.0, cells[3].run_id: 20.0}
    result = run_cells(cells, runner=fake_run_cell, progress=False, finish_by=time.time() + 100.0,
                       price=lambda cell: (priced.get(cell.run_id, 0.0), "test price"))
    # 15 s fits, 1500 s does not (left, the next is tried), 30 s fits
    assert result.ran == [cells[0].run_id, cells[3].run_id] and result.ok
    assert result.past_deadline == [cells[1].run_id, cells[2].run_id]
    assert result.deadline.startswith(f"{cells[1].run_id} (est. 16.7min from its test price, 1.5x that to be safe) and "
                                      "any cell that would not finish by ")
    for rid in result.ran:
        store.cell_paths(tmp_path / "results", "st", rid)["done"].unlink()   # as if not run: the next checks
    for config in cells[:2]:
        done(config, 600.0, config.train.steps, config.data.size)          # the study's own timings: 600 s a cell
    late = run_sweep(study_file, runner=fake_run_cell, progress=False, finish_by=time.time() + 600 * FINISH_MARGIN - 60)
    assert late.ran == [] and "2 left for lack of time" in late.summary() and late.ok
    on_time = run_sweep(study_file, runner=fake_run_cell, progress=False, finish_by=time.time() + 3 * 3600)
    assert len(on_time.ran) == 2 and not on_time.deadline
    assert parse_finish_by("+90m", now=1000.0) == 1000.0 + 5400 and parse_finish_by("+2h", now=0.0) == 7200.0
    import datetime as dt

    noon = dt.datetime(2026, 11, 26, 12, 0).timestamp()
    assert parse_finish_by("13:30", now=noon) == noon + 5400                # later today
    assert parse_finish_by("11:00", now=noon) == noon + 23 * 3600           # passed today: tomorrow
    assert parse_finish_by("2026-11-26T12:45", now=noon) == noon + 2700
    with pytest.raises(argparse.ArgumentTypeError, match="HH:MM"):
        parse_finish_by("soon")
    with pytest.raises(ConfigError, match="has passed"):
        run_sweep(study_file, runner=fake_run_cell, progress=False, finish_by=time.time() - 1)
    with pytest.raises(ConfigError, match="local launcher"):
        run_sweep(study_file, launcher="slurm", progress=False, finish_by=time.time() + 60)


def test_finish_by_prices_from_cpu_time_not_from_a_past_load(study_file, tmp_path, monkeypatch, capsys):
    """Done cells that ran starved (600 s of wall time for 60 s of CPU) do not make --finish-by refuse a cell that
    needs about a minute on a free core; an oversubscribed machine stretches the price by its load per core; a
    niced sweeper on an oversubscribed machine keeps the wall price; GPU cells' CPU time prices nothing."""
    import time

    from test_cost import done

    from paper_repro.sweep import cost

    def load(busy, niced=False):
        monkeypatch.setattr(cost.Load, "now", classmethod(lambda cls: cost.Load(busy, 2, 1, niced)))

    def undo(rids):
        for rid in rids:
            store.cell_paths(tmp_path / "results", "st", rid)["done"].unlink()

    cells = load_study(study_file).expand()
    for config in cells[:2]:
        done(config, 600.0, config.train.steps, config.data.size, cpu_s=60.0)
    pending = [c.run_id for c in cells[2:]]
    load(2.0)                                                   # two busy threads on two cores: no stretch
    free = run_sweep(study_file, runner=fake_run_cell, progress=False, finish_by=time.time() + 300)
    assert free.ran == pending and not free.deadline            # 1.5 x 60 s fits in 300 s; 1.5 x 600 s would not
    undo(pending)
    load(8.0)                                                   # 8 runnable on 2 cores: 4x
    busy = run_sweep(study_file, runner=fake_run_cell, progress=False, finish_by=time.time() + 300)
    assert busy.ran == []
    assert f"{pending[0]} (est. 4.0min from its CPU time / 1 thread(s) x load 4.00 per core" in busy.deadline
    load(3.0, niced=True)                                       # niced beside busy peers: the wall price stands
    niced = run_sweep(study_file, runner=fake_run_cell, progress=False, finish_by=time.time() + 300)
    assert niced.ran == [] and "(est. 10.0min from its wall time at the load its peers ran under (niced" in \
        niced.deadline
    capsys.readouterr()
    for config in cells[:2]:                                    # the same timings, recorded on a GPU
        done(config, 600.0, config.train.steps, config.data.size, cpu_s=60.0, device="cuda:NVIDIA H100 x1")
    load(2.0)
    gpu = run_sweep(study_file, runner=fake_run_cell, progress=False, finish_by=time.time() + 300)
    assert gpu.ran == [] and "(est. 10.0min from its wall time at the load its peers ran under," in gpu.deadline
    assert "no one-process CPU cell of st records its CPU time" in capsys.readouterr().err


def test_expected_wall_uses_a_cpu_price_only_as_strong_as_the_wall_price():
    from paper_repro.sweep.cost import WALL_HOW, DeadlinePrice, Load, expected_wall

    idle, busy = Load(1.0, 2, 1, False), Load(3.0, 2, 1, False)
    own = DeadlinePrice(600.0, "by_steps", 60.0, "by_steps", 1)
    assert expected_wall(own, idle)[0] == 60.0                   # room on the machine: the CPU time
    assert expected_wall(own, busy)[0] == 90.0                   # 3 runnable on 2 cores: 1.5x
    # two threads share the CPU time, but never more threads than the priced cells had
    assert expected_wall(DeadlinePrice(600.0, "by_steps", 60.0, "by_steps", 2), Load(1.0, 2, 2, False))[0] == 30.0
    assert expected_wall(own, Load(1.0, 16, 16, False))[0] == 60.0
    # the wall price from the cell's own head, the CPU price only from other heads (older cells had no CPU time)
    assert expected_wall(DeadlinePrice(600.0, "by_steps", 6.0, "by_backbone", 1), idle) == (600.0, WALL_HOW)
    assert expected_wall(DeadlinePrice(600.0, "by_backbone", 60.0, "by_backbone", 1), idle)[0] == 60.0
    assert expected_wall(DeadlinePrice(600.0, "by_steps"), idle) == (600.0, WALL_HOW)     # no CPU price
    assert expected_wall(DeadlinePrice(None, "unpriced"), idle)[0] is None
    # a niced process on an oversubscribed machine gets what is left: the larger, wall, price stands
    assert expected_wall(own, Load(3.0, 2, 1, True))[0] == 600.0
    assert expected_wall(DeadlinePrice(30.0, "by_steps", 60.0, "by_steps", 1), Load(3.0, 2, 1, True))[0] == 90.0
    assert expected_wall(own, Load(2.0, 2, 1, True))[0] == 60.0   # niced, but the cores are not oversubscribed
    now = Load.now()
    assert now.threads >= 1 and now.cores >= 1 and now.busy >= now.threads and now.stretch >= 1.0


def test_cli_exit_status_3_when_stopped_with_cells_left(study_file, tmp_path):
    from paper_repro.sweep.launch import STOPPED_EXIT

    parser = add_sweep_arguments(argparse.ArgumentParser())
    (tmp_path / "results" / "st").mkdir(parents=True)
    (tmp_path / "results" / "st" / "STOP").touch()
    args = parser.parse_args([str(study_file), "--runner", FAKE_RUNNER, "--no-progress", "--allow-dirty"])
    assert sweep_main(args) == STOPPED_EXIT == 3
    (tmp_path / "results" / "st" / "STOP").unlink()
    assert sweep_main(args) == 0


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
    assert "for 2 cells (0 from their method's time per step x their step budget, 0 from their backbone's (any method), 0 from their method's mean, 2 from their backbone's mean; 1 done cells timed" in out


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


# ------------------------------------------------------------------------------------- dry-run preflight
def fake_hub_cache(root, repo_id: str):
    """A minimal HF hub cache entry: refs/main -> a snapshot with config.json and weights."""
    folder = root / f"models--{repo_id.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0" * 40)
    snapshot = folder / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot / "model.safetensors").write_bytes(b"")
    return snapshot


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants

    root = tmp_path / "hf-hub"
    root.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(root))
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    return root


def dry_run_cli(study_path, *extra):
    parser = add_sweep_arguments(argparse.ArgumentParser())
    return sweep_main(parser.parse_args([str(study_path), "--dry-run", *extra]))


def test_preflight_ok(tmp_path, tiny_conll_dir, tiny_backbone_dir, hub_cache, capsys):
    fake_hub_cache(hub_cache, "some-org/cached-encoder")
    raw = tiny_study("st", tmp_path / "results", backbone=str(tiny_backbone_dir), data_dir=tiny_conll_dir)
    raw["grid"]["model.backbone"] = [str(tiny_backbone_dir), "some-org/cached-encoder"]
    assert dry_run_cli(write_study(tmp_path / "st.yaml", raw)) == 0
    out = capsys.readouterr().out
    block = out.split("\n\n")[-1].splitlines()     # the last block, after the cell table
    assert block[0] == "preflight (what a run needs on this machine):" and block[-1] == "preflight: ok"
    assert f"  ok       data: {tiny_conll_dir} (train.txt, valid.txt, test.txt; data.data_dir, 8 cells)" in block
    assert any(line.startswith(f"  ok       backbone {tiny_backbone_dir}: {tiny_backbone_dir} (a local folder") for line in block)
    assert any(line.startswith("  ok       backbone some-org/cached-encoder:") and "the HF cache" in line for line in block)
    assert out.index("would run") < out.index("preflight (")  # the cell table comes first


def test_preflight_notes_an_unpinned_hub_id_when_not_offline(tmp_path, tiny_conll_dir, hub_cache, capsys, monkeypatch):
    """Not offline, a hub id at main found in the cache: a run will ask the hub (and stop if it does not answer),
    so the preflight says so; pinned to a commit, the cached copy is what runs: ok."""
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(key, raising=False)
    fake_hub_cache(hub_cache, "some-org/cached-encoder")
    raw = tiny_study("st", tmp_path / "results", backbone="some-org/cached-encoder", data_dir=tiny_conll_dir)
    assert dry_run_cli(write_study(tmp_path / "st.yaml", raw)) == 0
    block = capsys.readouterr().out.split("\n\n")[-1].splitlines()
    line = next(x for x in block if "backbone some-org/cached-encoder" in x)
    assert line.startswith("  note ") and "not pinned to a commit" in line and "HF_HUB_OFFLINE=1" in line
    assert block[-1] == "preflight: ok"
    raw["base"]["model"]["revision"] = "0" * 40
    assert dry_run_cli(write_study(tmp_path / "st.yaml", raw)) == 0
    block = capsys.readouterr().out.split("\n\n")[-1].splitlines()
    assert any(x.startswith("  ok       backbone some-org/cached-encoder@" + "0" * 40) for x in block)


def test_preflight_missing_data_and_backbones_exit_2(tmp_path, hub_cache, capsys, monkeypatch):
    empty_model = tmp_path / "not-a-model"
    empty_model.mkdir()
    raw = tiny_study("st", tmp_path / "results", backbone=str(empty_model), data_dir=tmp_path / "no-data")
    raw["grid"]["model.backbone"] = [str(empty_model), "some-org/not-downloaded"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert dry_run_cli(write_study(tmp_path / "st.yaml", raw)) == 2
    out, err = capsys.readouterr()
    assert f"  MISSING  data: {tmp_path / 'no-data'}: data directory not found (data.data_dir, 8 cells)" in out
    assert f"  MISSING  backbone {empty_model}: not available offline: local path {empty_model}: no config.json" in out
    assert ("  MISSING  backbone some-org/not-downloaded: not available offline: the hub id some-org/not-downloaded "
            "is not in the HF cache (4 cells; HF_HUB_OFFLINE is set)") in out
    assert "preflight: 3 missing (a run would fail)" in out and "would run" in out
    assert err.count("\n") == 1 and err.startswith("paper-repro: error: preflight: missing data: ")
    assert not (tmp_path / "results").exists()      # a dry run writes nothing


def test_preflight_without_data_dir_names_the_hub(tmp_path, hub_cache, capsys, monkeypatch):
    monkeypatch.delenv("PAPER_REPRO_CONLL03", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    study_path = write_study(tmp_path / "st.yaml", tiny_study("st", tmp_path / "results"))
    assert dry_run_cli(study_path) == 2                # offline, no cached copy: a run would fail
    out = capsys.readouterr().out
    assert ("  MISSING  data: no data dir (data.data_dir and $PAPER_REPRO_CONLL03 unset, 4 cells): the hub dataset "
            "tomaarsen/conll2003 would be used; HF_HUB_OFFLINE is set; no prepared copy found: a run would fail") in out
    monkeypatch.setenv("PAPER_REPRO_CONLL03", str(tmp_path / "nowhere"))
    assert dry_run_cli(study_path) == 2                # an explicit data dir must be there
    assert (f"  MISSING  data: {tmp_path / 'nowhere'}: data directory not found ($PAPER_REPRO_CONLL03, 4 cells)"
            in capsys.readouterr().out)


def test_preflight_counts_only_a_prepared_hub_dataset_as_cached(tmp_path, hub_cache, monkeypatch):
    """Offline, `datasets` loads the hub dataset from its prepared copy only (`<namespace>___<name>/<config>/
    <version>/<hash>/dataset_info.json`), the same test `fetch-models --check` applies: the repo's raw files in
    the hub cache, or an empty datasets-cache folder, are missing; a prepared copy is ok."""
    from paper_repro.sweep.launch import preflight

    monkeypatch.delenv("PAPER_REPRO_CONLL03", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cells = load_study(write_study(tmp_path / "st.yaml", tiny_study("st", tmp_path / "results"))).expand()
    (hub_cache / "datasets--tomaarsen--conll2003" / "snapshots" / ("0" * 40)).mkdir(parents=True)
    folder = tmp_path / "hf-datasets" / "tomaarsen___conll2003"
    folder.mkdir(parents=True)
    lines, missing = preflight(cells)
    assert len(missing) == 1 and "tomaarsen/conll2003" in missing[0] and "no prepared copy found" in missing[0]
    prepared = folder / "default" / "0.0.0" / ("a" * 16)
    prepared.mkdir(parents=True)
    (prepared / "dataset_info.json").write_text("{}")
    lines, missing = preflight(cells)
    assert missing == [] and any(f"a prepared copy is cached ({folder})" in line for line in lines), lines


def test_a_real_sweep_checks_what_its_cells_need_before_claiming_any(tmp_path, hub_cache, monkeypatch):
    """No dry run: a missing data folder stops the sweep with one line before any cell is claimed (no failure
    records, no claims, nothing under results/), so fixing the folder and re-running needs no --retry-failed."""
    monkeypatch.setenv("PAPER_REPRO_CONLL03", str(tmp_path / "nowhere"))
    study_path = write_study(tmp_path / "st.yaml", tiny_study("st", tmp_path / "results"))
    with pytest.raises(ConfigError, match=r"^st: a run would fail, nothing started: data: .*nowhere: data directory "
                                          r"not found \(\$PAPER_REPRO_CONLL03, 4 cells\); `paper-repro sweep <study> "
                                          r"--dry-run` lists what every cell needs$"):
        run_sweep(study_path)
    assert not (tmp_path / "results").exists()
    # cells already done need nothing: the same sweep over a finished study skips them and succeeds
    run_sweep(study_path, runner=fake_run_cell, progress=False)
    again = run_sweep(study_path, progress=False)
    assert again.ok and again.ran == [] and len(again.skipped_done) == 4


def test_a_real_run_may_download_what_a_dry_run_calls_missing(tmp_path, tiny_conll_dir, hub_cache, monkeypatch):
    """Not offline, a hub backbone that is not cached: the dry run (which also answers for compute nodes without
    network) lists it as missing; a real run downloads it, so its preflight only notes it. Offline, both refuse."""
    from paper_repro.sweep.launch import preflight

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    cells = load_study(write_study(tmp_path / "st.yaml", tiny_study(
        "st", tmp_path / "results", backbone="some-org/not-downloaded", data_dir=tiny_conll_dir))).expand()
    lines, missing = preflight(cells)
    assert missing and "so a run would try to download it" in missing[0]
    lines, missing = preflight(cells, downloads=True)
    assert missing == [] and any(x.startswith("  note     backbone some-org/not-downloaded") for x in lines)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert preflight(cells, downloads=True)[1]


def test_a_pre_registered_test_naming_what_the_grid_does_not_run_is_an_error(tmp_path, tiny_conll_dir, capsys):
    """A typo in a hypothesis (method or size, or a stage the study lacks) stops the sweep, dry run included, with one
    line naming the test: otherwise the test would silently read `not run` in every report."""
    raw = tiny_study("st", tmp_path / "results", data_dir=tiny_conll_dir)
    study_path = tmp_path / "st.yaml"
    for test, message in (({"a": "dwat", "b": "last", "sizes": [8]}, "(H1).a: method 'dwat' has no cell in the grid "
                                                                     "(methods: dwatt, last)"),
                          ({"a": "dwatt", "b": "last", "sizes": [8, 16]}, "(H1).sizes: size 16 has no cell in the grid "
                                                                          "(sizes: 8)")):
        raw["hypotheses"] = {"stage": None, "tests": [{"id": "H1", "kind": "pooled", **test}]}
        assert dry_run_cli(write_study(study_path, raw)) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"st.yaml: hypotheses.tests[0] {message}" in err
    raw["hypotheses"]["tests"][0]["sizes"] = [8]
    assert dry_run_cli(write_study(study_path, raw)) == 0
    del raw["hypotheses"]["stage"]                      # the default stage, eval, in a study without stages
    assert dry_run_cli(write_study(study_path, raw)) == 2
    assert "hypotheses.stage: 'eval' (the default is eval), but the study has no stages" in capsys.readouterr().err
    staged = {**raw, "stages": [{"name": "tune", "grid": raw["grid"]}], "hypotheses": {"stage": "eval", "tests": []}}
    del staged["grid"]
    assert dry_run_cli(write_study(study_path, staged)) == 2
    assert "hypotheses.stage: 'eval' is not a stage of the study (tune)" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_preflight_runs_once_per_sweep(tmp_path, tiny_conll_dir, capsys):
    raw = {
        "study": "staged", "base": tiny_study("x", tmp_path / "results", data_dir=tiny_conll_dir)["base"],
        "stages": [{"name": "tune", "grid": {"model.head.name": ["last"], "data.data_seed": [100]}},
                   {"name": "eval", "grid": {"model.head.name": ["last", "dwatt"], "data.data_seed": [0]}}],
    }
    result = run_sweep(write_study(tmp_path / "staged.yaml", raw), dry_run=True)
    out = capsys.readouterr().out
    assert out.count("preflight (what a run needs") == 1 and out.count("preflight: ok") == 1
    assert out.index("== stage tune") < out.index("== stage eval") < out.index("preflight (")
    assert "data.data_dir, 3 cells" in out and result.preflight_missing == []


# -------------------------------------------------------------------------------------- dirty checkout
@pytest.fixture
def dirty(monkeypatch):
    from paper_repro.results import manifest

    monkeypatch.setattr(manifest, "git_state", lambda: ("d" * 40, True))
    monkeypatch.delenv("PAPER_REPRO_ALLOW_DIRTY", raising=False)


def sweep_cli(study_path, *extra):
    parser = add_sweep_arguments(argparse.ArgumentParser())
    return sweep_main(parser.parse_args([str(study_path), "--no-progress", "--runner", FAKE_RUNNER, *extra]))


def test_sweep_refuses_a_dirty_checkout(study_file, tmp_path, dirty, capsys, monkeypatch):
    assert sweep_cli(study_file) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("paper-repro: error: ") and "uncommitted changes" in err and "--allow-dirty" in err
    assert not (tmp_path / "results").exists()
    # a dry run says so instead of refusing
    assert sweep_cli(study_file, "--dry-run") == 0
    assert "`sweep` refuses to start without --allow-dirty" in capsys.readouterr().out
    # bad studies are still reported as such first
    assert sweep_cli(study_file, "model.head.name=nope") == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
    assert sweep_cli(study_file, "--allow-dirty") == 0
    assert "4 cells: 4 ran" in capsys.readouterr().out
    monkeypatch.setenv("PAPER_REPRO_ALLOW_DIRTY", "1")
    assert sweep_cli(study_file, "--force") == 0


def test_dirty_check_is_on_the_package_checkout(study_file, tmp_path, monkeypatch, capsys):
    import subprocess

    from paper_repro.results import manifest

    checkout = tmp_path / "checkout"
    (checkout / "paper_repro").mkdir(parents=True)
    (checkout / "paper_repro" / "m.py").write_text("a = 1\n")
    for args in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@e.org", "commit", "-qm", "x"]):
        subprocess.run(["git", "-C", str(checkout), *args], check=True, capture_output=True)
    monkeypatch.setattr(manifest, "REPO_ROOT", checkout)
    monkeypatch.delenv("PAPER_REPRO_ALLOW_DIRTY", raising=False)
    manifest.git_state.cache_clear()
    try:
        assert sweep_cli(study_file, "--dry-run") == 0                  # clean: nothing to say
        assert "git:" not in capsys.readouterr().out
        (checkout / "paper_repro" / "m.py").write_text("a = 2\n")
        manifest.git_state.cache_clear()
        assert sweep_cli(study_file) == 2
        assert f"{checkout} has uncommitted changes" in capsys.readouterr().err
    finally:
        manifest.git_state.cache_clear()
