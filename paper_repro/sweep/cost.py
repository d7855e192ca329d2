"""What cells still to run will cost, from the timings recorded in the manifests of done cells.

A cell's time is mostly its training steps, and its step budget grows with the training set (`train.step_rule:
epochs`), so a mean per method would price a 1000-sentence cell like a 100-sentence one. Every done cell of the
study directory counts (any stage: tuning cells price evaluation cells). The model, per method
(backbone, head, finetune, mixed precision): `total_s = fixed_s + step_s x steps`, fitted by least squares on its
done cells (`timings.total_s`, `steps.total`); with a single step count among them, `step_s` = their mean time per
step and `fixed_s` = 0. A pending cell's step budget comes from the step rule (`resolve_steps`) over the training
windows its (backbone, sampler, size) had in done cells (median), else from its sentences (the `sentences`
sampler's size; for `full`, the training split's size recorded in done cells' manifests) times the done cells'
windows per sentence. A method with no done cell is priced by the same model fitted on every done cell of its
backbone (and finetune, mixed precision): in fine-tuning fusion heads cost about one more layer, so this is the
right order of size (a frozen head first looks for its own cells on another backbone, below). A backbone with no
done cell at all (a study's second encoder, before its first cell) is priced from another
backbone's cells of the same method (else of any method), same finetune and precision, scaled by the ratio of the
two encoders' per-token FLOPs from their configs (no weights loaded): for full fine-tuning, where the encoder's
forward and backward dominate, the whole encoder's, layers x (4 H^2 + 2 H I) (`encoder_flops`); for a frozen
encoder, which never runs inside a cell, one layer's, 4 H^2 + 2 H I (`layer_flops`), since a budget-matched head
is solved to one layer's parameters. An encoder's shape comes from its config on disk, else from the `backbone.shape`
that its done cells recorded in their manifests (any study directory's cells that price this one). A cell that
would need a shape nobody has, or a backbone with no done cell and no other backbone to scale from, is **unpriced**:
left out of the sum and counted, with its backbones named, in the text. It is never priced at another backbone's
cost unscaled: on a machine without the MPNet parts, MPNet's frozen cells once fell back to its cheap `last` cells
and its fine-tuning cells to MiniLM's mean, and the study's total read 103 h instead of 227 h. A frozen cell's time is its head's, and on a frozen encoder the heads differ
far more than in fine-tuning (`last` trains a classifier, the others a layer's worth), so a frozen method without
done cells on its backbone is priced from its own cells on another backbone, scaled, before its backbone's other
methods are used. The time scales less than the work when the reference encoder is the smaller one (its small
matrices run further from the machine's peak: on the 2-core CPU MPNet-base's full training step measured about 5x
MiniLM-L6's, against 8x the FLOPs), so this price leans high: a planning bound, replaced by the backbone's own
cells as soon as it has some (in fine-tuning any method's; on a frozen encoder the method's own, once its first cell
on the backbone is done). A frozen cell's recorded time leaves out the layer cache it built, if it did (the
backbone's first frozen cell builds it once for every later cell). A cell whose step budget cannot be told (the `ktype` sampler before any done cell of its K: how many
sentences K per type draws is not known in advance) is priced at its method's mean, else at the mean of its backbone's done
cells with the same finetune and precision (else unpriced). The timings are what the done cells took on the machine and under the load they ran
with: an estimate for the same set-up, not a benchmark.

Wall time moves with the load: a cell run beside two busy sweepers at low priority took many times its CPU time.
Cells also record the CPU time of their process (`timings.cpu_s`, every thread counted); `cpu_estimate` prices the
same model in CPU time from the done cells that recorded it, which does not move with the load: the compute to plan
with (a free core runs a 1-thread cell's CPU time in about that much wall time). `--finish-by` prices a cell from
it too (`expected_wall`: CPU time over the cell's threads, stretched by the runnable threads per core now, each
weighted by its priority against the sweeper's: `Load.now`), where
done one-process CPU cells give a CPU price as well founded as the wall one; else from the wall time.
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import json
import os
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from paper_repro.config import CellConfig, ConfigError, resolve_steps
from paper_repro.results.collect import done_run_ids


@dataclass(frozen=True)
class Timed:
    """A done cell's recorded cost, with the keys it prices."""
    method: tuple                 # method_key
    backbone: tuple               # backbone_key
    data: tuple                   # data_key
    total_s: float
    steps: int | None             # None: the manifest does not say (then only the means use this cell)
    train_windows: int | None
    train_sentences: int | None   # the corpus's whole training split (what the `full` sampler trains on)
    cpu_s: float | None = None    # the process's CPU time for the cell (cells written before it was recorded: None)
    shape: tuple[int, float] | None = None   # (layers, one layer's multiply-adds) from the manifest's backbone.shape
    cpu_threads: int | None = None   # intra-op threads of a one-process CPU cell (manifest `device`); None: a GPU
                                     # or multi-process cell (its CPU time leaves out the GPU's and other ranks')


