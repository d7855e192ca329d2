import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from paper_repro.analysis import load, stats
from paper_repro.results.schema import CELL_SCHEMA, cell_table

from .conftest import DATA_SEEDS, SEEDS, STEPS_TOTAL, cell_rows, last_f1, method_f1, write_study


@pytest.fixture(scope="module")
def df(synth_study):
    return load.load_results(synth_study)


@pytest.fixture(scope="module")
def manifests(synth_study):
    return load.load_manifests(synth_study)


# ------------------------------------------------------------------ loading
def test_load_results_reads_done_cells_with_schema(df):
    assert list(df.columns) == CELL_SCHEMA.names
    assert df["run_id"].nunique() == 6 * 3 * 2 * 5
    assert set(df["split"]) == {"dev", "test"}


def test_load_prefers_results_parquet_and_skips_cells_without_done(tmp_path):
    study = write_study(tmp_path, "s", methods=("last", "dwatt"), sizes=(50,), data_seeds=(0,), seeds=(0, 1))
    (study / "cells" / "dwatt-n50-d0-s1.done").unlink()
    df = load.load_results(study)
    assert df["run_id"].nunique() == 3
    assert len(load.load_manifests(study)) == 3
    only = cell_table(cell_rows("x", "concat", 50, 0, 0, 0.5))
    import pyarrow.parquet as pq

    pq.write_table(only, study / "results.parquet")
    df = load.load_results(study)
    assert set(df["run_id"]) == {"x"}


def test_load_missing_dir_raises_and_empty_dir_gives_empty_frame(tmp_path):
    with pytest.raises(FileNotFoundError):
        load.load_results(tmp_path / "nope")
    df = load.load_results(tmp_path)
    assert df.empty and list(df.columns) == CELL_SCHEMA.names
    assert load.load_manifests(tmp_path) == []


def test_load_manifests_sets_run_id_and_skips_bad_json(tmp_path):
    study = write_study(tmp_path, "s", methods=("last",), sizes=(50,), data_seeds=(0,), seeds=(0, 1))
    (study / "cells" / "last-n50-d0-s1.manifest.json").write_text("{not json")
    manifests = load.load_manifests(study)
    assert [m["run_id"] for m in manifests] == ["last-n50-d0-s0"]
    index = load.manifest_index(manifests)
    assert index.iloc[0][["method", "size", "seed"]].tolist() == ["last", 50, 0]


def test_method_order_and_colors():
    assert load.method_order(["zeta", "dwatt", "last", "alpha", "deeper"]) == ["last", "deeper", "dwatt", "alpha", "zeta"]
    assert set(load.METHOD_ORDER) <= set(load.METHOD_COLORS)
    assert len(set(load.METHOD_COLORS.values())) == len(load.METHOD_COLORS)
    assert load.method_color("zeta") == load.method_color("zeta")


# ------------------------------------------------------------------ basics
def test_mean_ci_known_values():
    r = stats.mean_ci([1, 2, 3, 4, 5])
    half = sps.t.ppf(0.975, 4) * np.std([1, 2, 3, 4, 5], ddof=1) / math.sqrt(5)
    assert r["mean"] == 3 and r["n"] == 5
    assert r["ci_half"] == pytest.approx(half) and r["ci_half"] == pytest.approx(1.9632, abs=1e-4)
    assert (r["ci_lo"], r["ci_hi"]) == pytest.approx((3 - half, 3 + half))


def test_mean_ci_single_and_empty():
    r = stats.mean_ci([0.7, np.nan])
    assert r["n"] == 1 and r["mean"] == 0.7 and math.isnan(r["ci_half"]) and math.isnan(r["ci_lo"])
    r = stats.mean_ci([])
    assert r["n"] == 0 and math.isnan(r["mean"])


def test_holm_known_values():
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    out = stats.holm([0.01, np.nan, 0.04])
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.04)
    assert stats.holm([0.6, 0.7]).tolist() == [1.0, 1.0]
    assert stats.holm([]).size == 0


def test_f1_vs_size_known_means(df):
    table = stats.f1_vs_size(df)
    row = table[(table["method"] == "last") & (table["size"] == 50)].iloc[0]
    values = [last_f1(0, ds, s) for ds in DATA_SEEDS for s in SEEDS]
    expected = stats.mean_ci(values)
    assert row["n"] == 10
    assert row["mean"] == pytest.approx(0.6025)
    assert row["ci_half"] == pytest.approx(expected["ci_half"])
    assert load.method_order(table["method"].unique()) == table["method"].drop_duplicates().tolist()


