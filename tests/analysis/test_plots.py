import logging

import pytest

from paper_repro.analysis import load, plots

from .conftest import write_study

MIN_PNG_BYTES = 10_000


def _pngs(paths):
    return [p for p in paths if p.suffix == ".png"]


def test_full_study_writes_every_figure(synth_report):
    figures = synth_report.parent / "figures"
    names = {p.stem for p in figures.glob("*.png")}
    expected = {
        "f1_vs_size", "gain_vs_baselines__minilm-l6__sentences", "step_efficiency__minilm-l6__sentences",
        "budget", "depth_attention__dwatt__minilm-l6__sentences", "depth_attention__attnres__minilm-l6__sentences",
        "scalarmix_weights__scalarmix__minilm-l6__sentences", "per_type_f1__minilm-l6__sentences", "cost",
        "every_pair__minilm-l6__sentences",
    }
    assert expected <= names
    for name in expected:
        png, pdf = figures / f"{name}.png", figures / f"{name}.pdf"
        assert png.stat().st_size > MIN_PNG_BYTES, name
        assert pdf.stat().st_size > 2_000, name


def test_partial_results_do_not_crash(tmp_path, caplog):
    """One seed, no `deeper`, no dev rows, no manifests."""
    study = write_study(tmp_path, "p", methods=("last", "dwatt", "mystery"), sizes=(50, 100), data_seeds=(0,),
                        seeds=(0,), with_dev=False, with_manifest=False)
    df, manifests = load.load_results(study), load.load_manifests(study)
    out = tmp_path / "figs"
    caplog.set_level(logging.INFO, logger="paper_repro.analysis.plots")
    result = plots.make_all_figures(df, manifests, out)
    assert result["step_efficiency"] == "no dev rows"
    assert "depth_attention" in result and isinstance(result["depth_attention"], str)
    assert "skipped" in caplog.text
    for key in ("f1_vs_size", "gains", "pairs", "budget", "per_type", "cost"):
        assert isinstance(result[key], list) and _pngs(result[key]), (key, result[key])
        assert all(p.stat().st_size > MIN_PNG_BYTES for p in _pngs(result[key]))


def test_public_functions_return_empty_list_on_nothing(tmp_path):
    df = load.empty_results()
    assert plots.plot_f1_vs_size(df, tmp_path) == []
    assert plots.plot_gains(df, tmp_path) == []
    assert plots.plot_pairs(df, tmp_path) == []
    assert plots.plot_step_efficiency(df, tmp_path) == []
    assert plots.plot_budget(df, tmp_path) == []
    assert plots.plot_depth_attention([], tmp_path, df=df) == []
    assert plots.plot_per_type(df, tmp_path) == []
    assert plots.plot_cost(df, [], tmp_path) == []
    result = plots.make_all_figures(df, [], tmp_path)
    assert all(isinstance(v, str) for v in result.values())
    assert not list(tmp_path.glob("*.png"))


def test_only_baseline_and_two_backbones(tmp_path):
    """Gains need a baseline: a study with `last` only still draws F1 vs size; gains are skipped."""
    study = write_study(tmp_path, "b", methods=("last",), sizes=(50,), data_seeds=(0,), seeds=(0, 1))
    df = load.load_results(study)
    other = df.assign(backbone="mpnet-base", run_id=df["run_id"] + "-mpnet")
    both = __import__("pandas").concat([df, other], ignore_index=True)
    paths = plots.plot_f1_vs_size(both, tmp_path)
    assert _pngs(paths) and _pngs(paths)[0].stat().st_size > MIN_PNG_BYTES
    assert plots.plot_gains(both, tmp_path) == []
    steps = plots.plot_step_efficiency(both, tmp_path)
    assert len(_pngs(steps)) == 2


@pytest.mark.parametrize("method", ["dwatt", "scalarmix"])
def test_depth_figures_single_method(tmp_path, method):
    study = write_study(tmp_path, "d", methods=(method,), sizes=(50,), data_seeds=(0,), seeds=(0,))
    paths = plots.plot_depth_attention(load.load_manifests(study), tmp_path / "f", df=load.load_results(study))
    assert len(_pngs(paths)) == 1


