"""Tests for paper_repro.data.conll on invented fixtures, plus one check of the shared CoNLL-03 copy."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from paper_repro.data.conll import (
    LABEL2ID,
    LABELS,
    DataError,
    Sentence,
    Split,
    entity_counts,
    find_split_files,
    format_statistics,
    load_conll03,
    read_conll,
    resolve_data_dir,
    split_statistics,
    splits_from_hf_dataset,
)

HUB_LABEL_NAMES = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]

TWO_COLUMNS = """-DOCSTART- O

Alice B-PER
Smith I-PER
visited O
Paris B-LOC
. O

Bob B-PER
joined O
Acme B-ORG
Widgets I-ORG

-DOCSTART- O

Zorblatt B-MISC
fans O
cheered O
"""

FOUR_COLUMNS = """-DOCSTART- -X- -X- O

Alice NNP B-NP B-PER
visited VBD B-VP O
Paris NNP B-NP B-LOC

-DOCSTART- -X- -X- O

Bob NNP B-NP B-PER
left VBD B-VP O
"""


def write(tmp_path: Path, text: str, name: str = "train.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_labels_fixed_order() -> None:
    assert LABELS == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]
    assert LABEL2ID["B-ORG"] == 5


def test_read_two_columns(tmp_path: Path) -> None:
    path = write(tmp_path, TWO_COLUMNS)
    split = read_conll(path)
    assert split.sentences[0] == Sentence(
        ("Alice", "Smith", "visited", "Paris", "."), ("B-PER", "I-PER", "O", "B-LOC", "O"), 0
    )
    assert [sentence.doc_id for sentence in split.sentences] == [0, 0, 1]
    assert split.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert split.scheme == "iob2"
    assert split.source == str(path)


def test_read_four_columns(tmp_path: Path) -> None:
    split = read_conll(write(tmp_path, FOUR_COLUMNS))
    assert [sentence.tokens for sentence in split.sentences] == [("Alice", "visited", "Paris"), ("Bob", "left")]
    assert split.sentences[0].tags == ("B-PER", "O", "B-LOC")
    assert [sentence.doc_id for sentence in split.sentences] == [0, 1]


def test_doc_ids_without_docstart(tmp_path: Path) -> None:
    split = read_conll(write(tmp_path, "Alice B-PER\n\nBob B-PER\n"))
    assert [sentence.doc_id for sentence in split.sentences] == [0, 0]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("Alice B-PER\nvisited O extra\n", 2, "expected 2 or 4"),
        ("Alice B-PER\nParis B-CITY\n", 2, "B-CITY"),
        ("Alice O\nSmith I-PER\n", 2, "I-PER"),
        ("Alice B-LOC\nSmith I-PER\n", 2, "found it after B-LOC"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DataError, match=message) as raised:
        read_conll(path)
    assert str(raised.value).startswith(f"{path}:{line}: ")
    assert "\n" not in str(raised.value)


def test_sentence_initial_inside_tag_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "Alice O\n\nSmith I-PER\n")
    with pytest.raises(DataError, match=f"{path}:3: "):
        read_conll(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty file"), (b"-DOCSTART- O\n\n\n", "empty file"), (b"Alice\x00 O\n", "NUL byte"), (b"\xff\xfe O\n", "UTF-8")],
)
def test_bad_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "train.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_conll(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_conll(tmp_path / "nope.txt")


def test_iob1_conversion(tmp_path: Path) -> None:
    iob1 = "Alice I-PER\nSmith I-PER\nBob B-PER\nmet O\nAcme I-ORG\n"
    split = read_conll(write(tmp_path, iob1), convert_iob1=True)
    assert split.sentences[0].tags == ("B-PER", "I-PER", "B-PER", "O", "B-ORG")
    assert split.scheme == "iob1->iob2"
    assert read_conll(write(tmp_path, TWO_COLUMNS), convert_iob1=True).scheme == "iob2"


def test_lenient_iob_keeps_tags(tmp_path: Path) -> None:
    split = read_conll(write(tmp_path, "Alice O\nSmith I-PER\n"), strict_iob2=False)
    assert split.sentences[0].tags == ("O", "I-PER")


def test_entity_counts() -> None:
    tags = ["B-PER", "I-PER", "B-PER", "O", "I-LOC", "I-LOC", "B-ORG", "I-MISC"]
    assert entity_counts(tags) == {"PER": 2, "LOC": 1, "ORG": 1, "MISC": 1}


def test_statistics(tmp_path: Path) -> None:
    split = read_conll(write(tmp_path, TWO_COLUMNS))
    stats = split_statistics(split)
    assert stats == {
        "sentences": 3,
        "tokens": 12,
        "documents": 2,
        "PER": 2,
        "LOC": 1,
        "ORG": 1,
        "MISC": 1,
        "entities": 5,
        "sha256": split.sha256,
    }
    table = format_statistics({"train": split}).splitlines()
    assert table[0].split() == ["split", "sentences", "tokens", "documents", "PER", "LOC", "ORG", "MISC", "entities", "sha256"]
    assert table[1].split() == ["train", "3", "12", "2", "2", "1", "1", "1", "5", split.sha256[:12]]


@pytest.mark.parametrize(
    "names",
    [
        ("train.txt", "valid.txt", "test.txt"),
        ("train", "valid", "test"),
        ("eng.train", "eng.testa", "eng.testb"),
        ("train.txt", "validation.txt", "test.txt"),
        ("train.txt", "dev.txt", "test.txt"),
    ],
)
def test_find_split_files_name_variants(tmp_path: Path, names: tuple[str, str, str]) -> None:
    for name in names:
        write(tmp_path, FOUR_COLUMNS, name)
    assert find_split_files(tmp_path) == {split: tmp_path / name for split, name in zip(("train", "valid", "test"), names)}


def test_find_split_files_missing_split(tmp_path: Path) -> None:
    write(tmp_path, TWO_COLUMNS, "train.txt")
    write(tmp_path, TWO_COLUMNS, "test.txt")
    with pytest.raises(DataError, match="no valid split file, tried valid.txt, valid, validation.txt"):
        find_split_files(tmp_path)


def test_resolve_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAPER_REPRO_CONLL03", raising=False)
    assert resolve_data_dir(None) is None
    monkeypatch.setenv("PAPER_REPRO_CONLL03", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path
    assert resolve_data_dir("/elsewhere") == Path("/elsewhere")


def test_load_conll03_local(tmp_path: Path) -> None:
    for name in ("train.txt", "dev.txt", "test.txt"):
        write(tmp_path, TWO_COLUMNS, name)
    splits = load_conll03(tmp_path)
    assert list(splits) == ["train", "valid", "test"]
    assert splits["valid"].name == "valid"
    assert len(splits["test"].sentences) == 3


HUB_ROWS = {
    "train": [
        (["Alice", "Smith", "visited", "Paris"], ["B-PER", "I-PER", "O", "B-LOC"], 0),
        (["Acme", "Widgets", "hired", "Zorblatt", "fans"], ["B-ORG", "I-ORG", "O", "B-MISC", "O"], 1),
    ],
    "validation": [(["Bob", "left"], ["B-PER", "O"], 0)],
    "test": [(["Carol", "saw", "Rome"], ["B-PER", "O", "B-LOC"], 3)],
}


def hub_like_dataset(tmp_path: Path, label_names: list[str] = HUB_LABEL_NAMES) -> "datasets.DatasetDict":
    """A DatasetDict with the hub dataset's features, built from a local parquet export."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = {}
    for split, rows in HUB_ROWS.items():
        table = pa.table(
            {
                "tokens": [tokens for tokens, _, _ in rows],
                "ner_tags": [[HUB_LABEL_NAMES.index(tag) for tag in tags] for _, tags, _ in rows],
                "document_id": [doc_id for _, _, doc_id in rows],
            }
        )
        files[split] = str(tmp_path / f"{split}.parquet")
        pq.write_table(table, files[split])
    dataset_dict = datasets.load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "cache"))
    return dataset_dict.cast_column("ner_tags", datasets.List(datasets.ClassLabel(names=label_names)))


