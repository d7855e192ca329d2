"""Tests for paper_repro.train.evaluate: the eval schedules, seqeval scoring (default = conlleval, strict), masks."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

from paper_repro.data.conll import LABEL2ID

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:      # bench/ (the scoring benchmark holds the seqeval reference)
    sys.path.insert(0, str(REPO_ROOT))
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


# ---------------------------------------------------------------------- speed: the same numbers, faster
# (issue "Cells at the hardware's pace"): the fast paths give identical logits, gradients, losses and predictions


def reference_forward(tagger, input_ids, attention_mask, word_index, num_words):
    """FusionTagger.forward before the last-layer fast path: every hidden state stacked."""
    hidden = tagger.backbone(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
    layers = torch.stack(hidden.hidden_states[tagger.first_fused :])
    tokens = tagger.head(layers, attention_mask)
    return tagger.classifier(tagger.dropout(tagger.pooling(tokens, word_index, num_words)))


@pytest.fixture(scope="module")
def tiny_parts(tiny_conll_dir, tiny_backbone_dir):
    from paper_repro.data.conll import load_conll03
    from paper_repro.models.backbone import load_backbone
    from paper_repro.train import features as F

    backbone = load_backbone(str(tiny_backbone_dir))
    splits = load_conll03(str(tiny_conll_dir))
    dev = F.tokenize_split(splits["valid"], backbone.tokenizer, 12)   # short windows: long sentences split
    train = F.tokenize_split(splits["train"], backbone.tokenizer, 24)
    return backbone, splits, dev, train


def build(backbone, head: str, seed: int = 0):
    import copy

    from paper_repro.config import ModelConfig
    from paper_repro.data.conll import LABELS
    from paper_repro.models.tagger import build_tagger

    config = ModelConfig(backbone="tiny", dropout=0.1)
    config.head.name = head
    torch.manual_seed(seed)
    return build_tagger(copy.deepcopy(backbone.model), config, num_labels=len(LABELS), seed=seed)[0]


@pytest.mark.parametrize("head", ["last", "deeper", "deeper_copy", "dwatt", "concat"])
def test_forward_fast_path_same_logits_and_gradients(tiny_parts, head):
    from paper_repro.train import features as F
    from paper_repro.train.loop import cross_entropy

    backbone, _, _, train = tiny_parts
    batch = F.collate(train.windows[:6], list(range(6)), backbone.tokenizer.pad_token_id)
    args = (batch["input_ids"], batch["attention_mask"], batch["word_index"], batch["labels"].shape[1])
    model = build(backbone, head).train()            # dropout on: the same masks on both paths
    grads = []
    for forward in (model.forward, lambda *a: reference_forward(model, *a)):
        torch.manual_seed(1)                         # the same dropout masks
        logits = forward(*args)
        loss = cross_entropy(logits, batch["labels"])
        model.zero_grad(set_to_none=True)
        loss.backward()
        grads.append((logits.detach(), loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                                                       if p.grad is not None}))
    (logits, loss, got), (ref_logits, ref_loss, want) = grads
    assert torch.equal(logits, ref_logits) and torch.equal(loss, ref_loss)
    assert got.keys() == want.keys()
    assert all(torch.equal(got[name], want[name]) for name in want)


def reference_predict(model, loader, features, sentences):
    """predict before the speed-up, single process: no_grad, per-word loop."""
    from paper_repro.data.conll import LABELS

    model.eval()
    predicted = {index: ["O"] * len(sentence.tokens) for index, sentence in sentences.items()}
    with torch.no_grad():
        for batch in loader:
            logits = model(batch["input_ids"], batch["attention_mask"], batch["word_index"], batch["labels"].shape[1])
            for window_id, preds in zip(batch["window_id"].tolist(), logits.argmax(-1).tolist()):
                window = features.windows[window_id]
                for j, label in enumerate(window.labels):
                    if label != IGNORE_INDEX:
                        predicted[window.sentence][window.word_offset + j] = LABELS[preds[j]]
    model.train()
    return predicted


@pytest.mark.parametrize("head", ["last", "dwatt", "deeper"])
def test_predict_same_tags_as_the_reference_with_any_batching(tiny_parts, head):
    from accelerate import Accelerator

    from paper_repro.train import features as F
    from paper_repro.train.cell import eval_loader
    from paper_repro.train.evaluate import predict

    backbone, splits, dev, _ = tiny_parts
    features = dev.select(list(range(len(splits["valid"].sentences))))
    sentences = dict(enumerate(splits["valid"].sentences))
    model = build(backbone, head)
    with torch.no_grad():                       # random logits with many labels: a mapping error would show
        model.classifier.weight.normal_(0, 3.0)
    collator = F.Collator(backbone.tokenizer.pad_token_id)
    fixed = torch.utils.data.DataLoader(F.WindowDataset(features), batch_sampler=F.length_grouped_batches(features, 4),
                                        collate_fn=collator)
    want = reference_predict(model, fixed, features, sentences)
    assert len({tag for tags in want.values() for tag in tags}) > 3
    accelerator = Accelerator(cpu=True)
    for loader in (fixed, eval_loader(features, 4, collator), eval_loader(features, 64, collator),
                   torch.utils.data.DataLoader(F.WindowDataset(features), batch_size=1, collate_fn=collator)):
        for depth_weights in (False, True):
            got, depth = predict(model, accelerator.prepare(loader), accelerator, features, sentences,
                                 depth_weights=depth_weights)
            assert got == want
            assert (depth is not None) == (depth_weights and head == "dwatt")
    assert model.training                       # predict leaves the model in training mode


def test_depth_statistics_do_not_depend_on_batching(tiny_parts):
    from accelerate import Accelerator

    from paper_repro.train import features as F
    from paper_repro.train.cell import eval_loader
    from paper_repro.train.evaluate import predict

    backbone, splits, dev, _ = tiny_parts
    features = dev.select(list(range(len(splits["valid"].sentences))))
    sentences = dict(enumerate(splits["valid"].sentences))
    model = build(backbone, "dwatt")
    accelerator = Accelerator(cpu=True)
    collator = F.Collator(backbone.tokenizer.pad_token_id)
    runs = [predict(model, eval_loader(features, size, collator), accelerator, features, sentences)[1]
            for size in (1, 4, 64)]
    for depth in runs[1:]:
        assert depth.keys() == runs[0].keys()
        for group, weights in depth.items():
            assert (weights is None) == (runs[0][group] is None)
            if weights is not None:
                assert weights == pytest.approx(runs[0][group], abs=1e-6)


def test_training_after_predict_and_allocator_keep_the_losses(tiny_parts):
    """A few optimizer steps with an evaluation in between (inference mode must not leak into training), with
    and without the allocator tuning: the losses equal a run without evaluation, bit for bit."""
    from accelerate import Accelerator

    from paper_repro.config import TrainConfig
    from paper_repro.train import features as F
    from paper_repro.train.allocator import keep_large_buffers
    from paper_repro.train.cell import eval_loader
    from paper_repro.train.evaluate import predict
    from paper_repro.train.loop import cross_entropy, make_optimizer

    backbone, splits, dev, train = tiny_parts
    features = dev.select(list(range(len(splits["valid"].sentences))))
    sentences = dict(enumerate(splits["valid"].sentences))
    collator = F.Collator(backbone.tokenizer.pad_token_id)
    batches = [F.collate(train.windows[i : i + 4], list(range(i, i + 4)), backbone.tokenizer.pad_token_id)
               for i in range(0, 24, 4)]

    def losses(head: str, evaluate: bool) -> list[torch.Tensor]:
        model = build(backbone, head).train()        # as the training loop (a loaded backbone is in eval mode)
        optimizer, scheduler = make_optimizer(model, TrainConfig(), 6, 1)
        torch.manual_seed(3)
        out = []
        for i, batch in enumerate(batches):
            logits = model(batch["input_ids"], batch["attention_mask"], batch["word_index"], batch["labels"].shape[1])
            loss = cross_entropy(logits, batch["labels"])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            out.append(loss.detach())
            if evaluate and i % 2 == 0:
                state = torch.get_rng_state()
                predict(model, eval_loader(features, 8, collator), Accelerator(cpu=True), features, sentences)
                torch.set_rng_state(state)
        return out

    for head in ("last", "dwatt"):
        plain = losses(head, evaluate=False)
        assert all(torch.equal(a, b) for a, b in zip(plain, losses(head, evaluate=True)))
        keep_large_buffers()
        assert all(torch.equal(a, b) for a, b in zip(plain, losses(head, evaluate=False)))


def test_eval_model_precision(tiny_parts):
    from accelerate import Accelerator

    from paper_repro.train.evaluate import eval_model

    backbone = tiny_parts[0]
    model = build(backbone, "dwatt")
    accelerator = Accelerator(cpu=True)
    assert eval_model(model, accelerator) is model and eval_model(model, accelerator, "fp32") is model
    copy = eval_model(model, accelerator, "bf16")
    assert copy is not model and {p.dtype for p in copy.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in model.parameters()} == {torch.float32}      # the trained model is untouched
    with pytest.raises(ValueError, match="eval precision"):
        eval_model(model, accelerator, "fp16")
    # under a bf16 Accelerator the prepared model's forward is autocast-wrapped on the instance: the copy drops the
    # wrapper (it runs its own weights, as plain bf16), the prepared model keeps it
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    amp = Accelerator(cpu=True, mixed_precision="bf16")
    prepared = amp.prepare(build(backbone, "last"))
    assert "forward" in prepared.__dict__
    copy = eval_model(prepared, amp, "bf16")
    assert "forward" not in copy.__dict__ and copy.forward.__self__ is copy
    assert "forward" in prepared.__dict__ and {p.dtype for p in prepared.parameters()} == {torch.float32}
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()


def test_speed_switches_in_a_cell(tiny_cell_config, tmp_path):
    """The numerics-changing switches run end to end, change the run id, and do what they say."""
    import json

    from paper_repro.config import ConfigError
    from paper_repro.results.store import cell_paths
    from paper_repro.train.cell import run_cell

    base = tiny_cell_config(tmp_path)
    fast = tiny_cell_config(tmp_path, "train.length_bucket_tokens=4", "train.freeze_word_embeddings=true",
                            "train.eval_precision=bf16", "train.mixed_precision=bf16")
    assert fast.run_id != base.run_id
    for config in (base, fast):
        path = run_cell(config)
        assert path.is_file()
        manifest = json.loads(cell_paths(config.results_dir, config.study, config.run_id)["manifest"].read_text())
        assert manifest["config"]["train"]["length_bucket_tokens"] == config.train.length_bucket_tokens
    for bad in ("train.eval_precision=fp16", "train.length_bucket_tokens=-1"):
        with pytest.raises(ConfigError):
            run_cell(tiny_cell_config(tmp_path, bad))


# ---------------------------------------------------------------------------------------------------------------
# score_by_type counts entities itself (EntitySets): its floats must be seqeval's classification_report's, to the bit
def seqeval_reference(gold, pred, types):
    """What score_by_type returned when it called seqeval's classification_report in both modes."""
    from bench.scoring import seqeval_reports

    return seqeval_reports(gold, pred, types)


