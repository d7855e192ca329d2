"""Learning-rate sensitivity, post hoc: does a verdict survive another learning rate?

The tuning stage (the `select.from` of the reported stage in the study YAML, e.g. cpu_study's `tune`) trains every
arm at every lr of the grid on the tuning seeds. The lr selection read only the dev rows of those cells
(`paper_repro.sweep.select`, `selection.csv`); this module also reads their test rows, after the fact, to show each
arm's final dev and test F1 across the grid (figure: `plots.plot_lr_sensitivity`) and two descriptive tables:

- `lr_choice_table`: per tuning size and arm, the lr selected on dev (selection.csv), the lr with the best mean dev F1
  and the one with the best mean test F1, and the test F1 at the selected and at the best-test lr;
- `lr_direction_table`: per tuning size and pre-registered contrast (a - b of the hypotheses block), the mean paired
  test difference over the tuning seeds with each arm at its selected lr, and over every (lr of a, lr of b)
  combination of the grid: its range, how many combinations agree in sign, and whether any flips it.

Nothing here feeds a verdict: two tuning seeds per point, test rows read after the selection, no test of any kind.
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from paper_repro.analysis import stats
from paper_repro.analysis.load import CELL_KEYS, GROUP_KEYS, fold_tracks, with_finetune
from paper_repro.config import load_yaml

SPLITS = ("dev", "test")
LR_CELL_COLUMNS = ["method", *CELL_KEYS, "lr", "split", "value"]
SELECTED_COLUMNS = ["backbone", "sampler", "size", "method", "bracket", "lr"]
CHOICE_COLUMNS = [*GROUP_KEYS, "method", "bracket", "n_lrs", "n_seeds", "selected_lr", "grid_end", "dev_spread",
                  "best_dev_lr", "best_test_lr", "test_at_selected", "test_at_best", "test_gap"]
DIRECTION_COLUMNS = [*GROUP_KEYS, "ids", "a", "b", "n_seeds", "diff_at_selected", "diff_min", "diff_max", "n_combos",
                     "n_same_sign", "flips"]
DEFAULT_CONTRASTS = (("dwatt", "deeper", ""), ("concat", "deeper", ""), ("dwatt", "deeper_copy", ""),
                     ("concat", "deeper_copy", ""), ("dwatt", "concat", ""))


def stage_entries(study_yaml: str | Path) -> list[dict[str, Any]]:
    """The study YAML's `stages:` entries (mappings), in file order; [] without any."""
    raw = load_yaml(Path(study_yaml).read_text(encoding="utf-8")) or {}
    return [e for e in ((raw.get("stages") or []) if isinstance(raw, dict) else []) if isinstance(e, dict)]


def declared_stages(study_yaml: str | Path | None) -> list[str]:
    """The stage names the study YAML declares, in file order ([] without a YAML)."""
    return [str(e.get("name")) for e in stage_entries(study_yaml)] if study_yaml is not None else []


def tuning_source(study_yaml: str | Path | None, stage: str | None) -> tuple[str, str] | None:
    """(tuning stage, results column of the selected parameter) for `stage`'s `select:` block in the study YAML;
    None without a YAML, a stage, or a selection."""
    if study_yaml is None or stage is None:
        return None
    for entry in stage_entries(study_yaml):
        select = entry.get("select")
        if entry.get("name") == stage and isinstance(select, dict) and select.get("from"):
            return str(select["from"]), str(select.get("param", "train.head_lr")).split(".")[-1]
    return None


def same_selection_stages(study_yaml: str | Path | None, stage: str | None) -> list[str]:
    """`stage`, then every other stage (file order) whose `select:` block is the same mapping (the same rule on the
    same tuning cells, e.g. cpu_study's `budget_recheck_e20` and `eval`): for a (method, bracket) both need, their
    selection.csv rows are the same choice, so a reported stage whose own rows are not written yet (a gate still
    closed) reads theirs. (Each stage writes only the brackets its own cells need.)"""
    if study_yaml is None or stage is None:
        return [] if stage is None else [stage]
    entries = stage_entries(study_yaml)
    mine = next((e.get("select") for e in entries if e.get("name") == stage), None)
    if not isinstance(mine, dict):
        return [stage]
    return [stage, *[str(e["name"]) for e in entries if e.get("name") != stage and e.get("select") == mine]]


