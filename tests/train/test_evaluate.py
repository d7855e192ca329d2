"""Tests for paper_repro.train.evaluate: the eval schedules, seqeval scoring (default = conlleval, strict), masks."""
from __future__ import annotations

import math

import pytest
import torch

from paper_repro.data.conll import LABEL2ID
from paper_repro.train.evaluate import DEPTH_GROUPS, eval_schedule, label_types, score
from paper_repro.train.features import IGNORE_INDEX


@pytest.mark.parametrize(
    "steps, points, warmup",
    [(200, 5, 0), (200, 5, 20), (100, 2, 10), (1000, 8, 100), (10, 5, 0), (10, 5, 1), (3, 5, 0), (1, 3, 0),
     (50, 1, 5), (7, 7, 0), (11, 5, 10), (12, 5, 7), (17, 4, 3), (1000, 1000, 0), (1000, 999, 1)],
)
def test_linear_eval_schedule(steps, points, warmup):
    schedule = eval_schedule(steps, points, warmup=warmup)
    assert schedule == sorted(set(schedule))          # unique, sorted
    assert all(isinstance(s, int) for s in schedule)
    assert schedule[-1] == steps                      # always ends at the budget
    assert schedule[0] > warmup                       # no point inside the warmup
    assert len(schedule) <= points
    if steps - warmup >= points:                      # room for every point: exactly `points` evaluations
        assert len(schedule) == points


def test_linear_eval_schedule_by_hand():
    assert eval_schedule(100, 5, warmup=10) == [28, 46, 64, 82, 100]     # 10 + 18 i
    assert eval_schedule(100, 5) == [20, 40, 60, 80, 100]                 # the default kind is linear, no warmup
    assert eval_schedule(10, 3) == [3, 7, 10]                             # 3.33, 6.67, 10
    assert eval_schedule(10, 4) == [3, 5, 8, 10]                          # 2.5, 5, 7.5, 10: halves round up
    assert eval_schedule(11, 5, warmup=10) == [11]                        # one step after the warmup
    assert eval_schedule(300, 1, warmup=30) == [300]
    gaps = {b - a for a, b in zip(eval_schedule(1000, 10, warmup=100), eval_schedule(1000, 10, warmup=100)[1:])}
    assert gaps == {90}


@pytest.mark.parametrize("steps, points", [(200, 5), (100, 2), (1000, 8), (10, 5), (3, 5), (1, 3), (50, 1), (7, 7)])
def test_log_eval_schedule(steps, points):
    schedule = eval_schedule(steps, points, kind="log")
    assert schedule == sorted(set(schedule))          # unique, sorted
    assert schedule[-1] == steps                      # always ends at the budget
    assert all(isinstance(s, int) and 1 <= s <= steps for s in schedule)
    assert len(schedule) <= points
    if steps >= 100 * points:                         # no collisions: exactly `points` evaluations
        assert len(schedule) == points


def test_log_eval_schedule_is_the_old_one():
    assert eval_schedule(200, 5, kind="log") == [2, 6, 20, 63, 200]
    assert eval_schedule(200, 5, warmup=20, kind="log") == [2, 6, 20, 63, 200]   # warmup ignored
    assert eval_schedule(100, 2, kind="log") == [1, 100]
    assert eval_schedule(1000, 1, kind="log") == [1000]
    ratios = [b / a for a, b in zip(eval_schedule(10_000, 5, kind="log"), eval_schedule(10_000, 5, kind="log")[1:])]
    assert max(ratios) / min(ratios) < 1.01


def test_eval_schedule_errors():
    with pytest.raises(ValueError, match="eval_points"):
        eval_schedule(100, 0)
    with pytest.raises(ValueError, match="eval_points"):
        eval_schedule(100, 0, kind="log")
    with pytest.raises(ValueError, match="kind"):
        eval_schedule(100, 5, kind="cosine")
    for warmup in (100, 150, -1):
        with pytest.raises(ValueError, match="warmup"):
            eval_schedule(100, 5, warmup=warmup)


# ---------------------------------------------------------------------------------------------- scores
DEFAULT_KEYS = ["f1", "precision", "recall"]
STRICT_KEYS = ["f1_strict", "precision_strict", "recall_strict"]
TYPE_KEYS = ["f1_PER", "f1_LOC", "f1_ORG", "f1_MISC"]


def assert_prf(metrics, suffix, precision, recall, f1):
    assert metrics[f"precision{suffix}"] == pytest.approx(precision)
    assert metrics[f"recall{suffix}"] == pytest.approx(recall)
    assert metrics[f"f1{suffix}"] == pytest.approx(f1)


def test_score_keys():
    metrics = score([["B-PER", "O"]], [["B-PER", "O"]])
    assert list(metrics) == DEFAULT_KEYS + STRICT_KEYS + TYPE_KEYS
    assert all(isinstance(value, float) for value in metrics.values())


def test_score_perfect():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-MISC", "I-MISC"]]
    metrics = score(gold, [list(s) for s in gold])
    for key in DEFAULT_KEYS + STRICT_KEYS + TYPE_KEYS:
        assert metrics[key] == 1.0, key


