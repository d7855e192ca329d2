"""Pre-registered hypothesis tests: declared in the study YAML, evaluated once on the study's results.

The study file carries a `hypotheses:` block (read with the project's YAML loader, `paper_repro.config.load_yaml`, as the sweep reads it; nothing else of the file is used):

    hypotheses:
      alpha: 0.05
      stage: eval            # which cells (column `stage`) the tests use; null = every cell
      split: test
      metric: f1
      backbone: minilm-l6    # optional default for every test; else every backbone present gets its own row
      finetune: frozen       # optional default (full | frozen) for every test; else one row per track present
      sampler: sentences     # optional default for every test; else every sampler present gets its own row
      planned_pairs: 8       # optional: the pairs per size the stage's grid gives each test (its seed units)
      unit: seeds            # optional: what a sign flip exchanges in a pooled test: pairs (default) or seeds
      amendments:            # optional: dated changes after registration, shown verbatim in the report
        - {date: 2026-11-27, text: "..."}
      tests:
        - {id: H1a, kind: pooled, a: dwatt, b: deeper, sampler: sentences, sizes: [50, 100, 200, 500, 1000],
           claim: "DWAtt beats the deeper baseline few-shot"}
        - {id: H2a, kind: interaction, a: dwatt, b: deeper, sampler: sentences, small: [50, 100, 200],
           large: [500, 1000], claim: "the gain shrinks as data grows"}

Every test is one-sided, a > b (or, for `interaction`, gain larger at the small sizes).

`pooled`: the pairs are a's and b's cells on the same backbone, finetune track, sampler, size, data_seed and
seed, at the listed sizes (a frozen-encoder cell is never paired with a full fine-tuning one, and the tracks are
tested in separate rows). The statistic is the mean over sizes of the per-size mean difference a - b, so each size
weighs the same whatever its number of pairs (pair i at size s has weight 1 / (S n_s)).

`interaction`: per seed unit (data_seed, seed), d = mean gain a - b over the `small` sizes minus the mean
gain over the `large` sizes; only units with a pair at every one of those sizes enter. The statistic is the
mean of d over units, tested for d > 0.

What the sign flips exchange (`unit:`, block level; `pooled` tests only). `pairs` flips each pair on its own, as if
the pairs at different sizes were independent. They are not where subsets are nested and the init seed is tied to
the data seed (protocol v2): the pairs of one (data_seed, seed) unit share their training sentences and their
initialisation across sizes, so their differences are correlated and per-pair flips understate the null spread
(`bench/sign_flip_units.py` simulates how often each test rejects a true null: README "Sign flips per pair vs per
seed unit"). `seeds` flips all of a unit's pairs together: the same statistic, written as a sum of per-unit
contributions c_u = sum of w_i d_i over the unit's pairs, with the null distribution from flipping the c_u; the
t-interval is over units (U - 1 degrees of freedom; with every unit complete it is the t-interval of the units' mean
differences over sizes). The per-pair p is kept beside it (`p_pairs`). Default `pairs` (what the first studies
registered); `cpu_study` and `frozen_study` declare `seeds` by amendment (`amendments:` below).

Why a sign-flip permutation test. Under the null hypothesis that a and b are exchangeable within a pair
(same subset, same seed), each pair's difference is as likely to be d as -d, so flipping the signs of the
pairs (units) gives the null distribution of the statistic with no normality assumption, which matters with
5-10 pairs per size. It is computed with `scipy.stats.permutation_test(permutation_type="samples")` on the
weighted differences: exactly (all 2^n sign patterns) when 2^n <= N_PERMUTATIONS, else from N_PERMUTATIONS
seeded random patterns. The smallest p the data can give (`min_p`, 1 / 2^n for n non-zero pairs) is
reported, so that a test that cannot reach alpha is visible as such.

Multiplicity. Holm's step-down adjustment (`stats.holm`) across ALL tests of the block (every test x
backbone x finetune x sampler row) controls the family-wise error at `alpha` over the pre-registered claims; nothing
outside the block enters the family. Rows that could not be run (no pairs) do not count; interim rows do (below). Verdicts:
"supported" if the Holm-adjusted p < alpha; "refuted" if the opposite one-sided test (b > a, or d < 0) is
significant after its own Holm adjustment across the block (the opposite-direction p-values are a family
of their own); otherwise "inconclusive"; "not run" without pairs. Cells from protocol v1 never get a
verdict ("descriptive (protocol v1)").

Interim looks. With `planned_pairs` declared, a row whose sparsest tested size has fewer pairs than planned
(`interaction`: fewer complete seed units), or that has no pair yet, is incomplete; while any row of the block is
incomplete, every row with pairs reads "interim" whatever its p. A study that runs for weeks is reported while its
evaluation stage fills, and a verdict read off a part of the planned pairs (then re-read as pairs arrive) would be a
test repeated until it passes; and the Holm adjustment of a complete row depends on every p of the family, so no row
is judged before all are final. The estimates, intervals and p-values of an interim row are shown as they stand;
they decide nothing, and no cell is run or left out because of them.

The estimate (F1 points = 100 x F1) comes with a two-sided 95% t-interval, descriptive only (the verdict
uses the permutation p): for `pooled` with `unit: pairs`, Welch-Satterthwaite over the per-size means (with one size
this is the paired t-interval), NaN when a size has fewer than 2 pairs; with `unit: seeds`, over units (above), NaN
with fewer than 2 units; for `interaction`, the t-interval over units.

Amendments (`amendments:`, a list of {date, text}): changes to the block after it was registered, each dated and
explained, shown verbatim under the pre-registered rules in REPORT.md and the README. The code applies the amended
block; the registered wording stays as it was.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from paper_repro.analysis import stats
from paper_repro.analysis.load import has_v1
from paper_repro.config import load_yaml

KINDS = ("pooled", "interaction")
UNITS = ("pairs", "seeds")      # what a sign flip of a pooled test exchanges (module docstring)
UNIT_KEYS = ["data_seed", "seed"]
N_PERMUTATIONS = 100_000
PERMUTATION_SEED = 20240521
INTERIM = "interim"
VERDICTS = ("supported", "refuted", "inconclusive", "not run", INTERIM)
V1_VERDICT = "descriptive (protocol v1)"
HYPOTHESIS_COLUMNS = [
    "id", "claim", "kind", "backbone", "finetune", "sampler", "contrast", "sizes", "pairs_per_size", "unit", "n",
    "n_positive", "estimate", "ci_lo", "ci_hi", "statistic", "p", "p_holm", "p_opposite", "p_opposite_holm",
    "min_p", "exact", "p_pairs", "verdict",
]


class HypothesisError(ValueError):
    """A malformed `hypotheses:` block."""


@dataclass(frozen=True)
class Hypothesis:
    id: str
    kind: str
    a: str
    b: str
    claim: str = ""
    sizes: tuple[int, ...] = ()      # pooled
    small: tuple[int, ...] = ()      # interaction
    large: tuple[int, ...] = ()      # interaction
    backbone: str | None = None
    sampler: str | None = None
    finetune: str | None = None

    @property
    def contrast(self) -> str:
        if self.kind == "interaction":
            return (f"({self.a} − {self.b}) at {_sizes(self.small)} − ({self.a} − {self.b}) at "
                    f"{_sizes(self.large)}")
        return f"{self.a} − {self.b}"


@dataclass(frozen=True)
class HypothesisBlock:
    tests: tuple[Hypothesis, ...]
    alpha: float = 0.05
    stage: str | None = "eval"
    split: str = "test"
    metric: str = "f1"
    backbone: str | None = None
    sampler: str | None = None
    finetune: str | None = None
    planned_pairs: int | None = None   # pairs per size (interaction: complete units) before a verdict is given
    unit: str = "pairs"                # pooled tests: what a sign flip exchanges (UNITS)
    amendments: tuple[tuple[str, str], ...] = ()   # (date, text), verbatim from the YAML


def _sizes(sizes: tuple[int, ...]) -> str:
    return "/".join(str(s) for s in sizes)


def _int_tuple(value: Any, where: str) -> tuple[int, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool)
                                                       for v in value):
        raise HypothesisError(f"{where}: expected a list of integer sizes, got {value!r}")
    return tuple(value)


def parse_hypotheses(raw: dict[str, Any]) -> HypothesisBlock:
    """The `hypotheses:` mapping -> HypothesisBlock (HypothesisError on anything malformed)."""
    if not isinstance(raw, dict):
        raise HypothesisError(f"hypotheses: expected a mapping, got {type(raw).__name__}")
    known = {"alpha", "stage", "split", "metric", "backbone", "sampler", "finetune", "planned_pairs", "unit",
             "amendments", "tests"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise HypothesisError(f"hypotheses: unknown keys {unknown}")
    alpha = raw.get("alpha", 0.05)
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not 0 < alpha < 1:
        raise HypothesisError(f"hypotheses.alpha: expected a number in (0, 1), got {alpha!r}")
    planned = raw.get("planned_pairs")
    if planned is not None and (not isinstance(planned, int) or isinstance(planned, bool) or planned < 1):
        raise HypothesisError(f"hypotheses.planned_pairs: expected a positive integer, got {planned!r}")
    unit = raw.get("unit", "pairs")
    if unit not in UNITS:
        raise HypothesisError(f"hypotheses.unit: expected one of {UNITS}, got {unit!r}")
    amendments = []
    if not isinstance(raw.get("amendments") or [], list):
        raise HypothesisError("hypotheses.amendments: expected a list of {date, text}")
    for i, entry in enumerate(raw.get("amendments") or []):
        if (not isinstance(entry, dict) or set(entry) != {"date", "text"} or not str(entry["date"]).strip()
                or not isinstance(entry["text"], str) or not entry["text"].strip()):
            raise HypothesisError(f"hypotheses.amendments[{i}]: expected {{date: YYYY-MM-DD, text: what changed and "
                                  f"why}}, got {entry!r}")
        amendments.append((str(entry["date"]), " ".join(entry["text"].split())))
    tests_raw = raw.get("tests") or []
    if not isinstance(tests_raw, list):
        raise HypothesisError("hypotheses.tests: expected a list")
    tests, seen = [], set()
    for i, entry in enumerate(tests_raw):
        where = f"hypotheses.tests[{i}]"
        if not isinstance(entry, dict):
            raise HypothesisError(f"{where}: expected a mapping")
        allowed = {"id", "kind", "a", "b", "claim", "sizes", "small", "large", "backbone", "sampler", "finetune"}
        extra = sorted(set(entry) - allowed)
        if extra:
            raise HypothesisError(f"{where}: unknown keys {extra}")
        for key in ("id", "kind", "a", "b"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise HypothesisError(f"{where}: `{key}` is required (a string)")
        where = f"hypotheses.tests[{i}] ({entry['id']})"
        if entry["id"] in seen:
            raise HypothesisError(f"{where}: duplicate id")
        seen.add(entry["id"])
        if entry["kind"] not in KINDS:
            raise HypothesisError(f"{where}: kind must be one of {KINDS}, got {entry['kind']!r}")
        test = Hypothesis(
            id=entry["id"], kind=entry["kind"], a=entry["a"], b=entry["b"], claim=str(entry.get("claim") or ""),
            sizes=_int_tuple(entry.get("sizes"), f"{where}.sizes"),
            small=_int_tuple(entry.get("small"), f"{where}.small"),
            large=_int_tuple(entry.get("large"), f"{where}.large"),
            backbone=entry.get("backbone"), sampler=entry.get("sampler"), finetune=entry.get("finetune"),
        )
        if test.kind == "pooled" and not test.sizes:
            raise HypothesisError(f"{where}: a pooled test needs `sizes`")
        if test.kind == "interaction" and (not test.small or not test.large or set(test.small) & set(test.large)):
            raise HypothesisError(f"{where}: an interaction test needs disjoint non-empty `small` and `large`")
        tests.append(test)
    return HypothesisBlock(
        tests=tuple(tests), alpha=float(alpha), stage=raw.get("stage", "eval"), split=str(raw.get("split", "test")),
        metric=str(raw.get("metric", "f1")), backbone=raw.get("backbone"), sampler=raw.get("sampler"),
        finetune=raw.get("finetune"), planned_pairs=planned, unit=unit, amendments=tuple(amendments),
    )


def read_hypotheses(path: str | Path) -> HypothesisBlock | None:
    """The study YAML's `hypotheses:` block, or None when the file has none (a missing file is an error)."""
    raw = load_yaml(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict) or not raw.get("hypotheses"):
        return None
    return parse_hypotheses(raw["hypotheses"])


