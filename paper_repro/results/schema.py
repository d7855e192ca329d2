"""The long-format results schema: one row per (cell, eval point, split).

Analysis reads only these columns; the loop writes only through `cell_table`. Per-type F1: the fixed columns
`f1_PER`, `f1_LOC`, `f1_ORG`, `f1_MISC` (CoNLL-03's types; null where the corpus has no such type), and
`f1_by_type`, a map from each entity type of the cell's corpus (as written in its data, in the label set's order) to
its F1, for any corpus (`type_columns` fills both; `per_type_long` turns the map into long-format rows).
CELL_SCHEMA is protocol v2; cells written under v1 (CELL_SCHEMA_V1), v2 cells written before the `finetune` column
(CELL_SCHEMA_V2_NO_FINETUNE: every one of them fine-tuned the encoder) and v2 cells written before `f1_by_type`
(CELL_SCHEMA_V2_NO_TYPE_MAP: every one of them CoNLL-03) are read through `upgrade_table`. A table with other columns
or types is refused (`SchemaError`).
"""
from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

ENTITY_TYPES = ("PER", "LOC", "ORG", "MISC")   # the fixed per-type columns f1_<type> (CoNLL-03's types)
TYPE_MAP = pa.map_(pa.string(), pa.float64())   # `f1_by_type`: entity type -> F1, any corpus


class SchemaError(ValueError):
    """Rows or files that do not match CELL_SCHEMA."""


# protocol v2 (current)
CELL_SCHEMA = pa.schema(
    [
        # what was run
        ("run_id", pa.string()),
        ("study", pa.string()),
        ("stage", pa.string()),             # the study stage that produced the cell ("" if none)
        ("protocol", pa.int64()),           # 2 (v1 cells read through `upgrade_table` say 1)
        ("backbone", pa.string()),
        ("method", pa.string()),
        ("finetune", pa.string()),          # "full" (encoder trained) | "frozen" (head + classifier on cached states)
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
        ("warmup_steps", pa.int64()),       # linear warmup steps (then linear decay to steps_total)
        ("batch_size", pa.int64()),
        # where on the training curve
        ("step", pa.int64()),
        ("examples_seen", pa.int64()),
        ("split", pa.string()),             # "dev" (subsample) | "test" (full, final step only)
        ("eval_sentences", pa.int64()),
        # metrics (seqeval entity-level micro averages): `f1/precision/recall` in seqeval's default mode, which
        # chunks by conlleval's rules (the F1 CoNLL-03 papers report); `*_strict` in strict IOB2 mode;
        # per-type F1 in the default mode (NaN: type absent from gold and predictions)
        ("f1", pa.float64()),
        ("precision", pa.float64()),
        ("recall", pa.float64()),
        ("f1_strict", pa.float64()),
        ("precision_strict", pa.float64()),
        ("recall_strict", pa.float64()),
        *[(f"f1_{t}", pa.float64()) for t in ENTITY_TYPES],   # null: the corpus has no such type
        ("f1_by_type", TYPE_MAP),           # every type of the corpus' label set -> F1 (its order; NaN as above)
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

# protocol v2 as written before `f1_by_type` existed (read through `upgrade_table`: the map of the four fixed columns)
CELL_SCHEMA_V2_NO_TYPE_MAP = CELL_SCHEMA.remove(CELL_SCHEMA.get_field_index("f1_by_type"))

# protocol v2 as written before `model.finetune` existed (read through `upgrade_table`: finetune "full", the map of
# the four fixed columns)
CELL_SCHEMA_V2_NO_FINETUNE = CELL_SCHEMA_V2_NO_TYPE_MAP.remove(CELL_SCHEMA_V2_NO_TYPE_MAP.get_field_index("finetune"))

# protocol v1 (older cells; read them through `upgrade_table`): no stage/protocol/warmup_steps (warmup was
# round(0.1 * steps_total)); `f1/precision/recall` and per-type F1 in strict IOB2 mode, `f1_default` the default mode
CELL_SCHEMA_V1 = pa.schema(
    [
        ("run_id", pa.string()),
        ("study", pa.string()),
        ("backbone", pa.string()),
        ("method", pa.string()),
        ("pooling", pa.string()),
        ("fuse_embeddings", pa.bool_()),
        ("head_params", pa.int64()),
        ("budget_target", pa.int64()),
        ("sampler", pa.string()),
        ("size", pa.int64()),
        ("data_seed", pa.int64()),
        ("seed", pa.int64()),
        ("backbone_lr", pa.float64()),
        ("head_lr", pa.float64()),
        ("steps_total", pa.int64()),
        ("batch_size", pa.int64()),
        ("step", pa.int64()),
        ("examples_seen", pa.int64()),
        ("split", pa.string()),
        ("eval_sentences", pa.int64()),
        ("f1", pa.float64()),
        ("precision", pa.float64()),
        ("recall", pa.float64()),
        ("f1_default", pa.float64()),
        *[(f"f1_{t}", pa.float64()) for t in ENTITY_TYPES],
        ("train_loss", pa.float64()),
        ("wall_clock_s", pa.float64()),
        ("eval_s", pa.float64()),
        ("git_sha", pa.string()),
        ("git_dirty", pa.bool_()),
        ("config_hash", pa.string()),
        ("subset_sha256", pa.string()),
        ("versions", pa.string()),
        ("device", pa.string()),
    ]
)
V1_WARMUP_RATIO = 0.1


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
    if pa.types.is_map(arrow_type):   # f1_by_type: {type: F1}
        return isinstance(value, Mapping) and all(
            isinstance(k, str) and isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))
            for k, v in value.items())
    return value is not None


