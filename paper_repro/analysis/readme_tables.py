"""README performance section generated from the benchmark parquet, so that no number is typed by hand.

    python -m paper_repro.analysis.readme_tables README.md [--bench-dir results/bench] [--study results/<study>]

Rewrites what lies between `<!-- BEGIN performance -->` and `<!-- END performance -->` in the README with
markdown tables built from the `summary` rows of `results/bench/*.parquet` (written by `bench/*.py`), each
with the machine it was measured on and the parameters of the run. A benchmark without its parquet is said
to be missing, with the command that produces it. `--study DIR` (repeatable) adds the per-cell cost recorded in
a study's manifests. `--append` adds the section at the end when the README has no markers; `--check` writes
nothing and exits 1 if the section is out of date. `--results-study DIR` (repeatable) fills the results markers
with each study's tables; when the README also has `<!-- BEGIN answer -->` ... `<!-- END answer -->` (near its top),
the studies' verdicts per claim side by side go there instead of heading the results. `--budget CSV` (repeatable)
fills `<!-- BEGIN budget -->` ... `<!-- END budget -->` with the heads' parameter budgets per backbone, from the CSVs
`paper-repro budget --write` wrote; `--layer-cache CSV` fills `<!-- BEGIN layer_cache -->` ... with the frozen
track's cache sizes. Reads files only (no torch).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from paper_repro.results.store import PROGRESS_FILE  # results/<study>/PROGRESS.md (`paper-repro status --write`)

BEGIN = "<!-- BEGIN performance -->"
END = "<!-- END performance -->"
RESULTS_BEGIN = "<!-- BEGIN results -->"
RESULTS_END = "<!-- END results -->"
ANSWER_BEGIN = "<!-- BEGIN answer -->"
ANSWER_END = "<!-- END answer -->"
BUDGET_BEGIN = "<!-- BEGIN budget -->"
BUDGET_END = "<!-- END budget -->"
LAYER_CACHE_BEGIN = "<!-- BEGIN layer_cache -->"
LAYER_CACHE_END = "<!-- END layer_cache -->"
LAYER_CACHE_COLUMNS = {"backbone": str, "split": str, "max_length": int, "subwords": int, "layers": int, "hidden": int,
                       "gib": float, "gib_fuse_embeddings": float}    # of `python -m paper_repro.train.layer_cache --write`
KNOB_SYMBOLS = {"gamma": "γ"}
BUDGET_COLUMNS = {"backbone": str, "layers": int, "hidden": int, "extra_layers": int, "fuse_embeddings": bool,
                  "tolerance": float, "method": str, "knob": str, "knob_value": str, "params": int, "deviation": float,
                  "matched": bool, "note": str}                   # of `paper-repro budget --write` (models/budget.py)
RATIO_KNOBS = {"gamma"}                                         # knobs that are fractions of H (the others: widths)
MACHINE_COLUMNS = ("gpu", "cpu_model", "usable_cpus", "physical_cores", "torch_threads", "torch_version", "date",
                   "git_sha", "git_dirty", "loadavg_1m")


# ----------------------------------------------------------------------------------------------------------
# value formatting
def _nan(value) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def fmt_seconds(value) -> str:
    return "–" if _nan(value) else (f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:,.0f}")


def fmt_ms(value) -> str:
    if _nan(value):
        return "–"
    ms = 1000 * value
    return f"{ms:.2f}" if ms < 10 else f"{ms:.1f}" if ms < 100 else f"{ms:,.0f}"


def fmt_ratio(value) -> str:
    return "–" if _nan(value) else f"{value:.2f}×"


def fmt_f1(value) -> str:
    return "–" if _nan(value) else f"{100 * value:.1f}"


def fmt_points(value) -> str:
    return "–" if _nan(value) else f"{value:+.1f}"


def fmt_points2(value) -> str:
    return "–" if _nan(value) else f"{value:+.2f}"


def fmt_bool(value) -> str:
    return "–" if _nan(value) else ("yes" if value >= 0.5 else "**no**")


def fmt_int(value) -> str:
    return "–" if _nan(value) else f"{value:,.0f}"


def fmt_float(value) -> str:
    if _nan(value):
        return "–"
    magnitude = abs(value)
    return f"{value:,.0f}" if magnitude >= 1000 else f"{value:.1f}" if magnitude >= 10 else f"{value:.3g}"


Column = tuple[str, str, Callable]  # (metric, header, formatter)


@dataclass
class TableSpec:
    title: str                                  # sub-heading of the table
    columns: list[Column]
    row_label: str = "variant"
    variants: Callable[[str], bool] = lambda v: True   # which summary variants go in this table
    note: str = ""


@dataclass
class BenchSpec:
    name: str
    title: str
    command: str
    tables: list[TableSpec]
    describe: str = ""
    order: list[str] = field(default_factory=list)   # preferred row order
    run_keys: list[tuple[str, str]] | None = None     # the "Run:" line's (argument, template); None: the cell benches'


HEAD_ORDER = ["last", "deeper", "concat", "dwatt", "scalarmix", "lstm", "attnres", "attnres_block"]

HEAD_OVERHEAD_TABLE = TableSpec("", [
    ("head_params", "head params", fmt_int), ("step_s", "train step (ms)", fmt_ms),
    ("step_time_ratio", "step vs last", fmt_ratio), ("eval_sentences_per_s", "eval (sent/s)", fmt_float),
    ("eval_time_ratio", "eval time vs last", fmt_ratio), ("target_ratio", "target", fmt_ratio),
    ("meets_target", "met", fmt_bool),
], row_label="head")

BENCHES = [
    BenchSpec(
        "before_after", "Before and after the speed-ups (one run, same machine)",
        "python bench/before_after.py",
        [TableSpec("", [
            ("before", "before", fmt_float), ("after", "after", fmt_float),
            ("after_vs_before", "after / before", fmt_ratio), ("target", "target", fmt_float),
            ("met", "met", fmt_bool),
        ], row_label="quantity")],
        describe=("The code before the speed-ups (`before_sha`) and after (`after_sha`), each running its own "
                  "`bench/cell_cost.py` (`ours` vs `peer`), `bench/floor.py` and `bench/head_overhead.py` in a fresh "
                  "process, alternating order per round; medians over rounds. Targets (issue \"Cells at the "
                  "hardware's pace\"): a cell ≤ 0.35× the peer loop at ±1 F1, the `last` train step ≤ 2× the FLOP "
                  "floor, eval throughput ≥ 2× before for every head, every budget-matched head's step ≤ `deeper`'s."),
    ),
    BenchSpec(
        "cell_cost", "Cost of a whole cell: ours vs a `run_ner_no_trainer`-style loop",
        "python bench/cell_cost.py",
        [TableSpec("", [
            ("total_s", "wall-clock (s)", fmt_seconds), ("load_s", "load", fmt_seconds),
            ("tokenize_s", "tokenize", fmt_seconds), ("train_s", "train", fmt_seconds),
            ("eval_s", "eval", fmt_seconds), ("other_s", "other", fmt_seconds),
            ("f1_test_mean", "test F1", fmt_f1), ("time_ratio_vs_peer", "time vs peer", fmt_ratio),
            ("f1_gap_vs_peer", "ΔF1 vs peer (pts)", fmt_points), ("meets_target", "≤ 0.35× at ±1 F1", fmt_bool),
        ])],
        describe=("Same encoder, few-shot subset, steps, batch size, eval points, dev subsample and test split, in one "
                  "process, alternating order. `ours`: `run_cell` as a sweep's 2nd+ cell (cached splits, features, "
                  "backbone); `ours_cold`: as the first cell of a fresh process (empty caches); `peer`: "
                  "`bench/peer_loop.py` (tokenizes and loads every run, evaluates in dataset order padded to the batch "
                  "max, same two learning rates and clipping as ours); `ours_fast`: `ours` with the numerics-changing speed "
                  "switches on (bf16 autocast training and evaluation, frozen word embeddings: config fields, off by "
                  "default). Medians over repeats; time vs peer is the "
                  "median of the per-repeat ratio; test F1 is the mean over repeats (seed + r)."),
        order=["ours", "ours_cold", "peer"],
    ),
    BenchSpec(
        "head_overhead", "Fusion-head overhead relative to `last` (matched budget)",
        "python bench/head_overhead.py --backbone minilm-l6",
        [HEAD_OVERHEAD_TABLE],
        describe=("Training step = forward + backward + clip + AdamW of the product's loop on real batches of the "
                  "few-shot subset (warm-up excluded, median); eval = the product's `predict` over the dev subsample. "
                  "Heads interleaved round-robin per repeat; ratios are medians of the per-repeat ratios to `last`. "
                  "Targets: dwatt ≤ 1.10×, every head ≤ 1.15×."),
        order=HEAD_ORDER,
    ),
    BenchSpec(
        "head_overhead_gpu_h200", "On a GPU (H200): fusion-head overhead, fp32",
        "python bench/head_overhead.py --backbone <MiniLM folder> --steps 100 --repeats 1   # on the GPU machine",
        [HEAD_OVERHEAD_TABLE],
        describe=("As above, on one NVIDIA H200 (16 host cores), one repeat: a few seconds per head, so the ratios "
                  "are noisy (`scalarmix`, 7 parameters, against `last`; `deeper` against `deeper_copy`, the same "
                  "work). The "
                  "backbone is MiniLM-L6 with its weights rounded to fp16 and loaded as fp32 (the packaged fp32 "
                  "file is larger than what could be sent to that machine); step times do not depend on the "
                  "weights' values. A MiniLM step at batch 8 is bound by kernel launches on this GPU (the profile "
                  "`results/bench/profiles/head_overhead_gpu_h200_last.txt` counts a fraction of the step's wall "
                  "time as GPU time), so step ratios follow the number of kernels a head launches, not its FLOPs."),
        order=HEAD_ORDER,
    ),
    BenchSpec(
        "head_overhead_gpu_h200_bf16_cudnn", "On a GPU (H200): bf16 autocast with cuDNN attention (before the fix)",
        "python bench/head_overhead.py --heads last,dwatt --set train.mixed_precision=bf16 ...   # code before a34ab8f",
        [HEAD_OVERHEAD_TABLE],
        describe=("bf16 autocast let PyTorch pick cuDNN's attention kernel, which builds a plan for every new "
                  "sequence length: the first head of the process (`last`) paid for the plans (its eval rate), "
                  "the second found most of them built. Fixed by `paper_repro/train/device.py` (next table)."),
        order=HEAD_ORDER,
    ),
    BenchSpec(
        "head_overhead_gpu_h200_bf16", "On a GPU (H200): bf16 autocast, cuDNN attention off (now)",
        "python bench/head_overhead.py --heads last,dwatt --set train.mixed_precision=bf16 ...   # on the GPU machine",
        [HEAD_OVERHEAD_TABLE],
        describe=("The same run with cuDNN's attention switched off on CUDA (what every cell and bench now does; "
                  "the manifest records `device_settings: {sdpa_cudnn: false}`). At this model size bf16 is not "
                  "reliably faster than fp32 on this GPU: against the fp32 table above (one repeat each) `last` "
                  "stepped slower and `dwatt` faster, and both cells of `results/gpu_h200/3_seed100` trained "
                  "slower in bf16; the steps are launch-bound, and autocast adds cast kernels."),
        order=HEAD_ORDER,
    ),
    BenchSpec(
        "head_overhead_gpu_h100_shapes", "On a GPU (H100): the paper grid's encoder shapes, fp32",
        "TAG=h100 bash bench/gpu_check.sh shapes   # on the GPU machine (bench/shape_backbone.py writes the shapes)",
        [HEAD_OVERHEAD_TABLE],
        describe=("`experiments/paper.yaml`'s encoders in shape, not in weights: `bench/shape_backbone.py` wrote "
                  "BERT-type folders with random weights in the shapes of BERT-base (12 layers, H768, 30,522-row "
                  "vocabulary) and XLM-R-large (24 layers, H1024, 250,002-row vocabulary), with MiniLM's tokenizer "
                  "(neither the weights nor the hub could reach the lent machine; step and eval time depend on the "
                  "shape, not on the weights' values; the batches have WordPiece's lengths, not XLM-R's "
                  "SentencePiece's). One NVIDIA H100, one repeat of 50 timed steps per head at "
                  "batch 8 (the study's), 1000 dev sentences per eval pass. The run's code was its commit plus "
                  "`bench/shape_backbone.py`, committed unchanged right after it."),
        order=HEAD_ORDER,
    ),
    BenchSpec(
        "head_overhead_gpu_h100_shapes_bf16", "On a GPU (H100): the paper grid's encoder shapes, bf16 autocast",
        "TAG=h100 bash bench/gpu_check.sh shapes   # on the GPU machine",
        [HEAD_OVERHEAD_TABLE],
        describe="The run above with `train.mixed_precision=bf16` (in the same session, right after it).",
        order=HEAD_ORDER,
    ),
    BenchSpec(
        "frozen_gpu_h100", "On a GPU (H100): frozen-backbone cells vs full fine-tuning",
        "TAG=h100 BACKBONE=<MiniLM folder> bash bench/gpu_check.sh shapes   # on the GPU machine",
        [TableSpec("Cells (medians over repeats, s; test F1 the mean)", [
            ("total_s", "total", fmt_seconds), ("train_s", "train", fmt_seconds), ("eval_s", "eval", fmt_seconds),
            ("step_time_s", "step (ms)", fmt_ms), ("f1_test_mean", "test F1", fmt_f1),
            ("speedup_total", "full / frozen", fmt_ratio), ("speedup_train", "train", fmt_ratio),
            ("speedup_eval", "eval", fmt_ratio), ("meets_target", "≥ 20×", fmt_bool),
        ], variants=lambda v: "-" in v, row_label="cell"),
            TableSpec("Layer cache (train, valid and test splits)", [
                ("layer_cache_build_s", "build (s)", fmt_seconds), ("layer_cache_gib", "size (GiB)", fmt_float),
            ], variants=lambda v: v == "frozen", row_label="cache")],
        describe=("`bench/frozen.py` on one NVIDIA H100: the MiniLM-L6 cell of the CPU benchmark (`frozen` table "
                  "below), two repeats, with MiniLM's weights rounded to fp16 (the packaged fp32 file did not fit the "
                  "transfer to that machine), so its F1 is not the CPU run's. The code is commit `48ec56d` (entity "
                  "sets scoring); the lent machine's copy of the repository kept the session's first commit in its "
                  "git metadata, which is what the run line records (`2267b04`, dirty)."),
        order=["last-full", "last-frozen", "dwatt-full", "dwatt-frozen"],
    ),
    *[BenchSpec(
        f"frozen_gpu_h100_scoring_{when}", f"On a GPU (H100): `last` cells {label} the scoring change",
        "python bench/frozen.py --backbone <MiniLM folder> --repeats 2 --heads last   # on the GPU machine",
        [TableSpec("", [
            ("total_s", "total (s)", fmt_seconds), ("train_s", "train (s)", fmt_seconds),
            ("eval_s", "eval (s)", fmt_seconds), ("f1_test_mean", "test F1", fmt_f1),
            ("f1_dev_mean", "dev F1", fmt_f1), ("speedup_total", "full / frozen", fmt_ratio),
        ], variants=lambda v: "-" in v, row_label="cell")],
        describe=describe, order=["last-full", "last-frozen"],
    ) for when, label, describe in (
        ("before", "before",
         "Scoring by seqeval's `classification_report` in both modes (the code of `2267b04`, exported with "
         "`git archive`, hence `unknown` below), then the code of `48ec56d` (next table), in one call on one "
         "machine: evaluation is host work on a GPU, and scoring was most of it."),
        ("after", "after",
         "The same cells with each side's entities found once (`EntitySets`, `paper_repro/train/evaluate.py`): "
         "the same F1 to the last digit; compare the eval column with the table above. The run line's `2267b04` "
         "(dirty) is the machine's stale git metadata; the code was `48ec56d`."))],
    BenchSpec(
        "scoring", "Scoring one evaluation: seqeval's reports vs entity sets",
        "python bench/scoring.py",
        [TableSpec("", [("score_s", "seconds (median)", fmt_seconds),
                        ("speedup", "vs seqeval's reports", fmt_ratio)], row_label="split-scorer")],
        describe=("`seqeval_reports`: `classification_report` in the default and the strict IOB2 mode (how a cell "
                  "scored before `48ec56d`); `fresh`: `score_by_type` now, finding each side's entities once; "
                  "`reused`: the same with the gold's entities built beforehand, as a cell does at every evaluation "
                  "after its first. Real dev subsample and test split against corrupted copies of their gold; the "
                  "three give the same floats (checked before timing). Alternating order, one process; the study "
                  "sweepers were paused (SIGSTOP) for the run, which the 1-minute load average below still shows."),
        order=["dev-seqeval_reports", "dev-fresh", "dev-reused", "test-seqeval_reports", "test-fresh", "test-reused"],
    ),
    BenchSpec(
        "memory", "Peak memory of a cell per head",
        "python bench/memory.py --backbone minilm-l6",
        [TableSpec("", [
            ("peak_rss_mb", "peak RSS (MB)", fmt_int), ("sampled_peak_rss_mb", "sampled peak (MB)", fmt_int),
            ("limit_mb", "limit (MB)", fmt_int), ("meets_target", "met", fmt_bool),
        ], row_label="head")],
        describe=("Each cell in a fresh Python process; peak RSS = the cell process's `ru_maxrss` (manifest "
                  "`peak_rss_mb`, imports included), cross-checked by psutil sampling. Target for minilm-l6: ≤ 3 GB."),
        order=HEAD_ORDER,
    ),
    BenchSpec(
        "scaling", "Cell time vs few-shot size, step budget and concurrent Slurm tasks",
        "python bench/scaling.py [--slurm]",
        [
            TableSpec("Cell time per point (medians, s)", [
                ("total_s", "total", fmt_seconds), ("train_s", "train", fmt_seconds), ("eval_s", "eval", fmt_seconds),
                ("tokenize_s", "tokenize", fmt_seconds), ("step_time_s", "step (ms)", fmt_ms),
            ], row_label="point", variants=lambda v: v.startswith("size")),
            TableSpec("Linear fits", [
                ("intercept", "intercept (s)", fmt_float), ("slope", "slope", fmt_float), ("r2", "R²", fmt_float),
                ("relative_spread", "(max−min)/median", fmt_float),
            ], row_label="fit", variants=lambda v: v.startswith("fit-"),
                note="Expected: train time linear in steps (R² ≈ 1), eval time flat across steps and sizes."),
            TableSpec("Sweep throughput on the local Slurm node", [
                ("cells_per_hour", "cells / hour", fmt_float), ("speedup", "vs 1 task", fmt_ratio),
            ], row_label="array tasks", variants=lambda v: v.startswith("slurm-")),
            TableSpec("Sweep throughput on this machine without Slurm: K concurrent sweepers × (CPUs / K) threads", [
                ("cells_per_hour", "cells / hour", fmt_float), ("steady_cells_per_hour", "steady state", fmt_float),
                ("speedup", "vs 1 sweeper", fmt_ratio),
            ], row_label="sweepers", variants=lambda v: v.startswith("local-p"),
                note="The faster setting is `run_all.sh`'s default for a study on a CPU machine (`SWEEPERS`)."),
        ],
        describe="`run_cell` in one process with warm caches; points in alternating order over repeats.",
    ),
    BenchSpec(
        "floor", "Training step vs this CPU's compute floor",
        "python bench/floor.py --backbone minilm-l6",
        [TableSpec("", [
            ("matmul_gflops_best", "fp32 matmul (GFLOP/s)", fmt_float), ("step_gflop", "GFLOP / step", fmt_float),
            ("backbone_step_gflop", "backbone GFLOP / step", fmt_float), ("floor_step_s", "floor (ms)", fmt_ms),
            ("measured_step_s", "measured (ms)", fmt_ms), ("x_floor", "× floor", fmt_ratio),
            ("achieved_gflops", "achieved GFLOP/s", fmt_float), ("head_step_gflop", "after-backbone GFLOP / step", fmt_float),
            ("frozen_train_bound_x", "frozen-step FLOP ratio", fmt_ratio),
        ], row_label="head"), TableSpec("Evaluation: one `predict` pass over the dev subsample", [
            ("eval_sentences", "sentences", fmt_int), ("eval_gflop", "GFLOP / pass", fmt_float),
            ("eval_floor_s", "floor (s)", fmt_seconds), ("eval_measured_s", "measured (s)", fmt_seconds),
            ("eval_x_floor", "× floor", fmt_ratio),
        ], row_label="head")],
        describe=("FLOPs of forward + backward counted by `torch.utils.flop_counter.FlopCounterMode` on real batches "
                  "(matmul-like ops only, so the floor is a lower bound) over the best measured `torch.mm` fp32 rate; "
                  "measured = the product's training step (incl. AdamW), warm-up excluded. Evaluation: the forward "
                  "FLOPs of the product's `predict` on its length-grouped dev batches (padding included, as run) "
                  "over the same rate, against the median timed pass after a warm-up pass: how much faster fp32 "
                  "evaluation could get at all. Frozen-step FLOP ratio = step FLOPs / the FLOPs after the backbone "
                  "(head, pooling, classifier, loss, their backward): what a frozen-encoder training step saves in "
                  "FLOPs; it also skips the encoder's optimizer update, so its measured speed-up (`speedup_train` "
                  "of the `frozen` benchmark) can be somewhat higher."),
    ),
    BenchSpec(
        "sign_flip_units", "Sign flips per pair vs per seed unit (the statistics amendment of 2026-11-27)",
        "python bench/sign_flip_units.py",
        [TableSpec("", [
            ("reject_pairs", "reject, flipping pairs", fmt_float), ("reject_seeds", "reject, flipping seeds", fmt_float),
            ("cover_pairs", "95% CI covers 0, pairs (Welch)", fmt_float),
            ("cover_seeds", "95% CI covers 0, seeds", fmt_float),
        ], row_label="unit-level share of variance")],
        describe=("Null studies shaped like `cpu_study`'s eval stage (8 (data_seed, seed) units x sizes 50-1000, no "
                  "effect) where a share of each pair difference's variance is the unit's, as nested subsets and a "
                  "tied init seed make it; `hypotheses.pooled_test` on each, flipping pairs (the test as first "
                  "registered; 2000 random sign patterns instead of the study's 100000) and whole units (`unit: "
                  "seeds`, exact). Nominal: reject 0.05 (one-sided, alpha 0.05), cover 0.95."),
        order=["icc-0", "icc-0.2", "icc-0.5"],
        run_keys=[("units", "{} seed units"), ("sizes", "sizes {}"), ("sims", "{} null studies per share"),
                  ("resamples", "{} random sign patterns per per-pair test"), ("seed", "seed {}")],
    ),
    BenchSpec(
        "switch_f1_frozen_words", "Frozen track: the head on word-initial tokens only (`train.head_words_only`)",
        "python bench/switch_f1.py --threads 1 --size 1000 --steps 1250 --eval-points 8 --repeats 3 --base "
        "'model.finetune=frozen;model.head.name=dwatt;train.head_lr=1e-3;train.eval_schedule=linear;"
        "train.warmup_steps=20' --variants words:train.head_words_only=true --out "
        "results/bench/switch_f1_frozen_words.parquet",
        [TableSpec("", [
            ("f1_test", "test F1", fmt_f1), ("f1_dev", "dev F1", fmt_f1), ("gap_pts", "test gap (pts)", fmt_points2),
            ("gap_min", "min", fmt_points2), ("gap_max", "max", fmt_points2), ("total_x_off", "cell × off", fmt_ratio),
            ("train_x_off", "train × off", fmt_ratio), ("eval_x_off", "eval × off", fmt_ratio),
        ], row_label="variant")],
        describe=("Frozen `dwatt` cells (MiniLM-L6, 1000 sentences, 1250 steps, head lr 1e-3, 8 linear dev "
                  "evaluations, full test), `off` = the plain cell, `words` = `train.head_words_only`, the same 3 seeds "
                  "(paired), variants alternating per seed; machine shared with the study's sweepers (timings noisy, "
                  "ratios paired). Gap: test F1 of `words` minus `off` per seed, points. Evaluation runs every token "
                  "in both, so `eval × off` should read 1×."),
        order=["off", "words"],
    ),
]


# ----------------------------------------------------------------------------------------------------------
def machine_line(group: pd.DataFrame) -> str:
    lines = []
    present = [c for c in MACHINE_COLUMNS if c in group.columns]
    for _, m in group[present].drop_duplicates().iterrows():
        sha = str(m.get("git_sha", ""))[:10] + (" (dirty)" if bool(m.get("git_dirty", False)) else "")
        load = m.get("loadavg_1m")
        gpu = m.get("gpu")
        lines.append(
            (f"GPU {gpu} (host " if isinstance(gpu, str) and gpu else "")
            + f"{m.get('cpu_model', '?')}, {m.get('usable_cpus', '?')} usable CPUs ({m.get('physical_cores', '?')} physical "
            f"cores), torch {m.get('torch_version', '?')} with {m.get('torch_threads', '?')} threads; "
            f"{m.get('date', '?')}, git `{sha}`" + ("" if _nan(load) else f", load average {load:.2f} at start")
            + (")" if isinstance(gpu, str) and gpu else "")
        )
    return "; ".join(lines)


def parameters_line(group: pd.DataFrame, run_keys: list[tuple[str, str]] | None = None) -> str:
    try:
        args = json.loads(group["args"].dropna().iloc[0])
    except (KeyError, IndexError, ValueError, TypeError):
        return ""
    keys = run_keys if run_keys is not None else [
        ("backbone", "backbone {}"), ("size", "{} sentences"), ("steps", "{} steps"), ("batch_size", "batch {}"),
        ("dev", "dev subsample {}"), ("eval_points", "eval points {}"), ("repeats", "repeats {}"),
        ("cell_steps", "cells of {} steps"), ("rounds", "rounds {}")]
    parts = [template.format(args[k]) for k, template in keys if k in args]
    for column, label in (("before_sha", "before"), ("after_sha", "after")):   # bench/before_after.py
        if column in group.columns and group[column].notna().any():
            parts.append(f"{label} `{str(group[column].dropna().iloc[0])[:10]}`")
    return ", ".join(parts)


def validation_warning(group: pd.DataFrame) -> str:
    if "test_limit" in group.columns:
        limits = pd.to_numeric(group["test_limit"], errors="coerce").fillna(0)
        if (limits > 0).any():
            return (f"**Validation run (test split limited to {int(limits.max())} sentences): these numbers are "
                    "not a benchmark result.**")
    return ""


def markdown_table(header: Sequence[str], rows: list[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def ordered(variants: list[str], preferred: list[str]) -> list[str]:
    known = [v for v in preferred if v in variants]
    return known + [v for v in variants if v not in known]


def render_table(summary: pd.DataFrame, spec: TableSpec, order: list[str]) -> str | None:
    rows = summary[summary["variant"].map(spec.variants)]
    if rows.empty:
        return None
    values = rows.groupby(["variant", "metric"], sort=False)["value"].last()
    columns = [c for c in spec.columns if c[0] in set(rows["metric"])]
    if not columns:   # e.g. an older run without this table's metrics
        return None
    body = []
    for variant in ordered(list(dict.fromkeys(rows["variant"])), order):
        label = variant if "`" in variant else f"`{variant}`"   # labels that quote code themselves stay as they are
        body.append([label] + [fmt(values.get((variant, metric), float("nan"))) for metric, _, fmt in columns])
    table = markdown_table([spec.row_label] + [header for _, header, _ in columns], body)
    parts = ([f"*{spec.title}*", ""] if spec.title else []) + [table]
    if spec.note:
        parts += ["", spec.note]
    return "\n".join(parts)


def generic_spec(name: str) -> BenchSpec:
    return BenchSpec(name, f"Benchmark `{name}`", f"python bench/{name}.py", [])


def render_bench(spec: BenchSpec, frame: pd.DataFrame | None, source: Path) -> str:
    lines = [f"### {spec.title}", ""]
    if frame is None:
        return "\n".join(lines + [f"_Not measured yet: `{source}` is missing. Run `{spec.command}`._", ""])
    if spec.describe:
        lines += [spec.describe, ""]
    summary = frame[frame["kind"] == "summary"] if "kind" in frame.columns else frame.iloc[0:0]
    if summary.empty:
        return "\n".join(lines + [f"_`{source}` has no summary rows._", ""])
    backbones = list(dict.fromkeys(summary["backbone"].fillna("?"))) if "backbone" in summary.columns else ["?"]
    for backbone in backbones:
        group = frame[frame["backbone"].fillna("?") == backbone] if "backbone" in frame.columns else frame
        rows = summary[summary["backbone"].fillna("?") == backbone] if "backbone" in summary.columns else summary
        if len(backbones) > 1:
            lines += [f"**{backbone}**", ""]
        tables = spec.tables or [TableSpec("", [(m, m, fmt_float) for m in dict.fromkeys(rows["metric"])])]
        for table_spec in tables:
            rendered = render_table(rows, table_spec, spec.order)
            if rendered:
                lines += [rendered, ""]
        warning = validation_warning(group)
        if warning:
            lines += [warning, ""]
        params = parameters_line(group, spec.run_keys)
        lines += [f"Run: {params + '. ' if params else ''}Machine: {machine_line(group)}.", ""]
    return "\n".join(lines)


# fp32 vs bf16 runs of bench/head_overhead.py: (fp32 file, bf16 file, title, what the run was), rendered after
# the benchmark PRECISION_AFTER
PRECISION_AFTER = "head_overhead_gpu_h100_shapes_bf16"
PRECISION_PAIRS = [
    ("head_overhead_gpu_h100_shapes", "head_overhead_gpu_h100_shapes_bf16",
     "On a GPU (H100): does bf16 autocast pay at the paper grid's shapes?",
     "The two runs above side by side (one repeat each)."),
    ("head_overhead_gpu_h100_shapes_r3", "head_overhead_gpu_h100_shapes_bf16_r3",
     "On a GPU (H100): fp32 vs bf16 at XLM-R-large's shape, 3 repeats",
     "A second run on the same machine, `last` and `dwatt` only, 3 repeats of 40 timed steps per head and "
     "precision (medians)."),
]


def precision_section(bench_dir: Path, fp32_name: str, bf16_name: str, title: str, describe: str) -> str:
    """Train step and eval rate per (backbone, head) of an fp32 run and a bf16 run, and their ratio. Each file must
    be the precision it stands for (its `overrides` column); rows in one run only are named, not dropped silently."""
    lines = [f"### {title}", ""]
    frames = {name: read_bench(bench_dir / f"{name}.parquet") for name in (fp32_name, bf16_name)}
    if any(frame is None for frame in frames.values()):
        missing = [f"`{name}.parquet`" for name, frame in frames.items() if frame is None]
        return "\n".join(lines + [f"_Not measured yet: {', '.join(missing)} missing._", ""])
    values = {}
    for (name, frame), want in zip(frames.items(), ("no", "bf16")):
        overrides = " ".join(str(o) for o in frame.get("overrides", pd.Series(dtype=str)).dropna().unique())
        precision = "bf16" if "mixed_precision=bf16" in overrides else "no"
        if "kind" not in frame.columns or precision != want:
            return "\n".join(lines + [f"_`{name}.parquet` is not a {'bf16' if want == 'bf16' else 'fp32'} "
                                       "`bench/head_overhead.py` run with summary rows._", ""])
        summary = frame[frame["kind"] == "summary"]
        values[name] = summary.groupby(["backbone", "variant", "metric"])["value"].last()
    fp32, bf16 = values[fp32_name], values[bf16_name]
    pairs = {name: list(dict.fromkeys((b, v) for b, v, m in series.index if m == "step_s"))
             for name, series in values.items()}
    keys = [k for k in pairs[fp32_name] if k in set(pairs[bf16_name])]
    order = {h: i for i, h in enumerate(HEAD_ORDER)}
    keys.sort(key=lambda k: (str(k[0]), order.get(k[1], len(order)), k[1]))
    body = []
    for backbone, head in keys:
        get = lambda series, metric: series.get((backbone, head, metric), float("nan"))  # noqa: E731
        step32, step16 = get(fp32, "step_s"), get(bf16, "step_s")
        eval32, eval16 = get(fp32, "eval_sentences_per_s"), get(bf16, "eval_sentences_per_s")
        body.append([f"`{Path(str(backbone)).name}`", f"`{head}`", fmt_ms(step32), fmt_ms(step16),
                     fmt_ratio(step16 / step32), fmt_float(eval32), fmt_float(eval16), fmt_ratio(eval16 / eval32)])
    lines += [describe, ""]
    if body:
        lines += [markdown_table(["backbone", "head", "step fp32 (ms)", "step bf16 (ms)", "bf16 / fp32",
                                  "eval fp32 (sent/s)", "eval bf16 (sent/s)", "bf16 / fp32"], body), "",
                  "Step: bf16 / fp32 above 1× means bf16 trains slower; eval: above 1× means bf16 evaluates faster.",
                  ""]
    alone = [f"`{Path(str(b)).name}` `{h}` ({name})" for name, other in ((fp32_name, bf16_name), (bf16_name, fp32_name))
             for b, h in pairs[name] if (b, h) not in set(pairs[other])]
    if alone or not body:
        lines += [f"_In one run only (no pair): {', '.join(alone) or 'every row'}._", ""]
    return "\n".join(lines)


# train.compile / train.tf32 on a GPU (`bench/gpu_check.sh compile` and `compile-shapes`): bench/head_overhead.py runs
# of one session, each labelled by its own `overrides` column (never by its file name); rendered after COMPILE_AFTER
COMPILE_AFTER = "frozen_gpu_h100_scoring_after"
COMPILE_RUNS = ["head_overhead_gpu_h100_compile_eager", "head_overhead_gpu_h100_compile_default",
                "head_overhead_gpu_h100_shapes_compile_eager", "head_overhead_gpu_h100_shapes_compile_tf32",
                "head_overhead_gpu_h100_shapes_compile_default"]
COMPILE_TITLE = "On a GPU (H100): torch.compile and TF32 (`train.compile`, `train.tf32`)"
COMPILE_DESCRIBE = (
    "`bench/head_overhead.py` on one NVIDIA H100, batch 8, 10 warm-up steps then 100 (MiniLM) or 50 (BERT-base "
    "shape, random weights) timed steps, 3 dev passes (the first holds the eval graph's compilation; the median "
    "is shown), one repeat per setting, `TAG=h100 bash bench/gpu_check.sh compile` and `compile-shapes`. MiniLM's "
    "weights are rounded to fp16 (the transfer limit of that machine). Warm-up: the 10 untimed steps, where "
    "`torch.compile` compiles the training graph. Break-even: the training steps after which compiling has paid "
    "for itself, (warm-up compiled − warm-up eager) / (step eager − step compiled); evaluation's own compilation "
    "(the cells table below: the first dev evaluation) comes on top. Inductor's on-disk cache was shared by these "
    "runs in the order shown, after the compiled cell of the cells table below (its training time holds the first, "
    "cold compile on that machine): later compiles reused kernels, so their warm-up understates a cold compile, "
    "`dwatt` at MiniLM's shape most (the cell had compiled that model). The run lines' `ec1f46f` (dirty) is the "
    "lent machine's stale git metadata; the code was `533b320`.")


COLD_COMPILE_RUNS = ["head_overhead_gpu_h200_compile_eager", "head_overhead_gpu_h200_compile_default"]
COLD_COMPILE_TITLE = "On a GPU (H200): torch.compile from cold caches, and CUDA graphs refused"
COLD_COMPILE_DESCRIBE = (
    "The MiniLM rows of the table above again, on one NVIDIA H200 with inductor's caches off "
    "(`TORCHINDUCTOR_FORCE_DISABLE_CACHES=1`, what `bench/gpu_check.sh compile` now sets): every warm-up holds a "
    "cold compile. Two calls on the same warm machine, eager first (`BENCH_MODES=none`, then `default`); the "
    "weights are MiniLM-L6's rounded to fp16 with the embedding rows of word pieces CoNLL-03 never produces set to "
    "zero (never looked up, so no cell can tell; the transfer limit of that machine). The run lines' `86d231d` "
    "(dirty) is the lent machine's git metadata; the code was `82a5e34`, which differs from it only by a "
    "`reduce-overhead` option that the same calls tried: `torch.compile`'s CUDA graphs crashed with a segmentation "
    "fault in the compiled backward of every `dwatt` run (the bench's second head, and the cell twice), and "
    "`last`, the one head that finished, stepped and evaluated slower than eager. Those runs wrote no parquet; "
    "their logs are `results/gpu_h200/compile_check/*.log`, and `train.compile=reduce-overhead` is refused "
    "(`paper_repro/validate.py`).")


def compile_variant(overrides: str) -> str | None:
    """The setting a head_overhead run measured, read from its `--set` overrides: "eager", "TF32", "compile
    <mode>"; None for a run that set anything else (e.g. bf16: not comparable here)."""
    settings = dict(item.strip().split("=", 1) for item in overrides.split(",") if "=" in item)
    compiled = settings.pop("train.compile", "none")
    tf32 = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False,
            "off": False}.get(settings.pop("train.tf32", "false").lower())
    if settings or tf32 is None:
        return None
    if compiled != "none":
        return f"compile {compiled}" + (" + TF32" if tf32 else "")
    return "TF32" if tf32 else "eager"


