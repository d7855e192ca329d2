"""Cell claims: at most one sweeper runs a cell at a time, across processes, hosts and Slurm tasks.

`results/<study>/claims/<run_id>.claim` is created with `O_CREAT | O_EXCL` and holds JSON
{host, pid, pid_start, time, slurm_job_id, token}. While the cell runs, a heartbeat thread refreshes the
file's mtime. The claim is removed on release.

A claim left by a dead owner is *stale* and may be taken over:
  * same host: the pid is gone (or was reused: its start time differs);
  * another host, inside Slurm: the owner's Slurm job is no longer queued/running (`squeue`), or it is this
    very job's previous incarnation (requeue after preemption/timeout);
  * another host otherwise: only with `steal_stale=True`, when the heartbeat is older than `ttl_s`.
Takeover is race-free: the reclaimer first creates `<run_id>.takeover.<token of the stale claim>` with
O_EXCL, so of several reclaimers of the same stale claim exactly one wins; the winner then replaces the claim
file. Events (claim, takeover, release, start, done, failed) are appended to `claims/events.jsonl`.

Failures: `results/<study>/failures/<run_id>.txt` holds the traceback of the last failed attempt.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_TTL_S = 1800.0        # heartbeat age after which a foreign claim counts as stale (with steal_stale)
HEARTBEAT_S = 30.0
EMPTY_CLAIM_GRACE_S = 60.0    # a claim file still empty after this long belongs to a writer that died


def claims_dir(study_dir: str | Path) -> Path:
    return Path(study_dir) / "claims"


def claim_path(study_dir: str | Path, run_id: str) -> Path:
    return claims_dir(study_dir) / f"{run_id}.claim"


def failure_path(study_dir: str | Path, run_id: str) -> Path:
    return Path(study_dir) / "failures" / f"{run_id}.txt"


def slurm_job_id() -> str | None:
    """`<array job>_<task>` inside an array task, the job id inside a plain job, else None."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def process_start_time(pid: int) -> float | None:
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:  # no psutil, no such process, no permission
        return None


def owner_info() -> dict[str, Any]:
    pid = os.getpid()
    return {
        "host": socket.gethostname(),
        "pid": pid,
        "pid_start": process_start_time(pid),
        "time": time.time(),
        "slurm_job_id": slurm_job_id(),
        "slurm_restart_count": _restart_count(),
        "token": uuid.uuid4().hex,
    }


def _restart_count() -> int:
    try:
        return int(os.environ.get("SLURM_RESTART_COUNT", "0"))
    except ValueError:
        return 0


def append_event(study_dir: str | Path, event: str, run_id: str, **extra: Any) -> None:
    """One JSON line per event, written with a single O_APPEND write (atomic for short lines)."""
    record = {"event": event, "run_id": run_id, "host": socket.gethostname(), "pid": os.getpid(),
              "time": time.time(), "slurm_job_id": slurm_job_id(), **extra}
    path = claims_dir(study_dir) / "events.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (json.dumps(record, sort_keys=True) + "\n").encode())
    finally:
        os.close(fd)