NULLABLE = frozenset(f"f1_{t}" for t in ENTITY_TYPES)   # null: the cell's corpus has no such type


def type_columns(by_type: Mapping[str, float]) -> dict[str, Any]:
    """The per-type columns of a row from the F1 of every entity type of the cell's corpus (`by_type`, in its label
    set's order): `f1_PER` .. `f1_MISC` (None where the corpus has no such type) and `f1_by_type` (all of them)."""
    return {**{f"f1_{t}": by_type.get(t) for t in ENTITY_TYPES}, "f1_by_type": dict(by_type)}


def per_type_long(table: pa.Table, keys: tuple[str, ...] = ("run_id", "split", "step")) -> pa.Table:
    """`f1_by_type` as long-format rows: `keys` columns, `type`, `f1`; one row per (row of `table`, type), in the
    table's row order and each row's type order."""
    column = table.column("f1_by_type").combine_chunks()
    offsets = column.offsets.to_numpy()                 # a null map has no entries (cell_table writes none)
    repeat = np.repeat(np.arange(table.num_rows), np.diff(offsets))
    start, stop = int(offsets[0]), int(offsets[-1])     # .keys/.items ignore a slice's offset: cut them here
    out = {key: table.column(key).take(pa.array(repeat, pa.int64())) for key in keys}
    out["type"] = column.keys.slice(start, stop - start)
    out["f1"] = column.items.slice(start, stop - start)
    return pa.table(out)