def test_splits_from_hf_dataset_maps_label_names(tmp_path: Path) -> None:
    splits = splits_from_hf_dataset(hub_like_dataset(tmp_path), source="hub-test")
    assert list(splits) == ["train", "valid", "test"]
    for split, hub_split in (("train", "train"), ("valid", "validation"), ("test", "test")):
        expected = [Sentence(tuple(tokens), tuple(tags), doc_id) for tokens, tags, doc_id in HUB_ROWS[hub_split]]
        assert splits[split].sentences == expected
        assert splits[split].source == f"hub-test[{hub_split}]"
        assert splits[split].sha256 is None


def test_splits_from_hf_dataset_unknown_label(tmp_path: Path) -> None:
    renamed = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISCELLANEOUS"]
    with pytest.raises(DataError, match="I-MISCELLANEOUS"):
        splits_from_hf_dataset(hub_like_dataset(tmp_path, renamed))


def test_load_conll03_hub_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    dataset_dict = hub_like_dataset(tmp_path)
    requested: list[tuple[tuple[str, ...], dict[str, object]]] = []

    def fake_load_dataset(*args: str, **kwargs: object) -> "datasets.DatasetDict":
        requested.append((args, kwargs))
        return dataset_dict

    monkeypatch.delenv("PAPER_REPRO_CONLL03", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    splits = load_conll03(hub_id="someone/conll")
    assert requested == [(("someone/conll",), {"revision": None})]
    assert splits["train"].source == "someone/conll[train]"
    assert isinstance(splits["test"], Split)
    splits = load_conll03(hub_id="someone/conll", hub_revision="a" * 40)         # a study's lock pins the commit
    assert requested[-1] == (("someone/conll",), {"revision": "a" * 40})
    assert splits["train"].source == f"someone/conll@{'a' * 40}[train]"


def test_load_conll03_without_a_folder_or_the_datasets_library(monkeypatch: pytest.MonkeyPatch) -> None:
    """No local folder and no `datasets` (a hand-made environment, as on a lent GPU machine): the data error's one
    line, naming the missing module, not an ImportError traceback."""
    import sys

    monkeypatch.delenv("PAPER_REPRO_CONLL03", raising=False)
    monkeypatch.setitem(sys.modules, "datasets", None)      # `import datasets` raises ImportError
    with pytest.raises(DataError, match=r"no local CoNLL-03 folder .* could not be loaded \((ModuleNotFound|Import)Error"):
        load_conll03()


@pytest.fixture(scope="module")
def real_splits(real_data_dir: Path) -> dict[str, Split]:
    return load_conll03(real_data_dir)


def test_real_conll03_statistics(real_splits: dict[str, Split], real_data_dir: Path) -> None:
    stats = {name: split_statistics(split) for name, split in real_splits.items()}
    assert [stats[name]["sentences"] for name in ("train", "valid", "test")] == [14041, 3250, 3453]
    assert [stats[name]["entities"] for name in ("train", "valid", "test")] == [23499, 5942, 5648]
    assert [stats[name]["documents"] for name in ("train", "valid", "test")] == [946, 216, 231]
    checksums = real_data_dir / "SHA256SUMS"
    if checksums.is_file():
        expected = dict(reversed(line.split()) for line in checksums.read_text().splitlines() if line.strip())
        for split in real_splits.values():
            assert split.sha256 == expected[Path(split.source).name]
