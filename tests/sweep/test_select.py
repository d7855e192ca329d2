"""Staged studies: the lr selection reads only the tuning stage's dev rows, applies brackets and the
pre-registered tie rule, and the selecting stage's cells carry the chosen value; the budget check's verdict."""
from __future__ import annotations

import threading
import time

import pandas as pd
import pytest
from sweep_helpers import fake_rows

from paper_repro.config import ConfigError
from paper_repro.results import store
from paper_repro.results.schema import cell_table
from paper_repro.sweep import select
from paper_repro.sweep.grid import StudyConfig
from paper_repro.sweep.launch import run_sweep

# dev F1 of a tuning cell: (method, size, head_lr) -> value; the test rows get the opposite ranking, so a
# selection that read test rows would pick the other lr
DEV = {("last", 20, 1e-4): 0.50, ("last", 20, 1e-3): 0.60, ("dwatt", 20, 1e-4): 0.70, ("dwatt", 20, 1e-3): 0.65,
       ("last", 40, 1e-4): 0.80, ("last", 40, 1e-3): 0.7995, ("dwatt", 40, 1e-4): 0.60, ("dwatt", 40, 1e-3): 0.90}


def staged(results_dir, tie_tolerance=0.001, tie_break="lower", recheck: dict | None = None) -> StudyConfig:
    """check (report only) -> tune -> [recheck: the budget rule again at each method's selected lr, a gate] -> eval"""
    return StudyConfig.from_dict(staged_raw(results_dir, recheck, tie_tolerance, tie_break), source="staged.yaml")


def staged_raw(results_dir, recheck: dict | None = None, tie_tolerance=0.001, tie_break="lower") -> dict:
    raw = {
        "study": "staged",
        "base": {"results_dir": str(results_dir), "model": {"backbone": "minilm-l6"},
                 "train": {"step_rule": "fixed", "steps": 5, "warmup_steps": 1}},
        "stages": [
            {"name": "check", "check": {"param": "train.min_epochs", "max_gain": 0.01},
             "grid": {"model.head.name": ["last"], "data.size": [40], "train.min_epochs": [5.0, 10.0],
                      "data.data_seed": [100, 101]}},
            {"name": "tune", "grid": {"model.head.name": ["last", "dwatt"], "data.size": [20, 40],
                                      "train.head_lr": [1e-4, 1e-3], "data.data_seed": [100, 101]}},
            *([{"name": "recheck",
                "select": {"from": "tune", "param": "train.head_lr", "match": ["model.backbone", "model.head.name"],
                           "brackets": [{"label": "large", "tune": {"data.size": 40}, "apply": {"data.size": [40]}}]},
                "check": recheck,
                "grid": {"model.head.name": ["last", "dwatt"], "data.size": [40], "train.min_epochs": [5.0, 10.0],
                         "data.data_seed": [100, 101]}}] if recheck is not None else []),
            {"name": "eval",
             "select": {"from": "tune", "param": "train.head_lr", "match": ["model.backbone", "model.head.name"],
                        "brackets": [{"label": "small", "tune": {"data.size": 20}, "apply": {"data.size": [10, 20]}},
                                     {"label": "large", "tune": {"data.size": 40}, "apply": {"data.size": [40]}}],
                        "tie_tolerance": tie_tolerance, "tie_break": tie_break},
             "grid": {"model.head.name": ["last", "dwatt"], "data.size": [10, 20, 40], "data.data_seed": [0, 1]}},
        ],
    }
    return raw


def write_fake(cell, dev: float, test: float) -> None:
    rows = fake_rows(cell, dev)
    rows[1] = {**fake_rows(cell, test)[1]}
    store.write_cell(cell.results_dir, cell.study, cell.run_id, cell_table(rows), {"config": cell.to_dict()})


def run_tuning(study: StudyConfig) -> None:
    for cell in study.expand(stage="tune"):
        dev = DEV[(cell.model.head.name, cell.data.size, cell.train.head_lr)] + (0.01 if cell.data.data_seed == 101 else 0)
        write_fake(cell, dev, 1.0 - dev)


