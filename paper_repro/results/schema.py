"""The long-format results schema: one row per (cell, eval point, split).

Analysis reads only these columns; the loop writes only through `cell_table`. Per-type F1 columns follow
the CoNLL-03 entity types. A table with other columns or types is refused (`SchemaError`).
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import pyarrow as pa

ENTITY_TYPES = ("PER", "LOC", "ORG", "MISC")


class SchemaError(ValueError):
    """Rows or files that do not match CELL_SCHEMA."""


CELL_SCHEMA = pa.schema(
    [
        # what was run
        ("run_id", pa.string()),
        ("study", pa.string()),
        ("backbone", pa.string()),
        ("method", pa.string()),
        ("pooling", pa.string()),
        ("fuse_embeddings", pa.bool_()),
        ("head_params", pa.int64()),        # trainable parameters beyond backbone + classifier
        ("budget_target", pa.int64()),      # parameters of the budget-defining head (0 = no matching asked)
        ("sampler", pa.string()),
        ("size", pa.int64()),
        ("data_seed", pa.int64()),
        ("seed", pa.int64()),
        ("backbone_lr", pa.float64()),
        ("head_lr", pa.float64()),
        ("steps_total", pa.int64()),
        ("batch_size", pa.int64()),
        # where on the training curve
        ("step", pa.int64()),
        ("examples_seen", pa.int64()),
        ("split", pa.string()),             # "dev" (subsample) | "test" (full, final step only)
        ("eval_sentences", pa.int64()),
        # metrics (seqeval entity-level micro averages; `f1` is strict IOB2, `f1_default` the lenient mode)
        ("f1", pa.float64()),
        ("precision", pa.float64()),
        ("recall", pa.float64()),
        ("f1_default", pa.float64()),
        *[(f"f1_{t}", pa.float64()) for t in ENTITY_TYPES],
        ("train_loss", pa.float64()),       # mean training loss since the previous eval point
        ("wall_clock_s", pa.float64()),     # training seconds elapsed at this eval point (eval time excluded)
        ("eval_s", pa.float64()),
        # provenance
        ("git_sha", pa.string()),
        ("git_dirty", pa.bool_()),
        ("config_hash", pa.string()),
        ("subset_sha256", pa.string()),
        ("versions", pa.string()),          # JSON {package: version}
        ("device", pa.string()),
    ]
)


def fits(value: Any, arrow_type: pa.DataType) -> bool:
    """Whether a Python value is of the column's type: no nulls, no bool for numbers, no float for ints
    (Arrow itself would silently truncate 1.5 to 1 and store None as null)."""
    if pa.types.is_string(arrow_type):
        return isinstance(value, str)
    if pa.types.is_boolean(arrow_type):
        return isinstance(value, (bool, np.bool_))
    if isinstance(value, (bool, np.bool_)):
        return False
    if pa.types.is_integer(arrow_type):
        return isinstance(value, numbers.Integral) and -(2**63) <= value < 2**63
    if pa.types.is_floating(arrow_type):
        return isinstance(value, numbers.Real)
    return value is not None


def cell_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows (dicts with exactly the schema's columns) -> a table with CELL_SCHEMA."""
    names = set(CELL_SCHEMA.names)
    for i, row in enumerate(rows):
        if set(row) != names:
            missing, extra = sorted(names - set(row)), sorted(set(row) - names)
            raise SchemaError(f"row {i}: missing columns {missing}, unexpected columns {extra}")
        for field in CELL_SCHEMA:
            if not fits(row[field.name], field.type):
                raise SchemaError(f"row {i}: column {field.name} expects {field.type}, got {row[field.name]!r}")
    try:
        return pa.Table.from_pylist(rows, schema=CELL_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as error:
        raise SchemaError(f"rows do not fit CELL_SCHEMA: {error}") from error


def check_schema(table: pa.Table, source: str) -> None:
    if not table.schema.equals(CELL_SCHEMA, check_metadata=False):
        diff = sorted(set(table.schema.names) ^ set(CELL_SCHEMA.names))
        detail = f"columns differ: {diff}" if diff else "column types differ"
        raise SchemaError(f"{source}: schema does not match CELL_SCHEMA ({detail})")
