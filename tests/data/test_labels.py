"""The label set read from the data (paper_repro.data.labels) on invented corpora whose entity types are not
CoNLL-03's: canonical order, tags the scheme cannot parse, types of valid/test missing from train, and the pieces
that follow the corpus' types (statistics, ktype subsets, per-type scores, depth groups). CoNLL-03's label list
and ids stay exactly what they were."""
from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import torch

from paper_repro.data.conll import (
    LABEL2ID,
    LABELS,
    DataError,
    corpus_labels,
    format_statistics,
    load_conll03,
    read_conll,
    split_statistics,
)
from paper_repro.data.labels import CONLL03, LabelSet, canonical_types, parse_tag
from paper_repro.data.sampling import create_subset, entity_counts, sample_ktype

CONLL03_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]

# invented sentences: genes, drugs and lower-case places (no CoNLL-03 type)
TRAIN = """-DOCSTART- O

Zorbin B-Gene
blocks O
Kelvax B-DRUG
in O
marrow B-loc
. O

the O
Quilt-7 B-Gene
Quilt-8 I-Gene
locus O
binds O
Trimorex B-DRUG

Kelvax B-DRUG
Plus I-DRUG
was O
tested O
near O
upper B-loc
fen I-loc
"""
VALID = """Zorbin B-Gene
and O
Trimorex B-DRUG

marrow B-loc
"""
TEST = """Kelvax B-DRUG
near O
upper B-loc
fen I-loc
"""


def write_corpus(folder: Path, train: str = TRAIN, valid: str = VALID, test: str = TEST) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("train.txt", train), ("valid.txt", valid), ("test.txt", test)):
        (folder / name).write_text(text, encoding="utf-8")
    return folder


# ------------------------------------------------------------------------------------------ CoNLL-03 unchanged
def test_conll03_label_list_and_ids_unchanged() -> None:
    assert LABELS == CONLL03_LABELS and list(CONLL03.labels) == CONLL03_LABELS
    assert LABEL2ID == {label: i for i, label in enumerate(CONLL03_LABELS)} == CONLL03.label2id
    # read in any order, the four types come back in CoNLL-03's order
    assert LabelSet.from_types(["MISC", "ORG", "PER", "LOC", "PER"]) == CONLL03
    assert LabelSet.from_tags(["I-MISC", "B-ORG", "O", "B-LOC", "I-PER"]).labels == tuple(CONLL03_LABELS)
    assert CONLL03.is_conll03() and len(CONLL03) == 9


def test_real_conll03_labels_read_from_train_are_the_old_ones(real_data_dir: Path) -> None:
    splits = load_conll03(real_data_dir)
    assert list(corpus_labels(splits).labels) == CONLL03_LABELS
    assert split_statistics(splits["train"], corpus_labels(splits).types) == split_statistics(splits["train"])


# ----------------------------------------------------------------------------------------------- the scheme
@pytest.mark.parametrize("tag, entity_type", [("O", None), ("B-Gene", "Gene"), ("I-DRUG", "DRUG"), ("B-loc", "loc"),
                                              ("B-DRUG-X", "DRUG-X"), ("I-b", "b")])
def test_parse_tag(tag: str, entity_type: str | None) -> None:
    assert parse_tag(tag) == entity_type


@pytest.mark.parametrize("tag", ["X-FOO", "B-", "I-", "BPER", "b-PER", "E-PER", "S-PER", "O-PER", "B-O", "I-ALL", "-PER"])
def test_parse_tag_refuses(tag: str) -> None:
    with pytest.raises(ValueError, match="expected a tag O, B-<type> or I-<type>|is reserved") as raised:
        parse_tag(tag)
    assert repr(tag) in str(raised.value) and "\n" not in str(raised.value)


def test_canonical_order_conll_types_first_then_sorted_case_kept() -> None:
    assert canonical_types(["loc", "Gene", "DRUG", "LOC", "MISC", "Gene"]) == ("LOC", "MISC", "DRUG", "Gene", "loc")
    labels = LabelSet.from_types(["loc", "Gene", "DRUG"])
    assert labels.types == ("DRUG", "Gene", "loc")
    assert labels.labels == ("O", "B-DRUG", "I-DRUG", "B-Gene", "I-Gene", "B-loc", "I-loc")
    assert labels.label2id["I-loc"] == 6 and "B-LOC" not in labels and not labels.is_conll03()
    assert labels.type_of("I-Gene") == "Gene" and labels.type_of("O") == "O"
    with pytest.raises(ValueError, match="canonical order"):
        LabelSet(("loc", "Gene"))


# ------------------------------------------------------------------------------------------ reading a corpus
def test_load_corpus_reads_labels_from_train(tmp_path: Path) -> None:
    splits = load_conll03(write_corpus(tmp_path))
    assert list(splits) == ["train", "valid", "test"]
    labels = corpus_labels(splits)
    assert labels.types == ("DRUG", "Gene", "loc")
    assert splits["train"].sentences[1].tags == ("O", "B-Gene", "I-Gene", "O", "O", "B-DRUG")
    assert splits["test"].sentences[0].tags == ("B-DRUG", "O", "B-loc", "I-loc")   # lower case kept as written
    stats = split_statistics(splits["train"], labels.types)
    assert (stats["DRUG"], stats["Gene"], stats["loc"], stats["entities"]) == (3, 2, 2, 7)
    table = format_statistics(splits).splitlines()
    assert table[0].split() == ["split", "sentences", "tokens", "documents", "DRUG", "Gene", "loc", "entities", "sha256"]
    assert table[1].split()[:8] == ["train", "3", "19", "1", "3", "2", "2", "7"]


