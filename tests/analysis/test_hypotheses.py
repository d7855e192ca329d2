"""Pre-registered hypothesis tests on hand-built frames: the verdicts, exact p-values and Holm across the block."""
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from paper_repro.analysis import hypotheses as H
from paper_repro.analysis import stats

CHECKOUT = Path(__file__).resolve().parents[2]


def frame(diffs: dict[int, list[float]], a: str = "dwatt", b: str = "deeper", base: float = 0.6,
          backbone: str = "minilm-l6", sampler: str = "sentences", stage: str = "eval", protocol: int = 2,
          data_seed: int = 0) -> pd.DataFrame:
    """Long-format test rows: at each size, pair k (seed k) has a - b = diffs[size][k] (NaN: no `a` cell)."""
    rows = []
    for size, ds in diffs.items():
        for k, d in enumerate(ds):
            for method, value in ((b, base + 0.01 * k), (a, base + 0.01 * k + d)):
                if np.isnan(value):
                    continue
                rows.append({"run_id": f"{method}-{backbone}-{sampler}-{size}-{data_seed}-{k}-{stage}",
                             "method": method, "backbone": backbone, "sampler": sampler, "size": size,
                             "data_seed": data_seed, "seed": k, "split": "test", "step": 100, "f1": value,
                             "stage": stage, "protocol": protocol})
    return pd.DataFrame(rows)


def block(*tests: dict, **top) -> H.HypothesisBlock:
    return H.parse_hypotheses({**top, "tests": list(tests)})


def pooled(id="H1", a="dwatt", b="deeper", sizes=(50,), **kw) -> dict:
    return {"id": id, "kind": "pooled", "a": a, "b": b, "sizes": list(sizes), "claim": "a beats b", **kw}


def interaction(id="H2", a="dwatt", b="deeper", small=(50, 100), large=(500,), **kw) -> dict:
    return {"id": id, "kind": "interaction", "a": a, "b": b, "small": list(small), "large": list(large), **kw}


SIZES = (50, 100, 200, 500, 1000)


def test_clear_effect_supported_reversed_refuted_noise_inconclusive():
    rng = np.random.default_rng(1)
    clear = {s: list(0.03 + rng.normal(0, 0.005, 5)) for s in SIZES}          # 25 pairs, +3 points each
    reversed_ = {s: [-d for d in v] for s, v in clear.items()}
    noise = {s: [0.01, -0.01, 0.02, -0.02, 0.0] for s in SIZES}              # symmetric around 0
    df = pd.concat([frame(clear, "dwatt", "deeper"), frame(reversed_, "concat", "deeper"),
                    frame(noise, "scalarmix", "deeper")])
    b = block(pooled("H1a", "dwatt", sizes=SIZES), pooled("H1b", "concat", sizes=SIZES),
              pooled("H1x", "scalarmix", sizes=SIZES))
    t = H.evaluate_hypotheses(df, b).set_index("id")
    assert list(t.columns) == [c for c in H.HYPOTHESIS_COLUMNS if c != "id"]
    assert t["verdict"].to_dict() == {"H1a": "supported", "H1b": "refuted", "H1x": "inconclusive"}
    assert t.loc["H1a", "n"] == 25 and t.loc["H1a", "n_positive"] == 25 and t.loc["H1b", "n_positive"] == 0
    assert t.loc["H1a", "estimate"] == pytest.approx(100 * np.mean([np.mean(v) for v in clear.values()]))
    assert t.loc["H1a", "ci_lo"] < t.loc["H1a", "estimate"] < t.loc["H1a", "ci_hi"]
    assert t.loc["H1a", "statistic"] == pytest.approx(t.loc["H1a", "estimate"] / 100)
    assert not t.loc["H1a", "exact"]                       # 2^25 > 100000: seeded random sign flips
    assert t.loc["H1a", "p"] == pytest.approx(1 / (H.N_PERMUTATIONS + 1))
    assert t.loc["H1x", "estimate"] == pytest.approx(0.0, abs=1e-9) and t.loc["H1x", "p"] > 0.3
    assert t.loc["H1a", "pairs_per_size"] == "50:5 100:5 200:5 500:5 1000:5"
    again = H.evaluate_hypotheses(df, b).set_index("id")   # seeded: identical
    pd.testing.assert_frame_equal(t, again)


