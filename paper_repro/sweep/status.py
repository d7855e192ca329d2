"""A study's progress per axis (`paper-repro status results/<study> [--study <study.yaml>]`): done, running
(a live claim), failed and pending cells; with the study file, every cell it expands to (stages whose selection
or budget-check gate is not ready are counted as waiting). Lives with the sweep: it reads the study grid, the
selections and the claims; results/collect.py stays below it (done cells and their tables only).
"""
from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path
from typing import Any

from paper_repro.results.collect import AXES, AXIS_COLUMNS, _not_a_study, done_run_ids, read_cell
from paper_repro.results.schema import SchemaError
from paper_repro.results.store import PROGRESS_FILE, STOP_FILE

def _size_label(sampler: str, size: Any) -> str:
    return "full" if sampler == "full" else f"{sampler}{size}"


def status(study_dir: str | Path, study: str | Path | None = None) -> str:
    """Progress per axis (backbone, method, size, data_seed, seed): done/total with a study file, else done counts."""
    study_dir = Path(study_dir)
    from paper_repro.sweep import claims

    failures = {p.stem for p in (study_dir / "failures").glob("*.txt")}
    claimed = {p.name[: -len(".claim")] for p in (study_dir / "claims").glob("*.claim")}
    done = set(done_run_ids(study_dir))
    if study is not None:
        from paper_repro.sweep.grid import cell_axes

        loaded, _, cells, every = expanded(study_dir, study)
        rows = []
        from paper_repro.sweep.select import gate_blocker

        failed_gates, seen_why = [], set()
        for stage in loaded.stages:
            blocker = gate_blocker(loaded, stage.name)
            if blocker is not None and blocker[0] == "failed" and blocker[1] not in seen_why:
                seen_why.add(blocker[1])
                failed_gates.append((stage.name, blocker[1]))
        waiting = len(every) - len(cells)
        from paper_repro.sweep.cost import describe_both, timed_cells

        pending = [c for c in every if c.run_id not in done]
        remaining = (len(pending), describe_both(timed_cells(study_dir), pending))
        for cell in cells:
            axes = {"stage": cell.stage, **cell_axes(cell)} if loaded.stages else cell_axes(cell)
            rid = cell.run_id
            state = ("done" if rid in done else
                     "running" if rid in claimed and claims.cell_claim_status(study_dir, rid) == "claimed" else
                     "failed" if rid in failures else "pending")
            rows.append({**axes, "size": _size_label(axes["sampler"], axes["size"]), "state": state})
        extra = len(done - {c.run_id for c in cells})
    else:
        rows, waiting, failed_gates, remaining = [], 0, [], None
        for rid in sorted(done):
            table = read_cell(study_dir, rid, columns=AXIS_COLUMNS)
            first = {k: table.column(k)[0].as_py() for k in AXIS_COLUMNS} if table.num_rows else {}
            if not first:
                continue
            rows.append({**first, "size": _size_label(first["sampler"], first["size"]), "state": "done"})
        extra = 0
    counts = collections.Counter(r["state"] for r in rows)
    with_totals = study is not None
    head = f"study {study_dir.name}: {counts['done']}" + (f"/{len(rows)} done" if with_totals else " done")
    if with_totals:
        head += f", {counts['running']} running, {counts['failed']} failed, {counts['pending']} pending"
    else:
        head += f", {len(claimed)} claimed, {len(failures - done)} failed"
    lines = [head]
    if (study_dir / STOP_FILE).exists():
        lines.append(f"{study_dir / STOP_FILE} exists: sweepers of this study start no new cell (delete it to go on)")
    if with_totals and waiting:
        lines.append(f"{waiting} more cells wait for a selection or a budget-check gate of an earlier stage "
                     f"(not counted above)")
    lines += [f"GATE FAILED before stage {name}: {why}" for name, why in failed_gates]
    if remaining is not None and remaining[0]:
        lines.append(f"still to run: {remaining[0]} cells; {remaining[1]}")
    if extra:
        lines.append(f"({extra} done cells in {study_dir} are not in {study})")
    for axis in (("stage",) if rows and "stage" in rows[0] else ()) + tuple(AXES):
        per: dict[Any, collections.Counter] = collections.defaultdict(collections.Counter)
        for r in rows:
            per[r[axis]][r["state"]] += 1
        if not per:
            continue
        keys = sorted(per, key=lambda v: (_sort_key(v), str(v)))
        if axis == "stage" and study is not None:   # stages in the study's (run) order, not alphabetical
            order = [s.name for s in loaded.stages]
            keys = sorted(per, key=lambda v: order.index(v) if v in order else len(order))
        lines.append("")
        lines.append(f"{axis}:")
        width = max(len(str(k)) for k in keys)
        for key in keys:
            c = per[key]
            total = sum(c.values())
            if with_totals:
                extra_states = ", ".join(f"{c[s]} {s}" for s in ("running", "failed") if c[s])
                bar = _bar(c["done"] / total if total else 0)
                lines.append(f"  {str(key).ljust(width)}  {c['done']:>4}/{total:<4} {bar}"
                             + (f"  ({extra_states})" if extra_states else ""))
            else:
                lines.append(f"  {str(key).ljust(width)}  {c['done']:>4}")
    failed_list = sorted(failures - done)
    if failed_list:
        lines.append("")
        lines.append("failed (tracebacks in failures/):")
        lines += [f"  {rid}" for rid in failed_list[:20]]
        if len(failed_list) > 20:
            lines.append(f"  ... {len(failed_list) - 20} more")
    return "\n".join(lines)