def encoder_flops(backbone: str, revision: str | None = None, recorded: dict | None = None) -> float | None:
    """Per-token multiply-adds of the encoder's layers, L x (4 H^2 + 2 H I) (attention projections and feed-forward;
    the attention scores' share, which grows with the sentence length, is left out), from its config alone, read
    from disk only: a local folder, the packaged MiniLM, the packaged MPNet once assembled (assembling writes
    hundreds of MB, not a pricing step's business), a hub id in the HF cache (at `revision`); else the shape a done
    cell of the backbone recorded (`recorded`: `recorded_shapes`). None otherwise: pricing never waits on the
    network."""
    shape = _encoder_shape(backbone, revision) or (recorded or {}).get(backbone)
    return None if shape is None else shape[0] * shape[1]


def layer_flops(backbone: str, revision: str | None = None, recorded: dict | None = None) -> float | None:
    """Per-token multiply-adds of one of the encoder's layers, 4 H^2 + 2 H I (`encoder_flops` over L): what a
    budget-matched head costs on a frozen encoder, whose layers never run inside a cell."""
    shape = _encoder_shape(backbone, revision) or (recorded or {}).get(backbone)
    return None if shape is None else shape[1]


@functools.lru_cache(maxsize=None)
def _encoder_shape(backbone: str, revision: str | None) -> tuple[int, float] | None:
    """(layers, per-token multiply-adds of one layer) from the encoder's config (`encoder_flops` says where from)."""
    from transformers import AutoConfig

    from paper_repro.models import backbone as backbones

    try:
        if backbone == "mpnet-base":
            source = backbones.mpnet_dir() if (backbones.mpnet_dir() / "config.json").exists() else None
        else:
            source = backbones.resolve_backbone(backbone)
        if source is None:
            return None
        with backbones.quiet_transformers():
            config = AutoConfig.from_pretrained(source, local_files_only=True, revision=revision)
        return _shape(backbones.encoder_shape(config))
    except Exception:  # noqa: BLE001 - no config here: the shape may still come from a manifest (else: unpriced)
        return None


def _shape(record) -> tuple[int, float] | None:
    """(layers, 4 H^2 + 2 H I) from a `backbone.shape` record ({layers, hidden, intermediate}); None if malformed."""
    try:
        layers, hidden, inner = (int(record[k]) for k in ("layers", "hidden", "intermediate"))
    except (TypeError, KeyError, ValueError):
        return None
    return (layers, float(4 * hidden * hidden + 2 * hidden * inner)) if min(layers, hidden, inner) > 0 else None


def recorded_shapes(timed: list[Timed]) -> dict[str, tuple[int, float]]:
    """Backbone name -> the shape its done cells recorded (the latest read wins; a name is one encoder)."""
    return {t.backbone[0]: t.shape for t in timed if t.shape is not None}


def method_key(cell: CellConfig) -> tuple:
    return (cell.model.backbone, cell.model.head.name, cell.model.finetune, cell.train.mixed_precision)