def test_exact_permutation_p_by_hand():
    # 3 pairs, all positive: only the observed sign pattern reaches the observed mean -> p = 1/8
    t = H.evaluate_hypotheses(frame({50: [0.01, 0.02, 0.03]}), block(pooled())).iloc[0]
    assert t["exact"] and t["p"] == pytest.approx(1 / 8) and t["min_p"] == pytest.approx(1 / 8)
    assert t["p_opposite"] == pytest.approx(1.0)
    # mixed signs: sums of (±0.3, ±0.1, ±0.2) >= 0.4 (the observed 0.3 - 0.1 + 0.2) are 0.6 and 0.4 -> 2/8
    d = np.array([0.3, -0.1, 0.2])
    assert H.sign_flip_test(d)["p"] == pytest.approx(2 / 8)
    sums = [np.dot(sign, d) for sign in itertools.product((1, -1), repeat=3)]
    assert H.sign_flip_test(d, alternative="less")["p"] == pytest.approx(np.mean(np.array(sums) <= 0.4 + 1e-12))
    # pooled statistic = mean over sizes of the per-size mean: (0.1 + 0.4) / 2, sizes weigh the same
    t = H.evaluate_hypotheses(frame({50: [0.1, 0.1], 100: [0.4]}), block(pooled(sizes=(50, 100)))).iloc[0]
    assert t["estimate"] == pytest.approx(25.0) and t["p"] == pytest.approx(1 / 8)
    assert np.isnan(t["ci_lo"])                            # a size with one pair: no t-interval


def test_interaction_uses_complete_seeds_only():
    diffs = {50: [0.05, 0.04, 0.06, 0.05], 100: [0.03, 0.05, 0.04, 0.02], 500: [0.0, 0.01, -0.01, np.nan]}
    t = H.evaluate_hypotheses(frame(diffs), block(interaction(small=(50, 100), large=(500,)))).iloc[0]
    # seed 3 has no pair at 500 -> 3 units; d = mean(small) - large per unit
    d = [(0.05 + 0.03) / 2 - 0.0, (0.04 + 0.05) / 2 - 0.01, (0.06 + 0.04) / 2 + 0.01]
    assert t["n"] == 3 and t["unit"] == "seeds" and t["n_positive"] == 3
    assert t["estimate"] == pytest.approx(100 * np.mean(d)) and t["p"] == pytest.approx(1 / 8)
    assert t["pairs_per_size"] == "50:4 100:4 500:3 (3 complete units)"
    ci = stats.mean_ci(d)
    assert (t["ci_lo"], t["ci_hi"]) == pytest.approx((100 * ci["ci_lo"], 100 * ci["ci_hi"]))
    assert t["verdict"] == "inconclusive"                  # 3 units cannot go below p = 1/8
    assert "(dwatt − deeper) at 50/100 − (dwatt − deeper) at 500" == t["contrast"]


def test_holm_across_the_whole_block_only():
    df = pd.concat([frame({50: [0.01, 0.02, 0.03]}, "dwatt"), frame({50: [0.01, 0.02, -0.03]}, "concat"),
                    frame({s: [0.05] * 6 for s in (50, 100, 200)}, "lstm")])
    b = block(pooled("A", "dwatt"), pooled("B", "concat"), pooled("C", "lstm", sizes=(50, 100, 200)))
    t = H.evaluate_hypotheses(df, b).set_index("id")
    assert t["p_holm"].to_numpy() == pytest.approx(stats.holm(t["p"].to_numpy()))
    assert t["p_opposite_holm"].to_numpy() == pytest.approx(stats.holm(t["p_opposite"].to_numpy()))
    # 18 identical positive pairs: p = 1/2^18 via random flips ~ 1/100001; Holm multiplies the smallest by 3
    assert t.loc["C", "p_holm"] == pytest.approx(3 * t.loc["C", "p"])
    assert t.loc["C", "verdict"] == "supported"
    assert t.loc["A", "p_holm"] == pytest.approx(min(1.0, 2 * 1 / 8))
    # the same test alone is not adjusted
    alone = H.evaluate_hypotheses(df, block(pooled("A", "dwatt"))).iloc[0]
    assert alone["p_holm"] == pytest.approx(alone["p"])


