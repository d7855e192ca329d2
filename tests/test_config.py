"""Tests for paper_repro.config: YAML round trip, typed overrides, unknown keys, run ids."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from paper_repro.config import CellConfig, ConfigError, apply_overrides, parse_override


def override(*items: str) -> CellConfig:
    return apply_overrides(CellConfig(), list(items))


def test_yaml_round_trip(tmp_path):
    config = override(
        "train.steps=123", "train.head_lr=0.0025", "model.head.name=dwatt", "model.head.options.d_pos=16",
        "data.data_dir=/somewhere", "data.sampler=ktype", "train.deterministic=true",
    )
    path = tmp_path / "cell.yaml"
    path.write_text(config.to_yaml())
    loaded = CellConfig.from_yaml(path)
    assert loaded == config
    assert loaded.run_id == config.run_id
    # overrides on top of a file
    assert CellConfig.from_yaml(path, ["train.seed=7"]).train.seed == 7


def test_from_yaml_partial_and_empty(tmp_path):
    path = tmp_path / "partial.yaml"
    path.write_text("train:\n  steps: 50\nmodel:\n  head:\n    name: concat\n")
    config = CellConfig.from_yaml(path)
    assert (config.train.steps, config.model.head.name, config.train.batch_size) == (50, "concat", 8)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert CellConfig.from_yaml(empty) == CellConfig()
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        CellConfig.from_yaml(bad)


def test_overrides_are_typed():
    config = override("train.steps=100", "train.head_lr=1", "model.dropout=0.2", "model.head.fuse_embeddings=true")
    assert config.train.steps == 100 and isinstance(config.train.steps, int)
    assert config.train.head_lr == 1.0 and isinstance(config.train.head_lr, float)  # int widens to float
    assert config.model.dropout == 0.2
    assert config.model.head.fuse_embeddings is True
    assert override("data.data_dir=null").data.data_dir is None
    assert override("data.data_dir=/x").data.data_dir == "/x"


@pytest.mark.parametrize("text, expected", [("1e-3", 1e-3), ("5e-05", 5e-5), ("1.0e5", 1e5), ("-2E+3", -2000.0), ("1e20", 1e20)])
def test_exponent_floats(text, expected):
    # PyYAML reads these as strings (YAML 1.1); a float field must still take them
    assert override(f"train.backbone_lr={text}").train.backbone_lr == expected


@pytest.mark.parametrize(
    "item, key",
    [
        ("train.steps=abc", "train.steps"),
        ("train.steps=1.5", "train.steps"),
        ("train.steps=true", "train.steps"),           # bool is not an int
        ("train.head_lr=abc", "train.head_lr"),
        ("train.head_lr=1e", "train.head_lr"),
        ("train.deterministic=1", "train.deterministic"),  # int is not a bool
        ("train.deterministic=maybe", "train.deterministic"),
        ("model.backbone=[1, 2]", "model.backbone"),
        ("model.head.options=3", "model.head.options"),
        ("model.head=dwatt", "model.head"),             # a section needs a mapping
    ],
)
def test_wrong_types_are_errors(item, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        override(item)


@pytest.mark.parametrize("item, key", [("train.stepz=3", "train.stepz"), ("nope.x=1", "nope.x"), ("model.head.width=2", "model.head.width"), ("bogus=1", "bogus")])
def test_unknown_key_is_named(item, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        override(item)


def test_unknown_key_in_yaml(tmp_path):
    path = tmp_path / "cell.yaml"
    path.write_text("train:\n  steps: 5\n  lr: 0.1\n")
    with pytest.raises(ConfigError, match=r"train\.lr"):
        CellConfig.from_yaml(path)


def test_override_without_equals():
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("train.steps")


def test_nested_head_options():
    config = override("model.head.name=dwatt", "model.head.options.d_pos=16", "model.head.options.init=zeros")
    assert config.model.head.options == {"d_pos": 16, "init": "zeros"}
    assert override("model.head.options={d_pos: 8}").model.head.options == {"d_pos": 8}
    # a mapping of overrides works the same
    assert apply_overrides(CellConfig(), {"model.head.options.d_pos": 16}).model.head.options == {"d_pos": 16}
    # the default options dict is not shared between configs
    assert CellConfig().model.head.options == {}


def test_run_id_stable_and_semantic():
    base = CellConfig()
    assert base.run_id == CellConfig().run_id == override().run_id
    assert base.run_id.startswith("last-sentences100-d0-s0-")
    # where the result goes is not part of the identity
    moved = override("results_dir=/elsewhere", "study=other", "data.data_dir=/data", "data.subset_dir=/subsets")
    assert moved.run_id == base.run_id and moved.config_hash() == base.config_hash()
    # what is computed is
    for item in ["train.head_lr=0.002", "train.steps=201", "model.head.options.d_pos=16", "model.pooling=mean",
                 "data.dev_subsample=500", "train.deterministic=true"]:
        assert override(item).run_id != base.run_id, item
    assert override("train.seed=3").run_id.startswith("last-sentences100-d0-s3-")
    assert override("model.head.name=dwatt", "data.size=50", "data.data_seed=2").run_id.startswith("dwatt-sentences50-d2-s0-")


def test_identity_excludes_location_keys():
    identity = CellConfig().identity()
    assert "train.steps" in identity and "model.head.options" in identity
    for key in CellConfig.NON_IDENTITY_KEYS:
        assert key not in identity


def test_shipped_cell_config_round_trips():
    path = Path(__file__).resolve().parents[1] / "experiments" / "cell.yaml"
    config = CellConfig.from_yaml(path)
    assert config.model.head.name == "dwatt" and config.train.head_lr == 1e-3
    assert CellConfig.from_dict(yaml.safe_load(config.to_yaml())).run_id == config.run_id


def test_step_rule_resolves_per_training_set_size():
    from paper_repro.config import TrainConfig, resolve_steps

    rule = TrainConfig()  # epochs rule: max(200, ceil(5 epochs)), 20 warmup steps
    assert resolve_steps(rule, 50) == (200, 20)            # 7 batches/epoch: the floor holds (28 epochs)
    assert resolve_steps(rule, 500) == (315, 20)           # 63 batches x 5
    assert resolve_steps(rule, 1000) == (625, 20)
    assert resolve_steps(TrainConfig(max_steps=400), 1000) == (400, 20)
    assert resolve_steps(TrainConfig(step_rule="fixed", steps=30, warmup_steps=5), 1000) == (30, 5)
    assert resolve_steps(TrainConfig(warmup_steps=0, warmup_ratio=0.1), 1000) == (625, 62)
    with pytest.raises(ConfigError, match="warmup"):
        resolve_steps(TrainConfig(step_rule="fixed", steps=10), 100)
    with pytest.raises(ConfigError, match="step_rule"):
        resolve_steps(TrainConfig(step_rule="nope"), 100)


# ------------------------------------------------------------------ YAML 1.1 booleans (issue "what a user hits first")
# pinned before the change: reading `no`/`yes` as text must not move the id of any existing config
DEFAULT_HASH = "5da6f7773ab0e61baa102787fa889f153d215c6adb6631b2798802d076104b18"
CELL_YAML_HASH = "e678e55f4e83918c2e8412863029762b2f34f9afde27e3b2df894b11b662346f"


def test_to_dict_equals_dataclasses_asdict():
    """`to_dict` skips asdict's deep copy of immutable leaves; its output (and so every run_id) must not change:
    checked on head options and on every cell of the CPU study."""
    import dataclasses

    from paper_repro.sweep.grid import load_study

    root = Path(__file__).resolve().parents[1]
    cells = [override("model.head.name=dwatt", "model.head.options.d_pos=16", "model.head.options.init=zeros")]
    cells += load_study(root / "experiments" / "cpu_study.yaml").expand(pending="placeholder")
    assert len(cells) > 400
    for cell in cells:
        expected = dataclasses.asdict(cell)
        assert cell.to_dict() == expected and repr(cell.to_dict()) == repr(expected), cell.run_id


def test_config_hashes_unchanged():
    assert CellConfig().config_hash() == DEFAULT_HASH
    assert CellConfig().run_id == "last-sentences100-d0-s0-5da6f7773ab0"
    config = CellConfig.from_yaml(Path(__file__).resolve().parents[1] / "experiments" / "cell.yaml")
    assert config.config_hash() == CELL_YAML_HASH and config.run_id == "dwatt-sentences100-d0-s0-e678e55f4e83"


@pytest.mark.parametrize("text", ["no", "No", "NO", "yes", "on", "off", "Off"])
def test_str_field_takes_the_text_typed(text):
    # `paper-repro cell train.mixed_precision=no` failed with "expected str, got False"
    assert parse_override(f"train.mixed_precision={text}") == ("train.mixed_precision", text)
    assert override(f"train.mixed_precision={text}").train.mixed_precision == text


def test_str_field_keeps_numbers_and_dates_as_typed():
    config = override("study=2024", "model.backbone=1.50", "model.head.name=007", "stage=2024-01-01")
    assert (config.study, config.model.backbone, config.model.head.name, config.stage) == ("2024", "1.50", "007", "2024-01-01")
    assert override("data.data_dir=off").data.data_dir == "off"          # str | None: text too
    assert override("data.data_dir=null").data.data_dir is None          # ... and null is still None
    assert override("data.data_dir=~").data.data_dir is None


def test_number_and_bool_fields_still_parse():
    config = override("train.steps=100", "train.head_lr=1e-3", "train.min_epochs=2", "model.head.fuse_embeddings=true",
                      "train.deterministic=False")
    assert (config.train.steps, config.train.head_lr, config.train.min_epochs) == (100, 1e-3, 2.0)
    assert config.model.head.fuse_embeddings is True and config.train.deterministic is False
    # a bool field still takes YAML 1.1's words (files written for the old loader keep their meaning)
    assert override("train.deterministic=yes").train.deterministic is True
    assert override("train.deterministic=off").train.deterministic is False
    with pytest.raises(ConfigError, match="train.deterministic: expected true/false, got 'maybe'"):
        override("train.deterministic=maybe")
    with pytest.raises(ConfigError, match="train.steps: expected int"):
        override("train.steps=no")


def test_yaml_file_no_is_text(tmp_path):
    path = tmp_path / "cell.yaml"
    path.write_text("train:\n  mixed_precision: no\n  deterministic: yes\nmodel:\n  head:\n    fuse_embeddings: on\n")
    config = CellConfig.from_yaml(path)
    assert config.train.mixed_precision == "no"
    assert config.train.deterministic is True and config.model.head.fuse_embeddings is True
    assert config.run_id == override("train.deterministic=true", "model.head.fuse_embeddings=true").run_id


def test_config_loader_leaves_safe_loader_alone():
    from paper_repro.config import load_yaml

    assert load_yaml("a: no\nb: true\nc: FALSE\nd: 1e-3\ne: 3\n") == {"a": "no", "b": True, "c": False, "d": "1e-3", "e": 3}
    assert yaml.safe_load("a: no") == {"a": False}  # the global SafeLoader is not changed


def test_override_with_invalid_yaml_is_a_config_error():
    with pytest.raises(ConfigError, match=r"override 'model.head.options=\{d_pos: 8': invalid YAML value"):
        parse_override("model.head.options={d_pos: 8")


@pytest.mark.parametrize("content, message", [
    (None, "cannot read config file"),
    ("train: [1, 2\n", "invalid YAML"),
    ("train:\n  steps: 5\n\tbatch_size: 2\n", "invalid YAML"),
])
def test_unreadable_config_file_is_one_config_error(tmp_path, content, message):
    path = tmp_path / "cell.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message) as error:
        CellConfig.from_yaml(path)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_commented_yaml_round_trips(tmp_path):
    from paper_repro.config import commented_yaml, config_reference, flatten

    config = override("train.mixed_precision=bf16", "model.head.name=dwatt", "model.head.options.d_pos=16",
                      "data.data_dir=/x y")
    text = commented_yaml(config)
    assert "  mixed_precision: bf16  # " in text and "pooling: first  # subword -> word pooling" in text
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert CellConfig.from_yaml(path) == config
    path.write_text(commented_yaml())
    assert CellConfig.from_yaml(path) == CellConfig()
    rows = config_reference()
    assert [row.split("=", 1)[0] for row in rows] == list(flatten(CellConfig().to_dict()))
    assert "train.mixed_precision=no  # \"no\" | \"bf16\" (GPU autocast through Accelerate)" in rows


# ------------------------------------------------------------------ keys omitted from the hash at their default
# (issue "A frozen-backbone track"): pinned before `model.finetune` was added. Every cell of the committed study
# files (selected stages built with the base head lr) keeps its run id.
REPO = Path(__file__).resolve().parents[1]
PINNED_STUDY_IDS = {  # study file: (cells, sha256 of the run ids joined by newlines, a few of them)
    # computed by the code before `model.finetune` (commit 15c66bd) on the study file with the 10-epoch rule: 500
    # cells, sha256 66ec9452...; its later stages changed when budget_recheck's gate failed (min_epochs 20 from
    # tune_e20 on), so the pin keeps the stages that ran under it: budget_check and tune, 68 of those 500 run ids
    # (that subset's digest taken from the same expansion, which still gave 66ec9452... at commit 123b21a)
    "cpu_study.yaml": (68, "82ef8c280421224ac667a85f919510f5d61eb0ca7690d8c9c7dd467157f43d95",
                       ["last-sentences1000-d100-s100-e33042beb65c", "last-sentences1000-d100-s100-a8be3e83f82c",
                        "dwatt-sentences100-d100-s100-719e4bf7591c", "concat-sentences1000-d100-s100-8f30295b47d6"]),
    "smoke.yaml": (12, "d9402b395941e98f0397dbf7874624c911507ea4f0646a2a34248c3f39ff8ee4",
                   ["last-sentences20-d100-s100-853b411e4523", "dwatt-sentences20-d100-s100-240c2477601e",
                    "last-sentences50-d0-s0-f526b67683e9", "dwatt-sentences50-d1-s1-4045ddda1bf9"]),
}


STAGES_ADDED_AFTER_PIN = {"budget_recheck", "budget_recheck_family"}
PINNED_STAGES = {"cpu_study.yaml": {"budget_check", "tune"}}   # a study file whose other stages changed since


@pytest.mark.parametrize("name", sorted(PINNED_STUDY_IDS))
def test_study_run_ids_unchanged(name):
    import hashlib

    from paper_repro.sweep.grid import expand, load_study

    count, digest, some = PINNED_STUDY_IDS[name]
    cells = expand(load_study(REPO / "experiments" / name), pending="placeholder")
    # stages added to the study since the pin bring new cells only (the gating budget re-checks)
    cells = [cell for cell in cells if cell.stage not in STAGES_ADDED_AFTER_PIN
             and cell.stage in PINNED_STAGES.get(name, {cell.stage})]
    ids = [cell.run_id for cell in cells]
    assert len(ids) == count
    assert set(some) <= set(ids)
    assert hashlib.sha256("\n".join(ids).encode()).hexdigest() == digest
    assert all(cell.model.finetune == "full" for cell in cells)


@pytest.mark.parametrize("study", ["cpu_study", "frozen_study"])
def test_committed_study_cells_rebuild_their_run_ids(study):
    """Every committed cell of the running studies: the config in its manifest gives its run id (the sweep finds it
    done), whatever changed in the code since it ran."""
    import json

    from paper_repro.config import CellConfig

    manifests = sorted((REPO / "results" / study / "cells").glob("*.manifest.json"))
    if not manifests:
        pytest.skip(f"no committed {study} cells")
    for path in manifests:
        manifest = json.loads(path.read_text())
        assert CellConfig.from_dict(manifest["config"]).run_id == manifest["run_id"] == path.name.split(".")[0]


def test_committed_cells_keep_their_run_ids():
    """The committed smoke cells' manifests (written before `model.finetune`) rebuild their run ids."""
    import json

    manifests = sorted((REPO / "results" / "smoke" / "cells").glob("*.manifest.json"))
    if not manifests:
        pytest.skip("no committed smoke cells")
    for path in manifests:
        manifest = json.loads(path.read_text())
        assert "finetune" not in manifest["config"]["model"]
        assert CellConfig.from_dict(manifest["config"]).run_id == manifest["run_id"], path.name