def test_every_pair_figure_panels_and_contrasts(tmp_path):
    """deeper_copy, concat and deeper present: all four contrast panels have pairs; missing ones say so."""
    study = write_study(tmp_path, "e", methods=("last", "deeper", "deeper_copy", "concat", "dwatt"), sizes=(50, 100),
                        data_seeds=(0,), seeds=(0, 1, 2))
    df = load.load_results(study)
    panels = plots.expand_contrasts(df["method"].unique())
    assert [title for title, _ in panels] == [
        "fusion (dwatt/concat) − deeper", "fusion (dwatt/concat) − deeper_copy", "fusion (dwatt/concat) − last",
        "dwatt − concat"]
    assert panels[1][1] == [("dwatt", "deeper_copy"), ("concat", "deeper_copy")]
    paths = _pngs(plots.plot_pairs(df, tmp_path / "f"))
    assert [p.name for p in paths] == ["every_pair__minilm-l6__sentences.png"]
    assert paths[0].stat().st_size > MIN_PNG_BYTES
    only = df[df["method"].isin(["last", "dwatt"])]
    assert [m for _, m in plots.expand_contrasts(only["method"].unique())] == [[], [], [("dwatt", "last")], []]
    assert _pngs(plots.plot_pairs(only, tmp_path / "g"))
    assert load.method_color("deeper_copy") == load.METHOD_COLORS["deeper_copy"]


def test_step_efficiency_figure_relative_and_log_options(tmp_path):
    study = write_study(tmp_path, "r", methods=("last", "dwatt"), sizes=(50,), data_seeds=(0,), seeds=(0, 1))
    df = load.load_results(study)
    assert _pngs(plots.plot_step_efficiency(df, tmp_path / "a", targets=(0.55,)))
    assert _pngs(plots.plot_step_efficiency(df, tmp_path / "b", frac=0.9, reference="last", scale="log"))


def test_figures_are_byte_stable(tmp_path):
    """The same figure saved twice (a second apart) gives identical bytes: no dates or versions in PNG/PDF."""
    import hashlib
    import time

    import matplotlib.pyplot as plt

    from paper_repro.analysis.plots import _save

    digests = []
    for _ in range(2):
        fig, ax = plt.subplots()
        ax.plot([1, 2, 3])
        paths = _save(fig, tmp_path, "stable")
        plt.close(fig)
        digests.append([hashlib.sha256(p.read_bytes()).hexdigest() for p in paths])
        time.sleep(1.1)
    assert digests[0] == digests[1]


def test_lr_sensitivity_figure(tmp_path):
    """The post-hoc lr figure from a planted tuning stage: one file per backbone x sampler, byte-stable; nothing to
    draw without tuning cells."""
    import hashlib
    import io

    import pandas as pd

    from .conftest import TUNE_SELECTION_CSV, tune_cells

    tune = pd.DataFrame([r for rows in tune_cells().values() for r in rows])
    selection = pd.read_csv(io.StringIO(TUNE_SELECTION_CSV))
    digests = []
    for out in (tmp_path / "a", tmp_path / "b"):
        paths = plots.plot_lr_sensitivity(tune, out, selection=selection, stage="eval")
        assert sorted(p.name for p in paths) == ["lr_sensitivity__minilm-l6__sentences.pdf",
                                                 "lr_sensitivity__minilm-l6__sentences.png"]
        assert all(p.stat().st_size > (MIN_PNG_BYTES if p.suffix == ".png" else 2_000) for p in paths)
        digests.append([hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(paths)])
    assert digests[0] == digests[1]
    # without selection.csv the figure is still drawn (the selected lr is then not marked)
    assert _pngs(plots.plot_lr_sensitivity(tune, tmp_path / "c", selection=None))
    assert plots.plot_lr_sensitivity(load.empty_results(), tmp_path / "d") == []
    figures = plots.make_all_figures(load.empty_results(), [], tmp_path / "e", tune_df=load.empty_results())
    assert figures["lr_sensitivity"] == "no tuning-stage cells"
    assert "lr_sensitivity" not in plots.make_all_figures(load.empty_results(), [], tmp_path / "f")