def test_backbones_samplers_and_not_run():
    df = pd.concat([frame({50: [0.01, 0.02, 0.03]}, backbone="minilm-l6"),
                    frame({50: [0.01, 0.02, 0.03]}, backbone="mpnet-base")])
    t = H.evaluate_hypotheses(df, block(pooled("H1"), pooled("H9", "dwatt", "deeper_copy")))
    assert t[["id", "backbone"]].values.tolist() == [["H1", "minilm-l6"], ["H1", "mpnet-base"],
                                                     ["H9", "minilm-l6"], ["H9", "mpnet-base"]]
    assert (t[t["id"] == "H9"]["verdict"] == "not run").all() and (t[t["id"] == "H9"]["n"] == 0).all()
    # not-run rows do not count towards Holm: 2 run rows with p = 1/8 -> 1/4
    assert t[t["id"] == "H1"]["p_holm"].to_numpy() == pytest.approx([0.25, 0.25])
    one = H.evaluate_hypotheses(df, block(pooled("H1", backbone="mpnet-base")))
    assert one["backbone"].tolist() == ["mpnet-base"]
    top = H.evaluate_hypotheses(df, block(pooled("H1"), backbone="minilm-l6", sampler="sentences"))
    assert top[["backbone", "sampler"]].values.tolist() == [["minilm-l6", "sentences"]]
    missing = H.evaluate_hypotheses(df, block(pooled("H1", backbone="roberta")))
    assert missing["verdict"].tolist() == ["not run"]
    empty = H.evaluate_hypotheses(df.iloc[0:0], block(pooled("H1")))
    assert empty["verdict"].tolist() == ["not run"]


def test_only_the_declared_stage_and_no_verdict_for_v1():
    eval_ = frame({s: [0.03, 0.04, 0.05, 0.03, 0.04] for s in SIZES}, stage="eval")
    tune = frame({s: [-0.5] * 5 for s in SIZES}, stage="tune")              # must never enter
    b = block(pooled("H1", sizes=SIZES))
    t = H.evaluate_hypotheses(pd.concat([eval_, tune]), b).iloc[0]
    assert t["n"] == 25 and t["verdict"] == "supported" and t["estimate"] > 0
    tuned = H.evaluate_hypotheses(pd.concat([eval_, tune]), block(pooled("H1", sizes=SIZES), stage="tune")).iloc[0]
    assert tuned["verdict"] == "refuted"
    unstaged = frame({s: [0.03] * 5 for s in SIZES}, stage="")
    assert H.evaluate_hypotheses(unstaged, b)["verdict"].tolist() == ["not run"]   # stage eval: strict
    v1 = frame({s: [0.03, 0.04, 0.05, 0.03, 0.04] for s in SIZES}, stage="", protocol=1)
    t = H.evaluate_hypotheses(v1, block(pooled("H1", sizes=SIZES), stage=None)).iloc[0]
    assert t["n"] == 25 and t["verdict"] == H.V1_VERDICT and np.isfinite(t["p"])


def test_parse_errors_and_yaml(tmp_path):
    with pytest.raises(H.HypothesisError, match="kind"):
        block({"id": "X", "kind": "mixed", "a": "a", "b": "b"})
    with pytest.raises(H.HypothesisError, match="needs `sizes`"):
        block({"id": "X", "kind": "pooled", "a": "a", "b": "b"})
    with pytest.raises(H.HypothesisError, match="disjoint"):
        block(interaction(small=(50,), large=(50,)))
    with pytest.raises(H.HypothesisError, match="duplicate"):
        block(pooled("X"), pooled("X"))
    with pytest.raises(H.HypothesisError, match="unknown keys"):
        H.parse_hypotheses({"alpha": 0.05, "tests": [], "famliy": "x"})
    with pytest.raises(H.HypothesisError, match="alpha"):
        H.parse_hypotheses({"alpha": 5, "tests": []})
    path = tmp_path / "study.yaml"
    path.write_text("study: x\nhypotheses:\n  alpha: 0.01\n  tests:\n"
                    "    - {id: H1, kind: pooled, a: dwatt, b: deeper, sizes: [50]}\n")
    b = H.read_hypotheses(path)
    assert b.alpha == 0.01 and b.stage == "eval" and b.split == "test" and b.metric == "f1"
    assert b.tests[0].contrast == "dwatt − deeper"
    path.write_text("study: x\n")
    assert H.read_hypotheses(path) is None
    assert H.evaluate_study_hypotheses(frame({50: [0.1]}), path)[1].empty


