"""NER corpora in CoNLL column format (CoNLL-03 English by default): reading column files or the hub dataset into
validated IOB2 splits.

A corpus in `data.data_dir` may use any entity types: its label set is read from the training split
(`paper_repro.data.labels`: canonical order, CoNLL-03's exactly as before). A tag the IOB scheme cannot parse is a
one-line `DataError` naming file and line; so is a tag in valid/test whose type does not occur in train (the
classifier has no label for it, and a type no training sentence shows cannot be learned or fairly scored).
The hub dataset (no data dir) is CoNLL-03 and must carry CoNLL-03's label names.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paper_repro.data.labels import CONLL03, CONLL03_TYPES, LabelSet, parse_tag

# CoNLL-03's label set (the default corpus); another corpus' labels: `corpus_labels(splits)`
ENTITY_TYPES = CONLL03_TYPES
LABELS = list(CONLL03.labels)
LABEL2ID = dict(CONLL03.label2id)

DATA_DIR_ENV = "PAPER_REPRO_CONLL03"
SPLIT_NAMES = ("train", "valid", "test")
SPLIT_FILE_CANDIDATES = {
    "train": ("train.txt", "train", "eng.train"),
    "valid": ("valid.txt", "valid", "validation.txt", "dev.txt", "eng.testa"),
    "test": ("test.txt", "test", "eng.testb"),
}
HUB_SPLIT_NAMES = {"train": "train", "valid": "validation", "test": "test"}
DOCSTART = "-DOCSTART-"


class DataError(ValueError):
    """Invalid or missing input data; the message is one line."""


@dataclass(frozen=True)
class Sentence:
    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    doc_id: int


@dataclass
class Split:
    name: str
    sentences: list[Sentence]
    source: str
    sha256: str | None
    scheme: str


def _to_iob2(
    tags: Sequence[str], *, where: Sequence[str], convert_iob1: bool, strict_iob2: bool
) -> tuple[tuple[str, ...], bool]:
    """Validate one sentence's IOB tags; return IOB2 tags and whether any tag was converted.

    ``where[i]`` locates tag ``i`` for error messages.
    """
    result: list[str] = []
    converted = False
    previous = "O"
    for tag, location in zip(tags, where):
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            if convert_iob1:
                tag = "B-" + tag[2:]
                converted = True
            elif strict_iob2:
                raise DataError(
                    f"{location}: expected {tag} to follow B-{tag[2:]} or {tag}, found it after "
                    f"{previous} (IOB1 data? set data.convert_iob1=true, or --convert-iob1)"
                )
        result.append(tag)
        previous = tag
    return tuple(result), converted


def _read_text(path: Path) -> tuple[str, str]:
    """Return the file's UTF-8 text and sha256, rejecting missing, binary and empty files."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    raw = path.read_bytes()
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise DataError(f"{path}: expected a text file, found a NUL byte at offset {nul} (binary file?)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: expected UTF-8 text, undecodable byte at offset {error.start}") from None
    return text, hashlib.sha256(raw).hexdigest()