def test_stages_expand_with_ties_and_wait_for_their_selection(tmp_path):
    study = staged(tmp_path)
    assert [len(study.expand(stage=s.name, pending="placeholder")) for s in study.stages] == [4, 16, 12]
    assert {c.stage for c in study.expand(stage="tune")} == {"tune"}
    assert all(c.train.seed == c.data.data_seed for c in study.expand(pending="placeholder"))
    assert study.expand(stage="eval") == []                     # no selection yet: skipped
    with pytest.raises(ConfigError, match="needs the selection from stage tune"):
        study.expand(stage="eval", pending="error")
    with pytest.raises(select.SelectionPending, match="0 of 16 cells done"):
        select.compute_selection(study, "eval")


def test_selection_uses_dev_rows_brackets_and_the_tie_rule(tmp_path):
    study = staged(tmp_path)
    run_tuning(study)
    selection = select.compute_selection(study, "eval")
    chosen = {(c.model.head.name, c.data.size): c.train.head_lr
              for c in study.expand(stage="eval", selections={"eval": selection})}
    assert chosen == {("last", 10): 1e-3, ("last", 20): 1e-3, ("dwatt", 10): 1e-4, ("dwatt", 20): 1e-4,
                      # last at 40: 0.8050 vs 0.8045 mean dev, within the 0.001 tolerance -> the lower lr
                      ("last", 40): 1e-4, ("dwatt", 40): 1e-3}
    table = selection.table()
    assert len(table) == 8 and table["selected"].sum() == 4
    row = table[(table["method"] == "last") & (table["bracket"] == "large") & (table["head_lr"] == 1e-3)].iloc[0]
    assert row["n"] == 2 and row["dev_f1_mean"] == pytest.approx(0.8045)
    # the tuning cells behind the mean, by run id: the two seeds of that arm, lr and bracket's size
    tuned = {c.run_id: c for c in study.expand(stage="tune")}
    behind = [tuned[r] for r in row["run_ids"].split()]
    assert len(behind) == 2 and {c.data.data_seed for c in behind} == {c.data.data_seed for c in tuned.values()}
    assert all((c.model.head.name, c.train.head_lr, c.data.size) == ("last", 1e-3, 40) for c in behind)
    # higher tie break, or no tolerance: last at 40 takes 1e-4 (the strictly better mean) either way
    strict = select.compute_selection(staged(tmp_path, tie_tolerance=0.0), "eval")
    assert strict.chosen[("minilm-l6", "last", "large")] == 1e-4
    higher = select.compute_selection(staged(tmp_path, tie_break="higher"), "eval")
    assert higher.chosen[("minilm-l6", "last", "large")] == 1e-3


def test_budget_check_verdict_and_stage_tables(tmp_path):
    study = staged(tmp_path)
    for cell in study.expand(stage="check"):
        write_fake(cell, 0.70 if cell.train.min_epochs == 5.0 else 0.705, 0.0)
    table = select.budget_check(study, "check")
    assert list(table["verdict"]) == ["the rule", "rule stands"]
    assert table["gain_points"].iloc[1] == pytest.approx(0.5)
    run_tuning(study)
    written = select.write_stage_tables(study)
    assert sorted(p.name for p in written) == ["budget_check.csv", "selection.csv"]
    assert len(pd.read_csv(tmp_path / "staged" / "selection.csv")) == 8


def test_two_check_stages_share_budget_check_csv_by_stage(tmp_path):
    """A study with two budget checks (e.g. one per backbone) writes both into budget_check.csv, one `stage` each;
    the second no longer overwrites the first."""
    check = {"param": "train.min_epochs", "max_gain": 0.01}
    raw = {"study": "staged", "base": {"results_dir": str(tmp_path), "model": {"backbone": "minilm-l6"},
                                       "train": {"step_rule": "fixed", "steps": 5, "warmup_steps": 1}},
           "stages": [{"name": name, "check": check,
                       "grid": {"model.head.name": [head], "data.size": [40], "train.min_epochs": [5.0, 10.0],
                                "data.data_seed": [100, 101]}}
                      for name, head in (("check", "last"), ("check_again", "dwatt"))]}
    study = StudyConfig.from_dict(raw, source="staged.yaml")
    for stage in ("check", "check_again"):
        for cell in study.expand(stage=stage):
            write_fake(cell, 0.70 if cell.train.min_epochs == 5.0 else 0.75, 0.0)
    written = select.write_stage_tables(study)
    assert [p.name for p in written] == ["budget_check.csv"]
    table = pd.read_csv(tmp_path / "staged" / "budget_check.csv")
    assert list(table["stage"]) == ["check", "check", "check_again", "check_again"]
    assert list(table["method"]) == ["last", "last", "dwatt", "dwatt"]
    assert list(table["verdict"]) == ["the rule", "rule too short"] * 2


