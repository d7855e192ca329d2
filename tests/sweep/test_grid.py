"""Study files: expansion counts and order, run_id stability, and one clear line per bad config."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from paper_repro.config import ConfigError
from paper_repro.sweep.grid import StudyConfig, expand, load_study

REPO = Path(__file__).resolve().parents[2]


def study(raw: dict, overrides=()) -> StudyConfig:
    return StudyConfig.from_dict(raw, source="test.yaml", overrides=overrides)


BASE = {"study": "t", "base": {"model": {"backbone": "minilm-l6"}, "train": {"steps": 7}}}


def test_shipped_studies_expand_to_the_documented_counts():
    def counts(name):
        loaded = load_study(REPO / "experiments" / f"{name}.yaml")
        if not loaded.stages:
            return len(loaded.expand())
        return {s.name: len(loaded.expand(stage=s.name, pending="placeholder")) for s in loaded.stages}

    assert counts("cpu_pilot") == 4 * 3 * 3 and counts("lr_probe") == 2 * 2 * 3
    assert counts("smoke") == {"tune": 4, "eval": 8}
    assert counts("cpu_study") == {  # the header of experiments/cpu_study.yaml
        "budget_check": 12, "tune": 60, "budget_recheck": 20, "tune_e20": 60, "budget_recheck_e20": 20, "eval": 200,
        "eval_ktype": 80, "tune_family": 48 + 12, "budget_recheck_family": 16 + 4, "eval_family": 64 + 16,
        "eval_mpnet": 40}
    assert counts("paper") == {"tune": 324, "budget_recheck": 108, "eval": 1350 + 81}   # 10 eval seeds (header)
    cpu = load_study(REPO / "experiments" / "cpu_study.yaml")
    tune = cpu.expand(stage="tune")
    assert {c.data.data_seed for c in tune} == {100, 101}           # tuning seeds are never reported
    evaluated = cpu.expand(stage="eval", pending="placeholder")
    assert {c.data.data_seed for c in evaluated} == set(range(8))
    assert all(c.train.seed == c.data.data_seed for c in tune + evaluated)
    # budget_recheck's gate failed: every stage from tune_e20 on runs at 20 epochs (the pre-registered response);
    # budget_recheck_e20's failed too: eval, eval_ktype and eval_mpnet run at 40 (the second pre-registered response)
    assert {c.train.min_epochs for c in tune} == {10.0} and {c.train.min_epochs for c in evaluated} == {40.0}
    epochs = {s.name: {c.train.min_epochs for c in cpu.expand(stage=s.name, pending="placeholder")}
              for s in cpu.stages if s.name not in ("budget_check", "tune", "budget_recheck")}
    assert epochs == {"tune_e20": {20.0}, "budget_recheck_e20": {20.0, 40.0}, "eval": {40.0}, "eval_ktype": {40.0},
                      "tune_family": {20.0}, "budget_recheck_family": {20.0, 40.0}, "eval_family": {20.0},
                      "eval_mpnet": {40.0}}
    gates = {s.name: s.check["gate"] for s in cpu.stages if (s.check or {}).get("gate")}
    assert gates == {"budget_recheck_family": ["eval_family"]}   # the family's gate stands (its own 20 vs 40)
    # amendment 2026-12-07: `last` joins the family's stages; its tuning and check cells are tune_e20's and
    # budget_recheck_e20's (the same run ids, run once), so only eval_family's 16 `last` cells are new
    ids = {s.name: {c.run_id for c in cpu.expand(stage=s.name, pending="placeholder") if c.model.head.name == "last"}
           for s in cpu.stages}
    assert ids["tune_family"] == ids["tune_e20"] and ids["budget_recheck_family"] == ids["budget_recheck_e20"]
    family_last = cpu.expand(stage="eval_family", pending="placeholder")
    family_last = [c for c in family_last if c.model.head.name == "last"]
    assert len(family_last) == 16 and {c.train.min_epochs for c in family_last} == {20.0}
    assert not {c.run_id for c in family_last} & ids["eval"]       # eval's `last` runs at 40 epochs: new cells
    assert {c.model.head.name for c in evaluated} == {"last", "deeper", "deeper_copy", "concat", "dwatt"}
    assert {(c.train.step_rule, c.train.eval_schedule, c.data.subset_version) for c in evaluated} == {("epochs", "linear", 2)}
    frozen = load_study(REPO / "experiments" / "frozen_study.yaml")
    checked = ("budget_check", "tune", "budget_check_mpnet", "tune_mpnet")   # the selected stages: counts only
    by_stage = {s.name: frozen.expand(stage=s.name) for s in frozen.stages if s.name in checked}
    assert {name: len(cells) for name, cells in by_stage.items()} == {  # the header of experiments/frozen_study.yaml
        "budget_check": 12, "tune": 216, "budget_check_mpnet": 12, "tune_mpnet": 216}
    # the budget checks' 10-epoch cells are tune cells (the same run ids, run once)
    assert len({c.run_id for cells in by_stage.values() for c in cells}) == 2 * (12 + 216 - 4)
    for stage in ("tune", "tune_mpnet"):   # the head-lr grid reaches 3e-2 (frozen `last` is under-trained at 1e-3)
        cells = by_stage[stage]
        assert sorted({c.train.head_lr for c in cells}) == [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2]
        assert {c.model.finetune for c in cells} == {"frozen"} and {c.data.data_seed for c in cells} == {100, 101}
    smoke = load_study(REPO / "experiments" / "smoke.yaml").expand(pending="placeholder")
    assert {(c.train.steps, c.train.eval_points, c.data.dev_subsample, c.model.backbone) for c in smoke} == {
        (30, 3, 200, "minilm-l6")}
    paper = load_study(REPO / "experiments" / "paper.yaml").expand(pending="placeholder")
    assert {c.train.mixed_precision for c in paper} == {"no"}   # fp32: bf16 trained slower on an H100 (its header)
    assert {c.train.min_epochs for c in paper if c.data.sampler == "full"} == {3.0}
    pilot = load_study(REPO / "experiments" / "cpu_pilot.yaml").expand()   # v1, superseded: settings pinned
    assert {(c.train.step_rule, c.train.steps, c.train.seed, c.data.subset_version) for c in pilot} == {("fixed", 200, 0, 1)}


def heads_read_by_tests(raw: dict) -> set[str]:
    """The heads a study's pre-registered tests and claims read."""
    read = {t[k] for t in raw["hypotheses"]["tests"] for k in ("a", "b")}
    for item in raw["claims"]["items"]:
        read |= set(item.get("methods", [])) | ({item["baseline"]} if "baseline" in item else set())
    return read


