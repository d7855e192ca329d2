"""Helpers for sweep tests: tiny study files, a fake cell runner (writes schema-valid results without training)
for fast machinery tests, sweep subprocesses and kill -9 / resume checks.

The invented CoNLL fixture and the tiny random BERT come from `tests/fixtures.py` (shared with tests/conftest.py).
"""
from __future__ import annotations

import collections
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from fixtures import write_conll_fixture, write_tiny_bert

HERE = Path(__file__).resolve().parent


def tiny_study(study: str, results_dir: str | Path, *, backbone: str = "minilm-l6", data_dir: str | Path | None = None,
               subset_dir: str | Path | None = None, methods: tuple[str, ...] = ("last", "dwatt"),
               data_seeds: tuple[int, ...] = (0, 1), steps: int = 5, launcher: dict | None = None) -> dict[str, Any]:
    """A 4-cell study (2 methods x 2 data seeds) as a dict, deterministic, ~5 steps."""
    base: dict[str, Any] = {
        "results_dir": str(results_dir),
        "model": {"backbone": str(backbone), "max_length": 64},
        "data": {"sampler": "sentences", "size": 8, "dev_subsample": 0},
        "train": {"step_rule": "fixed", "steps": steps, "warmup_steps": 1, "eval_points": 2, "batch_size": 4,
                  "eval_batch_size": 16, "deterministic": True},
    }
    if data_dir is not None:
        base["data"]["data_dir"] = str(data_dir)
    if subset_dir is not None:
        base["data"]["subset_dir"] = str(subset_dir)
    return {
        "study": study,
        "base": base,
        "grid": {"model.head.name": list(methods), "data.data_seed": list(data_seeds)},
        "launcher": launcher or {"time_min": 10, "cpus_per_task": 1, "mem_gb": 1, "array_parallelism": 2},
    }