def _sort_key(value: Any) -> tuple:
    import re

    if isinstance(value, (int, float)):
        return (0, value)
    match = re.match(r"^([a-z]+)(\d+)$", str(value))
    if match:
        return (1, match.group(1), int(match.group(2)))
    return (2, str(value))


def _left(todo: list, cost) -> str:
    """A stage's compute left: '–' when none is (or no CPU time to price it in), 'unknown'/'unpriced' when nothing
    prices it, '≥ x' when some of it is unpriced (sweep/cost.py never prices a cell at another backbone's cost)."""
    from paper_repro.sweep.cost import duration

    if not todo or cost is None:   # nothing left, or no done cell recorded CPU time
        return "–"
    if not cost.timed:
        return "unknown"
    if cost.unpriced == len(todo):
        return "unpriced"
    return f"≥ {duration(cost.seconds)} (+{cost.unpriced} unpriced)" if cost.unpriced else duration(cost.seconds)


def _bar(fraction: float, width: int = 20) -> str:
    filled = int(round(fraction * width))
    return "[" + "#" * filled + "." * (width - filled) + "]"



def expanded(study_dir: Path, study: str | Path, parts: dict[str, str] | None = None):
    """(study, selections made now, its runnable cells, every cell incl. those waiting for a selection or gate)
    of the study file `study` whose results are in `study_dir`; ValueError when they do not match. `parts`, if
    given, is filled with run_id -> sub-grid label for the cells of stages with labelled sub-grids (grid.expand)."""
    from paper_repro.sweep.grid import load_study
    from paper_repro.sweep.select import selections_for

    loaded = load_study(study, [f"results_dir={Path(study_dir).parent}"])
    if loaded.study != Path(study_dir).name:
        raise ValueError(f"{study}: study {loaded.study!r} does not match the directory {study_dir}")
    selections = selections_for(loaded)
    cells = loaded.expand(selections=selections)
    every = loaded.expand(selections=selections, pending="placeholder", parts=parts) if loaded.stages else cells
    return loaded, selections, cells, every


