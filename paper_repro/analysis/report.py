"""REPORT.md for a study: tables, figures, what the numbers support, and what is missing.

    python -m paper_repro.analysis.report results/<study> [--study experiments/<study>.yaml] [--stage eval]
        [--out-dir DIR] [--execute-notebooks]

Writes `<out>/REPORT.md`, figures under `<out>/figures/` and the tables as CSV under `<out>/tables/`
(`<out>` = the study directory unless --out-dir). Anything taken from the paper is marked "(paper's claim)".

A staged study (protocol v2) is reported on one stage only (default: the hypotheses block's `stage`, else
"eval"): tuning and budget-check cells never enter the headline tables, figures or tests. The pre-registered
hypotheses come from the study YAML (`--study`, default `experiments/<study>.yaml` when it exists); the
lr selection and budget check from `<study_dir>/selection.csv` and `budget_check.csv` when present. The YAML's
`claims:` block gives a verdict per paper claim (`verdicts.py`; "not run" before the stage has cells, "interim" while
it has fewer than the planned pairs), and a stage
that selects its lr from a tuning stage gets the post-hoc lr-sensitivity tables and figure (`lr_sensitivity.py`). Tables
built from protocol-v1 cells carry V1_LABEL and no verdicts. A stage on the full training set (the frozen study's
`eval_full`, `load.full_data_stages`) gets a descriptive section of its own (`full_data_section`, also the README's).
Another stage goes to `<study>/stages/<stage>/` (unless --out-dir), and its report points to the hypotheses' stage for
the tests and verdicts instead of repeating them. Without --stage, the few-shot evaluation stages other than the
hypotheses' (`descriptive_stages`, e.g. cpu_study's K-shot `eval_ktype`) get such a report too, linked from the
study's. The text is deterministic (no timestamps).
"""
from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from paper_repro.analysis import hypotheses, lr_sensitivity, plots, stats, verdicts
from paper_repro.analysis.load import (
    ENTITY_TYPES,
    RESULTS_FILE,
    V1_LABEL,
    done_cell_parquets,
    fold_tracks,
    full_data_stages,
    has_v1,
    in_yaml_order,
    load_manifests,
    load_results,
    method_order,
    resolve_study_dir,
    select_stage,
    study_stages,
)

log = logging.getLogger(__name__)

BASELINES = ("deeper", "last")
PAPER = "(paper's claim)"
PAPER_CLAIMS = (
    f"{PAPER} On CoNLL-03 NER, layer fusion (DWAtt, Concat) gains 3.68–9.73 F1 over the deeper-model baseline "
    "at different few-shot sizes, at a similar parameter budget. The abstract does not say whether these are F1 "
    "points or percent relative, so both readings are checked below.",
    f"{PAPER} DWAtt and Concat are more step- and sample-efficient than the deeper baseline, especially in the "
    "few-shot setting.",
    f"{PAPER} DWAtt outperforms Concat on larger data sizes.",
)
MAX_MISSING_ROWS = 60
DEFAULT_STAGE = "eval"
STAGES_DIR = "stages"        # <study>/stages/<stage>/REPORT.md: the report of a stage other than the hypotheses'
SELECTION_FILE = "selection.csv"
BUDGET_CHECK_FILE = "budget_check.csv"


# --------------------------------------------------------------------------------------------- formatting
def _num(x: Any, digits: int = 1, scale: float = 1.0) -> str:
    try:
        v = float(x) * scale
    except (TypeError, ValueError):
        return str(x)
    return "–" if not np.isfinite(v) else f"{v:.{digits}f}"


def _pts(x: Any, digits: int = 1) -> str:
    return _num(x, digits, 100.0)


def _pm(mean: Any, half: Any, digits: int = 1, scale: float = 100.0) -> str:
    m = _num(mean, digits, scale)
    h = _num(half, digits, scale)
    return m if h == "–" else f"{m} ± {h}"


def _ci(lo: Any, hi: Any, digits: int = 1, scale: float = 100.0) -> str:
    a, b = _num(lo, digits, scale), _num(hi, digits, scale)
    return "–" if a == "–" or b == "–" else f"[{a}, {b}]"


def _p(p: Any) -> str:
    try:
        v = float(p)
    except (TypeError, ValueError):
        return "–"
    if not np.isfinite(v):
        return "–"
    return "<1e-4" if v < 1e-4 else f"{v:.3g}"


def _cell(x: Any) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "–"
    return str(x).replace("|", "\\|").replace("\n", " ")


def md_table(rows: list[list[Any]], header: list[str]) -> str:
    """A GitHub-markdown table; every cell is turned into text."""
    if not rows:
        return "_(no rows)_\n"
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def remove_stale_figures(figures_dir: Path, figs: dict[str, list[Path] | str]) -> list[Path]:
    """Delete the report's own figures (`plots.FIGURE_FILES`: `<name>.<fmt>`, `<name>__<condition>.<fmt>`) in
    `figures_dir` that this run did not write (a figure skipped now, e.g. its stage has no cells after a study
    changed, must not keep an older run's picture where the README links it); other files stay. Returns them."""
    written = {Path(p).resolve() for paths in figs.values() if not isinstance(paths, str) for p in paths}

    def is_ours(path: Path) -> bool:
        return path.suffix.lstrip(".") in plots.FORMATS and path.stem.split("__")[0] in plots.FIGURE_FILES

    stale = [p for p in sorted(figures_dir.glob("*")) if p.is_file() and is_ours(p) and p.resolve() not in written]
    for path in stale:
        log.info("removed stale figure %s", path)
        path.unlink()
    return stale


def _figure_links(result: list[Path] | str, base: Path, what: str) -> str:
    if isinstance(result, str):
        return f"_Figure skipped ({what}): {result}._\n"
    pngs = [p for p in result if p.suffix == ".png"]
    out = []
    for png in pngs:
        rel = os.path.relpath(png, base)
        pdf = os.path.relpath(png.with_suffix(".pdf"), base)
        out.append(f"![{png.stem}]({rel})  \n[PDF]({pdf})")
    return "\n\n".join(out) + "\n"


SHOWN_KEYS = ("backbone", "sampler", "size")   # GROUP_KEYS as the markdown tables show them (`fold_tracks`)


def _conditions(table: pd.DataFrame) -> list[tuple[Any, Any]]:
    if table.empty:
        return []
    return sorted({(b, s) for b, s in zip(table["backbone"], table["sampler"])}, key=str)


