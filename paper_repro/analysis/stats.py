"""Statistics over seeds: means with t-intervals, paired method-vs-baseline differences (t-interval below 10
pairs, else bootstrap; Wilcoxon, paired t, Holm across sizes), step efficiency, per-type F1, budget and cost
tables. The pre-registered hypothesis tests live in `paper_repro.analysis.hypotheses`.

Conventions: F1 values stay in [0, 1] in every table (figures and the report show F1 points = 100 x F1).
A "cell" is one (backbone, finetune, sampler, size, data_seed, seed, method) run; two methods are paired on
(backbone, finetune, sampler, size, data_seed, seed): a frozen-encoder cell is never paired with, or averaged
with, a full fine-tuning cell (`finetune` missing reads as "full", `load.with_finetune`). n = number of cells
(or pairs) behind a number; n = 1 gives a NaN CI, reported as such.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from paper_repro.analysis.load import (
    CELL_KEYS,
    GROUP_KEYS,
    TYPE_COLUMNS,
    _get,
    manifest_index,
    method_order,
    with_finetune,
)


CONFIDENCE = 0.95
MIN_BOOT_PAIRS = 10   # below this many pairs a percentile bootstrap is ~[min, max] of the pairs: use the t-interval
N_BOOT = 10_000
BOOT_SEED = 20240520
PAPER_GAIN_RANGE = (3.68, 9.73)   # (paper's claim) layer-fusion F1 gain on few-shot CoNLL-03; unit not stated


# --------------------------------------------------------------------------------------------- basics
def mean_ci(values: Any, confidence: float = CONFIDENCE) -> dict[str, float]:
    """Mean, sd and a t-interval over the finite values; n < 2 -> NaN interval (n = 0 -> NaN mean)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = int(x.size)
    mean = float(x.mean()) if n else float("nan")
    if n < 2:
        return {"mean": mean, "sd": float("nan"), "ci_lo": float("nan"), "ci_hi": float("nan"),
                "ci_half": float("nan"), "n": n}
    sd = float(x.std(ddof=1))
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1) * sd / np.sqrt(n))
    return {"mean": mean, "sd": sd, "ci_lo": mean - half, "ci_hi": mean + half, "ci_half": half, "n": n}


def summarize(df: pd.DataFrame, by: list[str], value: str, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """mean_ci of `value` per group of `by` (groups sorted, methods in METHOD_ORDER)."""
    columns = [*by, "mean", "sd", "ci_lo", "ci_hi", "ci_half", "n"]
    if df.empty or value not in df:
        return pd.DataFrame(columns=columns)
    rows = []
    for key, group in df.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key)), **mean_ci(group[value], confidence)})
    return _order_methods(pd.DataFrame(rows, columns=columns), by)


def _order_methods(table: pd.DataFrame, sort_by: list[str] | None = None) -> pd.DataFrame:
    if table.empty or "method" not in table:
        return table.reset_index(drop=True)
    order = {m: i for i, m in enumerate(method_order(table["method"].unique()))}
    keys = [k for k in (sort_by or []) if k in table and k != "method"]
    table = table.assign(_m=table["method"].map(order))
    table = table.sort_values([*[k for k in keys if k in GROUP_KEYS], "_m",
                               *[k for k in keys if k not in GROUP_KEYS]], kind="stable")
    return table.drop(columns="_m").reset_index(drop=True)


def holm(pvalues: Any) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1). NaNs stay NaN and do not count
    towards the number of tests."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adjusted, 1.0)
    return out


def min_wilcoxon_p(n: int) -> float:
    """Smallest two-sided exact Wilcoxon signed-rank p attainable with n untied non-zero pairs."""
    return float(min(1.0, 2.0 / 2.0**n)) if n >= 1 else float("nan")


def _paired_tests(d: np.ndarray) -> tuple[float, float]:
    """(Wilcoxon signed-rank p, paired t-test p) for differences d. n < 2 -> NaN; all-zero -> 1.0 (no
    evidence of any difference); constant non-zero differences -> t-test p = 0."""
    n = d.size
    if n < 2:
        return float("nan"), float("nan")
    if np.all(d == 0):
        return 1.0, 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            p_w = float(sps.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)
        except ValueError:
            p_w = float("nan")
        if np.all(d == d[0]):
            p_t = 0.0
        else:
            p_t = float(sps.ttest_1samp(d, 0.0).pvalue)
    return p_w, p_t


