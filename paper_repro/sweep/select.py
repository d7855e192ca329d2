"""Stage outputs that later stages or the report use: per-method parameter selection on tuning cells, and the
step-budget check.

Selection (a stage's `select:` block, see paper_repro.sweep.grid): for a cell of the selecting stage, the first
bracket whose `apply` pattern matches it names the tuning cells (the source stage's cells that match the
bracket's `tune` pattern and share the cell's `match` keys); each value of `param` among them is scored by the
mean final dev `metric` over its tuning cells, and the highest wins. Values within `tie_tolerance` of the best
are tied; the pre-registered `tie_break` (lower / higher value) decides. Only dev results of the source stage
(tuning seeds) are read: never test rows, never the evaluated cells.

The selection table (every value's dev score per method and bracket) is written to
`<results_dir>/<study>/selection.csv`; the budget check to `budget_check.csv`.

A budget check with `gate: true` blocks every later stage (`gate: [names]`: those later stages) until it is complete and its rule stands for every
method (`gate_blocker`): a rule found too short stops the study there, to be raised in the study file (a check
without `gate` is reported only). A check stage may also `select` (e.g. re-check the rule at each method's
selected lr): its cells are built with that selection.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from paper_repro.config import CellConfig, ConfigError, flatten
from paper_repro.results import store
from paper_repro.results.collect import read_cell
from paper_repro.sweep.grid import StudyConfig, _matches


class SelectionPending(ConfigError):
    """The source stage is not complete: the selection cannot be made yet."""


def _pattern_matches(flat: dict[str, Any], pattern: dict[str, Any]) -> bool:
    return all(key in flat and (flat[key] in value if isinstance(value, list) else flat[key] == value)
               for key, value in pattern.items())


def final_dev(cell: CellConfig, metric: str = "f1", split: str = "dev") -> float:
    """The cell's `metric` at its last `split` evaluation (read from its parquet)."""
    table = read_cell(Path(cell.results_dir) / cell.study, cell.run_id, columns=["split", "step", metric]).to_pandas()
    rows = table[table["split"] == split]
    if rows.empty:
        raise ConfigError(f"cell {cell.run_id}: no {split} rows")
    return float(rows.sort_values("step")[metric].iloc[-1])


def source_scores(study: StudyConfig, stage: str, metric: str, split: str) -> list[tuple[dict[str, Any], float, str]]:
    """(flat config, final dev metric, run_id) of every cell of `stage` (built with its selection, if it selects);
    SelectionPending if any is not done."""
    selections = {stage: compute_selection(study, stage)} if study.stage(stage).select is not None else None
    cells = study.expand(stage=stage, selections=selections)
    missing = [c for c in cells if not store.is_done(c.results_dir, c.study, c.run_id)]
    if missing:
        raise SelectionPending(f"{study.source}: stage {stage} is not complete ({len(cells) - len(missing)} of "
                               f"{len(cells)} cells done, e.g. {missing[0].run_id} pending): run it first")
    return [(flatten(c.to_dict()), final_dev(c, metric, split), c.run_id) for c in cells]


def column_name(key: str) -> str:
    """Table column for a dotted config key: model.head.name -> method, else the last part."""
    return {"model.head.name": "method", "data.data_seed": "data_seed"}.get(key, key.split(".")[-1])