# --------------------------------------------------------------------------------------------- the test
def sign_flip_test(values: Any, weights: Any = None, alternative: str = "greater",
                   n_resamples: int = N_PERMUTATIONS, seed: int = PERMUTATION_SEED) -> dict[str, Any]:
    """Sign-flip permutation test of statistic = sum(weights x values) (weights default 1/n: the mean).

    Exact (all 2^n sign patterns) when 2^n <= n_resamples, else `n_resamples` seeded random patterns
    (scipy then adds one to numerator and denominator). Returns statistic, p, exact, n and min_p (the
    smallest p attainable: 1 / 2^(non-zero values), or 1 / (n_resamples + 1) if larger). n = 0 -> NaN p."""
    d = np.asarray(values, float)
    n = int(d.size)
    nan = float("nan")
    if n == 0:
        return {"statistic": nan, "p": nan, "exact": False, "n": 0, "min_p": nan}
    w = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, float)
    if w.shape != d.shape:
        raise ValueError(f"weights of shape {w.shape} for {n} values")
    exact = 2.0 ** n <= n_resamples
    nonzero = int(np.count_nonzero(d))
    min_p = 2.0 ** -nonzero if exact else max(2.0 ** -nonzero, 1.0 / (n_resamples + 1))
    statistic = float(np.sum(w * d))
    if nonzero == 0:   # every flip gives the same statistic
        return {"statistic": statistic, "p": 1.0, "exact": exact, "n": n, "min_p": 1.0}

    if n == 1:   # scipy wants two observations; the two sign patterns by hand
        null = np.array([statistic, -statistic])
        hits = null >= statistic if alternative == "greater" else null <= statistic
        return {"statistic": statistic, "p": float(hits.mean()), "exact": True, "n": 1, "min_p": min_p}

    def weighted_sum(x, axis=-1):
        return np.sum(np.moveaxis(x, axis, -1) * w, axis=-1)

    result = sps.permutation_test(
        (d,), weighted_sum, permutation_type="samples", vectorized=True, n_resamples=n_resamples,
        alternative=alternative, random_state=np.random.default_rng(seed),
    )
    return {"statistic": statistic, "p": float(result.pvalue), "exact": exact, "n": n, "min_p": min_p}