# --------------------------------------------------------------------------------------------- sections
def size_by_method(sub: pd.DataFrame, cell: Callable[[pd.DataFrame], str], missing: str) -> tuple[list[str], list]:
    """Rows of a size × method table: `cell(rows of that size and method)`, or `missing` where there are none."""
    methods = method_order(sub["method"].unique())
    rows = []
    for size in sorted(sub["size"].unique()):
        at_size = sub[sub["size"] == size]
        rows.append([size, *[cell(r) if len(r := at_size[at_size["method"] == m]) else missing for m in methods]])
    return methods, rows


def f1_section(table: pd.DataFrame) -> str:
    """Test F1 (points) mean ± 95% CI half-width (n) per size × method, one table per backbone × sampler."""
    if table.empty:
        return "_No test rows._\n"
    return "\n".join(size_method_tables(
        fold_tracks(table), lambda r: f"{_pm(r['mean'].iloc[0], r['ci_half'].iloc[0])} (n={int(r['n'].iloc[0])})",
        "–", "test F1 (points), mean ± 95% t-CI half-width (n cells)"))


def size_method_tables(table: pd.DataFrame, cell, blank: str, caption: str) -> list[str]:
    """One size × method markdown table per (backbone, sampler) of `table`, titled `**backbone · sampler** —
    caption`; `cell(rows of one size and method)` fills a cell, `blank` where there are none."""
    out = []
    for backbone, sampler in _conditions(table):
        sub = table[(table["backbone"] == backbone) & (table["sampler"] == sampler)]
        methods, rows = size_by_method(sub, cell, blank)
        out.append(f"**{backbone} · {sampler}** — {caption}\n\n" + md_table(rows, ["size", *methods]))
    return out


def _v1(v1: bool) -> str:
    return f"_{V1_LABEL}_\n\n" if v1 else ""


def gains_section(paired: pd.DataFrame, v1: bool = False) -> str:
    """Paired gains table per baseline: pairs, pairs with method > baseline, mean gain with its 95% CI and
    how it was computed (`t` below stats.MIN_BOOT_PAIRS pairs, else `bootstrap`), relative gain, Wilcoxon and
    t-test p (raw and Holm across sizes). With `v1` (protocol-v1 cells) the paper-band yes/no columns are
    left out and the table is labelled superseded."""
    if paired.empty:
        return _v1(v1) + "_No paired cells (a baseline or the test split is missing)._\n"
    paired = fold_tracks(paired)
    out = []
    lo, hi = stats.PAPER_GAIN_RANGE
    for baseline in paired["baseline"].unique():
        sub = paired[paired["baseline"] == baseline]
        rows = []
        for _, r in sub.iterrows():
            pts, rel = r["mean_diff"] * 100, r["rel_gain"] * 100
            row = [
                r["backbone"], r["sampler"], r["size"], r["method"], r["n_pairs"], r["n_positive"],
                _pts(r["mean_diff"], 2), _ci(r["ci_lo"], r["ci_hi"], 2), r["ci_method"] or "–",
                _num(r["rel_gain"], 1, 100), _ci(r["rel_ci_lo"], r["rel_ci_hi"], 1), _p(r["p_wilcoxon"]),
                _p(r["p_wilcoxon_holm"]), _p(r["p_ttest"]), _p(r["p_ttest_holm"]),
            ]
            if not v1:
                row += ["yes" if stats.in_paper_band(pts) else "no", "yes" if stats.in_paper_band(rel) else "no"]
            rows.append(row)
        header = ["backbone", "sampler", "size", "method", "pairs", f"pairs > {baseline}", "gain (pts)",
                  "95% CI (pts)", "CI method", "gain (% rel.)", "95% CI (% rel.)", "Wilcoxon p", "Holm p",
                  "t-test p", "Holm p (t)"]
        if not v1:
            header += [f"in {lo}–{hi} (pts) {PAPER}", f"in {lo}–{hi} (% rel.) {PAPER}"]
        out.append(
            f"**Gain over `{baseline}`** (test F1; method − {baseline}, paired on backbone/finetune/sampler/size/"
            f"data_seed/seed; 95% CI: paired t-interval below {stats.MIN_BOOT_PAIRS} pairs (`t`), else paired "
            f"percentile bootstrap with {stats.N_BOOT} resamples (`bootstrap`); Holm across sizes within backbone × "
            f"finetune × sampler; exploratory: the pre-registered tests are in their own section)\n\n"
            + md_table(rows, header))
    return _v1(v1) + "\n".join(out)


def _sizes_text(sizes: list[Any]) -> str:
    return ", ".join(str(s) for s in sizes) if sizes else "none"


def findings(paired: pd.DataFrame, step_paired: pd.DataFrame | None = None,
             dwatt_vs_concat: pd.DataFrame | None = None, alpha: float = 0.05) -> list[str]:
    """Plain statements generated from the numbers: per method × baseline, at which sizes the paired 95% CI
    excludes 0 (and in which direction), where Holm-adjusted Wilcoxon p < alpha, and where the mean gain
    falls in the paper's band under each reading."""
    lines: list[str] = []
    if paired.empty:
        return ["No method/baseline pairs with test results (no baseline arm among these cells, or no test split): "
                "no gain over a baseline can be read from them."]
    paired, step_paired = fold_tracks(paired), fold_tracks(step_paired)
    dwatt_vs_concat = fold_tracks(dwatt_vs_concat)
    lo, hi = stats.PAPER_GAIN_RANGE
    for (backbone, sampler, baseline, method), g in paired.groupby(
            ["backbone", "sampler", "baseline", "method"], sort=False):
        g = g.sort_values("size")
        n_sizes = len(g)
        pos = g[g["ci_lo"] > 0]["size"].tolist()
        neg = g[g["ci_hi"] < 0]["size"].tolist()
        no_ci = g[g["ci_lo"].isna() | g["ci_hi"].isna()]["size"].tolist()
        undecided = g[(g["ci_lo"] <= 0) & (g["ci_hi"] >= 0)]["size"].tolist()
        sig = g[g["p_wilcoxon_holm"] < alpha]["size"].tolist()
        band_pts = [s for s, d in zip(g["size"], g["mean_diff"]) if stats.in_paper_band(d * 100)]
        band_rel = [s for s, d in zip(g["size"], g["rel_gain"]) if stats.in_paper_band(d * 100)]
        text = (f"**{method} vs {baseline}** ({backbone} · {sampler}): paired 95% CI above 0 at "
                f"{len(pos)}/{n_sizes} sizes ({_sizes_text(pos)})")
        if neg:
            text += f", below 0 at {_sizes_text(neg)}"
        if undecided:
            text += f", includes 0 at {_sizes_text(undecided)}"
        if no_ci:
            text += f", no CI (fewer than 2 pairs) at {_sizes_text(no_ci)}"
        text += (f"; Holm-adjusted Wilcoxon p < {alpha} at {len(sig)}/{n_sizes}. Mean gain inside the "
                 f"{lo}–{hi} band {PAPER} read as F1 points at {_sizes_text(band_pts)}; read as % relative at "
                 f"{_sizes_text(band_rel)}.")
        floor = g[g["n_pairs"] >= 2]["min_p_wilcoxon"].max()
        if np.isfinite(floor) and floor > alpha:
            text += (f" Note: with {int(g[g['n_pairs'] >= 2]['n_pairs'].min())} pairs the exact Wilcoxon p cannot go below "
                     f"{floor:.3g}, so the test cannot reach {alpha}; the CI is the informative number.")
        lines.append(text)
    if step_paired is not None and len(step_paired):
        for (backbone, sampler, baseline, method), g in step_paired.groupby(
                ["backbone", "sampler", "baseline", "method"], sort=False):
            pos = g[g["ci_lo"] > 0]["size"].tolist()
            neg = g[g["ci_hi"] < 0]["size"].tolist()
            lines.append(
                f"**Step efficiency, {method} vs {baseline}** ({backbone} · {sampler}): normalized area under the "
                f"dev-F1-vs-step curve higher (paired 95% CI above 0) at {len(pos)}/{len(g)} sizes "
                f"({_sizes_text(pos)})" + (f", lower at {_sizes_text(neg)}" if neg else "") + ".")
    if dwatt_vs_concat is not None and len(dwatt_vs_concat):
        for (backbone, sampler), g in dwatt_vs_concat.groupby(["backbone", "sampler"], sort=False):
            g = g.sort_values("size")
            largest = g.iloc[-1]
            verdict = ("above 0" if largest["ci_lo"] > 0 else "below 0" if largest["ci_hi"] < 0 else "includes 0")
            lines.append(
                f"**dwatt vs concat** ({backbone} · {sampler}): at the largest size ({largest['size']}) the gain is "
                f"{_pts(largest['mean_diff'], 2)} pts, 95% CI {_ci(largest['ci_lo'], largest['ci_hi'], 2)} "
                f"({verdict}); by size: "
                + ", ".join(f"{s}: {_pts(d, 2)}" for s, d in zip(g["size"], g["mean_diff"])) + ".")
    return lines