@dataclass
class Selection:
    """The chosen value of `param` per (match keys, bracket), and the table behind it."""

    stage: str
    param: str
    spec: dict[str, Any]
    scores: list[tuple[dict[str, Any], float, str]]
    chosen: dict[tuple, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def bracket_of(self, flat: dict[str, Any]) -> dict[str, Any]:
        for bracket in self.spec["brackets"]:
            if _pattern_matches(flat, bracket.get("apply") or {}):
                return bracket
        raise ConfigError(f"stage {self.stage}: no select bracket applies to cell "
                          f"{ {k: flat[k] for k in ('model.head.name', 'data.sampler', 'data.size')} }")

    def value_for(self, cell: CellConfig) -> Any:
        flat = flatten(cell.to_dict())
        bracket = self.bracket_of(flat)
        match = {key: flat[key] for key in self.spec.get("match", [])}
        key = (*match.values(), bracket["label"])
        if key not in self.chosen:
            self.chosen[key] = self._choose(match, bracket)
        return self.chosen[key]

    def _choose(self, match: dict[str, Any], bracket: dict[str, Any]) -> Any:
        tune = bracket.get("tune") or {}
        by_value: dict[Any, list[float]] = {}
        run_ids: dict[Any, list[str]] = {}
        for flat, score, run_id in self.scores:
            if _matches(flat, match) and _pattern_matches(flat, tune):
                by_value.setdefault(flat[self.param], []).append(score)
                run_ids.setdefault(flat[self.param], []).append(run_id)
        if not by_value:
            raise ConfigError(f"stage {self.stage}: no tuning cell of stage {self.spec['from']} for "
                              f"{match} in bracket {bracket['label']} ({tune})")
        means = {value: sum(s) / len(s) for value, s in by_value.items()}
        best = max(means.values())
        tolerance = float(self.spec.get("tie_tolerance", 0.0))
        tied = sorted(v for v, m in means.items() if m >= best - tolerance - 1e-12)
        chosen = tied[0] if self.spec.get("tie_break", "lower") == "lower" else tied[-1]
        for value in sorted(means):
            self.rows.append({**{column_name(k): v for k, v in match.items()}, "bracket": bracket["label"],
                              "tuned_at": ", ".join(f"{k.split('.')[-1]}={v}" for k, v in tune.items()),
                              self.param.split(".")[-1]: value, "n": len(by_value[value]),
                              "dev_f1_mean": means[value], "selected": value == chosen,
                              "run_ids": " ".join(sorted(run_ids[value]))})   # the tuning cells behind the mean
        return chosen

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)


def compute_selection(study: StudyConfig, stage: str) -> Selection:
    """The selection for `stage` (which has a `select:` block) from its source stage's done cells; every
    (match keys, bracket) the stage's cells need is resolved, so the table is complete."""
    spec = study.stage(stage).select
    if spec is None:
        raise ConfigError(f"{study.source}: stage {stage} selects nothing")
    _off_evaluation_seeds(study, stage, spec["from"])
    scores = source_scores(study, spec["from"], spec.get("metric", "f1"), spec.get("split", "dev"))
    selection = Selection(stage, spec["param"], spec, scores)
    for cell in study.placeholder_cells(stage):
        selection.value_for(cell)
    return selection


def _seeds(cells: list[CellConfig]) -> set[tuple[int, int]]:
    return {(c.data.data_seed, c.train.seed) for c in cells}


def _off_evaluation_seeds(study: StudyConfig, stage: str, source: str) -> None:
    """A selection never reads the seeds the pre-registered tests report (the `hypotheses:` block's stage): its
    source stage's (data_seed, seed) pairs must be disjoint from that stage's (ConfigError naming the overlap)."""
    reported = (study.hypotheses or {}).get("stage", "eval") if study.hypotheses else None
    if not reported or reported not in {s.name for s in study.stages}:
        return
    overlap = _seeds(study.placeholder_cells(source)) & _seeds(study.placeholder_cells(reported))
    if overlap:
        raise ConfigError(f"{study.source}: stage {stage} selects from stage {source}, whose (data_seed, seed) "
                          f"{sorted(overlap)[:3]} are evaluation seeds of stage {reported} (the hypotheses' stage): "
                          "select on tuning seeds only")


def selections_for(study: StudyConfig) -> dict[str, Selection]:
    """Every stage selection that can be made now (stages whose source is incomplete, or that a gating budget
    check blocks, are left out)."""
    found: dict[str, Selection] = {}
    for stage in study.stages:
        if stage.select is None or gate_blocker(study, stage.name) is not None:
            continue
        try:
            found[stage.name] = compute_selection(study, stage.name)
        except SelectionPending:
            continue
    return found


