"""Figures of a study, each saved as PNG + PDF.

Every figure is built on a `matplotlib.figure.Figure` (no pyplot state, Agg canvas), with the fixed method
colours and order of `paper_repro.analysis.load`. F1 is shown in points (100 x F1). A figure with partial
data carries a note (e.g. "n=1: no CI"); a figure with nothing to show is skipped with a logged reason, and
`make_all_figures` returns that reason instead of paths. Nothing here raises on empty or partial results.

The finetune track is part of a condition: tables are folded with `load.fold_tracks` before plotting, so a frozen
encoder gets its own panels and files, titled "minilm-l6 (frozen)" and named `..__minilm-l6-frozen__...`, and
is never drawn in one panel with (or averaged into) the full fine-tuning cells of the same backbone.
"""
from __future__ import annotations

import logging
import math
import textwrap
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from paper_repro.analysis import lr_sensitivity, stats
from paper_repro.analysis.load import ENTITY_TYPES, fold_tracks, method_color, method_order

log = logging.getLogger(__name__)

FORMATS = ("png", "pdf")
DPI = 150
FIGURE_NAMES = ("f1_vs_size", "gains", "pairs", "step_efficiency", "budget", "depth_attention", "per_type", "cost")
# the file names the figures are saved under: `<prefix>.<fmt>` or `<prefix>__<condition>.<fmt>`
FIGURE_FILES = ("f1_vs_size", "gain_vs_baselines", "every_pair", "step_efficiency", "budget", "depth_attention",
                "scalarmix_weights", "per_type_f1", "cost", "lr_sensitivity")
FUSION_METHODS = ("dwatt", "concat")
# (method or "fusion", baseline): the panels of the every-pair figure; "fusion" = each of FUSION_METHODS
PAIR_CONTRASTS = (("fusion", "deeper"), ("fusion", "deeper_copy"), ("fusion", "last"), ("dwatt", "concat"))
PAPER_LABEL_POINTS = "paper's claim: +3.68–9.73 F1 points"
PAPER_LABEL_REL = "paper's claim read as relative: +3.68–9.73 %"


class NothingToPlot(Exception):
    """Raised inside a figure builder when the data holds nothing to draw; the reason is logged."""


@contextmanager
def _style():
    with sns.axes_style("whitegrid"), sns.plotting_context("paper", font_scale=1.35), matplotlib.rc_context(
        {"axes.titlesize": "medium", "legend.fontsize": "small", "figure.dpi": 100, "pdf.fonttype": 42}
    ):
        yield


# byte-stable figures: no creation date, no software version in the files (a rerun on unchanged results
# rewrites identical bytes, so `run_all.sh` does not dirty the tree)
FIXED_METADATA = {"pdf": {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None},
                  "png": {"Software": None}, "svg": {"Date": None, "Creator": None}}