def selection_stages(selection: pd.DataFrame | None, stages: list[str]) -> list[str]:
    """Those of `stages` (in order) with rows in selection.csv; a file without a `stage` column answers the first."""
    if selection is None or selection.empty or not stages:
        return []
    if "stage" not in selection:
        return stages[:1]
    present = set(selection["stage"].astype(str))
    return [s for s in stages if s in present]


def _of_stages(selection: pd.DataFrame, stages: list[str]) -> pd.DataFrame:
    """selection.csv's rows of `stages`: for each (backbone, method, bracket, tuned at) the rows of the first stage
    (in `stages` order) that has it. A file without a `stage` column: all its rows."""
    if "stage" not in selection:
        return selection
    parts, seen = [], set()
    key = [c for c in ("backbone", "method", "bracket", "tuned_at") if c in selection]
    for stage in stages:
        rows = selection[selection["stage"].astype(str) == stage]
        keys = [tuple(r) for r in rows[key].astype(str).itertuples(index=False, name=None)]
        parts.append(rows[[k not in seen for k in keys]])
        seen |= set(keys)
    return pd.concat(parts) if parts else selection.iloc[0:0]


def tuning_run_ids(selection: pd.DataFrame | None, stages: list[str]) -> set[str]:
    """The tuning cells behind the selection of `stages` (selection.csv's `run_ids`; empty for a file without it)."""
    if selection is None or selection.empty or "run_ids" not in selection or not stages:
        return set()
    rows = _of_stages(selection, stages)
    return {run_id for text in rows["run_ids"].dropna().astype(str) for run_id in text.split()}


def lr_cells(tune_df: pd.DataFrame, param: str = "head_lr", metric: str = "f1") -> pd.DataFrame:
    """One row per tuning cell and split (dev, test): its final `metric` and the value of `param` it ran with."""
    parts = []
    for split in SPLITS:
        rows = stats.final_rows(tune_df, split) if len(tune_df) else tune_df
        if len(rows) and param in rows and metric in rows:
            parts.append(rows.assign(lr=rows[param].astype(float), split=split, value=rows[metric].astype(float))
                         [LR_CELL_COLUMNS].dropna(subset=["value", "lr"]))
    if not parts:
        return pd.DataFrame(columns=LR_CELL_COLUMNS)
    return pd.concat(parts, ignore_index=True)


def _tuned_at(text: Any) -> dict[str, Any]:
    """`size=100, sampler=sentences` (selection.csv's tuned_at) -> {"size": 100, "sampler": "sentences"}."""
    out: dict[str, Any] = {}
    for part in str(text if isinstance(text, str) else "").split(","):
        key, _, value = part.strip().partition("=")
        if key in ("size", "sampler", "backbone") and value:
            out[key] = int(value) if key == "size" and value.lstrip("-").isdigit() else value
    return out


def read_selection(path: Path) -> pd.DataFrame | None:
    """selection.csv as written by the sweep, or None if absent or unreadable."""
    if not path.exists():
        return None
    try:
        return pd.read_csv(path)
    except (OSError, ValueError):
        return None


def selected_lrs(selection: pd.DataFrame | None, stages: str | list[str] | None,
                 param: str = "head_lr") -> pd.DataFrame:
    """The selected value of `param` per (backbone, sampler, tuning size, method) from selection.csv's rows of
    `stages` (a stage, or stages in order of preference: `_of_stages`; none: nothing selected; a file without a
    `stage` column: all its rows); a key the bracket does not fix is None (any)."""
    stages = [stages] if isinstance(stages, str) else list(stages or [])
    if selection is None or selection.empty or param not in selection or "selected" not in selection or not stages:
        return pd.DataFrame(columns=SELECTED_COLUMNS)
    rows = _of_stages(selection, stages)
    rows = rows[rows["selected"].astype(str).str.lower().isin(("true", "1", "yes"))]
    out = []
    for r in rows.to_dict("records"):
        where = _tuned_at(r.get("tuned_at"))
        out.append({"backbone": where.get("backbone", r.get("backbone")), "sampler": where.get("sampler"),
                    "size": where.get("size"), "method": r["method"], "bracket": r.get("bracket", ""),
                    "lr": float(r[param])})
    return pd.DataFrame(out, columns=SELECTED_COLUMNS).drop_duplicates(["backbone", "sampler", "size", "method"])