# ------------------------------------------------------------------ paired
def test_planted_gain_is_detected(df):
    p = stats.paired_differences(df, "dwatt", "last")
    assert p["size"].tolist() == [50, 100, 200]
    assert (p["n_pairs"] == 10).all()
    assert p["mean_diff"].to_numpy() == pytest.approx([0.05] * 3, abs=0.003)
    assert (p["ci_lo"] > 0.04).all() and (p["ci_hi"] < 0.06).all()
    assert (p["p_wilcoxon"] < 0.01).all() and (p["p_ttest"] < 1e-6).all()
    assert (p["p_wilcoxon_holm"] >= p["p_wilcoxon"]).all() and (p["p_wilcoxon_holm"] < 0.05).all()
    assert (p["mean_method"] - p["mean_baseline"]).to_numpy() == pytest.approx(p["mean_diff"].to_numpy())
    assert p["rel_gain"].to_numpy() == pytest.approx((p["mean_diff"] / p["mean_baseline"]).to_numpy())
    assert ((p["rel_ci_lo"] < p["rel_gain"]) & (p["rel_gain"] < p["rel_ci_hi"])).all()


def test_no_gain_ci_contains_zero(df):
    same = stats.paired_differences(df, "scalarmix", "last")       # identical values
    assert (same["mean_diff"] == 0).all() and (same["ci_lo"] <= 0).all() and (same["ci_hi"] >= 0).all()
    assert (same["p_wilcoxon"] == 1).all() and (same["p_ttest"] == 1).all()
    noisy = stats.paired_differences(df, "attnres", "last")        # mean-zero noise
    assert ((noisy["ci_lo"] < 0) & (noisy["ci_hi"] > 0)).all()
    assert (noisy["p_wilcoxon"] > 0.05).all()


def test_bootstrap_is_deterministic(df):
    a = stats.paired_differences(df, "dwatt", "deeper", n_boot=2000)
    b = stats.paired_differences(df, "dwatt", "deeper", n_boot=2000)
    pd.testing.assert_frame_equal(a, b)


def test_small_n_edge_cases():
    five = np.array([0.01, 0.02, 0.03, 0.04, 0.05])
    p_w, p_t = stats._paired_tests(five)
    assert p_w == pytest.approx(0.0625) and stats.min_wilcoxon_p(5) == pytest.approx(0.0625)
    assert p_t == pytest.approx(sps.ttest_1samp(five, 0).pvalue)
    assert all(math.isnan(x) for x in stats._paired_tests(np.array([0.1])))
    assert stats._paired_tests(np.zeros(4)) == (1.0, 1.0)
    ci = stats.bootstrap_ci(np.array([0.5]), np.array([0.4]))
    assert math.isnan(ci["ci_lo"]) and math.isnan(ci["rel_ci_hi"])


def test_paired_single_seed_and_missing_baseline(tmp_path):
    study = write_study(tmp_path, "s", methods=("last", "dwatt"), sizes=(50, 100), data_seeds=(0,), seeds=(0,))
    df = load.load_results(study)
    p = stats.paired_differences(df, "dwatt", "last")
    assert (p["n_pairs"] == 1).all() and p["ci_lo"].isna().all() and p["p_wilcoxon"].isna().all()
    assert p["p_wilcoxon_holm"].isna().all()
    assert stats.paired_differences(df, "dwatt", "deeper").empty
    assert stats.all_paired(df)["baseline"].unique().tolist() == ["last"]


def test_comparison_pairs_skips_mirrored_baselines():
    pairs = stats.comparison_pairs(["last", "deeper", "dwatt"], ("deeper", "last"))
    assert pairs == [("dwatt", "deeper"), ("deeper", "last"), ("dwatt", "last")]


# ------------------------------------------------------------------ step efficiency
def test_steps_to_reach_known_curve():
    steps, values = [1, 10, 100, 1000], [0.0, 0.3, 0.6, 0.9]
    assert stats.steps_to_reach_curve(steps, values, 0.81) == pytest.approx(10**2.7)
    assert stats.steps_to_reach_curve(steps, values, 0.6) == pytest.approx(100)
    assert stats.steps_to_reach_curve(steps, values, -1.0) == 1
    assert math.isnan(stats.steps_to_reach_curve(steps, values, 0.95))
    assert stats.steps_to_reach_curve([0, 10, 100], [0.5, 0.2, 0.6], 0.4) == pytest.approx(10 ** 1.5)
    assert math.isnan(stats.steps_to_reach_curve(steps, values, float("nan")))


def test_normalized_auc_known_curve():
    # linear in log(step): mean over the log grid = mean of the end points
    assert stats.normalized_auc([1, 10, 100], [0.0, 0.5, 1.0]) == pytest.approx(0.5)
    assert stats.normalized_auc([10, 100], [0.4, 0.4]) == pytest.approx(0.4)
    assert math.isnan(stats.normalized_auc([100], [0.4]))