def read_conll(
    path: str | os.PathLike[str],
    *,
    convert_iob1: bool = False,
    strict_iob2: bool = True,
    labels: LabelSet | Sequence[str] | None = LABELS,
    label_source: str | None = None,
) -> Split:
    """Read a CoNLL column file (2 or 4 columns, tag last) into a Split.

    Sentences are separated by blank lines; each ``-DOCSTART-`` line starts a new document.
    With ``convert_iob1`` IOB1 tags are rewritten to IOB2; otherwise, when ``strict_iob2``,
    an ``I-X`` that does not continue an ``X`` entity is an error. Every tag must parse as ``O``, ``B-<type>``
    or ``I-<type>`` (`paper_repro.data.labels.parse_tag`); ``labels`` restricts the tags further: CoNLL-03's
    (the default), a corpus' LabelSet (a type outside it is an error; ``label_source`` says where the set
    was read, for the message), or None (any type).
    """
    path = Path(path)
    text, sha256 = _read_text(path)
    allowed = None if labels is None else set(labels.labels if isinstance(labels, LabelSet) else labels)
    sentences: list[Sentence] = []
    any_converted = False
    doc_id = 0
    doc_has_sentences = False
    tokens: list[str] = []
    tags: list[str] = []
    where: list[str] = []

    def flush() -> None:
        nonlocal any_converted, doc_has_sentences
        if not tokens:
            return
        iob2_tags, converted = _to_iob2(tags, where=where, convert_iob1=convert_iob1, strict_iob2=strict_iob2)
        any_converted |= converted
        sentences.append(Sentence(tuple(tokens), iob2_tags, doc_id))
        doc_has_sentences = True
        tokens.clear()
        tags.clear()
        where.clear()

    for line_number, line in enumerate(text.splitlines(), start=1):
        columns = line.split()
        if not columns:
            flush()
            continue
        if columns[0] == DOCSTART:
            flush()
            if doc_has_sentences:
                doc_id += 1
                doc_has_sentences = False
            continue
        location = f"{path}:{line_number}"
        if len(columns) not in (2, 4):
            raise DataError(f"{location}: expected 2 or 4 whitespace-separated columns, found {len(columns)}")
        tag = columns[-1]
        try:
            entity_type = parse_tag(tag)
        except ValueError as error:
            raise DataError(f"{location}: {error}") from None
        if allowed is not None and tag not in allowed:
            if isinstance(labels, LabelSet):
                where = f" read from the training split {label_source}" if label_source else ""
                raise DataError(f"{location}: entity type {entity_type!r} (tag {tag!r}) is not in the label "
                                f"set{where} (types: {', '.join(labels.types)}); every type must occur in train")
            raise DataError(f"{location}: expected a tag in {{{', '.join(labels)}}}, found {tag!r}")
        tokens.append(columns[0])
        tags.append(tag)
        where.append(location)
    flush()
    if not sentences:
        raise DataError(f"{path}: expected at least one sentence, found an empty file")
    return Split(
        name=path.stem,
        sentences=sentences,
        source=str(path),
        sha256=sha256,
        scheme="iob1->iob2" if any_converted else "iob2",
    )


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path | None:
    """The CoNLL-03 directory: the explicit argument, else ``$PAPER_REPRO_CONLL03``, else None."""
    if data_dir:
        return Path(data_dir)
    from_env = os.environ.get(DATA_DIR_ENV)
    return Path(from_env) if from_env else None


def find_split_files(data_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Locate the train/valid/test files in ``data_dir`` under their common names."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: data directory not found")
    files: dict[str, Path] = {}
    for split, candidates in SPLIT_FILE_CANDIDATES.items():
        found = next((data_dir / name for name in candidates if (data_dir / name).is_file()), None)
        if found is None:
            raise DataError(f"{data_dir}: no {split} split file, tried {', '.join(candidates)}")
        files[split] = found
    return files


def _class_label_names(dataset: Any, split: str) -> list[str]:
    tag_feature = getattr(dataset.features.get("ner_tags"), "feature", None)
    names = getattr(tag_feature, "names", None)
    if names is None:
        raise DataError(f"{split}: expected ner_tags to be a sequence of ClassLabel, found {tag_feature!r}")
    return list(names)


def splits_from_hf_dataset(
    dataset_dict: Mapping[str, Any],
    *,
    source: str = "datasets",
    convert_iob1: bool = False,
    strict_iob2: bool = True,
) -> dict[str, Split]:
    """Map a DatasetDict (train/validation/test with ``tokens``, ClassLabel ``ner_tags`` and
    optional ``document_id``) to Splits keyed train/valid/test with our label names."""
    splits: dict[str, Split] = {}
    for split, hub_split in HUB_SPLIT_NAMES.items():
        if hub_split not in dataset_dict:
            raise DataError(f"{source}: expected a {hub_split!r} split, found {sorted(dataset_dict)}")
        dataset = dataset_dict[hub_split]
        names = _class_label_names(dataset, f"{source}[{hub_split}]")
        unknown = [name for name in names if name not in LABEL2ID]
        if unknown:
            raise DataError(f"{source}[{hub_split}]: expected labels in {{{', '.join(LABELS)}}}, found {unknown}")
        doc_ids = dataset["document_id"] if "document_id" in dataset.column_names else None
        sentences: list[Sentence] = []
        any_converted = False
        for row, (tokens, tag_ids) in enumerate(zip(dataset["tokens"], dataset["ner_tags"])):
            where = [f"{source}[{hub_split}][{row}][{position}]" for position in range(len(tag_ids))]
            tags, converted = _to_iob2(
                [names[tag_id] for tag_id in tag_ids],
                where=where,
                convert_iob1=convert_iob1,
                strict_iob2=strict_iob2,
            )
            any_converted |= converted
            sentences.append(Sentence(tuple(tokens), tags, int(doc_ids[row]) if doc_ids is not None else 0))
        splits[split] = Split(
            name=split,
            sentences=sentences,
            source=f"{source}[{hub_split}]",
            sha256=None,
            scheme="iob1->iob2" if any_converted else "iob2",
        )
    return splits