@pytest.mark.parametrize("name, stages, heads, later", [
    ("cpu_study", ("eval", "eval_ktype"), ["deeper", "deeper_copy", "concat", "dwatt", "last"], {"last"}),
    ("frozen_study", ("eval", "eval_ktype", "eval_mpnet", "eval_ktype_mpnet"),
     ["last", "deeper", "deeper_copy", "concat", "dwatt", "scalarmix", "lstm", "attnres", "attnres_block"],
     {"lstm", "attnres", "attnres_block"}),
])
def test_seed_stages_run_every_tested_head_across_all_seeds_first(name, stages, heads, later):
    """The seed stages' grids are two sub-grids for execution order only (each YAML's "Cell order"): every head the
    pre-registered tests read, for every seed, before heads that no test reads (cpu_study: `last`; frozen_study: the
    costly sequence heads, while its cheap `last` and `scalarmix` go first). The cells, run ids included, are those
    of one grid over all the heads (as the stages were written before the split); seed-major within each part."""
    loaded = load_study(REPO / "experiments" / f"{name}.yaml")
    raw = yaml.safe_load((REPO / "experiments" / f"{name}.yaml").read_text())
    single = copy.deepcopy(raw)
    for item in single["stages"]:
        if item["name"] in stages:
            parts = item.pop("grids")
            assert [set(p["grid"]) for p in parts] == [{"data.data_seed", "data.size", "model.head.name"}] * 2
            assert parts[0]["grid"]["data.data_seed"] == parts[1]["grid"]["data.data_seed"]
            assert parts[0]["grid"]["data.size"] == parts[1]["grid"]["data.size"]
            item["grid"] = {**parts[0]["grid"], "model.head.name": heads}
    single = StudyConfig.from_dict(single, source="single.yaml")
    assert heads_read_by_tests(raw) == {"dwatt", "concat", "deeper", "deeper_copy"}
    assert not heads_read_by_tests(raw) & later
    for stage in stages:
        cells = loaded.expand(stage=stage, pending="placeholder")
        assert sorted(c.run_id for c in cells) == sorted(c.run_id for c in single.expand(stage=stage,
                                                                                         pending="placeholder"))
        keys = [(c.data.data_seed, c.data.size, c.model.head.name) for c in cells]
        seeds = sorted({k[0] for k in keys})
        sizes = sorted({k[1] for k in keys})
        assert len(seeds) == raw["hypotheses"]["planned_pairs"]
        assert sorted(keys) == sorted((s, n, h) for s in seeds for n in sizes for h in heads)   # the full product
        first_later = next(i for i, k in enumerate(keys) if k[2] in later)
        assert all(k[2] in later for k in keys[first_later:]) and all(k[2] not in later for k in keys[:first_later])
        for part in (keys[:first_later], keys[first_later:]):   # seed-major, then size, then the YAML's head order
            assert part == sorted(part, key=lambda k: (k[0], k[1], heads.index(k[2])))


