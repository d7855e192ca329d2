"""Study configs: a base cell config, grids of dotted-key axes, and how to launch them.

A study file `experiments/<study>.yaml`:

    study: smoke                      # results go to <results_dir>/<study>/
    base:                             # any CellConfig fields, nested or dotted
      model: {backbone: minilm-l6}
      train.steps: 30
    grid:                             # dotted key -> list of values; cartesian product in file order
      model.head.name: [last, dwatt]
      data.size: [20, 50]
    include:                          # extra cells: {dotted key: value}; a list value is an axis
      - {model.head.name: concat, data.size: 20}
    exclude:                          # drop cells matching every key of an entry
      - {model.head.name: dwatt, data.size: 20}
    grids:                            # more sub-grids, unioned with `grid` (each: base, grid, include, exclude)
      - base: {model.backbone: mpnet-base}
        grid: {model.head.name: [last, dwatt], data.size: [100]}
    ties: {train.seed: data.data_seed}  # the default: each cell's init seed is its data seed; `ties: {}` frees it
    launcher: {partition: gpu, time_min: 120, gpus_per_task: 1, ...}

A staged study (protocol v2) replaces `grid`/`grids` by `stages`, run in order; each stage has the keys of a
sub-grid (base, grid, grids, include, exclude) and optionally
    select:                           # take a parameter from an earlier stage's dev results (sweep/select.py)
      from: tune                      # the stage whose cells are compared (tuning seeds only)
      param: train.head_lr            # the key set per cell
      match: [model.backbone, model.head.name]   # keys a tuning cell must share with the cell
      brackets:                       # which tuning size decides which cells: the first `apply` match wins
        - {label: small, tune: {data.size: 100}, apply: {data.size: [50, 100, 200]}}
      metric: f1                      # mean final dev value over the tuning cells, highest wins
      tie_tolerance: 0.0              # values within this (F1 units) of the best count as tied
      tie_break: lower                # tied: the lower (or higher) parameter value
and/or
    check: {param: train.min_epochs, rule: 10.0, metric: f1, max_gain: 0.01}   # a budget check (report only)
    check: {param: train.min_epochs, rule: 10.0, max_gain: 0.01, gate: true}    # a gate: later stages (or
                                      # gate: [the later stages named]) wait until it is complete and the rule
                                      # stands for every method
`hypotheses:` (the pre-registered tests, read by paper_repro.analysis.hypotheses) is kept as given; `claims:` (the
pre-registered verdict rules per paper claim, read by paper_repro.analysis.verdicts) is accepted and never used here.
The file is read with `paper_repro.config.ConfigLoader`: the only booleans are true/false, so `no`, `yes`, `on`,
`off` stay text (`train.mixed_precision: no` is "no"; a bool field still takes them).

Every expanded cell is built through `CellConfig.from_dict`, so unknown keys and wrong types are one-line
`ConfigError`s naming the file and the place in it; methods, samplers and alias-looking backbones are checked
against what the code knows (`paper_repro.validate.validate_cell`, the checks `paper-repro cell` runs). `expand` returns cells in a deterministic order with duplicates (same run_id)
removed.

A lock file `<stem>.lock.yaml` beside the study (written by `paper-repro fetch-models --study`,
paper_repro/sweep/lock.py) pins hub-id backbones and the hub dataset: `from_yaml` reads it and every cell whose
backbone is a locked hub id and whose `model.revision` is unset gets the locked commit sha, and every cell whose
`data.hub_id` is locked and `data.hub_revision` unset gets the dataset's (`load_study(..., lock=False)`: as written).
"""
from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paper_repro.config import (CellConfig, ConfigError, build_dataclass, flatten, parse_override, read_yaml_file,
                                 set_dotted)
# the value checks live in paper_repro.validate (shared with `paper-repro cell` and run_cell); re-exported here
from paper_repro.validate import (CHOICES, FALLBACK_METHODS, FALLBACK_SAMPLERS, check_backbone,  # noqa: F401
                                  known_methods, known_samplers, validate_cell)
STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class LauncherConfig:
    """How a study runs on Slurm (ignored by the local launcher)."""

    partition: str | None = None
    account: str | None = None
    time_min: int = 60                   # time limit of one array task (covers `cells_per_task` cells)
    gpus_per_task: int = 0
    cpus_per_task: int = 2
    mem_gb: float = 8.0
    array_parallelism: int = 16          # array tasks running at once
    cells_per_task: int = 1              # cells run one after another by one array task
    accelerate_processes: int = 1        # >1: each cell runs under `accelerate launch --num_processes N`
    setup: list[str] = field(default_factory=list)  # shell lines run in the sbatch script before the task
    max_requeues: int = 3                # submitit's requeues after timeout/preemption


@dataclass
class SubGrid:
    """One grid of a study: base overrides, axes (cartesian product), extra cells and exclusions."""

    base: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, Any] = field(default_factory=dict)
    include: list[dict[str, Any]] = field(default_factory=list)
    exclude: list[dict[str, Any]] = field(default_factory=list)
    label: str = ""                      # optional name, used in error messages
    where: str = field(default="grid", repr=False)   # position in the file (set by the loader)


@dataclass
class StudyConfig:
    study: str
    base: dict[str, Any] = field(default_factory=dict)
    grids: list[SubGrid] = field(default_factory=list)
    exclude: list[dict[str, Any]] = field(default_factory=list)   # applied to the union of all grids
    launcher: LauncherConfig = field(default_factory=LauncherConfig)
    source: str = "<study>"              # file it came from, for error messages
    overrides: dict[str, Any] = field(default_factory=dict)     # CLI key=value, applied to every cell last
    stages: list["Stage"] = field(default_factory=list)        # staged studies (then `grids` is empty)
    ties: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_TIES))  # target key <- source key, per cell
    hypotheses: dict[str, Any] = field(default_factory=dict)    # pre-registered tests (analysis reads them)
    pins: dict[str, str] = field(default_factory=dict)          # hub id (datasets: DATASET_PIN + id) -> commit sha from <study>.lock.yaml (sweep/lock.py)
    lock_file: str | None = None                                # the lock the pins came from
    _placeholders: dict[Any, list] = field(default_factory=dict, repr=False, compare=False)

    def placeholder_cells(self, stage: str | None) -> list["CellConfig"]:
        """`expand(stage=stage, pending="placeholder")`, computed once per study object (selections, their seed
        guard and the hypotheses check all read the large evaluation stages)."""
        if stage not in self._placeholders:
            self._placeholders[stage] = self.expand(stage=stage, pending="placeholder")
        return self._placeholders[stage]

    def stage(self, name: str) -> "Stage":
        for stage in self.stages:
            if stage.name == name:
                return stage
        known = ", ".join(s.name for s in self.stages) or "none (this study has no stages)"
        raise ConfigError(f"{self.source}: unknown stage {name!r} (stages: {known})")

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] | dict[str, Any] = (), lock: bool = True) -> "StudyConfig":
        """The study file; with `lock`, the hub commits of `<stem>.lock.yaml` beside it (if there is one) pin
        every cell whose backbone is a locked hub id and whose model.revision is unset (paper_repro/sweep/lock.py)."""
        from paper_repro.sweep.lock import lock_path, pinned_datasets, pinned_revisions, read_lock

        path = Path(path)
        found = read_lock(lock_path(path)) if lock else None
        raw = read_yaml_file(path, "study file")
        pins = {**pinned_revisions(found), **{DATASET_PIN + k: v for k, v in pinned_datasets(found).items()}}
        return cls.from_dict(raw, source=str(path), overrides=overrides, pins=pins,
                             lock_file=str(lock_path(path)) if found is not None else None)

    @classmethod
    def from_dict(
        cls, raw: Any, *, source: str = "<study>", overrides: list[str] | dict[str, Any] = (),
        pins: dict[str, str] | None = None, lock_file: str | None = None,
    ) -> "StudyConfig":
        def fail(message: str) -> ConfigError:
            return ConfigError(f"{source}: {message}")

        if not isinstance(raw, dict):
            raise fail("expected a mapping with study, base, grid/grids and launcher")
        top = {"study", "base", "grid", "grids", "include", "exclude", "launcher", "stages", "ties", "hypotheses",
               "claims"}
        unknown = sorted(set(raw) - top)
        if unknown:
            raise fail(f"unknown study key {unknown[0]} (known: {', '.join(sorted(top))})")
        name = raw.get("study")
        if not isinstance(name, str) or not STUDY_NAME.match(name):
            raise fail(f"study: expected a name of letters, digits, '_', '.', '-', got {name!r}")
        try:
            base = _mapping(raw.get("base"), "base")
            if "study" in base:
                raise ConfigError("base.study: set the study name with the top-level `study:` key")
            grids = []
            if raw.get("grid") is not None or raw.get("include") is not None:
                grids.append(_subgrid({"grid": raw.get("grid") or {}, "include": raw.get("include") or []}, "grid"))
            extra = raw.get("grids")
            if extra is not None:
                if not isinstance(extra, list):
                    raise ConfigError(f"grids: expected a list of grids, got {extra!r}")
                grids += [_subgrid(item, f"grids[{i}]") for i, item in enumerate(extra)]
            exclude = _list_of_mappings(raw.get("exclude"), "exclude")
            stages = _stages(raw.get("stages"))
            if stages and grids:
                raise ConfigError("give either stages or grid/grids, not both")
            ties = raw.get("ties", DEFAULT_TIES)
            if not isinstance(ties, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in ties.items()):
                raise ConfigError(f"ties: expected a mapping of dotted keys, got {ties!r}")
            hypotheses = _mapping(raw.get("hypotheses"), "hypotheses")
            _mapping(raw.get("claims"), "claims")   # analysis only (paper_repro.analysis.verdicts): checked, not kept
            launcher = raw.get("launcher") or {}
            if not isinstance(launcher, dict):
                raise ConfigError(f"launcher: expected a mapping, got {launcher!r}")
            launcher = build_dataclass(LauncherConfig, launcher, "launcher.")
            for key in ("time_min", "cpus_per_task", "array_parallelism", "cells_per_task", "accelerate_processes"):
                if getattr(launcher, key) < 1:
                    raise ConfigError(f"launcher.{key}: expected a positive integer, got {getattr(launcher, key)}")
            pairs = overrides.items() if isinstance(overrides, dict) else map(parse_override, overrides)
            overrides = {key: value for key, value in pairs}
        except ConfigError as error:
            raise fail(str(error)) from None
        study = cls(name, base, grids, exclude, launcher, source, overrides, stages, dict(ties), hypotheses,
                    dict(pins or {}), lock_file)
        try:
            _check_ties(study)
        except ConfigError as error:
            raise fail(str(error)) from None
        base_tree = CellConfig().to_dict()
        try:
            _merge(base_tree, base)
        except ConfigError as error:
            raise fail(f"base: {error}") from None
        base_tree["study"] = name
        _build(base_tree, {}, f"{source}: base")
        _build(base_tree, overrides, f"{source}: override {_fmt(overrides)}" if overrides else f"{source}: base")
        study.expand(pending="placeholder")  # validate every cell now: errors surface at load time
        return study

    # ------------------------------------------------------------------------------------------------------
    def expand(self, stage: str | None = None, selections: dict[str, Any] | None = None,
               pending: str = "skip", parts: dict[str, str] | None = None) -> list[CellConfig]:
        return expand(self, stage, selections, pending, parts)

    @property
    def results_dir(self) -> str:
        return self.base_config().results_dir

    def base_config(self) -> CellConfig:
        tree = CellConfig().to_dict()
        _merge(tree, self.base)
        tree["study"] = self.study
        return _build(tree, {}, f"{self.source}: base")