def read_events(study_dir: str | Path) -> list[dict[str, Any]]:
    path = claims_dir(study_dir) / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_claim(path: Path) -> dict[str, Any] | None:
    """The claim's JSON; {} while its writer has created but not yet written it; None when absent."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        info = json.loads(text)
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


def _pid_alive(pid: int, start: float | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if start is not None:
        now_start = process_start_time(pid)
        if now_start is not None and abs(now_start - start) > 1.0:
            return False  # the pid was reused by another process
    return True


def _slurm_job_alive(job_id: str) -> bool | None:
    """True/False when squeue answers, None when it cannot tell."""
    if shutil.which("squeue") is None:
        return None
    try:
        result = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return False if "Invalid job id" in result.stderr else None
    states = result.stdout.split()
    return bool(states) and any(s not in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL",
                                          "PREEMPTED", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE") for s in states)


def claim_state(path: Path, *, steal_stale: bool = False, ttl_s: float = DEFAULT_TTL_S) -> tuple[str, dict | None]:
    """('free'|'live'|'stale', claim info). 'stale' means it may be taken over under the given policy."""
    info = read_claim(path)
    if info is None:
        return "free", None
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return "free", None
    if not info:  # created, not yet written (or the writer died in between)
        return ("stale" if age > EMPTY_CLAIM_GRACE_S else "live"), info
    host = socket.gethostname()
    if info.get("host") == host:
        alive = _pid_alive(int(info.get("pid", -1)), info.get("pid_start"))
        return ("live" if alive else "stale"), info
    job = info.get("slurm_job_id")
    if job:
        if job == slurm_job_id() and _restart_count() > int(info.get("slurm_restart_count") or 0):
            return "stale", info  # our own job's previous incarnation (requeued, maybe on another node)
        alive = _slurm_job_alive(str(job))
        if alive is False:
            return "stale", info
    if steal_stale and age > ttl_s:
        return "stale", info
    return "live", info


@dataclass
class Claim:
    """A held claim; use as a context manager (heartbeat while inside, release on exit)."""

    study_dir: Path
    run_id: str
    info: dict[str, Any]
    takeover_marker: Path | None = None
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def path(self) -> Path:
        return claim_path(self.study_dir, self.run_id)

    def holds(self) -> bool:
        current = read_claim(self.path)
        return bool(current) and current.get("token") == self.info["token"]

    def start_heartbeat(self, every_s: float = HEARTBEAT_S) -> None:
        def beat() -> None:
            while not self._stop.wait(every_s):
                try:
                    if self.holds():
                        os.utime(self.path)
                except OSError:
                    pass

        self._thread = threading.Thread(target=beat, name=f"claim-heartbeat-{self.run_id}", daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.holds():
            self.path.unlink(missing_ok=True)
            append_event(self.study_dir, "release", self.run_id, token=self.info["token"])
        if self.takeover_marker is not None:
            self.takeover_marker.unlink(missing_ok=True)

    def __enter__(self) -> "Claim":
        self.start_heartbeat()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _write_exclusive(path: Path, data: bytes) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def try_claim(
    study_dir: str | Path, run_id: str, *, steal_stale: bool = False, ttl_s: float = DEFAULT_TTL_S
) -> Claim | None:
    """Claim a cell, or take over its stale claim; None when someone else holds it."""
    study_dir = Path(study_dir)
    path = claim_path(study_dir, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = owner_info()
    payload = json.dumps(info, sort_keys=True).encode()
    for _ in range(3):
        if _write_exclusive(path, payload):
            append_event(study_dir, "claim", run_id, token=info["token"])
            return Claim(study_dir, run_id, info)
        state, old = claim_state(path, steal_stale=steal_stale, ttl_s=ttl_s)
        if state == "free":
            continue  # released between our attempt and the check: try again
        if state == "live":
            return None
        # stale: one winner per stale claim instance, decided by an O_EXCL marker named after its token
        old_token = (old or {}).get("token")
        if old_token is None:  # an empty claim whose writer died: name the marker after the file's identity
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            old_token = f"empty-{st.st_ino}-{st.st_mtime_ns}"
        marker = path.parent / f"{run_id}.takeover.{old_token}"
        if not _write_exclusive(marker, payload):
            return None  # another reclaimer won
        current = read_claim(path)
        if current is None or current.get("token") != (old or {}).get("token"):
            marker.unlink(missing_ok=True)  # the claim changed under us (released / reclaimed): start over
            continue
        tmp = path.parent / f".{run_id}.claim.{info['token']}.tmp"
        tmp.write_bytes(payload)
        os.replace(tmp, path)
        append_event(study_dir, "takeover", run_id, token=info["token"], previous=old)
        return Claim(study_dir, run_id, info, takeover_marker=marker)
    return None


def cell_claim_status(study_dir: str | Path, run_id: str) -> str:
    """'claimed' if a live claim exists, 'stale' if a reclaimable one does, else 'free' (no squeue calls)."""
    path = claim_path(study_dir, run_id)
    info = read_claim(path)
    if info is None:
        return "free"
    if info and info.get("host") == socket.gethostname() and not _pid_alive(int(info.get("pid", -1)), info.get("pid_start")):
        return "stale"
    return "claimed"


def live_claims(study_dir: str | Path, *, steal_stale: bool = False, ttl_s: float = DEFAULT_TTL_S,
                max_age_s: float | None = None) -> list[str]:
    """Run ids of the cells some sweeper is running now: their claim is live under the given policy (and, with
    `max_age_s`, its heartbeat is more recent than that: a claim of another host outside Slurm stays 'live'
    without --steal-stale however long its owner has been dead)."""
    found = []
    for path in claims_dir(study_dir).glob("*.claim"):
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            continue
        if (max_age_s is None or age <= max_age_s) and claim_state(path, steal_stale=steal_stale, ttl_s=ttl_s)[0] == "live":
            found.append(path.name[: -len(".claim")])
    return sorted(found)


def write_failure(study_dir: str | Path, run_id: str, text: str) -> Path:
    from paper_repro.results.store import atomic_write_bytes

    path = failure_path(study_dir, run_id)
    header = (f"run_id: {run_id}\nhost: {socket.gethostname()}\npid: {os.getpid()}\n"
              f"slurm_job_id: {slurm_job_id()}\ntime: {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n\n")
    atomic_write_bytes(path, (header + text).encode())
    return path


def clear_failure(study_dir: str | Path, run_id: str) -> None:
    failure_path(study_dir, run_id).unlink(missing_ok=True)


def has_failed(study_dir: str | Path, run_id: str) -> bool:
    return failure_path(study_dir, run_id).exists()
