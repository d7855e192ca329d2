"""Verdicts on the paper's claims, pre-registered in the study YAML's `claims:` block.

The block (read with the project's YAML loader, like `hypotheses:`; the sweep keeps it as given and never uses it):

    claims:
      smallest_effect: 1.0        # F1 points: a gain whose 95% CI upper bound is below this is negligible
      paper_band: [3.68, 9.73]    # (paper's claim) the gain on CoNLL-03; unit unstated: points and % relative
      alpha: 0.05                 # optional; default: the hypotheses block's alpha
      items:
        - {id: a, kind: beats, tests: [H1a, H1b], alongside: [H1c, H1d], claim: "...", rule: "..."}
        - {id: b, kind: in_band, tests: [H1a, H1b], claim: "...", rule: "..."}
        - {id: c, kind: grows_with_data, tests: [H3], trend: {a: dwatt, b: concat, sizes: [50, ..., 1000]}, ...}
        - {id: d, kind: step_efficiency, methods: [dwatt, concat], baseline: deeper, sizes: [...],
           targets: [0.5, 0.6, 0.7], ...}

A claim is judged from the outputs of `hypotheses.evaluate_hypotheses` (estimate, t-interval, permutation p, Holm p)
and of `stats` (per-size paired tables, steps-to-target cells); the only new tests are the paired steps-to-target
tests of `step_efficiency`. The `rule` text of each item is the pre-registered wording, shown verbatim in the report;
the code below implements it:

- `beats` (components: the `tests`, pooled hypotheses a > b). Each component: *refuted* if its opposite direction is
  Holm-significant or its 95% CI upper bound is below `smallest_effect` (a gain of at least the smallest effect is
  excluded; this includes a significant but negligible gain); else *supported* if Holm p < alpha with a positive
  estimate; else *inconclusive*. The `alongside` tests (the other baseline) are judged the same way and only
  qualify a supported verdict ("against both baselines" / "only against ...").
- `in_band` (one verdict per reading: F1 points, and % relative to the baseline). The pooled estimate of each test
  and its interval, in points as the hypothesis table has them, or divided by the baseline's mean F1 (equal weight
  per size, treated as fixed, as `stats.paired_t_ci` does). Each component: *refuted* if the CI lies entirely
  below or entirely above the band; *supported* if the estimate lies inside the band and the test is Holm-significant
  (a gain exists); else *inconclusive*. Per-size estimates (stats.paired_from_cells) are shown beside.
- `grows_with_data`: the `tests` judged as in `beats` decide; the `trend` (per (data_seed, seed) unit, the OLS slope
  of a - b in F1 points over log10(size), mean over units with a t-interval and a one-sided sign-flip p) is
  descriptive and enters no verdict or Holm family.
- `step_efficiency`: per method, paired with `baseline` on the cell keys, the steps to each dev-F1 target
  (`stats.step_efficiency_cells`: a cell that never reaches it counts as its full budget, censored); a pair's value is
  the mean over targets of (baseline steps - method steps) / step budget (> 0: the method is faster). Under the null
  (method and baseline exchangeable within a pair) these censored differences are still symmetric, so the pooled
  sign-flip test of `hypotheses.pooled_test` stays valid; with censoring, signs are right and magnitudes are lower
  bounds. Holm across the claim's rows (each direction its own family). Each component: *supported* if Holm p <
  alpha and more pairs are faster than slower; *refuted* if the opposite direction is Holm-significant; else
  *inconclusive*.

A claim with several components (both fusion heads) is a conjunction: *supported* if every component is, *refuted* if
any is, *not run* if none ran, else *inconclusive*. While the tests' stage has fewer pairs than the hypotheses block
plans (`planned_pairs`), every component with pairs, and so its claim, reads *interim* (`hypotheses`, "Interim looks";
the step tests, a Holm family of their own, likewise until each has its planned pairs): the numbers are shown, no
verdict is given. Claims are judged per (backbone, finetune, sampler) condition of
the hypothesis table. Protocol-v1 cells give no verdict (hypotheses.V1_VERDICT).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from paper_repro.analysis import hypotheses, stats
from paper_repro.analysis.load import CELL_KEYS, FULL_SAMPLER, track_label, with_finetune
from paper_repro.config import load_yaml

KINDS = ("beats", "in_band", "grows_with_data", "step_efficiency")
READINGS = ("points", "relative")
NOT_RUN = "not run"
INTERIM = hypotheses.INTERIM
PAPER = "(paper's claim)"
DEFAULT_SMALLEST_EFFECT = 1.0
CLAIM_COLUMNS = ["id", "claim", "kind", "reading", "backbone", "finetune", "sampler", "verdict", "qualifier",
                 "evidence", "rule"]
COMPONENT_COLUMNS = ["claim_id", "reading", "component", "role", "contrast", "backbone", "finetune", "sampler", "unit",
                     "estimate", "ci_lo", "ci_hi", "p", "p_holm", "p_opposite_holm", "p_pairs", "n", "n_positive",
                     "n_negative", "pairs_per_size", "per_size", "note", "verdict"]
UNITS = {"points": "F1 points", "relative": "% of baseline F1", "slope": "F1 points per 10× size",
         "steps": "% of step budget"}


class ClaimError(ValueError):
    """A malformed `claims:` block, or one that names a hypothesis the `hypotheses:` block does not declare."""


@dataclass(frozen=True)
class Claim:
    id: str
    kind: str
    claim: str
    rule: str
    tests: tuple[str, ...] = ()
    alongside: tuple[str, ...] = ()
    trend: tuple[str, str, tuple[int, ...]] | None = None    # grows_with_data: (a, b, sizes)
    full_data: tuple[str, str, str] | None = None            # grows_with_data: (a, b, stage) of full-training-set cells
    methods: tuple[str, ...] = ()                            # step_efficiency
    baseline: str = ""
    sizes: tuple[int, ...] = ()
    targets: tuple[float, ...] = stats.STEP_TARGETS


@dataclass(frozen=True)
class ClaimBlock:
    items: tuple[Claim, ...]
    smallest_effect: float = DEFAULT_SMALLEST_EFFECT
    band: tuple[float, float] = stats.PAPER_GAIN_RANGE
    alpha: float | None = None


# --------------------------------------------------------------------------------------------- parsing
def _ints(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, int) and not isinstance(v, bool)
                                                            for v in value):
        raise ClaimError(f"{where}: expected a non-empty list of integer sizes, got {value!r}")
    return tuple(value)


def _strings(value: Any, where: str, required: bool = True) -> tuple[str, ...]:
    if value is None and not required:
        return ()
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ClaimError(f"{where}: expected a non-empty list of names, got {value!r}")
    return tuple(value)


def _number(value: Any, where: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value):
        raise ClaimError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _claim(entry: Any, i: int) -> Claim:
    where = f"claims.items[{i}]"
    if not isinstance(entry, dict):
        raise ClaimError(f"{where}: expected a mapping")
    extra = sorted(set(entry) - {"id", "kind", "claim", "rule", "tests", "alongside", "trend", "full_data", "methods",
                                 "baseline", "sizes", "targets"})
    if extra:
        raise ClaimError(f"{where}: unknown keys {extra}")
    for key in ("id", "kind", "claim", "rule"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise ClaimError(f"{where}: `{key}` is required (a string)")
    where = f"{where} ({entry['id']})"
    kind = entry["kind"]
    if kind not in KINDS:
        raise ClaimError(f"{where}: kind must be one of {KINDS}, got {kind!r}")
    common = {"id": entry["id"], "kind": kind, "claim": entry["claim"].strip(), "rule": " ".join(entry["rule"].split())}
    if kind == "step_efficiency":
        if not isinstance(entry.get("baseline"), str) or not entry["baseline"]:
            raise ClaimError(f"{where}: `baseline` is required (a method)")
        targets = tuple(_number(t, f"{where}.targets") for t in entry.get("targets", list(stats.STEP_TARGETS)))
        if not targets or not all(0 < t < 1 for t in targets):
            raise ClaimError(f"{where}.targets: expected dev-F1 targets in (0, 1), got {entry.get('targets')!r}")
        return Claim(**common, methods=_strings(entry.get("methods"), f"{where}.methods"), baseline=entry["baseline"],
                     sizes=_ints(entry.get("sizes"), f"{where}.sizes"), targets=targets)
    trend = None
    if kind == "grows_with_data" and entry.get("trend") is not None:
        raw = entry["trend"]
        if not isinstance(raw, dict) or set(raw) != {"a", "b", "sizes"}:
            raise ClaimError(f"{where}.trend: expected {{a, b, sizes}}, got {raw!r}")
        sizes = _ints(raw["sizes"], f"{where}.trend.sizes")
        if len(set(sizes)) < 2:
            raise ClaimError(f"{where}.trend.sizes: a trend needs at least two sizes")
        trend = (str(raw["a"]), str(raw["b"]), sizes)
    full_data = None
    if entry.get("full_data") is not None:
        raw = entry["full_data"]
        if kind != "grows_with_data" or not isinstance(raw, dict) or set(raw) != {"a", "b", "stage"} \
                or not all(isinstance(v, str) and v for v in raw.values()):
            raise ClaimError(f"{where}.full_data: expected {{a, b, stage}} on a grows_with_data claim, got {raw!r}")
        full_data = (raw["a"], raw["b"], raw["stage"])
    return Claim(**common, tests=_strings(entry.get("tests"), f"{where}.tests"),
                 alongside=_strings(entry.get("alongside"), f"{where}.alongside", required=False), trend=trend,
                 full_data=full_data)


def parse_claims(raw: Any) -> ClaimBlock:
    """The `claims:` mapping -> ClaimBlock (ClaimError on anything malformed)."""
    if not isinstance(raw, dict):
        raise ClaimError(f"claims: expected a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - {"smallest_effect", "paper_band", "alpha", "items"})
    if unknown:
        raise ClaimError(f"claims: unknown keys {unknown}")
    effect = _number(raw.get("smallest_effect", DEFAULT_SMALLEST_EFFECT), "claims.smallest_effect")
    band_raw = raw.get("paper_band", list(stats.PAPER_GAIN_RANGE))
    if not isinstance(band_raw, list) or len(band_raw) != 2:
        raise ClaimError(f"claims.paper_band: expected [low, high], got {band_raw!r}")
    band = (_number(band_raw[0], "claims.paper_band"), _number(band_raw[1], "claims.paper_band"))
    if band[0] >= band[1] or effect < 0:
        raise ClaimError("claims: paper_band must be [low, high] with low < high, smallest_effect >= 0")
    alpha = raw.get("alpha")
    if alpha is not None and not (isinstance(alpha, (int, float)) and not isinstance(alpha, bool) and 0 < alpha < 1):
        raise ClaimError(f"claims.alpha: expected a number in (0, 1), got {alpha!r}")
    items_raw = raw.get("items") or []
    if not isinstance(items_raw, list):
        raise ClaimError("claims.items: expected a list")
    items = tuple(_claim(entry, i) for i, entry in enumerate(items_raw))
    ids = [c.id for c in items]
    if len(set(ids)) != len(ids):
        raise ClaimError(f"claims.items: duplicate ids in {ids}")
    return ClaimBlock(items, effect, band, None if alpha is None else float(alpha))


def read_claims(path: str | Path) -> ClaimBlock | None:
    """The study YAML's `claims:` block, or None when it has none."""
    raw = load_yaml(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict) or not raw.get("claims"):
        return None
    return parse_claims(raw["claims"])


