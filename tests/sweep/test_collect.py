"""collect/status: done cells merged and schema-checked (v1 cells upgraded to v2), partial files ignored,
other schemas refused."""
from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sweep_helpers import tiny_study, write_study

from paper_repro.results import store
from paper_repro.results.collect import collect, done_run_ids, read_cell
from paper_repro.sweep.status import status
from paper_repro.results.schema import CELL_SCHEMA, CELL_SCHEMA_V1, ENTITY_TYPES, TYPE_MAP, SchemaError
from paper_repro.sweep.grid import StudyConfig


def _cells(tmp_path, **kw):
    raw = tiny_study("st", tmp_path / "results", **kw)
    return StudyConfig.from_dict(raw).expand(), raw


def cell_rows(config, version: int = 2) -> list[dict]:
    """A dev and a test row of `config` in CELL_SCHEMA (v2) or CELL_SCHEMA_V1, every metric distinct."""
    schema = CELL_SCHEMA if version == 2 else CELL_SCHEMA_V1
    defaults = {pa.string(): "x", pa.bool_(): False, pa.int64(): 0, pa.float64(): 0.5, TYPE_MAP: None}
    common = {field.name: defaults[field.type] for field in schema}
    common.update(
        run_id=config.run_id, study=config.study, backbone=config.model.backbone, method=config.model.head.name,
        sampler=config.data.sampler, size=config.data.size, data_seed=config.data.data_seed, seed=config.train.seed,
        steps_total=200, batch_size=4, eval_sentences=10, config_hash=config.config_hash(),
    )
    metrics = {"f1": 0.61, "precision": 0.62, "recall": 0.63}
    metrics.update({f"f1_{t}": 0.71 + i / 100 for i, t in enumerate(ENTITY_TYPES)})
    if version == 2:
        metrics.update(f1_strict=0.51, precision_strict=0.52, recall_strict=0.53)
        metrics["f1_by_type"] = {t: metrics[f"f1_{t}"] for t in ENTITY_TYPES}
        common.update(stage="eval", protocol=2, warmup_steps=7)
    else:
        metrics.update(f1_default=0.64)
    rows = [{**common, **metrics, "step": 200, "examples_seen": 800, "split": split} for split in ("dev", "test")]
    assert all(set(row) == set(schema.names) for row in rows)
    return rows


def write_done_cell(config, version: int = 2) -> None:
    """A done cell (parquet, manifest, marker) with `cell_rows`, written like `store.write_cell`."""
    schema = CELL_SCHEMA if version == 2 else CELL_SCHEMA_V1
    table = pa.Table.from_pylist(cell_rows(config, version), schema=schema)
    if version == 2:
        store.write_cell(config.results_dir, config.study, config.run_id, table, {"config": config.to_dict()})
        return
    paths = store.cell_paths(config.results_dir, config.study, config.run_id)
    store.atomic_write_parquet(table, paths["parquet"])
    store.atomic_write_json({"config": config.to_dict()}, paths["manifest"])
    store.atomic_write_bytes(paths["done"], b"")


def test_collect_merges_done_cells_and_ignores_partial(tmp_path):
    cells, _ = _cells(tmp_path)
    for cell in cells[:3]:
        write_done_cell(cell)
    sdir = tmp_path / "results" / "st"
    # a killed cell: partial parquet, no marker -> not done, not read (it is not even valid parquet)
    store.cell_paths(tmp_path / "results", "st", cells[3].run_id)["parquet"].write_bytes(b"PAR1 garbage")
    out = collect(sdir)
    table = pq.read_table(out)
    assert out == sdir / "results.parquet"
    assert table.schema.equals(CELL_SCHEMA, check_metadata=False)
    assert sorted(set(table.column("run_id").to_pylist())) == sorted(c.run_id for c in cells[:3])
    assert table.num_rows == 6
    assert done_run_ids(sdir) == sorted(c.run_id for c in cells[:3])