def assert_same_floats(ours, reference):
    for got, want in zip(ours, reference):
        assert list(got) == list(want)
        for key in want:
            assert (math.isnan(got[key]) and math.isnan(want[key])) or got[key] == want[key], (key, got[key], want[key])


def corrupt(tags, rng, labels):
    """Prediction-like noise: swapped types, dropped and invented entities, I- tags after O (invalid IOB2)."""
    from bench.scoring import corrupt as corrupt_tags

    return corrupt_tags(tags, rng, labels)


@pytest.mark.parametrize("seed", range(40))
def test_score_by_type_equals_seqeval_on_random_sequences(seed):
    import random

    from paper_repro.train.evaluate import score_by_type

    rng = random.Random(seed)
    types = ("DRUG-X", "Gene", "LOC", "PER")   # a hyphen inside a type, as LabelSet allows
    labels = ["O"] + [f"{p}-{t}" for t in types for p in "BI"]
    gold = [[rng.choice(labels) for _ in range(rng.randint(0, 12))] for _ in range(rng.randint(1, 30))]
    pred = corrupt(gold, rng, labels) if seed % 2 else [[rng.choice(labels) for _ in s] for s in gold]
    if seed % 5 == 0:
        pred = [["O"] * len(s) for s in gold]   # no prediction at all: seqeval's zero divisions
    assert_same_floats(score_by_type(gold, pred, types), seqeval_reference(gold, pred, types))