def expand(study: StudyConfig, stage: str | None = None, selections: dict[str, Any] | None = None,
           pending: str = "skip", parts: dict[str, str] | None = None) -> list[CellConfig]:
    """All cells of the study (or of one stage): stages in file order, sub-grids in file order, axes in file
    order (last axis fastest), then includes; excludes applied, ties and CLI overrides applied last,
    duplicates (same run_id) dropped keeping the first.

    A stage with `select` needs its selection (`selections[stage]`, an object with `value_for(cell)`, built by
    paper_repro.sweep.select): without one its cells are left out (`pending="skip"`), built with the base value
    of the selected key (`"placeholder"`: for validation and counting only), or an error (`"error"`).

    `parts`, if given, is filled with run_id -> label of the sub-grid each returned cell came from, for cells of a
    stage with several sub-grids that all have labels (the sub-grids then set the order its cells run in; status
    reports each part)."""
    if pending not in ("skip", "placeholder", "error"):
        raise ValueError(f"pending: expected skip, placeholder or error, got {pending!r}")
    if not study.stages:
        if stage is not None:
            study.stage(stage)  # raises: no stages
        return [cell for _, cell in _expand_parts(study, study.grids, "", None)]
    cells: list[tuple[str, CellConfig]] = []
    for item in study.stages if stage is None else [study.stage(stage)]:
        selection = (selections or {}).get(item.name)
        if item.select is not None and selection is None:
            if pending == "skip":
                continue
            if pending == "error":
                raise ConfigError(f"{study.source}: stage {item.name} needs the selection from stage {item.select['from']}")
        labelled = len(item.grids) > 1 and all(sub.label for sub in item.grids)
        cells += [(item.grids[index].label if labelled else "", cell) for index, cell in
                  _expand_parts(study, item.grids, item.name, selection if item.select is not None else None)]
    seen: set[str] = set()
    unique = [(label, c) for label, c in cells if not (c.run_id in seen or seen.add(c.run_id))]
    if parts is not None:
        parts.update((c.run_id, label) for label, c in unique if label)
    return [c for _, c in unique]