def backbone_key(cell: CellConfig) -> tuple:
    return (cell.model.backbone, cell.model.finetune, cell.train.mixed_precision)


def data_key(cell: CellConfig) -> tuple:
    return (cell.model.backbone, cell.data.sampler, cell.data.size)


def timed_cells(study_dir: str | Path) -> list[Timed]:
    """Every done cell of the study directory (any stage) whose manifest records its config and total time (and
    its step count and training windows, where it has them)."""
    found = []
    for run_id in done_run_ids(Path(study_dir)):
        try:
            record = json.loads((Path(study_dir) / "cells" / f"{run_id}.manifest.json").read_text())
            cell = CellConfig.from_dict(record["config"])
            total_s = float(record["timings"]["total_s"])
        except (OSError, ValueError, KeyError, TypeError, ConfigError):
            continue
        steps = record.get("steps") if isinstance(record.get("steps"), dict) else {}
        data = record.get("data") if isinstance(record.get("data"), dict) else {}
        train = data.get("train") if isinstance(data.get("train"), dict) else {}
        total_s, cpu_s = _without_cache_build(record["timings"], total_s)
        loaded = record.get("backbone") if isinstance(record.get("backbone"), dict) else {}
        found.append(Timed(method_key(cell), backbone_key(cell), data_key(cell), total_s,
                           _count(steps.get("total")), _count(steps.get("train_windows")),
                           _count(train.get("sentences")), cpu_s, _shape(loaded.get("shape")),
                           _cpu_threads(record.get("device"))))
    return found


def _cpu_threads(device) -> int | None:
    """Threads of a one-process CPU cell from the manifest's `device` ("cpu:x86_64 threads=1 x1"), else None."""
    match = re.fullmatch(r"cpu:.* threads=(\d+) x1", device) if isinstance(device, str) else None
    return int(match.group(1)) if match and int(match.group(1)) > 0 else None


CACHE_OPENED_S = 5.0   # opening a published layer cache takes milliseconds; more, and the cell built it


def _without_cache_build(timings: dict, total_s: float) -> tuple[float, float | None]:
    """(wall, CPU seconds) of a cell less the layer cache its frozen run built (`timings.layer_cache_s`, and
    `layer_cache_cpu_s` where recorded): a one-off of the backbone's first frozen cell that every later cell reads
    (MPNet's took most of an hour on this CPU, where the cell's own training and evaluation took seconds). A cell
    that built its cache before its CPU share was recorded gives no CPU time (None): its share of `cpu_s` is not
    known."""
    cpu_s = timings.get("cpu_s")
    cpu_s = float(cpu_s) if isinstance(cpu_s, (int, float)) and not isinstance(cpu_s, bool) else None
    cache_s, cache_cpu_s = (timings.get(k) for k in ("layer_cache_s", "layer_cache_cpu_s"))
    if not isinstance(cache_s, (int, float)) or cache_s <= 0:
        return total_s, cpu_s
    total_s = max(total_s - float(cache_s), 0.0)
    if cpu_s is not None:
        if isinstance(cache_cpu_s, (int, float)):
            cpu_s = max(cpu_s - float(cache_cpu_s), 0.0)
        elif cache_s > CACHE_OPENED_S:
            cpu_s = None
    return total_s, cpu_s