def step_section(table: pd.DataFrame, frac: float | None = None, reference: str = "last",
                 scale: str = "linear", v1: bool = False) -> str:
    """Steps to each dev-F1 target (censored cells counted at their full budget) and normalized AUC."""
    if table.empty:
        return _v1(v1) + "_No dev rows: step efficiency cannot be computed._\n"
    table = fold_tracks(table)
    axis = "log(step)" if scale == "log" else "step"
    rows = [[r["backbone"], r["sampler"], r["size"], r["method"], r["target_name"], r["n"],
             _pm(r["final_dev"], r["final_dev_ci"]), f"{r['n_reached']}/{r['n']}", r["n_censored"],
             _num(r["steps_to_reach_median"], 0), _pm(r["steps_to_reach_mean"], r["steps_to_reach_ci"], 0, 1.0),
             _pm(r["auc"], r["auc_ci"])]
            for _, r in table.iterrows()]
    if frac is not None:
        target = (f"Target: {frac * 100:g}% of `{reference}`'s final dev F1 in the same backbone/sampler/size/"
                  f"data_seed/seed (relative option; cells without a `{reference}` cell have no target).")
    else:
        target = ("Targets: fixed absolute dev F1 (" + ", ".join(sorted(set(table["target_name"]), key=str))
                  + ").")
    return (_v1(v1) + f"{target} Steps interpolated linearly in {axis} between eval points; a cell that never "
            "reaches a target counts as its full step budget and is censored (column `censored`; with censored "
            "cells the mean and median are lower bounds). AUC: area under dev F1 vs "
            f"{axis}, divided by its span (= mean dev F1 over the {axis} range, points).\n\n"
            + md_table(rows, ["backbone", "sampler", "size", "method", "target", "n", "final dev F1 (pts)",
                              "reached", "censored", "median steps", "mean steps ± CI", "norm. AUC (pts)"]))


def hypotheses_section(table: pd.DataFrame, block: hypotheses.HypothesisBlock | None, source: str = "",
                       v1: bool = False) -> str:
    """The pre-registered tests of the study YAML, one row per test (x backbone x sampler)."""
    if block is None:
        return f"_No `hypotheses:` block{f' in `{source}`' if source else ''}: nothing was pre-registered._\n"
    stage = f"stage `{block.stage}`" if block.stage is not None else "every stage"
    intro = (f"From `{source}`: one-sided tests (a > b), {len(block.tests)} declared, on the {block.split} split, "
             f"metric `{block.metric}`, cells of {stage}; sign-flip permutation p (exact when 2^n ≤ "
             f"{hypotheses.N_PERMUTATIONS}), Holm across all rows of the block at α = {block.alpha}"
             + ("; protocol-v1 cells get no verdict. " if v1 else "; refuted = the opposite one-sided test is "
                "significant after its own Holm adjustment. ")
             + "Estimate in F1 points "
             "(pooled: mean over sizes of the per-size mean gain; interaction: mean over seeds of gain(small) − "
             "gain(large)) with a descriptive 95% t-interval."
             + (f" Planned: {block.planned_pairs} pairs per size (interaction: complete seed units); a row with "
                "fewer at any tested size reads `interim`: its numbers are shown as they stand and give no verdict."
                if block.planned_pairs is not None and not v1 else "") + "\n\n")
    by_seeds = block.unit == "seeds"
    if by_seeds:
        intro = intro.replace("\n\n", " Pooled tests flip whole (data_seed, seed) units (`unit: seeds`: a seed's "
                              "pairs at every size share their sentences and init) and their interval is over units; "
                              "`p per pair` is the pooled test as first registered, flipping pairs.\n\n")
    table = fold_tracks(table)
    rows = [[r["id"], r["claim"], r["kind"], r["backbone"] or "–", r["sampler"] or "–", r["contrast"], r["sizes"],
             r["pairs_per_size"], f"{r['n_positive']}/{r['n']} {'pairs' if r['kind'] == 'pooled' else r['unit']}",
             _num(r["estimate"], 2, 1.0), _ci(r["ci_lo"], r["ci_hi"], 2, 1.0), _p(r["p"]), _p(r["min_p"]),
             _p(r["p_holm"]), _p(r["p_opposite_holm"]), *([_p(r["p_pairs"])] if by_seeds else []), r["verdict"]]
            for _, r in table.iterrows()]
    return (_v1(v1) + intro + md_table(rows, ["id", "claim", "kind", "backbone", "sampler", "contrast", "sizes",
                                             "pairs per size", "a > b", "estimate (pts)", "95% t-CI (pts)", "p",
                                             "min attainable p", "Holm p", "Holm p (opposite)",
                                             *(["p per pair"] if by_seeds else []), "verdict"])
            + amendments_section(block))