def test_cartesian_product_order_and_dedup():
    raw = {**BASE, "grid": {"model.head.name": ["last", "dwatt"], "data.size": [20, 50, 20]}}
    cells = study(raw).expand()
    assert [(c.model.head.name, c.data.size) for c in cells] == [
        ("last", 20), ("last", 50), ("dwatt", 20), ("dwatt", 50)]  # last axis fastest, duplicate 20 dropped
    assert all(c.train.steps == 7 and c.study == "t" for c in cells)


def test_deterministic_and_run_ids_stable():
    raw = {**BASE, "grid": {"model.head.name": ["last", "concat"], "data.data_seed": [0, 1]}}
    first = [c.run_id for c in study(raw).expand()]
    second = [c.run_id for c in study(yaml.safe_load(yaml.safe_dump(raw, sort_keys=False))).expand()]
    assert first == second and len(set(first)) == 4
    # run ids do not depend on where results go
    moved = [c.run_id for c in study(raw, overrides=["results_dir=/elsewhere"]).expand()]
    assert moved == first
    # ... but do depend on what is computed
    other = [c.run_id for c in study(raw, overrides=["train.steps=8"]).expand()]
    assert not set(other) & set(first)


def test_sub_grids_union_include_exclude():
    raw = {
        **BASE,
        "grid": {"model.head.name": ["last", "dwatt"], "data.size": [50, 100]},
        "include": [{"model.head.name": "concat", "data.size": 50}],
        "grids": [
            {"label": "mpnet", "base": {"model.backbone": "mpnet-base"},
             "grid": {"model.head.name": ["last"], "data.size": [100]}},
            {"base": {"data": {"sampler": "ktype"}}, "grid": {"data.size": [5, 10]},
             "exclude": [{"data.size": 10}]},
            {"grid": {"model.head.name": ["last"], "data.size": [50]}},  # duplicate of a first-grid cell
        ],
        "exclude": [{"model.head.name": "dwatt", "data.size": 100}],
    }
    cells = study(raw).expand()
    got = [(c.model.backbone, c.model.head.name, c.data.sampler, c.data.size) for c in cells]
    assert got == [
        ("minilm-l6", "last", "sentences", 50), ("minilm-l6", "last", "sentences", 100),
        ("minilm-l6", "dwatt", "sentences", 50), ("minilm-l6", "concat", "sentences", 50),
        ("mpnet-base", "last", "sentences", 100), ("minilm-l6", "last", "ktype", 5),
    ]


def test_override_pins_a_grid_axis():
    raw = {**BASE, "grid": {"model.head.name": ["last", "dwatt"], "data.size": [20, 50]}}
    cells = study(raw, overrides=["model.head.name=dwatt"]).expand()
    assert [(c.model.head.name, c.data.size) for c in cells] == [("dwatt", 20), ("dwatt", 50)]


