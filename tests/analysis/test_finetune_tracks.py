"""Frozen-encoder and full fine-tuning cells collected together (issue "A frozen-backbone track"): `finetune` is part
of a cell's identity and of a condition, so the two tracks are never paired with each other, averaged together or
drawn in one panel; a table without the column reads as "full".

The synthetic study has the same methods, sizes and (data_seed, seed) in both tracks (so every cell of one track has
a twin in the other with equal keys but `finetune`), with different planted values: full `last` = conftest's
last_f1, `dwatt` = last + 0.05; frozen `last` = full last - 0.20, frozen `dwatt` = frozen last + 0.10.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from paper_repro.analysis import hypotheses, load, stats
from paper_repro.results.schema import cell_table
from paper_repro.results.store import write_cell

from .conftest import cell_rows, last_f1, manifest

SIZES = (50, 100)
DATA_SEEDS = (0, 1)
SEEDS = (0, 1, 2)
GAIN = {"full": 0.05, "frozen": 0.10}
SHIFT = {"full": 0.0, "frozen": -0.20}


def planted(method: str, finetune: str, j: int, ds: int, s: int) -> float:
    base = last_f1(j, ds, s) + SHIFT[finetune]
    return base + (GAIN[finetune] if method == "dwatt" else 0.0)


def write_mixed(results_dir, study: str = "mixed", tracks=("full", "frozen"), methods=("last", "dwatt")):
    for j, size in enumerate(SIZES):
        for ds in DATA_SEEDS:
            for s in SEEDS:
                for finetune in tracks:
                    for method in methods:
                        run_id = f"{method}-n{size}-d{ds}-s{s}-{finetune}"
                        rows = cell_rows(run_id, method, size, ds, s, planted(method, finetune, j, ds, s))
                        for r in rows:
                            r["finetune"] = finetune
                        man = manifest(run_id, method, size, ds, s)
                        if finetune != "full":
                            man["config"]["model"]["finetune"] = finetune
                        write_cell(results_dir, study, run_id, cell_table(rows), man)
    return results_dir / study


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    return write_mixed(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="module")
def df(mixed):
    return load.load_results(mixed)


def test_keys_include_finetune():
    assert "finetune" in load.CELL_KEYS and "finetune" in load.GROUP_KEYS
    assert load.track_label("minilm-l6") == "minilm-l6" == load.track_label("minilm-l6", "full")
    assert load.track_label("minilm-l6", "frozen") == "minilm-l6 (frozen)"


def test_twin_cells_are_two_cells_not_duplicates(df):
    """Today's code refused this table: a frozen and a full cell with equal (method, backbone, sampler, size,
    data_seed, seed) looked like one cell run twice."""
    cells = stats.cell_values(df)
    assert len(cells) == 2 * 2 * len(SIZES) * len(DATA_SEEDS) * len(SEEDS)
    assert cells.groupby("finetune").size().to_dict() == {"frozen": len(cells) // 2, "full": len(cells) // 2}


def test_means_are_per_track(df):
    table = stats.f1_vs_size(df)
    assert len(table) == 2 * 2 * len(SIZES)             # (finetune, size, method): nothing averaged across tracks
    for r in table.itertuples():
        j = SIZES.index(r.size)
        expected = np.mean([planted(r.method, r.finetune, j, ds, s) for ds in DATA_SEEDS for s in SEEDS])
        assert r.mean == pytest.approx(expected) and r.n == len(DATA_SEEDS) * len(SEEDS)


def test_pairs_never_cross_tracks(df):
    cells = stats.cell_values(df)
    pairs = stats.pair_differences(cells, "f1", "dwatt", "last")
    assert len(pairs) == 2 * len(SIZES) * len(DATA_SEEDS) * len(SEEDS)
    for finetune, g in pairs.groupby("finetune"):
        np.testing.assert_allclose(g["diff"], GAIN[finetune])      # a cross-track pair would differ by 0.2 more
    paired = stats.paired_differences(df, "dwatt", "last")
    assert len(paired) == 2 * len(SIZES)
    assert (paired["n_pairs"] == len(DATA_SEEDS) * len(SEEDS)).all()
    for r in paired.itertuples():
        assert r.mean_diff == pytest.approx(GAIN[r.finetune])
    # Holm across the sizes of each track, not across both tracks
    assert paired.groupby("finetune").size().to_dict() == {"frozen": len(SIZES), "full": len(SIZES)}


def test_other_tables_are_per_track(df, mixed):
    steps = stats.step_efficiency(df)
    assert set(steps["finetune"]) == {"full", "frozen"}
    assert (steps["n"] == len(DATA_SEEDS) * len(SEEDS)).all()
    assert set(stats.dev_curves(df)["finetune"]) == {"full", "frozen"}
    per_type = stats.per_type_table(df)
    assert (per_type["n"] == len(DATA_SEEDS) * len(SEEDS)).all()
    manifests = load.load_manifests(mixed)
    cost = stats.cost_table(df, manifests)
    assert len(cost) == 4 and (cost["n_cells"] == len(SIZES) * len(DATA_SEEDS) * len(SEEDS)).all()
    comp = stats.completeness(df)
    assert comp["missing"].empty and (comp["counts"]["n_cells"] == len(DATA_SEEDS) * len(SEEDS)).all()
    index = load.manifest_index(manifests).set_index("run_id")
    assert index.loc["dwatt-n50-d0-s0-frozen", "finetune"] == "frozen"
    assert index.loc["dwatt-n50-d0-s0-full", "finetune"] == "full"


def test_missing_cells_of_one_track_are_reported(tmp_path):
    study = write_mixed(tmp_path)
    (study / "cells" / "dwatt-n50-d0-s0-frozen.done").unlink()
    missing = stats.completeness(load.load_results(study))["missing"]
    assert missing[["method", "finetune", "size", "data_seed", "seed"]].values.tolist() == [
        ["dwatt", "frozen", 50, 0, 0]]


def test_table_without_finetune_reads_as_full(df):
    old = df[df["finetune"] == "full"].drop(columns="finetune")
    cells = stats.cell_values(old)
    assert (cells["finetune"] == "full").all() and len(cells) == len(stats.cell_values(df)) // 2
    assert stats.paired_differences(old, "dwatt", "last")["mean_diff"].tolist() == pytest.approx(
        [GAIN["full"]] * len(SIZES))
    assert load.manifest_index([{"run_id": "x", "config": {"model": {"backbone": "b"}}}])["finetune"].tolist() == ["full"]


def test_hypotheses_per_track(df):
    block = hypotheses.parse_hypotheses({"stage": None, "tests": [
        {"id": "H", "kind": "pooled", "a": "dwatt", "b": "last", "sizes": list(SIZES)}]})
    table = hypotheses.evaluate_hypotheses(df, block)
    assert table["finetune"].tolist() == ["frozen", "full"]
    assert table["estimate"].tolist() == pytest.approx([100 * GAIN["frozen"], 100 * GAIN["full"]])
    assert (table["n"] == len(SIZES) * len(DATA_SEEDS) * len(SEEDS)).all()
    fixed = hypotheses.evaluate_hypotheses(df, hypotheses.parse_hypotheses(
        {"stage": None, "finetune": "frozen", "tests": [
            {"id": "H", "kind": "pooled", "a": "dwatt", "b": "last", "sizes": list(SIZES)}]}))
    assert fixed["finetune"].tolist() == ["frozen"] and fixed["estimate"].iloc[0] == pytest.approx(10.0)


def test_report_and_readme_show_tracks_apart(mixed, tmp_path):
    from paper_repro.analysis.readme_tables import results_block
    from paper_repro.analysis.report import build_report

    report = build_report(mixed, out_dir=tmp_path / "report", figures=False, n_boot=200).read_text()
    assert "**minilm-l6 · sentences**" in report and "**minilm-l6 (frozen) · sentences**" in report
    assert "| minilm-l6 (frozen) | sentences | 50 | dwatt |" in report
    gains = pd.read_csv(tmp_path / "report" / "tables" / "paired_gains.csv")
    assert sorted(gains["finetune"].unique()) == ["frozen", "full"]
    block = results_block(load.load_results(mixed), "")
    assert "— minilm-l6, `sentences`" in block and "— minilm-l6 (frozen), `sentences`" in block


def test_full_only_report_shows_no_track(tmp_path):
    from paper_repro.analysis.report import build_report

    study = write_mixed(tmp_path, tracks=("full",))
    report = build_report(study, out_dir=tmp_path / "report", figures=False, n_boot=200).read_text()
    assert "minilm-l6 (frozen)" not in report and "**minilm-l6 · sentences**" in report


def test_figures_per_track(df, tmp_path):
    from paper_repro.analysis import plots

    paths = plots.plot_gains(df, tmp_path)
    names = sorted({p.stem for p in paths})
    assert names == ["gain_vs_baselines__minilm-l6-frozen__sentences", "gain_vs_baselines__minilm-l6__sentences"]