def amendments_section(block: hypotheses.HypothesisBlock | None) -> str:
    """The block's dated amendments, verbatim (REPORT's hypotheses and the claims' rules both show them)."""
    if block is None or not block.amendments:
        return ""
    return ("\nAmendments to the pre-registration (verbatim from the study YAML, `hypotheses.amendments`; the rules "
            "above are as first registered, the code applies them as amended):\n\n"
            + md_table([[date, text] for date, text in block.amendments], ["date", "amendment"]))


def pairs_section(diffs: pd.DataFrame, v1: bool = False) -> str:
    """Per contrast and size: the number of pairs, how many favour the method, and the spread of the pair
    differences (min / median / max, points). Every pair is in tables/every_pair.csv."""
    if diffs.empty:
        return _v1(v1) + "_No pairs for the contrasts fusion − deeper, fusion − deeper_copy, fusion − last, " \
                         "dwatt − concat._\n"
    diffs = fold_tracks(diffs)
    rows = []
    for (backbone, sampler, method, baseline, size), g in diffs.groupby(
            ["backbone", "sampler", "method", "baseline", "size"], sort=False):
        d = g["diff"].to_numpy(float)
        rows.append([backbone, sampler, f"{method} − {baseline}", size, len(d), int((d > 0).sum()),
                     _pts(d.min(), 2), _pts(np.median(d), 2), _pts(d.max(), 2)])
    return (_v1(v1) + "Every (data_seed, seed) pair of test F1 differences; the figure shows each pair as a dot "
            "with the mean and its 95% CI. All pairs: `tables/every_pair.csv`.\n\n"
            + md_table(rows, ["backbone", "sampler", "contrast", "size", "pairs", "pairs > 0", "min (pts)",
                              "median (pts)", "max (pts)"]))


FULL_SIZE = "all"   # the size column of full-training-set cells (stored as size 0: the full sampler ignores it)


def full_data_section(df: pd.DataFrame, stage: str, baselines: Sequence[str] = BASELINES,
                      n_boot: int = stats.N_BOOT) -> str:
    """A full-training-set stage (`load.full_data_stages`, e.g. the frozen study's `eval_full`), descriptive: test
    F1 per head, the paired gains over `baselines` and every pair's difference (one column per seed). The size
    column reads FULL_SIZE."""
    cells = stats.cell_values(df)
    if cells.empty:
        return f"_No test rows in stage `{stage}` yet._\n"
    methods = method_order(cells["method"].unique())
    f1 = stats.f1_vs_size(df).assign(size=FULL_SIZE)
    paired = stats.all_paired_cells(cells, "f1", tuple(baselines), n_boot=n_boot)
    contrasts = [pair for _, members in plots.expand_contrasts(methods) for pair in members]
    diffs = fold_tracks(stats.all_pair_differences(cells, "f1", contrasts))
    rows = []
    for (backbone, method, baseline), g in diffs.groupby(["backbone", "method", "baseline"], sort=False):
        g = g.sort_values(["data_seed", "seed"])
        d = g["diff"].to_numpy(float)
        each = " ".join(f"{_pair_label(ds, s)}: {100 * x:+.1f}" for ds, s, x in zip(g["data_seed"], g["seed"], d))
        rows.append([backbone, f"{method} − {baseline}", len(d), int((d > 0).sum()), _pts(d.mean(), 2), each])
    intro = (f"Stage `{stage}` trains every head on all the training sentences. Its seeds share that one training "
             "set and differ in head init, dropout and batch order only, so the intervals below measure that "
             "variation alone. Descriptive: no pre-registered test reads these tables (where a claim reports this "
             "stage, as claim (c)'s full-data row, that row is descriptive too).\n")
    every = ("Every pair (test F1 difference in points, per seed):\n\n"
             + md_table(rows, ["backbone", "contrast", "pairs", "pairs > 0", "mean (pts)", "each pair"])
             if rows else "_No pairs._\n")
    return "\n".join([intro, f1_section(f1),
                      gains_section(paired.assign(size=FULL_SIZE)), every])


def _pair_label(data_seed: Any, seed: Any) -> str:
    """`s3` for a pair whose data seed is its seed (one training set), else `d1 s3`."""
    return f"s{int(seed)}" if int(data_seed) == int(seed) else f"d{int(data_seed)} s{int(seed)}"


def _csv_value(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (float, np.floating)):
        return "–" if not np.isfinite(value) else f"{value:.4g}"
    return _cell(value)


CSV_HIDDEN = ("run_ids",)   # selection.csv: the tuning cells behind each mean (for code and audits, too long to show)


def csv_section(path: Path, what: str) -> str | None:
    """A CSV written by `paper-repro` (selection.csv, budget_check.csv, verify.csv) as a markdown table (the CSV_HIDDEN columns
    left out, and said so); None if absent."""
    if not path.exists():
        return None
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as error:
        return f"_`{path.name}` unreadable: {error}_\n"
    hidden = [c for c in CSV_HIDDEN if c in table.columns]
    table = table.drop(columns=hidden)
    rows = [[_csv_value(v) for v in row] for row in table.itertuples(index=False, name=None)]
    note = "".join(f"; its `{c}` column is not shown" for c in hidden)
    return f"{what} (`{path.name}`, as `paper-repro` wrote it{note}).\n\n" + md_table(rows, [str(c) for c in table.columns])


def per_type_section(table: pd.DataFrame) -> str:
    if table.empty:
        return "_No test rows._\n"
    table = fold_tracks(table)
    types = [t for t in ENTITY_TYPES if t in set(table["type"])]
    values = {(*key, r["type"]): r for key, r in
              ((tuple(r[k] for k in [*SHOWN_KEYS, "method"]), r) for _, r in table.iterrows())}
    rows = []
    for key in table[[*SHOWN_KEYS, "method"]].drop_duplicates().itertuples(index=False, name=None):
        row, n = list(key), 0
        for t in types:
            r = values.get((*key, t))
            row.append(_pm(r["mean"], r["ci_half"]) if r is not None else "–")
            n = max(n, int(r["n"])) if r is not None else n
        rows.append([*row, n])
    return ("Test F1 per entity type (points), mean ± 95% t-CI half-width.\n\n"
            + md_table(rows, [*SHOWN_KEYS, "method", *types, "n"]))


