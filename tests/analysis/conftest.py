"""A small synthetic study with known effects, written through the real store layout.

Test F1 of `last` at size index j, data_seed ds, seed s:  0.60 + 0.05 j + 0.01 (s - 2) + 0.005 ds.
    deeper    = last + 0.01 + tiny noise
    concat    = last + 0.04 + tiny noise
    dwatt     = last + 0.05 + tiny noise       (planted gain: 5 F1 points over last, 4 over deeper)
    scalarmix = last exactly                   (no gain)
    attnres   = last + symmetric noise (mean 0)
Dev curves: f(step) = final_dev * (log(step) / log(steps_total)), final_dev = test F1; the last eval point is
steps_total. Per-type F1 = overall F1 + type offset. Rows are protocol v2 (CELL_SCHEMA): `f1` is the headline
(default-mode) F1, `f1_strict` = f1 - 0.01; `stage` defaults to "" (an unstaged study).
"""
from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import numpy as np
import pytest

from paper_repro.results.schema import CELL_SCHEMA_V1, ENTITY_TYPES, cell_table
from paper_repro.results.store import write_cell

SIZES = (50, 100, 200)
DATA_SEEDS = (0, 1)
SEEDS = (0, 1, 2, 3, 4)
STEPS_TOTAL = 200
DEV_STEPS = (2, 6, 20, 63, 200)
METHOD_OFFSETS = {"last": 0.0, "deeper": 0.01, "concat": 0.04, "dwatt": 0.05, "scalarmix": 0.0, "attnres": 0.0}
NOISY = {"deeper": 0.002, "concat": 0.002, "dwatt": 0.002, "attnres": 0.01}
TYPE_OFFSETS = {"PER": 0.08, "LOC": 0.04, "ORG": -0.04, "MISC": -0.08}
LAYERS = ["L1", "L2", "L3", "L4", "L5", "L6"]


def last_f1(j: int, ds: int, s: int) -> float:
    return 0.60 + 0.05 * j + 0.01 * (s - 2) + 0.005 * ds


def method_f1(method: str, j: int, ds: int, s: int) -> float:
    base = last_f1(j, ds, s) + METHOD_OFFSETS.get(method, 0.02)
    scale = NOISY.get(method, 0.0)
    if scale:
        rng = np.random.default_rng(zlib.crc32(f"{method}-{j}-{ds}-{s}".encode()))
        # symmetric: paired (ds, s) sign flip keeps attnres' mean gain at ~0
        noise = rng.normal(0, scale) if method != "attnres" else scale * (1 if (s + ds) % 2 else -1) * (1 + s) / 5
        base += noise
    return float(base)


def row(run_id: str, method: str, size: int, ds: int, s: int, step: int, split: str, f1: float,
        backbone: str = "minilm-l6", sampler: str = "sentences", stage: str = "", protocol: int = 2) -> dict:
    r = {
        "run_id": run_id, "study": "synth", "stage": stage, "protocol": protocol, "backbone": backbone, "method": method, "finetune": "full", "pooling": "first",
        "fuse_embeddings": False, "head_params": {"last": 0, "scalarmix": 7}.get(method, 1_180_000),
        "budget_target": 1_185_000, "sampler": sampler, "size": size, "data_seed": ds, "seed": s,
        "backbone_lr": 5e-5, "head_lr": 1e-3, "steps_total": STEPS_TOTAL, "warmup_steps": 20, "batch_size": 8, "step": step,
        "examples_seen": 8 * step, "split": split, "eval_sentences": 1000 if split == "dev" else 3453,
        "f1": f1, "precision": f1, "recall": f1, "f1_strict": f1 - 0.01, "precision_strict": f1 - 0.01,
        "recall_strict": f1 - 0.01,
        "train_loss": 1.0 / step, "wall_clock_s": 0.05 * step * (1.5 if method == "dwatt" else 1.0),
        "eval_s": 1.0, "git_sha": "0" * 40, "git_dirty": False, "config_hash": "h", "subset_sha256": "s",
        "versions": "{}", "device": "cpu",
    }
    for t in ENTITY_TYPES:
        r[f"f1_{t}"] = min(1.0, max(0.0, f1 + TYPE_OFFSETS[t]))
    r["f1_by_type"] = {t: r[f"f1_{t}"] for t in ENTITY_TYPES}
    return r