def _expand_parts(study: StudyConfig, grids: list[SubGrid], stage: str,
                  selection: Any) -> list[tuple[int, CellConfig]]:
    """(index of the sub-grid that first expands to it, cell) for each distinct cell of `grids`, in order."""
    base_tree = CellConfig().to_dict()
    _merge(base_tree, study.base)
    base_tree["study"] = study.study
    base_tree["stage"] = stage
    if not grids:
        raise ConfigError(f"{study.source}: empty study: give a `grid:` (or `grids:`) with at least one axis")
    cells: list[tuple[int, CellConfig]] = []
    seen: set[str] = set()
    for index, sub in enumerate(grids):
        where = f"{study.source}: {sub.where}" + (f" ({sub.label})" if sub.label else "")
        tree = copy.deepcopy(base_tree)
        try:
            _merge(tree, sub.base)
            for pattern in sub.exclude + study.exclude:
                _check_pattern(pattern)
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from None
        combos: list[dict[str, Any]] = []
        if sub.grid:
            keys = list(sub.grid)
            for values in itertools.product(*(sub.grid[k] for k in keys)):
                combos.append(dict(zip(keys, values)))
        for extra in sub.include:
            axes = {k: (v if isinstance(v, list) else [v]) for k, v in extra.items()}
            for values in itertools.product(*axes.values()):
                combos.append(dict(zip(axes, values)))
        if not sub.grid and not sub.include:
            raise ConfigError(f"{where}: empty grid: give at least one axis with values or one include")
        for combo in combos:
            cell = _build(tree, {**combo, **study.overrides}, where, combo, study.ties, study.pins)
            if selection is not None:
                key, value = selection.param, selection.value_for(cell)
                cell = _build(tree, {**combo, **study.overrides, key: value}, where, combo, study.ties, study.pins)
            flat = flatten(cell.to_dict())
            if any(_matches(flat, e) for e in sub.exclude + study.exclude):
                continue
            if cell.run_id not in seen:
                seen.add(cell.run_id)
                cells.append((index, cell))
    if not cells:
        raise ConfigError(f"{study.source}: empty grid: every cell is excluded")
    return cells


@dataclass
class Stage:
    """One stage of a staged study: its sub-grids and, optionally, a parameter selection or a budget check."""

    name: str
    grids: list[SubGrid]
    select: dict[str, Any] | None = None
    check: dict[str, Any] | None = None


SELECT_KEYS = {"from", "param", "match", "brackets", "metric", "split", "tie_tolerance", "tie_break"}