def depth_section(weights: pd.DataFrame) -> str:
    """Per method/size: the layer with the largest mean weight for each entity type, its weight, and the
    normalized entropy of the mean weights (1 = uniform over layers)."""
    if weights.empty:
        return "_No manifest carries depth_attention or scalarmix_weights._\n"
    weights = fold_tracks(weights)
    mean = weights.groupby(["source", "method", "backbone", "sampler", "size", "type", "layer_index", "layer"],
                           as_index=False).agg(weight=("weight", "mean"), n=("run_id", "nunique"))
    summary = {}
    for key, g in mean.groupby(["source", "method", "backbone", "sampler", "size", "type"], sort=True):
        top = g.sort_values("weight", ascending=False).iloc[0]
        w = g["weight"].to_numpy(float)
        w = w / w.sum() if np.nansum(w) > 0 else w
        entropy = -np.nansum(w * np.log(np.clip(w, 1e-12, None)))
        norm = entropy / np.log(len(w)) if len(w) > 1 else np.nan
        summary[key] = (f"{top['layer']} ({_num(top['weight'], 2)}; H={_num(norm, 2)})", int(g["n"].max()))
    types = [t for t in [*ENTITY_TYPES, "ALL"] if any(k[-1] == t for k in summary)]
    types += sorted({k[-1] for k in summary} - set(types))
    rows = []
    order = {m: i for i, m in enumerate(method_order({k[1] for k in summary}))}
    for head in sorted({k[:-1] for k in summary}, key=lambda k: (k[0], order[k[1]], str(k[2]), str(k[3]), k[4])):
        row = [*head]
        for t in types:
            row.append(summary.get((*head, t), ("–", 0))[0])
        row.append(max(summary.get((*head, t), ("", 0))[1] for t in types))
        rows.append(row)
    return ("Top layer by mean weight over seeds per entity type: `layer (weight; H = normalized entropy of "
            "the mean weights, 1 = uniform)`.\n\n"
            + md_table(rows, ["source", "method", "backbone", "sampler", "size", *types, "n"]))


def budget_section(table: pd.DataFrame) -> str:
    if table.empty:
        return "_No budget information._\n"
    rows = [[r["backbone"], r["method"], r["knob"], r["knob_value"], _num(r["params"], 0), _num(r["target"], 0),
             _num(r["deviation"], 2, 100) + (" %" if _num(r["deviation"]) != "–" else ""), r["matched"], r["note"],
             r["n_cells"], r["source"]] for _, r in table.iterrows()]
    return md_table(rows, ["backbone", "method", "knob", "knob value", "head params", "target", "deviation",
                           "matched", "note", "cells", "source"])


def cost_section(table: pd.DataFrame) -> str:
    if table.empty:
        return "_No cells._\n"
    table = fold_tracks(table)
    rows = [[r["backbone"], r["method"], r["n_cells"], _pm(r["step_time_ms"], r["step_time_ms_ci"], 1, 1.0),
             _pm(r["train_s"], r["train_s_ci"], 1, 1.0), _pm(r["total_s"], r["total_s_ci"], 1, 1.0),
             _num(r["head_params"], 0)] for _, r in table.iterrows()]
    return ("Mean ± 95% t-CI half-width over cells. Step time from the manifest timings when recorded, else "
            "training wall-clock / steps.\n\n"
            + md_table(rows, ["backbone", "method", "cells", "ms / step", "train s / cell", "total s / cell",
                              "head params"]))


def completeness_section(comp: dict[str, pd.DataFrame], figures: dict[str, Any], n_manifests: int) -> str:
    out = []
    counts = fold_tracks(comp["counts"])
    if counts.empty:
        out.append("_No cells._\n")
    else:
        out += size_method_tables(counts, lambda r: f"{int(r['n_cells'].iloc[0])} ({int(r['n_test'].iloc[0])} test)",
                                  "0", "cells per method × size (cells with a test row)")
    missing = fold_tracks(comp["missing"])
    if missing.empty:
        out.append("No missing cells against the observed grid (union over methods of the data_seed × seed "
                   "combinations seen at each backbone/sampler/size; all methods seen in the study).\n")
    else:
        rows = missing.head(MAX_MISSING_ROWS).values.tolist()
        more = f" (first {MAX_MISSING_ROWS} shown)" if len(missing) > MAX_MISSING_ROWS else ""
        out.append(f"**{len(missing)} missing cells** against the observed grid{more}:\n\n"
                   + md_table(rows, list(missing.columns)))
    no_manifest = comp["no_manifest"]
    out.append(f"Manifests read: {n_manifests}; result cells without a manifest: {len(no_manifest)}.\n")
    skipped = {k: v for k, v in figures.items() if isinstance(v, str)}
    if skipped:
        out.append("Figures skipped:\n\n" + "\n".join(f"- {k}: {v}" for k, v in skipped.items()) + "\n")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------- build
def _write_csv(table: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)


CHECKOUT = Path(__file__).resolve().parents[2]


def _shown_path(path: Path) -> str:
    """A path as the report shows it: relative to the checkout when inside it (deterministic), else as given."""
    try:
        return str(Path(path).resolve().relative_to(CHECKOUT))
    except ValueError:
        return str(path)


def default_study_yaml(study: Path) -> Path | None:
    """`experiments/<study name>.yaml` (relative to the working directory, else to the checkout), if it exists."""
    for root in (Path("."), CHECKOUT):
        candidate = root / "experiments" / f"{study.name}.yaml"
        if candidate.exists():
            return candidate
    return None


def descriptive_stages(study_yaml: str | Path | None, df_all: pd.DataFrame, headline: str) -> list[str]:
    """The few-shot evaluation stages other than `headline` that have cells, in YAML order: a stage that applies an
    lr selection (`select:`) and checks nothing (`check:`), e.g. cpu_study's `eval_ktype`, `eval_family` and
    `eval_mpnet`. No pre-registered test reads them; each gets a descriptive report of its own (`stage_out_dir`).
    Full-training-set stages are left out: they are a section of the headline report (`full_data_section`)."""
    if study_yaml is None or not study_stages(df_all) or hypotheses.read_hypotheses(study_yaml) is None:
        return []        # nothing pre-registered: no stage to set apart from the tests' one
    with_cells = set(study_stages(df_all)) - set(full_data_stages(df_all))
    return [str(e["name"]) for e in lr_sensitivity.stage_entries(study_yaml)
            if e.get("select") and not e.get("check") and e.get("name") != headline and e.get("name") in with_cells]


def stage_out_dir(study: Path, stage: str) -> Path:
    """Where the report of a stage other than the hypotheses' goes by default: `<study>/stages/<stage>/`."""
    return study / STAGES_DIR / stage


