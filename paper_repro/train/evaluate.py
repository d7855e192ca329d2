"""Evaluation: the eval schedule, window predictions -> sentence tags, and seqeval scores.

Headline metric (protocol v2): entity-level micro P/R/F1 in seqeval's default mode, which chunks tags by
conlleval's rules (an I-X after O or after another type starts an entity) and so equals the conlleval F1 that
CoNLL-03 papers report. Strict IOB2 scores (an entity counts only with an exact B-/I- span) are recorded beside
it as `*_strict`; per-type F1 is in the default mode, for every entity type of the corpus' label set
(`score_by_type`; `score` keeps CoNLL-03's four types). Depth-attention statistics are grouped by the corpus' types,
then `O` and `ALL` (`depth_groups`).
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch
from accelerate import Accelerator
from seqeval.metrics.sequence_labeling import get_entities
from seqeval.scheme import IOB2, Entities

from paper_repro.data.conll import ENTITY_TYPES, LABELS, Sentence
from paper_repro.data.labels import CONLL03, LabelSet
from paper_repro.models.pooling import SubwordPooling
from paper_repro.train.features import IGNORE_INDEX, Features



def depth_groups(label_set: LabelSet = CONLL03) -> tuple[str, ...]:
    """The word groups depth-attention weights are averaged over: each entity type of the corpus, `O`, `ALL`."""
    return (*label_set.types, "O", "ALL")


DEPTH_GROUPS = depth_groups(CONLL03)   # CoNLL-03's: PER, LOC, ORG, MISC, O, ALL
EVAL_SCHEDULES = ("linear", "log")


def eval_schedule(steps: int, points: int, warmup: int = 0, kind: str = "linear") -> list[int]:
    """Optimizer steps to evaluate at, sorted and unique, always ending at `steps`.

    "linear": `points` steps evenly spaced after the warmup, warmup + i * (steps - warmup) / points for
    i = 1..points, rounded half up (never inside the warmup); "log" (old configs): `points` log-spaced steps
    from ~1% of the budget to `steps`, regardless of the warmup.
    """
    if points < 1:
        raise ValueError(f"train.eval_points must be >= 1, got {points}")
    if kind not in EVAL_SCHEDULES:
        raise ValueError(f"eval schedule kind must be one of {EVAL_SCHEDULES}, got {kind!r}")
    if not 0 <= warmup < steps:
        raise ValueError(f"eval schedule: expected 0 <= warmup < steps, got warmup {warmup} for {steps} steps")
    if kind == "log":
        first = max(1, round(steps * 0.01))
        grid = np.geomspace(first, steps, num=points) if points > 1 else np.array([steps])
        return sorted({int(round(s)) for s in grid} | {steps})
    span = steps - warmup
    grid = {warmup + max(1, (2 * i * span + points) // (2 * points)) for i in range(1, points + 1)}
    return sorted(grid)


def label_types(labels: torch.Tensor, label_set: LabelSet = CONLL03) -> list[torch.Tensor]:
    """Masks [B, W] per group in `depth_groups(label_set)` for word labels (ids into `label_set.labels`;
    IGNORE_INDEX excluded)."""
    valid = labels != IGNORE_INDEX
    names = np.array([label_set.type_of(label) for label in label_set.labels])  # "O" stays "O"
    safe = labels.clamp(min=0).cpu().numpy()
    masks = [torch.from_numpy(names[safe] == group).to(labels.device) & valid
             for group in depth_groups(label_set)[:-1]]
    return masks + [valid]


LABEL_ARRAY = np.array(LABELS, dtype=object)
EVAL_PRECISIONS = ("fp32", "bf16")


def eval_model(model: torch.nn.Module, accelerator: Accelerator, precision: str = "fp32") -> torch.nn.Module:
    """The model `predict` runs (`train.eval_precision`): the model itself ("fp32"), or a bfloat16 copy of it
    ("bf16": every parameter and buffer cast, no autocast; ~1.8x the sentences/s of fp32 on a CPU with
    AVX512-BF16; predictions differ from fp32 on ~1% of the words, so it is a config switch, off by default).
    The copy is made at each call (the weights change between evaluations) and is never trained."""
    if precision not in EVAL_PRECISIONS:
        raise ValueError(f"eval precision must be one of {EVAL_PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return model
    import copy

    clone = copy.deepcopy(accelerator.unwrap_model(model, keep_torch_compile=False))   # (train.compile: copy the eager model)
    # with mixed_precision=bf16 Accelerate wraps `forward` in autocast on the instance: the copy runs its own class
    # forward (its weights are bf16 already; the prepared model keeps its wrapper)
    for name in ("forward", "_original_forward"):
        clone.__dict__.pop(name, None)
    return clone.to(torch.bfloat16)


@torch.inference_mode()
def predict(
    model: torch.nn.Module,
    loader: torch.utils.data.DataLoader,
    accelerator: Accelerator,
    features: Features,
    sentences: dict[int, Sentence],
    progress: bool = False,
    depth_weights: bool = True,
    label_set: LabelSet = CONLL03,
) -> tuple[dict[int, list[str]], dict[str, list[float]] | None]:
    """Predict tags for every sentence in `sentences` (keys: split indices) exactly once, across processes.

    Returns the predicted tags per sentence and, when `depth_weights` is set and the head exposes
    `last_weights` [B, T, N], its mean
    depth-attention weights per gold entity type (per word, averaged over the word's subwords), keyed by
    `depth_groups(label_set)`. Prediction ids are positions in `label_set.labels` (the corpus' label set).

    Runs under `torch.inference_mode` (no autograd records, no version counters). With one process the
    pad/gather round trip is skipped (it returns its input there). Window predictions are mapped back to sentence
    tags with numpy per window (gold-labelled words take `labels[argmax]`; words without subwords stay `O`).
    """
    label_array = LABEL_ARRAY if label_set == CONLL03 else np.array(label_set.labels, dtype=object)
    groups = depth_groups(label_set)
    from tqdm.auto import tqdm

    model.eval()
    head = accelerator.unwrap_model(model).head
    mean_pool = SubwordPooling("mean", 1)
    distributed = accelerator.num_processes > 1
    window_ids, window_preds, window_depth = [], [], []
    for batch in tqdm(loader, desc="eval", leave=False, disable=not progress):
        num_words = batch["labels"].shape[1]
        logits = model(batch["input_ids"], batch["attention_mask"], batch["word_index"], num_words)
        ids, preds = batch["window_id"], logits.argmax(-1)
        weights = getattr(head, "last_weights", None) if depth_weights else None
        gathered = [ids, preds]
        if weights is not None:
            words = mean_pool(weights.float(), batch["word_index"], num_words)   # [B, W, N]
            masks = torch.stack(label_types(batch["labels"], label_set)).float()  # [G, B, W]
            sums = torch.einsum("gbw,bwn->bgn", masks, words)                    # per window [B, G, N]
            counts = masks.sum(dim=2).T                                          # [B, G]
            gathered += [sums, counts]
        if distributed:
            # batches differ in size across processes (length-grouped; the last round is evened out with repeated
            # batches): pad to one shape and gather everything; padding (id -1) and repeats are dropped below
            ids = accelerator.pad_across_processes(ids, dim=0, pad_index=-1)
            preds = accelerator.pad_across_processes(preds, dim=1, pad_index=-1)
            gathered = [ids, accelerator.pad_across_processes(preds, dim=0, pad_index=-1)]
            if weights is not None:
                gathered += [accelerator.pad_across_processes(t, dim=0) for t in (sums, counts)]
            gathered = accelerator.gather(gathered)
        gathered = [t.cpu() for t in gathered]
        window_ids.extend(gathered[0].tolist())
        window_preds.extend(gathered[1].numpy())
        if weights is not None:
            window_depth.extend(zip(gathered[2], gathered[3]))
    model.train()

    predicted = {index: ["O"] * len(sentence.tokens) for index, sentence in sentences.items()}
    seen = set()
    depth_sums = depth_counts = None
    for position, (window_id, preds) in enumerate(zip(window_ids, window_preds)):
        if window_id < 0 or window_id in seen:  # padding, or a window repeated to even out the last batches
            continue
        seen.add(window_id)
        window = features.windows[window_id]
        labels = np.asarray(window.labels)
        words = np.flatnonzero(labels != IGNORE_INDEX)
        if len(words):
            tags = predicted[window.sentence]
            start = window.word_offset
            if len(words) == len(labels):    # every word has subwords: one slice assignment
                tags[start : start + len(labels)] = label_array[preds[: len(labels)]].tolist()
            else:
                for j, tag in zip(words.tolist(), label_array[preds[words]].tolist()):
                    tags[start + j] = tag
        if window_depth:
            sums, counts = window_depth[position]
            depth_sums = sums if depth_sums is None else depth_sums + sums
            depth_counts = counts if depth_counts is None else depth_counts + counts
    if len(seen) != len(features.windows):
        raise RuntimeError(f"evaluation saw {len(seen)} of {len(features.windows)} windows")

    depth = None
    if depth_sums is not None:
        depth = {
            group: (depth_sums[g] / depth_counts[g]).tolist() if depth_counts[g] > 0 else None
            for g, group in enumerate(groups)
        }
    return predicted, depth


@dataclass(frozen=True)
class EntitySets:
    """The entities of a list of tag sequences, as seqeval finds them, per type: `default` in its default mode
    (conlleval chunking by `seqeval.metrics.sequence_labeling.get_entities`: (start, end) over the sentences joined
    with an `O` between them), `strict` in strict IOB2 mode (`seqeval.scheme.Entities`: (sentence, start, end)).
    The gold side of a split is the same at every evaluation: built once, it is reused (`score_by_type`)."""
    lengths: tuple[int, ...]
    default: dict[str, frozenset]
    strict: dict[str, frozenset]

    @classmethod
    def of(cls, tags: list[list[str]]) -> "EntitySets":
        default, strict = defaultdict(set), defaultdict(set)
        for entity_type, start, end in get_entities(tags):
            default[entity_type].add((start, end))
        for sentence in Entities(tags, IOB2).entities:
            for entity in sentence:
                strict[entity.tag].add((entity.sent_id, entity.start, entity.end))
        return cls(tuple(map(len, tags)), {t: frozenset(v) for t, v in default.items()},
                   {t: frozenset(v) for t, v in strict.items()})


def _prf(tp: int, predicted: int, true: int) -> tuple[float, float, float]:
    """Precision, recall, F1 as seqeval computes them (`zero_division=0`): a zero denominator gives 0, and
    F1 = (1 + 1) * P * R / (P + R) in that order of float operations, so the floats are seqeval's to the bit."""
    precision = tp / predicted if predicted else 0.0
    recall = tp / true if true else 0.0
    denominator = precision + recall
    return precision, recall, (2.0 * precision * recall / denominator if denominator else 0.0)


def _counts(gold: dict[str, frozenset], predicted: dict[str, frozenset]) -> dict[str, tuple[int, int, int]]:
    """(true positives, predicted, true) per entity type found in either side."""
    return {t: (len(gold.get(t, frozenset()) & predicted.get(t, frozenset())), len(predicted.get(t, ())),
                len(gold.get(t, ()))) for t in sorted(set(gold) | set(predicted))}


def score_by_type(
    gold: "list[list[str]] | EntitySets", predicted: list[list[str]],
    types: tuple[str, ...] | list[str] = ENTITY_TYPES,
) -> tuple[dict[str, float], dict[str, float]]:
    """seqeval entity-level micro P/R/F1 in the default (conlleval) mode and in strict IOB2 mode
    (`f1`, `precision`, `recall`, `*_strict`), and default-mode F1 per entity type of `types` (the corpus' types,
    in their order; NaN for a type absent from both gold and predictions).

    The numbers are those of seqeval's `classification_report` in both modes (tests compare them to the bit on
    real and random tag sequences), counted from each side's entities found once (`EntitySets`) instead of the
    four extractions per side and mode that the reports make (in a profiled frozen `dwatt` cell they came second
    only to the head's matmuls: results/bench/profiles/frozen_cell_cprofile_dwatt_before_scoring.txt).
    `gold` may be an `EntitySets` built earlier from the same tags."""
    gold_sets = gold if isinstance(gold, EntitySets) else EntitySets.of(gold)
    if not predicted:
        raise ValueError("score: no sentences to score")       # seqeval's reports refused it too
    if gold_sets.lengths != tuple(map(len, predicted)):
        raise ValueError(f"score: {len(gold_sets.lengths)} gold and {len(predicted)} predicted sequences, or their "
                         "lengths, differ")
    pred_sets = EntitySets.of(predicted)
    metrics, by_type = {}, {}
    for suffix, counts in (("", _counts(gold_sets.default, pred_sets.default)),
                           ("_strict", _counts(gold_sets.strict, pred_sets.strict))):
        totals = [sum(c[i] for c in counts.values()) for i in range(3)]
        precision, recall, f1 = _prf(*totals)
        metrics.update({f"f1{suffix}": f1, f"precision{suffix}": precision, f"recall{suffix}": recall})
        if not suffix:
            by_type = {t: _prf(*counts[t])[2] if t in counts else math.nan for t in types}
    return metrics, by_type


def score(gold: list[list[str]], predicted: list[list[str]]) -> dict[str, float]:
    """`score_by_type` for CoNLL-03's types, flat: the micro scores and `f1_PER`, `f1_LOC`, `f1_ORG`, `f1_MISC`."""
    metrics, by_type = score_by_type(gold, predicted, ENTITY_TYPES)
    return {**metrics, **{f"f1_{entity_type}": value for entity_type, value in by_type.items()}}
