"""Peak memory of a cell per head: each cell runs in a fresh Python process (`run_cell`), so its peak is its own.

Two readings per cell: the manifest's `peak_rss_mb` (the cell process's ru_maxrss, imports included) and the
peak RSS of the child process sampled with psutil every `--sample-s` seconds (a cross-check). The splits'
features and the subset file are cached (primed by this parent) before the first child, and the packaged
MPNet is assembled once beforehand, so every child measures a sweep's ordinary cell. Target (minilm-l6):
peak RSS <= 3 GB (3072 MB).

  python bench/memory.py --backbone minilm-l6
  python bench/memory.py --backbone mpnet-base --repeats 1
  python bench/memory.py --heads last,dwatt --steps 4 --size 20 --dev 50 --test-limit 100 --repeats 1   # validation
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import common  # noqa: E402

BENCH = "memory"
TARGETS_MB = {"minilm-l6": 3072.0}


def child(config_json: str, test_limit: int, threads: int) -> int:
    """In the fresh process: run the cell, print its parquet path as the last line."""
    from paper_repro.config import CellConfig
    from paper_repro.train.cell import run_cell

    if threads > 0:
        import torch

        torch.set_num_threads(threads)
    common.install_test_limit(test_limit)
    path = run_cell(CellConfig.from_dict(json.loads(config_json)))
    print(f"PARQUET={path}", flush=True)
    return 0


def run_child(config, args) -> tuple[dict, float]:
    """Run one cell in a subprocess; (cell outcome, peak RSS in MB sampled with psutil over its process tree)."""
    import psutil

    command = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(config.to_dict()),
               "--test-limit", str(args.test_limit), "--threads", str(args.threads)]
    started = common.now()      # the cell runs in the child: its device work is done when the child exits
    python_path = os.pathsep.join(filter(None, [str(common.REPO_ROOT), os.environ.get("PYTHONPATH")]))
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONPATH": python_path})
    peak = 0
    watched = psutil.Process(proc.pid)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(proc.stdout), daemon=True)
    reader.start()
    while proc.poll() is None:
        try:
            tree = [watched] + watched.children(recursive=True)
            peak = max(peak, sum(p.memory_info().rss for p in tree))
        except psutil.Error:
            pass
        time.sleep(args.sample_s)
    reader.join(timeout=30)
    wall = common.now() - started
    lines = [line.strip() for line in output if line.startswith("PARQUET=")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"cell subprocess failed (exit {proc.returncode}):\n{''.join(output)[-4000:]}")
    outcome = common.cell_outcome(Path(lines[-1].split("=", 1)[1]), wall)
    return outcome, peak / 2**20


def main(argv: list[str] | None = None) -> int:
    from paper_repro.models.heads import HEADS

    parser = common.make_parser(__doc__.splitlines()[0], repeats=1)
    parser.add_argument("--heads", type=common.str_list, default=list(HEADS), help="comma-separated heads")
    parser.add_argument("--sample-s", type=float, default=0.05, help="psutil sampling period")
    parser.add_argument("--limit-mb", type=float, default=None,
                        help="peak RSS target in MB (default: 3072 for minilm-l6, none otherwise)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # internal: run one cell
    args = parser.parse_args(argv)
    if args.child is not None:
        return child(args.child, args.test_limit, args.threads)
    unknown = sorted(set(args.heads) - set(HEADS))
    if unknown:
        parser.error(f"unknown heads {unknown} (known: {', '.join(HEADS)})")
    common.setup(args)
    limit = args.limit_mb if args.limit_mb is not None else TARGETS_MB.get(args.backbone)
    results = common.Results(BENCH, args, size=args.size, steps=args.steps, batch_size=args.batch_size,
                             dev=args.dev, test_limit=args.test_limit)
    print(f"[{BENCH}] {common.describe_machine()}")

    peaks: dict[str, list[tuple[float, float]]] = {h: [] for h in args.heads}
    with common.cells_dir(args.keep_cells) as folder:
        base = common.cell_config(args, folder, BENCH)
        common.prime_caches(base, load_model=False)   # features + subset on disk; MPNet assembled
        for repeat in range(args.repeats):
            for position, head in enumerate(common.rotated(args.heads, repeat)):
                config = common.cell_config(args, folder, BENCH, model__head__name=head, train__seed=args.seed + repeat)
                outcome, sampled = run_child(config, args)
                peaks[head].append((outcome["peak_rss_mb"], sampled))
                results.add(head, "peak_rss_mb", outcome["peak_rss_mb"], "MB", repeat=repeat, position=position)
                results.add(head, "sampled_peak_rss_mb", sampled, "MB", repeat=repeat, position=position)
                results.add(head, "total_s", outcome["total_s"], "s", repeat=repeat, position=position)
                print(f"[{BENCH}] repeat {repeat} {head:<14} peak RSS {outcome['peak_rss_mb']:8.0f} MB "
                      f"(sampled {sampled:8.0f} MB), {outcome['total_s']:.0f}s")

    table = []
    for head in args.heads:
        peak = max(p for p, _ in peaks[head])
        sampled = max(s for _, s in peaks[head])
        row = {"head": head, "peak_rss_mb": peak, "sampled_peak_mb": sampled, "limit_mb": limit}
        results.summary(head, "peak_rss_mb", peak, "MB")
        results.summary(head, "sampled_peak_rss_mb", sampled, "MB")
        if limit is not None:
            row["meets_target"] = peak <= limit
            results.summary(head, "limit_mb", limit, "MB")
            results.summary(head, "meets_target", float(peak <= limit), "bool")
        table.append(row)
    print()
    print(common.format_table(table))
    print("peak_rss_mb: the cell process's ru_maxrss (manifest), max over repeats"
          + (f"; target <= {limit:.0f} MB" if limit is not None else "; no target for this backbone"))
    results.write(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
