"""Where a cell's results live, and atomic writes so that a killed process never leaves a file taken as done.

Layout under `<results_dir>/<study>/`:
    cells/<run_id>.parquet        long-format rows (CELL_SCHEMA)
    cells/<run_id>.manifest.json  resolved config, budget table, versions, timings, depth attention
    cells/<run_id>.diff           only when run from a dirty checkout: its uncommitted changes (manifest
                                  `git.diff_file`, `git.diff_sha256`)
    cells/<run_id>.done           written last: a cell is done iff its marker and parquet exist
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from paper_repro.atomic import atomic_write_bytes
from paper_repro.results.schema import check_schema


PROGRESS_FILE = "PROGRESS.md"   # results/<study>/PROGRESS.md: progress per stage (`paper-repro status --write`)
STOP_FILE = "STOP"              # results/<study>/STOP: sweepers of the study finish their cell and start no other
VERIFY_FILE = "verify.csv"      # results/<study>/verify.csv: re-runs of committed cells (`paper-repro verify --record`)


def study_dir(results_dir: str | Path, study: str) -> Path:
    return Path(results_dir) / study


def cell_paths(results_dir: str | Path, study: str, run_id: str) -> dict[str, Path]:
    cells = study_dir(results_dir, study) / "cells"
    return {
        "parquet": cells / f"{run_id}.parquet",
        "manifest": cells / f"{run_id}.manifest.json",
        "diff": cells / f"{run_id}.diff",
        "done": cells / f"{run_id}.done",
    }


def atomic_write_parquet(table: pa.Table, path: Path) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def atomic_write_json(obj: Any, path: Path) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def write_cell(results_dir: str | Path, study: str, run_id: str, table: pa.Table, manifest: dict,
               diff: str | None = None) -> Path:
    """Parquet, (diff,) manifest, then the done marker: the marker's presence means all are complete.

    `diff`: the uncommitted changes the cell ran with (`manifest.git_diff()`), written to `<run_id>.diff`
    beside the manifest, whose `git` entry gets `diff_file` (that name) and `diff_sha256`; without one a
    stale diff of an earlier run of the cell is removed."""
    check_schema(table, run_id)
    paths = cell_paths(results_dir, study, run_id)
    atomic_write_parquet(table, paths["parquet"])
    if diff is not None:
        data = diff.encode()
        atomic_write_bytes(paths["diff"], data)
        git = {**manifest.get("git", {}), "diff_file": paths["diff"].name,
               "diff_sha256": hashlib.sha256(data).hexdigest()}
        manifest = {**manifest, "git": git}
    else:
        paths["diff"].unlink(missing_ok=True)
    atomic_write_json(manifest, paths["manifest"])
    atomic_write_bytes(paths["done"], b"")
    return paths["parquet"]


def stop_file(results_dir: str | Path, study: str) -> Path:
    """`results/<study>/STOP`: while it exists, local sweepers and Slurm tasks of the study start no new cell (the
    cell in flight finishes and is written); delete it to let sweeps run again."""
    return study_dir(results_dir, study) / STOP_FILE


def is_done(results_dir: str | Path, study: str, run_id: str) -> bool:
    paths = cell_paths(results_dir, study, run_id)
    return paths["done"].exists() and paths["parquet"].exists()
