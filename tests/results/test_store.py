"""Tests for paper_repro.results.store: write order, done markers, atomic writes."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import schema_row
from paper_repro.results.schema import CELL_SCHEMA, SchemaError, cell_table
from paper_repro.results.store import atomic_write_bytes, atomic_write_json, cell_paths, is_done, write_cell


def leftovers(folder):
    return [p.name for p in folder.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".")]


def test_write_cell(tmp_path):
    table = cell_table([schema_row(run_id="r1"), schema_row(run_id="r1", split="test")])
    manifest = {"run_id": "r1", "config": {"train": {"steps": 3}}, "path": tmp_path}  # default=str for odd values
    path = write_cell(tmp_path, "study", "r1", table, manifest)
    paths = cell_paths(tmp_path, "study", "r1")
    assert path == paths["parquet"] == tmp_path / "study" / "cells" / "r1.parquet"
    assert pq.read_table(path).to_pandas().equals(table.to_pandas())  # NaN-aware
    assert json.loads(paths["manifest"].read_text())["config"] == {"train": {"steps": 3}}
    assert paths["done"].read_bytes() == b""
    # parquet, then manifest, then the marker
    times = [paths[k].stat().st_mtime_ns for k in ("parquet", "manifest", "done")]
    assert times == sorted(times)
    assert is_done(tmp_path, "study", "r1")
    assert not leftovers(tmp_path)
    # rewriting replaces the files
    write_cell(tmp_path, "study", "r1", cell_table([schema_row(run_id="r1")]), {"run_id": "r1"})
    assert pq.read_table(path).num_rows == 1 and not leftovers(tmp_path)


def test_is_done_needs_marker_and_parquet(tmp_path):
    paths = cell_paths(tmp_path, "s", "r")
    assert not is_done(tmp_path, "s", "r")
    paths["parquet"].parent.mkdir(parents=True)
    pq.write_table(cell_table([schema_row()]), paths["parquet"])
    assert not is_done(tmp_path, "s", "r")          # parquet without marker: not done
    paths["done"].write_bytes(b"")
    assert is_done(tmp_path, "s", "r")
    paths["parquet"].unlink()
    assert not is_done(tmp_path, "s", "r")          # marker without parquet: not done


def test_marker_is_written_last(tmp_path):
    # the marker cannot be written (a folder is in the way): parquet and manifest exist, the cell is not done
    paths = cell_paths(tmp_path, "s", "r")
    paths["done"].mkdir(parents=True)
    with pytest.raises(OSError):
        write_cell(tmp_path, "s", "r", cell_table([schema_row()]), {})
    assert paths["parquet"].is_file() and paths["manifest"].is_file()
    paths["done"].rmdir()
    assert not is_done(tmp_path, "s", "r") and not leftovers(tmp_path)
    # the manifest cannot be written: no marker either
    other = cell_paths(tmp_path, "s", "q")
    other["manifest"].mkdir(parents=True)
    with pytest.raises(OSError):
        write_cell(tmp_path, "s", "q", cell_table([schema_row()]), {})
    assert other["parquet"].is_file() and not other["done"].exists() and not leftovers(tmp_path)


def test_wrong_schema_writes_nothing(tmp_path):
    table = pa.table({"run_id": ["r"]})
    with pytest.raises(SchemaError, match="schema does not match"):
        write_cell(tmp_path, "s", "r", table, {})
    assert not (tmp_path / "s").exists()
    assert cell_table([schema_row()]).schema.equals(CELL_SCHEMA)


def test_atomic_write_cleans_up_on_failure(tmp_path):
    target = tmp_path / "sub" / "file.bin"
    atomic_write_bytes(target, b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")       # fails after the temp file exists
    assert target.read_bytes() == b"old"               # the previous content is intact
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]
    atomic_write_json({"b": 1, "a": [1, 2]}, tmp_path / "x.json")
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": [1, 2], "b": 1}
    assert not leftovers(tmp_path)


def test_write_cell_with_a_diff(tmp_path):
    import hashlib

    table = cell_table([schema_row(run_id="r1")])
    diff = "# header\ndiff --git a/x b/x\n+1\n"
    write_cell(tmp_path, "s", "r1", table, {"run_id": "r1", "git": {"sha": "abc", "dirty": True}}, diff=diff)
    paths = cell_paths(tmp_path, "s", "r1")
    assert paths["diff"] == tmp_path / "s" / "cells" / "r1.diff" and paths["diff"].read_text() == diff
    manifest = json.loads(paths["manifest"].read_text())
    assert manifest["git"] == {"sha": "abc", "dirty": True, "diff_file": "r1.diff",
                               "diff_sha256": hashlib.sha256(diff.encode()).hexdigest()}
    times = [paths[k].stat().st_mtime_ns for k in ("parquet", "diff", "manifest", "done")]
    assert times == sorted(times) and is_done(tmp_path, "s", "r1") and not leftovers(tmp_path)
    # rewritten without a diff (a clean checkout): the old diff is removed
    write_cell(tmp_path, "s", "r1", table, {"run_id": "r1", "git": {"sha": "def", "dirty": False}})
    assert not paths["diff"].exists()
    assert json.loads(paths["manifest"].read_text())["git"] == {"sha": "def", "dirty": False}
