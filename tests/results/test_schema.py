"""Tests for paper_repro.results.schema: cell_table refuses rows that do not fit CELL_SCHEMA (v2), and
upgrade_table converts protocol v1 tables (CELL_SCHEMA_V1) and v2 tables written before the `finetune` column
(CELL_SCHEMA_V2_NO_FINETUNE) or before `f1_by_type` (CELL_SCHEMA_V2_NO_TYPE_MAP) to v2; per-type F1 of any corpus
(`type_columns`, `per_type_long`)."""
from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from conftest import schema_row
from paper_repro.results.schema import (
    CELL_SCHEMA,
    CELL_SCHEMA_V1,
    CELL_SCHEMA_V2_NO_FINETUNE,
    CELL_SCHEMA_V2_NO_TYPE_MAP,
    ENTITY_TYPES,
    TYPE_MAP,
    SchemaError,
    cell_table,
    check_schema,
    per_type_long,
    type_columns,
    upgrade_table,
)

V1_NAMES = [
    "run_id", "study", "backbone", "method", "pooling", "fuse_embeddings", "head_params", "budget_target",
    "sampler", "size", "data_seed", "seed", "backbone_lr", "head_lr", "steps_total", "batch_size",
    "step", "examples_seen", "split", "eval_sentences",
    "f1", "precision", "recall", "f1_default", "f1_PER", "f1_LOC", "f1_ORG", "f1_MISC",
    "train_loss", "wall_clock_s", "eval_s",
    "git_sha", "git_dirty", "config_hash", "subset_sha256", "versions", "device",
]
V2_NAMES = [
    "run_id", "study", "stage", "protocol", "backbone", "method", "finetune", "pooling", "fuse_embeddings", "head_params",
    "budget_target", "sampler", "size", "data_seed", "seed", "backbone_lr", "head_lr", "steps_total",
    "warmup_steps", "batch_size",
    "step", "examples_seen", "split", "eval_sentences",
    "f1", "precision", "recall", "f1_strict", "precision_strict", "recall_strict",
    "f1_PER", "f1_LOC", "f1_ORG", "f1_MISC", "f1_by_type",
    "train_loss", "wall_clock_s", "eval_s",
    "git_sha", "git_dirty", "config_hash", "subset_sha256", "versions", "device",
]


def test_valid_rows():
    table = cell_table([schema_row(), schema_row(split="test", step=20, head_params=np.int64(7), f1=np.float32(0.25))])
    assert table.schema.equals(CELL_SCHEMA) and table.num_rows == 2
    assert table.column("head_params").to_pylist() == [1, 7]
    assert table.column("f1").to_pylist() == [0.5, 0.25]
    assert math.isnan(table.column("f1_MISC")[0].as_py())   # NaN (absent type) is a value, not a null
    assert cell_table([]).num_rows == 0
    check_schema(table, "ok")


def test_per_type_columns_follow_entity_types():
    assert ENTITY_TYPES == ("PER", "LOC", "ORG", "MISC")
    assert {f"f1_{t}" for t in ENTITY_TYPES} <= set(CELL_SCHEMA.names)


def test_column_order_v2_and_v1():
    assert CELL_SCHEMA.names == V2_NAMES
    assert CELL_SCHEMA_V1.names == V1_NAMES
    assert CELL_SCHEMA_V2_NO_TYPE_MAP.names == [name for name in V2_NAMES if name != "f1_by_type"]
    assert CELL_SCHEMA_V2_NO_FINETUNE.names == [name for name in V2_NAMES if name not in ("finetune", "f1_by_type")]
    assert CELL_SCHEMA.field("f1_by_type").type == TYPE_MAP == pa.map_(pa.string(), pa.float64())
    assert CELL_SCHEMA.field("finetune").type == pa.string()
    assert "f1_default" not in CELL_SCHEMA.names
    types = {"stage": pa.string(), "protocol": pa.int64(), "warmup_steps": pa.int64(), "f1_strict": pa.float64()}
    assert all(CELL_SCHEMA.field(name).type == t for name, t in types.items())
    # every column both schemas share has the same type
    assert all(CELL_SCHEMA.field(n).type == CELL_SCHEMA_V1.field(n).type for n in set(V1_NAMES) & set(V2_NAMES))


def test_missing_and_extra_columns():
    row = schema_row()
    del row["f1"]
    with pytest.raises(SchemaError, match=r"missing columns \['f1'\]"):
        cell_table([schema_row(), row])
    with pytest.raises(SchemaError, match=r"row 0: .*unexpected columns \['bogus'\]"):
        cell_table([schema_row(bogus=1)])


@pytest.mark.parametrize(
    "column, value",
    [
        ("run_id", 5), ("step", "abc"), ("step", 1.5), ("step", 2.0), ("step", True), ("f1", "x"), ("f1", True),
        ("git_dirty", 1), ("git_dirty", "yes"), ("run_id", None), ("f1", None), ("head_params", None),
        ("step", 2**70), ("versions", {"torch": "2"}),
    ],
)
def test_wrong_types(column, value):
    with pytest.raises(SchemaError, match=column):
        cell_table([schema_row(**{column: value})])