def stage_note(df_all: pd.DataFrame, stage: str | None, df: pd.DataFrame, pointer: str = "",
               stage_reports: Sequence[tuple[str, str]] = (), declared: Sequence[str] = ()) -> str:
    """What the report covers when the study has stages ("" when it has none), listed in the YAML's order
    (`declared`). `pointer` (`headline_pointer`): in the report of a stage other than the hypotheses', where the tests
    are instead; `stage_reports`: [(stage, link)] of the other evaluation stages' descriptive reports."""
    stages = in_yaml_order(study_stages(df_all), list(declared))
    if not stages or stage is None:
        return ""
    counts = df_all.groupby("stage")["run_id"].nunique()
    listed = ", ".join(f"`{s}` ({int(counts.get(s, 0))} cells)" for s in stages)
    full = [] if pointer else full_data_stages(df_all, exclude=stage)
    text = f"Study stages: {listed}. Everything below "
    text += ("uses" if pointer else "except the lr-selection, budget-check and lr-sensitivity sections (which read "
             "the tuning and check stages)" + "".join(f", the full-training-set section (stage `{s}`)" for s in full)
             + " uses")
    text += f" stage `{stage}` only: cells of the other stages never enter its tables, figures or tests."
    if pointer:
        text += " " + pointer
    if df.empty:
        text += f" **No cells of stage `{stage}` yet.**"
    if stage_reports:
        text += (" Descriptive reports of the other evaluation stages: "
                 + ", ".join(f"[`{s}`]({link})" for s, link in stage_reports) + ".")
    return text + "\n"


def headline_pointer(stage: str, headline: str, headline_report: str | None,
                     claim_block: verdicts.ClaimBlock | None, study_yaml: str | Path | None = None) -> str:
    """The note a stage other than the hypotheses' gets: the tests, verdicts, lr selection, budget check and lr
    sensitivity read stage `headline` and are in its report (`headline_report`, a relative link); then what else
    reads this stage: a claim (as its full-training-set row, `Claim.full_data`), the lr selection (a `select:
    from:` stage of `study_yaml`) or the budget check (a `check:` stage), or nothing (descriptive)."""
    link = f" ([its report]({headline_report}))" if headline_report else ""
    text = (f"The pre-registered tests and verdicts read stage `{headline}`{link}: they, the lr selection, the budget "
            "check and the lr sensitivity are there, not repeated here.")
    readers = [c.id for c in (claim_block.items if claim_block is not None else ()) if c.full_data
               and c.full_data[2] == stage]
    if readers:
        return text + (f" Claim{'s' * (len(readers) > 1)} {', '.join(f'({r})' for r in readers)} also read"
                       f"{'s' * (len(readers) == 1)} stage `{stage}`, as the descriptive row shown there.")
    entries = lr_sensitivity.stage_entries(study_yaml) if study_yaml is not None else []
    if any(isinstance(e.get("select"), dict) and e["select"].get("from") == stage for e in entries):
        return text + f" The pre-registered lr selection reads stage `{stage}`'s dev rows (shown there)."
    if any(e.get("name") == stage and e.get("check") for e in entries):
        return text + f" Stage `{stage}` is a pre-registered budget check (its table is there)."
    return text + f" **Descriptive:** no pre-registered test or claim reads stage `{stage}`."


def elsewhere_section(what: str, headline: str, headline_report: str | None) -> str:
    """In the report of a stage other than the hypotheses': where the hypotheses or verdicts are instead."""
    link = f" ([its report]({headline_report}))" if headline_report else ""
    return f"_The {what} read stage `{headline}`{link}: not repeated here._\n"


def report_out(study: Path, out_dir: str | Path | None, stage: str, headline: str, staged: bool) -> Path:
    """Where a report goes: `out_dir` if given, else the study directory for the hypotheses' stage (or an unstaged
    study) and `stage_out_dir` for any other stage, so that it never overwrites the study's REPORT.md."""
    if out_dir is not None:
        return Path(out_dir)
    return stage_out_dir(study, stage) if staged and stage != headline else study


