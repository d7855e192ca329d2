"""Shared pieces of the benchmark scripts: arguments, cell configs, caches, timing, tables and parquet output.

Every script writes one long-format parquet `results/bench/<bench>.parquet` (atomically), one row per
measurement: `kind` ("sample": one raw measurement; "summary": a statistic the script derived from the
samples, what the README tables show), `backbone`, `variant` (ours / peer / a head / a configuration),
`repeat`, `metric`, `value`, `unit`, the run's parameters (size, steps, ...), and the machine description
(CPU model, cores, torch threads and version, date, git sha, 1-minute load average at the start).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import datetime
import functools
import gc
import json
import os
import platform
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")           # the packaged encoders load offline; never wait on the hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

from paper_repro.config import CellConfig, apply_overrides  # noqa: E402
from paper_repro.data.conll import Split, load_conll03  # noqa: E402
from paper_repro.results import manifest as provenance  # noqa: E402
from paper_repro.results import store  # noqa: E402
from paper_repro.train import cell, features  # noqa: E402
from paper_repro.train.timing import now, sync_for, synchronize  # noqa: E402,F401  (re-exported: the benches' clock)

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()        # "Loading weights" bars: noise in the tables' output
try:
    import datasets

    datasets.disable_progress_bars()
except ImportError:  # only the peer loop needs datasets
    pass

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT_DIR = REPO_ROOT / "results" / "bench"
TEST_LIMIT_ENV = "PAPER_REPRO_BENCH_TEST_LIMIT"   # read by `run_cell_from_env` (Slurm array tasks)
SLURM_RUNNER = "bench.common:run_cell_from_env"


# ----------------------------------------------------------------------------------------------------------
# machine description
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def physical_cores() -> int | None:
    """Distinct (physical id, core id) pairs in /proc/cpuinfo; None when it does not say."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    cores, physical = set(), "0"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            physical = value.strip()
        elif key == "core id":
            cores.add((physical, value.strip()))
    return len(cores) or None