@pytest.mark.parametrize("name", ["cpu_study", "paper"])
def test_committed_study_blocks_parse(name):
    path = CHECKOUT / "experiments" / f"{name}.yaml"
    if not path.exists():
        pytest.skip(f"{path} not in this checkout")
    b = H.read_hypotheses(path)
    if b is None:
        pytest.skip(f"{path} has no hypotheses block")
    assert b.stage == "eval" and len(b.tests) >= 1
    table = H.evaluate_hypotheses(frame({50: [0.01]}), b)        # one dwatt - deeper pair at 50
    with_pairs = "inconclusive" if b.planned_pairs is None else "interim"   # 1 pair of the planned ones
    assert len(table) == len(b.tests) and set(table["verdict"]) <= {"not run", with_pairs}
    h1a = table.set_index("id").loc["H1a"]
    assert h1a["n"] == 1 and h1a["p"] == pytest.approx(0.5) and h1a["verdict"] == with_pairs


def test_interim_until_every_tested_size_has_the_planned_pairs():
    """A clear gain at 4 of 5 planned pairs per size is `interim` (numbers shown, no verdict), and `supported` at 5;
    an interaction row counts complete seed units; a size with no pair at all keeps a row interim."""
    clear = {s: [0.03, 0.031, 0.029, 0.032, 0.03] for s in (50, 100)}
    tests = (pooled("H1a", sizes=(50, 100)), interaction("H2a", small=(50,), large=(100,)))
    full = H.evaluate_hypotheses(frame(clear), block(*tests, planned_pairs=5)).set_index("id")
    assert full.loc["H1a", "verdict"] == "supported" and full.loc["H2a", "verdict"] == "inconclusive"
    partial = {50: clear[50], 100: clear[100][:4]}
    t = H.evaluate_hypotheses(frame(partial), block(*tests, planned_pairs=5)).set_index("id")
    assert t.loc["H1a", "verdict"] == "interim" and t.loc["H1a", "p_holm"] < 0.05    # shown, not judged
    assert t.loc["H1a", "pairs_per_size"] == "50:5 100:4" and t.loc["H2a", "verdict"] == "interim"
    assert t.loc["H2a", "n"] == 4                                    # complete units only
    only_50 = H.evaluate_hypotheses(frame({50: clear[50]}), block(*tests, planned_pairs=5)).set_index("id")
    assert only_50.loc["H1a", "verdict"] == "interim"                # no pair at 100 yet
    assert only_50.loc["H2a", "verdict"] == "not run"                # no complete unit: nothing to show
    # H1b (size 50 only) has its 5 pairs, but its Holm p depends on H2a's, still short of them: interim too
    mixed = H.evaluate_hypotheses(frame(partial), block(pooled("H1b", sizes=(50,)), tests[1], planned_pairs=5))
    assert mixed.set_index("id").loc["H1b", "pairs_per_size"] == "50:5" and set(mixed["verdict"]) == {"interim"}
    unplanned = H.evaluate_hypotheses(frame(partial), block(*tests)).set_index("id")
    assert unplanned.loc["H1a", "verdict"] == "supported"            # without planned_pairs: judged as it stands
    for bad in (0, -1, 2.5, True, "8"):
        with pytest.raises(H.HypothesisError, match="planned_pairs"):
            block(*tests, planned_pairs=bad)


def test_seed_units_flip_a_seeds_pairs_together():
    """`unit: seeds` (the 2026-11-27 amendment): the estimate is unchanged; p comes from flipping whole (data_seed,
    seed) units, checked against all 2^U patterns by hand; the interval is the t-interval of the units' mean
    differences over sizes; `p_pairs` is the test as first registered (flipping pairs)."""
    rng = np.random.default_rng(3)
    diffs = {s: list(rng.normal(0.01, 0.02, 5)) for s in SIZES}
    df = frame(diffs)
    by_pair = H.evaluate_hypotheses(df, block(pooled(sizes=SIZES))).iloc[0]
    by_seed = H.evaluate_hypotheses(df, block(pooled(sizes=SIZES), unit="seeds")).iloc[0]
    units = np.array([np.mean([diffs[s][k] for s in SIZES]) for k in range(5)])
    assert by_seed["estimate"] == pytest.approx(by_pair["estimate"]) and by_seed["estimate"] == pytest.approx(
        100 * units.mean())
    sums = np.array([np.dot(sign, units) for sign in itertools.product((1, -1), repeat=5)])
    assert by_seed["exact"] and by_seed["min_p"] == pytest.approx(1 / 32)
    assert by_seed["p"] == pytest.approx(np.mean(sums >= units.sum() - 1e-12))
    assert by_seed["p_opposite"] == pytest.approx(np.mean(sums <= units.sum() + 1e-12))
    ci = stats.mean_ci(units)
    assert (by_seed["ci_lo"], by_seed["ci_hi"]) == pytest.approx((100 * ci["ci_lo"], 100 * ci["ci_hi"]))
    assert by_seed["p_pairs"] == pytest.approx(by_pair["p"]) and by_pair["p_pairs"] == by_pair["p"]
    assert by_seed["n"] == 25 and by_seed["unit"] == "seeds"
    assert by_seed["pairs_per_size"] == "50:5 100:5 200:5 500:5 1000:5 (5 seed units)"