def test_launcher_block_typed():
    raw = {**BASE, "grid": {"data.size": [20]},
           "launcher": {"partition": "gpu", "gpus_per_task": 1, "mem_gb": 16, "cells_per_task": 3}}
    launcher = study(raw).launcher
    assert (launcher.partition, launcher.gpus_per_task, launcher.mem_gb, launcher.cells_per_task) == ("gpu", 1, 16.0, 3)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ({**BASE, "grid": {"train.stepz": [1]}}, "unknown config key train.stepz"),
        ({**BASE, "base": {"train": {"stepz": 1}}, "grid": {"data.size": [1]}}, "unknown config key train.stepz"),
        ({**BASE, "grid": {"train.steps": ["many"]}}, "train.steps: expected int, got 'many'"),
        ({**BASE, "grid": {"train.deterministic": [1]}}, "train.deterministic: expected true/false"),
        ({**BASE, "grid": {"model.head.name": ["dwat"]}}, "unknown method 'dwat' (did you mean dwatt?)"),
        ({**BASE, "grid": {"data.sampler": ["kshot"]}}, "unknown sampler 'kshot'"),
        ({**BASE, "grid": {"model.backbone": ["minilm-l12"]}}, "unknown backbone alias 'minilm-l12'"),
        ({**BASE, "grid": {"model.backbone": ["/no/such/model"]}}, "local backbone path /no/such/model does not exist"),
        ({**BASE}, "empty study"),
        ({**BASE, "grid": {}}, "grid: empty grid"),
        ({**BASE, "grid": {"data.size": []}}, "grid.data.size: empty list of values"),
        ({**BASE, "grid": {"data.size": 20}}, "grid.data.size: expected a list of values"),
        ({**BASE, "grid": {"data.size": [20]}, "exclude": [{"data.size": 20}]}, "every cell is excluded"),
        ({**BASE, "grids": [{"base": {"model.backbone": "mpnet-base"}}]}, "grids[0]: empty grid"),
        ({**BASE, "grids": [{"base": {"model.backbon": "x"}, "grid": {"data.size": [1]}}]},
         "unknown config key model.backbon"),
        ({**BASE, "grid": {"data.size": [20]}, "exclude": [{"data.sizes": 20}]}, "exclude: unknown config key data.sizes"),
        ({**BASE, "grid": {"data.size": [20]}, "launcher": {"gpus": 1}}, "unknown config key launcher.gpus"),
        ({**BASE, "grid": {"data.size": [20]}, "launcher": {"time_min": "1h"}}, "launcher.time_min: expected int"),
        ({**BASE, "grid": {"data.size": [20]}, "extra": 1}, "unknown study key extra"),
        ({"base": {}, "grid": {"data.size": [20]}}, "study: expected a name"),
        ({**BASE, "study": "a/b", "grid": {"data.size": [20]}}, "study: expected a name"),
    ],
)
def test_bad_configs_fail_with_one_clear_line(raw, expected):
    with pytest.raises(ConfigError) as info:
        study(raw)
    message = str(info.value)
    assert expected in message, message
    assert "\n" not in message and message.startswith("test.yaml")


def test_bad_override_names_the_override():
    with pytest.raises(ConfigError, match=r"override \{train.stepz=3\}: unknown config key train.stepz"):
        study({**BASE, "grid": {"data.size": [20]}}, overrides=["train.stepz=3"])


def test_yaml_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("study: x\ngrid: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_study(bad)
    with pytest.raises(ConfigError, match="cannot read study file"):
        load_study(tmp_path / "missing.yaml")


def test_expand_function_equals_method():
    s = study({**BASE, "grid": {"data.size": [20, 50]}})
    assert [c.run_id for c in expand(s)] == [c.run_id for c in s.expand()]


def test_yaml11_words_in_study_files_and_overrides(tmp_path):
    # `no` in a study file or a sweep override is the text "no" for a str field (was the boolean False)
    path = tmp_path / "s.yaml"
    path.write_text("study: s\nbase:\n  train: {mixed_precision: no, deterministic: yes}\n"
                    "grid:\n  train.mixed_precision: [no, bf16]\n")
    cells = load_study(path).expand()
    assert [c.train.mixed_precision for c in cells] == ["no", "bf16"]
    assert all(c.train.deterministic is True for c in cells)
    assert {c.train.mixed_precision for c in load_study(path, ["train.mixed_precision=no"]).expand()} == {"no"}
    with pytest.raises(ConfigError, match="train.mixed_precision: fp16 is not supported"):
        load_study(path, ["train.mixed_precision=fp16"])


def test_validation_is_the_shared_one():
    from paper_repro import validate
    from paper_repro.sweep import grid
    from paper_repro.train import cell

    assert grid.validate_cell is validate.validate_cell and grid.CHOICES is validate.CHOICES
    from paper_repro.config import CellConfig

    with pytest.raises(ConfigError, match="did you mean minilm-l6"):
        cell.check_choices(CellConfig.from_dict({"model": {"backbone": "minilm_l6"}}))
