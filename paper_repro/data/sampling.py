"""Few-shot training subsets of a NER corpus (CoNLL-03 by default): deterministic samplers and index-only subset files.

Version 1 draws every (sampler, size, data_seed) independently. Version 2 (protocol v2) walks one permutation
of the training sentences per data_seed, so a seed's subsets share their order: ``sentences`` subsets are
nested across sizes (50 within 100 within 200 ...) and ``ktype`` subsets grow with K along the same walk.

The entity types that ``ktype`` balances and that a subset's ``entity_counts`` list are the corpus' (its training
split's types in canonical order, `paper_repro.data.labels`; CoNLL-03: PER, LOC, ORG, MISC as before).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from paper_repro.atomic import atomic_write_bytes
from paper_repro.data.conll import DataError, Sentence, Split, entity_counts
from paper_repro.data.labels import LabelSet

SAMPLERS = ("sentences", "ktype")
SUBSET_VERSIONS = (1, 2)
def default_subset_dir() -> Path:
    """`data/subsets/conll2003` of the checkout (paper_repro.paths.project_root)."""
    from paper_repro.paths import project_root

    return project_root() / "data" / "subsets" / "conll2003"


@dataclass
class Subset:
    """A sampled training subset: sorted indices into ``train.sentences`` and their content hash."""

    sampler: str
    size: int
    data_seed: int
    version: int
    indices: list[int]
    entity_counts: dict[str, int]
    sha256: str


def content_sha256(sentences: Sequence[Sentence]) -> str:
    """sha256 of the sentences' tokens and tags (canonical JSON, in the given order)."""
    payload = [[list(sentence.tokens), list(sentence.tags)] for sentence in sentences]
    serialized = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(serialized.encode("utf-8")).hexdigest()


def sample_sentences(sentences: Sequence[Sentence], size: int, rng: random.Random) -> list[int]:
    """Indices of ``size`` sentences drawn uniformly without replacement."""
    if not 0 < size <= len(sentences):
        raise DataError(f"sentences sampler: expected 1 <= size <= {len(sentences)} (pool size), found {size}")
    return rng.sample(range(len(sentences)), size)


def entity_types(sentences: Sequence[Sentence]) -> tuple[str, ...]:
    """The entity types of a pool of sentences in canonical order (`LabelSet.from_sentences`)."""
    try:
        return LabelSet.from_sentences(sentences).types
    except ValueError as error:
        raise DataError(f"subset sampling: {error}") from None


def sample_ktype(
    sentences: Sequence[Sentence], k: int, rng: random.Random, types: Sequence[str] | None = None
) -> list[int]:
    """Greedy K-mentions-per-type sampling (Yang & Katiyar 2020), rarest type first.

    For each type (``types``, default: the pool's, `entity_types`), sentences containing it are drawn at random
    (without replacement) until the selection holds at least ``k`` of its mentions; every mention of a drawn
    sentence counts.
    """
    if k <= 0:
        raise DataError(f"ktype sampler: expected K >= 1, found {k}")
    types = entity_types(sentences) if types is None else tuple(types)
    counts_per_sentence = [entity_counts(sentence.tags) for sentence in sentences]
    pool_totals: Counter[str] = Counter()
    for counts in counts_per_sentence:
        pool_totals.update(counts)
    selected: list[int] = []
    selected_set: set[int] = set()
    selected_counts: Counter[str] = Counter()
    for entity_type in sorted(types, key=lambda name: pool_totals[name]):
        candidates = [
            index
            for index, counts in enumerate(counts_per_sentence)
            if counts[entity_type] and index not in selected_set
        ]
        rng.shuffle(candidates)
        while selected_counts[entity_type] < k:
            if not candidates:
                raise DataError(
                    f"ktype sampler: cannot reach K={k} {entity_type} mentions, the pool has "
                    f"{pool_totals[entity_type]}"
                )
            index = candidates.pop()
            selected.append(index)
            selected_set.add(index)
            selected_counts.update(counts_per_sentence[index])
    return selected


def permutation(n_sentences: int, data_seed: int) -> list[int]:
    """The v2 order of ``range(n_sentences)``: one shuffle seeded only by ``data_seed``."""
    order = list(range(n_sentences))
    random.Random(f"perm-{data_seed}").shuffle(order)
    return order


def sample_sentences_v2(order: Sequence[int], size: int) -> list[int]:
    """The first ``size`` indices of the permutation (so a smaller size is a prefix of a larger one)."""
    if not 0 < size <= len(order):
        raise DataError(f"sentences sampler: expected 1 <= size <= {len(order)} (pool size), found {size}")
    return list(order[:size])


def sample_ktype_v2(
    sentences: Sequence[Sentence], k: int, order: Sequence[int], types: Sequence[str] | None = None
) -> list[int]:
    """Greedy K-mentions-per-type sampling along a fixed permutation, in permutation order.

    A sentence is added if it holds a mention of a type still below ``k`` mentions (every mention of an added
    sentence counts); the walk stops once every type has at least ``k``. Subsets of one seed share this order
    and are nested across K, though not as prefixes like v2 ``sentences``: a sentence skipped at K has all its
    types at >= K already, so it holds none of a type still below K, and the walk for K' > K therefore takes
    every sentence the walk for K takes. ``types``: the types to balance (default: the pool's, `entity_types`).
    """
    if k <= 0:
        raise DataError(f"ktype sampler: expected K >= 1, found {k}")
    types = entity_types(sentences) if types is None else tuple(types)
    selected: list[int] = []
    selected_counts: Counter[str] = Counter()
    for index in order:
        if all(selected_counts[entity_type] >= k for entity_type in types):
            break
        counts = entity_counts(sentences[index].tags)
        if any(counts[entity_type] and selected_counts[entity_type] < k for entity_type in types):
            selected.append(index)
            selected_counts.update(counts)
    for entity_type in types:
        if selected_counts[entity_type] < k:
            raise DataError(
                f"ktype sampler: cannot reach K={k} {entity_type} mentions, the pool has {selected_counts[entity_type]}"
            )
    return selected


