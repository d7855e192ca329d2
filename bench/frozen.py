"""Wall-clock of a frozen-backbone cell (`model.finetune: frozen`: head + classifier on cached hidden states) vs a
full fine-tuning cell: same encoder, head, subset, steps, batch size, eval points, dev subsample and test split, in
one process.

The layer cache (train/layer_cache.py: every window's fused-layer states of the train, valid and test splits) is
built once before the cells and reported separately (`layer_cache_build_s`); a cache already on disk is reused and
its recorded build time reported (`build_measured_now` 0). Both variants run as the 2nd+ cell of a sweep process
(splits, features and pristine backbone primed, untimed), in alternating order over repeats (full frozen, frozen
full, ...; heads rotated); repeat r trains with seed `--seed + r`. The headline, per head, is the median over
repeats of the paired ratio full / frozen of the cell's wall-clock (target >= 20x). A frozen cell still runs its
head: the speedup is bounded by (encoder + head) / head, large for `last` (a classifier on z_L), about 7-10x on
MiniLM for the heads matched to one extra encoder layer's parameters (dwatt, deeper, concat).

  python bench/frozen.py                                        # minilm-l6, 100 sentences, 200 steps, 3 repeats
  python bench/frozen.py --steps 4 --size 20 --dev 50 --test-limit 100 --repeats 1   # validation only
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import common  # noqa: E402
from paper_repro.train import cell, layer_cache  # noqa: E402

BENCH = "frozen"
VARIANTS = ("full", "frozen")
PARTS = ("total_s", "load_s", "tokenize_s", "train_s", "eval_s", "other_s", "step_time_s")
SPEEDUP_TARGET = 20.0   # frozen cell >= 20x faster than the full cell


def build_caches(config, results: "common.Results") -> dict[str, float]:
    """Open or build the layer caches of the three splits (timed); rows for each split and the total."""
    splits = cell.load_splits(config.data.data_dir, config.data.hub_id, config.data.convert_iob1,
                              config.data.strict_iob2)
    pristine = cell.pristine_backbone(config.model.backbone, config.model.revision)
    total = {"layer_cache_build_s": 0.0, "layer_cache_gib": 0.0, "build_measured_now": 1.0}
    device = common.device_of(pristine.model)
    for name in ("train", "valid", "test"):
        started = common.now(device)
        cache = layer_cache.layer_cache(splits[name], pristine.tokenizer, pristine.model, config.model.max_length,
                                        config.model.head.fuse_embeddings, progress=sys.stderr.isatty(),
                                        source=pristine.source)
        seconds = common.now(device) - started if cache.built else float(cache.meta["build_s"])
        gib = cache.hidden.size * cache.hidden.itemsize / 2**30
        total["layer_cache_build_s"] += seconds
        total["layer_cache_gib"] += gib
        total["build_measured_now"] = min(total["build_measured_now"], float(cache.built))
        results.add("frozen", "layer_cache_build_s", seconds, "s", split=name, built_now=cache.built)
        results.add("frozen", "layer_cache_gib", gib, "GiB", split=name, built_now=cache.built)
        print(f"[{BENCH}] layer cache {name}: {cache.tokens} subwords x {cache.num_layers} x {cache.hidden_size}, "
              f"{gib:.2f} GiB, {'built in' if cache.built else 'found on disk (built in'} {seconds:.1f}s"
              f"{'' if cache.built else ')'} at {cache.path}")
    return total


def main(argv: list[str] | None = None) -> int:
    parser = common.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--heads", type=common.str_list, default=["last", "dwatt"],
                        help="fusion heads, each run full and frozen (a head's own compute bounds the speedup)")
    args = parser.parse_args(argv)
    common.setup(args)
    results = common.Results(BENCH, args, size=args.size, steps=args.steps, batch_size=args.batch_size,
                             dev=args.dev, eval_points=args.eval_points, test_limit=args.test_limit)
    print(f"[{BENCH}] {common.describe_machine()}")

    samples: dict[tuple[str, str], list[dict]] = {(h, v): [] for h in args.heads for v in VARIANTS}
    with common.cells_dir(args.keep_cells) as folder:
        base = common.cell_config(args, folder, BENCH)
        common.prime_caches(base)  # untimed: the state a sweep's earlier cells leave behind
        build = build_caches(base, results)
        for metric, value in build.items():
            results.summary("frozen", metric, value, {"layer_cache_gib": "GiB", "build_measured_now": "bool"}.get(metric, "s"))
        for repeat in range(args.repeats):
            for head in common.rotated(args.heads, repeat):
                for position, variant in enumerate(common.alternating(VARIANTS, repeat)):
                    config = common.cell_config(args, folder, BENCH, train__seed=args.seed + repeat,
                                                model__head__name=head, model__finetune=variant)
                    outcome = common.run_ours(config)
                    outcome = {k: outcome[k] for k in (*PARTS, "evals", "f1_test", "f1_strict_test", "f1_dev")}
                    samples[(head, variant)].append(outcome)
                    results.add_many(f"{head}-{variant}", outcome, common.unit_of, repeat=repeat,
                                     seed=args.seed + repeat, position=position, head=head, finetune=variant)
                    print(f"[{BENCH}] repeat {repeat} {head:<9} {variant:<6} total {outcome['total_s']:.2f}s "
                          f"(train {outcome['train_s']:.2f}s, eval {outcome['eval_s']:.2f}s) "
                          f"test F1 {outcome['f1_test']:.4f}", flush=True)

    table = []
    for head in args.heads:
        for variant in VARIANTS:
            runs = samples[(head, variant)]
            row = {"head": head, "finetune": variant}
            for part in PARTS:
                row[part] = common.median(s[part] for s in runs)
                results.summary(f"{head}-{variant}", part, row[part], "s", head=head, finetune=variant)
            row["f1_test"] = sum(s["f1_test"] for s in runs) / len(runs)
            row["f1_dev"] = sum(s["f1_dev"] for s in runs) / len(runs)
            results.summary(f"{head}-{variant}", "f1_test_mean", row["f1_test"], "F1", head=head, finetune=variant)
            results.summary(f"{head}-{variant}", "f1_dev_mean", row["f1_dev"], "F1", head=head, finetune=variant)
            table.append(row)
        pairs = list(zip(samples[(head, "full")], samples[(head, "frozen")]))
        for part in ("total_s", "train_s", "eval_s"):
            ratio = common.median(f[part] / z[part] for f, z in pairs if z[part] > 0)
            results.summary(f"{head}-frozen", f"speedup_{part[:-2]}", ratio, "x", head=head, finetune="frozen")
            table[-1][f"x_{part[:-2]}"] = ratio
        table[-1]["meets_target"] = table[-1]["x_total"] >= SPEEDUP_TARGET
        results.summary(f"{head}-frozen", "meets_target", float(table[-1]["meets_target"]), "bool", head=head,
                        finetune="frozen")
    print()
    print(common.format_table(table, ["head", "finetune", *PARTS, "f1_test", "f1_dev", "x_total", "x_train",
                                      "x_eval", "meets_target"]))
    print(f"layer cache: {build['layer_cache_gib']:.2f} GiB, built in {build['layer_cache_build_s']:.1f}s "
          f"({'now' if build['build_measured_now'] else 'earlier: the time recorded in its meta.json'}), not in the "
          f"frozen cells' times")
    print(f"target: a frozen cell >= {SPEEDUP_TARGET:.0f}x faster than a full cell (x_total = median over "
          f"{args.repeats} repeats of the paired ratio full / frozen)"
          + ("; TEST SPLIT LIMITED (validation run)" if args.test_limit else ""))
    results.write(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