def budget_check(study: StudyConfig, stage: str) -> pd.DataFrame:
    """The step-budget check: per (backbone, method, size) and value of the check's `param` (e.g. min_epochs),
    the mean final dev metric over the stage's cells, and its gain over the rule's value (`rule`, default the
    smallest value). Each larger budget gets a verdict: the rule stands where it gains less than `max_gain`
    (F1 units) over the rule; values below the rule are shown for the record (e.g. a rule found too short)."""
    spec = study.stage(stage).check
    if spec is None:
        raise ConfigError(f"{study.source}: stage {stage} has no check")
    param, metric = spec["param"], spec.get("metric", "f1")
    max_gain = float(spec.get("max_gain", 0.01))
    scores = source_scores(study, stage, metric, spec.get("split", "dev"))
    frame = pd.DataFrame([{"backbone": f["model.backbone"], "method": f["model.head.name"], "head_lr": f["train.head_lr"],
                           "size": f["data.size"], "budget": f[param], "dev": s} for f, s, _ in scores])
    rule = spec.get("rule", frame["budget"].min())
    if rule not in set(frame["budget"]):
        raise ConfigError(f"{study.source}: stage {stage}: check.rule {rule} is not among the values of {param}")
    rows = []
    for (backbone, method, head_lr, size), group in frame.groupby(["backbone", "method", "head_lr", "size"], sort=False):
        means = group.groupby("budget")["dev"].agg(["mean", "count"]).sort_index()
        base = means["mean"].loc[rule] if rule in means.index else float("nan")
        for budget, row in means.iterrows():
            gain = row["mean"] - base
            verdict = ("the rule" if budget == rule else "below the rule" if budget < rule
                       else "rule stands" if gain < max_gain else "rule too short")
            rows.append({"backbone": backbone, "method": method, "head_lr": head_lr, "size": size,
                         "budget": f"{param.split('.')[-1]}={budget}",
                         "dev_f1_mean": row["mean"], "n": int(row["count"]), "gain_points": 100 * gain,
                         "verdict": verdict})
    return pd.DataFrame(rows)


def gate_blocker(study: StudyConfig, stage: str) -> tuple[str, str] | None:
    """Why `stage` may not start: ("pending", why) while an earlier stage's gating budget check (`check.gate:
    true`, or a list of stages that names `stage`) is incomplete, ("failed", why) when it found its rule too short for some method; None when every
    earlier gate passed (or there is none)."""
    for earlier in study.stages:
        if earlier.name == stage:
            return None
        gate = (earlier.check or {}).get("gate", False)
        if not gate or (isinstance(gate, list) and stage not in gate):
            continue
        try:
            table = budget_check(study, earlier.name)
        except SelectionPending as pending:
            return "pending", f"waits for the gating budget check of stage {earlier.name} ({pending})"
        larger = table[table["verdict"].isin(["rule stands", "rule too short"])]
        unchecked = [f"{m} at size {z}" for (m, z), g in table.groupby(["method", "size"], sort=False)
                     if not len(larger[(larger["method"] == m) & (larger["size"] == z)])]
        if unchecked:
            return "failed", (f"the gating budget check of stage {earlier.name} compares no budget above its rule "
                              f"for {', '.join(unchecked)} (an override pinned {earlier.check['param']}?): it "
                              f"cannot pass")
        short = table[table["verdict"] == "rule too short"]
        if not short.empty:
            worst = short.sort_values("gain_points").iloc[-1]
            return "failed", (f"the gating budget check of stage {earlier.name} failed: its rule is too short for "
                              f"{', '.join(dict.fromkeys(short['method']))} (largest gain {worst['gain_points']:+.2f} dev "
                              f"points at {worst['budget']}, {worst['method']} at size {worst['size']}; budget_check.csv): "
                              f"raise the rule in the study file before any later stage runs")
    raise ConfigError(f"{study.source}: no stage {stage!r}")


def write_stage_tables(study: StudyConfig) -> list[Path]:
    """Write budget_check.csv and selection.csv, each with the rows of every stage (column `stage`) whose inputs are
    complete (a stage that a gate blocks has no selection yet); returns the paths."""
    out_dir = Path(study.results_dir) / study.study
    written: list[Path] = []
    frames: dict[str, list[pd.DataFrame]] = {"budget_check.csv": [], "selection.csv": []}
    for stage in study.stages:   # every stage's rows in one file per kind, tagged with the stage
        if stage.select is not None and gate_blocker(study, stage.name) is None:
            try:   # (a check stage that selects: its selection shows while its own cells still run)
                frames["selection.csv"].append(compute_selection(study, stage.name).table().assign(stage=stage.name))
            except SelectionPending:
                pass
        if stage.check is not None:
            try:
                frames["budget_check.csv"].append(budget_check(study, stage.name).assign(stage=stage.name))
            except SelectionPending:
                pass
    for name, parts in frames.items():
        if parts:
            path = out_dir / name
            path.parent.mkdir(parents=True, exist_ok=True)
            pd.concat(parts, ignore_index=True).to_csv(path, index=False, float_format="%.6g")
            written.append(path)
    return written


def format_table(frame: pd.DataFrame) -> str:
    """A plain-text table for the terminal."""
    if frame.empty:
        return "(empty)"
    shown = frame.copy()
    for column in shown.columns:
        if shown[column].dtype.kind == "f":
            shown[column] = shown[column].map(lambda v: "nan" if math.isnan(v) else f"{v:.4g}")
    return shown.to_string(index=False)