def compile_section(bench_dir: Path, names: Sequence[str], title: str, describe: str) -> str:
    """Step time, eval rate and warm-up (compile) time per (backbone, head, setting), each against the eager run
    of the same backbone and head; runs of another setting (a bf16 run) or with no summary rows are named."""
    lines = [f"### {title}", ""]
    rows, skipped, machines = [], [], []
    for name in names:
        frame = read_bench(bench_dir / f"{name}.parquet")
        if frame is None or "kind" not in frame.columns:
            skipped.append(f"`{name}.parquet` ({'missing' if frame is None else 'no summary rows'})")
            continue
        runs = frame["overrides"].fillna("").unique() if "overrides" in frame.columns else []
        if len(runs) != 1:   # no record of what it set, or several runs' rows in one file: not labelled by guess
            skipped.append(f"`{name}.parquet` ({'no overrides column' if len(runs) == 0 else 'several runs'})")
            continue
        overrides = str(runs[0])
        variant = compile_variant(overrides)
        if variant is None:
            skipped.append(f"`{name}.parquet` (overrides `{overrides}`)")
            continue
        machines.append((frame, name))
        summary = frame[frame["kind"] == "summary"]
        for (backbone, head), group in summary.groupby(["backbone", "variant"], sort=False):
            values = group.groupby("metric")["value"].last()
            rows.append({"backbone": Path(str(backbone)).name, "head": head, "setting": variant,
                         "step": values.get("step_s", float("nan")), "warmup": values.get("warmup_s", float("nan")),
                         "eval": values.get("eval_sentences_per_s", float("nan"))})
    if not rows:
        return "\n".join(lines + [f"_Not measured yet: {', '.join(skipped) or 'no runs named'}._", ""])
    frame = pd.DataFrame(rows)
    eager = frame[frame["setting"] == "eager"].drop_duplicates(["backbone", "head"], keep="last").set_index(["backbone", "head"])
    order = {h: i for i, h in enumerate(HEAD_ORDER)}
    frame["_head"] = frame["head"].map(lambda h: order.get(h, len(order)))
    frame["_setting"] = frame["setting"].map(lambda v: (v != "eager", v))
    body = []
    for row in frame.sort_values(["backbone", "_head", "_setting"], kind="stable").itertuples():
        base = eager.loc[(row.backbone, row.head)] if (row.backbone, row.head) in eager.index else None
        step_x = eval_x = saved = float("nan")
        breakeven = "–"
        if base is not None and row.setting != "eager":
            step_x, eval_x = row.step / base["step"], row.eval / base["eval"]
            saved = base["step"] - row.step
            if row.setting.startswith("compile"):
                breakeven = (f"{(row.warmup - base['warmup']) / saved:,.0f}" if saved > 0 else "never")
        body.append([f"`{row.backbone}`", f"`{row.head}`", row.setting, fmt_ms(row.step), fmt_ratio(step_x),
                     fmt_float(row.eval), fmt_ratio(eval_x), fmt_seconds(row.warmup), breakeven])
    lines += [describe, "", markdown_table(["backbone", "head", "setting", "step (ms)", "× eager", "eval (sent/s)",
                                            "× eager", "warm-up (s)", "break-even (steps)"], body), "",
              "Step: below 1× eager is faster; eval: above 1× is faster.", ""]
    first, _ = machines[0]
    later = [f"`{name}` {str(frame['date'].iloc[0])[11:19]}" for frame, name in machines[1:] if "date" in frame.columns]
    lines += [f"Machine (first run): {machine_line(first)}." + (f" Then, in order: {', '.join(later)}." if later else ""), ""]
    if skipped:
        lines += [f"_Not shown: {', '.join(skipped)}._", ""]
    return "\n".join(lines)