def _stages(raw: Any) -> list[Stage]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"stages: expected a non-empty list of stages, got {raw!r}")
    stages: list[Stage] = []
    for i, item in enumerate(raw):
        where = f"stages[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: expected a mapping with name, grid/grids and optionally select or check")
        name = item.get("name")
        if not isinstance(name, str) or not STUDY_NAME.match(name):
            raise ConfigError(f"{where}.name: expected a name of letters, digits, '_', '.', '-', got {name!r}")
        if any(s.name == name for s in stages):
            raise ConfigError(f"{where}.name: duplicate stage {name!r}")
        where = f"stages[{i}] ({name})"
        unknown = sorted(set(item) - {"name", "base", "grid", "grids", "include", "exclude", "label", "select", "check"})
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]} (known: base, check, exclude, grid, grids, include, name, select)")
        grids = []
        if item.get("grid") is not None or item.get("include") is not None:
            grids.append(_subgrid({k: item[k] for k in ("base", "grid", "include", "exclude", "label") if k in item}, where))
        for j, sub in enumerate(item.get("grids") or []):
            sub = dict(sub) if isinstance(sub, dict) else sub
            if isinstance(sub, dict) and item.get("base"):
                sub["base"] = {**item["base"], **(sub.get("base") or {})}
            grids.append(_subgrid(sub, f"{where}.grids[{j}]"))
        if not grids:
            raise ConfigError(f"{where}: empty stage: give a grid (or grids)")
        select = _mapping(item.get("select"), f"{where}.select") or None
        check = _mapping(item.get("check"), f"{where}.check") or None
        if select is not None:
            _check_select(select, f"{where}.select", [s.name for s in stages])
        if check is not None:
            _check_check(check, f"{where}.check")
        stages.append(Stage(name, grids, select, check))
    for i, stage in enumerate(stages):
        gate = (stage.check or {}).get("gate")
        later = [s.name for s in stages[i + 1:]]
        for blocked in gate if isinstance(gate, list) else []:
            if blocked not in later:
                raise ConfigError(f"stages[{i}] ({stage.name}).check.gate: {blocked!r} is not a later stage "
                                  f"({', '.join(later) or 'none'})")
    return stages


CHECK_KEYS = {"param", "rule", "metric", "split", "max_gain", "gate"}


def _check_check(check: dict[str, Any], where: str) -> None:
    unknown = sorted(set(check) - CHECK_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]} (known: {', '.join(sorted(CHECK_KEYS))})")
    if not isinstance(check.get("param"), str):
        raise ConfigError(f"{where}.param: expected the dotted key that the check varies")
    if check.get("split", "dev") != "dev":
        raise ConfigError(f"{where}.split: a budget check reads dev rows only (never test), got {check.get('split')!r}")
    gate = check.get("gate", False)
    if not (isinstance(gate, bool) or (isinstance(gate, list) and gate and all(isinstance(g, str) for g in gate))):
        raise ConfigError(f"{where}.gate: expected true (every later stage waits for this check to pass), a list of "
                          f"the later stages that wait, or false; got {gate!r}")


def _check_select(select: dict[str, Any], where: str, earlier: list[str]) -> None:
    unknown = sorted(set(select) - SELECT_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]} (known: {', '.join(sorted(SELECT_KEYS))})")
    if select.get("from") not in earlier:
        raise ConfigError(f"{where}.from: expected an earlier stage ({', '.join(earlier) or 'none'}), got {select.get('from')!r}")
    known = flatten(CellConfig().to_dict())
    param = select.get("param")
    if param not in known:
        raise ConfigError(f"{where}.param: unknown config key {param!r}")
    match = select.get("match", [])
    if not isinstance(match, list) or any(k not in known for k in match):
        raise ConfigError(f"{where}.match: expected a list of config keys, got {match!r}")
    brackets = select.get("brackets")
    if not isinstance(brackets, list) or not brackets:
        raise ConfigError(f"{where}.brackets: expected a list of {{label, tune, apply}}")
    for j, bracket in enumerate(brackets):
        if not isinstance(bracket, dict) or set(bracket) - {"label", "tune", "apply"} or not isinstance(bracket.get("label"), str):
            raise ConfigError(f"{where}.brackets[{j}]: expected {{label: name, tune: {{key: value}}, apply: {{key: value or list}}}}")
        for part in ("tune", "apply"):
            pattern = _mapping(bracket.get(part), f"{where}.brackets[{j}].{part}")
            for key in pattern:
                if key not in known:
                    raise ConfigError(f"{where}.brackets[{j}].{part}: unknown config key {key}")
    if select.get("split", "dev") != "dev":
        raise ConfigError(f"{where}.split: a selection reads dev rows only (never test), got {select.get('split')!r}")
    if select.get("tie_break", "lower") not in ("lower", "higher"):
        raise ConfigError(f"{where}.tie_break: expected lower or higher, got {select.get('tie_break')!r}")
    tolerance = select.get("tie_tolerance", 0.0)
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or tolerance < 0:
        raise ConfigError(f"{where}.tie_tolerance: expected a number >= 0 (F1 units), got {tolerance!r}")