def test_sweep_runs_stages_in_order_and_stops_before_a_pending_selection(tmp_path):
    study = staged(tmp_path)
    result = run_sweep(study, stage="check", runner="sweep_helpers:fake_run_cell", progress=False)
    assert len(result.ran) == 4 and result.stopped_at is None
    result = run_sweep(study, runner="sweep_helpers:fake_run_cell", progress=False)
    # check done already; tune runs, except its 2 cells that equal check cells (last, 40, lr 1e-3, min_epochs 5:
    # the same run_id, run once); then eval's selection is made from the (fake) tuning results
    assert len(result.skipped_done) == 4 + 2 and len(result.ran) == 16 - 2 + 12
    assert (tmp_path / "staged" / "selection.csv").exists()


def test_stop_file_stops_a_staged_sweep_between_stages(tmp_path):
    """STOP written during stage `check`: its cell in flight is written, then no later stage starts."""
    from paper_repro.results import store

    study = staged(tmp_path)
    seen = []

    def runner(config):
        seen.append(config.stage)
        if len(seen) == 4:           # the check stage's last cell asks to stop
            store.stop_file(config.results_dir, config.study).touch()
        from sweep_helpers import fake_run_cell
        return fake_run_cell(config)

    result = run_sweep(study, runner=runner, progress=False)
    assert seen == ["check"] * 4 and len(result.ran) == 4 and result.stop_file and result.ok
    assert result.stopped_at is None                       # not a selection or a gate: the file


GATE = {"param": "train.min_epochs", "rule": 5.0, "max_gain": 0.01, "gate": True}


def run_recheck(study: StudyConfig, gain: dict[str, float]) -> None:
    """The recheck cells at 10 epochs (those at 5 are tune cells): dev = the tune cell's + gain[method]."""
    selection = select.compute_selection(study, "recheck")
    for cell in study.expand(stage="recheck", selections={"recheck": selection}):
        if cell.train.min_epochs == 10.0:
            base = DEV[(cell.model.head.name, 40, cell.train.head_lr)] + (0.01 if cell.data.data_seed == 101 else 0)
            write_fake(cell, base + gain[cell.model.head.name], 0.0)


def test_a_gating_budget_check_at_the_selected_lr_blocks_later_stages_until_it_passes(tmp_path):
    study = staged(tmp_path, recheck=GATE)
    run_tuning(study)
    # the recheck selects like eval's large bracket: last at 1e-4, dwatt at 1e-3; its 5-epoch cells are tune cells
    recheck = study.expand(stage="recheck", selections={"recheck": select.compute_selection(study, "recheck")})
    assert {(c.model.head.name, c.train.head_lr) for c in recheck} == {("last", 1e-4), ("dwatt", 1e-3)}
    tune_ids = {c.run_id for c in study.expand(stage="tune")}
    assert sum(c.run_id in tune_ids for c in recheck) == 4
    kind, why = select.gate_blocker(study, "eval")
    assert kind == "pending" and "stage recheck is not complete (4 of 8 cells done" in why
    assert select.gate_blocker(study, "recheck") is None and select.gate_blocker(study, "tune") is None
    assert "eval" not in select.selections_for(study)           # status counts eval's cells as waiting
    # 10 epochs gains dwatt 2 dev points: the rule is too short, eval never starts, the sweep is not ok
    run_recheck(study, {"last": 0.001, "dwatt": 0.02})
    kind, why = select.gate_blocker(study, "eval")
    assert kind == "failed" and "too short for dwatt" in why and "+2.00 dev points at min_epochs=10.0" in why
    table = select.budget_check(study, "recheck")
    assert list(table["verdict"]) == ["the rule", "rule stands", "the rule", "rule too short"]
    result = run_sweep(study, runner="sweep_helpers:fake_run_cell", progress=False)
    assert result.stopped_at == "eval" and result.gate_failed and not result.ok
    assert "gating budget check of stage recheck failed" in result.summary()
    assert not any(c.stage == "eval" for c in study.expand(selections=select.selections_for(study)))
    assert not (tmp_path / "staged" / "selection.csv").read_text().count(",eval\n")   # no eval rows written
    # under 1 point for both: the gate opens and eval runs at the selected lrs
    run_recheck(study, {"last": 0.001, "dwatt": 0.005})
    assert select.gate_blocker(study, "eval") is None
    result = run_sweep(study, runner="sweep_helpers:fake_run_cell", progress=False)
    assert result.ok and result.stopped_at is None and len(result.ran) == 12
    checks = pd.read_csv(tmp_path / "staged" / "budget_check.csv")
    assert set(checks["stage"]) == {"check", "recheck"}


