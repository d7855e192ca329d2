"""How cell time scales: with the few-shot size, with the step budget, and with concurrent Slurm array tasks.

Part 1 (always): run_cell in this process (caches primed, as a sweep's later cells) for every point of
`--sizes` (at `--steps`) and of `--steps-list` (at `--size`); points in alternating order over repeats.
Expected: train time linear in steps (the fit `train_s = a + b * steps` and its R^2 are reported), eval time
constant across steps and sizes (the same dev subsample and test split), tokenization/load near zero (cached).

Part 2 (`--slurm`): sweep throughput on the local Slurm node with 1 vs 2 concurrent array tasks
(`--slurm-parallel`), through `paper_repro.sweep.launch.run_sweep(launcher="slurm", wait=True)`: a study of
`--slurm-cells` cells (seeds 0..n-1 of the base cell), each array task with `cpus_per_task` = node CPUs /
parallelism and `OMP_NUM_THREADS` set to it. Needs SLURM_CONF and a working `sinfo`; skipped with a note
otherwise.

Part 3 (`--local-parallel 1,2`): sweep throughput on this machine without Slurm: K concurrent worker processes
(K from the list), each with usable CPUs / K torch threads (OMP_NUM_THREADS / MKL_NUM_THREADS set likewise), share
`--parallel-cells` cells (seeds `--seed`...); each worker is a fresh process that primes its caches (as a sweeper's
first cell) and runs its cells one after another. Reported per K: cells/hour over the wall clock (worker start-up
included) and in steady state (the workers' cell times only), and the mean cell time. This answers "two
concurrent 1-thread sweepers or one 2-thread sweeper?" on a 2-CPU machine.

  python bench/scaling.py
  python bench/scaling.py --slurm              # with SLURM_CONF of the local node exported
  python bench/scaling.py --no-local --local-parallel 1,2 --parallel-cells 4 --steps 60 --dev 300
  python bench/scaling.py --sizes 10,20 --steps-list 2,4 --size 10 --steps 4 --dev 30 --test-limit 50 --repeats 1
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import common  # noqa: E402

BENCH = "scaling"
PARTS = ("total_s", "load_s", "tokenize_s", "train_s", "eval_s", "other_s", "step_time_s")


def linear_fit(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """(intercept, slope, R^2) of the least-squares line through the points."""
    n = len(xs)
    if n < 2:
        return float("nan"), float("nan"), float("nan")
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return float("nan"), float("nan"), float("nan")
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    intercept = my - slope * mx
    total = sum((y - my) ** 2 for y in ys)
    residual = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys))
    return intercept, slope, 1 - residual / total if total else 1.0


def point_name(size: int, steps: int) -> str:
    return f"size{size}-steps{steps}"


def scaling_part(args, results) -> None:
    points = list(dict.fromkeys([(s, args.steps) for s in args.sizes] + [(args.size, n) for n in args.steps_list]))
    outcomes: dict[tuple[int, int], list[dict]] = {p: [] for p in points}
    with common.cells_dir(args.keep_cells) as folder:
        for size in sorted({s for s, _ in points}):
            common.prime_caches(common.cell_config(args, folder, BENCH, data__size=size))
        for repeat in range(args.repeats):
            for position, (size, steps) in enumerate(common.alternating(points, repeat)):
                config = common.cell_config(args, folder, BENCH, data__size=size, train__steps=steps,
                                            train__seed=args.seed + repeat)
                outcome = common.run_ours(config)
                outcomes[(size, steps)].append(outcome)
                values = {k: outcome[k] for k in (*PARTS, "evals", "f1_test")}
                results.add_many(point_name(size, steps), values, common.unit_of, repeat=repeat, position=position,
                                 size=size, steps=steps)
                print(f"[{BENCH}] repeat {repeat} size {size:>5} steps {steps:>4}: total {outcome['total_s']:.1f}s "
                      f"(train {outcome['train_s']:.1f}s, eval {outcome['eval_s']:.1f}s)")

    table = []
    for size, steps in points:
        row = {"size": size, "steps": steps}
        for part in PARTS:
            row[part] = common.median(o[part] for o in outcomes[(size, steps)])
            results.summary(point_name(size, steps), part, row[part], "s", size=size, steps=steps)
        table.append(row)
    print()
    print(common.format_table(table))

    fits = []
    for axis, fixed, chosen in (("steps", args.size, [p for p in points if p[0] == args.size]),
                                ("size", args.steps, [p for p in points if p[1] == args.steps])):
        index = 1 if axis == "steps" else 0
        chosen = sorted(chosen, key=lambda p: p[index])
        if len(chosen) < 2:
            continue
        xs = [float(p[index]) for p in chosen]
        for part in ("train_s", "eval_s", "total_s"):
            ys = [common.median(o[part] for o in outcomes[p]) for p in chosen]
            intercept, slope, r2 = linear_fit(xs, ys)
            spread = (max(ys) - min(ys)) / common.median(ys) if common.median(ys) else float("nan")
            variant = f"fit-{part}-vs-{axis}"
            at = {"size" if axis == "steps" else "steps": fixed}
            results.summary(variant, "intercept", intercept, "s", **at)
            results.summary(variant, "slope", slope, f"s per {'step' if axis == 'steps' else 'sentence'}", **at)
            results.summary(variant, "r2", r2, "", **at)
            results.summary(variant, "relative_spread", spread, "(max-min)/median", **at)
            fits.append({"fit": f"{part} ~ {axis}", "at": f"{'size' if axis == 'steps' else 'steps'}={fixed}",
                         "intercept_s": intercept, "slope": slope, "r2": r2, "spread": spread})
    if fits:
        print()
        print(common.format_table(fits))
        print("expected: train_s ~ steps linear (R^2 near 1); eval_s flat across steps and sizes (small spread)")


# ----------------------------------------------------------------------------------------------------------
def slurm_available() -> tuple[bool, str]:
    if not os.environ.get("SLURM_CONF"):
        return False, "SLURM_CONF is not set"
    if shutil.which("sinfo") is None:
        return False, "sinfo is not on PATH"
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as error:
        return False, f"sinfo failed: {error}"
    if proc.returncode != 0 or not proc.stdout.strip():
        return False, f"sinfo failed: {proc.stderr.strip() or proc.stdout.strip()}"
    return True, proc.stdout.split()[0].rstrip("+")


def slurm_study(args, results_dir: Path, parallelism: int, cpus: int):
    from paper_repro.config import flatten
    from paper_repro.sweep.grid import StudyConfig

    config = common.cell_config(args, results_dir, "slurm_scaling")
    base = {k: v for k, v in flatten(config.to_dict()).items() if k not in ("study", "train.seed")}
    setup = [f"export OMP_NUM_THREADS={cpus}", f"export MKL_NUM_THREADS={cpus}"]
    raw = {
        "study": f"{BENCH}-p{parallelism}",
        "base": base,
        "grid": {"train.seed": [args.seed + i for i in range(args.slurm_cells)]},
        "launcher": {
            "time_min": args.slurm_time_min, "cpus_per_task": cpus, "mem_gb": args.slurm_mem_gb,
            "array_parallelism": parallelism, "cells_per_task": 1, "partition": args.slurm_partition,
            "setup": setup,
        },
    }
    return StudyConfig.from_dict(raw, source="bench/scaling.py")


def slurm_part(args, results) -> None:
    ok, detail = slurm_available()
    if not ok:
        print(f"[{BENCH}] --slurm skipped: {detail} (start a local node with .ci/slurm_up.sh and export its SLURM_CONF)")
        return
    from paper_repro.results import store
    from paper_repro.sweep.launch import DEFAULT_RUNNER, run_sweep

    node_cpus = int(detail)
    runner = common.SLURM_RUNNER if args.test_limit else DEFAULT_RUNNER
    os.environ[common.TEST_LIMIT_ENV] = str(args.test_limit)          # the array tasks inherit the environment
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(common.REPO_ROOT), os.environ.get("PYTHONPATH")]))
    print(f"[{BENCH}] Slurm node: {node_cpus} CPUs; {args.slurm_cells} cells per sweep, parallelism {args.slurm_parallel}")
    with common.cells_dir(args.keep_cells) as folder:
        common.prime_caches(common.cell_config(args, folder, BENCH), load_model=False)
    throughput: dict[int, list[float]] = {p: [] for p in args.slurm_parallel}
    for repeat in range(args.repeats):
        for position, parallelism in enumerate(common.alternating(args.slurm_parallel, repeat)):
            cpus = args.slurm_cpus_per_task or max(1, node_cpus // parallelism)
            folder = Path(tempfile.mkdtemp(prefix="paper_repro_bench_slurm_"))
            try:
                study = slurm_study(args, folder, parallelism, cpus)
                started = common.now()   # the cells run in Slurm jobs: their device work is theirs to finish
                outcome = run_sweep(study, launcher="slurm", wait=True, runner=runner, progress=False,
                                    wait_timeout_s=args.slurm_timeout, poll_s=1.0)
                wall = common.now() - started
                if not outcome.ok or len(outcome.ran) != args.slurm_cells:
                    raise RuntimeError(f"Slurm sweep (parallelism {parallelism}) did not finish cleanly: "
                                       f"{outcome.summary()} (logs under {folder})")
                cell_totals = []
                for cell in study.expand():
                    path = store.cell_paths(cell.results_dir, cell.study, cell.run_id)["parquet"]
                    cell_totals.append(common.cell_outcome(path)["cell_total_s"])
            finally:
                if not args.keep_cells:
                    shutil.rmtree(folder, ignore_errors=True)
            per_hour = args.slurm_cells / wall * 3600
            throughput[parallelism].append(per_hour)
            variant = f"slurm-p{parallelism}"
            common_kwargs = dict(repeat=repeat, position=position, parallelism=parallelism, cpus_per_task=cpus,
                                 size=args.size, steps=args.steps)
            results.add(variant, "sweep_wall_s", wall, "s", **common_kwargs)
            results.add(variant, "cells_per_hour", per_hour, "cells/h", **common_kwargs)
            results.add(variant, "cell_total_s_mean", sum(cell_totals) / len(cell_totals), "s", **common_kwargs)
            print(f"[{BENCH}] repeat {repeat} parallelism {parallelism} ({cpus} CPUs/task): {args.slurm_cells} cells "
                  f"in {wall:.0f}s = {per_hour:.1f} cells/h")
    table = []
    reference = common.median(throughput[args.slurm_parallel[0]])
    for parallelism in args.slurm_parallel:
        rate = common.median(throughput[parallelism])
        at = dict(parallelism=parallelism, size=args.size, steps=args.steps)
        results.summary(f"slurm-p{parallelism}", "cells_per_hour", rate, "cells/h", **at)
        results.summary(f"slurm-p{parallelism}", "speedup", rate / reference, f"x p{args.slurm_parallel[0]}", **at)
        table.append({"parallel_tasks": parallelism, "cells_per_hour": rate, "speedup": rate / reference})
    print()
    print(common.format_table(table))


# ----------------------------------------------------------------------------------------------------------
WORKER_ARGS = ("backbone", "data_dir", "size", "steps", "batch_size", "eval_batch_size", "eval_points", "dev",
               "test_limit", "max_length")


def worker_part(args) -> None:
    """One local sweeper (`--worker-seeds`): prime caches, run its cells, write their timings to `--worker-out`."""
    import json

    device = common.default_device()
    started = common.now(device)
    timings = []
    with common.cells_dir(False) as folder:
        common.prime_caches(common.cell_config(args, folder, BENCH))
        ready = common.now(device) - started
        for seed in args.worker_seeds:
            outcome = common.run_ours(common.cell_config(args, folder, BENCH, train__seed=seed))
            timings.append({"seed": seed, "total_s": outcome["total_s"], "train_s": outcome["train_s"],
                            "eval_s": outcome["eval_s"], "f1_test": outcome["f1_test"]})
    Path(args.worker_out).write_text(json.dumps({"startup_s": ready, "cells": timings,
                                                 "threads": __import__("torch").get_num_threads()}))


def local_parallel_part(args, results) -> None:
    import json

    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    seeds = [args.seed + i for i in range(args.parallel_cells)]
    rates: dict[int, list[float]] = {k: [] for k in args.local_parallel}
    steady: dict[int, list[float]] = {k: [] for k in args.local_parallel}
    for repeat in range(args.repeats):
        for position, workers in enumerate(common.alternating(args.local_parallel, repeat)):
            threads = max(1, cpus // workers)
            env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
            folder = Path(tempfile.mkdtemp(prefix="paper_repro_bench_parallel_"))
            procs, outs = [], []
            started = common.now()      # the cells run in the worker processes (each times its own device)
            for w in range(workers):
                out = folder / f"worker{w}.json"
                mine = seeds[w::workers]
                command = [sys.executable, str(Path(__file__).resolve()), "--no-local", "--threads", str(threads),
                           "--worker-seeds", ",".join(map(str, mine)), "--worker-out", str(out)]
                for name in WORKER_ARGS:
                    command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
                procs.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL))
                outs.append(out)
            codes = [p.wait() for p in procs]
            wall = common.now() - started
            if any(codes):
                raise RuntimeError(f"local workers failed (exit codes {codes})")
            reports = [json.loads(o.read_text()) for o in outs]
            shutil.rmtree(folder, ignore_errors=True)
            cell_times = [c["total_s"] for r in reports for c in r["cells"]]
            per_hour = len(cell_times) / wall * 3600
            steady_rate = sum(len(r["cells"]) / sum(c["total_s"] for c in r["cells"]) for r in reports) * 3600
            rates[workers].append(per_hour)
            steady[workers].append(steady_rate)
            variant = f"local-p{workers}"
            kw = dict(repeat=repeat, position=position, parallelism=workers, threads_per_worker=threads,
                      size=args.size, steps=args.steps)
            results.add(variant, "sweep_wall_s", wall, "s", **kw)
            results.add(variant, "cells_per_hour", per_hour, "cells/h", **kw)
            results.add(variant, "steady_cells_per_hour", steady_rate, "cells/h", **kw)
            results.add(variant, "cell_total_s_mean", sum(cell_times) / len(cell_times), "s", **kw)
            results.add(variant, "startup_s_mean", sum(r["startup_s"] for r in reports) / len(reports), "s", **kw)
            print(f"[{BENCH}] repeat {repeat}: {workers} worker(s) x {threads} thread(s): {len(cell_times)} cells in "
                  f"{wall:.0f}s = {per_hour:.1f} cells/h (steady {steady_rate:.1f}), mean cell "
                  f"{sum(cell_times) / len(cell_times):.1f}s", flush=True)
    table = []
    reference = common.median(rates[args.local_parallel[0]])
    for workers in args.local_parallel:
        at = dict(parallelism=workers, threads_per_worker=max(1, cpus // workers), size=args.size, steps=args.steps)
        rate, rate_steady = common.median(rates[workers]), common.median(steady[workers])
        results.summary(f"local-p{workers}", "cells_per_hour", rate, "cells/h", **at)
        results.summary(f"local-p{workers}", "steady_cells_per_hour", rate_steady, "cells/h", **at)
        results.summary(f"local-p{workers}", "speedup", rate / reference, f"x p{args.local_parallel[0]}", **at)
        table.append({"workers": workers, "threads_each": at["threads_per_worker"], "cells_per_hour": rate,
                      "steady_cells_per_hour": rate_steady, "speedup": rate / reference})
    print()
    print(common.format_table(table))


def main(argv: list[str] | None = None) -> int:
    parser = common.make_parser(__doc__.splitlines()[0], repeats=2)
    parser.add_argument("--sizes", type=common.int_list, default=[50, 100, 200, 500, 1000],
                        help="few-shot sizes (at --steps)")
    parser.add_argument("--steps-list", type=common.int_list, default=[50, 100, 200, 400],
                        help="step budgets (at --size)")
    parser.add_argument("--no-local", action="store_true", help="skip part 1 (size / steps scaling)")
    parser.add_argument("--slurm", action="store_true", help="also measure sweep throughput on the local Slurm node")
    parser.add_argument("--slurm-parallel", type=common.int_list, default=[1, 2], help="concurrent array tasks")
    parser.add_argument("--slurm-cells", type=int, default=4, help="cells per sweep (seeds of the base cell)")
    parser.add_argument("--slurm-cpus-per-task", type=int, default=0, help="0: node CPUs / parallelism")
    parser.add_argument("--slurm-mem-gb", type=float, default=4.0)
    parser.add_argument("--slurm-time-min", type=int, default=60)
    parser.add_argument("--slurm-partition", default=None)
    parser.add_argument("--slurm-timeout", type=float, default=3600, help="seconds to wait for one sweep")
    parser.add_argument("--local-parallel", type=common.int_list, default=[],
                        help="concurrent local worker processes to compare, e.g. 1,2 (part 3)")
    parser.add_argument("--parallel-cells", type=int, default=4, help="cells per local sweep (seeds of the base cell)")
    parser.add_argument("--worker-seeds", type=common.int_list, default=[], help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    common.setup(args)
    if args.worker_seeds:
        worker_part(args)
        return 0
    results = common.Results(BENCH, args, batch_size=args.batch_size, dev=args.dev, test_limit=args.test_limit)
    print(f"[{BENCH}] {common.describe_machine()}")
    if not args.no_local:
        scaling_part(args, results)
    if args.slurm:
        slurm_part(args, results)
    if args.local_parallel:
        local_parallel_part(args, results)
    if results.rows:
        results.write(args.out)
    else:
        print(f"[{BENCH}] nothing measured, nothing written")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
