"""Tests for paper_repro.results.schema: cell_table refuses rows that do not fit CELL_SCHEMA."""
from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from conftest import schema_row
from paper_repro.results.schema import CELL_SCHEMA, ENTITY_TYPES, SchemaError, cell_table, check_schema


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