def test_a_gate_never_passes_vacuously_and_status_says_it_failed(tmp_path):
    """An override pinning the checked key leaves no budget above the rule: the gate fails instead of passing;
    `paper-repro status` names the failed gate; budget_check.csv says at which lr each method was checked."""
    from paper_repro.sweep.status import status

    run_tuning(staged(tmp_path, recheck=GATE))
    run_recheck(staged(tmp_path, recheck=GATE), {"last": 0.001, "dwatt": 0.005})
    import yaml

    from paper_repro.sweep.grid import load_study
    path = tmp_path / "staged.yaml"
    raw = yaml.safe_load(yaml.safe_dump(staged_raw(tmp_path, GATE)))
    path.write_text(yaml.safe_dump(raw))
    assert select.gate_blocker(load_study(str(path)), "eval") is None
    kind, why = select.gate_blocker(load_study(str(path), ["train.min_epochs=5.0"]), "eval")
    assert kind == "failed" and "compares no budget above its rule for last at size 40, dwatt at size 40" in why
    table = select.budget_check(load_study(str(path)), "recheck")
    assert list(zip(table["method"], table["head_lr"])) == [("last", 1e-4)] * 2 + [("dwatt", 1e-3)] * 2
    run_recheck(staged(tmp_path, recheck=GATE), {"last": 0.001, "dwatt": 0.02})
    text = status(tmp_path / "staged", path)
    assert "GATE FAILED before stage eval: the gating budget check of stage recheck failed" in text


def test_a_gate_naming_stages_blocks_only_those(tmp_path):
    study = staged(tmp_path, recheck={**GATE, "gate": ["eval"]})
    run_tuning(study)
    assert select.gate_blocker(study, "eval")[0] == "pending"
    with pytest.raises(ConfigError, match=r"check.gate: 'tune' is not a later stage \(eval\)"):
        staged(tmp_path, recheck={**GATE, "gate": ["tune"]})


def test_a_report_only_check_never_blocks(tmp_path):
    study = staged(tmp_path, recheck={**GATE, "gate": False})
    run_tuning(study)
    run_recheck(study, {"last": 0.05, "dwatt": 0.05})               # rule far too short, but not a gate
    assert select.gate_blocker(study, "eval") is None
    assert "eval" in select.selections_for(study)