def test_score_partial_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC", "O"], ["B-ORG", "O", "B-MISC", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG", "O"], ["B-ORG", "O", "O", "O"]]
    # gold entities: PER, LOC, ORG, MISC (4); predicted: PER (right), ORG@3 (wrong type), ORG (right): 3
    # tp 2, fp 1, fn 2 in both modes (every tag sequence is valid IOB2)
    metrics = score(gold, pred)
    for suffix in ("", "_strict"):
        assert_prf(metrics, suffix, 2 / 3, 2 / 4, 4 / 7)     # F1 = 2PR / (P + R)
    assert metrics["f1_PER"] == 1.0
    assert metrics["f1_LOC"] == 0.0                  # missed
    assert metrics["f1_ORG"] == pytest.approx(2 / 3)  # P 1/2, R 1
    assert metrics["f1_MISC"] == 0.0


def test_wrong_boundary_partial_counts():
    gold = [["B-ORG", "I-ORG", "I-ORG", "O", "B-PER", "O", "B-LOC"]]
    pred = [["B-ORG", "I-ORG", "O", "O", "B-PER", "O", "B-LOC"]]
    # gold ORG[0:3] PER[4] LOC[6]; pred ORG[0:2] (short by one: fp and fn) PER[4] LOC[6] -> tp 2, fp 1, fn 1
    metrics = score(gold, pred)
    for suffix in ("", "_strict"):
        assert_prf(metrics, suffix, 2 / 3, 2 / 3, 2 / 3)
    assert metrics["f1_ORG"] == 0.0 and metrics["f1_PER"] == 1.0 and metrics["f1_LOC"] == 1.0
    assert math.isnan(metrics["f1_MISC"])


def test_partial_span_is_wrong():
    metrics = score([["B-PER", "I-PER", "I-PER"]], [["B-PER", "I-PER", "O"]])
    # gold PER[0:3], pred PER[0:2]: tp 0, fp 1, fn 1
    for suffix in ("", "_strict"):
        assert_prf(metrics, suffix, 0.0, 0.0, 0.0)


def test_i_after_o_starts_an_entity_in_default_mode_only():
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    pred = [["I-PER", "I-PER", "O", "B-LOC"]]      # I- after O (here: sentence start)
    metrics = score(gold, pred)
    # default (conlleval): pred PER[0:2] LOC[3] = gold -> tp 2, fp 0, fn 0
    assert_prf(metrics, "", 1.0, 1.0, 1.0)
    # strict: I-PER I-PER is no entity; pred LOC[3] -> tp 1, fp 0, fn 1
    assert_prf(metrics, "_strict", 1.0, 0.5, 2 / 3)
    assert metrics["f1_PER"] == 1.0 and metrics["f1_LOC"] == 1.0    # per type: default mode

    # after an O inside the sentence too: gold ORG[2:4]; pred O O I-ORG I-ORG
    metrics = score([["O", "O", "B-ORG", "I-ORG"]], [["O", "O", "I-ORG", "I-ORG"]])
    assert_prf(metrics, "", 1.0, 1.0, 1.0)                 # tp 1
    assert_prf(metrics, "_strict", 0.0, 0.0, 0.0)          # tp 0, fp 0, fn 1
    assert metrics["f1_ORG"] == 1.0


def test_type_change_mid_span_splits_the_entity():
    gold = [["B-PER", "I-PER", "B-ORG", "I-ORG", "O"]]
    pred = [["B-PER", "I-PER", "I-ORG", "I-ORG", "O"]]
    # default: I-ORG after I-PER ends PER and starts ORG -> pred PER[0:2] ORG[2:4] = gold: tp 2, fp 0, fn 0
    metrics = score(gold, pred)
    assert_prf(metrics, "", 1.0, 1.0, 1.0)
    # strict: PER[0:2] only (I-ORG cannot start an entity) -> tp 1, fp 0, fn 1
    assert_prf(metrics, "_strict", 1.0, 0.5, 2 / 3)

    # against a gold single PER span: pred B-PER I-PER I-ORG is PER[0:2] + ORG[2], neither is PER[0:3]
    metrics = score([["B-PER", "I-PER", "I-PER"]], [["B-PER", "I-PER", "I-ORG"]])
    assert_prf(metrics, "", 0.0, 0.0, 0.0)                 # tp 0, fp 2, fn 1
    assert metrics["f1_PER"] == 0.0 and metrics["f1_ORG"] == 0.0


def test_i_after_b_of_another_type():
    gold = [["B-LOC", "B-PER", "O", "B-MISC"]]
    pred = [["B-LOC", "I-PER", "O", "B-MISC"]]
    # default: I-PER after B-LOC ends LOC[0] and starts PER[1] -> pred = gold: tp 3
    metrics = score(gold, pred)
    assert_prf(metrics, "", 1.0, 1.0, 1.0)
    # strict: LOC[0], MISC[3] (I-PER after B-LOC is no entity) -> tp 2, fp 0, fn 1
    assert_prf(metrics, "_strict", 1.0, 2 / 3, 0.8)

    # I-PER after B-PER continues the entity in both modes: pred PER[0:2] vs gold PER[0] PER[1] -> tp 0, fp 1, fn 2
    metrics = score([["B-PER", "B-PER"]], [["B-PER", "I-PER"]])
    assert_prf(metrics, "", 0.0, 0.0, 0.0)
    assert_prf(metrics, "_strict", 0.0, 0.0, 0.0)


