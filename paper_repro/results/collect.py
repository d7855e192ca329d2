"""Merge a study's done cells into one table (a study's progress per axis: paper_repro/sweep/status.py).

`collect(results/<study>)` reads every cell that has its done marker (a parquet without marker is a killed or
running cell and is ignored), checks each file against CELL_SCHEMA, upgrading protocol v1 cells
(CELL_SCHEMA_V1) and v2 cells written before the `finetune` column through `upgrade_table` (any other schema
is a SchemaError naming the file), and writes
`results/<study>/results.parquet` (v2) atomically.
"""
from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from paper_repro.results.schema import CELL_SCHEMA, SchemaError, check_schema, upgrade_table
from paper_repro.results.store import atomic_write_parquet

AXES = ("backbone", "method", "size", "data_seed", "seed")
AXIS_COLUMNS = ["backbone", "method", "sampler", "size", "data_seed", "seed"]


def done_run_ids(study_dir: str | Path) -> list[str]:
    """Run ids with both a done marker and a parquet, sorted."""
    cells = Path(study_dir) / "cells"
    if not cells.is_dir():
        return []
    return sorted(p.name[: -len(".done")] for p in cells.glob("*.done")
                  if (cells / (p.name[: -len(".done")] + ".parquet")).exists())


def read_cell(study_dir: str | Path, run_id: str, columns: list[str] | None = None) -> pa.Table:
    """A done cell's table in CELL_SCHEMA (older cells upgraded), or only `columns` of it (v2 names)."""
    path = Path(study_dir) / "cells" / f"{run_id}.parquet"
    try:
        old = not pq.read_schema(path).equals(CELL_SCHEMA, check_metadata=False)
        table = pq.read_table(path, columns=None if old else columns)  # an older cell is upgraded whole
    except (OSError, pa.ArrowInvalid) as error:
        raise SchemaError(f"{path}: unreadable parquet ({str(error).splitlines()[0]})") from None
    if columns is None or old:
        table = upgrade_table(table, str(path))  # v2 as is, v1 converted, else SchemaError
        ids = set(table.column("run_id").to_pylist())
        if ids - {run_id}:
            raise SchemaError(f"{path}: rows of run_id {sorted(ids - {run_id})[0]!r} in the file of {run_id}")
        if columns is not None:
            missing = sorted(set(columns) - set(table.schema.names))
            if missing:
                raise SchemaError(f"{path}: no columns {missing} in CELL_SCHEMA")
            table = table.select(columns)
    return table


def collect(study_dir: str | Path, output: str | Path | None = None) -> Path:
    """Merge all done cells into `<study_dir>/results.parquet` (or `output`); returns its path."""
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise FileNotFoundError(f"{study_dir}: no such study directory")
    tables = [read_cell(study_dir, run_id) for run_id in done_run_ids(study_dir)]
    merged = pa.concat_tables(tables) if tables else CELL_SCHEMA.empty_table()
    check_schema(merged, "merged table")
    out = Path(output) if output is not None else study_dir / "results.parquet"
    atomic_write_parquet(merged, out)
    return out


# ----------------------------------------------------------------------------------------------------------
def add_collect_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("study_dir", help="results/<study>")
    parser.add_argument("--output", default=None, help="default: <study_dir>/results.parquet")
    return parser


def collect_main(args: argparse.Namespace) -> int:
    """0: written; 1: a cell file is unreadable or of another schema; 2: no study directory / no finished cells
    (nothing is written then)."""
    study_dir = Path(args.study_dir)
    problem = _not_a_study(study_dir)
    if problem is None and not done_run_ids(study_dir):
        partial = len(list((study_dir / "cells").glob("*.parquet"))) if (study_dir / "cells").is_dir() else 0
        problem = (f"{study_dir}: no finished cells to collect"
                   + (f" ({partial} parquet files without a done marker: running or killed cells)" if partial else "")
                   + "; nothing written")
    if problem is not None:
        print(f"paper-repro: error: {problem}", file=sys.stderr)
        return 2
    try:
        path = collect(study_dir, getattr(args, "output", None))
    except (SchemaError, FileNotFoundError) as error:
        print(f"paper-repro: error: {error}", file=sys.stderr)
        return 1
    rows = pq.read_metadata(path).num_rows
    print(f"{path}: {len(done_run_ids(args.study_dir))} cells, {rows} rows")
    return 0


STUDY_FOLDERS = ("cells", "claims", "failures")


def _not_a_study(study_dir: Path) -> str | None:
    """Why `study_dir` is not a study's results folder (None if it is one): missing, or none of cells/, claims/,
    failures/ in it (then the study folders below it are named, e.g. for `results` instead of `results/smoke`)."""
    if not study_dir.exists():
        siblings = sorted(p.name for p in study_dir.parent.iterdir()
                          if p.is_dir() and any((p / f).is_dir() for f in STUDY_FOLDERS)) if study_dir.parent.is_dir() else []
        close = difflib.get_close_matches(study_dir.name, siblings, n=1)
        hint = f" (did you mean {study_dir.parent / close[0]}?)" if close else ""
        return f"{study_dir}: no such study directory{hint}"
    if not study_dir.is_dir():
        return f"{study_dir}: not a directory"
    if not any((study_dir / f).is_dir() for f in STUDY_FOLDERS):
        below = sorted(p.name for p in study_dir.iterdir() if p.is_dir() and any((p / f).is_dir() for f in STUDY_FOLDERS))
        hint = f" (studies in it: {', '.join(below[:8])}{' ...' if len(below) > 8 else ''})" if below else ""
        return f"{study_dir}: not a study's results folder (no cells/, claims/ or failures/ in it){hint}"
    return None
