"""Reading a study's results (parquet) and manifests (json); method order and colours shared by every figure.

Analysis reads files only: it never imports torch or model code. Protocol-v1 tables (older committed studies)
are upgraded to the v2 schema on load (`paper_repro.results.schema.upgrade_table`): their strict-IOB2 `f1`
becomes `f1_strict`, their `f1_default` becomes `f1`, `stage` is "" and `protocol` 1. Cells written before the
`finetune` column (every one fine-tuned the encoder) read as `finetune` "full".

`finetune` is part of a cell's identity (CELL_KEYS) and of a few-shot condition (GROUP_KEYS), like the backbone: a
frozen-encoder cell and a full fine-tuning cell of the same method, backbone, size and seeds are two cells, never
paired with each other, and means, tests and figures are per track. A frame without the column (hand-built, or
older tables read without `upgrade_table`) is read as "full" (`with_finetune`). Tables show the track inside the
backbone's label (`track_label`: "minilm-l6" for full fine-tuning, "minilm-l6 (frozen)" otherwise), so a study of
full cells reads as before.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from paper_repro.results.schema import (
    CELL_SCHEMA,
    CELL_SCHEMA_V1,
    CELL_SCHEMA_V2_NO_FINETUNE,
    ENTITY_TYPES,
    upgrade_table,
)

log = logging.getLogger(__name__)

RESULTS_FILE = "results.parquet"
CELL_KEYS = ("backbone", "finetune", "sampler", "size", "data_seed", "seed")   # what pairs two methods' cells
GROUP_KEYS = ("backbone", "finetune", "sampler", "size")                       # one few-shot condition
TRACK_KEYS = ("backbone", "finetune")                                          # one encoder, trained or frozen
FINETUNE_DEFAULT = "full"   # cells without a `finetune` value fine-tuned the encoder (the only mode before it)
TYPE_COLUMNS = tuple(f"f1_{t}" for t in ENTITY_TYPES)

METHOD_ORDER = ("last", "deeper", "deeper_copy", "concat", "dwatt", "scalarmix", "lstm", "attnres", "attnres_block")
# Fixed colours (colour-blind friendly Okabe-Ito + two extras); baselines are neutral greys.
METHOD_COLORS: dict[str, str] = {
    "last": "#7f7f7f",
    "deeper": "#404040",
    "deeper_copy": "#8B7355",   # the deeper baseline initialised from the backbone's last layer: a warm neutral
    "concat": "#E69F00",
    "dwatt": "#0072B2",
    "scalarmix": "#009E73",
    "lstm": "#CC79A7",
    "attnres": "#D55E00",
    "attnres_block": "#56B4E9",
}
_EXTRA_COLORS = ("#F0E442", "#8c564b", "#bcbd22", "#17becf", "#9467bd", "#e377c2", "#1f77b4", "#2ca02c")


def method_order(methods: Iterable[str]) -> list[str]:
    """Known methods in METHOD_ORDER, then unknown ones sorted."""
    present = {str(m) for m in methods if m is not None and not (isinstance(m, float) and pd.isna(m))}
    known = [m for m in METHOD_ORDER if m in present]
    return known + sorted(present - set(METHOD_ORDER))


def method_color(method: str) -> str:
    """The fixed colour of a method; unknown methods get a stable colour from their name."""
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    index = sum(ord(c) for c in method) % len(_EXTRA_COLORS)
    return _EXTRA_COLORS[index]


def method_palette(methods: Iterable[str]) -> dict[str, str]:
    return {m: method_color(m) for m in method_order(methods)}


def with_finetune(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with a `finetune` column: missing, null or "" values read as FINETUNE_DEFAULT ("full"). Returns `df`
    itself when nothing is missing (no copy)."""
    if "finetune" in df and not (df["finetune"].isna() | (df["finetune"] == "")).any():
        return df
    values = df["finetune"] if "finetune" in df else pd.Series(FINETUNE_DEFAULT, index=df.index, dtype=object)
    values = values.where(values.notna() & (values != ""), FINETUNE_DEFAULT)
    return df.assign(finetune=values.astype(object) if len(df) else pd.Series(dtype=object))


def track_label(backbone: Any, finetune: Any = FINETUNE_DEFAULT) -> str:
    """The backbone as tables and figure titles show it: "minilm-l6" (full fine-tuning, as before the frozen
    track existed) or "minilm-l6 (frozen)"."""
    finetune = FINETUNE_DEFAULT if finetune is None or (isinstance(finetune, float) and pd.isna(finetune)) \
        or finetune == "" else finetune
    return str(backbone) if finetune == FINETUNE_DEFAULT else f"{backbone} ({finetune})"