def _t_interval(mean: float, se: float, dof: float, confidence: float = stats.CONFIDENCE) -> tuple[float, float]:
    if not (np.isfinite(se) and np.isfinite(dof)) or dof <= 0:
        return float("nan"), float("nan")
    if se == 0:
        return mean, mean
    lo, hi = sps.t.interval(confidence, dof, loc=mean, scale=se)
    return float(lo), float(hi)


def _pooled(pairs: pd.DataFrame, sizes: tuple[int, ...], unit: str = "pairs",
            n_resamples: int = N_PERMUTATIONS) -> dict[str, Any]:
    pairs = pairs[pairs["size"].isin(sizes)]
    per_size = {s: pairs.loc[pairs["size"] == s, "diff"].to_numpy(float) for s in sizes}
    present = {s: d for s, d in per_size.items() if d.size}
    out: dict[str, Any] = {"pairs_per_size": " ".join(f"{s}:{per_size[s].size}" for s in sizes), "unit": unit,
                           "min_pairs": int(min(d.size for d in per_size.values())),
                           "n": int(sum(d.size for d in present.values())),
                           "n_positive": int(sum((d > 0).sum() for d in present.values()))}
    if not present:
        return {**out, **sign_flip_test([]), **_nan_ci(), "p_opposite": float("nan"), "p_pairs": float("nan")}
    n_sizes = len(present)
    estimate = float(np.mean([v.mean() for v in present.values()]))
    rows = pd.concat([pairs[pairs["size"] == s] for s in present])   # sizes in the test's order (seeded draws)
    # pair i at size s weighs 1 / (S n_s): the statistic sum(w d) is the mean over sizes of the per-size means
    weight = 1.0 / (n_sizes * rows["size"].map(rows["size"].value_counts()).to_numpy(float))
    d = rows["diff"].to_numpy(float)
    by_pair = sign_flip_test(d, weight, "greater", n_resamples)
    p_pairs = by_pair["p"]
    if unit == "seeds":
        missing = [k for k in UNIT_KEYS if k not in rows]
        if missing:
            raise HypothesisError(f"unit: seeds needs the pairs' {missing} columns")
        c = (rows.assign(c=weight * d).groupby(UNIT_KEYS, sort=True)["c"].sum()).to_numpy(float)
        ones = np.ones(c.size)
        test, opposite = sign_flip_test(c, ones, "greater", n_resamples), sign_flip_test(c, ones, "less", n_resamples)
        if c.size >= 2:   # Var(sum c_u) estimated from the units' spread; U - 1 degrees of freedom
            se = float(np.sqrt(c.size / (c.size - 1) * np.sum((c - c.mean()) ** 2)))
            lo, hi = _t_interval(estimate, se, c.size - 1)
        else:
            lo, hi = float("nan"), float("nan")
        return {**out, **test, "n": out["n"], "pairs_per_size": f"{out['pairs_per_size']} ({c.size} seed units)",
                "estimate": estimate, "ci_lo": lo, "ci_hi": hi, "p_opposite": opposite["p"], "p_pairs": p_pairs}
    test, opposite = by_pair, sign_flip_test(d, weight, "less", n_resamples)
    if all(v.size >= 2 for v in present.values()):      # Welch-Satterthwaite over the per-size means
        parts = np.array([v.var(ddof=1) / v.size / n_sizes**2 for v in present.values()])
        dofs = np.array([v.size - 1 for v in present.values()], float)
        se = float(np.sqrt(parts.sum()))
        dof = float(parts.sum() ** 2 / np.sum(parts**2 / dofs)) if np.any(parts > 0) else float(dofs.sum())
        lo, hi = _t_interval(estimate, se, dof)
    else:
        lo, hi = float("nan"), float("nan")
    return {**out, **test, "estimate": estimate, "ci_lo": lo, "ci_hi": hi, "p_opposite": opposite["p"],
            "p_pairs": p_pairs}


