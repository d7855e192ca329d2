import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from paper_repro.analysis import load, stats
from paper_repro.results.schema import CELL_SCHEMA, cell_table

from .conftest import (DATA_SEEDS, DEV_STEPS, SEEDS, STEPS_TOTAL, cell_rows, last_f1, method_f1, v1_rows,
                       write_full_stage, write_study)


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
    assert load.method_order(["dwatt", "deeper_copy", "last", "deeper"]) == ["last", "deeper", "deeper_copy", "dwatt"]
    assert set(load.METHOD_ORDER) <= set(load.METHOD_COLORS)
    assert len(set(load.METHOD_COLORS.values())) == len(load.METHOD_COLORS)
    assert load.method_color("zeta") == load.method_color("zeta")


def test_v1_tables_are_upgraded_on_load(tmp_path, caplog):
    """Committed v1 studies keep loading: strict `f1` -> `f1_strict`, `f1_default` -> `f1`, stage "", protocol 1."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from paper_repro.results.schema import CELL_SCHEMA_V1

    v2 = cell_rows("a", "last", 50, 0, 0, 0.6)
    (tmp_path / "old").mkdir()
    pq.write_table(pa.Table.from_pylist(v1_rows(v2), schema=CELL_SCHEMA_V1), tmp_path / "old" / "results.parquet")
    df = load.load_results(tmp_path / "old")
    assert list(df.columns) == CELL_SCHEMA.names and len(df) == len(v2)
    assert (df["protocol"] == 1).all() and (df["stage"] == "").all()
    assert df["f1"].to_numpy() == pytest.approx([r["f1"] for r in v2])
    assert df["f1_strict"].to_numpy() == pytest.approx([r["f1_strict"] for r in v2])
    assert load.has_v1(df) and load.protocols(df) == [1] and load.study_stages(df) == []
    # neither v1 nor v2: skipped with a warning, not an error
    bad = pa.Table.from_pylist(v1_rows(v2), schema=CELL_SCHEMA_V1).append_column("extra", pa.array([1] * len(v2)))
    pq.write_table(bad, tmp_path / "old" / "results.parquet")
    assert load.load_results(tmp_path / "old").empty and "skipping" in caplog.text


def test_select_stage(tmp_path):
    study = write_study(tmp_path, "st", methods=("last", "dwatt"), sizes=(50,), data_seeds=(0,), seeds=(0, 1),
                        stage="tune", offset=-0.3)
    write_study(tmp_path, "st", methods=("last", "dwatt"), sizes=(50,), data_seeds=(0,), seeds=(0, 1), stage="eval")
    df = load.load_results(study)
    assert set(load.study_stages(df)) == {"tune", "eval"}
    eval_df = load.select_stage(df, "eval")
    assert set(eval_df["stage"]) == {"eval"} and eval_df["run_id"].nunique() == 4
    assert load.select_stage(df, "budget_check").empty
    assert len(load.select_stage(df, None)) == len(df)
    unstaged = write_study(tmp_path, "un", methods=("last",), sizes=(50,), data_seeds=(0,), seeds=(0,))
    plain = load.load_results(unstaged)
    assert load.study_stages(plain) == [] and len(load.select_stage(plain, "eval")) == len(plain)


def test_in_yaml_order():
    from paper_repro.analysis.load import in_yaml_order

    seen = ["eval_ktype", "tune_family", "eval", "tune", "ad_hoc"]          # first seen in results.parquet
    assert in_yaml_order(seen, ["tune", "eval", "eval_ktype", "tune_family", "eval_mpnet"]) == [
        "tune", "eval", "eval_ktype", "tune_family", "ad_hoc"]     # undeclared last; eval_mpnet (no cells) left out
    assert in_yaml_order(seen, []) == seen


def test_full_data_stages(tmp_path):
    """Stages whose every cell trains on the full training set; a stage with any few-shot cell is not one."""
    study = write_study(tmp_path, "fd", methods=("last", "dwatt"), sizes=(50,), data_seeds=(0,), seeds=(0, 1),
                        stage="eval")
    write_full_stage(tmp_path, "fd", {"last": [0.7, 0.71], "dwatt": [0.75, 0.77]})
    write_full_stage(tmp_path, "fd", {"last": [0.7]}, stage="mixed")
    write_study(tmp_path, "fd", methods=("last",), sizes=(50,), data_seeds=(0,), seeds=(0,), stage="mixed")
    df = load.load_results(study)
    assert load.full_data_stages(df) == ["eval_full"]
    assert load.full_data_stages(df, exclude="eval_full") == []
    assert load.full_data_stages(load.select_stage(df, "eval")) == []


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


def test_ci_method_t_below_ten_pairs_bootstrap_from_ten(tmp_path, df):
    # 10 pairs per size in the full synthetic study -> bootstrap
    assert (stats.paired_differences(df, "dwatt", "last", n_boot=500)["ci_method"] == "bootstrap").all()
    study = write_study(tmp_path, "few", methods=("last", "dwatt"), sizes=(50,), data_seeds=(0,), seeds=SEEDS)
    few = load.load_results(study)
    p = stats.paired_differences(few, "dwatt", "last").iloc[0]
    assert p["n_pairs"] == 5 and p["ci_method"] == "t" and p["n_positive"] == 5
    d = np.array([method_f1("dwatt", 0, 0, s) - last_f1(0, 0, s) for s in SEEDS])
    lo, hi = sps.t.interval(0.95, 4, loc=d.mean(), scale=sps.sem(d))
    assert (p["ci_lo"], p["ci_hi"]) == pytest.approx((lo, hi))
    assert (p["rel_ci_lo"], p["rel_ci_hi"]) == pytest.approx((lo / p["mean_baseline"], hi / p["mean_baseline"]))
    # a 5-pair percentile bootstrap is about [min, max] of the pair means: narrower than the t-interval
    boot = stats.bootstrap_ci(d, np.zeros_like(d))
    assert boot["ci_hi"] - boot["ci_lo"] < p["ci_hi"] - p["ci_lo"]
    assert stats.paired_ci(np.ones(3), np.zeros(3))["ci_method"] == "t"
    assert stats.paired_ci(np.arange(10.0), np.zeros(10), n_boot=200)["ci_method"] == "bootstrap"


def test_pair_differences_long_format(df):
    cells = stats.cell_values(df)
    pairs = stats.pair_differences(cells, "f1", "attnres", "last")
    assert list(pairs.columns) == stats.PAIR_COLUMNS and len(pairs) == 30
    assert pairs["diff"].to_numpy() == pytest.approx((pairs["a"] - pairs["b"]).to_numpy())
    summary = stats.paired_from_cells(cells, "f1", "attnres", "last")
    assert pairs.groupby("size")["diff"].mean().to_numpy() == pytest.approx(summary["mean_diff"].to_numpy())
    assert pairs.groupby("size")["diff"].apply(lambda d: int((d > 0).sum())).tolist() == summary["n_positive"].tolist()
    both = stats.all_pair_differences(cells, "f1", [("dwatt", "deeper"), ("dwatt", "deeper_copy")])
    assert set(both["baseline"]) == {"deeper"} and len(both) == 30          # absent baseline: no rows, no error
    assert stats.pair_differences(cells.iloc[0:0], "f1", "dwatt", "last").empty


def test_comparison_pairs_skips_mirrored_baselines():
    pairs = stats.comparison_pairs(["last", "deeper", "dwatt"], ("deeper", "last"))
    assert pairs == [("dwatt", "deeper"), ("deeper", "last"), ("dwatt", "last")]


# ------------------------------------------------------------------ step efficiency
def test_steps_to_reach_known_curve():
    steps, values = [1, 10, 100, 1000], [0.0, 0.3, 0.6, 0.9]
    # log-step interpolation is now an option (scale="log"); v2 evaluates at linear steps, so linear is the default
    assert stats.steps_to_reach_curve(steps, values, 0.81, scale="log") == pytest.approx(10**2.7)
    assert stats.steps_to_reach_curve(steps, values, 0.6, scale="log") == pytest.approx(100)
    assert stats.steps_to_reach_curve(steps, values, -1.0, scale="log") == 1
    assert math.isnan(stats.steps_to_reach_curve(steps, values, 0.95, scale="log"))
    assert stats.steps_to_reach_curve([0, 10, 100], [0.5, 0.2, 0.6], 0.4, scale="log") == pytest.approx(10 ** 1.5)
    assert math.isnan(stats.steps_to_reach_curve(steps, values, float("nan")))
    # linear: 0.81 lies 70% of the way from 0.6 (step 100) to 0.9 (step 1000)
    assert stats.steps_to_reach_curve(steps, values, 0.81) == pytest.approx(100 + 0.7 * 900)
    assert stats.steps_to_reach_curve([0, 10, 100], [0.5, 0.2, 0.6], 0.4) == 0     # step 0 counts on a linear axis
    with pytest.raises(ValueError, match="scale"):
        stats.steps_to_reach_curve(steps, values, 0.5, scale="sqrt")


def test_steps_to_target_censors_at_the_budget():
    steps, values = [10, 20, 30], [0.2, 0.4, 0.45]
    assert stats.steps_to_target(steps, values, 0.3, budget=30) == (pytest.approx(15.0), False)
    assert stats.steps_to_target(steps, values, 0.5, budget=40) == (40.0, True)
    assert stats.steps_to_target(steps, values, 0.5) == (30.0, True)              # no budget: the last eval step
    steps_nan, censored = stats.steps_to_target(steps, values, float("nan"), budget=30)
    assert math.isnan(steps_nan) and not censored


def test_normalized_auc_known_curve():
    # log option (the former default): linear in log(step) -> mean over the log grid = mean of the end points
    assert stats.normalized_auc([1, 10, 100], [0.0, 0.5, 1.0], scale="log") == pytest.approx(0.5)
    assert stats.normalized_auc([10, 100], [0.4, 0.4], scale="log") == pytest.approx(0.4)
    assert math.isnan(stats.normalized_auc([100], [0.4]))
    # linear (default): trapezoid over steps / span
    assert stats.normalized_auc([0, 50, 100], [0.0, 1.0, 1.0]) == pytest.approx(0.75)
    assert stats.normalized_auc([1, 10, 100], [0.0, 0.5, 1.0]) == pytest.approx(
        np.trapezoid([0.0, 0.5, 1.0], [1, 10, 100]) / 99)


def _curve(final):
    steps = np.array(DEV_STEPS, float)
    return steps, final * np.log(steps) / math.log(STEPS_TOTAL)


def test_step_efficiency_cells_fixed_targets(df):
    cells = stats.step_efficiency_cells(df)
    assert len(cells) == 180 * 3 and list(cells["target_name"].unique()) == ["F1 50", "F1 60", "F1 70"]
    assert set(cells["target"]) == {0.5, 0.6, 0.7}
    row = cells[(cells["method"] == "dwatt") & (cells["size"] == 50) & (cells["data_seed"] == 1)
                & (cells["seed"] == 3)].set_index("target")
    f = method_f1("dwatt", 0, 1, 3)                              # about 0.665
    steps, values = _curve(f)
    for target in (0.5, 0.6):                                    # reached: linear interpolation between eval points
        assert f > target and not row.loc[target, "censored"]
        assert row.loc[target, "steps_to_reach"] == pytest.approx(np.interp(target, values, steps))
    assert f < 0.7 and row.loc[0.7, "censored"] and row.loc[0.7, "steps_to_reach"] == STEPS_TOTAL
    assert row["auc"].to_numpy() == pytest.approx([np.trapezoid(values, steps) / (STEPS_TOTAL - 2)] * 3)
    logged = stats.step_efficiency_cells(df, targets=(0.5,), scale="log")
    r = logged[(logged["method"] == "dwatt") & (logged["size"] == 50) & (logged["data_seed"] == 1)
               & (logged["seed"] == 3)].iloc[0]
    assert r["steps_to_reach"] == pytest.approx(math.exp(0.5 / f * math.log(STEPS_TOTAL)))   # exact in log-step
    # nothing is dropped: every cell has a number of steps, censored or not
    assert cells["steps_to_reach"].notna().all()


def test_step_efficiency_summary_counts_censored(df):
    summary = stats.step_efficiency(df)
    last50 = summary[(summary["method"] == "last") & (summary["size"] == 50)].set_index("target_name")
    # last at size 50 has final F1 0.58-0.625: nobody reaches 0.7, every cell counts as the full budget
    assert last50.loc["F1 70", "n_censored"] == 10 and last50.loc["F1 70", "n_reached"] == 0
    assert last50.loc["F1 70", "steps_to_reach_mean"] == STEPS_TOTAL
    assert last50.loc["F1 50", "n_censored"] == 0 and last50.loc["F1 50", "n_reached"] == 10
    assert (summary["n_reached"] + summary["n_censored"] == summary["n"]).all()
    d = summary[summary["target_name"] == "F1 60"].set_index(["size", "method"])["steps_to_reach_median"]
    assert (d.xs("dwatt", level="method") < d.xs("deeper", level="method")).all()
    assert summary.groupby(["size", "method"])["target_name"].apply(list).map(
        lambda names: names == ["F1 50", "F1 60", "F1 70"]).all()


def test_step_efficiency_relative_option(df):
    cells = stats.step_efficiency_cells(df, frac=0.9, reference="last", scale="log")
    assert set(cells["target_name"]) == {"90% of last"}
    last = cells[cells["method"] == "last"]
    # f(step) = F log(step) / log(200): 90% of F is reached at 200 ** 0.9, exactly (linear in log-step)
    assert last["steps_to_reach"].to_numpy() == pytest.approx([STEPS_TOTAL**0.9] * len(last))
    row = cells[(cells["method"] == "dwatt") & (cells["size"] == 100) & (cells["data_seed"] == 1)
                & (cells["seed"] == 3)].iloc[0]
    f_last, f_dwatt = last_f1(1, 1, 3), method_f1("dwatt", 1, 1, 3)
    assert row["target"] == pytest.approx(0.9 * f_last)
    assert row["steps_to_reach"] == pytest.approx(math.exp(0.9 * f_last / f_dwatt * math.log(STEPS_TOTAL)))
    assert row["auc"] == pytest.approx(f_dwatt * (math.log(2) / math.log(STEPS_TOTAL) + 1) / 2)
    assert (stats.step_efficiency(df, frac=0.9)["n_reached"] == 10).all()


def test_step_efficiency_without_dev_rows_or_reference(tmp_path):
    study = write_study(tmp_path, "s", methods=("dwatt",), sizes=(50,), data_seeds=(0,), seeds=(0,), with_dev=False)
    df = load.load_results(study)
    assert stats.step_efficiency(df).empty and stats.dev_curves(df).empty
    study = write_study(tmp_path, "t", methods=("dwatt",), sizes=(50,), data_seeds=(0,), seeds=(0,))
    df = load.load_results(study)
    # fixed targets need no reference method (the relative option does: no `last` cell -> no target)
    assert stats.step_efficiency_cells(df)["steps_to_reach"].notna().all()
    cells = stats.step_efficiency_cells(df, frac=0.9)
    assert cells["steps_to_reach"].isna().all() and not cells["censored"].any() and cells["auc"].notna().all()
    assert stats.step_auc_cells(stats.step_efficiency_cells(df))["method"].tolist() == ["dwatt"]


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
