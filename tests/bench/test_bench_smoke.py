"""Smoke test of the benchmark scripts: each runs at tiny scale (invented corpus, random 2-layer BERT) and writes
a long-format parquet with the expected columns; readme_tables renders them. No timing is checked."""
from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

COLUMNS = {"bench", "kind", "backbone", "variant", "repeat", "metric", "value", "unit", "cpu_model", "logical_cpus",
           "usable_cpus", "torch_threads", "torch_version", "date", "git_sha", "loadavg_1m", "args"}
SUMMARY_METRICS = {
    "cell_cost": {"total_s", "train_s", "eval_s", "f1_test_mean", "time_ratio_vs_peer", "meets_target"},
    "head_overhead": {"step_s", "step_time_ratio", "eval_time_ratio", "head_params", "meets_target", "warmup_s"},
    "memory": {"peak_rss_mb", "sampled_peak_rss_mb"},
    "scaling": {"total_s", "train_s", "intercept", "slope", "r2"},
    "floor": {"matmul_gflops_best", "step_gflop", "floor_step_s", "measured_step_s", "x_floor"},
    "switch_f1": {"f1_test", "gap_pts", "total_x_off", "train_x_off", "eval_x_off", "within_1pt"},
    "scoring": {"score_s", "speedup"},
    "profile_cell": {"train_step_s", "train_backward_s", "train_padding_fraction", "adamw_word_embedding_s",
                     "eval_predict_s", "eval_forward_s", "eval_score_s", "eval_padding_fraction", "cell_total_s"},
}
EXTRA_ARGS = {
    "cell_cost": ["--steps", "2", "--variants", "ours,ours_fast,peer"],   # peer after a bf16 cell: state reset
    "head_overhead": ["--heads", "last,dwatt", "--steps", "2", "--warmup", "1", "--profile-heads", "dwatt",
                      "--profile-steps", "1"],
    "memory": ["--heads", "last,dwatt", "--steps", "2"],
    "scaling": ["--sizes", "4,8", "--steps-list", "1,2", "--steps", "2", "--local-parallel", "1,2",
                "--parallel-cells", "2"],
    "floor": ["--steps", "2", "--warmup", "1", "--mm-size", "64", "--mm-repeats", "2"],
    "switch_f1": ["--steps", "2", "--variants", "bucket:train.length_bucket_tokens=4,all:train.eval_precision=bf16;"
                  "train.freeze_word_embeddings=true"],
    "profile_cell": ["--steps", "2", "--warmup", "1", "--eval-passes", "1", "--opt-repeats", "1", "--cell"],
    "scoring": ["--rate", "0.3"],
}


@pytest.fixture(scope="module")
def bench_outputs(tiny_conll_dir, tiny_backbone_dir, tmp_path_factory):
    """Run every benchmark once at tiny scale; {bench: parquet path}."""
    import importlib

    from bench import common

    out = tmp_path_factory.mktemp("bench")
    common_args = ["--backbone", str(tiny_backbone_dir), "--data-dir", str(tiny_conll_dir), "--size", "8",
                   "--dev", "0", "--test-limit", "5", "--repeats", "1", "--eval-points", "2", "--batch-size", "4",
                   "--eval-batch-size", "4", "--max-length", "24"]
    paths = {}
    try:
        for name, extra in EXTRA_ARGS.items():
            module = importlib.import_module(f"bench.{name}")
            path = out / f"{name}.parquet"
            assert module.main([*common_args, *extra, "--out", str(path)]) == 0
            paths[name] = path
    finally:
        common.install_test_limit(0)
    return paths


@pytest.mark.parametrize("name", sorted(SUMMARY_METRICS))
def test_bench_writes_long_parquet(bench_outputs, name):
    frame = pq.read_table(bench_outputs[name]).to_pandas()
    assert COLUMNS <= set(frame.columns), COLUMNS - set(frame.columns)
    assert set(frame["bench"]) == {name}
    assert set(frame["kind"]) == {"sample", "summary"}
    missing = SUMMARY_METRICS[name] - set(frame.loc[frame["kind"] == "summary", "metric"])
    assert not missing, missing
    assert frame["value"].dtype.kind == "f"
    if name in ("cell_cost", "memory", "scaling", "switch_f1"):     # the benches that score the test split
        assert (frame["test_limit"] == 5).all()


def test_profile_written(bench_outputs):
    profiles = list(bench_outputs["head_overhead"].parent.glob("head_overhead_profile_*_dwatt.txt"))
    assert profiles and "Self CPU" in profiles[0].read_text()


