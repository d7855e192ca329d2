"""The post-hoc lr-sensitivity tables read the tuning cells the selection read, and the selection of a stage that
selects by the same rule while the reported stage's own is not written yet."""
import pandas as pd

from paper_repro.analysis import lr_sensitivity
from paper_repro.analysis.load import load_results
from paper_repro.results.schema import cell_table
from paper_repro.results.store import write_cell

from .conftest import TUNE_SELECTION_CSV, tune_cells

SELECT = "{from: tune, param: train.head_lr, metric: f1}"


def _yaml(path):
    path.write_text("study: x\nstages:\n  - name: budget_check\n  - name: tune\n"
                    f"  - name: budget_recheck\n    select: {SELECT}\n  - name: eval\n    select: {SELECT}\n"
                    "  - name: eval_other\n    select: {from: tune, param: train.head_lr, metric: f1_strict}\n")
    return path


def _study(tmp_path, with_run_ids=True):
    """The planted tuning stage, but dwatt's two 1000-sentence cells at lr 1e-3 collected under `budget_check` (the
    same run ids as cells of that earlier stage), and selection.csv written for `budget_recheck` only (eval's gate
    still closed), with the run ids of every tuning cell behind each row."""
    cells = tune_cells()
    shared = {run_id for run_id in cells if run_id.startswith("dwatt-n1000-") and "-lr0.001-" in run_id}
    assert len(shared) == 2
    for run_id, rows in cells.items():
        for r in rows:
            r["stage"] = "budget_check" if run_id in shared else "tune"
        write_cell(tmp_path, "lr", run_id, cell_table(rows), {})
    selection = pd.read_csv(__import__("io").StringIO(TUNE_SELECTION_CSV)).assign(stage="budget_recheck")
    if with_run_ids:
        selection["run_ids"] = [" ".join(sorted(r for r in cells if r.startswith(f"{m}-n{size.split('=')[1]}-")
                                                and f"-lr{lr:g}-" in r))
                                for m, size, lr in zip(selection["method"], selection["tuned_at"], selection["head_lr"])]
    selection.to_csv(tmp_path / "lr" / "selection.csv", index=False)
    return tmp_path / "lr"


def test_same_selection_stages(tmp_path):
    path = _yaml(tmp_path / "x.yaml")
    assert lr_sensitivity.same_selection_stages(path, "eval") == ["eval", "budget_recheck"]
    assert lr_sensitivity.same_selection_stages(path, "eval_other") == ["eval_other"]   # another metric: not the same
    assert lr_sensitivity.same_selection_stages(path, "tune") == ["tune"]


def test_tuning_cells_of_an_earlier_stage_and_a_borrowed_selection(tmp_path):
    study = _study(tmp_path)
    lr = lr_sensitivity.study_lr_tables(load_results(study), study, _yaml(tmp_path / "x.yaml"), "eval")
    assert lr["tune_stage"] == "tune" and lr["selection_stage"] == "budget_recheck"
    choice = lr["choice"].set_index(["size", "method"])
    # all three lrs of dwatt at 1000, the two cells collected under budget_check included, as the selection had them
    assert choice.loc[(1000, "dwatt"), "n_lrs"] == 3 and choice.loc[(1000, "dwatt"), "n_seeds"] == 2
    # the selected lr comes from budget_recheck's rows (the same rule): 3e-4 at 1000, 1e-3 at 100
    assert choice.loc[(1000, "dwatt"), "selected_lr"] == 3e-4 and choice.loc[(100, "dwatt"), "selected_lr"] == 1e-3
    assert choice.loc[(1000, "dwatt"), "grid_end"] == "inside"
    text = lr_sensitivity.lr_section(lr)
    assert "The selected lr is stage `budget_recheck`'s selection" in text
    assert "| minilm-l6 | sentences | 1000 | large | dwatt | 3 × 2 | 0.0003 | inside |" in text


def test_without_run_ids_or_a_selection(tmp_path):
    """An older selection.csv (no run_ids) gives the tuning stage's own rows only; no selection for any equivalent
    stage leaves the selected lr unmarked, and the section says why."""
    study = _study(tmp_path, with_run_ids=False)
    lr = lr_sensitivity.study_lr_tables(load_results(study), study, _yaml(tmp_path / "x.yaml"), "eval")
    assert lr["choice"].set_index(["size", "method"]).loc[(1000, "dwatt"), "n_lrs"] == 2
    (study / "selection.csv").unlink()
    lr = lr_sensitivity.study_lr_tables(load_results(study), study, _yaml(tmp_path / "x.yaml"), "eval")
    assert lr["selection_stage"] is None and lr["choice"]["selected_lr"].isna().all()
    assert "No selection for stage `eval` in `selection.csv` yet" in lr_sensitivity.lr_section(lr)
