"""Scoring one evaluation: seqeval's reports (what `score_by_type` called before) vs `score_by_type` now.

Before: `classification_report` in the default (conlleval) mode and in strict IOB2 mode, each of which extracts
every side's entities twice (per type, then micro). Now: each side's entities found once with seqeval's own
extractors (`EntitySets`), the gold once per split per cell (`reused`; `fresh` builds it at every call too). Both
score the real dev subsample and test split against predictions made by corrupting the gold (a fraction of the
tags replaced at random: type swaps, invented and broken entities), in one process, alternating order per repeat;
the F1s are checked equal to the bit first. Pure Python: no model, no torch threads involved.

  python bench/scoring.py                      # dev subsample 1000 and the test split, 5 repeats
"""
from __future__ import annotations

import math
import random
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import common  # noqa: E402

BENCH = "scoring"
VARIANTS = ("seqeval_reports", "fresh", "reused")


def seqeval_reports(gold: list[list[str]], predicted: list[list[str]], types) -> tuple[dict, dict]:
    """`score_by_type` as it was: seqeval's `classification_report` in both modes (the reference the tests compare
    the new scorer with, to the bit)."""
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    default = classification_report(gold, predicted, output_dict=True, zero_division=0)
    strict = classification_report(gold, predicted, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    metrics = {}
    for suffix, report in (("", default), ("_strict", strict)):
        micro = report["micro avg"]
        metrics.update({f"f1{suffix}": float(micro["f1-score"]), f"precision{suffix}": float(micro["precision"]),
                        f"recall{suffix}": float(micro["recall"])})
    by_type = {t: float(default[t]["f1-score"]) if t in default else math.nan for t in types}
    return metrics, by_type


def corrupt(tags: list[list[str]], rng: random.Random, labels: list[str], rate: float = 0.08) -> list[list[str]]:
    """Prediction-like noise: each tag replaced by a random label with probability `rate`."""
    return [[rng.choice(labels) if rng.random() < rate else tag for tag in sentence] for sentence in tags]


def main(argv: list[str] | None = None) -> int:
    from paper_repro.data.conll import ENTITY_TYPES, LABELS
    from paper_repro.train.evaluate import EntitySets, score_by_type

    parser = common.make_parser(__doc__.splitlines()[0], repeats=5)
    parser.add_argument("--rate", type=float, default=0.08, help="fraction of predicted tags corrupted")
    args = parser.parse_args(argv)
    common.setup(args)
    results = common.Results(BENCH, args, dev=args.dev, rate=args.rate)
    print(f"[{BENCH}] {common.describe_machine()}")
    with common.cells_dir(False) as folder:
        config = common.cell_config(args, folder, BENCH)
        splits = common.read_splits(config, args.test_limit)
    from paper_repro.train.cell import dev_indices

    dev = dev_indices(config, len(splits["valid"].sentences))
    sets = {"dev": [list(splits["valid"].sentences[i].tags) for i in dev],
            "test": [list(s.tags) for s in splits["test"].sentences]}
    table = []
    for name, gold in sets.items():
        predicted = corrupt(gold, random.Random(args.seed), list(LABELS), args.rate)
        gold_sets = EntitySets.of(gold)
        scorers = {"seqeval_reports": lambda: seqeval_reports(gold, predicted, ENTITY_TYPES),
                   "fresh": lambda: score_by_type(gold, predicted, ENTITY_TYPES),
                   "reused": lambda: score_by_type(gold_sets, predicted, ENTITY_TYPES)}
        outputs = {v: scorers[v]() for v in VARIANTS}     # also a warm-up
        reference = outputs["seqeval_reports"]
        same = all(outputs[v][0] == reference[0] and all(
            (math.isnan(a) and math.isnan(b)) or a == b for a, b in zip(outputs[v][1].values(), reference[1].values()))
            for v in VARIANTS)
        if not same:
            print(f"[{BENCH}] {name}: the scorers disagree: {outputs}", file=sys.stderr)
            return 1
        seconds = {v: [] for v in VARIANTS}
        for repeat in range(args.repeats):
            for position, variant in enumerate(common.rotated(list(VARIANTS), repeat)):
                started = time.perf_counter()
                scorers[variant]()
                seconds[variant].append(time.perf_counter() - started)
                results.add(f"{name}-{variant}", "score_s", seconds[variant][-1], "s", repeat=repeat,
                            position=position, split=name, sentences=len(gold))
        before = common.median(seconds["seqeval_reports"])
        for variant in VARIANTS:
            value = common.median(seconds[variant])
            results.summary(f"{name}-{variant}", "score_s", value, "s", split=name, sentences=len(gold))
            results.summary(f"{name}-{variant}", "speedup", before / value, "x seqeval_reports", split=name,
                            sentences=len(gold))
            table.append({"split": name, "sentences": len(gold), "scorer": variant, "seconds": value,
                          "speedup": before / value, "f1": reference[0]["f1"], "f1_strict": reference[0]["f1_strict"]})
    print()
    print(common.format_table(table))
    print(f"medians over {args.repeats} repeats; every scorer's floats equal seqeval's reports (checked first)")
    results.write(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