def selected_for(selected: pd.DataFrame, backbone: Any, sampler: Any, size: Any, method: str) -> tuple[float, str]:
    """(selected lr, bracket) for one tuning group and arm; (NaN, "") when selection.csv does not say."""
    for r in selected.itertuples():
        if r.method == method and all(v is None or (isinstance(v, float) and np.isnan(v)) or v == want
                                      for v, want in ((r.backbone, backbone), (r.sampler, sampler), (r.size, size))):
            return float(r.lr), str(r.bracket or "")
    return float("nan"), ""


def _means(cells: pd.DataFrame) -> pd.DataFrame:
    return cells.groupby([*GROUP_KEYS, "method", "lr", "split"], as_index=False).agg(
        mean=("value", "mean"), n=("value", "size"))


def lr_choice_table(cells: pd.DataFrame, selected: pd.DataFrame) -> pd.DataFrame:
    """Per tuning group and arm: selected lr (dev, selection.csv), where it lies in the grid tried (lowest /
    highest / inside: at an end, the best lr may lie outside the grid), the spread of mean dev F1 over the grid,
    best mean dev lr, best mean test lr, mean test F1 at the selected and at the best-test lr, and their gap (best -
    selected, F1 units)."""
    if cells.empty:
        return pd.DataFrame(columns=CHOICE_COLUMNS)
    means = _means(with_finetune(cells))
    rows = []
    for key, g in means.groupby([*GROUP_KEYS, "method"], sort=True):
        keyed = dict(zip([*GROUP_KEYS, "method"], key))
        dev, test = g[g["split"] == "dev"], g[g["split"] == "test"]
        lr, bracket = selected_for(selected, keyed["backbone"], keyed["sampler"], keyed["size"], keyed["method"])
        at_sel = test[np.isclose(test["lr"], lr)]["mean"] if np.isfinite(lr) else pd.Series(dtype=float)
        best_test = test.loc[test["mean"].idxmax()] if len(test) else None
        test_at_sel = float(at_sel.iloc[0]) if len(at_sel) else float("nan")
        grid = sorted(g["lr"].unique())
        end = ("" if not np.isfinite(lr) or len(grid) < 2 else "lowest" if np.isclose(lr, grid[0])
               else "highest" if np.isclose(lr, grid[-1]) else "inside")
        rows.append({**keyed, "bracket": bracket, "n_lrs": int(g["lr"].nunique()), "n_seeds": int(g["n"].max()),
                     "selected_lr": lr, "grid_end": end,
                     "dev_spread": float(dev["mean"].max() - dev["mean"].min()) if len(dev) > 1 else float("nan"),
                     "best_dev_lr": float(dev.loc[dev["mean"].idxmax(), "lr"]) if len(dev) else float("nan"),
                     "best_test_lr": float(best_test["lr"]) if best_test is not None else float("nan"),
                     "test_at_selected": test_at_sel,
                     "test_at_best": float(best_test["mean"]) if best_test is not None else float("nan"),
                     "test_gap": (float(best_test["mean"]) - test_at_sel) if best_test is not None else float("nan")})
    return stats._order_methods(pd.DataFrame(rows, columns=CHOICE_COLUMNS), list(GROUP_KEYS))


def contrasts_of(hyp_block: Any) -> list[tuple[str, str, str]]:
    """(a, b, hypothesis ids) for every distinct a - b of the hypotheses block (DEFAULT_CONTRASTS without one)."""
    if hyp_block is None:
        return list(DEFAULT_CONTRASTS)
    ids: dict[tuple[str, str], list[str]] = {}
    for test in hyp_block.tests:
        ids.setdefault((test.a, test.b), []).append(test.id)
    return [(a, b, ", ".join(v)) for (a, b), v in ids.items()]