def test_seed_units_do_not_count_one_seeds_sizes_as_independent_evidence():
    """Three seeds, each +2 points at all five sizes: 15 positive pairs look decisive when flipped one by one (p =
    2^-15), but they are three seeds' worth of evidence (p = 1/8, inconclusive)."""
    df = frame({s: [0.02, 0.021, 0.019] for s in SIZES})
    by_pair = H.evaluate_hypotheses(df, block(pooled(sizes=SIZES))).iloc[0]
    by_seed = H.evaluate_hypotheses(df, block(pooled(sizes=SIZES), unit="seeds")).iloc[0]
    assert by_pair["verdict"] == "supported" and by_pair["p"] == pytest.approx(2.0 ** -15)
    assert by_seed["verdict"] == "inconclusive" and by_seed["p"] == pytest.approx(1 / 8)
    assert by_seed["p_pairs"] == pytest.approx(2.0 ** -15)


def test_seed_units_while_units_are_incomplete_keep_the_registered_statistic():
    """A unit without a pair at some size (an interim look) still adds its pairs at their size's weight: the
    statistic is the mean over sizes of the per-size means, whichever unit flips."""
    diffs = {50: [0.01, 0.03, -0.01, 0.02], 100: [0.02, 0.01, np.nan, np.nan]}
    t = H.evaluate_hypotheses(frame(diffs), block(pooled(sizes=(50, 100)), unit="seeds")).iloc[0]
    assert t["estimate"] == pytest.approx(100 * np.mean([np.mean([0.01, 0.03, -0.01, 0.02]), 0.015]))
    assert t["statistic"] == pytest.approx(t["estimate"] / 100) and t["min_p"] == pytest.approx(1 / 16)
    assert t["pairs_per_size"] == "50:4 100:2 (4 seed units)"


def test_unit_and_amendments_parse_errors():
    with pytest.raises(H.HypothesisError, match="unit"):
        block(pooled(), unit="cells")
    for bad in ([{"date": "2026-11-27"}], [{"date": "2026-11-27", "text": " "}], {"date": "x", "text": "y"},
                [{"date": "2026-11-27", "text": "x", "by": "me"}]):
        with pytest.raises(H.HypothesisError, match="amendments"):
            block(pooled(), amendments=bad)
    b = block(pooled(), unit="seeds", amendments=[{"date": "2026-11-27", "text": "Flip seeds,\n  not pairs."}])
    assert b.unit == "seeds" and b.amendments == (("2026-11-27", "Flip seeds, not pairs."),)
    assert block(pooled()).unit == "pairs" and block(pooled()).amendments == ()


@pytest.mark.parametrize("name", ["cpu_study", "frozen_study"])
def test_the_studies_declare_the_seed_unit_amendment(name):
    b = H.read_hypotheses(CHECKOUT / "experiments" / f"{name}.yaml")
    assert b.unit == "seeds" and len(b.amendments) == {"cpu_study": 2, "frozen_study": 1}[name]
    date, text = b.amendments[0]
    assert date == "2026-11-27" and "(data_seed, seed) unit" in text and "bench/sign_flip_units.py" in text
    assert b.finetune == {"cpu_study": "full", "frozen_study": "frozen"}[name]
    if name == "cpu_study":   # the family's `last` twin: exploratory, declared as such, and no test reads it
        date, text = b.amendments[1]
        assert date == "2026-12-07" and text.startswith("Exploratory, and declared after") and "no verdict" in text
        assert b.stage == "eval"