def v1_rows(rows: list[dict]) -> list[dict]:
    """The same rows as protocol v1 wrote them (CELL_SCHEMA_V1: strict `f1`, `f1_default`, no stage/protocol)."""
    out = []
    for r in rows:
        v1 = {k: v for k, v in r.items() if k not in ("stage", "protocol", "warmup_steps", "f1_by_type")}
        v1.update(f1=r["f1_strict"], precision=r["precision_strict"], recall=r["recall_strict"], f1_default=r["f1"])
        for k in ("f1_strict", "precision_strict", "recall_strict"):
            del v1[k]
        out.append({name: v1[name] for name in CELL_SCHEMA_V1.names})
    return out


def cell_rows(run_id: str, method: str, size: int, ds: int, s: int, final: float, with_dev: bool = True,
              with_test: bool = True, **kw) -> list[dict]:
    rows = []
    if with_dev:
        for step in DEV_STEPS:
            rows.append(row(run_id, method, size, ds, s, step, "dev",
                            final * math.log(step) / math.log(STEPS_TOTAL), **kw))
    if with_test:
        rows.append(row(run_id, method, size, ds, s, STEPS_TOTAL, "test", final, **kw))
    return rows


def manifest(run_id: str, method: str, size: int, ds: int, s: int, backbone: str = "minilm-l6",
             sampler: str = "sentences") -> dict:
    m = {
        "run_id": run_id,
        "config": {"model": {"backbone": backbone, "head": {"name": method}},
                   "data": {"size": size, "sampler": sampler, "data_seed": ds}, "train": {"seed": s}},
        "budget": [{"method": method, "knob": "d_hidden", "knob_value": 96, "params": 1_180_000,
                    "target": 1_185_000, "deviation": -0.004, "matched": True, "note": ""}],
        "timings": {"load_s": 1.0, "tokenize_s": 0.5, "train_s": 10.0, "eval_s": 2.0, "total_s": 14.0,
                    "step_time_s": 0.05 * (1.5 if method == "dwatt" else 1.0)},
    }
    if method in ("dwatt", "attnres"):
        w = np.linspace(1, 2, len(LAYERS))
        m["depth_attention"] = {"layers": LAYERS, "per_type": {
            t: list((w ** (k + 1)) / (w ** (k + 1)).sum()) for k, t in enumerate([*ENTITY_TYPES, "ALL"])}}
    if method == "scalarmix":
        m["scalarmix_weights"] = {"layers": LAYERS, "weights": [1 / len(LAYERS)] * len(LAYERS)}
    return m


def write_study(results_dir: Path, study: str = "synth", methods=tuple(METHOD_OFFSETS), sizes=SIZES,
                data_seeds=DATA_SEEDS, seeds=SEEDS, with_dev: bool = True, with_manifest: bool = True,
                stage: str = "", offset: float = 0.0) -> Path:
    """Write the synthetic cells (through the real store). `stage` tags every cell (run ids get a `-<stage>`
    suffix when it is set); `offset` is added to every F1 (to tell stages apart)."""
    for j, size in enumerate(sizes):
        for ds in data_seeds:
            for s in seeds:
                for method in methods:
                    run_id = f"{method}-n{size}-d{ds}-s{s}" + (f"-{stage}" if stage else "")
                    rows = cell_rows(run_id, method, size, ds, s, method_f1(method, j, ds, s) + offset,
                                     with_dev=with_dev, stage=stage)
                    man = manifest(run_id, method, size, ds, s) if with_manifest else {}
                    write_cell(results_dir, study, run_id, cell_table(rows), man)
    if not with_manifest:
        for file in (results_dir / study / "cells").glob("*.manifest.json"):
            file.write_text(json.dumps({}))
    return results_dir / study