def test_entity_at_the_end_of_a_sentence():
    gold = [["O", "B-ORG"], ["B-ORG", "O"], ["O", "B-PER", "I-PER"]]
    pred = [["O", "B-ORG"], ["I-ORG", "O"], ["O", "B-PER", "I-PER"]]
    # a sentence end closes an entity: sentence 1's ORG does not run on into sentence 2
    # default: pred ORG[s1:1] ORG[s2:0] PER[s3:1-2] = gold -> tp 3
    metrics = score(gold, pred)
    assert_prf(metrics, "", 1.0, 1.0, 1.0)
    # strict: I-ORG at a sentence start is no entity -> tp 2, fp 0, fn 1
    assert_prf(metrics, "_strict", 1.0, 2 / 3, 0.8)
    # a gold entity at the end that the prediction cuts short: PER[1:3] vs PER[1:2] -> tp 0, fp 1, fn 1
    metrics = score([["O", "B-PER", "I-PER"]], [["O", "B-PER", "O"]])
    assert_prf(metrics, "", 0.0, 0.0, 0.0)


def conlleval_chunks(tags: list[str]) -> set[tuple[str, int, int]]:
    """Chunks (type, start, end) of one sentence by conlleval's startOfChunk / endOfChunk rules (IOB tags)."""
    chunks, start, prev_tag, prev_type = set(), None, "O", ""
    for i, label in enumerate([*tags, "O"]):            # a sentence end closes the open chunk
        tag, kind = (label.split("-", 1) + [""])[:2] if label != "O" else ("O", "")
        ends = (prev_tag in "BI" and tag in "BO") or (prev_tag != "O" and prev_type != kind)
        starts = tag == "B" or (prev_tag == "O" and tag == "I") or (tag != "O" and prev_type != kind)
        if ends and start is not None:
            chunks.add((prev_type, start, i))
            start = None
        if starts:
            start = i
        prev_tag, prev_type = tag, kind
    return chunks


def test_default_mode_matches_conlleval_chunking_on_random_tags():
    import random

    rng = random.Random(0)
    labels = ["O", "O", "B-PER", "I-PER", "B-ORG", "I-ORG", "I-LOC"]
    for _ in range(200):
        lengths = [rng.randint(1, 6) for _ in range(rng.randint(1, 4))]
        gold = [[rng.choice(labels) for _ in range(n)] for n in lengths]
        pred = [[rng.choice(labels) for _ in range(n)] for n in lengths]
        g = {(s, *c) for s, tags in enumerate(gold) for c in conlleval_chunks(tags)}
        p = {(s, *c) for s, tags in enumerate(pred) for c in conlleval_chunks(tags)}
        tp = len(g & p)
        precision = tp / len(p) if p else 0.0
        recall = tp / len(g) if g else 0.0
        f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
        assert_prf(score(gold, pred), "", precision, recall, f1)


def test_absent_type_is_nan():
    metrics = score([["B-PER", "O"], ["O", "B-LOC"]], [["B-PER", "O"], ["O", "O"]])
    assert math.isnan(metrics["f1_ORG"]) and math.isnan(metrics["f1_MISC"])
    assert metrics["f1_PER"] == 1.0 and metrics["f1_LOC"] == 0.0
    # a type only predicted (never gold) is a scored error, not absent
    assert score([["O"]], [["B-MISC"]])["f1_MISC"] == 0.0
    assert score([["O"]], [["I-MISC"]])["f1_MISC"] == 0.0   # default mode reads a lone I-MISC as MISC
    # no entity anywhere: every type absent, micro scores 0
    empty = score([["O", "O"]], [["O", "O"]])
    assert all(empty[key] == 0.0 for key in DEFAULT_KEYS + STRICT_KEYS)
    assert all(math.isnan(empty[key]) for key in TYPE_KEYS)


def test_label_types_masks():
    labels = torch.tensor([[LABEL2ID["B-PER"], LABEL2ID["I-PER"], LABEL2ID["O"], IGNORE_INDEX],
                           [LABEL2ID["I-MISC"], LABEL2ID["B-LOC"], IGNORE_INDEX, IGNORE_INDEX]])
    masks = dict(zip(DEPTH_GROUPS, label_types(labels)))
    assert masks["PER"].tolist() == [[True, True, False, False], [False] * 4]
    assert masks["MISC"].tolist() == [[False] * 4, [True, False, False, False]]
    assert masks["LOC"].sum() == 1 and masks["ORG"].sum() == 0
    assert masks["O"].tolist() == [[False, False, True, False], [False] * 4]
    assert masks["ALL"].tolist() == (labels != IGNORE_INDEX).tolist()
