"""Few-shot training subsets of CoNLL-03: deterministic samplers and index-only subset files."""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from paper_repro.data.conll import ENTITY_TYPES, DataError, Sentence, Split, entity_counts

SAMPLERS = ("sentences", "ktype")
DEFAULT_SUBSET_DIR = Path(__file__).resolve().parents[2] / "data" / "subsets" / "conll2003"


@dataclass
class Subset:
    """A sampled training subset: sorted indices into ``train.sentences`` and their content hash."""

    sampler: str
    size: int
    data_seed: int
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


def sample_ktype(sentences: Sequence[Sentence], k: int, rng: random.Random) -> list[int]:
    """Greedy K-mentions-per-type sampling (Yang & Katiyar 2020), rarest type first.

    For each type, sentences containing it are drawn at random (without replacement) until the
    selection holds at least ``k`` of its mentions; every mention of a drawn sentence counts.
    """
    if k <= 0:
        raise DataError(f"ktype sampler: expected K >= 1, found {k}")
    counts_per_sentence = [entity_counts(sentence.tags) for sentence in sentences]
    pool_totals: Counter[str] = Counter()
    for counts in counts_per_sentence:
        pool_totals.update(counts)
    selected: list[int] = []
    selected_set: set[int] = set()
    selected_counts: Counter[str] = Counter()
    for entity_type in sorted(ENTITY_TYPES, key=lambda name: pool_totals[name]):
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


def subset_path(subset_dir: str | os.PathLike[str], sampler: str, size: int, data_seed: int) -> Path:
    """``<subset_dir>/<sampler>-<size>-seed<data_seed>.json``."""
    return Path(subset_dir) / f"{sampler}-{size}-seed{data_seed}.json"


def _subset_from_indices(train: Split, sampler: str, size: int, data_seed: int, indices: list[int]) -> Subset:
    sentences = [train.sentences[index] for index in indices]
    totals: Counter[str] = Counter()
    for sentence in sentences:
        totals.update(entity_counts(sentence.tags))
    return Subset(
        sampler=sampler,
        size=size,
        data_seed=data_seed,
        indices=indices,
        entity_counts={entity_type: totals[entity_type] for entity_type in ENTITY_TYPES},
        sha256=content_sha256(sentences),
    )


def create_subset(train: Split, sampler: str, size: int, data_seed: int) -> Subset:
    """Sample a subset with an RNG seeded only by (sampler, size, data_seed)."""
    rng = random.Random(f"{sampler}-{size}-{data_seed}")
    if sampler == "sentences":
        indices = sample_sentences(train.sentences, size, rng)
    elif sampler == "ktype":
        indices = sample_ktype(train.sentences, size, rng)
    else:
        raise DataError(f"expected a sampler in {SAMPLERS}, found {sampler!r}")
    return _subset_from_indices(train, sampler, size, data_seed, sorted(indices))


def _load_subset(path: Path, train: Split, sampler: str, size: int, data_seed: int) -> Subset:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        indices = [int(index) for index in record["indices"]]
        stored_sha256 = str(record["sha256"])
        stored_request = (record["sampler"], record["size"], record["data_seed"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(f"{path}: expected a subset JSON file, could not read it ({error})") from None
    if stored_request != (sampler, size, data_seed):
        raise DataError(f"{path}: expected subset {(sampler, size, data_seed)}, found {stored_request}")
    if not all(0 <= index < len(train.sentences) for index in indices):
        raise DataError(f"{path}: indices out of range for a train split of {len(train.sentences)} sentences")
    subset = _subset_from_indices(train, sampler, size, data_seed, indices)
    if subset.sha256 != stored_sha256:
        raise DataError(
            f"{path}: subset content sha256 mismatch, the train data differs from the one it was drawn from"
        )
    return subset


def _write_subset(path: Path, train: Split, subset: Subset) -> None:
    selected = select(train, subset)
    record = {
        **asdict(subset),
        "train_sha256": train.sha256,
        "n_sentences": len(selected),
        "n_tokens": sum(len(sentence.tokens) for sentence in selected),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, suffix=".tmp", delete=False) as tmp:
        try:
            json.dump(record, tmp, indent=1)
            tmp.write("\n")
        except BaseException:
            os.unlink(tmp.name)
            raise
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, path)


def load_or_create_subset(
    train: Split,
    sampler: str,
    size: int,
    data_seed: int,
    subset_dir: str | os.PathLike[str] | None = None,
) -> Subset:
    """Load the subset file if present (verifying its content hash against ``train``), else
    sample it and write the file (indices and counts only, never text) atomically."""
    path = subset_path(DEFAULT_SUBSET_DIR if subset_dir is None else subset_dir, sampler, size, data_seed)
    if path.exists():
        return _load_subset(path, train, sampler, size, data_seed)
    subset = create_subset(train, sampler, size, data_seed)
    _write_subset(path, train, subset)
    return subset


def select(train: Split, subset: Subset) -> list[Sentence]:
    """The subset's sentences, in index order."""
    return [train.sentences[index] for index in subset.indices]