def write_full_stage(results_dir: Path, study: str, test_f1: dict[str, list[float]], stage: str = "eval_full",
                     sampler: str = "full") -> Path:
    """Cells on the full training set (sampler `full`, size 0, data_seed = seed, as the frozen study's `eval_full`):
    `test_f1[method][seed]` is the planted test F1 of that method at that seed (dev curves as above)."""
    for method, values in test_f1.items():
        for s, f1 in enumerate(values):
            run_id = f"{method}-full0-d{s}-s{s}-{stage}"
            rows = cell_rows(run_id, method, 0, s, s, f1, stage=stage, sampler=sampler)
            write_cell(results_dir, study, run_id, cell_table(rows), manifest(run_id, method, 0, s, s, sampler=sampler))
    return results_dir / study


@pytest.fixture(scope="session")
def synth_study(tmp_path_factory) -> Path:
    """Full synthetic study: 6 methods x 3 sizes x 2 data seeds x 5 seeds (10 pairs per size)."""
    return write_study(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="session")
def synth_report(synth_study, tmp_path_factory) -> Path:
    """build_report on the full synthetic study, into a separate folder (REPORT.md, figures/, tables/)."""
    from paper_repro.analysis.report import build_report

    return build_report(synth_study, out_dir=tmp_path_factory.mktemp("report"))


# --------------------------------------------------------------------------------------------- lr sensitivity
# A tuning stage (sizes 100 and 1000, tuning seeds 100 and 101, three head lrs) with planted final dev and test F1
# per (method, lr); seed 100 is 0.005 lower and seed 101 0.005 higher, so means and paired differences are the
# planted values. At size 100 dwatt's best dev lr (1e-3, the one selected) is not its best test lr (3e-4: 2 points
# more), and dwatt - deeper (+4 at the selected lrs) flips sign when deeper runs at 1e-4.
TUNE_LRS = (1e-4, 3e-4, 1e-3)
TUNE_F1 = {  # (method, size) -> {lr: (dev, test)}
    ("deeper", 100): {1e-4: (0.50, 0.60), 3e-4: (0.52, 0.50), 1e-3: (0.55, 0.52)},
    ("dwatt", 100): {1e-4: (0.50, 0.51), 3e-4: (0.53, 0.58), 1e-3: (0.58, 0.56)},
    ("deeper", 1000): {1e-4: (0.70, 0.70), 3e-4: (0.74, 0.73), 1e-3: (0.72, 0.71)},
    ("dwatt", 1000): {1e-4: (0.71, 0.71), 3e-4: (0.76, 0.75), 1e-3: (0.75, 0.76)},
}
TUNE_SELECTION_CSV = (
    "backbone,method,bracket,tuned_at,head_lr,n,dev_f1_mean,selected,stage\n"
    + "".join(f"minilm-l6,{m},{'small' if size == 100 else 'large'},size={size},{lr:g},2,{dev},"
              f"{lr == (1e-3 if size == 100 else 3e-4)},eval\n"
              for (m, size), grid in TUNE_F1.items() for lr, (dev, _) in grid.items()))


def tune_cells(stage: str = "tune") -> dict[str, list[dict]]:
    """run_id -> rows of the planted tuning stage (dev curve ending at the planted dev F1, a test row)."""
    out = {}
    for (method, size), grid in TUNE_F1.items():
        for lr, (dev, test) in grid.items():
            for seed, shift in ((100, -0.005), (101, 0.005)):
                run_id = f"{method}-n{size}-d{seed}-lr{lr:g}-{stage}"
                rows = [row(run_id, method, size, seed, seed, step, "dev",
                            (dev + shift) * math.log(step) / math.log(STEPS_TOTAL), stage=stage) for step in DEV_STEPS]
                rows.append(row(run_id, method, size, seed, seed, STEPS_TOTAL, "test", test + shift, stage=stage))
                for r in rows:
                    r["head_lr"] = lr
                out[run_id] = rows
    return out


def write_tune_stage(results_dir: Path, study: str) -> Path:
    for run_id, rows in tune_cells().items():
        write_cell(results_dir, study, run_id, cell_table(rows), {})
    (results_dir / study / "selection.csv").write_text(TUNE_SELECTION_CSV)
    return results_dir / study