def write_study(path: str | Path, study: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def tiny_real_setup(root: str | Path, study: str = "tiny") -> dict[str, Path]:
    """CoNLL fixture + tiny BERT + a 4-cell study file under `root` for the real `run_cell`."""
    root = Path(root)
    data = write_conll_fixture(root / "conll")
    bert = write_tiny_bert(root / "tiny-bert")
    path = write_study(root / f"{study}.yaml",
                       tiny_study(study, root / "results", backbone=bert, data_dir=data, subset_dir=root / "subsets"))
    return {"data": data, "backbone": bert, "study": path, "results": root / "results", "study_dir": root / "results" / study}


# ----------------------------------------------------------------------------------------------------------
def fake_rows(config, f1: float | None = None) -> list[dict[str, Any]]:
    """Schema-valid rows with metrics derived from the config hash (deterministic, distinct per cell), or `f1`."""
    from paper_repro.results.schema import CELL_SCHEMA

    h = int(hashlib.sha256(config.config_hash().encode()).hexdigest()[:8], 16)
    f1 = (h % 1000) / 1000 if f1 is None else f1
    common = {
        "run_id": config.run_id, "study": config.study, "stage": config.stage, "protocol": 2,
        "backbone": config.model.backbone,
        "method": config.model.head.name, "finetune": config.model.finetune, "pooling": config.model.pooling,
        "fuse_embeddings": config.model.head.fuse_embeddings, "head_params": 0, "budget_target": 0,
        "sampler": config.data.sampler, "size": config.data.size, "data_seed": config.data.data_seed,
        "seed": config.train.seed, "backbone_lr": config.train.backbone_lr, "head_lr": config.train.head_lr,
        "steps_total": config.train.steps, "warmup_steps": 1, "batch_size": config.train.batch_size,
        "git_sha": "0" * 40, "git_dirty": False, "config_hash": config.config_hash(), "subset_sha256": "0" * 64,
        "versions": "{}", "device": "cpu",
    }
    metrics = {name: f1 for name in CELL_SCHEMA.names
               if name.startswith(("f1", "precision", "recall")) and name != "f1_by_type"}
    metrics["f1_by_type"] = {t: f1 for t in ("PER", "LOC", "ORG", "MISC")}
    rows = []
    for step, split in ((config.train.steps, "dev"), (config.train.steps, "test")):
        rows.append({**common, "step": step, "examples_seen": step * config.train.batch_size, "split": split,
                     "eval_sentences": 10, **metrics, "train_loss": 1.0 - f1, "wall_clock_s": 0.1,
                     "eval_s": 0.01})
    assert set(rows[0]) == set(CELL_SCHEMA.names), set(rows[0]) ^ set(CELL_SCHEMA.names)
    return rows


def fake_run_cell(config) -> Path:
    """Stand-in for run_cell: sleeps $FAKE_CELL_SECONDS, fails for methods in $FAKE_FAIL_METHODS, appends its
    run_id to $FAKE_STARTS_LOG, writes a partial parquet first (like a killed writer might) then the cell."""
    from paper_repro.results import store
    from paper_repro.results.schema import cell_table

    started = time.time()
    log = os.environ.get("FAKE_STARTS_LOG")
    if log:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.write(fd, f"{config.run_id} {os.getpid()}\n".encode())
        os.close(fd)
    if config.model.head.name in os.environ.get("FAKE_FAIL_METHODS", "").split(","):
        raise RuntimeError(f"fake failure of {config.model.head.name}")
    paths = store.cell_paths(config.results_dir, config.study, config.run_id)
    paths["parquet"].parent.mkdir(parents=True, exist_ok=True)
    paths["parquet"].write_bytes(b"PAR1 partial")  # a killed run leaves this behind without a marker
    time.sleep(float(os.environ.get("FAKE_CELL_SECONDS", "0")))
    manifest = {"config": config.to_dict(), "timings": {"total_s": time.time() - started + 1.0}}
    return store.write_cell(config.results_dir, config.study, config.run_id, cell_table(fake_rows(config)), manifest)


FAKE_RUNNER = "sweep_helpers:fake_run_cell"   # importable with subprocess_env()'s PYTHONPATH


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for sweep subprocesses: tests/sweep and tests on PYTHONPATH (for FAKE_RUNNER), few threads, and
    PAPER_REPRO_ALLOW_DIRTY=1 (the tests run from a development checkout, which `sweep` refuses when dirty)."""
    env = dict(os.environ)
    paths = [str(HERE), str(HERE.parent)]
    env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("PAPER_REPRO_ALLOW_DIRTY", "1")
    env.update(extra)
    return env


# ---------------------------------------------------------------------------------------------- processes
def sweep_process(study_file, *extra, env=None, runner=FAKE_RUNNER) -> subprocess.Popen:
    """`python -m paper_repro.sweep STUDY --no-progress --runner RUNNER ...` in the background."""
    command = [sys.executable, "-m", "paper_repro.sweep", str(study_file), "--no-progress", "--runner", runner, *extra]
    return subprocess.Popen(command, env=env or subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.time() + timeout_s
    while not predicate():
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.05)


def metrics(table):
    cols = ["run_id", "split", "step", "f1", "precision", "recall", "f1_strict", "train_loss"]
    return sorted(zip(*(table.column(c).to_pylist() for c in cols)))


def kill_and_resume(study_file, study_dir, reference_file, reference_dir, *, runner, env, timeout_s):
    """Sweep the reference uninterrupted; sweep `study_file`, kill -9 after its first done marker, rerun;
    compare. Returns the interrupted study's events."""
    import pyarrow.parquet as pq

    from paper_repro.results.collect import collect
    from paper_repro.sweep import claims

    ref = sweep_process(reference_file, env=env, runner=runner)
    out, _ = ref.communicate(timeout=timeout_s)
    assert ref.returncode == 0, out
    victim = sweep_process(study_file, env=env, runner=runner)
    try:
        wait_for(lambda: list((study_dir / "cells").glob("*.done")), timeout_s, "the first done marker")
        victim.send_signal(signal.SIGKILL)
    finally:
        victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    done_before = len(list((study_dir / "cells").glob("*.done")))
    assert done_before < 4, "the sweep finished before it could be killed"
    again = sweep_process(study_file, env=env, runner=runner)
    out, _ = again.communicate(timeout=timeout_s)
    assert again.returncode == 0, out
    events = claims.read_events(study_dir)
    starts = collections.Counter(e["run_id"] for e in events if e["event"] == "start")
    dones = collections.Counter(e["run_id"] for e in events if e["event"] == "done")
    assert len(starts) == 4 and set(dones.values()) == {1}          # every cell finished exactly once
    assert sum(starts.values()) in (4, 5)                             # (+1: the killed attempt, if mid-cell)
    for parquet in (study_dir / "cells").glob("*.parquet"):
        assert parquet.with_suffix(".done").exists(), f"{parquet} without its done marker"
    got = pq.read_table(collect(study_dir))     # reads and schema-checks every done cell
    want = pq.read_table(collect(reference_dir))
    assert collections.Counter(got.column("run_id").to_pylist()) == collections.Counter(want.column("run_id").to_pylist())
    assert metrics(got) == metrics(want)
    return events


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())