def check_against(block: ClaimBlock, hyp_block: hypotheses.HypothesisBlock) -> None:
    """ClaimError if a claim names a test the hypotheses block lacks, or uses an interaction test as a gain."""
    declared = {t.id: t for t in hyp_block.tests}
    for claim in block.items:
        for test_id in (*claim.tests, *claim.alongside):
            if test_id not in declared:
                raise ClaimError(f"claims.items ({claim.id}): hypothesis {test_id!r} is not declared in hypotheses:")
            if declared[test_id].kind != "pooled":
                raise ClaimError(f"claims.items ({claim.id}): {test_id} is a {declared[test_id].kind} test; a claim "
                                 "reads pooled gains only")


# --------------------------------------------------------------------------------------------- component verdicts
def _finite(*values: Any) -> bool:
    try:
        return all(np.isfinite(float(v)) for v in values)
    except (TypeError, ValueError):
        return False


def beats_verdict(row: Any, alpha: float, smallest_effect: float) -> str:
    """A pooled hypothesis row judged as a gain claim (module docstring, `beats`)."""
    if row["verdict"] == hypotheses.V1_VERDICT:
        return hypotheses.V1_VERDICT
    if not row["n"] or not _finite(row["p_holm"]):
        return NOT_RUN
    if row["verdict"] == INTERIM:
        return INTERIM
    if row["verdict"] == "refuted" or (_finite(row["ci_hi"]) and row["ci_hi"] < smallest_effect):
        return "refuted"
    if row["p_holm"] < alpha and row["estimate"] > 0:
        return "supported"
    return "inconclusive"