def lr_direction_table(cells: pd.DataFrame, selected: pd.DataFrame,
                       contrasts: list[tuple[str, str, str]]) -> pd.DataFrame:
    """Per tuning group and contrast a - b: mean paired test difference (F1 units, pairs on data_seed and seed)
    with each arm at its selected lr, and over every (lr of a, lr of b) combination: range, number of combinations,
    how many share the sign of the selected one, and whether any has the opposite sign (`flips`)."""
    test = with_finetune(cells[cells["split"] == "test"]) if len(cells) else cells
    if test.empty:
        return pd.DataFrame(columns=DIRECTION_COLUMNS)
    rows = []
    for key, g in test.groupby(list(GROUP_KEYS), sort=True):
        keyed = dict(zip(GROUP_KEYS, key))
        for a, b, ids in contrasts:
            va = g[g["method"] == a].set_index(["data_seed", "seed", "lr"])["value"]
            vb = g[g["method"] == b].set_index(["data_seed", "seed", "lr"])["value"]
            if va.empty or vb.empty:
                continue
            combos: dict[tuple[float, float], tuple[float, int]] = {}
            for lr_a, lr_b in itertools.product(sorted(set(va.index.get_level_values("lr"))),
                                                sorted(set(vb.index.get_level_values("lr")))):
                xa, xb = va.xs(lr_a, level="lr"), vb.xs(lr_b, level="lr")
                joined = pd.concat({"a": xa, "b": xb}, axis=1, join="inner").dropna()
                if len(joined):
                    combos[(lr_a, lr_b)] = (float((joined["a"] - joined["b"]).mean()), len(joined))
            if not combos:
                continue
            sel_a = selected_for(selected, keyed["backbone"], keyed["sampler"], keyed["size"], a)[0]
            sel_b = selected_for(selected, keyed["backbone"], keyed["sampler"], keyed["size"], b)[0]
            at_sel = next((d for (la, lb), (d, _) in combos.items()
                           if np.isclose(la, sel_a) and np.isclose(lb, sel_b)), float("nan"))
            diffs = np.array([d for d, _ in combos.values()])
            same = int((np.sign(diffs) == np.sign(at_sel)).sum()) if np.isfinite(at_sel) else 0
            flips = ("–" if not np.isfinite(at_sel) or at_sel == 0 else
                     "yes" if bool((np.sign(diffs) == -np.sign(at_sel)).any()) else "no")
            rows.append({**keyed, "ids": ids, "a": a, "b": b, "n_seeds": max(n for _, n in combos.values()),
                         "diff_at_selected": at_sel, "diff_min": float(diffs.min()), "diff_max": float(diffs.max()),
                         "n_combos": len(combos), "n_same_sign": same, "flips": flips})
    return pd.DataFrame(rows, columns=DIRECTION_COLUMNS)