def test_step_efficiency_cells_on_synthetic_curves(df):
    cells = stats.step_efficiency_cells(df, frac=0.9, reference="last")
    last = cells[cells["method"] == "last"]
    # f(step) = F log(step) / log(200): 90% of F is reached at 200 ** 0.9, exactly (linear in log-step)
    assert last["steps_to_reach"].to_numpy() == pytest.approx([STEPS_TOTAL**0.9] * len(last))
    row = cells[(cells["method"] == "dwatt") & (cells["size"] == 100) & (cells["data_seed"] == 1)
                & (cells["seed"] == 3)].iloc[0]
    f_last, f_dwatt = last_f1(1, 1, 3), method_f1("dwatt", 1, 1, 3)
    assert row["target"] == pytest.approx(0.9 * f_last)
    assert row["steps_to_reach"] == pytest.approx(math.exp(0.9 * f_last / f_dwatt * math.log(STEPS_TOTAL)))
    assert row["auc"] == pytest.approx(f_dwatt * (math.log(2) / math.log(STEPS_TOTAL) + 1) / 2)
    summary = stats.step_efficiency(df)
    s = summary[(summary["method"] == "dwatt")]
    assert (s["n_reached"] == 10).all()
    d = summary.set_index(["size", "method"])["steps_to_reach_median"]
    assert (d.xs("dwatt", level="method") < d.xs("deeper", level="method")).all()


def test_step_efficiency_without_dev_rows_or_reference(tmp_path):
    study = write_study(tmp_path, "s", methods=("dwatt",), sizes=(50,), data_seeds=(0,), seeds=(0,), with_dev=False)
    df = load.load_results(study)
    assert stats.step_efficiency(df).empty and stats.dev_curves(df).empty
    study = write_study(tmp_path, "t", methods=("dwatt",), sizes=(50,), data_seeds=(0,), seeds=(0,))
    cells = stats.step_efficiency_cells(load.load_results(study))
    assert cells["steps_to_reach"].isna().all() and cells["auc"].notna().all()


# ------------------------------------------------------------------ tables
def test_per_type_table(df):
    t = stats.per_type_table(df)
    row = t[(t["method"] == "last") & (t["size"] == 50) & (t["type"] == "PER")].iloc[0]
    assert row["mean"] == pytest.approx(0.6025 + 0.08) and row["n"] == 10
    assert set(t["type"]) == {"PER", "LOC", "ORG", "MISC"}


def test_cost_and_budget_tables(df, manifests):
    cost = stats.cost_table(df, manifests).set_index("method")
    assert cost.loc["dwatt", "step_time_ms"] == pytest.approx(75.0)
    assert cost.loc["last", "total_s"] == pytest.approx(14.0)
    no_manifest = stats.cost_table(df, []).set_index("method")
    assert no_manifest.loc["dwatt", "step_time_ms"] == pytest.approx(75.0)    # wall_clock_s / step
    assert no_manifest["total_s"].isna().all()
    budget = stats.budget_table(df, manifests)
    assert (budget["source"] == "manifest").all() and budget["n_cells"].sum() == 180
    fallback = stats.budget_table(df, []).set_index("method")
    assert fallback.loc["dwatt", "deviation"] == pytest.approx(1_180_000 / 1_185_000 - 1)


def test_depth_weights(manifests, df):
    w = stats.depth_weights(manifests, df)
    assert set(w["source"]) == {"depth_attention", "scalarmix"}
    att = w[(w["source"] == "depth_attention") & (w["run_id"] == "dwatt-n50-d0-s0")]
    assert att.groupby("type")["weight"].sum().to_numpy() == pytest.approx([1.0] * 5)
    assert stats.depth_weights([], df).empty


def test_completeness_lists_missing_cells(tmp_path):
    study = write_study(tmp_path, "s", methods=("last", "dwatt"), sizes=(50,), data_seeds=(0,), seeds=(0, 1))
    (study / "cells" / "dwatt-n50-d0-s1.done").unlink()
    df = load.load_results(study)
    comp = stats.completeness(df, load.load_manifests(study))
    assert comp["missing"][["method", "seed"]].values.tolist() == [["dwatt", 1]]
    counts = comp["counts"].set_index("method")
    assert counts.loc["last", "n_cells"] == 2 and counts.loc["dwatt", "n_cells"] == 1
    assert comp["no_manifest"].empty
    assert stats.completeness(load.empty_results())["counts"].empty


def test_runs_differing_in_another_setting_are_not_averaged(synth_study):
    from paper_repro.analysis.load import load_results

    df = load_results(synth_study)
    other_rate = df[df["method"] == "dwatt"].assign(head_lr=1e-4, run_id=lambda d: d["run_id"] + "-lr")
    with pytest.raises(ValueError, match="analyse each setting separately"):
        stats.cell_values(pd.concat([df, other_rate]))
