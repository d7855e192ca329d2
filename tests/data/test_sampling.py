"""Tests for paper_repro.data.sampling on an invented pool (v1 independent draws, v2 nested draws along one
permutation per data seed), plus sampling and the committed v1 subset files on the shared CoNLL-03 copy."""

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
    default_subset_dir,
    SAMPLERS,
    SUBSET_VERSIONS,
    content_sha256,
    create_subset,
    load_or_create_subset,
    permutation,
    sample_ktype,
    sample_ktype_v2,
    sample_sentences,
    select,
    subset_path,
)


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


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("sampler", ["sentences", "ktype"])
def test_create_subset_deterministic_per_seed(sampler: str, version: int) -> None:
    train = invented_train()
    first = create_subset(train, sampler, 3, data_seed=1, version=version)
    assert create_subset(train, sampler, 3, data_seed=1, version=version) == first
    assert first.version == version
    assert first.indices == sorted(first.indices)
    other_seeds = [create_subset(train, sampler, 3, data_seed=seed, version=version).indices for seed in range(2, 6)]
    assert any(indices != first.indices for indices in other_seeds)


def test_versions_and_default() -> None:
    assert SUBSET_VERSIONS == (1, 2) and SAMPLERS == ("sentences", "ktype")
    train = invented_train()
    assert create_subset(train, "sentences", 5, 0) == create_subset(train, "sentences", 5, 0, version=2)
    for version in (0, 3, True, "2"):
        with pytest.raises(DataError, match="subset version"):
            create_subset(train, "sentences", 5, 0, version=version)


def test_permutation_seeded_by_data_seed_only() -> None:
    order = permutation(60, 0)
    assert sorted(order) == list(range(60)) and order == permutation(60, 0)
    assert order != list(range(60)) and order != permutation(60, 1)


def test_v2_sentences_nested_across_sizes() -> None:
    train = invented_train()
    for seed in range(3):
        subsets = [create_subset(train, "sentences", size, seed) for size in (5, 10, 20, 40, 60)]
        for small, large in zip(subsets, subsets[1:]):
            assert set(small.indices) < set(large.indices)
        # a size-N subset is the first N of the seed's permutation
        assert set(subsets[1].indices) == set(permutation(60, seed)[:10])
    assert create_subset(train, "sentences", 10, 0).indices != create_subset(train, "sentences", 10, 1).indices
    with pytest.raises(DataError, match="pool size"):
        create_subset(train, "sentences", 61, 0)


def test_v1_sentences_draws_are_independent() -> None:
    train = invented_train()
    small = create_subset(train, "sentences", 10, 0, version=1)
    large = create_subset(train, "sentences", 40, 0, version=1)
    assert not set(small.indices) <= set(large.indices)


def needed_replay(train: Split, selected: list[int], k: int) -> None:
    """Every selected sentence, in selection order, held a type still below K when it was added."""
    counts: Counter[str] = Counter()
    for index in selected:
        sentence_counts = entity_counts(train.sentences[index].tags)
        assert any(sentence_counts[t] and counts[t] < k for t in ENTITY_TYPES), index
        counts.update(sentence_counts)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_v2_ktype_guarantees(k: int) -> None:
    train = invented_train()
    for seed in range(5):
        order = permutation(60, seed)
        selected = sample_ktype_v2(train.sentences, k, order)
        assert len(set(selected)) == len(selected)
        counts = counts_of([train.sentences[index] for index in selected])
        assert all(counts[entity_type] >= k for entity_type in ENTITY_TYPES)
        needed_replay(train, selected, k)
        positions = [order.index(index) for index in selected]
        assert positions == sorted(positions)                  # follows the permutation
        # the walk stops as soon as every type reaches K: without the last sentence some type is below K
        before = counts_of([train.sentences[index] for index in selected[:-1]])
        assert any(before[entity_type] < k for entity_type in ENTITY_TYPES)
        # every sentence skipped before the last selected one held only types already at >= K
        counts = Counter()
        for index in order[: order.index(selected[-1]) + 1]:
            sentence_counts = entity_counts(train.sentences[index].tags)
            if index in selected:
                counts.update(sentence_counts)
            else:
                assert all(counts[t] >= k for t in ENTITY_TYPES if sentence_counts[t]), index
        assert create_subset(train, "ktype", k, seed).indices == sorted(selected)


def test_v2_ktype_nested_across_k() -> None:
    train = invented_train()
    for seed in range(5):
        subsets = [set(create_subset(train, "ktype", k, seed).indices) for k in (1, 2, 3, 5, 8, 10)]
        assert all(small <= large for small, large in zip(subsets, subsets[1:]))


def test_v2_ktype_unreachable_k() -> None:
    with pytest.raises(DataError, match="cannot reach K=11 MISC mentions, the pool has 10"):
        create_subset(invented_train(), "ktype", 11, 0)


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
    assert subset_path(tmp_path, "ktype", 5, 3, version=1) == tmp_path / "ktype-5-seed3.json"
    assert subset_path(tmp_path, "ktype", 5, 3, version=2) == tmp_path / "ktype-v2-5-seed3.json"
    assert subset_path(tmp_path, "ktype", 5, 3) == tmp_path / "ktype-v2-5-seed3.json"
    with pytest.raises(DataError, match="subset version"):
        subset_path(tmp_path, "ktype", 5, 3, version=3)
    assert default_subset_dir() == Path(__file__).resolve().parents[2] / "data" / "subsets" / "conll2003"


