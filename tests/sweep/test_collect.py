"""collect/status: done cells merged and schema-checked, partial files ignored, mixed schemas refused."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sweep_helpers import fake_run_cell, tiny_study, write_study

from paper_repro.results import store
from paper_repro.results.collect import collect, done_run_ids, status
from paper_repro.results.schema import SchemaError
from paper_repro.sweep.grid import StudyConfig


def _cells(tmp_path, **kw):
    raw = tiny_study("st", tmp_path / "results", **kw)
    return StudyConfig.from_dict(raw).expand(), raw


def test_collect_merges_done_cells_and_ignores_partial(tmp_path):
    cells, _ = _cells(tmp_path)
    for cell in cells[:3]:
        fake_run_cell(cell)
    sdir = tmp_path / "results" / "st"
    # a killed cell: partial parquet, no marker -> not done, not read (it is not even valid parquet)
    store.cell_paths(tmp_path / "results", "st", cells[3].run_id)["parquet"].write_bytes(b"PAR1 garbage")
    out = collect(sdir)
    table = pq.read_table(out)
    assert out == sdir / "results.parquet"
    assert sorted(set(table.column("run_id").to_pylist())) == sorted(c.run_id for c in cells[:3])
    assert table.num_rows == 6
    assert done_run_ids(sdir) == sorted(c.run_id for c in cells[:3])


def test_collect_refuses_mixed_schema_naming_the_file(tmp_path):
    cells, _ = _cells(tmp_path)
    for cell in cells[:2]:
        fake_run_cell(cell)
    paths = store.cell_paths(tmp_path / "results", "st", cells[1].run_id)
    table = pq.read_table(paths["parquet"])
    pq.write_table(table.append_column("extra", pa.array([1] * table.num_rows)), paths["parquet"])
    with pytest.raises(SchemaError, match=f"{cells[1].run_id}.parquet: schema does not match CELL_SCHEMA"):
        collect(tmp_path / "results" / "st")
    assert not (tmp_path / "results" / "st" / "results.parquet").exists()


def test_collect_refuses_corrupt_file_with_marker(tmp_path):
    cells, _ = _cells(tmp_path)
    fake_run_cell(cells[0])
    store.cell_paths(tmp_path / "results", "st", cells[0].run_id)["parquet"].write_bytes(b"not parquet")
    with pytest.raises(SchemaError, match="unreadable parquet"):
        collect(tmp_path / "results" / "st")


def test_status_with_and_without_study_file(tmp_path):
    cells, raw = _cells(tmp_path)
    fake_run_cell(cells[0])
    fake_run_cell(cells[2])
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
    assert table.num_rows == 0
