"""Smoke test of bench/frozen.py at tiny scale (invented corpus, random 2-layer BERT): it builds the layer cache
(reported separately), runs a full and a frozen cell per repeat and writes the long-format parquet. No timing is
checked."""
from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.parquet as pq

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def test_frozen_bench(tiny_conll_dir, tiny_backbone_dir, tmp_path, monkeypatch, capsys):
    from bench import common, frozen

    monkeypatch.setenv("PAPER_REPRO_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "frozen.parquet"
    args = ["--backbone", str(tiny_backbone_dir), "--data-dir", str(tiny_conll_dir), "--size", "8", "--dev", "0",
            "--test-limit", "5", "--repeats", "2", "--eval-points", "2", "--batch-size", "4",
            "--eval-batch-size", "4", "--max-length", "24", "--steps", "2", "--out", str(out)]
    try:
        assert frozen.main(args) == 0
        first = capsys.readouterr().out
        assert frozen.main(args) == 0                      # the cache is on disk now: reused, its build time reported
        second = capsys.readouterr().out
    finally:
        common.install_test_limit(0)
    assert "built in" in first and "found on disk" in second and "x_total" in second
    frame = pq.read_table(out).to_pandas()
    assert set(frame["bench"]) == {"frozen"}
    assert set(frame["variant"]) == {"frozen", "last-full", "last-frozen", "dwatt-full", "dwatt-frozen"}
    summary = frame[frame["kind"] == "summary"]
    assert {"layer_cache_build_s", "layer_cache_gib", "build_measured_now"} <= \
        set(summary.loc[summary["variant"] == "frozen", "metric"])
    assert summary.loc[summary["metric"] == "build_measured_now", "value"].tolist() == [0.0]   # the second run's
    for head in ("last", "dwatt"):
        metrics = set(summary.loc[summary["variant"] == f"{head}-frozen", "metric"])
        assert {"total_s", "train_s", "eval_s", "f1_test_mean", "speedup_total", "speedup_train", "speedup_eval",
                "meets_target"} <= metrics, head
        assert {"total_s", "f1_test_mean"} <= set(summary.loc[summary["variant"] == f"{head}-full", "metric"])
    samples = frame[(frame["kind"] == "sample") & (frame["metric"] == "total_s")]
    assert sorted(samples["variant"]) == sorted(["last-full", "last-frozen", "dwatt-full", "dwatt-frozen"] * 2)
    assert (frame["test_limit"] == 5).all()