def build_report(
    study_dir: str | Path, out_dir: str | Path | None = None, execute_notebooks: bool = False,
    targets: Sequence[float] = stats.STEP_TARGETS, frac: float | None = None, reference: str = "last",
    baselines: Sequence[str] = BASELINES, n_boot: int = stats.N_BOOT, figures: bool = True,
    study_yaml: str | Path | None = None, stage: str | None = None, scale: str = "linear",
    with_stages: bool = True, headline_dir: str | Path | None = None,
) -> Path:
    """Write `<out>/REPORT.md`, `<out>/figures/*.png|pdf` and `<out>/tables/*.csv`; return the REPORT.md path.

    `out`: `report_out`. The report of a staged study's stage other than the hypotheses' points to the hypotheses'
    stage report (in `headline_dir`, default the study directory) for the tests, verdicts, lr selection, budget check
    and lr sensitivity instead of repeating them (`headline_pointer`, `elsewhere_section`). The report of the
    hypotheses' stage first writes, with `with_stages`, one of each `descriptive_stages` under
    `<out>/stages/<stage>/` and links them. `study_yaml` (default `experiments/<study>.yaml` if it exists)
    supplies the pre-registered hypotheses. `stage` picks the cells of a staged study (default: the hypotheses
    block's stage, else "eval"; ignored for unstaged studies). Step efficiency uses the fixed dev-F1 `targets`, or
    with `frac` the relative target frac x `reference`'s final dev F1; `scale` "linear" or "log" steps. With
    `execute_notebooks`, the notebooks in `analysis/` are run headless on this study into `<out>/notebooks/`
    (failures are reported, not raised). `figures=False` writes the tables only (faster)."""
    study = resolve_study_dir(study_dir)
    df_all = load_results(study)
    manifests_all = load_manifests(study)

    yaml_path = Path(study_yaml) if study_yaml is not None else default_study_yaml(study)
    block, hyp = None, pd.DataFrame(columns=hypotheses.HYPOTHESIS_COLUMNS)
    hyp_note = ""
    if yaml_path is not None:
        try:
            block, hyp = hypotheses.evaluate_study_hypotheses(df_all, yaml_path)
        except (OSError, ValueError) as error:   # a malformed block is reported, the rest of the report stands
            hyp_note = f"_Hypotheses not evaluated: {type(error).__name__}: {error}_\n"
    claim_block, claims, claim_parts, claims_note = None, None, None, ""
    if hyp_note:
        claims_note = "_Claims not evaluated: the hypotheses they read were not (see above)._\n"
    elif yaml_path is not None:
        try:
            claim_block, claims, claim_parts = verdicts.evaluate_study_claims(df_all, hyp, block, yaml_path)
        except (OSError, ValueError) as error:   # reported like a malformed hypotheses block
            claims_note = f"_Claims not evaluated: {type(error).__name__}: {error}_\n"
    headline = block.stage if block is not None and block.stage is not None else DEFAULT_STAGE
    if stage is None:
        stage = headline
    staged = bool(study_stages(df_all))
    other = staged and block is not None and stage != headline     # the tests read another stage: pointed to
    out = report_out(study, out_dir, stage, headline, staged)
    figures_dir = out / "figures"
    tables_dir = out / "tables"
    out.mkdir(parents=True, exist_ok=True)
    headline_md = Path(headline_dir if headline_dir is not None else study) / "REPORT.md"
    headline_report = (os.path.relpath(headline_md, out) if headline_dir is not None or headline_md.exists()
                       else None)
    pointer = headline_pointer(stage, headline, headline_report, claim_block, yaml_path) if other else ""
    stage_reports: list[tuple[str, str]] = []
    if staged and block is not None and stage == headline and with_stages:   # first, under <out>/stages/<stage>/
        for name in descriptive_stages(yaml_path, df_all, headline):
            written = build_report(study, stage_out_dir(out, name), targets=targets, frac=frac, reference=reference,
                                   baselines=baselines, n_boot=n_boot, figures=figures, study_yaml=yaml_path,
                                   stage=name, scale=scale, with_stages=False, headline_dir=out)
            stage_reports.append((name, os.path.relpath(written, out)))
    lr = None
    try:
        lr = None if other else lr_sensitivity.study_lr_tables(df_all, study, yaml_path, stage, SELECTION_FILE)
    except (OSError, ValueError) as error:
        log.warning("lr sensitivity not computed: %s", error)
    df = select_stage(df_all, stage)
    runs = set(df["run_id"]) if len(df) else set()
    manifests = [m for m in manifests_all if m.get("run_id") in runs] if staged else manifests_all
    v1 = has_v1(df)
    label = _v1(v1)

    f1 = stats.f1_vs_size(df)
    cells = stats.cell_values(df)
    methods = method_order(cells["method"].unique()) if len(cells) else []
    paired = stats.all_paired_cells(cells, "f1", tuple(baselines), n_boot=n_boot)
    dvc = (stats.paired_from_cells(cells, "f1", "dwatt", "concat", n_boot=n_boot)
           if {"dwatt", "concat"} <= set(methods) else pd.DataFrame(columns=stats.PAIRED_COLUMNS))
    contrasts = [pair for _, members in plots.expand_contrasts(methods) for pair in members]
    every_pair = stats.all_pair_differences(cells, "f1", contrasts)
    step_cells = stats.step_efficiency_cells(df, targets, frac=frac, reference=reference, scale=scale)
    step_table = stats.step_efficiency(df, targets, frac=frac, reference=reference, scale=scale)
    step_paired = stats.all_paired_cells(stats.step_auc_cells(step_cells), "auc", ("deeper",), n_boot=n_boot)
    step_paired = step_paired[step_paired["method"] != "last"].reset_index(drop=True)
    per_type = stats.per_type_table(df)
    budget = stats.budget_table(df, manifests)
    cost = stats.cost_table(df, manifests)
    weights = stats.depth_weights(manifests, df)
    comp = stats.completeness(df, manifests)

    for name, table in {"f1_vs_size": f1, "paired_gains": paired, "dwatt_vs_concat": dvc, "every_pair": every_pair,
                        "step_efficiency": step_table,
                        "step_efficiency_cells": step_cells,
                        "auc_paired_vs_deeper": step_paired, "per_type": per_type, "budget": budget, "cost": cost,
                        "completeness": comp["counts"], "missing_cells": comp["missing"]}.items():
        _write_csv(table, tables_dir / f"{name}.csv")
    extra = {"hypotheses": None if other else hyp, "claims": None if other else claims,
             "claims_components": None if other else claim_parts,
             "lr_choice": lr["choice"] if lr else None, "lr_direction": lr["direction"] if lr else None}
    for name, table in extra.items():   # a table this report does not have: an older run's copy is removed
        if table is not None:
            _write_csv(table, tables_dir / f"{name}.csv")
        else:
            (tables_dir / f"{name}.csv").unlink(missing_ok=True)

    if figures:
        figs = plots.make_all_figures(df, manifests, figures_dir, targets=targets, frac=frac, reference=reference,
                                      paired=paired if len(paired) else None, scale=scale,
                                      tune_df=lr["tune_df"] if lr else None, selection=lr["selection"] if lr else None,
                                      stage=lr["selection_stages"] if lr else stage, param=lr["param"] if lr else "head_lr")
        remove_stale_figures(figures_dir, figs)
    else:
        figs = {name: "figures not requested" for name in (*plots.FIGURE_NAMES, *(["lr_sensitivity"] if lr else []))}

    notebook_note = ("Not executed (pass `--execute-notebooks` / `execute_notebooks=True`).\n" if not other else
                     f"_The notebooks analyse stage `{headline}`"
                     + (f" ([its report]({headline_report}))" if headline_report else "") + ": not run here._\n")
    if execute_notebooks:
        from paper_repro.analysis.notebooks import NotebookError, run_notebooks

        try:
            done = run_notebooks(study, out / "notebooks")
            notebook_note = "\n".join(f"- [{p.name}]({os.path.relpath(p, out)})" for p in done) + "\n"
        except NotebookError as error:
            notebook_note = f"Notebook execution failed: {error}\n"
        except Exception as error:  # noqa: BLE001 - the report is still written
            log.exception("notebook execution failed")
            notebook_note = f"Notebook execution failed: {type(error).__name__}: {error}\n"

    source = (f"`{RESULTS_FILE}`" if (study / RESULTS_FILE).exists()
              else f"{len(done_cell_parquets(study))} done cell files")
    n_cells = df["run_id"].nunique() if len(df) else 0
    if v1:
        supports = (f"_{V1_LABEL}_ These cells were run under a superseded protocol: the tables describe them, "
                    "and no conclusion is drawn.\n")
    else:
        supports = ("Exploratory (not pre-registered; per-size intervals, Holm across sizes only):\n\n"
                    + "\n".join(f"- {line}" for line in findings(paired, step_paired, dvc)) + "\n")
    yaml_shown = _shown_path(yaml_path) if yaml_path is not None else ""
    sections = [
        f"# Report — study `{study.name}`\n",
        f"Generated by `paper_repro.analysis.report` from {source}: {len(df)} rows, {n_cells} cells, "
        f"{len(manifests)} manifests; methods: {', '.join(methods) or 'none'}.\n",
        stage_note(df_all, stage, df, pointer, stage_reports, lr_sensitivity.declared_stages(yaml_path)),
        label.rstrip("\n") + "\n" if label else "",
        "Conventions: F1 is seqeval's default-mode (conlleval) entity micro F1 (`f1`) shown in points "
        "(100 × F1); strict IOB2 is `f1_strict` in the CSV tables. Means are over cells (data_seed × seed); 95% "
        "CIs of means are t-intervals (n = 1: no CI, shown as a bare mean). Paired comparisons pair cells on "
        f"backbone/finetune/sampler/size/data_seed/seed at the test split (a frozen-encoder track is shown as "
        f"`<backbone> (frozen)`; its cells are never paired or averaged with full fine-tuning cells). Anything from the paper is marked {PAPER}.\n",
        "## Claims under test\n",
        "\n".join(f"- {c}" for c in PAPER_CLAIMS) + "\n",
        "## Pre-registered hypotheses\n",
        elsewhere_section("pre-registered hypotheses", headline, headline_report) if other else
        hyp_note or hypotheses_section(hyp, block, yaml_shown, v1=v1 or (
            block is not None and has_v1(hypotheses.hypothesis_cells(df_all, block)))),
        "## Verdicts on the paper's claims\n",
        elsewhere_section("verdicts on the paper's claims", headline, headline_report) if other and claim_block else
        verdicts.claims_section(claims, claim_parts, claim_block, block, yaml_shown, note=claims_note),
        "## What the data supports\n",
        supports,
        "## 1. Test F1 vs few-shot size\n",
        label + f1_section(f1),
        _figure_links(figs["f1_vs_size"], out, "F1 vs size"),
        "## 2. Paired gains over the baselines\n",
        gains_section(paired, v1=v1),
        _figure_links(figs["gains"], out, "gains"),
        "## 3. Every pair\n",
        pairs_section(every_pair, v1=v1),
        _figure_links(figs["pairs"], out, "every pair"),
        "## 4. Step efficiency\n",
        step_section(step_table, frac, reference, scale, v1=v1),
        _figure_links(figs["step_efficiency"], out, "step efficiency"),
    ]
    for full_stage in [] if other else full_data_stages(df_all, exclude=stage):
        sections += [f"## Full training set (stage `{full_stage}`, descriptive)\n",
                     full_data_section(select_stage(df_all, full_stage), full_stage, baselines, n_boot)]
    for heading, path, what in (("Learning-rate selection", study / SELECTION_FILE,
                                 "Head learning rate per backbone × method × size bracket, chosen on the tuning "
                                 "stage's mean final dev F1"),
                                ("Budget check", study / BUDGET_CHECK_FILE,
                                 "Whether a larger step budget would still have gained dev F1")):
        rendered = None if other else csv_section(path, what)
        if rendered is not None:
            sections += [f"## {heading}\n", rendered]
    if lr is not None:
        sections += ["## Learning-rate sensitivity (post hoc)\n",
                     lr_sensitivity.lr_section(lr, _figure_links(figs["lr_sensitivity"], out, "lr sensitivity"))]
    sections += [
        "## 5. Parameter budget\n",
        label + budget_section(budget),
        _figure_links(figs["budget"], out, "budget"),
        "## 6. Depth attention and ScalarMix weights\n",
        depth_section(weights),
        _figure_links(figs["depth_attention"], out, "depth attention"),
        "## 7. Per-type F1\n",
        label + per_type_section(per_type),
        _figure_links(figs["per_type"], out, "per-type F1"),
        "## 8. Cost\n",
        label + cost_section(cost),
        _figure_links(figs["cost"], out, "cost"),
        "## 9. Completeness\n",
        completeness_section(comp, figs, len(manifests)),
        "## Notebooks\n",
        notebook_note,
        f"Tables as CSV: `{os.path.relpath(tables_dir, out)}/`.\n",
    ]
    report = out / "REPORT.md"
    report.write_text("\n".join(part for part in sections if part))
    log.info("wrote %s", report)
    return report


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from error
    if not values:
        raise argparse.ArgumentTypeError("expected at least one target")
    if any(not 0 < v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected dev-F1 targets in (0, 1] (0.5, not 50), got {text!r}")
    return values


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="paper-repro report", description=__doc__.splitlines()[0])
    parser.add_argument("study_dir", help="results/<study>")
    parser.add_argument("--study", default=None, metavar="PATH",
                        help="study YAML with the `hypotheses:` block (default: experiments/<study>.yaml if it exists)")
    parser.add_argument("--stage", default=None,
                        help="the stage of a staged study to report (default: the hypotheses' stage, else eval, "
                             "and then also each other few-shot evaluation stage with cells, under stages/<stage>/)")
    parser.add_argument("--out-dir", default=None,
                        help="where REPORT.md, figures/ and tables/ go (default: the study dir; for a --stage other "
                             "than the hypotheses': <study>/stages/<stage>)")
    parser.add_argument("--execute-notebooks", action="store_true", help="also run analysis/*.ipynb headless")
    parser.add_argument("--targets", type=_floats, default=stats.STEP_TARGETS,
                        help="fixed dev-F1 targets for steps-to-target, comma-separated F1 in [0, 1] (default "
                             + ",".join(str(t) for t in stats.STEP_TARGETS) + ")")
    parser.add_argument("--frac", type=float, default=None,
                        help="relative option instead of --targets: target = FRAC x the reference's final dev F1")
    parser.add_argument("--reference", default="last", help="with --frac: the method whose final dev F1 is the target")
    parser.add_argument("--log-steps", action="store_true", help="steps-to-target and AUC over log(step)")
    parser.add_argument("--n-boot", type=int, default=stats.N_BOOT, help="bootstrap resamples")
    parser.add_argument("--no-figures", action="store_true", help="tables only")
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(message)s")
    for noisy in ("fontTools", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    import matplotlib

    matplotlib.use("Agg")
    if not resolve_study_dir(args.study_dir).exists():
        parser.error(f"study directory not found: {args.study_dir}")
    if args.study is not None and not Path(args.study).exists():
        parser.error(f"study YAML not found: {args.study}")
    if args.stage is not None:   # a typo must not overwrite a committed REPORT.md with an empty one
        study = resolve_study_dir(args.study_dir)
        yaml_path = Path(args.study) if args.study is not None else default_study_yaml(study)
        known = {s.get("name") for s in lr_sensitivity.stage_entries(yaml_path)} if yaml_path is not None else set()
        results = load_results(study)
        known |= set(results["stage"].dropna().unique()) if "stage" in results else set()
        if args.stage not in known:
            parser.error(f"--stage {args.stage!r}: not a stage of {yaml_path or study} nor of its cells "
                         f"({', '.join(sorted(str(k) for k in known if k)) or 'none'})")
    path = build_report(args.study_dir, args.out_dir, execute_notebooks=args.execute_notebooks,
                        targets=args.targets, frac=args.frac, reference=args.reference, n_boot=args.n_boot,
                        figures=not args.no_figures, study_yaml=args.study, stage=args.stage,
                        scale="log" if args.log_steps else "linear")
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