@functools.lru_cache(maxsize=1)
def machine_description() -> dict[str, Any]:
    sha, dirty = provenance.git_state()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {
        "cpu_model": cpu_model(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else "",   # where the cells run, if a GPU
        "logical_cpus": os.cpu_count(),
        "physical_cores": physical_cores(),
        "usable_cpus": usable,
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "python_version": platform.python_version(),
        "host": socket.gethostname(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_sha": sha,
        "git_dirty": dirty,
        "loadavg_1m": load,
    }


def describe_machine(machine: dict[str, Any] | None = None) -> str:
    m = machine or machine_description()
    text = ((f"GPU {m['gpu']}, host " if m.get("gpu") else "") + f"{m['cpu_model']}, {m['usable_cpus']} usable CPUs ({m['physical_cores']} physical cores), "
            f"torch {m['torch_version']} with {m['torch_threads']} threads, load {m['loadavg_1m']:.2f} at start, "
            f"{m['date']}, git {str(m['git_sha'])[:10]}{' (dirty)' if m['git_dirty'] else ''}")
    if m["loadavg_1m"] is not None and m["usable_cpus"] and m["loadavg_1m"] > 0.5 * m["usable_cpus"]:
        text += ("\nWARNING: the machine is busy (load average above half the CPUs): timings will be noisy, and "
                 "torch threads competing for cores can slow steps several-fold")
    return text


# ----------------------------------------------------------------------------------------------------------
# arguments and cell configs
def default_data_dir() -> str:
    return os.environ.get("PAPER_REPRO_CONLL03") or str(REPO_ROOT.parent / "shared" / "data" / "conll2003")


def int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def str_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def make_parser(description: str, **defaults: Any) -> argparse.ArgumentParser:
    """The arguments every benchmark shares; `defaults` overrides their default values."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--backbone", default="minilm-l6", help="alias (minilm-l6, mpnet-base), hub id or local path")
    parser.add_argument("--data-dir", default=default_data_dir(), help="CoNLL-03 folder (train/valid/test files)")
    parser.add_argument("--size", type=int, default=100, help="few-shot training sentences (sampler `sentences`)")
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps per cell")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--eval-batch-size", type=int, default=64)
    parser.add_argument("--eval-points", type=int, default=5, help="dev evaluations per cell (log-spaced)")
    parser.add_argument("--dev", type=int, default=1000, help="dev subsample scored at each eval point (0 = all)")
    parser.add_argument("--test-limit", type=int, default=0,
                        help="score only the first N test sentences (validation runs only; 0 = the full test split)")
    parser.add_argument("--max-length", type=int, default=128, help="subword window / truncation length")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="train seed of repeat 0 (repeat r uses seed + r)")
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0 = torch's default)")
    parser.add_argument("--out", type=Path, default=None, help="parquet to write (default results/bench/<bench>.parquet)")
    parser.add_argument("--keep-cells", action="store_true", help="keep the cells' parquet/manifests (temp folder)")
    parser.add_argument("--fresh", action="store_true",
                        help="discard the existing parquet (default: keep its rows of other backbones/variants)")
    parser.set_defaults(**defaults)
    return parser


def setup(args: argparse.Namespace) -> None:
    """Apply --threads and install --test-limit; tune the allocator as run_cell does (train/allocator.py, so steps
    timed outside a cell run as they do inside one); call once after parsing."""
    from paper_repro.train.allocator import keep_large_buffers

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    install_test_limit(args.test_limit)
    keep_large_buffers()


def bench_cache_dir() -> Path:
    """Where benchmark subsets are written (index files; never under the checkout)."""
    root = Path(os.environ.get("PAPER_REPRO_CACHE", Path.home() / ".cache" / "paper_repro"))
    return root / "bench"


def cell_config(args: argparse.Namespace, results_dir: str | Path, study: str, **overrides: Any) -> CellConfig:
    """The benchmark's CellConfig from the shared arguments; `overrides` are dotted keys with `__` for dots."""
    base = {
        "study": study,
        "results_dir": str(results_dir),
        "data.data_dir": str(args.data_dir),
        "data.subset_dir": str(bench_cache_dir() / "subsets"),
        "data.size": args.size,
        "data.dev_subsample": args.dev,
        "model.backbone": args.backbone,
        "model.max_length": args.max_length,
        "train.step_rule": "fixed",              # benchmarks time a given number of steps
        "train.steps": args.steps,
        "train.warmup_steps": min(20, args.steps // 10),
        "train.batch_size": args.batch_size,
        "train.eval_batch_size": args.eval_batch_size,
        "train.eval_points": args.eval_points,
        "train.seed": args.seed,
    }
    base.update({key.replace("__", "."): value for key, value in overrides.items()})
    return apply_overrides(CellConfig(), base)


# ----------------------------------------------------------------------------------------------------------
# data, test-split limit and process caches
def limit_split(split: Split, limit: int) -> Split:
    if limit <= 0 or limit >= len(split.sentences):
        return split
    return dataclasses.replace(split, sentences=split.sentences[:limit], source=f"{split.source}[:{limit}]", sha256=None)


def read_splits(config: CellConfig, test_limit: int = 0) -> dict[str, Split]:
    """The CoNLL-03 splits read from disk now (no process cache), test split limited to `test_limit`."""
    data = config.data
    splits = dict(load_conll03(data.data_dir, hub_id=data.hub_id, convert_iob1=data.convert_iob1, strict_iob2=data.strict_iob2))
    splits["test"] = limit_split(splits["test"], test_limit)
    return splits


_ORIGINAL_LOAD_SPLITS = cell.load_splits


def install_test_limit(limit: int) -> None:
    """Make run_cell (this process) see only the first `limit` test sentences; 0 restores the product's loader."""
    if limit <= 0:
        cell.load_splits = _ORIGINAL_LOAD_SPLITS
        return

    @functools.lru_cache(maxsize=4)
    def limited(data_dir, hub_id, convert_iob1, strict_iob2, hub_revision=None):
        splits = dict(_ORIGINAL_LOAD_SPLITS(data_dir, hub_id, convert_iob1, strict_iob2, hub_revision))
        splits["test"] = limit_split(splits["test"], limit)
        return splits

    cell.load_splits = limited


def clear_process_caches() -> None:
    """Forget what run_cell keeps between cells of one process (splits, pristine backbone, features)."""
    for function in {cell.load_splits, _ORIGINAL_LOAD_SPLITS, cell.pristine_backbone}:
        if hasattr(function, "cache_clear"):
            function.cache_clear()
    features._MEMORY_CACHE.clear()
    gc.collect()


@contextlib.contextmanager
def cold_caches():
    """A cell as the first one of a fresh sweep process: empty process caches, empty on-disk feature cache.
    (Imports and OS file caches stay warm; the packaged MPNet stays assembled.)"""
    clear_process_caches()
    saved = os.environ.get("PAPER_REPRO_CACHE")
    folder = tempfile.mkdtemp(prefix="paper_repro_cold_cache_")
    os.environ["PAPER_REPRO_CACHE"] = folder
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("PAPER_REPRO_CACHE", None)
        else:
            os.environ["PAPER_REPRO_CACHE"] = saved
        shutil.rmtree(folder, ignore_errors=True)


def prime_caches(config: CellConfig, load_model: bool = True):
    """Fill run_cell's caches as a sweep's earlier cells would: splits, subset file, features (memory and
    disk) and, with `load_model`, the pristine backbone. Returns the tokenizer."""
    from paper_repro.models.backbone import hub_kwargs, load_tokenizer, resolve_backbone

    splits = cell.load_splits(config.data.data_dir, config.data.hub_id, config.data.convert_iob1, config.data.strict_iob2)
    cell.training_indices(config, splits["train"])
    if load_model:
        tokenizer = cell.pristine_backbone(config.model.backbone, config.model.revision).tokenizer
    else:
        source = resolve_backbone(config.model.backbone)
        tokenizer = load_tokenizer(source, **hub_kwargs(config.model.backbone, source, config.model.revision))
    for split in splits.values():
        features.cached_features(split, tokenizer, config.model.max_length)
    return tokenizer


# ----------------------------------------------------------------------------------------------------------
# whole cells
def cell_outcome(parquet: Path, wall_s: float | None = None) -> dict[str, float]:
    """Timings (manifest) and F1s (parquet) of a finished cell, flattened to numbers."""
    manifest = json.loads(parquet.with_name(parquet.name.replace(".parquet", ".manifest.json")).read_text())
    timings = manifest["timings"]
    steps = manifest["config"]["train"]["steps"]
    rows = pq.read_table(parquet).to_pandas()
    test = rows[rows["split"] == "test"]
    dev = rows[(rows["split"] == "dev") & (rows["step"] == steps)]
    eval_s = float(sum(timings["eval_s"]))
    outcome = {
        "load_s": float(timings["load_s"]),
        "tokenize_s": float(timings["tokenize_s"]),
        "train_s": float(timings["train_s"]),
        "eval_s": eval_s,
        "evals": float(len(timings["eval_s"])),
        "step_time_s": float(timings["step_time_s"]),
        "cell_total_s": float(timings["total_s"]),
        "peak_rss_mb": float(manifest["peak_rss_mb"]),
        "f1_test": float(test["f1"].iloc[0]) if len(test) else float("nan"),
        "f1_strict_test": float(test["f1_strict"].iloc[0]) if len(test) else float("nan"),
        "f1_dev": float(dev["f1"].iloc[0]) if len(dev) else float("nan"),
    }
    if wall_s is not None:
        outcome["total_s"] = wall_s
        outcome["other_s"] = wall_s - sum(outcome[k] for k in ("load_s", "tokenize_s", "train_s", "eval_s"))
    return outcome


def run_ours(config: CellConfig) -> dict[str, float]:
    """run_cell, timed from the outside (the wall clock includes writing parquet + manifest)."""
    gc.collect()
    device = default_device()
    started = now(device)
    path = cell.run_cell(config)
    wall = now(device) - started
    return cell_outcome(Path(path), wall)


def run_cell_from_env(config: CellConfig):
    """Slurm array-task runner (`bench.common:run_cell_from_env`): run_cell with $PAPER_REPRO_BENCH_TEST_LIMIT."""
    install_test_limit(int(os.environ.get(TEST_LIMIT_ENV, "0") or 0))
    return cell.run_cell(config)


@contextlib.contextmanager
def cells_dir(keep: bool):
    """A temporary results folder for the cells a benchmark runs (removed unless `keep`)."""
    folder = Path(tempfile.mkdtemp(prefix="paper_repro_bench_cells_"))
    try:
        yield folder
    finally:
        if keep:
            print(f"[bench] cells kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------------
# training steps outside a cell (head overhead, floor)
def train_batches(config: CellConfig, train_features: features.Features, count: int, pad_token_id: int) -> list[dict]:
    """`count` collated training batches, drawn as run_cell's train loader draws them (shuffled, cycled; length
    buckets with `train.length_bucket_tokens` > 0)."""
    order = torch.Generator().manual_seed(config.train.seed)
    loader = torch.utils.data.DataLoader(
        features.WindowDataset(train_features), batch_size=config.train.batch_size, shuffle=True, generator=order,
        collate_fn=features.Collator(pad_token_id),
    )
    if config.train.length_bucket_tokens > 0:
        loader = torch.utils.data.DataLoader(
            features.WindowDataset(train_features), collate_fn=features.Collator(pad_token_id),
            batch_sampler=features.LengthBucketBatchSampler(train_features, config.train.batch_size,
                                                            config.train.length_bucket_tokens, generator=order))
    batches: list[dict] = []
    while len(batches) < count:
        for batch in loader:
            batches.append(batch)
            if len(batches) == count:
                break
    return batches


def build_trainable(pristine_model, config: CellConfig, steps: int):
    """A fresh tagger (deep copy of the pristine backbone + the configured head at its budget), its optimizer and
    scheduler for `steps` steps, prepared by Accelerate as in run_cell. Returns (model, optimizer, scheduler,
    accelerator, budget record)."""
    from paper_repro.data.conll import LABELS
    from paper_repro.models.tagger import build_tagger
    from paper_repro.train import device as device_setup
    from paper_repro.train.loop import make_optimizer

    accelerator = device_setup.make_accelerator(config.train)          # as run_cell (a fresh Accelerate state)
    device_setup.configure(accelerator.device, config.train)          # as run_cell
    model, record = build_tagger(copy.deepcopy(pristine_model), config.model, num_labels=len(LABELS),
                                 seed=config.train.seed)
    if getattr(config.train, "freeze_word_embeddings", False):       # as run_cell
        model.backbone.get_input_embeddings().weight.requires_grad_(False)
    optimizer, scheduler = make_optimizer(model, config.train, steps, min(config.train.warmup_steps, steps - 1))
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    return model, optimizer, scheduler, accelerator, record


def on_device(batch: dict, device: Any) -> dict:
    """The batch's tensors on `device` (what run_cell's Accelerate-prepared loader does to each batch)."""
    return {key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in batch.items()}


def timed_train_steps(model, optimizer, scheduler, accelerator, config: CellConfig, batches: list[dict]) -> list[float]:
    """Run the product's training loop (`paper_repro.train.loop.train`) over `batches`, one optimizer step per
    batch; returns each step's seconds as the loop itself times them (forward + backward + clip + optimizer).
    The batches are put on the accelerator's device first, outside the timed steps (a cell's prepared loader
    copies each batch inside its step: a few small host-to-device copies on a GPU, nothing on the CPU)."""
    from paper_repro.train.loop import train

    batches = [on_device(batch, accelerator.device) for batch in batches]
    marks: list[float] = []
    train(model, optimizer, scheduler, batches, accelerator, config.train, len(batches), list(range(1, len(batches) + 1)),
          lambda state, loss: marks.append(state.train_seconds))
    return [b - a for a, b in zip([0.0] + marks[:-1], marks)]


# ----------------------------------------------------------------------------------------------------------
# timing and statistics helpers
# Every timed region reads the clock through `now(device)` (paper_repro/train/timing.py): on CUDA/MPS it first
# waits for the device's queued kernels (torch.cuda.synchronize / torch.mps.synchronize), on the CPU it is
# time.perf_counter(). `device`: where the timed work runs (accelerator.device, a model's parameters' device).
@contextlib.contextmanager
def stopwatch(into: dict, key: str, device: Any = None):
    """`with stopwatch(times, "load_s", device): ...` adds the block's wall-clock seconds to times[key],
    the device synchronised at both ends."""
    started = now(device)
    try:
        yield
    finally:
        into[key] = into.get(key, 0.0) + now(device) - started


def default_device() -> torch.device:
    """The device a cell's Accelerator picks on this machine (CUDA, else MPS, else the CPU)."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def device_of(model: Any) -> Any:
    """The device a model's parameters live on (None for a model without parameters)."""
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return None


def median(values: Iterable[float]) -> float:
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def alternating(variants: Sequence[str], repeat: int) -> list[str]:
    """The run order of repeat `repeat`: as given on even repeats, reversed on odd ones (A B, B A, A B ...)."""
    return list(variants) if repeat % 2 == 0 else list(reversed(variants))


def rotated(items: Sequence[str], repeat: int) -> list[str]:
    """Round-robin order of repeat `repeat`: the list rotated left by `repeat`."""
    if not items:
        return []
    k = repeat % len(items)
    return list(items[k:]) + list(items[:k])


def format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value == 0:
            return "0"
        magnitude = abs(value)
        if magnitude >= 1000:
            return f"{value:,.0f}"
        if magnitude >= 10:
            return f"{value:.1f}"
        if magnitude >= 0.01:
            return f"{value:.3f}"
        return f"{value:.2e}"
    return str(value)


def format_table(rows: list[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A plain-text table of `rows` (dicts), columns in the given order (default: keys of the first row)."""
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0].keys())
    cells = [[format_value(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(columns, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for r in cells:
        lines.append("  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# parquet output
class Results:
    """Long-format rows of one benchmark run, written atomically with the machine description."""

    def __init__(self, bench: str, args: argparse.Namespace, **params: Any):
        self.bench = bench
        self.args = args
        self.params = params               # run-wide parameters (columns on every row)
        self.rows: list[dict[str, Any]] = []
        machine_description()              # record date and load average at the start

    def add(self, variant: str, metric: str, value: float, unit: str, *, kind: str = "sample",
            repeat: int | None = None, backbone: str | None = None, **params: Any) -> None:
        self.rows.append({
            "bench": self.bench, "kind": kind, "backbone": backbone or getattr(self.args, "backbone", None),
            "variant": variant, "repeat": repeat, "metric": metric,
            "value": float(value) if value is not None else float("nan"), "unit": unit, **self.params, **params,
        })

    def add_many(self, variant: str, values: dict[str, float], units: dict[str, str] | Callable[[str], str],
                 **kwargs: Any) -> None:
        for metric, value in values.items():
            unit = units(metric) if callable(units) else units.get(metric, "")
            self.add(variant, metric, value, unit, **kwargs)

    def summary(self, variant: str, metric: str, value: float, unit: str, **kwargs: Any) -> None:
        self.add(variant, metric, value, unit, kind="summary", **kwargs)

    def table(self) -> pa.Table:
        if not self.rows:
            raise ValueError(f"{self.bench}: no rows to write")
        machine = machine_description()
        args = json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in vars(self.args).items()},
                          sort_keys=True, default=str)
        keys: list[str] = []
        for row in self.rows:
            keys += [k for k in row if k not in keys]
        rows = [{**{k: row.get(k) for k in keys}, **machine, "args": args, "argv": " ".join(sys.argv)}
                for row in self.rows]
        return pa.Table.from_pylist(rows)

    def write(self, out: Path | None = None) -> Path:
        """Write the rows. Rows already in the file for another (backbone, variant) are kept, so one file holds
        e.g. the minilm-l6 and the mpnet-base runs, or scaling's local and Slurm parts; rows of the same
        (backbone, variant) are replaced. `--fresh` discards the old file."""
        path = Path(out) if out else DEFAULT_OUT_DIR / f"{self.bench}.parquet"
        table = self.table()
        kept = 0
        if path.exists() and not getattr(self.args, "fresh", False):
            try:
                old = pq.read_table(path)
                ours = {(r["backbone"], r["variant"]) for r in self.rows}
                keep = [(b, v) not in ours for b, v in zip(old.column("backbone").to_pylist(), old.column("variant").to_pylist())]
                others = old.filter(pa.array(keep, type=pa.bool_()))
                if others.num_rows:
                    table = pa.concat_tables([others, table], promote_options="permissive")
                    kept = others.num_rows
            except Exception as error:  # noqa: BLE001 - an unreadable/incompatible old file is replaced
                print(f"[bench] replacing {path} ({type(error).__name__}: {error})")
        store.atomic_write_parquet(table, path)
        print(f"[bench] wrote {len(self.rows)} rows to {path}"
              + (f" (kept {kept} rows of other backbones/variants from an earlier run)" if kept else ""))
        return path


def unit_of(metric: str) -> str:
    if metric.endswith("_s"):
        return "s"
    if metric.endswith("_mb"):
        return "MB"
    if metric.startswith("f1"):
        return "F1"
    return ""