def bootstrap_ci(
    a: np.ndarray, b: np.ndarray, n_boot: int = N_BOOT, seed: int = BOOT_SEED, confidence: float = CONFIDENCE
) -> dict[str, float]:
    """Paired percentile bootstrap for mean(a - b) and for the relative gain mean(a - b) / mean(b).

    Pairs are resampled together (vectorised: one (n_boot, n) index matrix from a seeded Generator)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    n = a.size
    nan = float("nan")
    if n < 2:
        return {"ci_lo": nan, "ci_hi": nan, "rel_ci_lo": nan, "rel_ci_hi": nan}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    d = a - b
    boot_d = d[idx].mean(axis=1)
    boot_b = b[idx].mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        boot_rel = boot_d / boot_b
    q = [(1 - confidence) / 2 * 100, (1 + confidence) / 2 * 100]
    lo, hi = np.percentile(boot_d, q)
    finite = boot_rel[np.isfinite(boot_rel)]
    rlo, rhi = np.percentile(finite, q) if finite.size else (nan, nan)
    return {"ci_lo": float(lo), "ci_hi": float(hi), "rel_ci_lo": float(rlo), "rel_ci_hi": float(rhi)}


# --------------------------------------------------------------------------------------------- per-cell values
def final_rows(df: pd.DataFrame, split: str) -> pd.DataFrame:
    """The last eval point of each run in `split` (test rows exist only at the final step)."""
    df = with_finetune(df)
    rows = df[df["split"] == split]
    if rows.empty:
        return rows
    return rows.sort_values("step", kind="stable").groupby("run_id", sort=False).tail(1).reset_index(drop=True)


def cell_values(df: pd.DataFrame, metric: str = "f1", split: str = "test") -> pd.DataFrame:
    """One value per (method, cell keys): the final `split` value of `metric` (duplicates averaged)."""
    columns = ["method", *CELL_KEYS, metric]
    rows = final_rows(df, split)
    if rows.empty or metric not in rows:
        return pd.DataFrame(columns=columns)
    rows = rows[columns].dropna(subset=[metric])
    counts = rows.groupby(["method", *CELL_KEYS]).size()
    if (counts > 1).any():  # e.g. a study that varies the learning rate: averaging would mix conditions
        method, *key = counts[counts > 1].index[0]
        raise ValueError(f"{int((counts > 1).sum())} cells (first: {method} at {dict(zip(CELL_KEYS, key))}) have "
                         "several runs that differ in other settings (e.g. head_lr); analyse each setting separately")
    return rows[["method", *CELL_KEYS, metric]].reset_index(drop=True)


def f1_vs_size(df: pd.DataFrame, metric: str = "f1", split: str = "test") -> pd.DataFrame:
    """Mean +- 95% t-CI over seeds of the final `metric` per (backbone, sampler, size, method)."""
    return summarize(cell_values(df, metric, split), [*GROUP_KEYS, "method"], metric)


# --------------------------------------------------------------------------------------------- paired
PAIRED_COLUMNS = [
    *GROUP_KEYS, "method", "baseline", "n_pairs", "n_positive", "mean_method", "mean_baseline", "mean_diff",
    "ci_lo", "ci_hi", "ci_method", "rel_gain", "rel_ci_lo", "rel_ci_hi", "p_wilcoxon", "p_ttest",
    "p_wilcoxon_holm", "p_ttest_holm", "min_p_wilcoxon",
]
PAIR_COLUMNS = [*GROUP_KEYS, "data_seed", "seed", "method", "baseline", "a", "b", "diff"]


def paired_t_ci(a: Any, b: Any, confidence: float = CONFIDENCE) -> dict[str, float]:
    """Paired t-interval for mean(a - b) (scipy's t quantile, sd of the differences, n - 1 df); the relative
    interval divides it by mean(b), i.e. treats the baseline mean as fixed (an approximation that ignores its
    own uncertainty; NaN unless mean(b) > 0). n < 2 -> NaN; identical differences -> a zero-width interval."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = a - b
    nan = float("nan")
    out = {"ci_lo": nan, "ci_hi": nan, "rel_ci_lo": nan, "rel_ci_hi": nan}
    if d.size < 2:
        return out
    mean, sem = float(d.mean()), float(sps.sem(d))
    if sem == 0:
        lo = hi = mean
    else:
        lo, hi = (float(x) for x in sps.t.interval(confidence, d.size - 1, loc=mean, scale=sem))
    out.update(ci_lo=lo, ci_hi=hi)
    mean_b = float(b.mean())
    if mean_b > 0:   # F1 and AUC are non-negative; a zero baseline mean has no relative gain
        out.update(rel_ci_lo=lo / mean_b, rel_ci_hi=hi / mean_b)
    return out


def paired_ci(a: Any, b: Any, n_boot: int = N_BOOT, seed: int = BOOT_SEED,
              confidence: float = CONFIDENCE) -> dict[str, Any]:
    """The interval for mean(a - b) that n pairs can support, with the method used (`ci_method`): the paired
    t-interval below MIN_BOOT_PAIRS pairs (a percentile bootstrap of 3-5 pairs is just about [min, max] of the
    differences, far too narrow), the paired percentile bootstrap from MIN_BOOT_PAIRS pairs on."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size < MIN_BOOT_PAIRS:
        return {**paired_t_ci(a, b, confidence), "ci_method": "t"}
    return {**bootstrap_ci(a, b, n_boot=n_boot, seed=seed, confidence=confidence), "ci_method": "bootstrap"}


def _joined_pairs(cells: pd.DataFrame, value: str, method: str, baseline: str,
                  pair_on: tuple[str, ...] = CELL_KEYS) -> pd.DataFrame:
    cells = with_finetune(cells)
    a = cells[cells["method"] == method].set_index(list(pair_on))[value]
    b = cells[cells["method"] == baseline].set_index(list(pair_on))[value]
    joined = pd.concat({"a": a, "b": b}, axis=1, join="inner").dropna().reset_index()
    return joined.sort_values(list(pair_on), kind="stable").reset_index(drop=True)


def pair_differences(cells: pd.DataFrame, value: str, method: str, baseline: str,
                     pair_on: tuple[str, ...] = CELL_KEYS) -> pd.DataFrame:
    """EVERY pair behind a paired comparison, long format (for plotting): the cell keys, method, baseline,
    a (the method's value), b (the baseline's) and diff = a - b; one row per pair, sorted by the keys."""
    if cells.empty:
        return pd.DataFrame(columns=PAIR_COLUMNS)
    joined = _joined_pairs(cells, value, method, baseline, pair_on)
    joined = joined.assign(method=method, baseline=baseline, diff=joined["a"] - joined["b"])
    return joined[[c for c in PAIR_COLUMNS if c in joined]].reset_index(drop=True)


def all_pair_differences(cells: pd.DataFrame, value: str,
                         contrasts: list[tuple[str, str]] | tuple[tuple[str, str], ...]) -> pd.DataFrame:
    """pair_differences for every (method, baseline) of `contrasts` whose methods are both present."""
    parts = [pair_differences(cells, value, m, b) for m, b in contrasts]
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=PAIR_COLUMNS)


def paired_from_cells(
    cells: pd.DataFrame, value: str, method: str, baseline: str, n_boot: int = N_BOOT, seed: int = BOOT_SEED,
    confidence: float = CONFIDENCE, by: tuple[str, ...] = GROUP_KEYS, pair_on: tuple[str, ...] = CELL_KEYS,
) -> pd.DataFrame:
    """Paired differences method - baseline of a per-cell `value`, per `by` group: n pairs, n_positive (pairs
    with method > baseline), mean difference with the interval of `paired_ci` (`ci_method` "t" below
    MIN_BOOT_PAIRS pairs, else "bootstrap"), Wilcoxon and t-test p; Holm across the sizes of each
    (backbone, sampler)."""
    if cells.empty:
        return pd.DataFrame(columns=PAIRED_COLUMNS)
    joined = _joined_pairs(cells, value, method, baseline, pair_on)
    rows = []
    for key, group in joined.groupby(list(by), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        av, bv = group["a"].to_numpy(float), group["b"].to_numpy(float)
        d = av - bv
        p_w, p_t = _paired_tests(d)
        ci = paired_ci(av, bv, n_boot=n_boot, seed=seed, confidence=confidence)
        mean_b = float(bv.mean())
        rows.append({
            **dict(zip(by, key)), "method": method, "baseline": baseline, "n_pairs": int(d.size),
            "n_positive": int((d > 0).sum()), "mean_method": float(av.mean()), "mean_baseline": mean_b,
            "mean_diff": float(d.mean()), "ci_lo": ci["ci_lo"], "ci_hi": ci["ci_hi"],
            "ci_method": ci["ci_method"] if d.size >= 2 else "",
            "rel_gain": float(d.mean() / mean_b) if mean_b != 0 else float("nan"),
            "rel_ci_lo": ci["rel_ci_lo"], "rel_ci_hi": ci["rel_ci_hi"],
            "p_wilcoxon": p_w, "p_ttest": p_t, "min_p_wilcoxon": min_wilcoxon_p(int(np.count_nonzero(d))),
        })
    out = pd.DataFrame(rows, columns=PAIRED_COLUMNS)
    family = [k for k in by if k != "size"]
    for col in ("p_wilcoxon", "p_ttest"):
        if out.empty:
            continue
        if family:
            out[f"{col}_holm"] = out.groupby(family, dropna=False)[col].transform(lambda s: holm(s.to_numpy()))
        else:
            out[f"{col}_holm"] = holm(out[col].to_numpy())
    return out


def paired_differences(
    df: pd.DataFrame, method: str, baseline: str, metric: str = "f1", split: str = "test",
    n_boot: int = N_BOOT, seed: int = BOOT_SEED, confidence: float = CONFIDENCE,
) -> pd.DataFrame:
    """`method` - `baseline` on the final `split` `metric`, paired on (backbone, sampler, size, data_seed,
    seed), one row per (backbone, sampler, size): n pairs, n_positive, mean difference, 95% CI (paired t below
    MIN_BOOT_PAIRS pairs, paired bootstrap from there; `ci_method` says which; also for the relative gain
    diff / baseline mean), Wilcoxon signed-rank p and paired t-test p, both Holm-adjusted across the sizes
    of each (backbone, sampler)."""
    return paired_from_cells(cell_values(df, metric, split), metric, method, baseline, n_boot, seed, confidence)


def all_paired(
    df: pd.DataFrame, baselines: tuple[str, ...] = ("deeper", "last"), metric: str = "f1",
    n_boot: int = N_BOOT, seed: int = BOOT_SEED,
) -> pd.DataFrame:
    """paired_differences of every other method against each present baseline (see comparison_pairs)."""
    cells = cell_values(df, metric, "test")
    return all_paired_cells(cells, metric, baselines, n_boot, seed)


def comparison_pairs(methods: list[str], baselines: tuple[str, ...]) -> list[tuple[str, str]]:
    """(method, baseline) for every present baseline and every other method, baseline-major; a baseline is
    compared only with the baselines listed after it (deeper - last, not also last - deeper)."""
    baselines = tuple(baselines)
    pairs = []
    for b in baselines:
        if b not in methods:
            continue
        for m in methods:
            if m == b or (m in baselines and baselines.index(m) > baselines.index(b)):
                continue
            pairs.append((m, b))
    return pairs


def all_paired_cells(cells: pd.DataFrame, value: str, baselines: tuple[str, ...], n_boot: int = N_BOOT,
                      seed: int = BOOT_SEED) -> pd.DataFrame:
    methods = method_order(cells["method"].unique()) if len(cells) else []
    parts = [
        paired_from_cells(cells, value, m, b, n_boot=n_boot, seed=seed)
        for m, b in comparison_pairs(methods, baselines)
    ]
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=PAIRED_COLUMNS)
    return pd.concat(parts, ignore_index=True)


def in_paper_band(gain_points: float, band: tuple[float, float] = PAPER_GAIN_RANGE) -> bool:
    return bool(np.isfinite(gain_points) and band[0] <= gain_points <= band[1])


# --------------------------------------------------------------------------------------------- step efficiency
def dev_curves(df: pd.DataFrame, metric: str = "f1") -> pd.DataFrame:
    """Dev `metric` vs step: mean +- CI over seeds per (backbone, finetune, sampler, size, method, step)."""
    df = with_finetune(df)
    dev = df[df["split"] == "dev"].dropna(subset=[metric])
    return summarize(dev, [*GROUP_KEYS, "method", "step"], metric)


STEP_TARGETS = (0.5, 0.6, 0.7)   # fixed absolute dev-F1 targets (F1 units)
STEP_SCALES = ("linear", "log")


def _curve(steps: Any, values: Any, scale: str) -> tuple[np.ndarray, np.ndarray]:
    """Finite points sorted by step (step >= 0; step > 0 on the log scale), duplicate steps averaged."""
    if scale not in STEP_SCALES:
        raise ValueError(f"scale must be one of {STEP_SCALES}, got {scale!r}")
    s, v = np.asarray(steps, float), np.asarray(values, float)
    keep = np.isfinite(s) & np.isfinite(v) & ((s > 0) if scale == "log" else (s >= 0))
    s, v = s[keep], v[keep]
    if s.size == 0:
        return s, v
    uniq, inverse = np.unique(s, return_inverse=True)
    return uniq, np.bincount(inverse, weights=v) / np.bincount(inverse)


def steps_to_reach_curve(steps: Any, values: Any, target: float, scale: str = "linear") -> float:
    """First step at which the curve reaches `target`, interpolated between the last eval point below it and
    the first at/above it (linearly in step, or in log(step) with scale="log", where steps <= 0 are ignored);
    the first eval step if that already reaches it; NaN if never (see `steps_to_target` for the censored
    version) or if `target` is NaN."""
    s, v = _curve(steps, values, scale)
    if s.size == 0 or not np.isfinite(target):
        return float("nan")
    hit = np.flatnonzero(v >= target)
    if hit.size == 0:
        return float("nan")
    k = int(hit[0])
    if k == 0:
        return float(s[0])
    frac = (target - v[k - 1]) / (v[k] - v[k - 1])
    if scale == "log":
        x0, x1 = np.log(s[k - 1]), np.log(s[k])
        return float(np.exp(x0 + frac * (x1 - x0)))
    return float(s[k - 1] + frac * (s[k] - s[k - 1]))


def steps_to_target(steps: Any, values: Any, target: float, budget: float | None = None,
                    scale: str = "linear") -> tuple[float, bool]:
    """(steps, censored): steps_to_reach_curve, or - when the curve never reaches `target` - the full budget
    (`budget`, else the last eval step) with censored = True. A NaN target gives (NaN, False)."""
    if not np.isfinite(target):
        return float("nan"), False
    reached = steps_to_reach_curve(steps, values, target, scale)
    if np.isfinite(reached):
        return reached, False
    s, _ = _curve(steps, values, scale)
    if budget is not None and np.isfinite(budget) and budget > 0:
        return float(budget), True
    return (float(s[-1]) if s.size else float("nan")), True


def normalized_auc(steps: Any, values: Any, scale: str = "linear") -> float:
    """Area under the curve over the step axis (linear steps by default, log(step) with scale="log"),
    divided by the span of that axis: the curve's mean over the steps, in the units of `values`. Needs >= 2
    distinct eval steps (> 0 on the log scale), else NaN."""
    s, v = _curve(steps, values, scale)
    if s.size < 2:
        return float("nan")
    x = np.log(s) if scale == "log" else s
    return float(np.trapezoid(v, x) / (x[-1] - x[0]))


def _target_name(target: float | None, frac: float | None, reference: str) -> str:
    if frac is not None:
        return f"{frac * 100:g}% of {reference}"
    return f"F1 {target * 100:g}"


STEP_CELL_COLUMNS = [*CELL_KEYS, "method", "final_dev", "steps_total", "target_name", "target", "steps_to_reach",
                     "censored", "auc"]


def step_efficiency_cells(
    df: pd.DataFrame, targets: Any = STEP_TARGETS, metric: str = "f1", frac: float | None = None,
    reference: str = "last", scale: str = "linear",
) -> pd.DataFrame:
    """Per cell and target (long format): final dev value, the target, steps to reach it and the normalized
    AUC of the dev curve (the same for every target of a cell).

    Targets are FIXED absolute dev values (`targets`, default STEP_TARGETS = 0.5/0.6/0.7 F1). A cell that
    never reaches a target counts as its full budget (`steps_total`) and is flagged `censored`: no cell is
    dropped. With `frac` (the relative option, not the default) the one target is frac x the `reference`
    method's final dev value of the same backbone/sampler/size/data_seed/seed (NaN target, NaN steps and not
    censored when that reference cell is missing). Interpolation and AUC are over linear steps (v2 evaluates
    at linear steps after warm-up); scale="log" gives the older log-step versions."""
    df = with_finetune(df)
    dev = df[df["split"] == "dev"].dropna(subset=[metric])
    if dev.empty:
        return pd.DataFrame(columns=STEP_CELL_COLUMNS)
    budget = dev.groupby(["method", *CELL_KEYS])["steps_total"].max() if "steps_total" in dev else None
    dev = dev.groupby(["method", *CELL_KEYS, "step"], as_index=False)[metric].mean()
    curves = {key: g.sort_values("step") for key, g in dev.groupby(["method", *CELL_KEYS], sort=True)}
    if frac is not None:
        ref = {key[1:]: frac * float(g[metric].iloc[-1]) for key, g in curves.items() if key[0] == reference}
        plan = [(_target_name(None, frac, reference), None)]
    else:
        ref = {}
        plan = [(_target_name(float(t), None, reference), float(t)) for t in targets]
    rows = []
    for key, g in curves.items():
        total = float(budget.loc[key]) if budget is not None else float("nan")
        auc = normalized_auc(g["step"], g[metric], scale)
        for name, target in plan:
            target = ref.get(key[1:], float("nan")) if target is None else target
            steps, censored = steps_to_target(g["step"], g[metric], target, total, scale)
            rows.append({
                **dict(zip(CELL_KEYS, key[1:])), "method": key[0], "final_dev": float(g[metric].iloc[-1]),
                "steps_total": total, "target_name": name, "target": target, "steps_to_reach": steps,
                "censored": bool(censored), "auc": auc,
            })
    return pd.DataFrame(rows, columns=STEP_CELL_COLUMNS)


STEP_SUMMARY_COLUMNS = [
    *GROUP_KEYS, "method", "target_name", "target", "n", "final_dev", "final_dev_ci", "n_reached", "n_censored",
    "steps_to_reach_mean", "steps_to_reach_median", "steps_to_reach_ci", "auc", "auc_ci",
]


def step_efficiency(
    df: pd.DataFrame, targets: Any = STEP_TARGETS, metric: str = "f1", frac: float | None = None,
    reference: str = "last", scale: str = "linear",
) -> pd.DataFrame:
    """Per (backbone, sampler, size, method, target): final dev mean +- CI half-width, how many cells reached
    the target (`n_reached`) and how many never did (`n_censored`, counted at their full budget), mean
    (+- CI) and median steps-to-target over all cells with a target (censored ones at the budget, so with
    n_censored > 0 the mean and median are lower bounds), and the normalized AUC mean +- CI. Arguments as
    in step_efficiency_cells."""
    cells = step_efficiency_cells(df, targets, metric, frac, reference, scale)
    if cells.empty:
        return pd.DataFrame(columns=STEP_SUMMARY_COLUMNS)
    order = {name: i for i, name in enumerate(dict.fromkeys(cells["target_name"]))}
    rows = []
    for key, g in cells.groupby([*GROUP_KEYS, "method", "target_name"], sort=True):
        steps = g["steps_to_reach"].dropna()
        fd, st, au = mean_ci(g["final_dev"]), mean_ci(steps), mean_ci(g["auc"])
        targets_g = g["target"].dropna()
        rows.append({
            **dict(zip([*GROUP_KEYS, "method", "target_name"], key)),
            "target": float(targets_g.mean()) if targets_g.size else float("nan"), "n": len(g),
            "final_dev": fd["mean"], "final_dev_ci": fd["ci_half"],
            "n_reached": int((~g["censored"] & g["steps_to_reach"].notna()).sum()),
            "n_censored": int(g["censored"].sum()), "steps_to_reach_mean": st["mean"],
            "steps_to_reach_median": float(steps.median()) if steps.size else float("nan"),
            "steps_to_reach_ci": st["ci_half"], "auc": au["mean"], "auc_ci": au["ci_half"],
        })
    table = pd.DataFrame(rows, columns=STEP_SUMMARY_COLUMNS)
    table["_t"] = table["target_name"].map(order)
    table = table.sort_values("_t", kind="stable").drop(columns="_t")   # targets in the order given
    return _order_methods(table, list(GROUP_KEYS))


def step_auc_cells(step_cells: pd.DataFrame) -> pd.DataFrame:
    """One row per cell (the AUC does not depend on the target) from step_efficiency_cells' output, for
    paired AUC comparisons."""
    if step_cells.empty:
        return step_cells
    return step_cells.drop_duplicates(["method", *CELL_KEYS]).dropna(subset=["auc"]).reset_index(drop=True)


# --------------------------------------------------------------------------------------------- per type
def per_type_table(df: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """Long table: mean +- CI of each entity type's final F1 per (backbone, sampler, size, method, type)."""
    rows = final_rows(df, split)
    columns = [*GROUP_KEYS, "method", "type", "mean", "sd", "ci_lo", "ci_hi", "ci_half", "n"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    cells = rows.groupby(["method", *CELL_KEYS], as_index=False)[list(TYPE_COLUMNS)].mean()
    long = cells.melt(id_vars=["method", *CELL_KEYS], value_vars=list(TYPE_COLUMNS), var_name="type",
                      value_name="f1")
    long["type"] = long["type"].str.removeprefix("f1_")
    out = summarize(long, [*GROUP_KEYS, "method", "type"], "f1")
    return out[columns] if len(out) else pd.DataFrame(columns=columns)


# --------------------------------------------------------------------------------------------- budget, cost
BUDGET_COLUMNS = ["backbone", "method", "knob", "knob_value", "params", "target", "deviation", "matched",
                  "note", "n_cells", "source"]


def budget_table(df: pd.DataFrame, manifests: list[dict[str, Any]]) -> pd.DataFrame:
    """The parameter-budget rows of the manifests (deduplicated, with the number of cells); falls back to
    the results' head_params / budget_target per (backbone, method) when no manifest has a budget."""
    index = manifest_index(manifests, df).set_index("run_id") if manifests else None
    rows = []
    for manifest in manifests:
        budget = manifest.get("budget")
        if not isinstance(budget, list):
            continue
        backbone = index.loc[manifest["run_id"], "backbone"] if index is not None else None
        if isinstance(backbone, pd.Series):
            backbone = backbone.iloc[0]
        for entry in budget:
            if isinstance(entry, dict):
                rows.append({"backbone": backbone, **{k: entry.get(k) for k in BUDGET_COLUMNS[1:9]}})
    if rows:
        table = pd.DataFrame(rows)
        key = BUDGET_COLUMNS[:9]
        table = table.astype({c: "object" for c in key}).fillna("")
        table = table.groupby(key, sort=False, dropna=False).size().reset_index(name="n_cells")
        table["source"] = "manifest"
        return _order_methods(table[BUDGET_COLUMNS], ["backbone"])
    if df.empty:
        return pd.DataFrame(columns=BUDGET_COLUMNS)
    cells = df.drop_duplicates("run_id")
    table = cells.groupby(["backbone", "method"], as_index=False).agg(
        params=("head_params", "median"), target=("budget_target", "median"), n_cells=("run_id", "nunique"))
    with np.errstate(divide="ignore", invalid="ignore"):
        dev = np.where(table["target"] > 0, table["params"] / table["target"] - 1.0, np.nan)
    table = table.assign(knob="", knob_value="", deviation=dev, matched="", note="from results table",
                         source="results")
    return _order_methods(table[BUDGET_COLUMNS], ["backbone"])


COST_CELL_COLUMNS = ["run_id", "method", *CELL_KEYS, "steps", "train_s", "total_s", "step_time_s", "head_params"]


def cost_cells(df: pd.DataFrame, manifests: list[dict[str, Any]]) -> pd.DataFrame:
    """Per cell: training seconds, total seconds (manifest timings), seconds per optimizer step (manifest
    step_time_s, else final wall_clock_s / step)."""
    if df.empty:
        return pd.DataFrame(columns=COST_CELL_COLUMNS)
    last = with_finetune(df).sort_values("step", kind="stable").groupby("run_id", sort=False).tail(1)
    cells = last[["run_id", "method", *CELL_KEYS, "step", "wall_clock_s", "head_params"]].rename(
        columns={"step": "steps", "wall_clock_s": "train_s"}).set_index("run_id")
    cells["total_s"] = np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        cells["step_time_s"] = np.where(cells["steps"] > 0, cells["train_s"] / cells["steps"], np.nan)
    for manifest in manifests:
        run_id = manifest.get("run_id")
        timings = manifest.get("timings")
        if run_id not in cells.index or not isinstance(timings, dict):
            continue
        for col, key in (("total_s", "total_s"), ("train_s", "train_s"), ("step_time_s", "step_time_s")):
            value = timings.get(key)
            if isinstance(value, (int, float)) and np.isfinite(value):
                cells.loc[run_id, col] = float(value)
    return cells.reset_index()[COST_CELL_COLUMNS]


COST_COLUMNS = ["backbone", "finetune", "method", "n_cells", "step_time_ms", "step_time_ms_ci", "train_s", "train_s_ci",
                "total_s", "total_s_ci", "head_params"]


def cost_table(df: pd.DataFrame, manifests: list[dict[str, Any]]) -> pd.DataFrame:
    """Per (backbone, finetune, method): mean +- CI half-width of ms per step, training s and total s per cell (a
    frozen cell costs a fraction of a full one: never averaged together)."""
    cells = cost_cells(df, manifests)
    if cells.empty:
        return pd.DataFrame(columns=COST_COLUMNS)
    rows = []
    for (backbone, finetune, method), g in cells.groupby(["backbone", "finetune", "method"], sort=True):
        st, tr, to = mean_ci(g["step_time_s"] * 1000), mean_ci(g["train_s"]), mean_ci(g["total_s"])
        rows.append({"backbone": backbone, "finetune": finetune, "method": method, "n_cells": len(g), "step_time_ms": st["mean"],
                     "step_time_ms_ci": st["ci_half"], "train_s": tr["mean"], "train_s_ci": tr["ci_half"],
                     "total_s": to["mean"], "total_s_ci": to["ci_half"],
                     "head_params": float(g["head_params"].median())})
    return _order_methods(pd.DataFrame(rows, columns=COST_COLUMNS), ["backbone", "finetune"])


# --------------------------------------------------------------------------------------------- depth weights
DEPTH_COLUMNS = ["run_id", "method", *CELL_KEYS, "source", "type", "layer", "layer_index", "weight"]


def depth_weights(manifests: list[dict[str, Any]], df: pd.DataFrame | None = None) -> pd.DataFrame:
    """Long table of layer weights from manifests: `depth_attention.per_type` (source "depth_attention",
    type PER/LOC/ORG/MISC/ALL) and `scalarmix_weights` (source "scalarmix", type "ALL")."""
    if not manifests:
        return pd.DataFrame(columns=DEPTH_COLUMNS)
    index = manifest_index(manifests, df).set_index("run_id")
    rows = []
    for manifest in manifests:
        run_id = manifest.get("run_id")
        keys = index.loc[run_id]
        keys = keys.iloc[0] if isinstance(keys, pd.DataFrame) else keys
        base = {"run_id": run_id, **keys.to_dict()}
        attention = manifest.get("depth_attention")
        per_type = _get(attention, "per_type")
        if isinstance(per_type, dict):
            layers = _get(attention, "layers") or []
            for etype, weights in per_type.items():
                for i, w in enumerate(weights or []):
                    rows.append({**base, "source": "depth_attention", "type": etype,
                                 "layer": layers[i] if i < len(layers) else f"L{i}", "layer_index": i,
                                 "weight": w})
        mix = manifest.get("scalarmix_weights")
        if isinstance(mix, dict) and isinstance(mix.get("weights"), list):
            layers = mix.get("layers") or []
            for i, w in enumerate(mix["weights"]):
                rows.append({**base, "source": "scalarmix", "type": "ALL",
                             "layer": layers[i] if i < len(layers) else f"L{i}", "layer_index": i, "weight": w})
    out = pd.DataFrame(rows, columns=DEPTH_COLUMNS)
    out["weight"] = pd.to_numeric(out["weight"], errors="coerce")
    return out


# --------------------------------------------------------------------------------------------- completeness
def completeness(df: pd.DataFrame, manifests: list[dict[str, Any]] | None = None) -> dict[str, pd.DataFrame]:
    """`counts`: cells (distinct data_seed x seed) per backbone/sampler/size/method, with how many have a
    test row; `missing`: (method, cell) combinations absent although the same backbone/sampler/size has them
    for another method (expected grid = union over methods of the seeds seen, all methods seen in the study);
    `no_manifest`: run_ids without a manifest (only when manifests were given)."""
    empty = {"counts": pd.DataFrame(columns=[*GROUP_KEYS, "method", "n_cells", "n_test", "n_dev_only"]),
             "missing": pd.DataFrame(columns=[*GROUP_KEYS, "method", "data_seed", "seed"]),
             "no_manifest": pd.DataFrame(columns=["run_id"])}
    if df.empty:
        return empty
    runs = with_finetune(df).groupby("run_id", as_index=False).agg(
        **{k: (k, "first") for k in ("method", *CELL_KEYS)},
        has_test=("split", lambda s: bool((s == "test").any())))
    counts = runs.groupby([*GROUP_KEYS, "method"], as_index=False).agg(
        n_cells=("run_id", "nunique"), n_test=("has_test", "sum"))
    counts["n_dev_only"] = counts["n_cells"] - counts["n_test"]
    methods = method_order(runs["method"].unique())
    missing = []
    for key, g in runs.groupby(list(GROUP_KEYS), sort=True):
        seeds = sorted(set(zip(g["data_seed"], g["seed"])))
        have = set(zip(g["method"], g["data_seed"], g["seed"]))
        for m in methods:
            for ds, s in seeds:
                if (m, ds, s) not in have:
                    missing.append({**dict(zip(GROUP_KEYS, key)), "method": m, "data_seed": ds, "seed": s})
    out = {
        "counts": _order_methods(counts, list(GROUP_KEYS)),
        "missing": _order_methods(pd.DataFrame(missing, columns=empty["missing"].columns), list(GROUP_KEYS)),
        "no_manifest": empty["no_manifest"],
    }
    if manifests is not None:
        have_manifest = {m.get("run_id") for m in manifests}
        out["no_manifest"] = pd.DataFrame({"run_id": sorted(set(runs["run_id"]) - have_manifest)})
    return out