def band_verdict(estimate: float, lo: float, hi: float, significant: bool, band: tuple[float, float]) -> str:
    """`in_band` for one reading (module docstring); the caller handles not run / v1."""
    if _finite(lo, hi) and (hi < band[0] or lo > band[1]):
        return "refuted"
    if _finite(estimate) and band[0] <= estimate <= band[1] and significant:
        return "supported"
    return "inconclusive"


def step_verdict(n: int, p_holm: float, p_opposite_holm: float, n_faster: int, n_slower: int, alpha: float) -> str:
    """`step_efficiency` for one method (module docstring)."""
    if not n or not _finite(p_holm):
        return NOT_RUN
    if p_holm < alpha and n_faster > n_slower:
        return "supported"
    if _finite(p_opposite_holm) and p_opposite_holm < alpha:
        return "refuted"
    return "inconclusive"


def combine(verdicts: list[str]) -> str:
    """The conjunction of component verdicts (module docstring)."""
    if not verdicts or all(v == NOT_RUN for v in verdicts):
        return NOT_RUN
    if hypotheses.V1_VERDICT in verdicts:
        return hypotheses.V1_VERDICT
    if INTERIM in verdicts:
        return INTERIM
    if "refuted" in verdicts:
        return "refuted"
    if all(v == "supported" for v in verdicts):
        return "supported"
    return "inconclusive"


# --------------------------------------------------------------------------------------------- evaluation
Condition = tuple[str, str, str]   # backbone, finetune, sampler as the hypothesis table has them


def _in_condition(frame: pd.DataFrame, cond: Condition) -> pd.DataFrame:
    if frame.empty:
        return frame
    frame = with_finetune(frame)
    backbone, finetune, sampler = cond
    return frame[(frame["backbone"] == backbone) & (frame["finetune"] == finetune) & (frame["sampler"] == sampler)]


def _sizes_text(sizes: tuple[int, ...]) -> str:
    return f"{min(sizes)}–{max(sizes)}" if len(sizes) > 2 else "/".join(str(s) for s in sizes)


def _component(claim: Claim, cond: Condition, **values: Any) -> dict[str, Any]:
    nan = float("nan")
    base = {"claim_id": claim.id, "reading": "", "role": "test", "backbone": cond[0], "finetune": cond[1],
            "sampler": cond[2], "estimate": nan, "ci_lo": nan, "ci_hi": nan, "p": nan, "p_holm": nan,
            "p_opposite_holm": nan, "p_pairs": nan, "n": 0, "n_positive": 0, "n_negative": nan, "pairs_per_size": "",
            "per_size": "", "note": ""}
    return {**base, **values}


def _from_hypothesis(claim: Claim, cond: Condition, row: pd.Series, role: str, verdict: str,
                     reading: str = "") -> dict[str, Any]:
    return _component(claim, cond, reading=reading, component=row["id"], role=role, contrast=row["contrast"],
                      unit=UNITS["points"], estimate=row["estimate"], ci_lo=row["ci_lo"], ci_hi=row["ci_hi"],
                      p=row["p"], p_holm=row["p_holm"], p_opposite_holm=row["p_opposite_holm"],
                      p_pairs=row.get("p_pairs", float("nan")), n=int(row["n"]),
                      n_positive=int(row["n_positive"]), pairs_per_size=row["pairs_per_size"], verdict=verdict)