def test_omitted_at_default_keys():
    assert "model.finetune" in CellConfig.OMITTED_AT_DEFAULT
    base = CellConfig()
    assert base.model.finetune == "full" and "model.finetune" not in base.identity()
    frozen = override("model.finetune=frozen")
    assert frozen.identity()["model.finetune"] == "frozen"
    assert frozen.run_id != base.run_id and frozen.run_id.startswith("last-sentences100-d0-s0-")
    assert override("model.finetune=full").run_id == base.run_id        # the default, given explicitly
    # every omitted key is a real key with a default, and never a non-identity key
    from paper_repro.config import default_values, field_annotation

    for key in CellConfig.OMITTED_AT_DEFAULT:
        assert field_annotation(key) is not None and key in default_values()
        assert key not in CellConfig.NON_IDENTITY_KEYS


def test_finetune_choices():
    from paper_repro.validate import CHOICES, validate_cell

    assert CHOICES["model.finetune"] == ("full", "frozen")
    validate_cell(override("model.finetune=frozen"))
    with pytest.raises(ConfigError, match=r"model.finetune: unknown value 'freeze' \(did you mean frozen\?\)"):
        validate_cell(override("model.finetune=freeze"))


# ------------------------------------------------------------------ speed switches (issue "Cells at the hardware's pace")
# pinned with the code before the switches (commit aa0d964, whose study file has the 10-epoch rule): the run ids
# of cpu_study's `tune` stage (60 cells), sorted, joined by "\n"
TUNE_IDS_SHA256 = "380d0393a54bd7c2f315819129ce3a56d99667580c2785090ef5a992d9e187c8"
SPEED_SWITCHES = {"train.length_bucket_tokens": (0, 8), "train.freeze_word_embeddings": (False, True),
                  "train.eval_precision": ("fp32", "bf16"), "train.compile": ("none", "default"),
                  "train.tf32": (False, True), "train.head_words_only": (False, True)}