def test_collect_upgrades_v1_cells(tmp_path):
    cells, _ = _cells(tmp_path)
    write_done_cell(cells[0], version=1)
    write_done_cell(cells[1], version=2)
    sdir = tmp_path / "results" / "st"
    table = pq.read_table(collect(sdir))
    assert table.schema.equals(CELL_SCHEMA, check_metadata=False) and table.num_rows == 4
    rows = {(row["run_id"], row["split"]): row for row in table.to_pylist()}
    v1, v2 = rows[(cells[0].run_id, "dev")], rows[(cells[1].run_id, "dev")]
    # v1 -> v2: f1 <- f1_default, *_strict <- f1/precision/recall, default-mode P/R unknown
    assert (v1["f1"], v1["f1_strict"], v1["precision_strict"], v1["recall_strict"]) == (0.64, 0.61, 0.62, 0.63)
    assert math.isnan(v1["precision"]) and math.isnan(v1["recall"])
    assert [v1[f"f1_{t}"] for t in ENTITY_TYPES] == pytest.approx([0.71, 0.72, 0.73, 0.74])   # kept (strict)
    assert (v1["stage"], v1["protocol"], v1["warmup_steps"]) == ("", 1, 20)                   # round(0.1 * 200)
    assert (v1["method"], v1["data_seed"], v1["steps_total"], v1["step"]) == (
        cells[0].model.head.name, cells[0].data.data_seed, 200, 200)
    # v2 cells are taken as they are
    assert (v2["f1"], v2["precision"], v2["recall"], v2["f1_strict"]) == (0.61, 0.62, 0.63, 0.51)
    assert (v2["stage"], v2["protocol"], v2["warmup_steps"]) == ("eval", 2, 7)
    # read_cell upgrades a v1 cell also when asked for some columns only
    part = read_cell(sdir, cells[0].run_id, columns=["split", "f1", "f1_strict", "protocol"])
    assert part.column_names == ["split", "f1", "f1_strict", "protocol"]
    assert part.to_pylist()[0] == {"split": "dev", "f1": 0.64, "f1_strict": 0.61, "protocol": 1}
    with pytest.raises(SchemaError, match=r"no columns \['f1_default'\]"):
        read_cell(sdir, cells[0].run_id, columns=["f1_default"])
    assert status(sdir).splitlines()[0].startswith("study st: 2 done")


def test_collect_reads_v2_cells_written_before_finetune(tmp_path):
    """A v2 cell without the `finetune` column (written before it existed) reads as finetune "full", whole or by
    columns (select reads only a few)."""
    cells, _ = _cells(tmp_path)
    write_done_cell(cells[0])
    paths = store.cell_paths(tmp_path / "results", "st", cells[0].run_id)
    # as written then: no `finetune`, and no `f1_by_type` either (added after it)
    pq.write_table(pq.read_table(paths["parquet"]).drop_columns(["finetune", "f1_by_type"]), paths["parquet"])
    write_done_cell(cells[1])
    sdir = tmp_path / "results" / "st"
    table = pq.read_table(collect(sdir))
    assert table.schema.equals(CELL_SCHEMA, check_metadata=False) and table.num_rows == 4
    assert read_cell(sdir, cells[0].run_id).column("finetune").to_pylist() == ["full", "full"]
    part = read_cell(sdir, cells[0].run_id, columns=["split", "finetune", "f1"])
    assert part.to_pylist() == [{"split": "dev", "finetune": "full", "f1": 0.61},
                                {"split": "test", "finetune": "full", "f1": 0.61}]


def test_collect_refuses_mixed_schema_naming_the_file(tmp_path):
    cells, _ = _cells(tmp_path)
    for cell in cells[:2]:
        write_done_cell(cell)
    paths = store.cell_paths(tmp_path / "results", "st", cells[1].run_id)
    table = pq.read_table(paths["parquet"])
    pq.write_table(table.append_column("extra", pa.array([1] * table.num_rows)), paths["parquet"])
    with pytest.raises(SchemaError, match=f"{cells[1].run_id}.parquet: schema does not match CELL_SCHEMA, "
                                          r"CELL_SCHEMA_V2_NO_TYPE_MAP, CELL_SCHEMA_V2_NO_FINETUNE or "
                                          r"CELL_SCHEMA_V1 \(columns differ from "
                                          r"CELL_SCHEMA: \['extra'\]\)"):
        collect(tmp_path / "results" / "st")
    assert not (tmp_path / "results" / "st" / "results.parquet").exists()


def test_collect_refuses_corrupt_file_with_marker(tmp_path):
    cells, _ = _cells(tmp_path)
    write_done_cell(cells[0])
    store.cell_paths(tmp_path / "results", "st", cells[0].run_id)["parquet"].write_bytes(b"not parquet")
    with pytest.raises(SchemaError, match="unreadable parquet"):
        collect(tmp_path / "results" / "st")


def test_status_with_and_without_study_file(tmp_path):
    cells, raw = _cells(tmp_path)
    write_done_cell(cells[0])
    write_done_cell(cells[2], version=1)
    sdir = tmp_path / "results" / "st"
    (sdir / "failures").mkdir()
    (sdir / "failures" / f"{cells[1].run_id}.txt").write_text("boom")
    text = status(sdir, write_study(tmp_path / "st.yaml", raw))
    assert text.splitlines()[0] == "study st: 2/4 done, 0 running, 1 failed, 1 pending"
    assert "method:" in text and "  last   " in text and cells[1].run_id in text
    plain = status(sdir)
    assert plain.splitlines()[0].startswith("study st: 2 done")
    assert "data_seed:" in plain


def test_collect_empty_study(tmp_path):
    (tmp_path / "results" / "empty" / "cells").mkdir(parents=True)
    table = pq.read_table(collect(tmp_path / "results" / "empty"))
    assert table.num_rows == 0 and table.schema.equals(CELL_SCHEMA, check_metadata=False)