def test_bad_stage_blocks_are_one_line_errors():
    base = {"study": "s", "base": {"model": {"backbone": "minilm-l6"}}}
    bad = [
        ({"stages": [{"name": "a", "grid": {"data.size": [1]}}], "grid": {"data.size": [1]}}, "either stages or grid"),
        ({"stages": [{"name": "a", "grid": {"data.size": [1]}, "select": {"from": "zzz"}}]}, "expected an earlier stage"),
        ({"stages": [{"name": "a", "grid": {"data.size": [1]}},
                     {"name": "b", "grid": {"data.size": [1]}, "select": {"from": "a", "param": "train.nope"}}]},
         "unknown config key"),
        ({"stages": [{"name": "a", "grid": {"data.size": [1]}}, {"name": "a", "grid": {"data.size": [2]}}]}, "duplicate stage"),
        ({"grid": {"train.seed": [0, 1]}}, "train.seed is tied to data.data_seed"),
        ({"stages": [{"name": "a", "grid": {"data.size": [1]}, "check": {"param": "train.min_epochs", "gate": "yes"}}]},
         r"stages\[0\] \(a\)\.check\.gate: expected true"),
        ({"stages": [{"name": "a", "grid": {"data.size": [1]}, "check": {"param": "train.min_epochs", "gates": True}}]},
         "check: unknown key gates"),
    ]
    for extra, message in bad:
        with pytest.raises(ConfigError, match=message):
            StudyConfig.from_dict({**base, **extra}, source="s.yaml")
    # `ties: {}` frees the init seed
    free = StudyConfig.from_dict({**base, "ties": {}, "grid": {"train.seed": [0, 1]}}, source="s.yaml")
    assert [c.train.seed for c in free.expand()] == [0, 1]


def test_selection_and_budget_checks_never_read_test_rows_or_evaluation_seeds(tmp_path):
    """`split: test` in a select or check block is refused when the study loads; a selection whose source stage
    shares (data_seed, seed) with the hypotheses' stage (the reported one) is refused when it is computed."""
    for where, block in (("select", {"from": "tune", "param": "train.head_lr", "split": "test",
                                     "brackets": [{"label": "all", "tune": {}, "apply": {}}]}),
                         ("check", {"param": "train.min_epochs", "split": "test"})):
        raw = staged_raw(tmp_path)
        raw["stages"][2 if where == "select" else 0][where] = block
        with pytest.raises(ConfigError, match=rf"{where}\.split: a .* reads dev rows only"):
            StudyConfig.from_dict(raw, source="s.yaml")
    raw = staged_raw(tmp_path)
    raw["hypotheses"] = {"stage": "eval", "tests": []}
    raw["stages"][1]["grid"]["data.data_seed"] = [100, 1]            # a tuning seed that is also an eval seed
    study = StudyConfig.from_dict(raw, source="s.yaml")
    for cell in study.expand(stage="tune"):
        write_fake(cell, 0.5, 0.5)
    with pytest.raises(ConfigError, match=r"stage eval selects from stage tune, whose \(data_seed, seed\) "
                                          r"\[\(1, 1\)\] are evaluation seeds of stage eval"):
        select.compute_selection(study, "eval")
    raw["hypotheses"] = {}                                            # nothing reported: nothing to protect
    assert select.compute_selection(StudyConfig.from_dict(raw, source="s.yaml"), "eval").chosen


def test_with_wait_a_sweeper_waits_at_a_stage_boundary_for_a_cell_another_sweeper_runs(tmp_path, monkeypatch, capsys):
    """A tuning cell is claimed by another sweeper (here: this test) and not finished: a sweeper with --wait runs
    every other cell, then waits at `eval` (its selection needs that cell) instead of stopping, and runs eval once
    the cell is done and its claim released."""
    from sweep_helpers import fake_run_cell

    from paper_repro.sweep import claims, launch

    study = staged(tmp_path)
    monkeypatch.setattr(launch, "LOCAL_WAIT_POLL_S", 0.05)
    held = study.expand(stage="tune")[-1]
    claim = claims.try_claim(store.study_dir(study.results_dir, study.study), held.run_id)
    assert claim is not None
    result: list = []
    sweeper = threading.Thread(target=lambda: result.append(
        run_sweep(study, runner="sweep_helpers:fake_run_cell", progress=False, wait=True, poll_s=0.05)))
    sweeper.start()
    out, deadline = "", time.monotonic() + 120
    while "[sweep] stage eval: waits while other sweepers run 1 cell(s) (its selection:" not in out:
        assert sweeper.is_alive(), f"the sweeper stopped instead of waiting: {out}"
        assert time.monotonic() < deadline
        time.sleep(0.05)
        out += capsys.readouterr().out
    others = [c for c in study.expand(stage="tune") + study.expand(stage="check") if c.run_id != held.run_id]
    assert all(store.is_done(c.results_dir, c.study, c.run_id) for c in others)
    with claim:                                      # the other sweeper finishes its cell and releases the claim
        fake_run_cell(held)
    sweeper.join(timeout=120)
    assert result and result[0].ok and result[0].stopped_at is None
    eval_ids = {c.run_id for c in study.expand(stage="eval", selections=select.selections_for(study))}
    assert len(eval_ids) == 12 and eval_ids <= set(result[0].ran) and held.run_id not in result[0].ran


