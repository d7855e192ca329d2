"""paper_repro.atomic: a file appears whole or not at all, with the permissions a plain open() would give it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from paper_repro.atomic import DEFAULT_MODE, atomic_write_bytes, atomic_write_csv

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_new_files_get_the_umask_mode_not_mkstemps_0600(tmp_path, umask, mode):
    """mkstemp's temp files are 0600; renamed into place as they are, results and subsets written on a shared
    cluster disk would be unreadable to the other users of the project."""
    target = tmp_path / "out" / "file.bin"
    code = (f"import os; os.umask({umask}); from pathlib import Path; from paper_repro.atomic import atomic_write_bytes; "
            f"atomic_write_bytes(Path({str(target)!r}), b'x')")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert target.stat().st_mode & 0o777 == mode and target.read_bytes() == b"x"


def test_an_explicit_mode_and_this_process_default(tmp_path):
    atomic_write_bytes(tmp_path / "a", b"1", mode=0o600)
    atomic_write_bytes(tmp_path / "b", b"2")
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "b").stat().st_mode & 0o777 == DEFAULT_MODE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]          # no temp file left


def test_csv_is_byte_stable_and_keeps_no_value_empty(tmp_path):
    rows = [{"name": "dwatt", "value": 0.8489583333333334, "count": 7, "note": None},
            {"name": "concat", "value": 660, "count": 0, "note": "x, y"}]
    path = tmp_path / "t.csv"
    atomic_write_csv(rows, ("name", "value", "count", "note"), path)
    assert path.read_text() == 'name,value,count,note\ndwatt,0.848958,7,\nconcat,660,0,"x, y"\n'
    first = path.read_bytes()
    atomic_write_csv(rows, ("name", "value", "count", "note"), path)
    assert path.read_bytes() == first