def lr_section(lr: dict[str, Any], figure: str = "") -> str:
    """The lr-sensitivity tables of `study_lr_tables` as markdown, with the figure links (`figure`): the one
    renderer used by REPORT.md and the README results block."""
    from paper_repro.analysis.report import _num, _pts, md_table

    choice, direction, tune_stage = lr["choice"], lr["direction"], lr["tune_stage"]
    stage, used = lr.get("stage"), lr.get("selection_stages") or []
    intro = (f"**Post hoc** (not pre-registered; no verdict rests on it): stage `{tune_stage}` cells (tuning seeds "
             "only), final F1 at every lr of the grid. The selection read only their dev rows; the test rows are "
             "read here, after the fact, to ask whether a verdict survives another lr.\n")
    borrowed = [s for s in used if s != stage]
    if borrowed and stage is not None:
        own = (f"stage `{stage}`'s own rows, then those of" if stage in used else
               f"stage `{stage}` has no rows in `selection.csv` yet (written when it may start): those of")
        intro += (f"\nSelected lrs: {own} stage(s) {', '.join(f'`{s}`' for s in borrowed)}, which select by the same "
                  "`select:` rule from the same tuning cells, for the brackets they have written; a bracket none of "
                  "them has written shows no selected lr.\n")
    elif not used and stage is not None:
        intro += f"\nNo selection for stage `{stage}` in `selection.csv` yet: the selected lr is not marked.\n"
    if choice.empty:
        return intro + (f"\n_No cells of stage `{tune_stage}` yet (its cells that are also cells of an earlier stage "
                         "count from when its selection is written)._\n") + (f"\n{figure}" if figure else "")

    def lr_text(x: Any) -> str:
        return "–" if not np.isfinite(float(x)) else f"{float(x):g}"

    choice = fold_tracks(choice)
    rows = [[r["backbone"], r["sampler"], r["size"], r["bracket"] or "–", r["method"], f"{r['n_lrs']} × {r['n_seeds']}",
             lr_text(r["selected_lr"]), r["grid_end"] or "–", _num(r["dev_spread"], 2, 100),
             lr_text(r["best_dev_lr"]), lr_text(r["best_test_lr"]),
             _pts(r["test_at_selected"]), _pts(r["test_at_best"]), _num(r["test_gap"], 2, 100)]
            for _, r in choice.iterrows()]
    out = [intro, "Per arm: the lr selected on dev (`selection.csv`; ties within the tolerance go to the lower lr), "
           "where it lies in the grid (at the lowest or highest lr the best lr may lie outside the grid, which is "
           "the study's and is not widened after the fact), the spread of mean dev F1 over the grid (points: how "
           "much the choice mattered on dev), the lr with the best mean dev and the best mean test F1, and mean test "
           "F1 (points) at the selected and at the best-test lr.\n\n"
           + md_table(rows, ["backbone", "sampler", "tuned at size", "bracket", "method", "lrs × seeds",
                             "selected lr (dev)", "in the grid", "dev spread (pts)", "best dev lr", "best test lr",
                             "test F1 at selected",
                             "test F1 at best test lr", "gap (pts)"])]
    if len(direction):
        direction = fold_tracks(direction)
        rows = [[r["backbone"], r["sampler"], r["size"], f"{r['a']} − {r['b']}", r["ids"] or "–", r["n_seeds"],
                 _num(r["diff_at_selected"], 2, 100), f"[{_num(r['diff_min'], 2, 100)}, {_num(r['diff_max'], 2, 100)}]",
                 f"{r['n_same_sign']}/{r['n_combos']}", r["flips"]] for _, r in direction.iterrows()]
        out.append("Direction of each pre-registered contrast at the tuning sizes (mean paired test difference over "
                   "the tuning seeds, points): with each arm at its selected lr, and over every (lr of a, lr of b) "
                   "combination of the grid; `flips` = some combination has the opposite sign.\n\n"
                   + md_table(rows, ["backbone", "sampler", "size", "contrast", "hypotheses", "seeds",
                                     "at selected lrs", "range over lr combinations", "same sign", "flips"]))
    if figure:
        out.append(figure)
    return "\n".join(out)


def study_lr_tables(df_all: pd.DataFrame, study_dir: Path, study_yaml: str | Path | None, stage: str | None,
                    selection_file: str = "selection.csv") -> dict[str, Any] | None:
    """Everything the lr-sensitivity section and figure need for a study, or None when the reported `stage`
    selects nothing (no tuning stage): tune_stage, param, tune_df, selection (selection.csv), selection_stages (whose
    selection.csv rows name the selected lr: `stage`'s, then those of stages with the same `select:` block for the
    brackets it lacks), cells, choice and direction tables.

    tune_df holds the tuning stage's cells: the rows of that stage, and the cells selection.csv names as the tuning
    cells behind the selection (`run_ids`). A tuning cell that is also a cell of an earlier stage (the same run id,
    e.g. a budget-check cell at the rule's budget and an lr of the grid) is collected under that earlier stage, and
    the selection counted it; so does this table."""
    from paper_repro.analysis.hypotheses import read_hypotheses
    from paper_repro.analysis.load import select_stage, study_stages

    source = tuning_source(study_yaml, stage)
    if source is None:
        return None
    tune_stage, param = source
    selection = read_selection(Path(study_dir) / selection_file)
    used = selection_stages(selection, same_selection_stages(study_yaml, stage))
    tune_df = select_stage(df_all, tune_stage) if tune_stage in study_stages(df_all) else df_all.iloc[0:0]
    shared = tuning_run_ids(selection, used) - set(tune_df["run_id"] if len(tune_df) else ())
    if shared and len(df_all):
        tune_df = pd.concat([tune_df, df_all[df_all["run_id"].isin(shared)]], ignore_index=True)
    selected = selected_lrs(selection, used, param)
    cells = lr_cells(tune_df, param)
    hyp_block = read_hypotheses(study_yaml) if study_yaml is not None else None
    return {"tune_stage": tune_stage, "param": param, "tune_df": tune_df, "selection": selection,
            "selection_stages": used, "stage": stage, "cells": cells,
            "choice": lr_choice_table(cells, selected),
            "direction": lr_direction_table(cells, selected, contrasts_of(hyp_block))}