def read_bench(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    return pq.read_table(path).to_pandas()


def study_section(study_dir: Path) -> str:
    from paper_repro.analysis.load import load_manifests, track_label

    rows = []
    for manifest in load_manifests(study_dir):
        config, timings = manifest.get("config") or {}, manifest.get("timings") or {}
        if not timings:
            continue
        model = config.get("model") or {}
        rows.append({   # a frozen-encoder cell costs a fraction of a full one: its own rows ("minilm-l6 (frozen)")
            "backbone": track_label(model["backbone"], model.get("finetune")) if model.get("backbone") else None,
            "method": ((config.get("model") or {}).get("head") or {}).get("name"),
            "total_s": timings.get("total_s"), "train_s": timings.get("train_s"),
            "eval_s": sum(timings.get("eval_s") or []), "step_time_s": timings.get("step_time_s"),
            "peak_rss_mb": manifest.get("peak_rss_mb"), "device": manifest.get("device"),
        })
    lines = [f"### Cell cost recorded by the study `{study_dir}`", ""]
    if not rows:
        return "\n".join(lines + ["_No done cells with recorded timings._", ""])
    frame = pd.DataFrame(rows)
    body = []
    for (backbone, method), group in frame.groupby(["backbone", "method"], sort=False):
        body.append([backbone, f"`{method}`", str(len(group)), fmt_seconds(group["total_s"].median()),
                     fmt_seconds(group["train_s"].median()), fmt_seconds(group["eval_s"].median()),
                     fmt_ms(group["step_time_s"].median()), fmt_int(group["peak_rss_mb"].max())])
    order = {m: i for i, m in enumerate(HEAD_ORDER)}
    body.sort(key=lambda r: (r[0], order.get(r[1].strip("`"), len(order)), r[1]))
    lines.append(markdown_table(["backbone", "method", "cells", "total (s)", "train (s)", "eval (s)", "step (ms)",
                                 "peak RSS (MB)"], body))
    devices = ", ".join(sorted({str(d) for d in frame["device"].dropna()}))
    lines += ["", f"Medians over the study's done cells (manifest timings); peak RSS is the maximum. Devices: {devices}.", ""]
    return "\n".join(lines)


def cells_section(root: Path) -> str:
    """One row per done cell of every study folder under `root` (`root/<run>/cells/`): cells run on another device
    (e.g. a GPU) to compare precisions and kernels, with their own timings and test F1 (conlleval)."""
    from paper_repro.analysis.load import load_manifests

    lines = [f"### Cells recorded under `{root}`", ""]
    body = []
    for run in sorted(p for p in Path(root).iterdir() if (p / "cells").is_dir()):
        for manifest in load_manifests(run):
            config, timings = manifest.get("config") or {}, manifest.get("timings") or {}
            train, data = config.get("train") or {}, config.get("data") or {}
            table = pq.read_table(run / "cells" / f"{manifest['run_id']}.parquet", columns=["split", "step", "f1"]).to_pandas()
            test = table[table["split"] == "test"].sort_values("step")
            settings = manifest.get("device_settings")
            body.append([f"`{run.name}`", f"`{((config.get('model') or {}).get('head') or {}).get('name')}`",
                         str(data.get("size")), str(train.get("seed")), str(train.get("mixed_precision")),
                         str(train.get("compile", "none")), "on" if train.get("tf32") else "off",
                         "–" if settings is None else ("off" if settings.get("sdpa_cudnn") is False else "default"),
                         str(manifest.get("device")), fmt_ms(timings.get("step_time_s", float("nan"))),
                         fmt_seconds(timings.get("train_s", float("nan"))),
                         fmt_seconds((timings.get("eval_s") or [float("nan")])[0]),
                         fmt_seconds(timings.get("total_s", float("nan"))),
                         fmt_f1(test["f1"].iloc[-1]) if len(test) else "–",
                         f"`{str((manifest.get('git') or {}).get('sha', ''))[:7]}`"
                         + (" + diff" if (manifest.get("git") or {}).get("dirty") else "")])
    if not body:
        return "\n".join(lines + ["_No done cells._", ""])
    lines.append(markdown_table(["run", "method", "size", "seed", "mixed precision", "compile", "TF32", "cuDNN attention", "device",
                                 "step (ms)", "train (s)", "1st dev eval (s)", "total (s)", "test F1", "code"], body))
    lines += ["", "Manifest timings: step = mean optimizer step (train / steps), train = the optimizer steps "
              "alone (dev evaluations excluded), 1st dev eval = the first dev evaluation, total = the whole cell "
              "(load, tokenize, train, evaluations, test). `code` is the commit the cell "
              "recorded, `+ diff` its uncommitted changes (kept beside the cell as `<run_id>.diff`).", ""]
    return "\n".join(lines)


LEARNING_RATES = ["backbone_lr", "head_lr"]
HEADLINE_STAGE = "eval"


def results_section(study_dir: Path, stage: str = HEADLINE_STAGE) -> str:
    """Test F1 vs size per method and the paired gains of each head over `deeper` and `last`, from parquet.

    A staged study (protocol v2) shows its `stage` cells only (default "eval": tuning cells never enter). A
    study that ran the same cells at several learning rates (e.g. `lr_probe`) gets one block per (backbone lr,
    head lr): methods are only compared at the same rates. Protocol-v1 cells are labelled superseded.
    """
    from paper_repro.analysis.load import in_yaml_order, load_results, select_stage, study_stages
    from paper_repro.analysis.lr_sensitivity import declared_stages
    from paper_repro.analysis.report import default_study_yaml

    df_all = load_results(study_dir)
    report = f" ([REPORT]({study_dir}/REPORT.md))" if (study_dir / "REPORT.md").exists() else ""
    lines = [f"### Study `{study_dir.name}`{report}", ""]
    progress = study_dir / PROGRESS_FILE          # written by `paper-repro status --study ... --write`
    if progress.exists():
        lines += ["#### Progress", "", progress.read_text(encoding="utf-8").rstrip(), ""]
    lines += claims_lines(study_dir, df_all)
    if df_all.empty:
        return "\n".join(lines + ["_No done cells yet._", ""])
    df = select_stage(df_all, stage)
    from paper_repro.analysis.report import BUDGET_CHECK_FILE, SELECTION_FILE, csv_section
    from paper_repro.results.store import VERIFY_FILE

    for name, what in ((BUDGET_CHECK_FILE, "Step-budget checks (the stages in column `stage`, tuning seeds; mean final "
                                           "dev F1)"),
                       (SELECTION_FILE, "Head-lr selection (tuning seeds; mean final dev F1 per lr)"),
                       (VERIFY_FILE, "Committed cells re-trained from their manifests (`paper-repro verify --record`; "
                                     "largest |difference| of any metric over every eval row)")):
        section = csv_section(study_dir / name, what)
        if section:
            lines += [section, ""]
    lines += lr_lines(study_dir, df_all, stage)
    if study_stages(df_all):
        stages = in_yaml_order(study_stages(df_all), declared_stages(default_study_yaml(study_dir)))
        lines += [f"Stage `{stage}` only (the study's stages: {', '.join(stages)}).", ""]
        if df.empty:
            return "\n".join(lines + [f"_No cells of stage `{stage}` yet._", ""])
    if not _repeated_cells(df):
        lines.append(results_block(df, ""))
    else:
        rates = df[LEARNING_RATES].drop_duplicates()
        for backbone_lr, head_lr in sorted(rates.itertuples(index=False)):
            subset = df[(df["backbone_lr"] == backbone_lr) & (df["head_lr"] == head_lr)]
            lines.append(results_block(subset, f" at backbone lr {backbone_lr:g}, head lr {head_lr:g}"))
    return "\n".join(lines + full_data_lines(df_all, stage) + descriptive_stage_lines(study_dir, df_all, stage))


def descriptive_stage_lines(study_dir: Path, df_all: pd.DataFrame, stage: str = HEADLINE_STAGE) -> list[str]:
    """Each other few-shot evaluation stage with cells (`report.descriptive_stages`, e.g. cpu_study's K-shot
    `eval_ktype`): its F1 and paired tables (`results_block`), linked to its own report when written."""
    from paper_repro.analysis.load import load_manifests, select_stage
    from paper_repro.analysis.report import default_study_yaml, descriptive_stages, stage_out_dir

    lines: list[str] = []
    stages = descriptive_stages(default_study_yaml(study_dir), df_all, stage)
    manifests = load_manifests(study_dir) if stages else []
    for other in stages:
        md = stage_out_dir(study_dir, other) / "REPORT.md"
        report = f" ([REPORT]({md}))" if md.exists() else ""
        df = select_stage(df_all, other)
        lines += [f"#### Stage `{other}` — descriptive: no pre-registered test or claim reads it{report}", "",
                  *subset_sentences_lines(df, manifests), results_block(df, f", stage `{other}`"), ""]
    return lines


def subset_sentences_lines(df: pd.DataFrame, manifests: Sequence[dict]) -> list[str]:
    """How many training sentences the subsets of `df`'s cells hold per sampler and size (manifest
    `subset.n_sentences`, one subset per data seed), when a sampler other than `sentences` sizes them otherwise
    (`ktype`: at least K mentions of each entity type)."""
    runs = set(df["run_id"])
    found: dict[tuple[str, int], dict[Any, int]] = {}
    for m in manifests:
        data, n = (m.get("config") or {}).get("data") or {}, (m.get("subset") or {}).get("n_sentences")
        if m.get("run_id") in runs and n is not None and data.get("sampler") not in (None, "sentences"):
            found.setdefault((str(data["sampler"]), int(data["size"])), {})[data.get("data_seed")] = int(n)
    if not found:
        return []
    return ["Training sentences per subset (the cells' manifests, `subset.n_sentences`): "
            + "; ".join(f"`{sampler}` {size}: {_spread(list(by_seed.values()))}"
                        for (sampler, size), by_seed in sorted(found.items())) + ".", ""]


def _spread(counts: list[int]) -> str:
    """'9–15 (8 subsets)', or '16 (1 subset)'."""
    spread = f"{min(counts)}–{max(counts)}" if max(counts) > min(counts) else str(min(counts))
    return f"{spread} ({len(counts)} subset{'s' * (len(counts) > 1)})"


def full_data_lines(df_all: pd.DataFrame, stage: str = HEADLINE_STAGE) -> list[str]:
    """Each full-training-set stage other than `stage` (the frozen study's `eval_full`), rendered by the function
    REPORT.md uses (`report.full_data_section`)."""
    from paper_repro.analysis.load import full_data_stages, select_stage
    from paper_repro.analysis.report import full_data_section

    lines: list[str] = []
    for full_stage in full_data_stages(df_all, exclude=stage):
        lines += [f"#### Full training set (stage `{full_stage}`, descriptive)", "",
                  full_data_section(select_stage(df_all, full_stage), full_stage), ""]
    return lines


def study_claims(study_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The study's claims table and the components behind it (`verdicts.evaluate_study_claims`), or None when
    its YAML has no `claims:` block (read first, so that such a study is not evaluated)."""
    from paper_repro.analysis import hypotheses, verdicts
    from paper_repro.analysis.load import load_results
    from paper_repro.analysis.report import default_study_yaml

    yaml_path = default_study_yaml(study_dir)
    if yaml_path is None or verdicts.read_claims(yaml_path) is None:
        return None
    df_all = load_results(study_dir)
    block, hyp = hypotheses.evaluate_study_hypotheses(df_all, yaml_path)
    return verdicts.evaluate_study_claims(df_all, hyp, block, yaml_path)[1:]


def verdict_lines(found: Sequence[tuple[str, tuple[pd.DataFrame, pd.DataFrame]]]) -> list[str]:
    """The verdicts per claim side by side (`verdicts.tracks_section`), then how large each tested contrast is
    (`verdicts.effects_section`), for [(study name, `study_claims`)]."""
    from paper_repro.analysis import verdicts

    return ["Each study's pre-registered verdicts (its own section under Results gives the numbers and the rules)"
            + ("; `agree` compares the columns that have a verdict." if len(found) > 1 else "."), "",
            verdicts.tracks_section([(name, claims) for name, (claims, _) in found]), "",
            "How large each tested contrast is (pooled estimate, 95% CI and Holm p, as in each study's \"numbers behind "
            "the verdicts\"; the claims read them under their rules, with the smallest effect of interest and the "
            "paper's band; numbers marked *interim* decide nothing):", "",
            verdicts.effects_section([(name, parts) for name, (_, parts) in found]), ""]


def tracks_lines(studies: Sequence[Path]) -> list[str]:
    """With two or more studies that pre-registered verdicts (e.g. `cpu_study` and the frozen-encoder
    `frozen_study`): `verdict_lines` under a heading, to open the results block (README without answer markers)."""
    found = [(Path(s).name, claims) for s in studies if (claims := study_claims(Path(s))) is not None]
    if len(found) < 2:
        return []
    return ["### The paper's claims across tracks", "", *verdict_lines(found)]


def claims_lines(study_dir: Path, df_all: pd.DataFrame) -> list[str]:
    """The verdicts on the paper's claims when the study YAML (`experiments/<study>.yaml`) has a `claims:` block,
    rendered by the function REPORT.md uses (`verdicts.claims_section`); "not run yet" before the eval stage."""
    from paper_repro.analysis import hypotheses, verdicts
    from paper_repro.analysis.report import _shown_path, default_study_yaml

    yaml_path = default_study_yaml(study_dir)
    claim_block = verdicts.read_claims(yaml_path) if yaml_path is not None else None
    if claim_block is None:
        return []
    block, hyp = hypotheses.evaluate_study_hypotheses(df_all, yaml_path)
    _, claims, parts = verdicts.evaluate_study_claims(df_all, hyp, block, yaml_path)
    return ["#### Verdicts on the paper's claims (pre-registered)", "",
            verdicts.claims_section(claims, parts, claim_block, block, _shown_path(yaml_path)), ""]


def lr_lines(study_dir: Path, df_all: pd.DataFrame, stage: str = HEADLINE_STAGE) -> list[str]:
    """The post-hoc lr sensitivity when `stage` selects its lr from a tuning stage (study YAML), rendered by the
    function REPORT.md uses (`lr_sensitivity.lr_section`); the figure is linked when `paper-repro report` has
    written it under `<study>/figures/`."""
    from paper_repro.analysis import lr_sensitivity
    from paper_repro.analysis.report import SELECTION_FILE, default_study_yaml

    yaml_path = default_study_yaml(study_dir)
    lr = lr_sensitivity.study_lr_tables(df_all, study_dir, yaml_path, stage, SELECTION_FILE) if yaml_path else None
    lines: list[str] = []
    if lr is not None:
        pngs = sorted((study_dir / "figures").glob("lr_sensitivity__*.png"))
        figure = ("Figure: " + ", ".join(f"[{p.stem.split('__', 1)[-1].replace('__', ' · ')}]({study_dir}/figures/{p.name})"
                                         for p in pngs) + ".\n" if pngs else
                  f"_Figure: written by `paper-repro report {study_dir}` (not generated yet)._\n")
        lines += ["#### Learning-rate sensitivity (post hoc)", "",
                  lr_sensitivity.lr_section(lr, figure), ""]
    return lines


def _repeated_cells(df: pd.DataFrame) -> bool:
    """Whether some (method, cell keys) was run more than once (at other learning rates): then the tables are
    split by rate. A protocol-v2 eval stage with one selected lr per method and bracket is not split."""
    from paper_repro.analysis.load import CELL_KEYS, with_finetune

    runs = with_finetune(df.drop_duplicates("run_id"))
    return bool(runs.duplicated(["method", *CELL_KEYS]).any())


def results_block(df: pd.DataFrame, label: str) -> str:
    from paper_repro.analysis import stats
    from paper_repro.analysis.load import V1_LABEL, fold_tracks, has_v1, method_order

    lines = [f"_{V1_LABEL}_", ""] if has_v1(df) else []
    table = fold_tracks(stats.f1_vs_size(df))   # a frozen-encoder track reads "minilm-l6 (frozen)": its own table
    for (backbone, sampler), group in table.groupby(["backbone", "sampler"], sort=True):
        methods = method_order(group["method"].unique())
        body = []
        for size, at_size in group.groupby("size", sort=True):
            cells = {r.method: f"{100 * r.mean:.1f} ± {100 * r.ci_half:.1f} ({r.n})" if r.n > 1 else
                     f"{100 * r.mean:.1f} (1)" for r in at_size.itertuples()}
            body.append([str(size), *[cells.get(m, "–") for m in methods]])
        lines += [f"Test F1 (seqeval default mode, points), mean ± 95% CI half-width (cells) — {backbone}, "
                  f"`{sampler}` sampler{label}:", "", markdown_table(["size", *[f"`{m}`" for m in methods]], body), ""]
    paired = fold_tracks(stats.all_paired(df))
    if len(paired):
        body = [[r.backbone, str(r.size), f"`{r.method}` − `{r.baseline}`", str(r.n_pairs), str(r.n_positive),
                 f"{100 * r.mean_diff:+.1f}", _ci_text(r.ci_lo, r.ci_hi), r.ci_method or "–",
                 "–" if _nan(r.p_wilcoxon_holm) else f"{r.p_wilcoxon_holm:.3g}"] for r in paired.itertuples()]
        lines += [f"Paired test-F1 differences{label} (points; pairs share subset and seed; 95% CI: paired t below "
                  f"{stats.MIN_BOOT_PAIRS} pairs, else paired bootstrap; Wilcoxon p, Holm-adjusted across sizes):", "",
                  markdown_table(["backbone", "size", "contrast", "pairs", "pairs > 0", "mean", "95% CI", "CI",
                                  "Holm p"], body), ""]
    return "\n".join(lines)


def _ci_text(lo: float, hi: float) -> str:
    return "–" if _nan(lo) or _nan(hi) else f"[{100 * lo:+.1f}, {100 * hi:+.1f}]"


def build_results_section(studies: Sequence[Path], with_tracks: bool = True) -> str:
    """Each study's tables; headed by the verdicts across tracks unless those go to the answer markers."""
    lines = ["_Generated by `python -m paper_repro.analysis.readme_tables README.md --results-study results/<study>` "
             "from the studies' parquet; do not edit by hand._", ""]
    if with_tracks:
        lines += tracks_lines(studies)
    return "\n".join(lines + [results_section(Path(study)) for study in studies]).rstrip() + "\n"


ANSWER_CONTRASTS = (("dwatt", "deeper"), ("concat", "deeper"), ("dwatt", "deeper_copy"), ("concat", "deeper_copy"),
                    ("dwatt", "concat"), ("dwatt", "last"), ("concat", "last"), ("deeper", "last"),
                    ("deeper_copy", "last"))
LAST_CONTRASTS = tuple((a, b) for a, b in ANSWER_CONTRASTS if b == "last")


def paired_texts(df: pd.DataFrame, contrasts: Sequence[tuple[str, str]]) -> dict[tuple[str, int], dict[tuple[str, str], str]]:
    """{(condition, size): {(a, b): "mean [CI], pairs > 0/pairs"}} for the `contrasts` whose two heads have test
    cells in `df` (one stage's rows): the paired test-F1 difference in points (`stats.paired_from_cells`, as the
    study's own tables), a condition per backbone · track · sampler (`load.fold_tracks`)."""
    from paper_repro.analysis import stats
    from paper_repro.analysis.load import fold_tracks

    found: dict[tuple[str, int], dict[tuple[str, str], str]] = {}
    if df.empty:
        return found
    cells = stats.cell_values(df, "f1", "test")
    for a, b in contrasts:
        if not {a, b} <= set(cells["method"]):
            continue
        for r in fold_tracks(stats.paired_from_cells(cells, "f1", a, b)).itertuples():
            found.setdefault((f"{r.backbone} · {r.sampler}", int(r.size)), {})[(a, b)] = (
                f"{100 * r.mean_diff:+.1f} {_ci_text(r.ci_lo, r.ci_hi)}, {r.n_positive}/{r.n_pairs}")
    return found


def _contrast_table(found: dict[tuple, dict[tuple[str, str], str]], contrasts: Sequence[tuple[str, str]],
                    key_columns: Sequence[str]) -> str:
    shown = [c for c in contrasts if any(c in row for row in found.values())]
    body = [[*map(str, key), *[row.get(c, "–") for c in shown]] for key, row in found.items()]
    return markdown_table([*key_columns, *[f"{a} − {b}" for a, b in shown]], body)


def beyond_tests_lines(studies: Sequence[Path], stage: str = HEADLINE_STAGE) -> list[str]:
    """The claims' contrasts, and each head against `last` (`ANSWER_CONTRASTS`), in the studies' other evaluation
    stages (`report.descriptive_stages`, e.g. cpu_study's K-shot `eval_ktype`): a row per stage and size, paired mean
    and 95% CI (`paired_texts`), descriptive. [] when no study has such a stage with cells."""
    from paper_repro.analysis.load import load_results, select_stage
    from paper_repro.analysis.report import default_study_yaml, descriptive_stages

    found: dict[tuple[str, str, str, int], dict[tuple[str, str], str]] = {}
    for study in map(Path, studies):
        df_all = load_results(study)
        for other in descriptive_stages(default_study_yaml(study), df_all, stage) if not df_all.empty else []:
            for (condition, size), row in paired_texts(select_stage(df_all, other), ANSWER_CONTRASTS).items():
                found[(f"`{study.name}`", f"`{other}`", condition, size)] = row
    if not found:
        return []
    ktype = (" (`ktype`: at least K mentions of each entity type)" if any("· ktype" in key[2] for key in found)
             else "")
    return ["Beyond the tests: the contrasts the claims test (each fusion head against both deeper baselines, dwatt "
            "against concat), and each head against the plain last layer, in the evaluation "
            f"stages that no pre-registered test or claim reads{ktype}, per size, "
            "descriptive (paired test-F1 difference in points, 95% CI as in the study's tables, pairs > 0 / pairs; "
            "they change no verdict above; their tables and reports are under Results):", "",
            _contrast_table(found, ANSWER_CONTRASTS, ["study", "stage", "condition", "size"]), ""]


def against_last_lines(found: Sequence[tuple[Path, tuple[pd.DataFrame, pd.DataFrame]]]) -> list[str]:
    """Where the tested gains come from, for [(study dir, `study_claims`)]: in the stage the study's pre-registered
    tests read (`hypotheses.stage`) and in each condition (backbone · track · sampler) a test row of the claims
    reads, each fusion head and each deeper baseline against `last` (`LAST_CONTRASTS`), per size, descriptive. Every
    column is computed on the same seed units (those where each of these heads present has a cell), so per size a
    tested contrast's mean is the difference of two columns' means. A condition whose test rows read interim in the
    claims is marked so. [] when no such cells exist."""
    from paper_repro.analysis import hypotheses
    from paper_repro.analysis.load import CELL_KEYS, GROUP_KEYS, load_results, with_finetune
    from paper_repro.analysis.report import default_study_yaml

    heads = sorted({m for pair in LAST_CONTRASTS for m in pair})
    rows: dict[tuple[str, str, str, int], dict[tuple[str, str], str]] = {}
    for study, (_, parts) in found:
        yaml_path = default_study_yaml(study)
        block = hypotheses.read_hypotheses(yaml_path) if yaml_path is not None else None
        tests = parts[parts["role"] == "test"] if len(parts) else parts
        if block is None or tests.empty:
            continue
        df = hypotheses.hypothesis_cells(with_finetune(load_results(study)), block)
        if df.empty:
            continue
        df = df[df["method"].isin(heads)]
        present = df.groupby(list(CELL_KEYS), dropna=False)["method"].transform("nunique")
        per_condition = df.groupby(list(GROUP_KEYS[:3]), dropna=False)["method"].transform("nunique")
        df = df[present == per_condition]             # the seed units every head of the condition has
        stage = f"`{block.stage}`" if block.stage is not None else "every stage"
        for condition, tested in tests.groupby(["backbone", "finetune", "sampler"], sort=False):
            cells = df[(df["backbone"] == condition[0]) & (df["finetune"] == condition[1])
                       & (df["sampler"] == condition[2])]
            interim = (tested["verdict"] == hypotheses.INTERIM).any()
            for (label, size), texts in paired_texts(cells, LAST_CONTRASTS).items():
                rows[(f"`{study.name}`", stage + (" (*interim*)" if interim else ""), label, size)] = texts
    if not rows:
        return []
    return ["Where the tested gains come from: in the stage the pre-registered tests read, each fusion head and each "
            "deeper baseline against the plain last layer, per size, descriptive (paired test-F1 difference in "
            "points on the seed units all these heads share, 95% CI as in the study's tables, pairs > 0 / pairs; "
            "*interim*: the tests have not all their planned pairs yet). Per size, the mean of a tested contrast in "
            "points is the difference of two columns' means (`dwatt − deeper` = `dwatt − last` − `deeper − last`; "
            "intervals do not subtract, and the relative and step readings have no such split): where the tracks' "
            "verdicts differ, it shows how each head stands against its own track's `last`, which is itself a "
            "different model in each track (a probe of the frozen last layer, or the fine-tuned encoder):", "",
            _contrast_table(rows, LAST_CONTRASTS, ["study", "stage", "condition", "size"]), ""]


def build_answer_section(studies: Sequence[Path]) -> str:
    """What lies between the answer markers: `verdict_lines` over every study with a `claims:` block, then
    `against_last_lines` and `beyond_tests_lines`."""
    with_claims = [(Path(s), claims) for s in studies if (claims := study_claims(Path(s))) is not None]
    found = [(study.name, claims) for study, claims in with_claims]
    lines = ["_Generated from the studies' parquet by `bash scripts/update_readme.sh`; do not edit by hand._", ""]
    lines += verdict_lines(found) if found else ["_No study with a `claims:` block among the results studies._", ""]
    lines += against_last_lines(with_claims)
    lines += beyond_tests_lines(studies)
    return "\n".join(lines).rstrip() + "\n"


def _signed_percent(value: float) -> str:
    return "0" if value == 0 else f"{value:+.2%}".replace("-", "−")


def _percent(fraction: float) -> str:
    return f"{100 * fraction:g}%"


def budget_deviation_text(row: pd.Series) -> str:
    """How a head stands against the budget: the solver's verdict (`matched`, `note`) in words."""
    note, deviation, tolerance = row["note"], row["deviation"], _percent(row["tolerance"])
    if note == "defines target":
        return "0 (the target)"
    if note.startswith("target architecture"):
        return f"{_signed_percent(deviation)} (the target's architecture)"
    if note.startswith("no width knob: budget control"):
        return "unmatched (budget control)"
    if note.startswith("no width knob with"):
        return f"{_signed_percent(deviation)} (no knob" + (f"; within ±{tolerance} by coincidence)"
                                                           if "coincidence" in note else ")")
    if not row["matched"]:
        return f"{_signed_percent(deviation)} **outside ±{tolerance}**"
    return _signed_percent(deviation)


def budget_knob_text(row: pd.Series) -> str:
    """The solved knob: a ratio (γ) to 3 decimals, a width as the integer it is."""
    knob, value = row["knob"], row["knob_value"]
    if not knob:
        return "–"
    shown = f"{float(value):.3f}" if knob in RATIO_KNOBS else f"{int(float(value))}"
    return f"{KNOB_SYMBOLS.get(knob, knob)} {shown}"


def read_written_csv(path: Path, name: str, columns: dict[str, type], writer: str) -> pd.DataFrame:
    """A CSV one of our commands wrote (`writer`), its `columns` converted to their types (bool from "True"/"False",
    the others as text); a ValueError naming the file when it cannot be read, lacks rows or columns, or a value does
    not convert."""
    what = f"not a `{writer}` table"
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as error:   # a folder, no permission, an empty or malformed file
        raise ValueError(f"{name}: {what} ({getattr(error, 'strerror', None) or error})") from None
    lacking = [column for column in columns if column not in frame.columns]
    if lacking or frame.empty:
        raise ValueError(f"{name}: {what} (" + (f"no column {', '.join(lacking)})" if lacking else "no rows)"))
    for column, kind in columns.items():
        try:
            if kind is bool:
                if not frame[column].isin(["True", "False"]).all():
                    raise ValueError("not True/False")
                frame[column] = frame[column] == "True"
            elif kind is not str:
                frame[column] = frame[column].astype(kind)
        except ValueError as error:
            raise ValueError(f"{name}: {what} (column {column}: {error})") from None
    return frame


def layer_cache_section(path: Path, shown: str) -> str:
    """The frozen track's layer-cache sizes per backbone and split (float16, every fused layer), from the CSV that
    `python -m paper_repro.train.layer_cache <backbones> --write results/layer_cache/sizes.csv` writes."""
    def intro(backbones: str) -> list[str]:
        writer = f"python -m paper_repro.train.layer_cache {backbones} --write {shown}"
        return [f"_Generated by `bash scripts/update_readme.sh` from `{shown}` (written by `{writer}`: sizes "
                "computed from the tokenized splits, subwords × layers × hidden × 2 bytes, without running the "
                "encoder); do not edit by hand._", ""]

    if not path.exists():
        return "\n".join([*intro("<backbones>"), f"_Missing: `{shown}` (run the command above)._"]) + "\n"
    frame = read_written_csv(path, shown, LAYER_CACHE_COLUMNS, "python -m paper_repro.train.layer_cache --write")
    lengths = sorted(set(frame["max_length"]))
    if len(lengths) != 1:
        raise ValueError(f"{shown}: sizes at more than one max_length ({', '.join(map(str, lengths))}); "
                         "write one table per max_length")
    splits = list(dict.fromkeys(frame["split"]))
    backbones = list(dict.fromkeys(frame["backbone"]))
    index = pd.MultiIndex.from_product([backbones, splits])
    keyed = frame.set_index(["backbone", "split"])
    if keyed.index.duplicated().any() or len(keyed) != len(index):
        raise ValueError(f"{shown}: not one row per backbone and split (backbones {', '.join(backbones)}; "
                         f"splits {', '.join(splits)})")
    counts = {backbone: tuple(keyed.loc[(backbone, split), "subwords"] for split in splits) for backbone in backbones}
    if len(set(counts.values())) == 1:
        subwords = " / ".join(f"{n:,}" for n in counts[backbones[0]])
        tokenized = f"{subwords} subwords" + (", every backbone's tokenizer gives the same counts" if len(counts) > 1
                                              else "")
    else:
        tokenized = "; ".join(f"`{b}` " + " / ".join(f"{n:,}" for n in c) for b, c in counts.items()) + " subwords"
    lines = intro(" ".join(backbones))
    lines += [f"The whole CoNLL-03 {' / '.join(splits)} splits at max_length {lengths[0]}: {tokenized}.", ""]
    rows = []
    for backbone in backbones:
        part = keyed.loc[backbone].loc[splits]
        first = part.iloc[0]
        rows.append([f"`{backbone}`", f"{first['layers']} × {first['hidden']}",
                     *[f"{gib:.2f} GiB" for gib in part["gib"]],
                     f"**{part['gib'].sum():.2f} GiB**", f"{part['gib_fuse_embeddings'].sum():.2f} GiB"])
    lines.append(markdown_table(["backbone", "layers × hidden", *splits, "all", "all, with `fuse_embeddings`"], rows))
    return "\n".join(lines).rstrip() + "\n"


def budget_section(paths: Sequence[Path], display: Sequence[str] | None = None) -> str:
    """The parameter-budget table of every head, side by side per backbone, from the CSVs that
    `paper-repro budget --backbone <b> --write results/budget/<b>.csv` writes (the solver's output, so that the
    README's counts are never typed by hand). The CSVs must be solved for one budget (extra layers, tolerance, fused
    embeddings), one backbone each."""
    shown = list(display) if display is not None else [str(path) for path in paths]
    lines = ["_Generated by `bash scripts/update_readme.sh` from " + ", ".join(f"`{name}`" for name in shown)
             + " (written by `paper-repro budget --backbone <backbone> --write results/budget/<backbone>.csv`); "
             "do not edit by hand._", ""]
    frames, missing = [], []
    for path, name in zip(paths, shown):
        if not path.exists():
            missing.append(name)
            continue
        frame = read_written_csv(path, name, BUDGET_COLUMNS, "paper-repro budget --write")
        if frame["backbone"].nunique() != 1 or frame["method"].duplicated().any():
            raise ValueError(f"{name}: not one backbone with one row per head")
        frames.append(frame)
    budget = ("extra_layers", "tolerance", "fuse_embeddings")
    solved_for = {tuple(frame.iloc[0][column] for column in budget) for frame in frames}
    if len(solved_for) > 1:
        raise ValueError(f"{', '.join(shown)}: solved for different budgets ({', '.join(budget)}: "
                         f"{sorted(solved_for)}); write them with the same --layers, --tolerance, --fuse-embeddings")
    backbones = [frame.iloc[0]["backbone"] for frame in frames]
    if len(set(backbones)) != len(backbones):
        raise ValueError(f"{', '.join(shown)}: a backbone twice ({', '.join(backbones)})")
    if frames:
        methods = list(dict.fromkeys(m for frame in frames for m in frame["method"]))
        header, heads = ["method"], []
        for frame in frames:
            first = frame.iloc[0]
            label = f"`{first['backbone']}` ({first['layers']} × {first['hidden']})"
            header += [f"{label} knob", "params", "deviation"]
            heads.append(frame.set_index("method"))
        rows = []
        for method in methods:
            row = [f"`{method}`"]
            for frame in heads:
                if method not in frame.index:
                    row += ["–", "–", "–"]
                    continue
                entry = frame.loc[method]
                row += [budget_knob_text(entry), f"{entry['params']:,}", budget_deviation_text(entry)]
            rows.append(row)
        extra, tolerance, fused = solved_for.pop()
        lines += [f"Target: the `deeper` head's trainable parameters, {extra} extra backbone layer"
                  f"{'s' if extra != 1 else ''}; tolerance ±{_percent(tolerance)}"
                  + ("; the embedding output fused as one more layer" if fused else "") + ".", "",
                  markdown_table(header, rows)]
    for name in missing:
        lines += ["", f"_Missing: `{name}` (run `paper-repro budget --backbone <backbone> --write {name}`)._"]
    return "\n".join(lines).rstrip() + "\n"


def build_section(bench_dir: Path, studies: Sequence[Path] = (), display_dir: str | None = None,
                  cells: Sequence[Path] = ()) -> str:
    shown = display_dir or str(bench_dir)
    flags = "".join(f" --cells {root}" for root in cells)
    lines = [f"_Generated by `python -m paper_repro.analysis.readme_tables README.md{flags}` from `{shown}/*.parquet` "
             "(written by `bench/*.py`)" + (" and the cells' parquet and manifests" if cells else "")
             + "; do not edit by hand._", ""]
    paired = {name for pair in PRECISION_PAIRS for name in pair[:2]}
    known = {spec.name for spec in BENCHES} | paired | set(COMPILE_RUNS) | set(COLD_COMPILE_RUNS)
    specs = list(BENCHES) + [generic_spec(p.stem) for p in sorted(bench_dir.glob("*.parquet")) if p.stem not in known]
    for spec in specs:
        path = bench_dir / f"{spec.name}.parquet"
        lines.append(render_bench(spec, read_bench(path), Path(shown) / path.name))
        if spec.name == PRECISION_AFTER:
            lines += [precision_section(bench_dir, *pair) for pair in PRECISION_PAIRS]
        if spec.name == COMPILE_AFTER:
            lines.append(compile_section(bench_dir, COMPILE_RUNS, COMPILE_TITLE, COMPILE_DESCRIBE))
            lines.append(compile_section(bench_dir, COLD_COMPILE_RUNS, COLD_COMPILE_TITLE, COLD_COMPILE_DESCRIBE))
    for study in studies:
        lines.append(study_section(Path(study)))
    for root in cells:
        lines.append(cells_section(Path(root)))
    return "\n".join(lines).rstrip() + "\n"


def replace_section(text: str, section: str, append: bool = False, markers: tuple[str, str] = (BEGIN, END)) -> str:
    """Replace what lies between the two markers with `section` (or append both when `append`)."""
    opening, closing = markers
    begin, end = text.find(opening), text.find(closing)
    if (begin < 0) != (end < 0) or (begin >= 0 and end < begin):
        raise ValueError(f"the README's `{opening}` ... `{closing}` markers are not a pair in that order")
    if begin < 0:
        if not append:
            raise ValueError(f"the README has no `{opening}` ... `{closing}` markers (add them, or pass --append)")
        return text.rstrip("\n") + f"\n\n{opening}\n{section}{closing}\n"
    return text[: begin + len(opening)] + "\n" + section + text[end:]


def write_keeping_mode(path: Path, text: str) -> None:
    """Atomic rewrite (temp file in the same folder, then rename) that keeps the file's permissions."""
    mode = path.stat().st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _display(path: Path, readme: Path) -> str:
    """`path` as the README names it: relative to the README's folder where it lies below it."""
    try:
        return str(path.resolve().relative_to(readme.resolve().parent))
    except ValueError:
        return str(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m paper_repro.analysis.readme_tables", description=__doc__.splitlines()[0])
    parser.add_argument("readme", type=Path, help="README.md to update in place")
    parser.add_argument("--bench-dir", type=Path, default=None, help="default: results/bench beside the README")
    parser.add_argument("--study", type=Path, action="append", default=[], help="a study folder (repeatable)")
    parser.add_argument("--cells", type=Path, action="append", default=[],
                        help="a folder of study folders whose cells are listed one per row (repeatable)")
    parser.add_argument("--results-study", type=Path, action="append", default=[],
                        help="a study folder whose F1 tables fill the results markers (repeatable)")
    parser.add_argument("--budget", type=Path, action="append", default=[],
                        help="a `paper-repro budget --write` CSV whose table fills the budget markers (repeatable)")
    parser.add_argument("--layer-cache", type=Path, default=None,
                        help="the `python -m paper_repro.train.layer_cache --write` CSV that fills the layer_cache markers")
    parser.add_argument("--append", action="store_true", help="append the section when the markers are missing")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if the section is out of date")
    args = parser.parse_args(argv)
    bench_dir = args.bench_dir or args.readme.resolve().parent / "results" / "bench"
    display = _display(bench_dir, args.readme)
    try:
        text = args.readme.read_text(encoding="utf-8")
    except OSError as error:
        print(f"error: {args.readme}: {error.strerror}", file=sys.stderr)
        return 2
    section = build_section(bench_dir, args.study, display, args.cells)
    try:
        updated = replace_section(text, section, append=args.append)
        if args.results_study:
            answer = ANSWER_BEGIN in updated or ANSWER_END in updated   # one of the two: replace_section says so
            if answer:
                updated = replace_section(updated, build_answer_section(args.results_study),
                                          markers=(ANSWER_BEGIN, ANSWER_END))
            updated = replace_section(updated, build_results_section(args.results_study, with_tracks=not answer),
                                      markers=(RESULTS_BEGIN, RESULTS_END))
        if args.budget:
            shown = [_display(path, args.readme) for path in args.budget]
            updated = replace_section(updated, budget_section(args.budget, shown), markers=(BUDGET_BEGIN, BUDGET_END))
        if args.layer_cache is not None:
            sizes = layer_cache_section(args.layer_cache, _display(args.layer_cache, args.readme))
            updated = replace_section(updated, sizes, markers=(LAYER_CACHE_BEGIN, LAYER_CACHE_END))
    except ValueError as error:
        print(f"error: {args.readme}: {error}", file=sys.stderr)
        return 2
    if args.check:
        if updated != text:
            print(f"{args.readme}: generated sections are out of date (run bash scripts/update_readme.sh)",
                  file=sys.stderr)
            return 1
        return 0
    if updated != text:
        write_keeping_mode(args.readme, updated)
    missing = [spec.name for spec in BENCHES if not (bench_dir / f"{spec.name}.parquet").exists()]
    print(f"{args.readme}: performance section {'updated' if updated != text else 'unchanged'}"
          + (f" (missing: {', '.join(missing)})" if missing else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