def test_score_by_type_equals_seqeval_on_conll03_with_gold_reused(real_data_dir):
    """The real dev and test splits, scored against noisy copies of their gold: the same floats as seqeval's
    reports, with the gold's EntitySets built once and reused (as a cell does at each evaluation)."""
    import random

    from paper_repro.data.conll import ENTITY_TYPES, LABELS, read_conll
    from paper_repro.train.evaluate import EntitySets, score_by_type

    for split in ("valid", "test"):
        gold = [list(s.tags) for s in read_conll(real_data_dir / f"{split}.txt").sentences]
        gold_sets = EntitySets.of(gold)
        for seed in range(3):
            pred = corrupt(gold, random.Random(seed), list(LABELS))
            reference = seqeval_reference(gold, pred, ENTITY_TYPES)
            assert_same_floats(score_by_type(gold_sets, pred, ENTITY_TYPES), reference)
            assert_same_floats(score_by_type(gold, pred, ENTITY_TYPES), reference)
            assert 0.5 < reference[0]["f1"] < 1.0 and reference[0]["f1_strict"] != reference[0]["f1"]   # modes differ


def test_score_by_type_refuses_mismatched_lengths():
    from paper_repro.train.evaluate import EntitySets, score_by_type

    with pytest.raises(ValueError, match="differ"):
        score_by_type(EntitySets.of([["B-PER", "O"]]), [["B-PER"]])
    with pytest.raises(ValueError, match="differ"):
        score_by_type([["O"]], [["O"], ["O"]])
    with pytest.raises(ValueError, match="no sentences"):
        score_by_type([], [])