def _per_size(paired: pd.DataFrame, reading: str) -> str:
    parts = []
    for r in paired.sort_values("size").itertuples():
        mean, lo, hi = ((r.mean_diff, r.ci_lo, r.ci_hi) if reading == "points"
                        else (r.rel_gain, r.rel_ci_lo, r.rel_ci_hi))
        ci = f" [{100 * lo:+.1f}, {100 * hi:+.1f}]" if _finite(lo, hi) else ""
        parts.append(f"{r.size}: {100 * mean:+.1f}{ci}")
    return "; ".join(parts)


class _Context:
    """What every claim reads: the hypothesis rows, the cells of the hypotheses' stage, the per-cell test values."""

    def __init__(self, df: pd.DataFrame, hyp: pd.DataFrame, hyp_block: hypotheses.HypothesisBlock,
                 block: ClaimBlock) -> None:
        self.hyp = hyp
        self.hyp_block = hyp_block
        self.alpha = block.alpha if block.alpha is not None else hyp_block.alpha
        self.effect = block.smallest_effect
        self.band = block.band
        self.tests = {t.id: t for t in hyp_block.tests}
        self.all = df                                   # every stage (e.g. a full-data stage beside the tests')
        self.df = hypotheses.hypothesis_cells(df, hyp_block)
        self.cells = stats.cell_values(self.df, hyp_block.metric, hyp_block.split)
        self.v1 = bool(len(hyp)) and bool((hyp["verdict"] == hypotheses.V1_VERDICT).any())

    def row(self, test_id: str, cond: Condition) -> pd.Series | None:
        rows = self.hyp[(self.hyp["id"] == test_id) & (self.hyp["backbone"] == cond[0])
                        & (self.hyp["finetune"] == cond[1]) & (self.hyp["sampler"] == cond[2])]
        return rows.iloc[0] if len(rows) else None

    def conditions(self, test_ids: tuple[str, ...] = ()) -> list[Condition]:
        rows = self.hyp if not test_ids else self.hyp[self.hyp["id"].isin(test_ids)]
        return sorted({(str(b), str(f), str(s)) for b, f, s in zip(rows["backbone"], rows["finetune"],
                                                                    rows["sampler"])})


def _contrasts(ctx: _Context, ids: tuple[str, ...]) -> str:
    return ", ".join(f"{i} ({ctx.tests[i].contrast})" for i in ids)


def _beats(claim: Claim, ctx: _Context, cond: Condition) -> tuple[list[dict], list[dict]]:
    comps, main, side = [], [], []
    for role, ids, out in (("test", claim.tests, main), ("alongside", claim.alongside, side)):
        for test_id in ids:
            row = ctx.row(test_id, cond)
            if row is None:
                continue
            verdict = beats_verdict(row, ctx.alpha, ctx.effect)
            out.append((test_id, verdict, ctx.tests[test_id].b))
            comps.append(_from_hypothesis(claim, cond, row, role, verdict))
    verdict = combine([v for _, v, _ in main])
    qualifier = ""
    if side and verdict not in (NOT_RUN, INTERIM, hypotheses.V1_VERDICT):
        others = sorted({b for _, _, b in side} - {b for _, _, b in main})
        listed = ", ".join(f"{i} {v}" for i, v, _ in side)
        if any(v == INTERIM for _, v, _ in side):
            qualifier = f"against {', '.join(f'`{b}`' for b in others)}: interim ({listed})"
        elif verdict == "supported":
            both = all(v == "supported" for _, v, _ in side)
            qualifier = (f"against both baselines (`{'`, `'.join(others)}` too: {listed})" if both else
                         f"only against {', '.join(f'`{b}`' for b in sorted({b for _, _, b in main}))}; "
                         f"against {', '.join(f'`{b}`' for b in others)}: {listed}")
        else:
            qualifier = f"against {', '.join(f'`{b}`' for b in others)}: {listed}"
    evidence = _contrasts(ctx, claim.tests) + (f"; alongside: {_contrasts(ctx, claim.alongside)}"
                                               if claim.alongside else "")
    return comps, [{"reading": "", "verdict": verdict, "qualifier": qualifier, "evidence": evidence}]


def _in_band(claim: Claim, ctx: _Context, cond: Condition) -> tuple[list[dict], list[dict]]:
    comps: list[dict] = []
    by_reading: dict[str, list[str]] = {r: [] for r in READINGS}
    for test_id in claim.tests:
        row = ctx.row(test_id, cond)
        if row is None:
            continue
        test = ctx.tests[test_id]
        paired = _in_condition(stats.paired_from_cells(ctx.cells, ctx.hyp_block.metric, test.a, test.b)
                               if len(ctx.cells) else pd.DataFrame(columns=stats.PAIRED_COLUMNS), cond)
        paired = paired[paired["size"].isin(test.sizes)] if len(paired) else paired
        base = 100 * float(paired["mean_baseline"].mean()) if len(paired) else float("nan")
        significant = _finite(row["p_holm"]) and row["p_holm"] < ctx.alpha and row["estimate"] > 0
        for reading in READINGS:
            scale = 1.0 if reading == "points" else (100.0 / base if _finite(base) and base > 0 else float("nan"))
            est, lo, hi = (row["estimate"] * scale, row["ci_lo"] * scale, row["ci_hi"] * scale)
            if row["verdict"] == hypotheses.V1_VERDICT:
                verdict = hypotheses.V1_VERDICT
            elif not row["n"]:
                verdict = NOT_RUN
            elif row["verdict"] == INTERIM:
                verdict = INTERIM
            else:
                verdict = band_verdict(est, lo, hi, significant, ctx.band)
            by_reading[reading].append(verdict)
            note = ("" if reading == "points" or not _finite(base) else
                    f"baseline `{test.b}` mean F1 {base:.1f} (sizes weighted equally, treated as fixed)")
            comps.append({**_from_hypothesis(claim, cond, row, "test", verdict, reading),
                          "unit": UNITS[reading], "estimate": est, "ci_lo": lo, "ci_hi": hi,
                          "per_size": _per_size(paired, reading) if len(paired) else "", "note": note})
    evidence = f"pooled estimates of {_contrasts(ctx, claim.tests)} against the band {ctx.band[0]:g}–{ctx.band[1]:g}"
    claims = [{"reading": reading, "verdict": combine(by_reading[reading]), "qualifier": "", "evidence": evidence}
              for reading in READINGS]
    return comps, claims


