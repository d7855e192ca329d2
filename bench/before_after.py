"""Before/after the speed-ups: the same benchmarks against two versions of the code, in one run on one machine.

The "before" version is a git commit (`--before`, default 15c66bd: the commit before "Faster cells"), checked out
into a temporary worktree, and so is "after" (`--after`, default HEAD: committed code only, whatever the working
tree holds). Each round runs,
for each version in alternating order (A B, B A, ...), that version's OWN bench scripts in a fresh Python process
(`PYTHONPATH` = that tree), one repeat each with seed `--seed + round`:

  cell_cost      `--variants ours,peer`: a whole cell (100 sentences, 200 steps, dev evals, full test) and its ratio
                 to the run_ner_no_trainer-style peer loop measured in the same process;
  floor          training step of `last` vs the counted-FLOP floor of this CPU;
  head_overhead  every head's training step and eval throughput (sentences/s over the dev subsample).

The version's own scripts measure what that version's product does (e.g. the allocator tuning of train/allocator.py
exists only after). Sub-runs' rows are kept (kind `sample`, with `code` = before/after and `round`), and a
comparison is written as `summary` rows of bench `before_after`: per quantity the median over rounds before and
after, after/before, the target of issue "Cells at the hardware's pace" and whether it is met.

  python bench/before_after.py                                     # 2 rounds, about 25 min on 2 cores
  python bench/before_after.py --rounds 1 --benches floor --steps 2 --warmup 1 --size 20 --dev 30 --test-limit 50
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import common  # noqa: E402

BENCH = "before_after"
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BEFORE = "15c66bd"
HEADS = ("last", "deeper", "concat", "dwatt", "scalarmix", "lstm", "attnres", "attnres_block")
BUDGET_MATCHED = ("concat", "dwatt", "lstm", "attnres", "attnres_block")
CODES = ("before", "after")
# targets (issue "Cells at the hardware's pace")
CELL_VS_PEER = 0.35
FLOOR_X = {"minilm-l6": 2.0, "mpnet-base": 1.6}
EVAL_SPEEDUP = 2.0


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def bench_args(args: argparse.Namespace, bench: str, seed: int, out: Path) -> list[str]:
    shared = ["--backbone", args.backbone, "--data-dir", str(Path(args.data_dir).resolve()), "--size", str(args.size), "--batch-size", str(args.batch_size),
              "--dev", str(args.dev), "--repeats", "1", "--seed", str(seed), "--out", str(out), "--fresh"]
    if args.threads:
        shared += ["--threads", str(args.threads)]
    if args.test_limit:
        shared += ["--test-limit", str(args.test_limit)]
    shared += args.bench_args
    if bench == "cell_cost":
        return shared + ["--steps", str(args.cell_steps), "--eval-points", str(args.eval_points),
                         "--variants", "ours,peer"]
    if bench == "floor":
        return shared + ["--head", "last", "--steps", str(args.steps), "--warmup", str(args.warmup)]
    if bench == "head_overhead":
        return shared + ["--heads", ",".join(args.heads), "--steps", str(args.steps), "--warmup", str(args.warmup)]
    raise ValueError(bench)


def run_one(tree: Path, bench: str, argv: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, str(tree / "bench" / f"{bench}.py"), *argv]
    print(f"[{BENCH}] {tree.name}: {' '.join(command[1:])}", flush=True)
    if subprocess.run(command, cwd=tree, env=env).returncode != 0:
        raise SystemExit(f"[{BENCH}] {tree.name}: bench/{bench}.py failed (its output is above)")


def values(frame: pd.DataFrame, code: str, bench: str, variant: str, metric: str) -> list[float]:
    rows = frame[(frame["code"] == code) & (frame["bench"] == bench) & (frame["kind"] == "summary")
                 & (frame["variant"] == variant) & (frame["metric"] == metric)]
    return [float(v) for v in rows["value"]]


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def compare(frame: pd.DataFrame, backbone: str) -> list[dict]:
    """One dict per quantity: before, after (medians over rounds), after_vs_before, target, met (after)."""
    out: list[dict] = []

    def add(quantity: str, bench: str, variant: str, metric: str, scale: float = 1.0, target: float | None = None,
            min_ratio: float | None = None):
        """`target`: after <= target; `min_ratio`: after / before >= min_ratio (a speed-up)."""
        before = med(values(frame, "before", bench, variant, metric)) * scale
        after = med(values(frame, "after", bench, variant, metric)) * scale
        if pd.isna(before) and pd.isna(after):
            return
        change = after / before if before else float("nan")
        met = float("nan")
        if target is not None and not pd.isna(after):
            met = float(after <= target)
        if min_ratio is not None and not pd.isna(change):
            met, target = float(change >= min_ratio), min_ratio
        out.append({"quantity": quantity, "before": before, "after": after, "after_vs_before": change,
                    "target": float("nan") if target is None else target, "met": met})

    add("cell wall-clock, ours (s)", "cell_cost", "ours", "total_s")
    add("cell train (s)", "cell_cost", "ours", "train_s")
    add("cell eval (s)", "cell_cost", "ours", "eval_s")
    add("cell wall-clock, peer (s)", "cell_cost", "peer", "total_s")
    add("cell time ours / peer (≤ 0.35)", "cell_cost", "ours", "time_ratio_vs_peer", target=CELL_VS_PEER)
    add("cell test F1, ours", "cell_cost", "ours", "f1_test_mean", scale=100)
    add("cell test F1, peer", "cell_cost", "peer", "f1_test_mean", scale=100)
    add("train step `last` (ms), floor bench", "floor", "last", "measured_step_s", scale=1000)
    add(f"train step × FLOP floor (≤ {FLOOR_X.get(backbone, 2.0)})", "floor", "last", "x_floor",
        target=FLOOR_X.get(backbone, 2.0))
    for head in HEADS:
        add(f"eval sentences/s `{head}` (≥ 2× before)", "head_overhead", head, "eval_sentences_per_s",
            min_ratio=EVAL_SPEEDUP)
    for head in HEADS:
        add(f"train step `{head}` (ms)", "head_overhead", head, "step_s", scale=1000)
    for head in BUDGET_MATCHED:
        add(f"step `{head}` / `deeper` (≤ 1)", "head_overhead", head, "step_time_ratio_deeper", target=1.0)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--before", default=DEFAULT_BEFORE, help="git commit of the 'before' code")
    parser.add_argument("--benches", type=common.str_list, default=["cell_cost", "floor", "head_overhead"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--backbone", default="minilm-l6")
    parser.add_argument("--data-dir", default=common.default_data_dir(), help="CoNLL-03 folder")
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--cell-steps", type=int, default=200, help="steps of the cell_cost cells")
    parser.add_argument("--steps", type=int, default=20, help="timed steps of floor/head_overhead")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--eval-points", type=int, default=5)
    parser.add_argument("--dev", type=int, default=1000)
    parser.add_argument("--test-limit", type=int, default=0, help="validation runs only")
    parser.add_argument("--heads", type=common.str_list, default=list(HEADS))
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--after", default="HEAD", help="git commit of the 'after' code")
    parser.add_argument("--bench-args", type=str.split, default=[],
                        help="more arguments for every sub-run, one string (e.g. '--max-length 64')")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.benches) - {"cell_cost", "floor", "head_overhead"})
    if unknown:
        parser.error(f"--benches: unknown {unknown}")
    shas = {code: git("rev-parse", "--verify", f"{ref}^{{commit}}") for code, ref in (("before", args.before),
                                                                                     ("after", args.after))}
    before_sha, after_sha = shas["before"], shas["after"]
    scratch = Path(tempfile.mkdtemp(prefix="paper_repro_before_after_"))
    trees = {code: scratch / f"{code}-{sha[:10]}" for code, sha in shas.items()}
    for code, tree in trees.items():
        git("worktree", "add", "--detach", str(tree), shas[code])
    frames = []
    try:
        for round_ in range(args.rounds):
            for bench in args.benches:
                for code in common.alternating(list(CODES), round_):
                    out = scratch / f"{code}-{bench}-r{round_}.parquet"
                    run_one(trees[code], bench, bench_args(args, bench, args.seed + round_, out))
                    frame = pd.read_parquet(out)
                    frame["code"], frame["code_sha"], frame["round"] = code, frame.get("git_sha"), round_
                    frames.append(frame)
    finally:
        for tree in trees.values():
            git("worktree", "remove", "--force", str(tree))
        shutil.rmtree(scratch, ignore_errors=True)

    raw = pd.concat(frames, ignore_index=True)
    results = common.Results(BENCH, args, before_sha=before_sha, after_sha=after_sha, rounds=args.rounds,
                             size=args.size, steps=args.cell_steps, batch_size=args.batch_size, dev=args.dev,
                             test_limit=args.test_limit)
    for row in raw.to_dict("records"):   # every sub-run's rows, as samples of this run
        results.add(f"{row['code']}:{row['bench']}:{row['variant']}", row["metric"], row["value"], row.get("unit") or "",
                    repeat=row["round"], backbone=row.get("backbone"))
    table = compare(raw, args.backbone)
    for item in table:
        for metric in ("before", "after", "after_vs_before", "target", "met"):
            results.summary(item["quantity"], metric, item[metric], "")
    print()
    print(common.format_table([{k: (round(v, 3) if isinstance(v, float) else v) for k, v in item.items()}
                               for item in table]))
    print(f"before = {before_sha[:10]}, after = {after_sha[:10]}; medians over {args.rounds} round(s); "
          f"{common.describe_machine()}")
    results.write(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
