"""Tests for paper_repro.data.sampling on an invented pool, plus K-type sampling on the shared CoNLL-03 copy."""

from __future__ import annotations

import dataclasses
import json
import os
import random
from collections import Counter
from pathlib import Path

import pytest

from paper_repro.data.conll import (
    ENTITY_TYPES,
    DataError,
    Sentence,
    Split,
    entity_counts,
    find_split_files,
    read_conll,
)
from paper_repro.data.sampling import (
    DEFAULT_SUBSET_DIR,
    content_sha256,
    create_subset,
    load_or_create_subset,
    sample_ktype,
    sample_sentences,
    select,
    subset_path,
)

REAL_DATA_DIR = Path(os.environ.get("PAPER_REPRO_CONLL03", "/work/shared/data/conll2003"))

TEMPLATES = [
    (("Alice", "visited", "Paris"), ("B-PER", "O", "B-LOC")),
    (("Bob", "Stone", "joined", "Acme"), ("B-PER", "I-PER", "O", "B-ORG")),
    (("Zorblatt", "fans", "cheered"), ("B-MISC", "O", "O")),
    (("It", "rained"), ("O", "O")),
    (("Carol", "met", "Dave", "in", "Oslo"), ("B-PER", "O", "B-PER", "O", "B-LOC")),
    (("Globex", "and", "Initech", "merged"), ("B-ORG", "O", "B-ORG", "O")),
]


def invented_train(n_sentences: int = 60) -> Split:
    sentences = [
        Sentence(tuple(f"{token}{index}" for token in tokens), tags, index // 10)
        for index in range(n_sentences)
        for tokens, tags in [TEMPLATES[index % len(TEMPLATES)]]
    ]
    return Split("train", sentences, source="invented", sha256="f" * 64, scheme="iob2")


def counts_of(sentences: list[Sentence]) -> Counter[str]:
    total: Counter[str] = Counter()
    for sentence in sentences:
        total.update(entity_counts(sentence.tags))
    return total


def test_sample_sentences_uniform_without_replacement() -> None:
    train = invented_train()
    indices = sample_sentences(train.sentences, 20, random.Random(0))
    assert len(set(indices)) == 20
    assert all(0 <= index < 60 for index in indices)
    with pytest.raises(DataError, match="pool size"):
        sample_sentences(train.sentences, 61, random.Random(0))


@pytest.mark.parametrize("sampler", ["sentences", "ktype"])
def test_create_subset_deterministic_per_seed(sampler: str) -> None:
    train = invented_train()
    first = create_subset(train, sampler, 3, data_seed=1)
    assert create_subset(train, sampler, 3, data_seed=1) == first
    assert first.indices == sorted(first.indices)
    other_seeds = [create_subset(train, sampler, 3, data_seed=seed).indices for seed in range(2, 6)]
    assert any(indices != first.indices for indices in other_seeds)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_ktype_reaches_k_for_every_type(k: int) -> None:
    train = invented_train()
    for seed in range(5):
        indices = sample_ktype(train.sentences, k, random.Random(seed))
        assert len(set(indices)) == len(indices)
        counts = counts_of([train.sentences[index] for index in indices])
        assert all(counts[entity_type] >= k for entity_type in ENTITY_TYPES)


def test_ktype_rarest_type_first() -> None:
    train = invented_train()
    first_index = sample_ktype(train.sentences, 1, random.Random(0))[0]
    assert entity_counts(train.sentences[first_index].tags)["MISC"] > 0


def test_ktype_unreachable_k() -> None:
    with pytest.raises(DataError, match="cannot reach K=11 MISC"):
        sample_ktype(invented_train().sentences, 11, random.Random(0))


def test_unknown_sampler() -> None:
    with pytest.raises(DataError, match="sampler"):
        create_subset(invented_train(), "stratified", 5, 0)


def test_subset_path_and_default_dir(tmp_path: Path) -> None:
    assert subset_path(tmp_path, "ktype", 5, 3) == tmp_path / "ktype-5-seed3.json"
    assert DEFAULT_SUBSET_DIR == Path(__file__).resolve().parents[2] / "data" / "subsets" / "conll2003"


def test_subset_file_round_trip(tmp_path: Path) -> None:
    train = invented_train()
    created = load_or_create_subset(train, "ktype", 2, 7, tmp_path)
    path = tmp_path / "ktype-2-seed7.json"
    record = json.loads(path.read_text())
    assert set(record) == {
        "sampler", "size", "data_seed", "indices", "entity_counts", "sha256", "train_sha256", "n_sentences", "n_tokens",
    }
    assert record["train_sha256"] == train.sha256
    assert record["n_sentences"] == len(created.indices)
    assert "Alice0" not in path.read_text()
    assert list(tmp_path.iterdir()) == [path]
    assert path.stat().st_mode & 0o777 == 0o644
    assert load_or_create_subset(train, "ktype", 2, 7, tmp_path) == created
    selected = select(train, created)
    assert content_sha256(selected) == created.sha256
    assert created.entity_counts == {entity_type: counts_of(selected)[entity_type] for entity_type in ENTITY_TYPES}


def test_subset_file_detects_changed_train(tmp_path: Path) -> None:
    train = invented_train()
    subset = load_or_create_subset(train, "sentences", 10, 0, tmp_path)
    edited = train.sentences[subset.indices[0]]
    train.sentences[subset.indices[0]] = dataclasses.replace(edited, tokens=("Mallory",) + edited.tokens[1:])
    with pytest.raises(DataError, match="sentences-10-seed0.json: .*train data differs"):
        load_or_create_subset(train, "sentences", 10, 0, tmp_path)


def test_subset_file_for_other_request_is_rejected(tmp_path: Path) -> None:
    train = invented_train()
    load_or_create_subset(train, "sentences", 10, 0, tmp_path)
    os.replace(tmp_path / "sentences-10-seed0.json", tmp_path / "sentences-10-seed1.json")
    with pytest.raises(DataError, match="expected subset"):
        load_or_create_subset(train, "sentences", 10, 1, tmp_path)


def test_real_conll03_ktype_5() -> None:
    if not REAL_DATA_DIR.is_dir():
        pytest.skip(f"CoNLL-03 not found at {REAL_DATA_DIR}")
    train = read_conll(find_split_files(REAL_DATA_DIR)["train"])
    subset = create_subset(train, "ktype", 5, data_seed=0)
    assert all(subset.entity_counts[entity_type] >= 5 for entity_type in ENTITY_TYPES)
    assert subset.entity_counts == {entity_type: counts_of(select(train, subset))[entity_type] for entity_type in ENTITY_TYPES}