def test_iob1_corpus_with_other_types_converts(tmp_path: Path) -> None:
    iob1 = TRAIN.replace("Zorbin B-Gene", "Zorbin I-Gene").replace("Kelvax B-DRUG\nPlus", "Kelvax I-DRUG\nPlus")
    splits = load_conll03(write_corpus(tmp_path, train=iob1), convert_iob1=True)
    assert splits["train"].scheme == "iob1->iob2"
    assert splits["train"].sentences[0].tags[0] == "B-Gene" and splits["train"].sentences[2].tags[:2] == ("B-DRUG", "I-DRUG")
    assert corpus_labels(splits).types == ("DRUG", "Gene", "loc")


@pytest.mark.parametrize("bad", ["X-FOO", "B-", "BPER", "b-Gene", "B-O"])
def test_unparsable_tag_names_file_and_line(tmp_path: Path, bad: str) -> None:
    train = TRAIN.replace("binds O", f"binds {bad}")          # line 14 of train.txt
    folder = write_corpus(tmp_path, train=train)
    with pytest.raises(DataError) as raised:
        load_conll03(folder)
    message = str(raised.value)
    assert message.startswith(f"{folder / 'train.txt'}:14: ") and repr(bad) in message and "\n" not in message


def test_test_type_missing_from_train_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path, test=TEST + "\nVexa B-Virus\n")     # line 6 of test.txt
    with pytest.raises(DataError) as raised:
        load_conll03(folder)
    message = str(raised.value)
    assert message.startswith(f"{folder / 'test.txt'}:6: entity type 'Virus' (tag 'B-Virus') is not in the label set")
    assert f"read from the training split {folder / 'train.txt'}" in message and "types: DRUG, Gene, loc" in message
    # the same type in another case is another type
    folder = write_corpus(tmp_path / "case", valid=VALID.replace("marrow B-loc", "marrow B-LOC"))
    with pytest.raises(DataError, match=r"valid.txt:5: entity type 'LOC' \(tag 'B-LOC'\)"):
        load_conll03(folder)


def test_train_without_entities_is_an_error(tmp_path: Path) -> None:
    folder = write_corpus(tmp_path, train="it O\nrained O\n")
    with pytest.raises(DataError, match="train.txt: expected entity tags .* found only O"):
        load_conll03(folder)


def test_read_conll_default_still_restricts_to_conll03(tmp_path: Path) -> None:
    path = tmp_path / "train.txt"
    path.write_text("Zorbin B-Gene\n")
    with pytest.raises(DataError, match=r"train.txt:1: expected a tag in \{O, B-PER"):
        read_conll(path)
    assert read_conll(path, labels=None).sentences[0].tags == ("B-Gene",)


# ------------------------------------------------------------------------------- what follows the corpus' types
def test_ktype_subsets_balance_the_corpus_types(tmp_path: Path) -> None:
    splits = load_conll03(write_corpus(tmp_path))
    train = splits["train"]
    subset = create_subset(train, "ktype", 1, 0)
    assert list(subset.entity_counts) == ["DRUG", "Gene", "loc"]
    assert all(count >= 1 for count in subset.entity_counts.values())
    indices = sample_ktype(train.sentences, 1, random.Random(0))
    counts = sum((entity_counts(train.sentences[i].tags) for i in indices), start=entity_counts([]))
    assert set(counts) == {"DRUG", "Gene", "loc"}
    with pytest.raises(DataError, match="cannot reach K=3 Gene mentions"):
        create_subset(train, "ktype", 3, 0)


def test_scores_and_depth_groups_follow_the_corpus_types() -> None:
    from paper_repro.train.evaluate import DEPTH_GROUPS, depth_groups, label_types, score, score_by_type
    from paper_repro.train.features import IGNORE_INDEX

    labels = LabelSet.from_types(["Gene", "DRUG-X", "loc"])
    assert labels.types == ("DRUG-X", "Gene", "loc")
    gold = [["B-Gene", "I-Gene", "O", "B-DRUG-X"], ["B-loc", "O"]]
    pred = [["B-Gene", "I-Gene", "O", "B-loc"], ["B-loc", "O"]]
    metrics, by_type = score_by_type(gold, pred, labels.types)
    assert list(by_type) == ["DRUG-X", "Gene", "loc"]
    assert by_type["Gene"] == 1.0 and by_type["DRUG-X"] == 0.0 and by_type["loc"] == pytest.approx(2 / 3)
    assert metrics["f1"] == pytest.approx(2 / 3)          # tp 2, fp 1, fn 1
    assert math.isnan(score_by_type([["O"]], [["O"]], ("Gene",))[1]["Gene"])   # absent from gold and predictions
    assert list(score(gold, gold))[-4:] == ["f1_PER", "f1_LOC", "f1_ORG", "f1_MISC"]   # CoNLL-03's flat keys kept
    assert DEPTH_GROUPS == ("PER", "LOC", "ORG", "MISC", "O", "ALL")
    assert depth_groups(labels) == ("DRUG-X", "Gene", "loc", "O", "ALL")
    ids = torch.tensor([[labels.label2id["B-DRUG-X"], labels.label2id["I-Gene"], 0, IGNORE_INDEX]])
    masks = dict(zip(depth_groups(labels), label_types(ids, labels)))
    assert masks["DRUG-X"].tolist() == [[True, False, False, False]]     # a hyphen inside the type is kept
    assert masks["Gene"].tolist() == [[False, True, False, False]] and masks["loc"].sum() == 0
    assert masks["O"].tolist() == [[False, False, True, False]] and masks["ALL"].sum() == 3
