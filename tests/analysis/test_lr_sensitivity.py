"""The post-hoc lr-sensitivity tables read the tuning cells the selection read, and the selection of a stage that
selects by the same rule while the reported stage's own is not written yet."""
import io

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


def _study(tmp_path, with_run_ids=True, stages=None):
    """The planted tuning stage, but dwatt's two 1000-sentence cells at lr 1e-3 collected under `budget_check` (the
    same run ids as cells of that earlier stage), and selection.csv as `budget_recheck` writes it while eval's gate
    is closed: the large bracket only (its cells are 1000-sentence cells), with the run ids of the tuning cells
    behind each row. `stages`: bracket -> the stage its rows are written under (None: not written)."""
    stages = {"large": "budget_recheck", "small": None} if stages is None else stages
    cells = tune_cells()
    shared = {run_id for run_id in cells if run_id.startswith("dwatt-n1000-") and "-lr0.001-" in run_id}
    assert len(shared) == 2
    for run_id, rows in cells.items():
        for r in rows:
            r["stage"] = "budget_check" if run_id in shared else "tune"
        write_cell(tmp_path, "lr", run_id, cell_table(rows), {})
    selection = pd.read_csv(io.StringIO(TUNE_SELECTION_CSV))
    selection["stage"] = selection["bracket"].map(stages)
    if with_run_ids:
        selection["run_ids"] = [" ".join(sorted(r for r in cells if r.startswith(f"{m}-n{size.split('=')[1]}-")
                                                and f"-lr{lr:g}-" in r))
                                for m, size, lr in zip(selection["method"], selection["tuned_at"], selection["head_lr"])]
    selection.dropna(subset=["stage"]).to_csv(tmp_path / "lr" / "selection.csv", index=False)
    return tmp_path / "lr"


def test_same_selection_stages(tmp_path):
    path = _yaml(tmp_path / "x.yaml")
    assert lr_sensitivity.same_selection_stages(path, "eval") == ["eval", "budget_recheck"]
    assert lr_sensitivity.same_selection_stages(path, "eval_other") == ["eval_other"]   # another metric: not the same
    assert lr_sensitivity.same_selection_stages(path, "tune") == ["tune"]


def test_tuning_cells_of_an_earlier_stage_and_a_borrowed_selection(tmp_path):
    study = _study(tmp_path)
    lr = lr_sensitivity.study_lr_tables(load_results(study), study, _yaml(tmp_path / "x.yaml"), "eval")
    assert lr["tune_stage"] == "tune" and lr["selection_stages"] == ["budget_recheck"]
    choice = lr["choice"].set_index(["size", "method"])
    # all three lrs of dwatt at 1000, the two cells collected under budget_check included, as the selection had them
    assert choice.loc[(1000, "dwatt"), "n_lrs"] == 3 and choice.loc[(1000, "dwatt"), "n_seeds"] == 2
    # the large bracket's lr comes from budget_recheck's rows (the same rule); the small one nobody wrote yet
    assert choice.loc[(1000, "dwatt"), "selected_lr"] == 3e-4 and choice.loc[(1000, "dwatt"), "grid_end"] == "inside"
    assert pd.isna(choice.loc[(100, "dwatt"), "selected_lr"])
    text = lr_sensitivity.lr_section(lr)
    assert "Selected lrs: stage `eval` has no rows in `selection.csv` yet" in text and "`budget_recheck`" in text
    assert "| minilm-l6 | sentences | 1000 | large | dwatt | 3 × 2 | 0.0003 | inside |" in text
    # once eval writes its rows (both brackets would be there; here the small one): its own first, then the rest
    study = _study(tmp_path, stages={"large": "budget_recheck", "small": "eval"})
    lr = lr_sensitivity.study_lr_tables(load_results(study), study, _yaml(tmp_path / "x.yaml"), "eval")
    choice = lr["choice"].set_index(["size", "method"])
    assert lr["selection_stages"] == ["eval", "budget_recheck"]
    assert choice.loc[(100, "dwatt"), "selected_lr"] == 1e-3 and choice.loc[(1000, "dwatt"), "selected_lr"] == 3e-4
    assert "Selected lrs: stage `eval`'s own rows, then those of stage(s) `budget_recheck`" in lr_sensitivity.lr_section(lr)


def test_without_run_ids_or_a_selection(tmp_path):
    """An older selection.csv (no run_ids) gives the tuning stage's own rows only; no selection for any equivalent
    stage leaves the selected lr unmarked, and the section says why."""
    study = _study(tmp_path, with_run_ids=False)
    lr = lr_sensitivity.study_lr_tables(load_results(study), study, _yaml(tmp_path / "x.yaml"), "eval")
    assert lr["choice"].set_index(["size", "method"]).loc[(1000, "dwatt"), "n_lrs"] == 2
    (study / "selection.csv").unlink()
    lr = lr_sensitivity.study_lr_tables(load_results(study), study, _yaml(tmp_path / "x.yaml"), "eval")
    assert lr["selection_stages"] == [] and lr["choice"]["selected_lr"].isna().all()
    assert "No selection for stage `eval` in `selection.csv` yet" in lr_sensitivity.lr_section(lr)
    # rows of a stage with another rule only (eval_other selects on strict F1): not eval's selection, nothing marked
    study = _study(tmp_path, stages={"large": "eval_other", "small": "eval_other"})
    lr = lr_sensitivity.study_lr_tables(load_results(study), study, _yaml(tmp_path / "x.yaml"), "eval")
    assert lr["selection_stages"] == [] and lr["choice"]["selected_lr"].isna().all()
    assert lr_sensitivity.selected_lrs(lr["selection"], None).empty