V1_KEYS = {
    "sampler", "size", "data_seed", "indices", "entity_counts", "sha256", "train_sha256", "n_sentences", "n_tokens",
}


@pytest.mark.parametrize("version", [1, 2])
def test_subset_file_round_trip(tmp_path: Path, version: int) -> None:
    train = invented_train()
    created = load_or_create_subset(train, "ktype", 2, 7, tmp_path, version=version)
    path = tmp_path / ("ktype-2-seed7.json" if version == 1 else "ktype-v2-2-seed7.json")
    record = json.loads(path.read_text())
    assert set(record) == (V1_KEYS if version == 1 else V1_KEYS | {"version"})   # v1 files keep their old layout
    assert record.get("version", 1) == version == created.version
    assert record["train_sha256"] == train.sha256
    assert record["n_sentences"] == len(created.indices)
    assert "Alice0" not in path.read_text()
    assert list(tmp_path.iterdir()) == [path]
    assert path.stat().st_mode & 0o777 == 0o644
    assert load_or_create_subset(train, "ktype", 2, 7, tmp_path, version=version) == created
    selected = select(train, created)
    assert content_sha256(selected) == created.sha256
    assert created.entity_counts == {entity_type: counts_of(selected)[entity_type] for entity_type in ENTITY_TYPES}


def test_subset_file_detects_changed_train(tmp_path: Path) -> None:
    train = invented_train()
    subset = load_or_create_subset(train, "sentences", 10, 0, tmp_path)
    edited = train.sentences[subset.indices[0]]
    train.sentences[subset.indices[0]] = dataclasses.replace(edited, tokens=("Mallory",) + edited.tokens[1:])
    with pytest.raises(DataError, match="sentences-v2-10-seed0.json: .*train data differs"):
        load_or_create_subset(train, "sentences", 10, 0, tmp_path)


def test_subset_file_for_other_request_is_rejected(tmp_path: Path) -> None:
    train = invented_train()
    load_or_create_subset(train, "sentences", 10, 0, tmp_path)
    os.replace(tmp_path / "sentences-v2-10-seed0.json", tmp_path / "sentences-v2-10-seed1.json")
    with pytest.raises(DataError, match="expected subset"):
        load_or_create_subset(train, "sentences", 10, 1, tmp_path)


def test_subset_file_version_mismatch(tmp_path: Path) -> None:
    train = invented_train()
    v2 = load_or_create_subset(train, "sentences", 10, 0, tmp_path, version=2)
    load_or_create_subset(train, "sentences", 10, 0, tmp_path, version=1)
    os.replace(tmp_path / "sentences-v2-10-seed0.json", tmp_path / "sentences-10-seed0.json")   # v2 under a v1 name
    with pytest.raises(DataError, match=r"sentences-10-seed0.json: expected subset version 1, found 2"):
        load_or_create_subset(train, "sentences", 10, 0, tmp_path, version=1)
    (tmp_path / "sentences-10-seed0.json").unlink()
    load_or_create_subset(train, "sentences", 10, 0, tmp_path, version=1)
    os.replace(tmp_path / "sentences-10-seed0.json", tmp_path / "sentences-v2-10-seed0.json")   # v1 under a v2 name
    with pytest.raises(DataError, match=r"sentences-v2-10-seed0.json: expected subset version 2, found 1"):
        load_or_create_subset(train, "sentences", 10, 0, tmp_path, version=2)
    assert v2.version == 2


@pytest.fixture(scope="module")
def real_train(real_data_dir: Path) -> Split:
    return read_conll(find_split_files(real_data_dir)["train"])


@pytest.mark.slow
@pytest.mark.parametrize("version", [1, 2])
def test_real_conll03_ktype_5(real_train: Split, version: int) -> None:
    subset = create_subset(real_train, "ktype", 5, data_seed=0, version=version)
    assert all(subset.entity_counts[entity_type] >= 5 for entity_type in ENTITY_TYPES)
    counts = counts_of(select(real_train, subset))
    assert subset.entity_counts == {entity_type: counts[entity_type] for entity_type in ENTITY_TYPES}


@pytest.mark.slow
def test_real_conll03_v2_nested(real_train: Split) -> None:
    for seed in range(2):
        sizes = [set(create_subset(real_train, "sentences", n, seed).indices) for n in (50, 100, 200, 1000)]
        assert all(small < large for small, large in zip(sizes, sizes[1:]))
        ks = [set(create_subset(real_train, "ktype", k, seed).indices) for k in (1, 5, 10, 20)]
        assert all(small <= large for small, large in zip(ks, ks[1:]))


@pytest.mark.slow
def test_committed_v1_files_still_load_unchanged(real_train: Split) -> None:
    files = sorted(p for p in default_subset_dir().glob("*.json") if "-v2-" not in p.name)  # the v1 files
    assert files, f"no committed subset files under {default_subset_dir()}"
    for path in files:
        before = path.read_bytes()
        record = json.loads(before)
        assert "version" not in record
        sampler, size, seed = record["sampler"], record["size"], record["data_seed"]
        assert path == subset_path(default_subset_dir(), sampler, size, seed, version=1)
        subset = load_or_create_subset(real_train, sampler, size, seed, version=1)
        assert subset.version == 1 and subset.indices == record["indices"]
        assert path.read_bytes() == before
    # the v1 sampler still draws what the committed files hold
    first = json.loads(files[0].read_text())
    redrawn = create_subset(real_train, first["sampler"], first["size"], first["data_seed"], version=1)
    assert redrawn.indices == first["indices"]