def trend_slopes(pairs: pd.DataFrame) -> np.ndarray:
    """Per (data_seed, seed) unit with pairs at >= 2 sizes: the OLS slope of the difference (F1 points) over
    log10(size)."""
    slopes = []
    for _, unit in pairs.groupby(["data_seed", "seed"], sort=True):
        x = np.log10(unit["size"].to_numpy(float))
        if np.unique(x).size < 2:
            continue
        slopes.append(float(np.polyfit(x, 100 * unit["diff"].to_numpy(float), 1)[0]))
    return np.asarray(slopes, float)


def _grows(claim: Claim, ctx: _Context, cond: Condition) -> tuple[list[dict], list[dict]]:
    comps, claims = _beats(claim, ctx, cond)
    largest = max(s for t in claim.tests for s in ctx.tests[t].sizes)
    claims[0]["qualifier"] = (f"largest size in {', '.join(claim.tests)}: {largest}"
                              + (" sentences" if cond[2] == "sentences" else ""))
    if claim.trend is not None:
        a, b, sizes = claim.trend
        pairs = (_in_condition(stats.pair_differences(ctx.cells, ctx.hyp_block.metric, a, b), cond)
                 if len(ctx.cells) else pd.DataFrame(columns=stats.PAIR_COLUMNS))
        pairs = pairs[pairs["size"].isin(sizes)] if len(pairs) else pairs
        slopes = trend_slopes(pairs) if len(pairs) else np.array([])
        ci = stats.mean_ci(slopes)
        test = hypotheses.sign_flip_test(slopes)
        comps.append(_component(
            claim, cond, component="trend", role="descriptive", contrast=f"{a} − {b} over log10(size)",
            unit=UNITS["slope"], estimate=ci["mean"], ci_lo=ci["ci_lo"], ci_hi=ci["ci_hi"], p=test["p"],
            n=int(slopes.size), n_positive=int((slopes > 0).sum()), n_negative=int((slopes < 0).sum()),
            pairs_per_size=" ".join(f"{s}:{int((pairs['size'] == s).sum()) if len(pairs) else 0}" for s in sizes),
            note="units: (data_seed, seed); one-sided p (slope > 0), descriptive, in no Holm family",
            verdict="descriptive" if slopes.size else NOT_RUN))
        claims[0]["evidence"] += f"; descriptive: slope of {a} − {b} over sizes {_sizes_text(sizes)}"
    if claim.full_data is not None:
        comps.append(_full_data(claim, ctx, cond))
        claims[0]["evidence"] += f"; descriptive: {claim.full_data[0]} − {claim.full_data[1]} on the full training set"
    return comps, claims


def _full_data(claim: Claim, ctx: _Context, cond: Condition) -> dict[str, Any]:
    """a − b per (data_seed, seed) on the full training set (stage `claim.full_data[2]`, sampler `full`), same
    backbone and track as `cond`: mean and t-interval in F1 points, every pair listed; descriptive only."""
    a, b, stage = claim.full_data
    rows = ctx.all[ctx.all["stage"] == stage] if len(ctx.all) and "stage" in ctx.all else ctx.all.iloc[0:0]
    full = (cond[0], cond[1], FULL_SAMPLER)
    cells = stats.cell_values(rows, ctx.hyp_block.metric, ctx.hyp_block.split) if len(rows) else rows
    pairs = (_in_condition(stats.pair_differences(cells, ctx.hyp_block.metric, a, b), full)
             if len(cells) else pd.DataFrame(columns=stats.PAIR_COLUMNS))
    diffs = 100 * pairs["diff"].to_numpy(float) if len(pairs) else np.array([])
    ci = stats.mean_ci(diffs)
    listed = " ".join(f"s{int(r.seed)}: {100 * r.diff:+.1f}" for r in pairs.sort_values("seed").itertuples()) if len(pairs) else ""
    return _component(claim, full, component="full data", role="descriptive", contrast=f"{a} − {b}",
                      unit=UNITS["points"], estimate=ci["mean"], ci_lo=ci["ci_lo"], ci_hi=ci["ci_hi"],
                      n=int(diffs.size), n_positive=int((diffs > 0).sum()), n_negative=int((diffs < 0).sum()),
                      per_size=listed, note=f"stage {stage}: every training sentence; descriptive, in no Holm family",
                      verdict="descriptive" if diffs.size else NOT_RUN)