def pooled_test(pairs: pd.DataFrame, sizes: tuple[int, ...], unit: str = "pairs",
                n_resamples: int = N_PERMUTATIONS) -> dict[str, Any]:
    """The `pooled` statistic and test on any paired quantity: `pairs` has columns `size` and `diff` (one row per
    pair; with `unit="seeds"` also `data_seed` and `seed`); returns n, n_positive, pairs_per_size, min_pairs (at the
    sparsest size), statistic, p (one-sided, diff > 0, flipping `unit`s), p_opposite, p_pairs (flipping pairs),
    min_p, exact, estimate and its t-interval (in the units of `diff`). `paper_repro.analysis.verdicts` uses it for
    the paired steps-to-target differences; `bench/sign_flip_units.py` (with fewer `n_resamples`) simulates it."""
    return _pooled(pairs, tuple(sizes), unit, n_resamples)


def _interaction(pairs: pd.DataFrame, small: tuple[int, ...], large: tuple[int, ...]) -> dict[str, Any]:
    sizes = (*small, *large)
    pairs = pairs[pairs["size"].isin(sizes)]
    if pairs.empty:
        return {"pairs_per_size": " ".join(f"{s}:0" for s in sizes) + " (0 complete units)", "unit": "seeds",
                "min_pairs": 0, "n_positive": 0, **sign_flip_test([]), **_nan_ci(), "p_opposite": float("nan"),
                "p_pairs": float("nan")}
    wide = pairs.pivot_table(index=["data_seed", "seed"], columns="size", values="diff", aggfunc="mean")
    counts = " ".join(f"{s}:{int(wide[s].notna().sum()) if s in wide else 0}" for s in sizes)
    complete = wide.reindex(columns=list(sizes)).dropna()
    d = (complete[list(small)].mean(axis=1) - complete[list(large)].mean(axis=1)).to_numpy(float)
    out: dict[str, Any] = {"pairs_per_size": f"{counts} ({d.size} complete units)", "unit": "seeds",
                           "min_pairs": int(d.size), "n": int(d.size), "n_positive": int((d > 0).sum())}
    if d.size == 0:
        return {**out, **sign_flip_test([]), **_nan_ci(), "p_opposite": float("nan"), "p_pairs": float("nan")}
    test = sign_flip_test(d, None, "greater")
    opposite = sign_flip_test(d, None, "less")
    ci = stats.mean_ci(d)
    return {**out, **test, "estimate": float(d.mean()), "ci_lo": ci["ci_lo"], "ci_hi": ci["ci_hi"],
            "p_opposite": opposite["p"], "p_pairs": float("nan")}   # units already: no per-pair test


