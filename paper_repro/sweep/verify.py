"""`paper-repro verify results/<study>`: re-run committed cells from their manifests and compare the metrics.

What a reproducer wants first: take a sample of a study's done cells (or all of them), rebuild each cell's
config from its manifest, train it again into a scratch results directory, and report per cell the largest
absolute difference of every metric over all its (split, step) rows against the committed parquet. A cell
passes when that difference is within `--tolerance` (F1 units). Cells written under protocol v1 cannot be
re-run by this code (their config schema predates v2) and are refused, never silently re-interpreted.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paper_repro.config import CellConfig, ConfigError, apply_overrides, flatten
from paper_repro.results.collect import done_run_ids, read_cell

COMPARED = ("f1", "precision", "recall", "f1_strict", "precision_strict", "recall_strict", "train_loss")
DEFAULT_TOLERANCE = 0.005   # F1 units (half a point); see README "Reproducing a cell"


@dataclass
class Verdict:
    run_id: str
    rows: int
    max_diff: float
    worst: str
    ok: bool
    seconds: float
    ran_at: str = ""          # the commit (and device) the committed cell recorded
    rerun_at: str = ""        # the commit (and device) of the re-run


RECORD_COLUMNS = ["run_id", "ran_at", "rerun_at", "rows", "max_diff", "worst", "tolerance", "ok", "date"]


def record(study_dir: Path, verdicts: list[Verdict], tolerance: float, date: str | None = None) -> Path:
    """Append the verdicts to `<study_dir>/verify.csv` (store.VERIFY_FILE; the README shows it under the study):
    which cell, the code and device it ran with and those of the re-run, the largest difference and where."""
    import datetime as dt

    import pandas as pd

    from paper_repro.results.store import VERIFY_FILE, atomic_write_bytes

    path = Path(study_dir) / VERIFY_FILE
    date = date or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    rows = pd.DataFrame([{"run_id": v.run_id, "ran_at": v.ran_at, "rerun_at": v.rerun_at, "rows": v.rows,
                          "max_diff": v.max_diff, "worst": v.worst or "identical", "tolerance": tolerance,
                          "ok": v.ok, "date": date} for v in verdicts], columns=RECORD_COLUMNS)
    if path.exists():
        rows = pd.concat([pd.read_csv(path), rows], ignore_index=True)
    atomic_write_bytes(path, rows.to_csv(index=False, float_format="%.3g").encode())
    return path


def provenance(study_dir: Path, run_id: str) -> str:
    """`<commit> [+ diff] on <device> [(<CPU model (kernel set)>)]` of a cell, from its manifest ("unknown" if
    unreadable); the CPU's kernel set (AVX2, AVX512) where the manifest recorded it: fp32 results may differ in
    the last bits between them."""
    try:
        manifest = json.loads((Path(study_dir) / "cells" / f"{run_id}.manifest.json").read_text())
    except (OSError, ValueError):
        return "unknown"
    git = manifest.get("git") or {}
    sha = str(git.get("sha") or "unknown")[:12] + (" + diff" if git.get("dirty") else "")
    cpu = f" ({manifest['cpu']})" if manifest.get("cpu") else ""
    return f"{sha} on {manifest.get('device', 'unknown device')}{cpu}"


def manifest_config(study_dir: Path, run_id: str) -> CellConfig:
    """The cell's config exactly as its manifest stored it; a manifest from an older config schema is refused."""
    path = study_dir / "cells" / f"{run_id}.manifest.json"
    try:
        stored = json.loads(path.read_text())["config"]
    except (OSError, ValueError, KeyError) as error:
        raise ConfigError(f"{path}: no readable config in the manifest ({error})") from None
    current = set(flatten(CellConfig().to_dict()))
    later = set(CellConfig.NON_IDENTITY_KEYS) | set(getattr(CellConfig, "OMITTED_AT_DEFAULT", ()))
    missing = sorted(current - set(flatten(stored)) - later)   # keys added later at a hash-neutral default are fine
    if missing:
        raise ConfigError(f"{path}: written by an older config schema (protocol v1: no {missing[0]}); "
                          f"this code cannot re-run it as it was run")
    config = CellConfig.from_dict(stored)
    if config.run_id != run_id:
        raise ConfigError(f"{path}: the stored config hashes to {config.run_id}, not {run_id}")
    return config