def _steps(claim: Claim, ctx: _Context, conds: list[Condition]) -> tuple[list[dict], list[dict]]:
    cells = (stats.step_efficiency_cells(ctx.df, claim.targets, ctx.hyp_block.metric) if len(ctx.df)
             else pd.DataFrame(columns=stats.STEP_CELL_COLUMNS))
    cells = cells[cells["size"].isin(claim.sizes)] if len(cells) else cells
    keys = [*CELL_KEYS, "target_name"]
    comps = []
    for cond in conds:
        at = _in_condition(cells, cond)
        base = at[at["method"] == claim.baseline].set_index(keys) if len(at) else None
        for method in claim.methods:
            nan = float("nan")
            result: dict[str, Any] = {"n": 0, "n_positive": 0, "estimate": nan, "ci_lo": nan, "ci_hi": nan,
                                      "p": nan, "p_opposite": nan, "p_pairs": nan, "pairs_per_size": "",
                                      "min_pairs": 0}
            n_slower, note = 0, ""
            if base is not None:
                mine = at[at["method"] == method].set_index(keys)
                joined = pd.merge(mine[["steps_to_reach", "censored", "steps_total"]],
                                  base[["steps_to_reach", "censored", "steps_total"]], how="inner", left_index=True,
                                  right_index=True, suffixes=("_m", "_b"))
                joined = joined.dropna(subset=["steps_to_reach_m", "steps_to_reach_b"])
                if len(joined):
                    budget = joined[["steps_total_m", "steps_total_b"]].max(axis=1)
                    joined = joined.assign(diff=(joined["steps_to_reach_b"] - joined["steps_to_reach_m"]) / budget)
                    pairs = joined.groupby(list(CELL_KEYS))["diff"].mean().reset_index()
                    result = hypotheses.pooled_test(pairs[["size", "data_seed", "seed", "diff"]], claim.sizes,
                                                    ctx.hyp_block.unit)
                    n_slower = int((pairs["diff"] < 0).sum())
                    note = (f"censored pair-targets: {method} {int(joined['censored_m'].sum())}/{len(joined)}, "
                            f"{claim.baseline} {int(joined['censored_b'].sum())}/{len(joined)}; "
                            f"tied pairs {int((pairs['diff'] == 0).sum())}")
            comps.append(_component(
                claim, cond, component=f"steps {method}", contrast=f"{claim.baseline} − {method} steps to target",
                unit=UNITS["steps"], estimate=100 * result["estimate"], ci_lo=100 * result["ci_lo"],
                ci_hi=100 * result["ci_hi"], p=result["p"], p_opposite_holm=result["p_opposite"],
                p_pairs=result["p_pairs"], n=int(result["n"]),
                n_positive=int(result["n_positive"]), n_negative=n_slower, pairs_per_size=result["pairs_per_size"],
                note=note, verdict=NOT_RUN, min_pairs=int(result["min_pairs"])))
    frame = pd.DataFrame(comps)
    if len(frame):   # Holm across this claim's rows, each direction its own family
        frame["p_holm"] = stats.holm(frame["p"].to_numpy(float))
        frame["p_opposite_holm"] = stats.holm(frame["p_opposite_holm"].to_numpy(float))
        frame["verdict"] = [step_verdict(r.n, r.p_holm, r.p_opposite_holm, r.n_positive, int(r.n_negative),
                                         ctx.alpha) for r in frame.itertuples()]
        # interim while its own Holm family, or the hypotheses' (the same stage's cells), lacks planned pairs
        waiting = len(ctx.hyp) and bool((ctx.hyp["verdict"] == INTERIM).any())
        if waiting or hypotheses.incomplete(frame["n"], frame["min_pairs"], ctx.hyp_block):
            frame.loc[frame["n"] > 0, "verdict"] = INTERIM
        if ctx.v1:
            frame.loc[frame["n"] > 0, "verdict"] = hypotheses.V1_VERDICT
        frame = frame.drop(columns="min_pairs")
    comps = frame.to_dict("records")
    targets = "/".join(f"{100 * t:g}" for t in claim.targets)
    evidence = (f"paired steps to dev F1 {targets} (censored at the budget), {', '.join(claim.methods)} vs "
                f"`{claim.baseline}`, sizes {_sizes_text(claim.sizes)}; Holm across the {len(claim.methods)} methods")
    claims = []
    for cond in conds:
        verdicts = [c["verdict"] for c in comps if (c["backbone"], c["finetune"], c["sampler"]) == cond]
        claims.append({"cond": cond, "reading": "", "verdict": combine(verdicts), "qualifier": "",
                       "evidence": evidence})
    return comps, claims


