"""`paper-repro status`: progress per stage and axis, the compute still to run, and PROGRESS.md for the README."""
from __future__ import annotations

from sweep_helpers import fake_run_cell, tiny_study, write_study
from test_cost import done
from test_select import run_tuning, staged_raw

from paper_repro.sweep import select
from paper_repro.sweep.grid import load_study
from paper_repro.sweep.launch import run_sweep
from paper_repro.sweep.status import PROGRESS_FILE, progress_markdown, status, status_main


def test_status_states_what_is_still_to_run(tmp_path):
    study_file = write_study(tmp_path / "st.yaml", tiny_study("st", tmp_path / "results"))
    cells = load_study(study_file).expand()
    for config in cells[:2]:
        done(config, 30.0, config.train.steps, config.data.size)
    text = status(tmp_path / "results" / "st", study_file)
    assert f"still to run: {len(cells) - 2} cells; estimated cost: " in text and "STOP" not in text
    (tmp_path / "results" / "st" / "STOP").touch()
    assert "STOP exists: sweepers of this study start no new cell" in status(tmp_path / "results" / "st", study_file)


def test_status_of_a_complete_staged_study_has_nothing_still_to_run(tmp_path):
    """The selecting stages' cells are counted with their selected values (not the placeholder's base value)."""
    study_file = write_study(tmp_path / "staged.yaml", staged_raw(tmp_path))
    result = run_sweep(study_file, runner="sweep_helpers:fake_run_cell", progress=False)
    assert result.ok and result.stopped_at is None
    text = status(tmp_path / "staged", study_file)
    assert text.startswith("study staged: 30/30 done, 0 running, 0 failed, 0 pending") and "still to run" not in text


def test_progress_markdown_per_stage_and_its_file(tmp_path, capsys):
    """Done/all per stage (cells that wait for a selection or gate counted), failed, compute left and state."""
    import argparse

    study_file = write_study(tmp_path / "staged.yaml", staged_raw(tmp_path))
    study = load_study(study_file)
    run_tuning(study)                                    # tune done (fake timings: no manifest timings)
    for cell in study.expand(stage="check"):
        fake_run_cell(cell)                              # manifests with timings: the price of the rest
    text = progress_markdown(tmp_path / "staged", study_file)
    assert text.startswith("Study `staged` (`") and "cells done; the other 12 are estimated at " in text
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in text.splitlines() if line.startswith("| ") and not line.startswith("| stage")}
    assert rows["check"] == ["4/4", "0", "–", "–", "complete"] and rows["tune"][0] == "14/14"
    assert rows["eval"][0] == "0/12" and rows["eval"][4] == "runnable"
    assert rows["eval"][3] == "–"                       # the fake cells record no CPU time: none priced in it
    assert status_main(argparse.Namespace(study_dir=str(tmp_path / "staged"), study=str(study_file), write=True)) == 0
    assert (tmp_path / "staged" / PROGRESS_FILE).read_text() == text
    assert status_main(argparse.Namespace(study_dir=str(tmp_path / "staged"), study=None, write=True)) == 2
    assert "status --write needs --study" in capsys.readouterr().err


def test_progress_has_a_row_per_labelled_sub_grid_of_a_stage(tmp_path):
    """A stage whose labelled sub-grids set the order its cells run in (the studies' "Cell order") shows each part's
    cells done, failed, compute left and state under the stage's own row; the parts add up to the stage."""
    raw = staged_raw(tmp_path)
    eval_stage = raw["stages"][-1]
    axes = eval_stage.pop("grid")
    eval_stage["grids"] = [{"label": "tested first", "grid": {**axes, "model.head.name": ["dwatt"]}},
                           {"label": "last after", "grid": {**axes, "model.head.name": ["last"]}}]
    study_file = write_study(tmp_path / "staged.yaml", raw)
    study = load_study(study_file)

    def rows_now():
        text = progress_markdown(tmp_path / "staged", study_file)
        return text, {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
                      for line in text.splitlines() if line.startswith("| ") and not line.startswith("| stage")}

    _, rows = rows_now()   # before the tune stage: the placeholder cells, split the same way
    assert rows["eval"][0] == "0/12" and rows["eval"][4] == "waits for its selection"
    assert rows["eval"][2] == "unknown"                    # no done cell yet prices anything
    assert rows["eval · tested first"] == rows["eval · last after"] == [
        "0/6", "0", "unknown", rows["eval"][3], "waits for its selection"]
    run_tuning(study)
    for cell in study.expand(stage="check"):
        done(cell, 30.0, cell.train.steps, cell.data.size, cpu_s=25.0)
    first = study.expand(stage="eval", selections={"eval": select.compute_selection(study, "eval")})
    assert [c.model.head.name for c in first] == ["dwatt"] * 6 + ["last"] * 6   # the sub-grids' order
    for cell in first[:6]:
        done(cell, 30.0, cell.train.steps, cell.data.size, cpu_s=25.0)
    failed = tmp_path / "staged" / "failures" / f"{first[6].run_id}.txt"
    failed.parent.mkdir(parents=True, exist_ok=True)
    failed.write_text("Traceback: a failed attempt\n")
    text, rows = rows_now()
    assert rows["eval"][:2] == ["6/12", "1"] and rows["eval"][4] == "runnable"
    assert rows["eval · tested first"] == ["6/6", "0", "–", "–", "complete"]
    assert rows["eval · last after"][:2] == ["0/6", "1"] and rows["eval · last after"][4] == "runnable"
    assert rows["eval · last after"][3] == rows["eval"][3] != "–"   # all that is left of the stage is this part
    assert "tune ·" not in text and "check ·" not in text              # one sub-grid: no part rows
    for part in eval_stage["grids"]:
        part.pop("label")                                              # sub-grids without labels: no part rows
    write_study(study_file, raw)
    text, rows = rows_now()
    assert rows["eval"][:2] == ["6/12", "1"] and "eval ·" not in text