def test_int_widens_to_float():
    assert cell_table([schema_row(f1=1)]).column("f1").to_pylist() == [1.0]


def test_check_schema():
    table = cell_table([schema_row()])
    with pytest.raises(SchemaError, match=r"columns differ: \['extra'\]"):
        check_schema(table.append_column("extra", pa.array([1])), "t")
    retyped = table.set_column(table.schema.get_field_index("step"), "step", pa.array([1.0]))
    with pytest.raises(SchemaError, match="column types differ"):
        check_schema(retyped, "t")


def v1_row(**values) -> dict:
    """One CELL_SCHEMA_V1 row, every metric distinct so that the v1 -> v2 mapping is visible."""
    defaults = {pa.string(): "x", pa.bool_(): True, pa.int64(): 3, pa.float64(): 0.125}
    row = {field.name: defaults[field.type] for field in CELL_SCHEMA_V1}
    row.update(split="dev", step=10, steps_total=200, f1=0.61, precision=0.62, recall=0.63, f1_default=0.64,
               f1_PER=0.71, f1_LOC=0.72, f1_ORG=0.73, f1_MISC=float("nan"))
    row.update(values)
    return row


def test_upgrade_v2_is_returned_as_is():
    table = cell_table([schema_row(), schema_row(step=20)])
    assert upgrade_table(table, "v2") is table
    assert upgrade_table(CELL_SCHEMA.empty_table(), "v2").num_rows == 0


def test_upgrade_v1_maps_every_column():
    rows = [v1_row(), v1_row(step=20, steps_total=30, f1=0.2, f1_default=0.3), v1_row(steps_total=1000),
            v1_row(steps_total=44, split="test")]
    v1 = pa.Table.from_pylist(rows, schema=CELL_SCHEMA_V1)
    with pytest.raises(SchemaError, match="columns differ"):
        check_schema(v1, "v1")                       # check_schema stays strict: v2 only
    table = upgrade_table(v1, "v1")
    check_schema(table, "upgraded")
    assert table.schema.equals(CELL_SCHEMA) and table.num_rows == 4
    col = lambda name: table.column(name).to_pylist()  # noqa: E731
    assert col("f1") == [0.64, 0.3, 0.64, 0.64]                     # <- v1 f1_default
    assert col("f1_strict") == [0.61, 0.2, 0.61, 0.61]              # <- v1 f1
    assert col("precision_strict") == [0.62] * 4 and col("recall_strict") == [0.63] * 4
    assert all(math.isnan(v) for v in col("precision") + col("recall"))   # v1 had no default-mode P/R
    assert col("f1_PER") == [0.71] * 4 and col("f1_LOC") == [0.72] * 4 and col("f1_ORG") == [0.73] * 4
    assert all(math.isnan(v) for v in col("f1_MISC"))
    assert col("stage") == [""] * 4 and col("protocol") == [1] * 4
    assert col("warmup_steps") == [20, 3, 100, 4]                  # round(0.1 * steps_total)
    assert col("finetune") == ["full"] * 4                         # v1 always fine-tuned the encoder
    shared = [name for name in V1_NAMES if name in V2_NAMES and name not in
              ("f1", "precision", "recall", *[f"f1_{t}" for t in ENTITY_TYPES])]
    for name in shared:                                            # everything else is carried over unchanged
        assert col(name) == v1.column(name).to_pylist(), name
    assert col("split") == ["dev", "dev", "dev", "test"] and col("step") == [10, 20, 10, 10]
    empty = upgrade_table(CELL_SCHEMA_V1.empty_table(), "empty v1")
    assert empty.schema.equals(CELL_SCHEMA) and empty.num_rows == 0


def test_upgrade_v2_without_finetune_fills_full():
    """Cells written under v2 before `model.finetune` existed all fine-tuned the encoder: finetune "full"."""
    v2 = cell_table([schema_row(finetune="frozen"), schema_row(step=20, finetune="frozen")])
    old = v2.drop_columns(["finetune", "f1_by_type"])
    assert old.schema.equals(CELL_SCHEMA_V2_NO_FINETUNE)
    with pytest.raises(SchemaError, match=r"columns differ: \['f1_by_type', 'finetune'\]"):
        check_schema(old, "old")                      # check_schema stays strict: current v2 only
    table = upgrade_table(old, "old v2")
    check_schema(table, "upgraded")
    assert table.column("finetune").to_pylist() == ["full", "full"]
    for name in CELL_SCHEMA_V2_NO_FINETUNE.names:     # every other column carried over unchanged
        assert table.column(name).to_pylist() == old.column(name).to_pylist() or name == "f1_MISC", name
    empty = upgrade_table(CELL_SCHEMA_V2_NO_FINETUNE.empty_table(), "empty")
    assert empty.schema.equals(CELL_SCHEMA) and empty.num_rows == 0


