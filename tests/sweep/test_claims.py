"""Claims: O_EXCL exclusivity across processes, stale takeover (exactly one winner), TTL stealing, failures."""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import time

from paper_repro.sweep import claims

RUN_IDS = [f"cell{i:02d}" for i in range(25)]


def _race(study_dir: str, barrier, queue) -> None:
    barrier.wait()
    won = [rid for rid in RUN_IDS if claims.try_claim(study_dir, rid) is not None]
    queue.put((os.getpid(), won))
    barrier.wait()  # keep our claims' owner alive until every racer has tried


def _run_racers(study_dir, n: int = 3) -> list[list[str]]:
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(study_dir), barrier, queue)) for _ in range(n)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120)[1] for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return results


def _sorted_union(results):
    return sorted(rid for won in results for rid in won)


def test_exclusive_across_processes(tmp_path):
    results = _run_racers(tmp_path)
    assert _sorted_union(results) == RUN_IDS  # every cell claimed, by exactly one process


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_claim(study_dir, rid, **info):
    path = claims.claim_path(study_dir, rid)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"token": f"tok-{rid}", "time": time.time(), **info}))
    return path


def test_stale_claim_of_dead_pid_is_reclaimed_by_exactly_one(tmp_path):
    host = claims.socket.gethostname()
    dead = _dead_pid()
    for rid in RUN_IDS:
        _write_claim(tmp_path, rid, host=host, pid=dead, pid_start=None)
    assert claims.claim_state(claims.claim_path(tmp_path, RUN_IDS[0]))[0] == "stale"
    results = _run_racers(tmp_path)
    assert _sorted_union(results) == RUN_IDS
    events = [e for e in claims.read_events(tmp_path) if e["event"] == "takeover"]
    assert sorted(e["run_id"] for e in events) == RUN_IDS


def test_claim_left_by_killed_process_is_taken_over(tmp_path):
    code = ("import os, sys; from paper_repro.sweep import claims; "
            "assert claims.try_claim(sys.argv[1], 'x') is not None; os._exit(0)")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
    info = json.loads(claims.claim_path(tmp_path, "x").read_text())
    assert info["pid"] != os.getpid() and info["host"] == claims.socket.gethostname()
    claim = claims.try_claim(tmp_path, "x")
    assert claim is not None and claim.holds()
    assert claims.try_claim(tmp_path, "x") is None  # now ours, and we are alive
    claim.release()
    assert not claims.claim_path(tmp_path, "x").exists()
    assert not list((tmp_path / "claims").glob("x.takeover.*"))


def test_live_claims_are_respected(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _write_claim(tmp_path, "a", host=claims.socket.gethostname(), pid=sleeper.pid,
                     pid_start=claims.process_start_time(sleeper.pid))
        assert claims.try_claim(tmp_path, "a") is None
        # same pid, different start time: the pid was reused, the claim is stale
        _write_claim(tmp_path, "b", host=claims.socket.gethostname(), pid=sleeper.pid, pid_start=12345.0)
        assert claims.try_claim(tmp_path, "b") is not None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_foreign_host_claims_need_steal_stale_and_ttl(tmp_path):
    path = _write_claim(tmp_path, "c", host="elsewhere.invalid", pid=1, slurm_job_id=None)
    assert claims.try_claim(tmp_path, "c") is None
    assert claims.try_claim(tmp_path, "c", steal_stale=True, ttl_s=60) is None  # fresh heartbeat
    old = time.time() - 120
    os.utime(path, (old, old))
    assert claims.try_claim(tmp_path, "c", ttl_s=60) is None  # not without --steal-stale
    assert claims.try_claim(tmp_path, "c", steal_stale=True, ttl_s=60) is not None


def test_empty_claim_is_live_then_stale(tmp_path):
    path = claims.claim_path(tmp_path, "e")
    path.parent.mkdir(parents=True)
    path.write_text("")  # a writer between O_EXCL create and write
    assert claims.try_claim(tmp_path, "e") is None
    old = time.time() - claims.EMPTY_CLAIM_GRACE_S - 5
    os.utime(path, (old, old))
    assert claims.try_claim(tmp_path, "e") is not None


def test_heartbeat_and_release_only_own_claim(tmp_path):
    claim = claims.try_claim(tmp_path, "h")
    old = time.time() - 1000
    os.utime(claim.path, (old, old))
    claim.start_heartbeat(every_s=0.05)
    time.sleep(0.3)
    assert time.time() - claim.path.stat().st_mtime < 10
    # someone took the claim over (we were presumed dead): our release must not delete theirs
    _write_claim(tmp_path, "h", host="other", pid=1)
    claim.release()
    assert claims.claim_path(tmp_path, "h").exists()


def test_failure_records(tmp_path):
    assert not claims.has_failed(tmp_path, "f")
    path = claims.write_failure(tmp_path, "f", "Traceback ...\nValueError: boom\n")
    assert path == tmp_path / "failures" / "f.txt" and "ValueError: boom" in path.read_text()
    assert claims.has_failed(tmp_path, "f")
    claims.clear_failure(tmp_path, "f")
    assert not claims.has_failed(tmp_path, "f")
