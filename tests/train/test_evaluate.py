"""Tests for paper_repro.train.evaluate: the eval schedule, seqeval scoring, label-type masks."""
from __future__ import annotations

import math

import pytest
import torch

from paper_repro.data.conll import LABEL2ID
from paper_repro.train.evaluate import DEPTH_GROUPS, eval_schedule, label_types, score
from paper_repro.train.features import IGNORE_INDEX


@pytest.mark.parametrize("steps, points", [(200, 5), (100, 2), (1000, 8), (10, 5), (3, 5), (1, 3), (50, 1), (7, 7)])
def test_eval_schedule(steps, points):
    schedule = eval_schedule(steps, points)
    assert schedule == sorted(set(schedule))          # unique, sorted
    assert schedule[-1] == steps                      # always ends at the budget
    assert all(isinstance(s, int) and 1 <= s <= steps for s in schedule)
    assert len(schedule) <= points
    if steps >= 100 * points:                         # no collisions: exactly `points` evaluations
        assert len(schedule) == points


def test_eval_schedule_is_log_spaced():
    assert eval_schedule(200, 5) == [2, 6, 20, 63, 200]
    assert eval_schedule(100, 2) == [1, 100]
    assert eval_schedule(1000, 1) == [1000]
    ratios = [b / a for a, b in zip(eval_schedule(10_000, 5), eval_schedule(10_000, 5)[1:])]
    assert max(ratios) / min(ratios) < 1.01
    with pytest.raises(ValueError, match="eval_points"):
        eval_schedule(100, 0)


def test_score_perfect():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-MISC", "I-MISC"]]
    metrics = score(gold, [list(s) for s in gold])
    for key in ["f1", "precision", "recall", "f1_default", "f1_PER", "f1_LOC", "f1_ORG", "f1_MISC"]:
        assert metrics[key] == 1.0, key


def test_score_partial_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC", "O"], ["B-ORG", "O", "B-MISC", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG", "O"], ["B-ORG", "O", "O", "O"]]
    # gold entities: PER, LOC, ORG, MISC (4); predicted: PER (right), ORG@3 (wrong type), ORG (right): 3
    metrics = score(gold, pred)
    assert metrics["precision"] == pytest.approx(2 / 3)
    assert metrics["recall"] == pytest.approx(2 / 4)
    assert metrics["f1"] == pytest.approx(4 / 7)     # 2PR / (P + R)
    assert metrics["f1_default"] == pytest.approx(4 / 7)
    assert metrics["f1_PER"] == 1.0
    assert metrics["f1_LOC"] == 0.0                  # missed
    assert metrics["f1_ORG"] == pytest.approx(2 / 3)  # P 1/2, R 1
    assert metrics["f1_MISC"] == 0.0


def test_partial_span_is_wrong():
    metrics = score([["B-PER", "I-PER", "I-PER"]], [["B-PER", "I-PER", "O"]])
    assert metrics["f1"] == 0.0 and metrics["precision"] == 0.0 and metrics["recall"] == 0.0


def test_strict_vs_default_on_invalid_start():
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    pred = [["I-PER", "I-PER", "O", "B-LOC"]]      # I- after O: not an entity in strict IOB2
    metrics = score(gold, pred)
    assert metrics["f1_default"] == 1.0            # lenient (conlleval-like) reads I-PER I-PER as PER
    assert metrics["precision"] == 1.0 and metrics["recall"] == pytest.approx(0.5)
    assert metrics["f1"] == pytest.approx(2 / 3)
    assert metrics["f1_PER"] == 0.0 and metrics["f1_LOC"] == 1.0


def test_absent_type_is_nan():
    metrics = score([["B-PER", "O"], ["O", "B-LOC"]], [["B-PER", "O"], ["O", "O"]])
    assert math.isnan(metrics["f1_ORG"]) and math.isnan(metrics["f1_MISC"])
    assert metrics["f1_PER"] == 1.0 and metrics["f1_LOC"] == 0.0
    # a type only predicted (never gold) is a scored error, not absent
    assert score([["O"]], [["B-MISC"]])["f1_MISC"] == 0.0
    # no entity anywhere: every type absent, micro scores 0
    empty = score([["O", "O"]], [["O", "O"]])
    assert empty["f1"] == 0.0 and all(math.isnan(empty[f"f1_{t}"]) for t in ("PER", "LOC", "ORG", "MISC"))


def test_label_types_masks():
    labels = torch.tensor([[LABEL2ID["B-PER"], LABEL2ID["I-PER"], LABEL2ID["O"], IGNORE_INDEX],
                           [LABEL2ID["I-MISC"], LABEL2ID["B-LOC"], IGNORE_INDEX, IGNORE_INDEX]])
    masks = dict(zip(DEPTH_GROUPS, label_types(labels)))
    assert masks["PER"].tolist() == [[True, True, False, False], [False] * 4]
    assert masks["MISC"].tolist() == [[False] * 4, [True, False, False, False]]
    assert masks["LOC"].sum() == 1 and masks["ORG"].sum() == 0
    assert masks["O"].tolist() == [[False, False, True, False], [False] * 4]
    assert masks["ALL"].tolist() == (labels != IGNORE_INDEX).tolist()