def test_wait_stops_when_no_other_sweeper_runs_a_cell(tmp_path, monkeypatch):
    """--wait never hangs on what no one is running: a failed tuning cell leaves eval's selection pending, and a
    sweeper alone stops there as without --wait."""
    monkeypatch.setenv("FAKE_FAIL_METHODS", "dwatt")
    started = time.monotonic()
    result = run_sweep(staged(tmp_path), runner="sweep_helpers:fake_run_cell", progress=False, wait=True)
    assert result.stopped_at == "eval" and result.failed and time.monotonic() - started < 60


def test_wait_is_not_fooled_by_a_peer_finishing_the_gate_between_two_looks(tmp_path, monkeypatch):
    """The last gating cell is finished by its sweeper right after this one looked at the gate: the claims are
    read first, so this sweeper sees the gate pass instead of stopping before eval."""
    from paper_repro.sweep import claims, launch

    study = staged(tmp_path, recheck=GATE)
    run_tuning(study)
    selection = select.compute_selection(study, "recheck")
    tenths = [c for c in study.expand(stage="recheck", selections={"recheck": selection}) if c.train.min_epochs == 10.0]
    held, rest = tenths[-1], tenths[:-1]

    def finish(cell):
        base = DEV[(cell.model.head.name, 40, cell.train.head_lr)] + (0.01 if cell.data.data_seed == 101 else 0)
        write_fake(cell, base + 0.001, 0.0)

    for cell in rest:
        finish(cell)
    study_dir = store.study_dir(study.results_dir, study.study)
    claim = claims.try_claim(study_dir, held.run_id)
    real = claims.live_claims

    def peer_finishes_first(*args, **kwargs):        # the peer completes the gate just before the claims are read
        if claim.holds():
            finish(held)
            claim.release()
        return real(*args, **kwargs)

    monkeypatch.setattr(launch.claims, "live_claims", peer_finishes_first)
    monkeypatch.setattr(launch, "LOCAL_WAIT_POLL_S", 0.05)
    result = run_sweep(study, runner="sweep_helpers:fake_run_cell", progress=False, wait=True, poll_s=0.05)
    assert result.ok and result.stopped_at is None and not claim.holds()
    assert len([rid for rid in result.ran if rid.startswith(("last-sentences10-", "dwatt-sentences10-"))]) == 4


def test_wait_does_not_wait_for_a_claim_whose_heartbeat_stopped(tmp_path, monkeypatch):
    """A claim of another host (outside Slurm, no --steal-stale) stays 'live' forever; with no heartbeat for
    LOCAL_WAIT_HEARTBEAT_S it is not waited for: the sweeper stops as without --wait."""
    import json
    import os

    from paper_repro.sweep import claims

    study = staged(tmp_path)
    run_tuning(study)
    held = study.expand(stage="tune")[-1]
    store.cell_paths(held.results_dir, held.study, held.run_id)["done"].unlink()
    path = claims.claim_path(store.study_dir(study.results_dir, study.study), held.run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": "another-host", "pid": 1, "token": "t", "time": 0}))
    assert claims.claim_state(path)[0] == "live"
    old = time.time() - 3600
    os.utime(path, (old, old))
    monkeypatch.setenv("FAKE_CELL_SECONDS", "0")
    started = time.monotonic()
    result = run_sweep(study, runner="sweep_helpers:fake_run_cell", progress=False, wait=True, poll_s=0.05)
    assert result.stopped_at == "eval" and time.monotonic() - started < 60