def load_conll03(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    hub_id: str = "tomaarsen/conll2003",
    convert_iob1: bool = False,
    strict_iob2: bool = True,
    hub_revision: str | None = None,
) -> dict[str, Split]:
    """Load train/valid/test from local files if a data dir resolves (any corpus in CoNLL format), else CoNLL-03
    from the hub (`hub_id` at `hub_revision`, None: main).

    Local files: the label set is read from the train file (any types); a valid/test tag of another type is a
    DataError naming its file and line, as is a train file without any entity tag.
    """
    resolved = resolve_data_dir(data_dir)
    if resolved is not None:
        files = find_split_files(resolved)
        splits = {"train": read_conll(files["train"], convert_iob1=convert_iob1, strict_iob2=strict_iob2,
                                      labels=None)}
        label_set = corpus_labels(splits)
        for split, path in files.items():
            if split != "train":
                splits[split] = read_conll(path, convert_iob1=convert_iob1, strict_iob2=strict_iob2,
                                           labels=label_set, label_source=str(files["train"]))
        for split, loaded in splits.items():
            loaded.name = split
        return {split: splits[split] for split in files}
    try:
        import datasets   # a declared dependency; missing in a hand-made environment (as on a lent GPU machine)

        dataset = datasets.load_dataset(hub_id, revision=hub_revision)
    except Exception as error:  # noqa: BLE001 - offline, unknown id, no cache, no datasets: one line, not a traceback
        reason = (str(error).strip().splitlines() or [""])[0][:200]
        raise DataError(f"no local CoNLL-03 folder (data.data_dir or ${DATA_DIR_ENV}) and the hub dataset {hub_id!r} "
                        f"could not be loaded ({type(error).__name__}: {reason}); point {DATA_DIR_ENV} at the folder "
                        "with train/valid/test files (scripts/ensure_env.sh sets ../shared/data/conll2003)") from None
    return splits_from_hf_dataset(
        dataset, source=hub_id if hub_revision is None else f"{hub_id}@{hub_revision}",
        convert_iob1=convert_iob1, strict_iob2=strict_iob2
    )


def corpus_labels(splits: Mapping[str, Split]) -> LabelSet:
    """The corpus' label set: the entity types of its training split in canonical order (CoNLL-03: PER, LOC,
    ORG, MISC, exactly `LABELS`). A DataError if the training split has no entity tag or an unparsable one."""
    train = splits["train"]
    try:
        label_set = LabelSet.from_sentences(train.sentences)
    except ValueError as error:
        raise DataError(f"{train.source}: {error}") from None
    if not label_set.types:
        raise DataError(f"{train.source}: expected entity tags (B-<type>/I-<type>) in the training split, found only O")
    return label_set


def entity_counts(tags: Iterable[str]) -> Counter[str]:
    """Entity spans per type; an ``I-X`` that does not continue an ``X`` span starts a new one."""
    counts: Counter[str] = Counter()
    previous_type = None
    for tag in tags:
        entity_type = None if tag == "O" else tag[2:]
        if tag.startswith("B-") or (entity_type is not None and entity_type != previous_type):
            counts[entity_type] += 1
        previous_type = entity_type
    return counts


def split_statistics(split: Split, types: Sequence[str] = ENTITY_TYPES) -> dict[str, Any]:
    """Sentence, token, document and per-type entity counts (of `types`: CoNLL-03's by default, a corpus'
    `corpus_labels(...).types`) of a split, plus its sha256."""
    entities: Counter[str] = Counter()
    for sentence in split.sentences:
        entities.update(entity_counts(sentence.tags))
    return {
        "sentences": len(split.sentences),
        "tokens": sum(len(sentence.tokens) for sentence in split.sentences),
        "documents": len({sentence.doc_id for sentence in split.sentences}),
        **{entity_type: entities[entity_type] for entity_type in types},
        "entities": sum(entities.values()),
        "sha256": split.sha256,
    }


def format_statistics(splits: Mapping[str, Split]) -> str:
    """An aligned text table of ``split_statistics`` per split (sha256 shortened to 12 hex digits), one
    column per entity type of the corpus (`corpus_labels`; CoNLL-03: PER, LOC, ORG, MISC)."""
    types = corpus_labels(splits).types if "train" in splits else ENTITY_TYPES
    header = ["split", "sentences", "tokens", "documents", *types, "entities", "sha256"]
    rows = [header]
    for name, split in splits.items():
        stats = split_statistics(split, types)
        sha = (stats["sha256"] or "-")[:12]
        rows.append([name, *(str(stats[column]) for column in header[1:-1]), sha])
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:-1], widths[1:-1])]
        cells.append(row[-1].ljust(widths[-1]))
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