def test_rerun_keeps_other_backbones(tmp_path):
    """A second run replaces its own (backbone, variant) rows and keeps the others."""
    import argparse

    from bench import common

    path = tmp_path / "x.parquet"
    for backbone, value in (("a", 1.0), ("b", 2.0), ("a", 3.0)):
        results = common.Results("x", argparse.Namespace(backbone=backbone))
        results.summary("v", "m", value, "s")
        results.write(path)
    table = pq.read_table(path).to_pandas()
    assert sorted(zip(table["backbone"], table["value"])) == [("a", 3.0), ("b", 2.0)]


def test_readme_tables(bench_outputs, tmp_path, tiny_cell_config):
    from paper_repro.analysis import readme_tables
    from paper_repro.train.cell import run_cell

    config = tiny_cell_config(tmp_path, model__head__name="dwatt")
    run_cell(config)

    bench_dir = tmp_path / "results" / "bench"
    bench_dir.mkdir(parents=True)
    for name in ("cell_cost", "head_overhead", "floor"):
        (bench_dir / f"{name}.parquet").write_bytes(bench_outputs[name].read_bytes())
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n\n{readme_tables.BEGIN}\nSTALE-NUMBERS\n{readme_tables.END}\n\nafter\n")
    study = ["--study", str(tmp_path / "results" / config.study)]
    assert readme_tables.main([str(readme), *study]) == 0
    text = readme.read_text()
    assert "STALE-NUMBERS" not in text and text.startswith("# x\n\nbefore") and text.rstrip().endswith("after")
    assert "| `ours` |" in text and "| `dwatt` |" in text and "× floor" in text
    assert "Validation run" in text
    assert "Not measured yet" in text and "bench/memory.py" in text     # memory / scaling parquet missing
    assert "Cell cost recorded by the study" in text and "| `dwatt` | 1 |" in text
    assert readme_tables.main([str(readme), "--check", *study]) == 0
    assert readme_tables.main([str(readme), "--check"]) == 1         # without the study: out of date
    bare = tmp_path / "BARE.md"
    bare.write_text("# no markers\n")
    assert readme_tables.main([str(bare)]) == 2


def test_speed_benches_report_their_new_rows(bench_outputs):
    """cell_cost's ours_fast variant, the floor and head ratios, scaling's local parallel part."""
    frame = pq.read_table(bench_outputs["cell_cost"]).to_pandas()
    assert {"ours", "peer", "ours_fast"} <= set(frame["variant"])
    fast = frame[(frame["variant"] == "ours_fast") & (frame["kind"] == "summary")]
    assert {"time_ratio_vs_peer", "f1_gap_vs_peer"} <= set(fast["metric"])
    scaling = pq.read_table(bench_outputs["scaling"]).to_pandas()
    local = scaling[scaling["variant"].str.startswith("local-p") & (scaling["kind"] == "summary")]
    assert set(local["variant"]) == {"local-p1", "local-p2"}
    assert {"cells_per_hour", "steady_cells_per_hour", "speedup"} <= set(local["metric"])
    heads = pq.read_table(bench_outputs["head_overhead"]).to_pandas()
    assert "step_time_ratio_deeper" not in set(heads["metric"])          # deeper did not run: no ratio to it


def test_before_after_compares_two_commits(tiny_conll_dir, tiny_backbone_dir, tmp_path):
    """bench/before_after.py checks out both versions into worktrees, runs each one's own bench, and writes the
    sub-runs' rows (tagged before/after) and one comparison row per quantity. HEAD against HEAD: same code, so
    the FLOP count (deterministic) is equal and the ratio of counted GFLOP is exactly 1."""
    from bench import before_after

    out = tmp_path / "before_after.parquet"
    extra = "--max-length 24 --eval-batch-size 4 --mm-size 64 --mm-repeats 2"
    assert before_after.main(["--before", "HEAD", "--after", "HEAD", "--benches", "floor", "--rounds", "1",
                              "--backbone", str(tiny_backbone_dir), "--data-dir", str(tiny_conll_dir), "--size", "8",
                              "--batch-size", "4", "--dev", "0", "--test-limit", "5", "--steps", "2", "--warmup", "1",
                              "--bench-args", extra, "--out", str(out)]) == 0
    frame = pq.read_table(out).to_pandas()
    assert set(frame["bench"]) == {"before_after"}
    samples = frame[frame["kind"] == "sample"]
    assert {v.split(":")[0] for v in samples["variant"]} == {"before", "after"}
    gflop = samples[samples["metric"] == "step_gflop"].set_index("variant")["value"]
    assert gflop["before:floor:last"] == gflop["after:floor:last"] > 0
    summary = frame[frame["kind"] == "summary"]
    step = summary[summary["variant"] == "train step `last` (ms), floor bench"].set_index("metric")["value"]
    assert step["before"] > 0 and step["after"] > 0
    assert step["after_vs_before"] == pytest.approx(step["after"] / step["before"])
    assert (frame["test_limit"] == 5).all()
