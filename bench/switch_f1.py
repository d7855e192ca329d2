"""Test F1 and cell time of the speed switches (numerics-changing config fields, off by default) vs the plain cell.

Each variant is a set of `key=value` overrides of the benchmark's cell (`--variants name:key=value;key=value,...`,
default: the switches one by one and all together); `off` is the plain cell. Every variant runs the same seeds
(`--repeats` seeds from `--seed`), the same subset, steps, dev subsample and full test split, in one process with
warm caches, variants in alternating order per seed. Summary per variant: mean test/dev F1, the mean and min/max
of the paired (same seed) test-F1 difference to `off` in points, and the median paired ratios of cell, train and
eval time to `off`. Timings are only comparable when the machine is otherwise idle.

  python bench/switch_f1.py --threads 1 --eval-points 2
  python bench/switch_f1.py --threads 1 --base 'model.finetune=frozen;model.head.name=dwatt' --variants words:train.head_words_only=true
  python bench/switch_f1.py --size 20 --dev 50 --steps 4 --test-limit 50 --repeats 1   # validation only
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import common  # noqa: E402

BENCH = "switch_f1"
DEFAULT_VARIANTS = {
    "bucket8": {"train.length_bucket_tokens": 8},
    "train_bf16": {"train.mixed_precision": "bf16"},
    "eval_bf16": {"train.eval_precision": "bf16"},
    "freeze_emb": {"train.freeze_word_embeddings": True},
    "all": {"train.length_bucket_tokens": 8, "train.mixed_precision": "bf16", "train.eval_precision": "bf16",
            "train.freeze_word_embeddings": True},
}
F1_TOLERANCE = 1.0    # points


def parse_variants(text: str) -> dict[str, dict]:
    """`name:key=value;key=value,name2:...` -> {name: overrides}; values parsed as in `paper-repro cell`."""
    from paper_repro.config import parse_override

    variants = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, body = item.partition(":")
        variants[name] = dict(parse_override(pair) for pair in body.split(";") if pair.strip())
    return variants


def main(argv: list[str] | None = None) -> int:
    parser = common.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--variants", type=parse_variants, default=DEFAULT_VARIANTS,
                        help="name:key=value;key=value,... (default: " + ", ".join(DEFAULT_VARIANTS) + ")")
    parser.add_argument("--base", type=lambda text: parse_variants(f"base:{text}")["base"], default={},
                        help="key=value;key=value,... of every cell, `off` included (e.g. "
                             "'model.finetune=frozen;model.head.name=dwatt' for the frozen track)")
    args = parser.parse_args(argv)
    if "train.seed" in args.base:
        parser.error("--base: train.seed is set per repeat (--seed, --repeats)")
    common.setup(args)
    variants = {"off": {}, **args.variants}
    results = common.Results(BENCH, args, size=args.size, steps=args.steps, batch_size=args.batch_size, dev=args.dev,
                             eval_points=args.eval_points, test_limit=args.test_limit,
                             base=";".join(f"{k}={v}" for k, v in args.base.items()))
    print(f"[{BENCH}] {common.describe_machine()}")
    keys = ("f1_test", "f1_dev", "total_s", "train_s", "eval_s", "step_time_s")
    samples: dict[str, list[dict]] = {v: [] for v in variants}
    with common.cells_dir(args.keep_cells) as folder:
        base = {k.replace(".", "__"): v for k, v in args.base.items()}
        common.prime_caches(common.cell_config(args, folder, BENCH, **base))
        for repeat in range(args.repeats):
            seed = args.seed + repeat
            for position, name in enumerate(common.alternating(list(variants), repeat)):
                overrides = {**base, **{k.replace(".", "__"): v for k, v in variants[name].items()}}
                config = common.cell_config(args, folder, BENCH, train__seed=seed, **overrides)
                outcome = common.run_ours(config)
                outcome = {k: outcome[k] for k in keys}
                samples[name].append(outcome)
                results.add_many(name, outcome, common.unit_of, repeat=repeat, seed=seed, position=position,
                                 overrides=str(variants[name]))
                print(f"[{BENCH}] seed {seed} {name:<11} test F1 {100 * outcome['f1_test']:.2f} "
                      f"(train {outcome['train_s']:.1f}s, eval {outcome['eval_s']:.1f}s, total {outcome['total_s']:.1f}s)",
                      flush=True)
    table = []
    base = samples["off"]
    for name in variants:
        rows = samples[name]
        gaps = [100 * (s["f1_test"] - b["f1_test"]) for s, b in zip(rows, base)]
        row = {"variant": name, "f1_test": sum(s["f1_test"] for s in rows) / len(rows),
               "f1_dev": sum(s["f1_dev"] for s in rows) / len(rows),
               "gap_pts": sum(gaps) / len(gaps), "gap_min": min(gaps), "gap_max": max(gaps)}
        for part in ("total_s", "train_s", "eval_s"):
            row[f"{part[:-2]}_x_off"] = common.median(s[part] / b[part] for s, b in zip(rows, base))
        row["within_1pt"] = abs(row["gap_pts"]) <= F1_TOLERANCE
        for metric, value in row.items():
            if metric != "variant":
                unit = "F1" if metric.startswith("f1") else "F1 points" if metric.startswith("gap") else \
                    "bool" if metric == "within_1pt" else "x off"
                results.summary(name, metric, float(value), unit, overrides=str(variants[name]))
        table.append(row)
    print()
    print(common.format_table(table))
    print(f"gap = test F1 minus `off`'s at the same seed (points; mean, min, max over {args.repeats} seeds); "
          f"time ratios: median paired ratio to `off`")
    results.write(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