def fold_tracks(table: pd.DataFrame | None) -> pd.DataFrame | None:
    """`table` with the finetune track folded into `backbone` (`track_label`: "minilm-l6", "minilm-l6 (frozen)") and
    no `finetune` column: what the report's markdown tables and the figures group by and show, so frozen and full
    cells get separate tables, rows, panels and findings, and a study of full cells reads as before. The CSV
    tables keep both columns. A table without `finetune` (or without `backbone`) is returned as is; an empty
    backbone (a hypothesis row without pairs) stays empty."""
    if table is None or "finetune" not in table or "backbone" not in table:
        return table
    labels = [track_label(b, f) if isinstance(b, str) and b else b
              for b, f in zip(table["backbone"], table["finetune"])]
    return table.assign(backbone=pd.Series(labels, index=table.index, dtype=object)).drop(columns="finetune")


def resolve_study_dir(study_dir: str | Path) -> Path:
    """`study_dir` as given if it exists, else relative to the checkout root (for notebooks run from analysis/)."""
    path = Path(study_dir)
    if path.exists() or path.is_absolute():
        return path
    root = Path(__file__).resolve().parents[2]
    candidate = root / path
    return candidate if candidate.exists() else path


def empty_results() -> pd.DataFrame:
    return CELL_SCHEMA.empty_table().to_pandas()


def study_stages(df: pd.DataFrame) -> list[str]:
    """The non-empty `stage` values of a results frame, in first-seen order ([] for an unstaged study)."""
    if df.empty or "stage" not in df:
        return []
    values = df["stage"].dropna().astype(str)
    return list(dict.fromkeys(v for v in values if v))


def in_yaml_order(stages: list[str], declared: list[str]) -> list[str]:
    """`stages` in the order the study YAML declares them (`declared`), any it does not declare after them."""
    return [s for s in declared if s in stages] + [s for s in stages if s not in declared]


FULL_SAMPLER = "full"   # the sampler that trains on every training sentence (`data.size` is ignored, stored as 0)


def full_data_stages(df: pd.DataFrame, exclude: str | None = None) -> list[str]:
    """The stages (first-seen order) whose every cell trains on the full training set (sampler `full`), other
    than `exclude`: e.g. the frozen study's `eval_full`, which the size tables of the few-shot stage never show."""
    stages = [s for s in study_stages(df) if s != exclude]
    return [s for s in stages if set(df.loc[df["stage"] == s, "sampler"].astype(str)) == {FULL_SAMPLER}]


def select_stage(df: pd.DataFrame, stage: str | None = "eval") -> pd.DataFrame:
    """The rows of one study stage. A study without stages (every `stage` is "", or no such column) is
    returned whole; a staged study keeps only `stage` rows (none if that stage has no cells yet), so that
    e.g. tuning cells never reach headline tables or tests. `stage=None` keeps everything."""
    if stage is None or not study_stages(df):
        return df
    return df[df["stage"] == stage].reset_index(drop=True)


def protocols(df: pd.DataFrame) -> list[int]:
    """The distinct `protocol` values of a results frame, sorted (a frame without the column counts as v1)."""
    if df.empty:
        return []
    if "protocol" not in df:
        return [1]
    return sorted(int(p) for p in df["protocol"].dropna().unique())


V1_LABEL = ("protocol v1 (superseded): fixed 200 steps, one head lr, strict-IOB2 `f1` (now `f1_strict`; `f1` "
            "here is v1's default-mode `f1_default`, per-type F1 stay strict); descriptive only.")


def has_v1(df: pd.DataFrame) -> bool:
    """Whether any row comes from a protocol-v1 cell (superseded: descriptive only, no verdicts)."""
    return 1 in protocols(df)


def _read_parquet(path: Path) -> pa.Table | None:
    try:
        return pq.read_table(path)
    except Exception as error:  # noqa: BLE001 - a corrupt file is reported and skipped, never fatal
        log.warning("skipping unreadable parquet %s: %s", path, error)
        return None