def check_hypotheses(study: StudyConfig) -> None:
    """The `hypotheses:` block names what the grid runs: its stage is one of the study's, and every test's methods
    (`a`, `b`) and sizes have cells in that stage (ConfigError naming the test otherwise: a typo would leave a
    pre-registered test "not run" without a word). Read from the raw block: the analysis parses it."""
    raw = study.hypotheses
    if not raw:
        return
    stage = raw.get("stage", "eval")
    names = [s.name for s in study.stages]
    if study.stages and stage is not None and stage not in names:
        raise ConfigError(f"{study.source}: hypotheses.stage: {stage!r} is not a stage of the study ({', '.join(names)})")
    if not study.stages and stage is not None:   # the tests would read no cell: every one "not run"
        raise ConfigError(f"{study.source}: hypotheses.stage: {stage!r} (the default is eval), but the study has no "
                          "stages: set `stage: null` to test every cell")
    cells = study.placeholder_cells(stage if study.stages else None)
    methods = sorted({c.model.head.name for c in cells})
    sizes = sorted({c.data.size for c in cells})
    where_stage = f"stage {stage}" if study.stages and stage is not None else "the grid"
    for i, test in enumerate(raw.get("tests") or []):
        if not isinstance(test, dict):
            continue            # malformed: the analysis' parser says how
        where = f"{study.source}: hypotheses.tests[{i}] ({test.get('id')})"
        for key in ("a", "b"):
            if test.get(key) not in methods:
                raise ConfigError(f"{where}.{key}: method {test.get(key)!r} has no cell in {where_stage} "
                                  f"(methods: {', '.join(methods)})")
        for key in ("sizes", "small", "large"):
            for size in test.get(key) or []:
                if size not in sizes:
                    raise ConfigError(f"{where}.{key}: size {size!r} has no cell in {where_stage} "
                                      f"(sizes: {', '.join(map(str, sizes))})")


DEFAULT_TIES = {"train.seed": "data.data_seed"}
DATASET_PIN = "dataset:"   # prefix of a hub dataset's key in StudyConfig.pins (a model and a dataset may share an id)


def _check_ties(study: StudyConfig) -> None:
    """A tied key (default: train.seed <- data.data_seed) is set per cell; setting it anywhere is an error."""
    known = flatten(CellConfig().to_dict())
    for target, source in study.ties.items():
        for key in (target, source):
            if key not in known:
                raise ConfigError(f"ties: unknown config key {key}")
        grids = study.grids + [g for s in study.stages for g in s.grids]
        places = [("base", study.base)] + [(f"{g.where} base", g.base) for g in grids] + \
                 [(f"{g.where} grid", g.grid) for g in grids] + \
                 [(f"{g.where} include", inc) for g in grids for inc in g.include] + [("override", study.overrides)]
        for where, tree in places:
            if target in _dotted_keys(tree):
                raise ConfigError(f"{where}: {target} is tied to {source} (ties); remove it, or set `ties: {{}}` "
                                  f"to give it yourself")


