"""`validate_cell`: values a run would only trip over after loading data and the encoder are one-line errors first."""
from __future__ import annotations

import pytest

from paper_repro.config import CellConfig, ConfigError, apply_overrides
from paper_repro.validate import validate_cell


def check(*overrides: str) -> None:
    validate_cell(apply_overrides(CellConfig(), list(overrides)))


@pytest.mark.parametrize("head, option, message", [
    ("dwatt", "gamma=abc", "gamma: expected a number, got 'abc'"),
    ("dwatt", "gamma=-1", "gamma: expected a number > 0, got -1"),
    ("dwatt", "gamma=0", "gamma: expected a number > 0, got 0"),
    ("dwatt", "d_pos=0", "d_pos: expected a number >= 1, got 0"),
    ("dwatt", "scale=off", "scale: expected true/false"),
    ("deeper", "init=copy", "init: head deeper takes one of random, copy_last, got 'copy' (did you mean copy_last?)"),
    ("deeper", "layers=0", "layers: expected a number >= 1, got 0"),
    ("concat", "projection=lin", "projection: head concat takes one of mlp, linear, got 'lin'"),
    ("attnres_block", "block_size=0", "block_size: expected a number >= 1, got 0"),
    ("scalarmix", "layer_start=-1", "layer_start: expected a number >= 0, got -1"),
    ("lstm", "hidden=2.5", "hidden: expected an integer, got 2.5"),
    ("deeper", "layers=2.0", "layers: expected an integer, got 2.0"),
])
def test_head_option_values_are_checked_before_a_run(head, option, message):
    with pytest.raises(ConfigError, match=f"^model.head.options.{message}".replace("(", r"\(").replace(")", r"\)")
                       .replace("?", r"\?")):
        check(f"model.head.name={head}", f"model.head.options.{option}")


@pytest.mark.parametrize("head, options", [
    ("dwatt", ["gamma=0.25", "d_pos=8", "scale=false"]), ("deeper", ["layers=2", "init=copy_last"]),
    ("concat", ["projection=linear"]), ("scalarmix", ["layer_start=0"]), ("lstm", ["hidden=64"]),
    ("attnres_block", ["heads=4", "block_size=2"]),
])
def test_valid_head_options_pass(head, options):
    check(f"model.head.name={head}", *[f"model.head.options.{o}" for o in options])


@pytest.mark.parametrize("override, message", [
    ("train.head_lr=-1", "train.head_lr: expected a number > 0"), ("train.head_lr=0", "train.head_lr: expected a number > 0"),
    ("train.backbone_lr=-5e-5", "train.backbone_lr: expected a number >= 0"),
    ("data.dev_subsample=-1", "data.dev_subsample: expected a number >= 0"),
])
def test_negative_rates_and_counts_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        check(override)
