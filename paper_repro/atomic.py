"""Atomic file writes: a killed process never leaves a half-written file under the name readers look for."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


# what a plain open() would give a new file: mkstemp's temp files are 0600, which would hide results, subsets and
# caches from the other users of a shared cluster disk (read once, at import: os.umask is process-wide)
DEFAULT_MODE = 0o666 & ~_umask()


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write to a temp file in the same folder, fsync, then rename over `path` (its folder is created). The file
    gets `mode`, by default what the umask gives a new file (DEFAULT_MODE)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, DEFAULT_MODE if mode is None else mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_csv(rows: list[dict], columns: Sequence[str], path: Path) -> None:
    """`rows` (dicts with at least `columns`) as CSV, atomically: no value is an empty cell, floats have 6 significant
    digits, so that rewriting unchanged numbers leaves the file byte-identical."""
    import pandas as pd

    text = pd.DataFrame(rows, columns=list(columns)).to_csv(index=False, float_format="%.6g", lineterminator="\n")
    atomic_write_bytes(path, text.encode())