def _dotted_keys(tree: dict[str, Any], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for key, value in (tree or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and key != "options" and "." not in key:
            keys |= _dotted_keys(value, name + ".")
        keys.add(name)
    return keys


# ----------------------------------------------------------------------------------------------------------
def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {value!r}")
    return value


def _list_of_mappings(value: Any, where: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(f"{where}: expected a list of {{dotted key: value}} mappings, got {value!r}")
    return value


def _subgrid(raw: Any, where: str) -> SubGrid:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping with base/grid/include/exclude, got {raw!r}")
    unknown = sorted(set(raw) - {"base", "grid", "include", "exclude", "label"})
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]} (known: base, exclude, grid, include, label)")
    label = raw.get("label") or ""
    if not isinstance(label, str):
        raise ConfigError(f"{where}.label: expected a string, got {label!r}")
    grid = _mapping(raw.get("grid"), f"{where}.grid")
    for key, values in grid.items():
        if not isinstance(values, list):
            raise ConfigError(f"{where}.grid.{key}: expected a list of values, got {values!r}")
        if not values:
            raise ConfigError(f"{where}.grid.{key}: empty list of values (the grid would have no cells)")
    return SubGrid(
        base=_mapping(raw.get("base"), f"{where}.base"),
        grid=grid,
        include=_list_of_mappings(raw.get("include"), f"{where}.include"),
        exclude=_list_of_mappings(raw.get("exclude"), f"{where}.exclude"),
        label=label,
        where=where,
    )


def _merge(tree: dict[str, Any], update: dict[str, Any], prefix: str = "") -> None:
    """Deep-merge a nested and/or dotted mapping into `tree` (head `options` are replaced, not merged)."""
    for key, value in update.items():
        if not isinstance(key, str):
            raise ConfigError(f"{prefix}{key!r}: expected a string key")
        if "." in key:
            set_dotted(tree, key, copy.deepcopy(value))
        elif isinstance(value, dict) and key != "options" and isinstance(tree.get(key), dict):
            _merge(tree[key], value, f"{prefix}{key}.")
        else:
            tree[key] = copy.deepcopy(value)


def _check_pattern(pattern: dict[str, Any]) -> None:
    known = flatten(CellConfig().to_dict())
    for key in pattern:
        if key not in known:
            raise ConfigError(f"exclude: unknown config key {key}")


def _matches(flat: dict[str, Any], pattern: dict[str, Any]) -> bool:
    return all(key in flat and flat[key] == value for key, value in pattern.items())


def _build(tree: dict[str, Any], combo: dict[str, Any], where: str, shown: dict[str, Any] | None = None,
           ties: dict[str, str] | None = None, pins: dict[str, str] | None = None) -> CellConfig:
    tree = copy.deepcopy(tree)
    label = f" cell {_fmt(shown)}" if shown else ""
    try:
        for key, value in combo.items():
            set_dotted(tree, key, value)
        flat = flatten(tree)
        for target, source in (ties or {}).items():
            set_dotted(tree, target, flat[source])
        if pins and flat.get("model.revision") is None and flat.get("model.backbone") in pins:  # the study's lock
            set_dotted(tree, "model.revision", pins[flat["model.backbone"]])
        if pins and flat.get("data.hub_revision") is None and DATASET_PIN + str(flat.get("data.hub_id")) in pins:
            set_dotted(tree, "data.hub_revision", pins[DATASET_PIN + flat["data.hub_id"]])
        cell = CellConfig.from_dict(tree)
        validate_cell(cell)
    except ConfigError as error:
        raise ConfigError(f"{where}{label}: {error}") from None
    return cell


def _fmt(combo: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}={v}" for k, v in combo.items()) + "}"


def load_study(path: str | Path, overrides: list[str] | dict[str, Any] = (), lock: bool = True) -> StudyConfig:
    """The study file, pinned by its lock file when there is one (`lock=False`: as written)."""
    return StudyConfig.from_yaml(path, overrides, lock=lock)


def cell_axes(cell: CellConfig) -> dict[str, Any]:
    """The columns shown per cell in tables and progress reports."""
    size = "full" if cell.data.sampler == "full" else cell.data.size
    return {
        "backbone": cell.model.backbone,
        "method": cell.model.head.name,
        "sampler": cell.data.sampler,
        "size": size,
        "data_seed": cell.data.data_seed,
        "seed": cell.train.seed,
    }