def cell_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows (dicts with exactly the schema's columns) -> a table with CELL_SCHEMA."""
    names = set(CELL_SCHEMA.names)
    for i, row in enumerate(rows):
        if set(row) != names:
            missing, extra = sorted(names - set(row)), sorted(set(row) - names)
            raise SchemaError(f"row {i}: missing columns {missing}, unexpected columns {extra}")
        for field in CELL_SCHEMA:
            if row[field.name] is None and field.name in NULLABLE:
                continue
            if not fits(row[field.name], field.type):
                raise SchemaError(f"row {i}: column {field.name} expects {field.type}, got {row[field.name]!r}")
    try:
        return pa.Table.from_pylist(rows, schema=CELL_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as error:
        raise SchemaError(f"rows do not fit CELL_SCHEMA: {error}") from error


def check_schema(table: pa.Table, source: str) -> None:
    """Refuse a table whose schema is not exactly CELL_SCHEMA (v2)."""
    if not table.schema.equals(CELL_SCHEMA, check_metadata=False):
        diff = sorted(set(table.schema.names) ^ set(CELL_SCHEMA.names))
        detail = f"columns differ: {diff}" if diff else "column types differ"
        raise SchemaError(f"{source}: schema does not match CELL_SCHEMA ({detail})")


def _fixed_type_map(table: pa.Table) -> pa.ChunkedArray:
    """`f1_by_type` of a table written before the map existed (every such cell ran on CoNLL-03): the four fixed
    per-type columns, in CoNLL-03's order."""
    n, k = table.num_rows, len(ENTITY_TYPES)
    values = np.column_stack([table.column(f"f1_{t}").to_numpy(zero_copy_only=False).astype(np.float64)
                              for t in ENTITY_TYPES]) if n else np.empty((0, k))
    offsets = pa.array(np.arange(0, (n + 1) * k, k, dtype=np.int32))
    keys = pa.array(list(ENTITY_TYPES) * n, pa.string())
    return pa.chunked_array([pa.MapArray.from_arrays(offsets, keys, pa.array(values.reshape(-1), pa.float64()))],
                            TYPE_MAP)


def upgrade_table(table: pa.Table, source: str) -> pa.Table:
    """A v2 table as is; a v2 table without `f1_by_type` (CELL_SCHEMA_V2_NO_TYPE_MAP), without `finetune` either
    (CELL_SCHEMA_V2_NO_FINETUNE) or a v1 table (CELL_SCHEMA_V1) converted to CELL_SCHEMA; anything else is a
    SchemaError.

    Every older table -> v2: `f1_by_type` = {PER, LOC, ORG, MISC: the four fixed columns} (every such cell ran on
    CoNLL-03). v2 without finetune -> v2: `finetune` "full" (the only mode before the column existed).
    v1 -> v2: `*_strict` <- v1 `f1/precision/recall`; `f1` <- v1 `f1_default`; `precision`/`recall` <- NaN (v1
    did not store them); per-type F1 keep their v1 (strict-mode) values; `stage` "", `protocol` 1,
    `warmup_steps` round(0.1 * steps_total), `finetune` "full".
    """
    if table.schema.equals(CELL_SCHEMA, check_metadata=False):
        return table
    known = {"CELL_SCHEMA": CELL_SCHEMA, "CELL_SCHEMA_V2_NO_TYPE_MAP": CELL_SCHEMA_V2_NO_TYPE_MAP,
             "CELL_SCHEMA_V2_NO_FINETUNE": CELL_SCHEMA_V2_NO_FINETUNE, "CELL_SCHEMA_V1": CELL_SCHEMA_V1}
    matched = [label for label, schema in known.items() if table.schema.equals(schema, check_metadata=False)]
    if not matched:
        names = set(table.schema.names)
        label = min(known, key=lambda name: len(names ^ set(known[name].names)))
        diff = sorted(names ^ set(known[label].names))
        detail = f"columns differ from {label}: {diff}" if diff else f"column types differ from {label}"
        raise SchemaError(f"{source}: schema does not match CELL_SCHEMA, CELL_SCHEMA_V2_NO_TYPE_MAP, "
                          f"CELL_SCHEMA_V2_NO_FINETUNE or CELL_SCHEMA_V1 ({detail})")
    n = table.num_rows
    column = table.column
    mapped = {"f1_by_type": _fixed_type_map(table)}
    if "finetune" not in table.schema.names:
        mapped["finetune"] = pa.chunked_array([["full"] * n], pa.string())
    if matched[0] == "CELL_SCHEMA_V1":
        nan = pa.chunked_array([np.full(n, np.nan)], pa.float64())
        warmup = [int(round(V1_WARMUP_RATIO * steps)) for steps in column("steps_total").to_pylist()]  # as v1's loop
        mapped.update({
            "stage": pa.chunked_array([[""] * n], pa.string()),
            "protocol": pa.chunked_array([np.ones(n, dtype=np.int64)], pa.int64()),
            "warmup_steps": pa.chunked_array([warmup], pa.int64()),
            "f1": column("f1_default"),
            "precision": nan,
            "recall": nan,
            "f1_strict": column("f1"),
            "precision_strict": column("precision"),
            "recall_strict": column("recall"),
        })
    columns = [mapped[name] if name in mapped else column(name) for name in CELL_SCHEMA.names]
    upgraded = pa.Table.from_arrays(columns, schema=CELL_SCHEMA)
    check_schema(upgraded, source)
    return upgraded