def _nan_ci() -> dict[str, float]:
    return {"estimate": float("nan"), "ci_lo": float("nan"), "ci_hi": float("nan")}


def _levels(test_value: str | None, block_value: str | None, present: list[str]) -> list[str | None]:
    if test_value is not None:
        return [test_value]
    if block_value is not None:
        return [block_value]
    return present or [None]


def hypothesis_cells(df: pd.DataFrame, block: HypothesisBlock) -> pd.DataFrame:
    """The long-format rows the block's tests use: those of `block.stage` (column `stage`; all when the block's
    stage is null). Strict: a study without that stage gives no rows, so every test is "not run"."""
    if block.stage is None or df.empty:
        return df
    if "stage" not in df:
        return df.iloc[0:0]
    return df[df["stage"] == block.stage].reset_index(drop=True)


def evaluate_hypotheses(df: pd.DataFrame, block: HypothesisBlock) -> pd.DataFrame:
    """One row per test (x backbone x finetune x sampler where those are not fixed) with the columns
    HYPOTHESIS_COLUMNS; `df` is the study's long-format results (all stages: the block picks its own). See the
    module docstring."""
    rows_df = hypothesis_cells(df, block)
    cells = stats.cell_values(rows_df, block.metric, block.split)
    backbones = sorted(cells["backbone"].dropna().unique().tolist()) if len(cells) else []
    samplers = sorted(cells["sampler"].dropna().unique().tolist()) if len(cells) else []
    tracks = sorted(cells["finetune"].dropna().unique().tolist()) if len(cells) else []
    descriptive = has_v1(rows_df)
    rows = []
    for test in block.tests:
        all_pairs = stats.pair_differences(cells, block.metric, test.a, test.b)
        levels = [(b, f, s) for b in _levels(test.backbone, block.backbone, backbones)
                  for f in _levels(test.finetune, block.finetune, tracks)
                  for s in _levels(test.sampler, block.sampler, samplers)]
        for backbone, finetune, sampler in levels:
            pairs = all_pairs[(all_pairs["backbone"] == backbone) & (all_pairs["finetune"] == finetune)
                              & (all_pairs["sampler"] == sampler)]
            if test.kind == "pooled":
                result, sizes = _pooled(pairs, test.sizes, block.unit), _sizes(test.sizes)
            else:
                result = _interaction(pairs, test.small, test.large)
                sizes = f"small {_sizes(test.small)}; large {_sizes(test.large)}"
            rows.append({
                "id": test.id, "claim": test.claim, "kind": test.kind, "backbone": backbone or "",
                "finetune": finetune or "", "sampler": sampler or "", "contrast": test.contrast, "sizes": sizes,
                **{k: result[k] for k in ("pairs_per_size", "unit", "n", "n_positive", "statistic", "p",
                                          "p_opposite", "min_p", "exact", "p_pairs")},
                "estimate": result["estimate"] * 100, "ci_lo": result["ci_lo"] * 100,
                "ci_hi": result["ci_hi"] * 100, "min_pairs": result["min_pairs"],
            })
    table = pd.DataFrame(rows, columns=[*[c for c in HYPOTHESIS_COLUMNS if c not in ("p_holm", "p_opposite_holm",
                                                                                     "verdict")], "min_pairs"])
    table["p_holm"] = stats.holm(table["p"].to_numpy(float)) if len(table) else []
    table["p_opposite_holm"] = stats.holm(table["p_opposite"].to_numpy(float)) if len(table) else []
    table["verdict"] = [verdict(r.n, r.p_holm, r.p_opposite_holm, block.alpha) for r in table.itertuples()]
    if len(table) and incomplete(table["n"], table["min_pairs"], block):
        table.loc[table["n"] > 0, "verdict"] = INTERIM
    if descriptive:
        table.loc[table["n"] > 0, "verdict"] = V1_VERDICT
    return table[HYPOTHESIS_COLUMNS]