def _save(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in FORMATS:
        path = out_dir / f"{name}.{fmt}"
        fig.savefig(path, dpi=DPI, bbox_inches="tight", metadata=FIXED_METADATA[fmt])
        paths.append(path)
    return paths


def _grid(nrows: int, ncols: int, w: float = 4.6, h: float = 3.6, sharey: bool | str = False):
    fig = Figure(figsize=(w * ncols, h * nrows), layout="constrained")
    axes = np.atleast_2d(fig.subplots(nrows, ncols, squeeze=False, sharey=sharey))
    return fig, axes


def _note(ax, text: str) -> None:
    ax.text(0.02, 0.97, text, transform=ax.transAxes, fontsize="x-small", color="0.25", va="top",
            ha="left", zorder=10, bbox={"boxstyle": "round", "fc": "white", "ec": "0.8", "alpha": 0.85})


def _range(values) -> str:
    values = [int(v) for v in values if pd.notna(v)]
    if not values:
        return "0"
    lo, hi = min(values), max(values)
    return str(lo) if lo == hi else f"{lo}–{hi}"


def _dodge(x: np.ndarray, i: int, k: int, width: float = 0.06) -> np.ndarray:
    """Multiplicative offset on a log axis so methods' error bars do not overlap."""
    return x * np.exp((i - (k - 1) / 2) * width)


def _conditions(table: pd.DataFrame) -> list[tuple[str, str]]:
    return sorted({(str(b), str(s)) for b, s in zip(table["backbone"], table["sampler"])})


def _legend(fig: Figure, axes, ncol: int | None = None) -> None:
    """One figure legend below the panels: methods in METHOD_ORDER, then other entries (bands, lines)."""
    handles: dict[str, Any] = {}
    for ax in np.ravel(axes):
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    if not handles:
        return
    methods = [m for m in method_order(handles) if not _is_annotation(m)]
    others = [lab for lab in handles if lab not in methods]
    labels = methods + others
    fit = max(1, int(fig.get_figwidth() / 1.9))
    fig.legend([handles[lab] for lab in labels], labels, loc="outside lower center",
               ncol=min(ncol or 5, len(labels), fit), frameon=False)


def _is_annotation(label: str) -> bool:
    return " " in label or label.startswith("_")


def _caption(fig: Figure, title: str, caption: str | None = None) -> None:
    """Title plus a caption line, wrapped to the figure width."""
    width = max(30, int(fig.get_figwidth() * 11))
    lines = [*textwrap.wrap(title, width)]
    for part in (caption or "").split("\n"):
        lines += textwrap.wrap(part, int(width * 1.15))
    fig.suptitle("\n".join(lines), fontsize="medium" if caption else "large")


def _size_label(sampler: str) -> str:
    return {"sentences": "training sentences N (log scale)", "ktype": "mentions per type K (log scale)"}.get(
        sampler, f"few-shot size ({sampler}, log scale)")


def _set_size_axis(ax, sizes, sampler: str) -> None:
    sizes = sorted({int(s) for s in sizes})
    if sizes and min(sizes) > 0:
        ax.set_xscale("log")
        ax.set_xticks(sizes)
        ax.set_xticklabels([str(s) for s in sizes])
        ax.minorticks_off()
        lo, hi = min(sizes), max(sizes)
        ax.set_xlim(lo / 1.35, hi * 1.35)
    ax.set_xlabel(_size_label(sampler))


# --------------------------------------------------------------------------------------------- (1) F1 vs size
def _f1_vs_size(df: pd.DataFrame, out_dir: Path, name: str = "f1_vs_size") -> list[Path]:
    table = fold_tracks(stats.f1_vs_size(df))
    if table.empty:
        raise NothingToPlot("no test rows")
    conds = _conditions(table)
    backbones = sorted({b for b, _ in conds})
    samplers = sorted({s for _, s in conds})
    methods = method_order(table["method"].unique())
    with _style():
        fig, axes = _grid(len(backbones), len(samplers))
        for r, backbone in enumerate(backbones):
            for c, sampler in enumerate(samplers):
                ax = axes[r, c]
                sub = table[(table["backbone"] == backbone) & (table["sampler"] == sampler)]
                ax.set_title(f"{backbone} · {sampler}")
                if sub.empty:
                    _note(ax, "no cells")
                    continue
                notes = []
                for i, m in enumerate(methods):
                    g = sub[sub["method"] == m].sort_values("size")
                    if g.empty:
                        continue
                    x = _dodge(g["size"].to_numpy(float), i, len(methods), 0.03)
                    y = g["mean"].to_numpy(float) * 100
                    err = g["ci_half"].to_numpy(float) * 100
                    ax.errorbar(x, y, yerr=np.where(np.isfinite(err), err, 0), color=method_color(m), marker="o",
                                ms=4, lw=1.6, capsize=2.5, label=m)
                    if (g["n"] < 2).any():
                        notes.append(m)
                _set_size_axis(ax, sub["size"], sampler)
                ax.set_ylabel("test F1 (points)")
                if notes:
                    _note(ax, f"n=1 (no CI): {', '.join(notes)}")
        _legend(fig, axes)
        _caption(fig, "Test F1 vs few-shot size", f"mean ± 95% t-CI over seeds; n per point: {_range(table['n'])}")
        return _save(fig, out_dir, name)


# --------------------------------------------------------------------------------------------- (2) gains
def _gains(df: pd.DataFrame, out_dir: Path, baselines=("deeper", "last"), name: str = "gain_vs_baselines",
           paired: pd.DataFrame | None = None) -> list[Path]:
    paired = fold_tracks(stats.all_paired(df, baselines) if paired is None else paired)
    if paired.empty:
        raise NothingToPlot(f"no paired test cells against any of {list(baselines)}")
    present = [b for b in baselines if b in set(paired["baseline"])]
    paths = []
    for backbone, sampler in _conditions(paired):
        cond = paired[(paired["backbone"] == backbone) & (paired["sampler"] == sampler)]
        with _style():
            fig, axes = _grid(2, len(present), w=5.0, h=3.5)
            for c, baseline in enumerate(present):
                sub = cond[cond["baseline"] == baseline]
                methods = method_order(sub["method"].unique())
                for r, (col, lo, hi, label, band_label, ylabel) in enumerate([
                    ("mean_diff", "ci_lo", "ci_hi", 100, PAPER_LABEL_POINTS, "gain (F1 points)"),
                    ("rel_gain", "rel_ci_lo", "rel_ci_hi", 100, PAPER_LABEL_REL, "relative gain (% of baseline F1)"),
                ]):
                    ax = axes[r, c]
                    ax.axhspan(*stats.PAPER_GAIN_RANGE, color="#f4d03f", alpha=0.25, lw=0, label=band_label,
                               zorder=0)
                    ax.axhline(0, color="0.3", lw=0.8)
                    single = []
                    for i, m in enumerate(methods):
                        g = sub[sub["method"] == m].sort_values("size")
                        x = _dodge(g["size"].to_numpy(float), i, len(methods))
                        y = g[col].to_numpy(float) * label
                        ylo = (g[col] - g[lo]).to_numpy(float) * label
                        yhi = (g[hi] - g[col]).to_numpy(float) * label
                        yerr = np.vstack([np.nan_to_num(ylo), np.nan_to_num(yhi)])
                        ax.errorbar(x, y, yerr=yerr, color=method_color(m), marker="o", ms=4, lw=1.3,
                                    capsize=2.5, label=m)
                        if (g["n_pairs"] < 2).any():
                            single.append(m)
                    _set_size_axis(ax, sub["size"], sampler)
                    ax.set_ylabel(ylabel)
                    ax.set_title(f"vs {baseline}" + (" (absolute)" if r == 0 else " (relative)"))
                    if single:
                        _note(ax, f"1 pair (no CI): {', '.join(single)}")
            _legend(fig, axes, ncol=4)
            _caption(fig, f"Paired gain over baselines — {backbone} · {sampler}",
                     f"mean difference ± paired 95% CI (t-interval below {stats.MIN_BOOT_PAIRS} pairs, else "
                     f"bootstrap), pairs per point: {_range(cond['n_pairs'])}\nshaded: "
                     f"the paper's claimed 3.68–9.73 (unit unstated) read as F1 points (top) and as % relative (bottom)")
            paths += _save(fig, out_dir, f"{name}__{_slug(backbone)}__{_slug(sampler)}")
    return paths


# --------------------------------------------------------------------------------------------- (2b) every pair
def expand_contrasts(methods, contrasts=PAIR_CONTRASTS,
                     fusion=FUSION_METHODS) -> list[tuple[str, list[tuple[str, str]]]]:
    """(panel title, [(method, baseline), ...]) per contrast: "fusion" stands for each fusion head present."""
    present = set(methods)
    panels = []
    for method, baseline in contrasts:
        members = [m for m in (fusion if method == "fusion" else (method,)) if m in present]
        title = f"{method} − {baseline}" if method != "fusion" else f"fusion ({'/'.join(fusion)}) − {baseline}"
        panels.append((title, [(m, baseline) for m in members if baseline in present]))
    return panels


def _in_pairs(frame: pd.DataFrame, members: list[tuple[str, str]]) -> pd.Series:
    """Rows of `frame` whose (method, baseline) is one of `members`."""
    wanted = set(members)
    return pd.Series([(m, b) in wanted for m, b in zip(frame["method"], frame["baseline"])], index=frame.index,
                     dtype=bool)


def _pairs(df: pd.DataFrame, out_dir: Path, name: str = "every_pair", metric: str = "f1",
           contrasts=PAIR_CONTRASTS) -> list[Path]:
    cells = stats.cell_values(df, metric, "test")
    if cells.empty:
        raise NothingToPlot("no test rows")
    panels = expand_contrasts(cells["method"].unique(), contrasts)
    wanted = [pair for _, members in panels for pair in members]
    diffs = fold_tracks(stats.all_pair_differences(cells, metric, wanted))
    if diffs.empty:
        raise NothingToPlot(f"no pairs for any of {[f'{m} − {b}' for m, b in contrasts]}")
    summary = fold_tracks(pd.concat([stats.paired_from_cells(cells, metric, m, b) for m, b in wanted],
                                    ignore_index=True))
    rng = np.random.default_rng(0)   # jitter only; fixed so the figure is reproducible
    paths = []
    for backbone, sampler in _conditions(diffs):
        cond = diffs[(diffs["backbone"] == backbone) & (diffs["sampler"] == sampler)]
        csum = summary[(summary["backbone"] == backbone) & (summary["sampler"] == sampler)]
        with _style():
            fig, axes = _grid(1, len(panels), w=4.4, h=3.8, sharey=True)
            for c, (title, members) in enumerate(panels):
                ax = axes[0, c]
                ax.axhline(0, color="0.3", lw=0.8)
                ax.set_title(title)
                sub = cond[_in_pairs(cond, members)]
                if sub.empty:
                    _note(ax, "no pairs")
                    ax.set_xlabel(_size_label(sampler))
                    continue
                for i, (m, b) in enumerate(members):
                    g = sub[(sub["method"] == m) & (sub["baseline"] == b)]
                    if g.empty:
                        continue
                    x = _dodge(g["size"].to_numpy(float), i, len(members), 0.08)
                    jitter = np.exp(rng.uniform(-0.025, 0.025, size=len(g)))
                    ax.scatter(x * jitter, g["diff"].to_numpy(float) * 100, s=12, alpha=0.55, color=method_color(m),
                               edgecolors="none", label=m, zorder=2)
                    srow = csum[(csum["method"] == m) & (csum["baseline"] == b)].sort_values("size")
                    sx = _dodge(srow["size"].to_numpy(float), i, len(members), 0.08)
                    sy = srow["mean_diff"].to_numpy(float) * 100
                    yerr = np.vstack([np.nan_to_num((srow["mean_diff"] - srow["ci_lo"]).to_numpy(float)) * 100,
                                      np.nan_to_num((srow["ci_hi"] - srow["mean_diff"]).to_numpy(float)) * 100])
                    ax.errorbar(sx, sy, yerr=yerr, fmt="_", ms=14, mew=2.2, lw=1.6, capsize=3,
                                color=method_color(m), zorder=3)
                _set_size_axis(ax, sub["size"], sampler)
                shown = "F1" if metric == "f1" else metric
                ax.set_ylabel(f"test {shown} difference (points)" if c == 0 else "")
                methods_ci = sorted(set(csum[_in_pairs(csum, members)]["ci_method"]) - {""})
                _note(ax, f"pairs per size: {_range(sub.groupby(['method', 'size']).size())}"
                      + (f"; CI: {', '.join(methods_ci)}" if methods_ci else ""))
            _legend(fig, axes)
            _caption(fig, f"Every paired difference — {backbone} · {sampler}",
                     f"dots: one (data_seed, seed) pair each; bar: mean ± 95% CI (paired t below "
                     f"{stats.MIN_BOOT_PAIRS} pairs, else bootstrap)")
            paths += _save(fig, out_dir, f"{name}__{_slug(backbone)}__{_slug(sampler)}")
    return paths


# --------------------------------------------------------------------------------------------- (3) step efficiency
def _step_efficiency(df: pd.DataFrame, out_dir: Path, targets=stats.STEP_TARGETS, frac: float | None = None,
                     reference: str = "last", name: str = "step_efficiency", scale: str = "linear") -> list[Path]:
    curves = fold_tracks(stats.dev_curves(df))
    if curves.empty:
        raise NothingToPlot("no dev rows")
    cells = fold_tracks(stats.step_efficiency_cells(df, targets, frac=frac, reference=reference, scale=scale))
    paths = []
    for backbone, sampler in _conditions(curves):
        cond = curves[(curves["backbone"] == backbone) & (curves["sampler"] == sampler)]
        sizes = sorted(cond["size"].unique())
        ncols = min(len(sizes), 4)
        nrows = math.ceil(len(sizes) / ncols)
        methods = method_order(cond["method"].unique())
        with _style():
            fig, axes = _grid(nrows, ncols, w=4.4, h=3.6)
            for k, size in enumerate(sizes):
                ax = axes[k // ncols, k % ncols]
                sub = cond[cond["size"] == size]
                for m in methods:
                    g = sub[sub["method"] == m].sort_values("step")
                    g = g[g["step"] > 0] if scale == "log" else g
                    if g.empty:
                        continue
                    y, half = g["mean"].to_numpy(float) * 100, g["ci_half"].to_numpy(float) * 100
                    ax.plot(g["step"], y, color=method_color(m), marker="o", ms=3, lw=1.5, label=m)
                    if np.isfinite(half).any():
                        ax.fill_between(g["step"], y - np.nan_to_num(half), y + np.nan_to_num(half),
                                        color=method_color(m), alpha=0.15, lw=0)
                at = cells[(cells["backbone"] == backbone) & (cells["sampler"] == sampler) & (cells["size"] == size)]
                if frac is not None:
                    ref = at[at["method"] == reference]["target"]
                    if len(ref) and np.isfinite(ref).any():
                        ax.axhline(float(ref.mean()) * 100, color="0.4", ls="--", lw=1,
                                   label=f"{frac * 100:g}% of {reference}'s final dev F1")
                else:
                    for t in targets:
                        ax.axhline(float(t) * 100, color="0.3", ls="--", lw=0.9, label="dev-F1 targets", zorder=1)
                if scale == "log":
                    ax.set_xscale("log")
                ax.set_xlabel("optimizer step" + (" (log scale)" if scale == "log" else ""))
                ax.set_ylabel("dev F1 (points)" if k % ncols == 0 else "")
                n = int(sub["n"].max()) if len(sub) else 0
                ax.set_title(f"size {size} (n≤{n})")
                if n < 2:
                    _note(ax, "n=1: no CI")
            for k in range(len(sizes), nrows * ncols):
                axes[k // ncols, k % ncols].set_visible(False)
            _legend(fig, axes)
            _caption(fig, f"Dev F1 vs training step — {backbone} · {sampler}",
                     "fixed dev subsample; mean ± 95% t-CI over seeds (shaded)")
            paths += _save(fig, out_dir, f"{name}__{_slug(backbone)}__{_slug(sampler)}")
    return paths


# --------------------------------------------------------------------------------------------- (4) budget
def _budget(df: pd.DataFrame, out_dir: Path, name: str = "budget") -> list[Path]:
    cells = df.drop_duplicates("run_id") if len(df) else df
    if cells.empty:
        raise NothingToPlot("no cells")
    table = cells.groupby(["backbone", "method"], as_index=False).agg(
        params=("head_params", "median"), target=("budget_target", "median"))
    backbones = sorted(table["backbone"].unique())
    with _style():
        fig, axes = _grid(1, len(backbones), w=max(4.5, 0.8 * table["method"].nunique() + 2), h=3.6)
        for c, backbone in enumerate(backbones):
            ax = axes[0, c]
            sub = table[table["backbone"] == backbone]
            methods = method_order(sub["method"].unique())
            sub = sub.set_index("method").loc[methods]
            ax.bar(range(len(methods)), sub["params"] / 1e3, color=[method_color(m) for m in methods])
            ax.set_xticks(range(len(methods)))
            ax.set_xticklabels(methods, rotation=30, ha="right")
            targets = sub["target"][sub["target"] > 0]
            for t in sorted(set(targets)):
                ax.axhline(t / 1e3, color="0.2", ls="--", lw=1, label="budget target")
            ax.set_ylabel("head parameters (thousands)")
            ax.set_title(backbone)
            if targets.empty:
                _note(ax, "no budget target recorded")
        _legend(fig, axes)
        _caption(fig, "Trainable head parameters (beyond backbone + classifier)")
        return _save(fig, out_dir, name)


# --------------------------------------------------------------------------------------------- (5) depth attention
def _depth(manifests: list[dict[str, Any]], df: pd.DataFrame | None, out_dir: Path,
           name: str = "depth_attention") -> list[Path]:
    weights = fold_tracks(stats.depth_weights(manifests, df))
    if weights.empty:
        raise NothingToPlot("no manifest has depth_attention or scalarmix_weights")
    paths = []
    att = weights[weights["source"] == "depth_attention"]
    type_order = [*ENTITY_TYPES, "ALL"]
    for (method, backbone, sampler), g in att.groupby(["method", "backbone", "sampler"], sort=True):
        sizes = sorted(g["size"].unique())
        types = [t for t in type_order if t in set(g["type"])] + sorted(set(g["type"]) - set(type_order))
        mean = g.groupby(["size", "layer_index", "layer", "type"], as_index=False)["weight"].mean()
        n_runs = g.groupby("size")["run_id"].nunique()
        with _style():
            nlayers = int(g["layer_index"].max()) + 1
            fig, axes = _grid(1, len(sizes), w=0.55 * len(types) + 2.2, h=0.32 * nlayers + 1.8)
            vmax = float(mean["weight"].max()) if len(mean) else 1.0
            for k, size in enumerate(sizes):
                ax = axes[0, k]
                m = mean[mean["size"] == size].pivot_table(index=["layer_index", "layer"], columns="type",
                                                          values="weight")
                m = m.reindex(columns=[t for t in types if t in m.columns])
                m.index = [lab for _, lab in m.index]
                sns.heatmap(m, ax=ax, cmap="viridis", vmin=0, vmax=vmax, annot=nlayers <= 14, fmt=".2f",
                            annot_kws={"fontsize": 6}, cbar=k == len(sizes) - 1,
                            cbar_kws={"label": "mean attention weight"})
                ax.set_title(f"size {size} (n={int(n_runs.get(size, 0))})")
                ax.set_xlabel("entity type")
                ax.set_ylabel("fused layer" if k == 0 else "")
            _caption(fig, f"{method}: depth-wise attention over layers — {backbone} · {sampler}")
            paths += _save(fig, out_dir, f"{name}__{_slug(method)}__{_slug(backbone)}__{_slug(sampler)}")
    mix = weights[weights["source"] == "scalarmix"]
    for (method, backbone, sampler), g in mix.groupby(["method", "backbone", "sampler"], sort=True):
        sizes = sorted(g["size"].unique())
        with _style():
            fig, axes = _grid(1, len(sizes), w=3.8, h=3.2, sharey=True)
            for k, size in enumerate(sizes):
                ax = axes[0, k]
                s = g[g["size"] == size].groupby(["layer_index", "layer"], as_index=False)["weight"].agg(
                    ["mean", "std", "count"])
                ax.bar(range(len(s)), s["mean"], yerr=s["std"].fillna(0), color=method_color(method), capsize=2)
                ax.set_xticks(range(len(s)))
                ax.set_xticklabels(s["layer"], rotation=90, fontsize="x-small")
                ax.set_title(f"size {size} (n={int(s['count'].max()) if len(s) else 0})")
                ax.set_xlabel("layer")
                ax.set_ylabel("mixing weight (softmax)" if k == 0 else "")
            _caption(fig, f"{method} layer weights (mean ± sd over seeds) — {backbone} · {sampler}")
            paths += _save(fig, out_dir, f"scalarmix_weights__{_slug(method)}__{_slug(backbone)}__{_slug(sampler)}")
    if not paths:
        raise NothingToPlot("no depth weights to draw")
    return paths


# --------------------------------------------------------------------------------------------- (6) per type
def _per_type(df: pd.DataFrame, out_dir: Path, name: str = "per_type_f1") -> list[Path]:
    table = fold_tracks(stats.per_type_table(df))
    if table.empty or table["mean"].isna().all():
        raise NothingToPlot("no test rows with per-type F1")
    paths = []
    for backbone, sampler in _conditions(table):
        cond = table[(table["backbone"] == backbone) & (table["sampler"] == sampler)]
        sizes = sorted(cond["size"].unique())
        methods = method_order(cond["method"].unique())
        types = [t for t in ENTITY_TYPES if t in set(cond["type"])]
        width = 0.8 / max(len(methods), 1)
        with _style():
            fig, axes = _grid(len(sizes), 1, w=min(12.0, max(5.0, 0.22 * len(methods) * len(types) + 2)),
                              h=2.8, sharey=True)
            for k, size in enumerate(sizes):
                ax = axes[k, 0]
                sub = cond[cond["size"] == size]
                for i, m in enumerate(methods):
                    g = sub[sub["method"] == m].set_index("type").reindex(types)
                    x = np.arange(len(types)) + (i - (len(methods) - 1) / 2) * width
                    ax.bar(x, g["mean"] * 100, width, yerr=np.nan_to_num(g["ci_half"].to_numpy(float)) * 100,
                           color=method_color(m), label=m, capsize=1.5, error_kw={"lw": 0.8})
                ax.set_xticks(range(len(types)))
                ax.set_xticklabels(types)
                ax.set_xlabel("entity type" if k == len(sizes) - 1 else "")
                ax.set_ylabel("test F1 (points)")
                ax.set_title(f"size {size} (n≤{int(sub['n'].max()) if len(sub) else 0})")
            _legend(fig, axes)
            _caption(fig, f"Per-type test F1 (mean ± 95% CI) — {backbone} · {sampler}")
            paths += _save(fig, out_dir, f"{name}__{_slug(backbone)}__{_slug(sampler)}")
    return paths


# --------------------------------------------------------------------------------------------- (7) cost
def _cost(df: pd.DataFrame, manifests: list[dict[str, Any]], out_dir: Path, name: str = "cost") -> list[Path]:
    table = fold_tracks(stats.cost_table(df, manifests))
    if table.empty:
        raise NothingToPlot("no cells")
    backbones = sorted(table["backbone"].unique())
    panels = [("step_time_ms", "step_time_ms_ci", "ms per optimizer step"),
              ("train_s", "train_s_ci", "training time per cell (s)"),
              ("total_s", "total_s_ci", "total wall-clock per cell (s)")]
    panels = [p for p in panels if table[p[0]].notna().any()]
    if not panels:
        raise NothingToPlot("no timing recorded")
    with _style():
        fig, axes = _grid(len(backbones), len(panels), w=max(4.0, 0.6 * table["method"].nunique() + 1.5),
                          h=3.4)
        for r, backbone in enumerate(backbones):
            sub = table[table["backbone"] == backbone]
            methods = method_order(sub["method"].unique())
            sub = sub.set_index("method").loc[methods]
            for c, (col, ci, label) in enumerate(panels):
                ax = axes[r, c]
                ax.bar(range(len(methods)), sub[col], yerr=np.nan_to_num(sub[ci].to_numpy(float)),
                       color=[method_color(m) for m in methods], capsize=2)
                ax.set_xticks(range(len(methods)))
                ax.set_xticklabels(methods, rotation=30, ha="right")
                ax.set_ylabel(label)
                ax.set_title(backbone)
                if sub[col].isna().any():
                    _note(ax, "missing bars: not recorded")
        _caption(fig, "Cost per method (mean ± 95% CI over cells)")
        return _save(fig, out_dir, name)


# --------------------------------------------------------------------------------------------- (8) lr sensitivity
def _lr_sensitivity(tune_df: pd.DataFrame, out_dir: Path, selection: pd.DataFrame | None = None,
                    stage: str | None = "eval", param: str = "head_lr", name: str = "lr_sensitivity") -> list[Path]:
    cells = fold_tracks(lr_sensitivity.lr_cells(tune_df, param))
    if cells.empty:
        raise NothingToPlot("no tuning-stage cells")
    selected = lr_sensitivity.selected_lrs(selection, stage, param)
    paths = []
    for backbone, sampler in _conditions(cells):
        cond = cells[(cells["backbone"] == backbone) & (cells["sampler"] == sampler)]
        sizes = sorted(cond["size"].unique())
        methods = method_order(cond["method"].unique())
        lrs = sorted(cond["lr"].unique())
        with _style():
            fig, axes = _grid(len(sizes), len(lr_sensitivity.SPLITS), w=4.8, h=3.6)
            for r, size in enumerate(sizes):
                for c, split in enumerate(lr_sensitivity.SPLITS):
                    ax = axes[r, c]
                    sub = cond[(cond["size"] == size) & (cond["split"] == split)]
                    bracket = ""
                    for i, m in enumerate(methods):
                        g = sub[sub["method"] == m]
                        if g.empty:
                            continue
                        means = g.groupby("lr")["value"].mean()
                        x = _dodge(means.index.to_numpy(float), i, len(methods), 0.05)
                        ax.plot(x, means.to_numpy(float) * 100, color=method_color(m), marker="o", ms=3.5, lw=1.4,
                                label=m, zorder=3)
                        seeds = _dodge(g["lr"].to_numpy(float), i, len(methods), 0.05)
                        ax.scatter(seeds, g["value"].to_numpy(float) * 100, s=10, alpha=0.5, color=method_color(m),
                                   edgecolors="none", zorder=2)
                        lr, label = lr_sensitivity.selected_for(
                            selected, *_raw_condition(g), size, m)
                        bracket = bracket or label
                        hit = np.isclose(means.index.to_numpy(float), lr) if np.isfinite(lr) else []
                        if np.any(hit):
                            k = int(np.flatnonzero(hit)[0])
                            ax.scatter([x[k]], [means.iloc[k] * 100], s=95, facecolors="none",
                                       edgecolors=method_color(m), linewidths=1.6, zorder=4,
                                       label="selected lr (dev, selection.csv)")
                    ax.set_xscale("log")
                    ax.set_xticks(lrs)
                    ax.set_xticklabels([f"{v:g}" for v in lrs])
                    ax.minorticks_off()
                    ax.set_xlim(min(lrs) / 1.6, max(lrs) * 1.6)
                    ax.set_xlabel(f"{param.replace('_', ' ')} (log scale)")
                    ax.set_ylabel(f"final {split} F1 (points)")
                    n = int(sub.groupby(["method", "lr"]).size().max()) if len(sub) else 0
                    ax.set_title(f"{split} · tuned at size {size}" + (f" (bracket {bracket})" if bracket else "")
                                 + f", n≤{n}")
                    if selected.empty:
                        _note(ax, "no selection.csv: selected lr not marked")
            _legend(fig, axes)
            _caption(fig, f"Learning-rate sensitivity (post hoc) — {backbone} · {sampler}",
                     "tuning stage, tuning seeds only: line = mean over seeds, dot = one seed, ring = the lr selected "
                     "on mean dev F1; the selection read only the dev panels, the test panels are shown after the fact")
            paths += _save(fig, out_dir, f"{name}__{_slug(backbone)}__{_slug(sampler)}")
    return paths


def _raw_condition(g: pd.DataFrame) -> tuple[str, str]:
    """(backbone, sampler) of a folded table's rows as selection.csv names them (the track suffix removed)."""
    backbone = str(g["backbone"].iloc[0]).split(" (")[0]
    return backbone, str(g["sampler"].iloc[0])


# --------------------------------------------------------------------------------------------- public API
def _slug(text: Any) -> str:
    """A file-name part; a folded track "minilm-l6 (frozen)" becomes "minilm-l6-frozen"."""
    text = str(text).replace(" (", "-").replace(")", "")
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in str(text))


def _safe(name: str, builder: Callable[[], list[Path]]) -> list[Path] | str:
    try:
        return builder()
    except NothingToPlot as reason:
        log.info("figure %s skipped: %s", name, reason)
        return str(reason)
    except Exception as error:  # noqa: BLE001 - a bug in one figure must not take the report down
        log.exception("figure %s failed", name)
        return f"failed: {type(error).__name__}: {error}"


def _paths(result: list[Path] | str) -> list[Path]:
    return result if isinstance(result, list) else []


def plot_f1_vs_size(df: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """(1) Test F1 vs few-shot size, mean ± 95% CI per method; one panel per backbone × sampler."""
    return _paths(_safe("f1_vs_size", lambda: _f1_vs_size(df, Path(out_dir))))


def plot_gains(df: pd.DataFrame, out_dir: str | Path, baselines=("deeper", "last"),
               paired: pd.DataFrame | None = None) -> list[Path]:
    """(2) Paired gain over each baseline per size (bootstrap CI), with the paper's claimed band in points
    (top row) and read as relative % (bottom row)."""
    return _paths(_safe("gains", lambda: _gains(df, Path(out_dir), baselines, paired=paired)))


def plot_pairs(df: pd.DataFrame, out_dir: str | Path, metric: str = "f1", contrasts=PAIR_CONTRASTS) -> list[Path]:
    """(2b) Every pair's test difference per size (a dot per pair, mean and 95% CI bar), one panel per
    contrast (fusion − deeper, fusion − deeper_copy, fusion − last, dwatt − concat), one figure per backbone x
    sampler."""
    return _paths(_safe("pairs", lambda: _pairs(df, Path(out_dir), metric=metric, contrasts=contrasts)))


def plot_step_efficiency(df: pd.DataFrame, out_dir: str | Path, targets=stats.STEP_TARGETS,
                         frac: float | None = None, reference: str = "last", scale: str = "linear") -> list[Path]:
    """(3) Dev F1 vs optimizer step per method, one panel per size, with the fixed dev-F1 targets (or, with
    `frac`, the relative target frac x `reference`'s final dev F1)."""
    return _paths(_safe("step_efficiency",
                        lambda: _step_efficiency(df, Path(out_dir), targets, frac, reference, scale=scale)))


def plot_budget(df: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """(4) Head parameters per method with the budget target."""
    return _paths(_safe("budget", lambda: _budget(df, Path(out_dir))))


def plot_depth_attention(manifests: list[dict[str, Any]], out_dir: str | Path,
                         df: pd.DataFrame | None = None) -> list[Path]:
    """(5) Depth-attention heatmaps (layers × entity type, per size) and ScalarMix weight bars."""
    return _paths(_safe("depth_attention", lambda: _depth(manifests, df, Path(out_dir))))


def plot_per_type(df: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """(6) Per-entity-type test F1 per method at each size."""
    return _paths(_safe("per_type", lambda: _per_type(df, Path(out_dir))))


def plot_cost(df: pd.DataFrame, manifests: list[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """(7) Step time and wall-clock per cell, per method."""
    return _paths(_safe("cost", lambda: _cost(df, manifests, Path(out_dir))))


def plot_lr_sensitivity(tune_df: pd.DataFrame, out_dir: str | Path, selection: pd.DataFrame | None = None,
                        stage: str | None = "eval", param: str = "head_lr") -> list[Path]:
    """(8) Post hoc: each arm's final dev and test F1 across the tuned lr grid (tuning-stage cells), one row of
    panels per tuning size, a dot per seed, the lr selected on dev (selection.csv rows of `stage`) ringed."""
    return _paths(_safe("lr_sensitivity", lambda: _lr_sensitivity(tune_df, Path(out_dir), selection, stage, param)))


def make_all_figures(
    df: pd.DataFrame, manifests: list[dict[str, Any]], out_dir: str | Path, targets=stats.STEP_TARGETS,
    frac: float | None = None, reference: str = "last", paired: pd.DataFrame | None = None, scale: str = "linear",
    tune_df: pd.DataFrame | None = None, selection: pd.DataFrame | None = None,
    stage: str | list[str] | None = "eval", param: str = "head_lr",
) -> dict[str, list[Path] | str]:
    """All figures; value = written paths, or the reason the figure was skipped. With `tune_df` (the tuning
    stage's rows of a staged study; `selection` = selection.csv, `stage` = the stage(s) whose selection.csv rows mark
    the selected lr, `lr_sensitivity.selected_lrs`) the post-hoc
    lr-sensitivity figure is added under "lr_sensitivity"."""
    out = Path(out_dir)
    figures: dict[str, list[Path] | str] = {
        "f1_vs_size": _safe("f1_vs_size", lambda: _f1_vs_size(df, out)),
        "gains": _safe("gains", lambda: _gains(df, out, paired=paired)),
        "pairs": _safe("pairs", lambda: _pairs(df, out)),
        "step_efficiency": _safe("step_efficiency",
                                 lambda: _step_efficiency(df, out, targets, frac, reference, scale=scale)),
        "budget": _safe("budget", lambda: _budget(df, out)),
        "depth_attention": _safe("depth_attention", lambda: _depth(manifests, df, out)),
        "per_type": _safe("per_type", lambda: _per_type(df, out)),
        "cost": _safe("cost", lambda: _cost(df, manifests, out)),
    }
    if tune_df is not None:
        figures["lr_sensitivity"] = _safe("lr_sensitivity",
                                          lambda: _lr_sensitivity(tune_df, out, selection, stage, param))
    return figures
