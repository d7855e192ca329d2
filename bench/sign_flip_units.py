"""Sign flips per pair vs per seed unit: the pooled test's error rate when a seed's pairs share sentences and init.

Protocol v2 nests the subsets (size N = the first N sentences of one permutation per data seed) and ties the init
seed to the data seed, so the pairs of one (data_seed, seed) unit at different sizes are correlated. This simulates
the pooled test (`hypotheses.pooled_test`, the code the study runs, with fewer random sign patterns for the per-pair
version) on null data with that structure: difference d[u, s] = sqrt(icc) z_u + sqrt(1 - icc) e_us (a unit-level
share `icc` of the variance, no effect), for `--units` units x the study's sizes. It reports, per icc, how often the
one-sided test rejects at alpha (nominal: alpha) and how often the 95% interval covers 0 (nominal: 0.95), flipping
pairs (`unit: pairs`, the test as first registered) and whole units (`unit: seeds`, the amendment). No model, no
torch threads involved.

  python bench/sign_flip_units.py               # 8 units x sizes 50-1000, icc 0 / 0.2 / 0.5, 1000 null studies each
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import common  # noqa: E402

BENCH = "sign_flip_units"


def null_pairs(rng: np.random.Generator, units: int, sizes: list[int], icc: float) -> pd.DataFrame:
    """One null study: a difference per (unit, size), a share `icc` of its variance shared by the unit's sizes."""
    shared = rng.normal(0.0, np.sqrt(icc), units)
    diff = shared[:, None] + rng.normal(0.0, np.sqrt(1.0 - icc), (units, len(sizes)))
    return pd.DataFrame([{"size": size, "data_seed": u, "seed": u, "diff": diff[u, j]}
                         for u in range(units) for j, size in enumerate(sizes)])


def main(argv: list[str] | None = None) -> int:
    from paper_repro.analysis.hypotheses import pooled_test

    parser = common.make_parser(__doc__.splitlines()[0], repeats=1)
    parser.add_argument("--units", type=int, default=8, help="(data_seed, seed) units: the eval grid's paired seeds")
    parser.add_argument("--sizes", type=common.int_list, default=[50, 100, 200, 500, 1000])
    parser.add_argument("--icc", type=lambda t: [float(x) for x in t.split(",")], default=[0.0, 0.2, 0.5],
                        help="unit-level shares of the differences' variance")
    parser.add_argument("--sims", type=int, default=1000, help="null studies per icc")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--resamples", type=int, default=2000,
                        help="random sign patterns of a test that cannot be enumerated (the study uses 100000)")
    args = parser.parse_args(argv)
    results = common.Results(BENCH, args, units=args.units, sizes=" ".join(map(str, args.sizes)), sims=args.sims,
                             alpha=args.alpha, resamples=args.resamples)
    rng = np.random.default_rng(args.seed)
    table = []
    for icc in args.icc:
        rejected = {"pairs": 0, "seeds": 0}
        covered = {"pairs": 0, "seeds": 0}
        for _ in range(args.sims):
            pairs = null_pairs(rng, args.units, args.sizes, icc)
            for unit in rejected:
                result = pooled_test(pairs, tuple(args.sizes), unit, n_resamples=args.resamples)
                rejected[unit] += result["p"] < args.alpha
                covered[unit] += result["ci_lo"] <= 0.0 <= result["ci_hi"]
        row = {"icc": icc, **{f"reject_{u}": rejected[u] / args.sims for u in rejected},
               **{f"cover_{u}": covered[u] / args.sims for u in covered}}
        table.append(row)
        for metric, value in row.items():
            if metric != "icc":
                results.summary(f"icc-{icc:g}", metric, value, "fraction", icc=icc)
    print()
    print(common.format_table(table))
    print(f"{args.sims} null studies per icc, {args.units} units x sizes {args.sizes}; nominal: reject {args.alpha}, "
          "cover 0.95")
    results.write(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