def _check_version(version: int) -> None:
    if isinstance(version, bool) or version not in SUBSET_VERSIONS:
        raise DataError(f"expected a subset version in {SUBSET_VERSIONS}, found {version!r}")


def subset_path(
    subset_dir: str | os.PathLike[str], sampler: str, size: int, data_seed: int, version: int = 2
) -> Path:
    """``<subset_dir>/<sampler>-<size>-seed<data_seed>.json`` (v1) or ``<sampler>-v2-<size>-seed<data_seed>.json``."""
    _check_version(version)
    tag = "" if version == 1 else f"v{version}-"
    return Path(subset_dir) / f"{sampler}-{tag}{size}-seed{data_seed}.json"


def _subset_from_indices(
    train: Split, sampler: str, size: int, data_seed: int, version: int, indices: list[int],
    types: Sequence[str] | None = None,
) -> Subset:
    sentences = [train.sentences[index] for index in indices]
    totals: Counter[str] = Counter()
    for sentence in sentences:
        totals.update(entity_counts(sentence.tags))
    return Subset(
        sampler=sampler,
        size=size,
        data_seed=data_seed,
        version=version,
        indices=indices,
        entity_counts={entity_type: totals[entity_type]
                       for entity_type in (entity_types(train.sentences) if types is None else types)},
        sha256=content_sha256(sentences),
    )


def create_subset(
    train: Split, sampler: str, size: int, data_seed: int, version: int = 2, types: Sequence[str] | None = None
) -> Subset:
    """Sample a subset: v1 with an RNG seeded only by (sampler, size, data_seed), v2 along ``permutation``.
    ``types``: the corpus' entity types (default: the training split's, `entity_types`)."""
    _check_version(version)
    if sampler not in SAMPLERS:
        raise DataError(f"expected a sampler in {SAMPLERS}, found {sampler!r}")
    types = entity_types(train.sentences) if types is None else tuple(types)
    if version == 1:
        rng = random.Random(f"{sampler}-{size}-{data_seed}")
        if sampler == "sentences":
            indices = sample_sentences(train.sentences, size, rng)
        else:
            indices = sample_ktype(train.sentences, size, rng, types)
    else:
        order = permutation(len(train.sentences), data_seed)
        if sampler == "sentences":
            indices = sample_sentences_v2(order, size)
        else:
            indices = sample_ktype_v2(train.sentences, size, order, types)
    return _subset_from_indices(train, sampler, size, data_seed, version, sorted(indices), types)


def _load_subset(path: Path, train: Split, sampler: str, size: int, data_seed: int, version: int,
                 types: Sequence[str] | None = None) -> Subset:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        indices = [int(index) for index in record["indices"]]
        stored_sha256 = str(record["sha256"])
        stored_request = (record["sampler"], record["size"], record["data_seed"])
        stored_version = record.get("version", 1)  # v1 files carry no version
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise DataError(f"{path}: expected a subset JSON file, could not read it ({error})") from None
    if stored_version != version:
        raise DataError(f"{path}: expected subset version {version}, found {stored_version!r}")
    if stored_request != (sampler, size, data_seed):
        raise DataError(f"{path}: expected subset {(sampler, size, data_seed)}, found {stored_request}")
    if not all(0 <= index < len(train.sentences) for index in indices):
        raise DataError(f"{path}: indices out of range for a train split of {len(train.sentences)} sentences")
    subset = _subset_from_indices(train, sampler, size, data_seed, version, indices, types)
    if subset.sha256 != stored_sha256:
        raise DataError(
            f"{path}: subset content sha256 mismatch, the train data differs from the one it was drawn from"
        )
    return subset


def _write_subset(path: Path, train: Split, subset: Subset) -> None:
    selected = select(train, subset)
    fields = asdict(subset)
    if subset.version == 1:  # v1 files keep their original layout (no version key)
        del fields["version"]
    record = {
        **fields,
        "train_sha256": train.sha256,
        "n_sentences": len(selected),
        "n_tokens": sum(len(sentence.tokens) for sentence in selected),
    }
    atomic_write_bytes(path, (json.dumps(record, indent=1) + "\n").encode(), mode=0o644)


def load_or_create_subset(
    train: Split,
    sampler: str,
    size: int,
    data_seed: int,
    subset_dir: str | os.PathLike[str] | None = None,
    version: int = 2,
    types: Sequence[str] | None = None,
) -> Subset:
    """Load the subset file if present (verifying its version and content hash against ``train``), else
    sample it and write the file (indices and counts only, never text) atomically. ``types``: the corpus'
    entity types (default: the training split's)."""
    path = subset_path(default_subset_dir() if subset_dir is None else subset_dir, sampler, size, data_seed, version)
    types = entity_types(train.sentences) if types is None else tuple(types)
    if path.exists():
        return _load_subset(path, train, sampler, size, data_seed, version, types)
    subset = create_subset(train, sampler, size, data_seed, version, types)
    _write_subset(path, train, subset)
    return subset


def select(train: Split, subset: Subset) -> list[Sentence]:
    """The subset's sentences, in index order."""
    return [train.sentences[index] for index in subset.indices]