def _count(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """(fixed_s, step_s) of total = fixed + step x steps; least squares when the step counts differ (clamped to a
    non-negative fixed part), else the mean time per step."""
    steps = [s for s, _ in points]
    if len(set(steps)) > 1:
        mean_s, mean_t = statistics.fmean(steps), statistics.fmean(t for _, t in points)
        slope = (sum((s - mean_s) * (t - mean_t) for s, t in points)
                 / sum((s - mean_s) ** 2 for s in steps))
        fixed = mean_t - slope * mean_s
        if slope > 0 and fixed >= 0:
            return fixed, slope
    return 0.0, statistics.fmean(t / s for s, t in points if s > 0)


@dataclass
class Estimate:
    seconds: float
    cells: int
    by_steps: int         # priced from their method's fit and their step budget
    by_backbone: int      # from their backbone's fit (over every method) and their step budget
    by_method: int        # from their method's mean
    by_backbone_mean: int       # from the mean of their backbone's done cells (same finetune and precision)
    timed: int            # done cells the estimate rests on
    by_scaled: int = 0    # from another backbone's fit x the encoders' FLOPs ratio (a backbone without done cells,
                          # or a frozen head without done cells on its backbone)
    unpriced: int = 0     # not in `seconds`: a shape nobody has, or nothing of the backbone's to price from
    unpriced_backbones: tuple[str, ...] = ()

    def describe(self) -> str:
        if not self.cells:
            return "estimated cost: nothing to run"
        if not self.timed:
            return f"estimated cost: unknown for {self.cells} cells (no done cell with recorded timings)"
        if self.unpriced == self.cells:
            return f"estimated cost: unknown for {self.cells} cells ({self.unpriced_text()})"
        scaled = (f"{self.by_scaled} from another backbone's fit scaled by the encoders' FLOPs, " if self.by_scaled
                  else "")
        priced = self.cells - self.unpriced
        text = (f"estimated cost: {'at least ' if self.unpriced else ''}{duration(self.seconds)} compute for "
                f"{priced} cells ({self.by_steps} from their "
                f"method's time per step x their step budget, {self.by_backbone} from their backbone's (any method), "
                f"{self.by_method} from their method's mean, {scaled}"
                f"{self.by_backbone_mean} from their backbone's mean; {self.timed} done cells timed, at the load they ran "
                f"under)")
        return text + (f"; {self.unpriced_text()}" if self.unpriced else "")

    def unpriced_text(self) -> str:
        return f"{self.unpriced} cell(s) unpriced, of backbone(s) {', '.join(self.unpriced_backbones)}: {UNPRICED_WHY}"


def estimate(timed: list[Timed], to_run: list[CellConfig]) -> Estimate:
    """Compute seconds of `to_run`, priced from `timed` (`timed_cells`; see the module docstring)."""
    result = Estimate(0.0, len(to_run), 0, 0, 0, 0, len(timed))
    unpriced = set()
    for cell, (seconds, how) in zip(to_run, prices(timed, to_run)):
        result.seconds += seconds or 0.0
        setattr(result, how, getattr(result, how) + 1)
        if seconds is None:
            unpriced.add(cell.model.backbone)
    result.unpriced_backbones = tuple(sorted(unpriced))
    return result


def prices(timed: list[Timed], to_run: list[CellConfig]) -> list[tuple[float | None, str]]:
    """Per cell of `to_run`: (estimated seconds, how it was priced: by_steps / by_backbone / by_method / by_scaled /
    by_backbone_mean), or (None, "unpriced"); empty without timed cells."""
    out: list[tuple[float | None, str]] = []
    if not timed or not to_run:
        return out
    by_method: dict[tuple, list[Timed]] = collections.defaultdict(list)
    by_backbone: dict[tuple, list[Timed]] = collections.defaultdict(list)
    windows: dict[tuple, list[int]] = collections.defaultdict(list)
    per_sentence: list[float] = []
    for item in timed:
        by_method[item.method].append(item)
        if item.steps is not None:
            by_backbone[item.backbone].append(item)
        if item.train_windows is not None:
            windows[item.data].append(item.train_windows)
            _, sampler, size = item.data
            if sampler == "sentences" and size:
                per_sentence.append(item.train_windows / size)
    fits = {key: fit([(t.steps, t.total_s) for t in items if t.steps is not None])
            for key, items in by_method.items() if any(t.steps is not None for t in items)}
    backbone_fits = {key: fit([(t.steps, t.total_s) for t in items]) for key, items in by_backbone.items()}
    own: dict[tuple, list[float]] = collections.defaultdict(list)   # per backbone_key: finetune and precision too
    for item in timed:
        own[item.backbone].append(item.total_s)
    shapes = recorded_shapes(timed)
    ratio = statistics.median(per_sentence) if per_sentence else 1.0
    corpus = [t.train_sentences for t in timed if t.train_sentences is not None]
    full = statistics.median(corpus) if corpus else None
    for cell in to_run:
        key = method_key(cell)
        seen = windows.get(data_key(cell))
        sentences = (cell.data.size if cell.data.sampler == "sentences" and cell.data.size else
                     full if cell.data.sampler == "full" else None)
        train_windows = statistics.median(seen) if seen else sentences * ratio if sentences else None
        steps = None
        if train_windows is not None:
            try:
                steps = resolve_steps(cell.train, max(1, round(train_windows)))[0]
            except ConfigError:
                steps = None
        if key in fits and steps is not None:
            fixed, per_step = fits[key]
            out.append((fixed + per_step * steps, "by_steps"))
        elif (cell.model.finetune == "frozen" and steps is not None
              and (scaled := _scaled(cell, steps, fits, backbone_fits, shapes, same_method=True)) is not None):
            # a frozen cell's time is its head's: its own head elsewhere first (a missing shape: unpriced, not
            # its backbone's other heads, which may cost a tenth of it)
            out.append((None, "unpriced") if scaled is UNKNOWN_SHAPE else (scaled, "by_scaled"))
        elif backbone_key(cell) in backbone_fits and steps is not None:
            fixed, per_step = backbone_fits[backbone_key(cell)]
            out.append((fixed + per_step * steps, "by_backbone"))
        elif key in by_method:
            out.append((statistics.fmean(t.total_s for t in by_method[key]), "by_method"))
        elif (steps is not None and (scaled := _scaled(cell, steps, fits, backbone_fits, shapes)) is not None
              and scaled is not UNKNOWN_SHAPE):
            out.append((scaled, "by_scaled"))
        elif own.get(backbone_key(cell)):
            out.append((statistics.fmean(own[backbone_key(cell)]), "by_backbone_mean"))
        else:   # never another backbone's cost, unscaled
            out.append((None, "unpriced"))
    return out


UNPRICED_WHY = ("no done cell of theirs prices them, and no encoder config on this machine nor shape in a manifest "
                "scales another backbone's cells to them (`paper-repro fetch-models` installs the packaged encoders)")
UNKNOWN_SHAPE = object()   # `_scaled`: another backbone could price the cell, but an encoder's shape is unknown


def _scaled(cell: CellConfig, steps: int, fits: dict, backbone_fits: dict, shapes: dict,
            same_method: bool = False) -> float | object | None:
    """A cell from another backbone's fit (its method's, else, unless `same_method`, any method's; same finetune and
    precision) times the ratio of the two encoders' FLOPs (`encoder_flops`; for a frozen cell, one layer's,
    `layer_flops`: its head is matched to one layer and the encoder does not run); the other backbone with the most
    similar FLOPs wins. None without such a backbone; UNKNOWN_SHAPE when there is one but the cell's encoder's shape,
    or every candidate's, is unknown (config not on disk, no manifest recorded it)."""
    flops = layer_flops if cell.model.finetune == "frozen" else encoder_flops
    _, head, finetune, precision = method_key(cell)
    candidates = [other for other, other_finetune, other_precision in backbone_fits
                  if (other_finetune, other_precision) == (finetune, precision) and other != cell.model.backbone
                  and (not same_method or (other, head, finetune, precision) in fits)]
    if not candidates:
        return None
    target = flops(cell.model.backbone, cell.model.revision, shapes)
    if target is None:
        return UNKNOWN_SHAPE
    best = None
    for other in candidates:
        source = flops(other, None, shapes)   # the revision its done cells ran at is not in the key: the default's
        if source is None:
            continue
        fixed, per_step = fits.get((other, head, finetune, precision)) or backbone_fits[(other, finetune, precision)]
        seconds = (fixed + per_step * steps) * target / source
        distance = abs(target / source - 1)
        if best is None or distance < best[0]:
            best = (distance, seconds)
    return UNKNOWN_SHAPE if best is None else best[1]


def cpu_estimate(timed: list[Timed], to_run: list[CellConfig]) -> Estimate | None:
    """`estimate` in CPU seconds, from the done cells that recorded their CPU time (None when none did)."""
    measured = [dataclasses.replace(t, total_s=t.cpu_s) for t in timed if t.cpu_s is not None]
    return estimate(measured, to_run) if measured else None


def cfs_share(peer_nice: int, own_nice: int) -> float:
    """How much of a core a runnable thread at `peer_nice` takes from one at `own_nice` where the two share it and
    a scheduling group: the ratio of their CFS weights (`sched_prio_to_weight`: about 1.25x per nice step, nice 0 =
    1024, 10 = 110), at most 1. A nice-10 peer takes about a tenth of a nice-0 sweeper's core; a peer at a niced
    sweeper's own priority or higher takes all of it (its own share `expected_wall` prices from the wall time)."""
    return min(1.0, 1.25 ** (own_nice - peer_nice))


@dataclass(frozen=True)
class Runnable:
    """A thread that wants a core now: state R (running or runnable) or D (uninterruptible, as the load average
    counts it), with its process, nice value and scheduling group."""
    pid: int
    state: str
    nice: int
    group: str


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace")
    except OSError:   # gone (a process that ended while we read) or not readable
        return None


def autogroup_on(proc: Path = Path("/proc")) -> bool:
    return (_read(proc / "sys" / "kernel" / "sched_autogroup_enabled") or "").strip() == "1"


def sched_group(pid: int | str, proc: Path = Path("/proc"), autogroup: bool | None = None) -> str:
    """The group whose members CFS weighs by nice against each other: the process's cpu cgroup (the cgroup-v1 line
    whose controllers include `cpu`, else the v2 `0::` line) and, in the root cpu cgroup where the kernel has
    autogroups on (`autogroup`; None: read it), its autogroup (a session started elsewhere, by `setsid`, another
    login or a service, is weighed as a whole, whatever its nice). Unreadable: a name of its own, so that the
    process counts in full."""
    text = _read(proc / str(pid) / "cgroup")
    lines = [line.split(":", 2) for line in (text or "").splitlines() if line.count(":") >= 2]
    cpu = [path for _, controllers, path in lines if "cpu" in controllers.split(",")]
    cpu = cpu or [path for hierarchy, controllers, path in lines if hierarchy == "0" and not controllers]
    if not cpu:
        return f"?{pid}"
    if cpu[0] == "/" and (autogroup_on(proc) if autogroup is None else autogroup):
        name = (_read(proc / str(pid) / "autogroup") or "").split()
        return f"/|{name[0]}" if name else f"?{pid}"
    return cpu[0]


def runnable_threads(proc: Path = Path("/proc")) -> list[Runnable] | None:
    """Every thread in state R or D now (`/proc/<pid>/task/<tid>/stat`; a process or thread that ends while we
    read is left out); None where there is no /proc."""
    if not (proc / "self").exists():
        return None
    found: list[Runnable] = []
    groups: dict[str, str] = {}
    autogroup = autogroup_on(proc)
    for pid in os.listdir(proc):
        if not pid.isdigit():
            continue
        try:
            tids = os.listdir(proc / pid / "task")
        except OSError:
            continue
        for tid in tids:
            stat = _read(proc / pid / "task" / tid / "stat")
            # "1234 (name with spaces) R 1 ...": after the name, field 3 (state) is [0] and field 19 (nice) [16]
            fields = stat.rsplit(")", 1)[-1].split() if stat else []
            if len(fields) > 16 and fields[0] in ("R", "D") and fields[16].lstrip("-").isdigit():
                if pid not in groups:
                    groups[pid] = sched_group(pid, proc, autogroup)
                found.append(Runnable(int(pid), fields[0], int(fields[16]), groups[pid]))
    return found


def nr_running(proc: Path = Path("/proc")) -> int | None:
    """Runnable threads on the whole machine (`/proc/loadavg`'s "3/120"): also those /proc does not list (another
    PID namespace, `hidepid`)."""
    text = _read(proc / "loadavg")
    try:
        return int(text.split()[3].split("/")[0]) if text else None
    except (IndexError, ValueError):
        return None


def peer_load(snapshot: list[Runnable], running: int | None, own_pid: int, own_nice: int, own_group: str
              ) -> tuple[float, int]:
    """(the other processes' threads of `snapshot`, each weighted by its `cfs_share` where it shares this process's
    scheduling group and counted in full where not; the runnable threads the machine has that /proc did not show,
    from `running` = `nr_running`, None to leave them out)."""
    weighted = sum(cfs_share(r.nice, own_nice) if r.group == own_group else 1.0
                   for r in snapshot if r.pid != own_pid)
    seen = sum(r.state == "R" for r in snapshot)
    return weighted, max(0, running - seen) if running is not None else 0


@dataclass(frozen=True)
class Load:
    """The machine as a cell is about to start, for `expected_wall`."""
    busy: float       # runnable threads once the cell runs: the other processes' threads in state R or D (the
                      # median of a few snapshots), each weighted by its CFS share against this process's nice
                      # (`peer_load`), plus any the machine runs that /proc does not show (their median; only where
                      # this process may use every core), plus this cell's threads; without /proc, the 1-minute
                      # load average (at least the threads)
    cores: int        # the cores this process may use
    threads: int      # intra-op threads this process gives a cell
    niced: bool       # this process runs below the default priority (nice > 0)

    @property
    def stretch(self) -> float:
        return max(1.0, self.busy / max(self.cores, 1))

    SNAPSHOTS = 5
    SNAPSHOT_GAP_S = 0.02

    @classmethod
    def now(cls, proc: Path = Path("/proc")) -> "Load":
        """Read the machine now. Not the 1-minute load average where /proc tells more: that average still carries
        the last minute (a sweeper starting beside one that just finished saw a load that was gone) and counts a
        nice-10 peer like a nice-0 one, where the peer takes about a tenth of a core from a nice-0 cell (measured
        on 2 cores: two nice-0 MiniLM sweepers ran 0.40 s/step alone and 0.40-0.42 s/step beside a nice-10
        frozen one). The median of the snapshots, not the largest: 4 of 300 snapshots read beside two sweepers
        showed a thread for a moment (a kernel thread, `tail`), which the largest of five would count as a
        sweeper about one read in sixteen. A peer asleep through most snapshots (a few tens of ms) is not seen."""

        import torch

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        threads = max(torch.get_num_threads(), 1)
        own_pid, own_nice = os.getpid(), os.nice(0)
        own_group = sched_group(own_pid, proc)
        # the machine's runnable count covers all its cores: with fewer of them ours (a container's cpuset), the
        # threads on the others would count against ours, so none is added
        whole_machine = cores >= (os.cpu_count() or cores)
        weighted, unseen = [], []
        for i in range(cls.SNAPSHOTS):
            if i:
                time.sleep(cls.SNAPSHOT_GAP_S)
            snapshot = runnable_threads(proc)
            if snapshot is None:
                break
            w, u = peer_load(snapshot, nr_running(proc) if whole_machine else None, own_pid, own_nice, own_group)
            weighted.append(w)
            unseen.append(u)
        if not weighted:
            return cls(max(os.getloadavg()[0], float(threads)), cores, threads, own_nice > 0)
        return cls(float(statistics.median(weighted) + statistics.median(unseen) + threads), cores, threads,
                   own_nice > 0)


def recent_load(max_age_s: float = 10.0) -> Callable[[], Load]:
    """`Load.now`, read again only once the last reading is older than `max_age_s`. A reading takes about 0.1 s
    (five walks of /proc, 20 ms apart: 97 ms on the 2-core machine beside three sweepers), and near a deadline a
    sweeper prices every pending cell in turn (2079 frozen cells in one pass), so each cell's own reading would
    add minutes of idle claims; the load does not change within seconds, and after a cell has run it is read anew."""

    last: list = []

    def read() -> Load:
        if not last or time.monotonic() - last[0] > max_age_s:
            last[:] = [time.monotonic(), Load.now()]
        return last[1]

    return read


@dataclass(frozen=True)
class DeadlinePrice:
    """A pending cell's two prices (`prices` on wall time, and on the CPU time of one-process CPU cells), with how
    each was priced, and the threads the CPU-timed cells ran with (median)."""
    wall_s: float | None
    wall_how: str
    cpu_s: float | None = None
    cpu_how: str = "unpriced"
    cpu_threads: int = 1


WALL_HOW = "wall time at the load its peers ran under"


def expected_wall(price: DeadlinePrice, load: Load | Callable[[], Load]) -> tuple[float | None, str]:
    """(seconds, how) a cell is expected to take from now: its CPU time spread over the threads it gets (at most
    the threads its priced peers had: more threads do not scale perfectly), stretched by the load per core when the
    machine is oversubscribed. A run's wall time at past load says more about that load than about the cell
    (frozen cells run at low priority beside two busy sweepers took tens of times their CPU time, and
    `--finish-by` refused a cell that then took 336 s of CPU as 97 minutes). The wall price stands where the CPU
    price is weaker (priced from other heads or backbones while the wall price comes from the cell's own head: on a
    frozen encoder heads differ tenfold), where there is no CPU price (GPU or multi-process cells, cells before CPU
    time was recorded), and, if larger, for a niced process on an oversubscribed machine (it gets what is left, which no
    load average tells). `load`: a `Load`, or a callable giving one (`Load.now`, read only where the CPU price is
    used)."""
    wall = (price.wall_s, WALL_HOW)
    if price.cpu_s is None or not (price.cpu_how == "by_steps" or price.cpu_how == price.wall_how):
        return wall
    if callable(load):   # `Load.now`: read only where the price uses it (it walks /proc)
        load = load()
    threads = max(1, min(load.threads, price.cpu_threads))
    seconds = price.cpu_s / threads * load.stretch
    if load.niced and load.stretch > 1.0 and price.wall_s is not None and price.wall_s > seconds:
        return price.wall_s, f"{WALL_HOW} (niced, machine oversubscribed)"
    return seconds, f"CPU time / {threads} thread(s) x load {load.stretch:.2f} per core"


def deadline_prices(timed: list[Timed], to_run: list[CellConfig]) -> dict[str, DeadlinePrice]:
    """run_id -> the cell's `DeadlinePrice` (for `expected_wall`)."""
    walls = prices(timed, to_run) or [(None, "unpriced")] * len(to_run)
    measured = [dataclasses.replace(t, total_s=t.cpu_s) for t in timed
                if t.cpu_s is not None and t.cpu_threads is not None]
    cpus = prices(measured, to_run) if measured else []
    threads = round(statistics.median(t.cpu_threads for t in measured)) if measured else 1
    return {cell.run_id: DeadlinePrice(*walls[i], *(cpus[i] if cpus else (None, "unpriced")), threads)
            for i, cell in enumerate(to_run)}


def describe_both(timed: list[Timed], to_run: list[CellConfig]) -> str:
    """The wall-time estimate's text, and the CPU-time estimate's where done cells recorded CPU time."""
    text = estimate(timed, to_run).describe()
    cpu = cpu_estimate(timed, to_run)
    if cpu is not None and to_run:
        text += (f"; in CPU time {'at least ' if cpu.unpriced else ''}{duration(cpu.seconds)} (the same model on "
                 f"the {cpu.timed} done cells that recorded it; it does not move with the load"
                 f"{f'; {cpu.unpriced} cell(s) unpriced' if cpu.unpriced else ''})")
    return text


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}min"
    return f"{seconds / 3600:.1f}h"