def evaluate_claims(df: pd.DataFrame, hyp: pd.DataFrame, hyp_block: hypotheses.HypothesisBlock,
                    block: ClaimBlock) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(claims, components): one row per claim x reading x condition (CLAIM_COLUMNS) and the numbers behind them
    (COMPONENT_COLUMNS). `df` is the study's results (all stages), `hyp` the output of
    `hypotheses.evaluate_hypotheses(df, hyp_block)`. See the module docstring for the rules."""
    check_against(block, hyp_block)
    ctx = _Context(df, hyp, hyp_block, block)
    claim_rows: list[dict] = []
    comp_rows: list[dict] = []
    for claim in block.items:
        if claim.kind == "step_efficiency":
            conds = ctx.conditions() or [("", "", "")]
            comps, results = _steps(claim, ctx, conds)
        else:
            conds = ctx.conditions(claim.tests) or [("", "", "")]
            comps, results = [], []
            run = {"beats": _beats, "in_band": _in_band, "grows_with_data": _grows}[claim.kind]
            for cond in conds:
                c, r = run(claim, ctx, cond)
                comps += c
                results += [{**x, "cond": cond} for x in r]
        comp_rows += comps
        for r in results:
            backbone, finetune, sampler = r["cond"]
            claim_rows.append({"id": claim.id, "claim": claim.claim, "kind": claim.kind, "reading": r["reading"],
                               "backbone": backbone, "finetune": finetune, "sampler": sampler,
                               "verdict": r["verdict"], "qualifier": r["qualifier"], "evidence": r["evidence"],
                               "rule": claim.rule})
    return (pd.DataFrame(claim_rows, columns=CLAIM_COLUMNS),
            pd.DataFrame(comp_rows, columns=COMPONENT_COLUMNS) if comp_rows else pd.DataFrame(columns=COMPONENT_COLUMNS))


def evaluate_study_claims(df: pd.DataFrame, hyp: pd.DataFrame, hyp_block: hypotheses.HypothesisBlock | None,
                          study_yaml: str | Path) -> tuple[ClaimBlock | None, pd.DataFrame, pd.DataFrame]:
    """read_claims + evaluate_claims; (None, empty, empty) when the YAML declares no claims (ClaimError when it does
    but has no hypotheses block to read them from)."""
    block = read_claims(study_yaml)
    empty = pd.DataFrame(columns=CLAIM_COLUMNS), pd.DataFrame(columns=COMPONENT_COLUMNS)
    if block is None:
        return None, *empty
    if hyp_block is None:
        raise ClaimError(f"{study_yaml}: a claims: block needs the hypotheses: block it reads")
    return block, *evaluate_claims(df, hyp, hyp_block, block)


# --------------------------------------------------------------------------------------------- rendering
def _condition_label(backbone: Any, finetune: Any, sampler: Any) -> str:
    if not backbone:
        return "–"
    return f"{track_label(backbone, finetune or None)} · {sampler}"


def _with_paper(text: str) -> str:
    return text if PAPER in text else f"{text} {PAPER}"


def claims_section(claims: pd.DataFrame, components: pd.DataFrame, block: ClaimBlock | None,
                   hyp_block: hypotheses.HypothesisBlock | None, source: str = "", note: str = "") -> str:
    """The verdicts on the paper's claims as markdown: the verdict table, the numbers behind each verdict and the
    pre-registered rules. The one renderer of these tables (REPORT.md and the README results block both call it)."""
    from paper_repro.analysis.report import _ci, _num, _p, amendments_section, md_table

    where = f" in `{source}`" if source else ""
    if note:
        return note
    if block is None:
        return f"_No `claims:` block{where}: no verdict on the paper's claims was pre-registered for this study._\n"
    stage = hyp_block.stage if hyp_block is not None and hyp_block.stage is not None else "every stage"
    alpha = block.alpha if block.alpha is not None else (hyp_block.alpha if hyp_block is not None else float("nan"))
    out = [f"Decision rules pre-registered{where} (`claims:`) before stage `{stage}` ran, quoted in the last table; "
           f"α = {alpha:g}; smallest effect of interest {block.smallest_effect:g} F1 point(s); the band "
           f"{block.band[0]:g}–{block.band[1]:g} {PAPER} is read both as F1 points and as % relative to the baseline. "
           "A claim about both fusion heads is a conjunction: it holds only if it holds for each.\n"]
    not_run = claims.empty or bool((claims["verdict"] == NOT_RUN).all())
    if not_run:
        out.append(f"**Not run yet**: stage `{stage}` has no paired cells, so no claim has a verdict (every row "
                   "reads `not run`).\n")
    elif bool((claims["verdict"] == INTERIM).any()):
        waiting = ", ".join(f"({i})" for i in dict.fromkeys(claims.loc[claims["verdict"] == INTERIM, "id"]))
        out.append(f"**Interim**: stage `{stage}` does not have all the {hyp_block.planned_pairs} pairs per size it "
                   f"plans yet (the `pairs per size` column below), so claim(s) {waiting} have no verdict yet: those "
                   "rows read `interim`, and their estimates and p-values are shown as they stand. They decide "
                   "nothing: the pre-registered rules are applied once every test of the family has its planned "
                   "pairs (`hypotheses.planned_pairs`).\n")
    rows = [[f"({r.id})", _with_paper(r.claim), r.reading or "–", _condition_label(r.backbone, r.finetune, r.sampler),
             f"**{r.verdict}**" + (f" — {r.qualifier}" if r.qualifier else ""), r.evidence]
            for r in claims.itertuples()]
    out.append(md_table(rows, ["claim", "what the paper says", "reading", "condition", "verdict", "evidence"]))
    by_seeds = hyp_block is not None and hyp_block.unit == "seeds"
    if not not_run and len(components):
        rows = []
        for r in components.itertuples():
            n_neg = f", {int(r.n_negative)} < 0" if _finite(r.n_negative) else ""
            rows.append([f"({r.claim_id})" + (f" {r.reading}" if r.reading else ""), r.component, r.role, r.contrast,
                         _condition_label(r.backbone, r.finetune, r.sampler), r.unit, _num(r.estimate, 2),
                         _ci(r.ci_lo, r.ci_hi, 2, 1.0), _p(r.p), _p(r.p_holm),
                         *([_p(r.p_pairs)] if by_seeds else []), f"{r.n_positive}/{r.n} > 0{n_neg}",
                         r.pairs_per_size or "–", r.per_size or "–", r.note or "–", r.verdict])
        units = (" over (data_seed, seed) units, whose pairs at every size share sentences and init (`p`, `Holm p` "
                 "and the interval flip and count whole units; `p per pair` is the test as first registered, "
                 "flipping pairs)" if by_seeds else "")
        out.append("Numbers behind the verdicts (estimates with a 95% t-interval; p one-sided in the claimed "
                   f"direction{units}; Holm p: H-tests across the hypotheses block, step tests across the claim's "
                   "methods):\n\n"
                   + md_table(rows, ["claim", "component", "role", "contrast", "condition", "unit", "estimate",
                                     "95% CI", "p", "Holm p", *(["p per pair"] if by_seeds else []), "pairs",
                                     "pairs per size", "per size", "note", "verdict"]))
    out.append("Pre-registered rules (verbatim from the study YAML):\n\n"
               + md_table([[f"({c.id})", c.rule] for c in block.items], ["claim", "rule"]))
    out.append(amendments_section(hyp_block))
    return "\n".join(out)


DECIDED = tuple(v for v in hypotheses.VERDICTS if v not in (NOT_RUN, INTERIM))   # interim, not run, v1 decide nothing


def effects_section(tracks: list[tuple[str, pd.DataFrame]]) -> str:
    """How large each tested contrast is, side by side across studies: `tracks` = [(study name, components
    table of `evaluate_claims`)]. One row per (test component, unit) with role "test" (H1a read by claims (a) and
    (b) is one row; two claims that read one component with different numbers get a row each), one column per
    (study, condition): estimate [95% CI] and Holm p, formatted as in each study's own "numbers behind the
    verdicts" table, and marked with the component's verdict word (in italics) wherever it is not a decided one
    (interim, not run, protocol v1). The verdicts, which are per claim, are `tracks_section`'s."""
    from paper_repro.analysis.report import _ci, _num, _p, md_table

    columns: list[tuple[str, str]] = []
    cells: dict[tuple[str, ...], dict[tuple[str, str], str]] = {}
    read_by: dict[tuple[str, ...], list[str]] = {}
    for study, parts in tracks:
        for r in parts[parts["role"] == "test"].itertuples():
            column = (study, _condition_label(r.backbone, r.finetune, r.sampler))
            if column not in columns:
                columns.append(column)
            claim = f"({r.claim_id})" + (f" {r.reading}" if r.reading else "")
            ci, holm = _ci(r.ci_lo, r.ci_hi, 2, 1.0), _p(r.p_holm)
            text = _num(r.estimate, 2) + (f" {ci}" if ci != "–" else "") + (f", Holm p {holm}" if holm != "–" else "")
            if r.verdict not in DECIDED:
                text += f" (*{r.verdict}*)"
            key: tuple[str, ...] = (r.component, r.contrast, r.unit)
            if cells.get(key, {}).get(column, text) != text:      # the same component, other numbers: own row
                key = (*key, claim)
            cells.setdefault(key, {})[column] = text
            if claim not in read_by.setdefault(key, []):
                read_by[key].append(claim)
    if not cells:
        return "_No tested contrast yet._\n"
    rows = [[", ".join(read_by[key]), key[0], key[1], key[2], *[row.get(c, "–") for c in columns]]
            for key, row in cells.items()]
    return md_table(rows, ["claims", "test", "contrast", "unit", *[f"`{s}`: {c}" for s, c in columns]])