def compare(study_dir: Path, run_id: str, scratch_study_dir: Path) -> tuple[int, float, str]:
    """(rows compared, largest |difference|, where) between the committed cell and its re-run."""
    committed = read_cell(study_dir, run_id).to_pandas().set_index(["split", "step"]).sort_index()
    rerun = read_cell(scratch_study_dir, run_id).to_pandas().set_index(["split", "step"]).sort_index()
    if list(committed.index) != list(rerun.index):
        return len(committed), float("inf"), f"eval points differ: {list(committed.index)} vs {list(rerun.index)}"
    worst, where = 0.0, ""
    for column in COMPARED:
        a, b = committed[column].to_numpy(float), rerun[column].to_numpy(float)
        both_nan = np.isnan(a) & np.isnan(b)
        diff = np.where(both_nan, 0.0, np.abs(a - b))
        diff = np.where(np.isnan(diff), np.inf, diff)
        if diff.size and diff.max() > worst:
            i = int(diff.argmax())
            split, step = committed.index[i]
            worst, where = float(diff.max()), f"{column} at {split} step {int(step)}"
    return len(committed), worst, where


def verify(study_dir: str | Path, *, sample: int | None = 2, run_ids: list[str] = (), seed: int = 0,
           tolerance: float = DEFAULT_TOLERANCE, scratch: str | Path | None = None, log=print) -> list[Verdict]:
    """Re-run `run_ids` (or `sample` done cells drawn with `seed`; None = all) and compare; returns verdicts."""
    import time

    from paper_repro.train.cell import run_cell

    study_dir = Path(study_dir)
    done = done_run_ids(study_dir)
    if not done:
        raise ConfigError(f"{study_dir}: no done cells to verify")
    chosen = list(run_ids) or (done if sample is None or sample >= len(done)
                               else sorted(random.Random(seed).sample(done, sample)))
    unknown = sorted(set(chosen) - set(done))
    if unknown:
        raise ConfigError(f"{study_dir}: no done cell {unknown[0]}")
    configs = {run_id: manifest_config(study_dir, run_id) for run_id in chosen}  # refuse before training
    scratch = Path(scratch) if scratch else Path(tempfile.mkdtemp(prefix="paper-repro-verify-"))

    verdicts = []
    for i, (run_id, config) in enumerate(configs.items(), 1):
        log(f"[verify] {i}/{len(configs)} {run_id}: re-running into {scratch}")
        started = time.perf_counter()
        config = apply_overrides(config, {"results_dir": str(scratch)})
        run_cell(config)
        rows, worst, where = compare(study_dir, run_id, scratch / config.study)
        verdict = Verdict(run_id, rows, worst, where, worst <= tolerance, time.perf_counter() - started,
                          provenance(study_dir, run_id), provenance(scratch / config.study, run_id))
        log(f"[verify] {run_id}: max |diff| {worst:.2g} ({where or 'identical'}) -> "
            f"{'OK' if verdict.ok else 'DIFFERENT'} (tolerance {tolerance:g}); ran at {verdict.ran_at}, "
            f"re-run at {verdict.rerun_at}")
        verdicts.append(verdict)
    return verdicts


def add_verify_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("study_dir", help="results/<study> with committed cells")
    parser.add_argument("--sample", default="2", help="how many done cells to re-run (an integer, or 'all')")
    parser.add_argument("--run-id", action="append", default=[], help="re-run this cell (repeatable)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help=f"largest accepted |difference| of any metric (default {DEFAULT_TOLERANCE})")
    parser.add_argument("--scratch", help="results directory for the re-runs (default: a new temp dir)")
    parser.add_argument("--record", action="store_true",
                        help="append the verdicts to <study_dir>/verify.csv (shown under the study in the README)")
    return parser


def verify_main(args: argparse.Namespace) -> int:
    """0: every re-run within tolerance; 1: some differ; 2: bad input."""
    if args.sample == "all":
        sample = None
    else:
        try:
            sample = int(args.sample)
        except ValueError:
            sample = 0
        if sample < 1:
            raise ConfigError(f"--sample {args.sample!r}: expected a positive integer or 'all'")
    verdicts = verify(args.study_dir, sample=sample, run_ids=args.run_id, seed=args.seed,
                      tolerance=args.tolerance, scratch=args.scratch)
    if getattr(args, "record", False):
        print(f"[verify] recorded in {record(Path(args.study_dir), verdicts, args.tolerance)}")
    bad = [v for v in verdicts if not v.ok]
    print(f"[verify] {len(verdicts) - len(bad)} of {len(verdicts)} cells reproduce within {args.tolerance:g}"
          + (f"; different: {', '.join(v.run_id for v in bad)}" if bad else ""), file=sys.stderr if bad else sys.stdout)
    return 1 if bad else 0