def incomplete(n: Any, min_pairs: Any, block: HypothesisBlock) -> bool:
    """Whether a family of rows (their pair counts `n` and pairs at the sparsest size `min_pairs`) still lacks
    planned pairs: then every row of it with pairs is interim (module docstring, "Interim looks"). False without
    `planned_pairs`, and for a family with no pair at all (not run)."""
    n, min_pairs = np.asarray(n, float), np.asarray(min_pairs, float)
    if block.planned_pairs is None or not (n > 0).any():
        return False
    return bool((min_pairs < block.planned_pairs).any())


def verdict(n: int, p_holm: float, p_opposite_holm: float, alpha: float) -> str:
    """supported / refuted / inconclusive / not run (see the module docstring)."""
    if not n or not np.isfinite(p_holm):
        return "not run"
    if p_holm < alpha:
        return "supported"
    if np.isfinite(p_opposite_holm) and p_opposite_holm < alpha:
        return "refuted"
    return "inconclusive"


def evaluate_study_hypotheses(df: pd.DataFrame, study_yaml: str | Path) -> tuple[HypothesisBlock | None,
                                                                                  pd.DataFrame]:
    """read_hypotheses + evaluate_hypotheses; (None, empty table) when the YAML declares none."""
    block = read_hypotheses(study_yaml)
    if block is None:
        return None, pd.DataFrame(columns=HYPOTHESIS_COLUMNS)
    return block, evaluate_hypotheses(df, block)
