"""Parameter budgets: match each fusion head's trainable parameters to one extra backbone layer.

The target is the ``deeper`` head's count with k layers (default k=1); ``deeper_copy`` (like any subclass of
the ``deeper`` head, differing only in initialisation) is the target architecture too. A head with a width
knob is solved by integer search over the knob's lattice (``Head.knob_from_unit``: widths, round(γH) for
ratios, multiples of heads) — counts are monotone in the knob, so bisection. Heads are built on the meta
device to count, so solving is fast even for real-size configs.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from paper_repro.atomic import atomic_write_csv
from paper_repro.models.heads import HEADS, HeadContext, build_head

TARGET_HEAD = "deeper"
MAX_UNIT = 1 << 24


class BudgetError(ValueError):
    """A head whose best knob value is outside the budget tolerance (or that has no knob)."""


def count_trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def head_param_count(name: str, ctx: HeadContext, **options) -> int:
    with torch.device("meta"):
        return count_trainable(build_head(name, ctx, **options))


def budget_target(ctx: HeadContext, layers: int = 1) -> int:
    return head_param_count(TARGET_HEAD, ctx, layers=layers)


def is_target(name: str) -> bool:
    """Whether the head is the target architecture: ``deeper`` or a subclass (``deeper_copy``: another init)."""
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; known: {', '.join(sorted(HEADS))}")
    return issubclass(HEADS[name], HEADS[TARGET_HEAD])


def knob_of(name: str, **options) -> str | None:
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; known: {', '.join(sorted(HEADS))}")
    return HEADS[name].knob_for(**options)


def is_matchable(name: str, **options) -> bool:
    """Whether the head can be brought to a budget: it has a width knob, or it is the target (deeper, deeper_copy)."""
    return is_target(name) or knob_of(name, **options) is not None


def _search(name: str, ctx: HeadContext, target: int, **options) -> tuple[dict, int]:
    """Options (with the knob set) whose parameter count is closest to target, and that count."""
    knob = knob_of(name, **options)
    if knob is None:
        return dict(options), head_param_count(name, ctx, **options)
    options = {k: v for k, v in options.items() if k != knob}
    head = HEADS[name]

    def at(unit: int) -> tuple[dict, int]:
        opts = {**options, knob: head.knob_from_unit(unit, ctx, **options)}
        return opts, head_param_count(name, ctx, **opts)

    lo, hi = 1, 1
    while at(hi)[1] < target:
        if hi >= MAX_UNIT:
            return at(hi)
        lo, hi = hi, min(2 * hi, MAX_UNIT)
    while lo < hi:  # smallest unit with count >= target
        mid = (lo + hi) // 2
        if at(mid)[1] >= target:
            hi = mid
        else:
            lo = mid + 1
    candidates = [at(hi)] + ([at(hi - 1)] if hi > 1 else [])
    return min(candidates, key=lambda c: abs(c[1] - target))


def solve_knob(name: str, ctx: HeadContext, target: int, tolerance: float = 0.03, **options) -> dict:
    """The head's options with the knob value whose parameter count is closest to target.

    Raises BudgetError if the head has no knob (except the target heads, checked as is) or the best count is
    outside ±tolerance of target.
    """
    if not is_matchable(name, **options):
        raise BudgetError(f"{name} with options {options} has no width knob; cannot match a budget")
    best, params = _search(name, ctx, target, **options)
    deviation = (params - target) / target
    if abs(deviation) > tolerance:
        raise BudgetError(
            f"{name}: best {best} has {params} params, {deviation:+.2%} from target {target} (tolerance ±{tolerance:.0%})"
        )
    return best


def default_table_options() -> dict[str, dict]:
    rows = {name: {} for name in HEADS}
    rows["concat/linear"] = {"projection": "linear"}
    return rows


def budget_table(
    ctx: HeadContext, target: int, head_options: dict[str, dict] | None = None, tolerance: float = 0.03
) -> list[dict]:
    """One row per head. ``head_options`` maps a row label to its options; a label is a head name,
    optionally with a "/variant" suffix (e.g. ``"concat/linear": {"projection": "linear"}``). Default: every
    registered head with default options, plus concat/linear."""
    rows = []
    for label, options in (head_options if head_options is not None else default_table_options()).items():
        name = label.split("/", 1)[0]
        knob = knob_of(name, **options)
        note = ""
        if knob is None:
            opts, params = dict(options), head_param_count(name, ctx, **options)
            if name == TARGET_HEAD:
                note = "defines target"
            elif is_target(name):
                note = f"target architecture ({TARGET_HEAD}), other init"
            elif HEADS[name].knob is not None:
                note = f"no width knob with {options}: cannot match"
            else:
                note = "no width knob: budget control"
        else:
            opts, params = _search(name, ctx, target, **options)
        deviation = (params - target) / target
        matched = is_matchable(name, **options) and abs(deviation) <= tolerance
        if is_matchable(name, **options) and not matched:
            note = f"best knob outside ±{tolerance:.0%}"
        elif not is_matchable(name, **options) and abs(deviation) <= tolerance:
            note += f" (count within ±{tolerance:.0%} by coincidence)"
        rows.append(
            dict(
                method=label,
                knob=knob,
                knob_value=opts.get(knob) if knob else None,
                params=params,
                target=target,
                deviation=deviation,
                matched=matched,
                note=note,
            )
        )
    return rows


def format_budget_table(rows: list[dict]) -> str:
    lines = [f"{'method':<15}{'knob':<8}{'value':>10}{'params':>12}{'target':>12}{'dev':>9}  matched  note"]
    for r in rows:
        value = r["knob_value"]
        value = "" if value is None else (f"{value:.4f}" if isinstance(value, float) else str(value))
        lines.append(
            f"{r['method']:<15}{r['knob'] or '-':<8}{value:>10}{r['params']:>12,}{r['target']:>12,}"
            f"{r['deviation']:>+9.2%}  {str(r['matched']):<7}  {r['note']}"
        )
    return "\n".join(lines)


# the columns of `paper-repro budget --write` (one row per head; the README's budget table is rendered from them)
BUDGET_CSV_COLUMNS = ("backbone", "layers", "hidden", "extra_layers", "fuse_embeddings", "tolerance",
                      "method", "knob", "knob_value", "params", "target", "deviation", "matched", "note")


def budget_csv_rows(rows: list[dict], backbone: str, ctx: HeadContext, extra_layers: int, fuse_embeddings: bool,
                    tolerance: float) -> list[dict]:
    """`budget_table` rows with what they were solved for (backbone, its shape, budget layers, tolerance)."""
    layers = ctx.num_fused - int(fuse_embeddings)
    return [dict(backbone=backbone, layers=layers, hidden=ctx.hidden_size, extra_layers=extra_layers,
                 fuse_embeddings=fuse_embeddings, tolerance=tolerance, **row) for row in rows]


def write_budget_csv(rows: list[dict], path: Path) -> None:
    """Write `budget_csv_rows` to `path` atomically (byte-stable: `atomic_write_csv`)."""
    atomic_write_csv(rows, BUDGET_CSV_COLUMNS, path)