def progress_markdown(study_dir: str | Path, study: str | Path) -> str:
    """The study's progress per stage as markdown (committed as `results/<study>/PROGRESS.md`; the README quotes
    it): cells done of all (those waiting for a selection or gate counted), failed, and the compute the rest is
    estimated to take (cost.py); a stage with labelled sub-grids (which set the order its cells run in) gets a row
    per sub-grid under its own. Only done/failed/pending states: nothing that changes while cells run."""
    from paper_repro.sweep.cost import UNPRICED_WHY, cpu_estimate, duration, estimate, timed_cells
    from paper_repro.sweep.select import gate_blocker

    study_dir = Path(study_dir)
    parts: dict[str, str] = {}
    loaded, selections, _, every = expanded(study_dir, study, parts)
    done = set(done_run_ids(study_dir))
    failures = {p.stem for p in (study_dir / "failures").glob("*.txt")} - done
    timed = timed_cells(study_dir)
    rows, left_s, left_n, unpriced = [], 0.0, 0, 0
    for stage in loaded.stages or [None]:
        cells = [c for c in every if stage is None or c.stage == stage.name]
        todo = [c for c in cells if c.run_id not in done]
        cost = estimate(timed, todo)
        cpu = cpu_estimate(timed, todo)
        left_s, left_n, unpriced = left_s + cost.seconds, left_n + len(todo), unpriced + cost.unpriced
        blocker = gate_blocker(loaded, stage.name) if stage is not None else None
        state = ("complete" if not todo else
                 "gate failed" if blocker and blocker[0] == "failed" else
                 "waits for a gate" if blocker else
                 "waits for its selection" if stage is not None and stage.select is not None
                 and stage.name not in selections else "runnable")
        rows.append(f"| {stage.name if stage else '(all)'} | {len(cells) - len(todo)}/{len(cells)} | "
                    f"{sum(c.run_id in failures for c in cells)} | "
                    f"{_left(todo, cost)} | {_left(todo, cpu)} | {state} |")
        for label in dict.fromkeys(parts[c.run_id] for c in cells if c.run_id in parts):   # in the YAML's order
            part = [c for c in cells if parts.get(c.run_id) == label]   # the sub-grids set the order cells run in
            part_todo = [c for c in part if c.run_id not in done]
            name = label.replace("|", r"\|")
            rows.append(f"| {stage.name} · {name} | {len(part) - len(part_todo)}/{len(part)} | "
                        f"{sum(c.run_id in failures for c in part)} | {_left(part_todo, estimate(timed, part_todo))} | "
                        f"{_left(part_todo, cpu_estimate(timed, part_todo))} | "
                        f"{'complete' if not part_todo else state} |")
    cpu = cpu_estimate(timed, [c for c in every if c.run_id not in done])
    in_cpu = (f"; in CPU time, {'at least ' if cpu.unpriced else ''}{duration(cpu.seconds)} (the same model on the "
              f"{cpu.timed} done cells that recorded their CPU time; it does not move with the load"
              f"{f'; {cpu.unpriced} cells unpriced' if cpu.unpriced else ''})" if cpu is not None else "")
    unpriced_note = f"; {unpriced} cells are unpriced, not in these sums ({UNPRICED_WHY})" if unpriced else ""
    rest = (f"the other {left_n} are estimated at {'at least ' if unpriced else ''}{duration(left_s)} of compute, "
            f"priced from {len(timed)} done cells' time per step at each cell's step budget, at the load they ran "
            f"under{in_cpu}{unpriced_note}" if left_n else "complete")
    lines = [f"Study `{loaded.study}` (`{study}`): {len(done & {c.run_id for c in every})}/{len(every)} cells done; "
             f"{rest} (`paper-repro status {study_dir} --study {study}`).",
             "", "| stage | cells done | failed | compute left (est.) | CPU time left (est.) | state |",
             "|---|---:|---:|---:|---:|---|", *rows]
    return "\n".join(lines) + "\n"


def add_status_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("study_dir", help="results/<study>")
    parser.add_argument("--study", default=None, help="the study file, for done/total per axis")
    parser.add_argument("--write", action="store_true",
                        help=f"with --study: also write <study_dir>/{PROGRESS_FILE} (progress per stage, for the README)")
    return parser


def status_main(args: argparse.Namespace) -> int:
    """0: printed; 2: not a study folder (without --study), a bad study file or an unreadable cell."""
    from paper_repro.config import ConfigError

    problem = None if args.study else _not_a_study(Path(args.study_dir))
    if problem is not None:  # (with --study, a folder the sweep has not created yet is fine: all cells pending)
        print(f"paper-repro: error: {problem}", file=sys.stderr)
        return 2
    if getattr(args, "write", False) and not args.study:
        print("paper-repro: error: status --write needs --study", file=sys.stderr)
        return 2
    try:
        print(status(args.study_dir, args.study))
        if getattr(args, "write", False):
            from paper_repro.results.store import atomic_write_bytes

            path = Path(args.study_dir) / PROGRESS_FILE
            atomic_write_bytes(path, progress_markdown(args.study_dir, args.study).encode())
            print(f"wrote {path}")
    except (ConfigError, SchemaError, ValueError) as error:
        print(f"paper-repro: error: {error}", file=sys.stderr)
        return 2
    return 0