def tracks_section(tracks: list[tuple[str, pd.DataFrame]]) -> str:
    """The verdict per paper claim side by side across studies (e.g. the fine-tuned and the frozen-encoder
    track): `tracks` = [(study name, claims table of `evaluate_claims`)]. One column per (study, condition), one
    row per (claim, reading); `agree` says whether every column with a verdict says the same (– while any is not
    run or interim; no `agree` column when there is one column). The reasons where they differ are the reader's
    to weigh: the table only lines them up."""
    from paper_repro.analysis.report import md_table

    columns: list[tuple[str, str]] = []
    cells: dict[tuple[str, str, str], str] = {}
    keys: list[tuple[str, str]] = []
    texts: dict[str, str] = {}
    for study, claims in tracks:
        for r in claims.itertuples():
            column = (study, _condition_label(r.backbone, r.finetune, r.sampler))
            if column not in columns:
                columns.append(column)
            key = (r.id, r.reading or "")
            if key not in keys:
                keys.append(key)
            texts[r.id] = r.claim
            cells[(*key, f"{column[0]}|{column[1]}")] = r.verdict + (f" — {r.qualifier}" if r.qualifier else "")
    if not keys:
        return "_No study with a `claims:` block._\n"
    rows = []
    for claim_id, reading in keys:
        shown = [cells.get((claim_id, reading, f"{s}|{c}"), "–") for s, c in columns]
        bare = [v.split(" — ")[0] for v in shown]
        agree = "–" if any(v in (NOT_RUN, INTERIM, "–") for v in bare) else ("yes" if len(set(bare)) == 1 else "**no**")
        rows.append([f"({claim_id})", _with_paper(texts[claim_id]), reading or "–",
                     *[f"**{v}**" if v.split(" — ")[0] not in (NOT_RUN, "–") else v for v in shown], agree])
    header = ["claim", "what the paper says", "reading", *[f"`{s}`: {c}" for s, c in columns], "agree"]
    if len(columns) < 2:                                          # one column agrees with nothing
        return md_table([row[:-1] for row in rows], header[:-1])
    return md_table(rows, header)