def test_upgrade_refuses_other_schemas_naming_the_source():
    v1 = pa.Table.from_pylist([v1_row()], schema=CELL_SCHEMA_V1)
    with pytest.raises(SchemaError, match=r"^cells/a.parquet: .*CELL_SCHEMA_V1: \['extra'\]"):
        upgrade_table(v1.append_column("extra", pa.array([1])), "cells/a.parquet")
    with pytest.raises(SchemaError, match=r"^cells/b.parquet: .*from CELL_SCHEMA: \['f1_strict'\]"):
        upgrade_table(cell_table([schema_row()]).drop_columns(["f1_strict"]), "cells/b.parquet")
    retyped = v1.set_column(v1.schema.get_field_index("step"), "step", pa.array([1.0]))
    with pytest.raises(SchemaError, match=r"^cells/c.parquet: .*column types differ from CELL_SCHEMA_V1"):
        upgrade_table(retyped, "cells/c.parquet")


# ---------------------------------------------------------------------------- per-type F1 of any corpus
def test_type_columns_for_conll03_and_other_corpora():
    conll = type_columns({"PER": 0.9, "LOC": 0.8, "ORG": 0.7, "MISC": float("nan")})
    assert [conll[f"f1_{t}"] for t in ("PER", "LOC", "ORG")] == [0.9, 0.8, 0.7] and math.isnan(conll["f1_MISC"])
    assert list(conll["f1_by_type"]) == ["PER", "LOC", "ORG", "MISC"]
    other = type_columns({"LOC": 0.5, "DRUG": 0.25, "Gene": 0.75, "loc": 0.0})
    assert other["f1_LOC"] == 0.5                                       # a CoNLL type the corpus has
    assert other["f1_PER"] is None and other["f1_ORG"] is None and other["f1_MISC"] is None   # types it lacks
    assert other["f1_by_type"] == {"LOC": 0.5, "DRUG": 0.25, "Gene": 0.75, "loc": 0.0}


def test_rows_of_another_corpus_keep_every_type_and_null_fixed_columns():
    by_type = {"DRUG": 0.25, "Gene": float("nan"), "loc": 1.0}
    table = cell_table([schema_row(**type_columns(by_type)), schema_row(step=20, **type_columns({"DRUG": 0.5}))])
    check_schema(table, "other corpus")
    assert table.column("f1_PER").to_pylist() == [None, None]           # null: not a type of the corpus
    assert table.column("f1_PER").null_count == 2
    first, second = table.column("f1_by_type").to_pylist()
    assert [k for k, _ in first] == ["DRUG", "Gene", "loc"] and first[0] == ("DRUG", 0.25) and math.isnan(first[1][1])
    assert second == [("DRUG", 0.5)]
    long = per_type_long(table).to_pylist()
    assert [(r["step"], r["type"]) for r in long] == [(10, "DRUG"), (10, "Gene"), (10, "loc"), (20, "DRUG")]
    assert long[0]["f1"] == 0.25 and long[2]["f1"] == 1.0 and long[3]["f1"] == 0.5 and math.isnan(long[1]["f1"])


@pytest.mark.parametrize("value", [None, 0.5, {"PER": "x"}, {"PER": True}, {3: 0.5}, {"PER": None}])
def test_type_map_values_are_checked(value):
    with pytest.raises(SchemaError, match="f1_by_type"):
        cell_table([schema_row(f1_by_type=value)])


def test_only_the_fixed_type_columns_are_nullable():
    with pytest.raises(SchemaError, match="f1_strict"):
        cell_table([schema_row(f1_strict=None)])
    assert cell_table([schema_row(f1_ORG=None)]).column("f1_ORG").to_pylist() == [None]


def test_upgrade_v2_without_type_map_maps_the_fixed_columns():
    """Cells written before `f1_by_type` all ran on CoNLL-03: the map holds the four fixed columns."""
    v2 = cell_table([schema_row(finetune="frozen", f1_PER=0.25, f1_LOC=0.5), schema_row(step=20, f1_ORG=0.125)])
    old = v2.drop_columns(["f1_by_type"])
    assert old.schema.equals(CELL_SCHEMA_V2_NO_TYPE_MAP)
    table = upgrade_table(old, "old v2")
    check_schema(table, "upgraded")
    maps = [dict(m) for m in table.column("f1_by_type").to_pylist()]
    assert [list(m) for m in maps] == [list(ENTITY_TYPES)] * 2
    assert (maps[0]["PER"], maps[0]["LOC"], maps[1]["ORG"]) == (0.25, 0.5, 0.125) and math.isnan(maps[0]["MISC"])
    assert table.column("finetune").to_pylist() == ["frozen", "x"]     # kept: the column existed
    for name in CELL_SCHEMA_V2_NO_TYPE_MAP.names:
        assert table.column(name).to_pylist() == old.column(name).to_pylist() or name == "f1_MISC", name
    assert upgrade_table(CELL_SCHEMA_V2_NO_TYPE_MAP.empty_table(), "empty").schema.equals(CELL_SCHEMA)


def test_upgrade_v1_fills_the_type_map_from_its_strict_columns():
    table = upgrade_table(pa.Table.from_pylist([v1_row()], schema=CELL_SCHEMA_V1), "v1")
    (only,) = table.column("f1_by_type").to_pylist()
    assert [k for k, _ in only] == list(ENTITY_TYPES) and [v for _, v in only][:3] == [0.71, 0.72, 0.73]