def test_tune_stage_run_ids_unchanged_by_the_speed_switches():
    import hashlib

    from paper_repro.sweep.grid import load_study

    cells = load_study(REPO / "experiments" / "cpu_study.yaml").expand("tune")
    ids = sorted(cell.run_id for cell in cells)
    assert len(ids) == 60
    assert hashlib.sha256("\n".join(ids).encode()).hexdigest() == TUNE_IDS_SHA256
    assert "concat-sentences100-d100-s100-0648ec0c38ae" in ids


@pytest.mark.parametrize("key", sorted(SPEED_SWITCHES))
def test_speed_switches_enter_the_hash_only_when_set(key):
    default, on = SPEED_SWITCHES[key]
    assert key in CellConfig.OMITTED_AT_DEFAULT
    base = CellConfig()
    assert key not in base.identity()
    assert override(f"{key}={default}".lower()).run_id == base.run_id          # the default, given explicitly
    switched = override(f"{key}={on}".lower())
    assert switched.identity()[key] == on and switched.run_id != base.run_id


def test_speed_switch_values_are_validated():
    from paper_repro.validate import CHOICES, validate_cell

    assert CHOICES["train.eval_precision"] == ("fp32", "bf16")
    validate_cell(override("train.length_bucket_tokens=8", "train.eval_precision=bf16",
                           "train.freeze_word_embeddings=true"))
    with pytest.raises(ConfigError, match="train.eval_precision: unknown value 'fp16'"):
        validate_cell(override("train.eval_precision=fp16"))
    assert CHOICES["train.compile"] == ("none", "default")
    validate_cell(override("train.compile=default", "train.tf32=true", "model.finetune=frozen"))
    with pytest.raises(ConfigError, match=r"train.compile: unknown value 'defualt' \(did you mean default\?\)"):
        validate_cell(override("train.compile=defualt"))
    with pytest.raises(ConfigError, match=r"train.compile: 'max-autotune' is refused: not checked"):
        validate_cell(override("train.compile=max-autotune"))
    with pytest.raises(ConfigError, match=r"train.compile: 'reduce-overhead' is refused: CUDA graphs crashed"):
        validate_cell(override("train.compile=reduce-overhead"))   # measured on an H200 (README "On a GPU")
    with pytest.raises(ConfigError, match="train.length_bucket_tokens"):
        validate_cell(override("train.length_bucket_tokens=-2"))
    for switch in ("train.eval_precision=bf16", "train.freeze_word_embeddings=true"):
        with pytest.raises(ConfigError, match="applies to model.finetune=full only"):
            validate_cell(override("model.finetune=frozen", switch))