def _align(table: pa.Table, source: Path) -> pa.Table | None:
    """The table in CELL_SCHEMA (v2), or None (skipped with a warning).

    A table with CELL_SCHEMA's (or CELL_SCHEMA_V2_NO_FINETUNE's, CELL_SCHEMA_V1's) columns is first cast to it (tolerates type widening),
    then goes through `upgrade_table`, which turns a protocol-v1 table into v2 and refuses what is neither."""
    if table.schema.equals(CELL_SCHEMA, check_metadata=False):
        return table
    for schema in (CELL_SCHEMA, CELL_SCHEMA_V2_NO_FINETUNE, CELL_SCHEMA_V1):
        if set(table.schema.names) == set(schema.names) and not table.schema.equals(schema, check_metadata=False):
            try:
                table = table.select(schema.names).cast(schema)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as error:
                log.warning("skipping %s: cannot cast to its schema: %s", source, error)
                return None
    try:
        return upgrade_table(table, str(source))
    except (ValueError, pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as error:
        # SchemaError is a ValueError
        log.warning("skipping %s: not a v1 or v2 results table: %s", source, error)
        return None


def done_cell_parquets(study_dir: str | Path) -> list[Path]:
    cells = Path(study_dir) / "cells"
    if not cells.is_dir():
        return []
    return sorted(p for p in cells.glob("*.parquet") if p.with_suffix(".done").exists())


def load_results(study_dir: str | Path) -> pd.DataFrame:
    """The study's long-format results (CELL_SCHEMA columns).

    Uses `<study_dir>/results.parquet` when present, else concatenates `cells/<run_id>.parquet` of cells
    with a `.done` marker. `study_dir` may also be a parquet file. A study without results gives an empty
    frame (with a warning); a path that does not exist is an error.
    """
    path = resolve_study_dir(study_dir)
    if not path.exists():
        raise FileNotFoundError(f"study directory not found: {study_dir}")
    if path.is_file():
        sources = [path]
    elif (path / RESULTS_FILE).exists():
        sources = [path / RESULTS_FILE]
    else:
        sources = done_cell_parquets(path)
    tables = []
    for source in sources:
        table = _read_parquet(source)
        table = _align(table, source) if table is not None else None
        if table is not None:
            tables.append(table)
    if not tables:
        log.warning("no results in %s (no %s and no done cells)", path, RESULTS_FILE)
        return empty_results()
    df = pa.concat_tables(tables).to_pandas()
    if sources and sources[0].name == RESULTS_FILE and path.is_dir():
        done = {p.stem for p in done_cell_parquets(path)}
        newer = done - set(df["run_id"])
        if newer:
            log.warning("%s lacks %d done cells (e.g. %s): collect the study again", RESULTS_FILE, len(newer),
                        sorted(newer)[0])
    before = len(df)
    df = df.drop_duplicates(subset=["run_id", "split", "step"], keep="last").reset_index(drop=True)
    if len(df) < before:
        log.warning("dropped %d duplicate (run_id, split, step) rows", before - len(df))
    return df


def load_manifests(study_dir: str | Path) -> list[dict[str, Any]]:
    """Manifests of done cells (`cells/<run_id>.manifest.json`), each with `run_id` set (from the file name
    if the manifest lacks it). Unreadable files are skipped with a warning."""
    path = resolve_study_dir(study_dir)
    cells = path / "cells"
    if not cells.is_dir():
        return []
    manifests = []
    for file in sorted(cells.glob("*.manifest.json")):
        run_id = file.name[: -len(".manifest.json")]
        if not (cells / f"{run_id}.done").exists():
            continue
        try:
            manifest = json.loads(file.read_text())
        except (OSError, ValueError) as error:
            log.warning("skipping unreadable manifest %s: %s", file, error)
            continue
        if not isinstance(manifest, dict):
            log.warning("skipping manifest %s: not a JSON object", file)
            continue
        manifest.setdefault("run_id", run_id)
        manifests.append(manifest)
    return manifests


def _get(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict) or key not in obj:
            return None
        obj = obj[key]
    return obj


def manifest_index(manifests: list[dict[str, Any]], df: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per manifest: run_id and the cell keys (method, backbone, finetune, sampler, size, data_seed, seed),
    taken from the manifest's config (`model.finetune` absent: "full"), else from the results rows of the same
    run_id."""
    from_df: dict[str, dict[str, Any]] = {}
    if df is not None and len(df):
        df = with_finetune(df)
        cols = ["run_id", "method", *CELL_KEYS]
        for row in df[cols].drop_duplicates("run_id").to_dict("records"):
            from_df[row["run_id"]] = row
    rows = []
    for manifest in manifests:
        config = manifest.get("config") or {}
        run_id = manifest.get("run_id")
        known = from_df.get(run_id, {})
        row = {
            "run_id": run_id,
            "method": _get(config, "model", "head", "name"),
            "backbone": _get(config, "model", "backbone"),
            "finetune": _get(config, "model", "finetune") or FINETUNE_DEFAULT,
            "sampler": _get(config, "data", "sampler"),
            "size": _get(config, "data", "size"),
            "data_seed": _get(config, "data", "data_seed"),
            "seed": _get(config, "train", "seed"),
        }
        for key in ("method", *CELL_KEYS):
            if known.get(key) is not None:          # the results table is what was actually recorded
                row[key] = known[key]
        rows.append(row)
    columns = ["run_id", "method", *CELL_KEYS]
    return pd.DataFrame(rows, columns=columns)
