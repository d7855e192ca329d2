"""Sentences -> subword windows with word-level labels, cached per (words, label ids, tokenizer, max length).

Words are tokenized with `is_split_into_words=True`. Each window keeps, per subword, the index of its word
(-1 for special tokens), and one label per word: the `first` subword pooling is exactly the usual
"label on the first subword, -100 elsewhere" convention. A sentence longer than `max_length` subwords is
split into consecutive windows at word boundaries, never truncated; a single word longer than a window keeps
its first subwords (counted as `truncated_words`). A word the tokenizer maps to no subword (`lost_words`)
has no feature: it is predicted `O` and counted. Label ids are positions in the corpus' label set (`LabelSet`,
CoNLL-03's `LABEL2ID` by default); the ids, not the tag names, enter the cache key (`features_key`).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from paper_repro.atomic import atomic_write_bytes
from paper_repro.data.conll import LABEL2ID, Split
from paper_repro.data.labels import CONLL03, LabelSet

IGNORE_INDEX = -100
FEATURES_VERSION = 2  # bump when tokenize_split's output changes: invalidates the on-disk cache


@dataclass
class Window:
    sentence: int            # index into the split's sentences
    word_offset: int         # index of the window's first word within its sentence
    input_ids: list[int]     # [T] with special tokens
    word_index: list[int]    # [T] word index within the window, -1 for special tokens
    labels: list[int]        # [W] label id per word (IGNORE_INDEX for a word without subwords)


@dataclass
class Features:
    windows: list[Window]
    lost_words: int = 0
    truncated: dict[int, int] = field(default_factory=dict)  # sentence -> words cut to the window size
    sentence_windows: dict[int, list[int]] = field(default_factory=dict)  # sentence -> window positions

    def __post_init__(self) -> None:
        if not self.sentence_windows:
            for position, window in enumerate(self.windows):
                self.sentence_windows.setdefault(window.sentence, []).append(position)

    def select(self, sentences: list[int]) -> "Features":
        """The windows of the given sentences, in that order (a few-shot subset of the train split)."""
        missing = [s for s in sentences if s not in self.sentence_windows]
        if missing:
            raise ValueError(f"sentences {missing[:5]} have no windows")
        windows = [self.windows[p] for s in sentences for p in self.sentence_windows[s]]
        lost = sum(label == IGNORE_INDEX for w in windows for label in w.labels)
        truncated = {s: self.truncated[s] for s in sentences if s in self.truncated}
        return Features(windows=windows, lost_words=lost, truncated=truncated)

    @property
    def truncated_words(self) -> int:
        return sum(self.truncated.values())


def special_tokens(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """Special token ids the tokenizer puts before and after the words, e.g. ([CLS], [SEP])."""
    probe = tokenizer(["a"], is_split_into_words=True, add_special_tokens=True)
    word_ids = probe.word_ids(0)
    first = word_ids.index(0)
    last = len(word_ids) - 1 - word_ids[::-1].index(0)
    return probe["input_ids"][:first], probe["input_ids"][last + 1 :]


def split_into_windows(word_lengths: list[int], budget: int) -> list[tuple[int, int]]:
    """Greedy word-boundary chunks [start, end) whose subword counts fit `budget`."""
    chunks, start, used = [], 0, 0
    for word, length in enumerate(word_lengths):
        cost = min(length, budget)
        if used + cost > budget and word > start:
            chunks.append((start, word))
            start, used = word, 0
        used += cost
    chunks.append((start, len(word_lengths)))
    return chunks


def tokenize_split(split: Split, tokenizer: PreTrainedTokenizerBase, max_length: int,
                   label_set: LabelSet = CONLL03) -> Features:
    """Tokenize every sentence of `split` once (batched, fast tokenizer) and cut it into windows; word labels are
    ids in `label_set` (the corpus' label set)."""
    label2id = label_ids(label_set)
    prefix, suffix = special_tokens(tokenizer)
    budget = max_length - len(prefix) - len(suffix)
    if budget < 1:
        raise ValueError(f"max_length={max_length} leaves no room for words next to {len(prefix) + len(suffix)} special tokens")
    encoded = tokenizer(
        [list(s.tokens) for s in split.sentences], is_split_into_words=True, add_special_tokens=False
    )
    windows, lost, truncated = [], 0, {}
    for index, sentence in enumerate(split.sentences):
        ids, word_ids = encoded["input_ids"][index], encoded.word_ids(index)
        per_word: list[list[int]] = [[] for _ in sentence.tokens]
        for token_id, word in zip(ids, word_ids):
            per_word[word].append(token_id)
        lengths = [len(pieces) for pieces in per_word]
        lost += sum(length == 0 for length in lengths)
        if any(length > budget for length in lengths):
            truncated[index] = sum(length > budget for length in lengths)
        for start, end in split_into_windows(lengths, budget):
            input_ids, word_index = [], []
            for word in range(start, end):
                pieces = per_word[word][:budget]
                input_ids += pieces
                word_index += [word - start] * len(pieces)
            labels = [
                label2id[sentence.tags[w]] if lengths[w] else IGNORE_INDEX for w in range(start, end)
            ]
            windows.append(
                Window(index, start, prefix + input_ids + suffix, [-1] * len(prefix) + word_index + [-1] * len(suffix), labels)
            )
    return Features(windows=windows, lost_words=lost, truncated=truncated)


def cache_dir() -> Path:
    return Path(os.environ.get("PAPER_REPRO_CACHE", Path.home() / ".cache" / "paper_repro")) / "features"


_TOKENIZERS: "weakref.WeakKeyDictionary[Any, str]" = weakref.WeakKeyDictionary()


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """sha256 of what the tokenizer contributes to the windows: the fast tokenizer's serialized state (vocabulary,
    normalizer = casing and accents, pre-tokenizer = e.g. the prefix space, model, added tokens, post-processor =
    the special tokens around the words) and whether it splits special-token text (`encode_special_tokens`, not in
    the serialized state), WITHOUT its `truncation` and `padding` settings: a tokenizer.json may carry them
    (MiniLM's does: 128 subwords), and the tokenizer's first call (`tokenize_split` calls it with neither) resets
    them, so they differ before and after it while the windows cannot (they are cut by `split_into_windows`, not by
    the tokenizer). Not the Python class, the source path or the revision: the same state gives the same windows
    whatever file or revision it was loaded from. Memoized per tokenizer object."""
    if tokenizer not in _TOKENIZERS:
        backend = tokenizer.backend_tokenizer
        state = json.loads(backend.to_str())
        state.pop("truncation", None)
        state.pop("padding", None)
        state["encode_special_tokens"] = bool(getattr(backend, "encode_special_tokens", False))
        _TOKENIZERS[tokenizer] = hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()
    return _TOKENIZERS[tokenizer]


def label_ids(label_set: LabelSet = CONLL03) -> dict[str, int]:
    """The tag -> id mapping `tokenize_split` writes into `Window.labels`."""
    return LABEL2ID if label_set == CONLL03 else label_set.label2id


_CONTENTS: dict[tuple[int, str], tuple[Split, str]] = {}   # (id(split), what) -> (split, sha256): splits are few
# and never changed once loaded; memoized because a frozen cell asks for the keys of its three splits ~9 times


def _memo_sha256(split: Split, what: str, payload) -> str:
    known = _CONTENTS.get((id(split), what))
    if known is None or known[0] is not split:
        serialized = json.dumps(payload(), ensure_ascii=False, separators=(",", ":"))
        known = _CONTENTS[(id(split), what)] = (split, hashlib.sha256(serialized.encode("utf-8")).hexdigest())
    return known[1]


def tokens_sha256(split: Split) -> str:
    """sha256 of the split's words, sentence by sentence in order (what the windows' subwords come from; not the
    tags, the file's bytes or the split's name). Memoized per split object."""
    return _memo_sha256(split, "tokens", lambda: [list(s.tokens) for s in split.sentences])


def features_key(split: Split, tokenizer: PreTrainedTokenizerBase, max_length: int,
                 label_set: LabelSet = CONLL03) -> str:
    """The cache key of `tokenize_split(split, tokenizer, max_length, label_set)`: a function of exactly what its
    output depends on. The windows (`input_ids`, `word_index`, `sentence`, `word_offset`, the truncated and lost
    words): the words of every sentence in order, the tokenizer (`tokenizer_fingerprint`), `max_length` and the
    code (FEATURES_VERSION). The labels: each word's label id, i.e. the tags through the label set, so two
    label sets giving the tags the same ids share a cache, and a label set that renumbers them does not. Nothing
    else: not the split's name or file sha256, the tokenizer's class, source or revision, nor its truncation and
    padding settings (which flip at its first call)."""
    label2id = label_ids(label_set)
    tokens = tokens_sha256(split)
    mapping = json.dumps(sorted(label2id.items()))
    labels = _memo_sha256(split, f"label_ids:{mapping}", lambda: [   # an unknown tag stays text (tokenize_split fails)
        [label2id.get(tag, tag) for tag in s.tags] for s in split.sentences])
    identity = {"version": FEATURES_VERSION, "tokenizer": tokenizer_fingerprint(tokenizer),
                "max_length": int(max_length), "tokens": tokens, "label_ids": labels}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]


_MEMORY_CACHE: dict[str, Features] = {}


def cached_features(split: Split, tokenizer: PreTrainedTokenizerBase, max_length: int,
                    label_set: LabelSet = CONLL03) -> Features:
    """`tokenize_split`, memoized in this process and on disk (`$PAPER_REPRO_CACHE/features`); label ids in
    `label_set`."""
    key = features_key(split, tokenizer, max_length, label_set)
    if key in _MEMORY_CACHE:
        return _MEMORY_CACHE[key]
    path = cache_dir() / f"{key}.pkl"   # not named by the split: equal features share one file
    if path.exists():
        with open(path, "rb") as handle:
            features = pickle.load(handle)
    else:
        features = tokenize_split(split, tokenizer, max_length, label_set)
        atomic_write_bytes(path, pickle.dumps(features, protocol=pickle.HIGHEST_PROTOCOL))
    _MEMORY_CACHE[key] = features
    return features


def collate(windows: list[Window], ids: list[int], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Pad a batch to its own longest window: input_ids/attention_mask/word_index [B, T], labels [B, W].

    The rows are padded as Python lists and converted with one `torch.tensor` call per field: the same tensors as
    filling preallocated ones row by row, ~3.5x faster (CoNLL-03 dev, 64-window batches: 0.75 vs 2.7 ms)."""
    length = max(len(w.input_ids) for w in windows)
    words = max(len(w.labels) for w in windows)
    input_ids, attention_mask, word_index, labels = [], [], [], []
    for window in windows:
        pad = length - len(window.input_ids)
        input_ids.append(window.input_ids + [pad_token_id] * pad)
        attention_mask.append([1] * len(window.input_ids) + [0] * pad)
        word_index.append(window.word_index + [-1] * pad)
        labels.append(window.labels + [IGNORE_INDEX] * (words - len(window.labels)))
    return {
        "input_ids": torch.tensor(input_ids, dtype=torch.long),
        "attention_mask": torch.tensor(attention_mask, dtype=torch.long),
        "word_index": torch.tensor(word_index, dtype=torch.long),
        "labels": torch.tensor(labels, dtype=torch.long),
        "window_id": torch.tensor(ids, dtype=torch.long),
    }


class WindowDataset(torch.utils.data.Dataset):
    """Indexable windows; items are (position, window) so batches know which windows they hold."""

    def __init__(self, features: Features):
        self.windows = features.windows

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, position: int) -> tuple[int, Window]:
        return position, self.windows[position]


class Collator:
    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, items: list[tuple[int, Window]]) -> dict[str, torch.Tensor]:
        return collate([w for _, w in items], [i for i, _ in items], self.pad_token_id)


def length_grouped_batches(features: Features, batch_size: int, max_tokens: int | None = None) -> list[list[int]]:
    """Eval batches of similar-length windows (longest first) so padding is minimal.

    Without `max_tokens`: consecutive runs of `batch_size` windows of the length-sorted order. With `max_tokens`
    (the token budget, `token_budget(batch_size)` for evaluation): a batch of the sorted order grows while its
    padded size (windows x its longest window) stays within `max_tokens` and it holds at most 2 x `batch_size`
    windows, so long windows come in small batches and short ones in larger ones (less padding, and larger
    matrix products for short windows). Every window is in exactly one batch, in both modes. A window's logits do
    not depend on its batch mathematically (masked attention, per-row ops); in floating point they can differ in
    the last bits, and no predicted tag changed (MiniLM-L6, the 1,000-sentence CoNLL-03 dev subsample, ~15k words,
    fixed 64-window batches vs budgets of 1,024 to 8,192 tokens; tests/train/test_evaluate.py checks it on the
    tiny fixture).
    """
    order = sorted(range(len(features.windows)), key=lambda i: -len(features.windows[i].input_ids))
    if max_tokens is None:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    cap = max(1, 2 * batch_size)
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for position in order:
        if not current:
            longest = len(features.windows[position].input_ids)   # descending: the first is the longest
        elif (len(current) + 1) * longest > max_tokens or len(current) >= cap:
            batches.append(current)
            current = []
            longest = len(features.windows[position].input_ids)
        current.append(position)
    if current:
        batches.append(current)
    return batches


EVAL_TOKENS_PER_WINDOW = 24   # eval token budget per window of eval_batch_size (1,536 tokens for 64 windows)


def token_budget(batch_size: int) -> int:
    """The eval batches' token budget for an `eval_batch_size`: batch_size x EVAL_TOKENS_PER_WINDOW (measured on
    CoNLL-03 dev with MiniLM-L6 on 1 and 2 CPU threads: ~25-30% more sentences/s than fixed 64-window batches)."""
    return batch_size * EVAL_TOKENS_PER_WINDOW


class LengthBucketBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Training batches of similar-length windows, with the same per-epoch coverage as a shuffled loader.

    `train.length_bucket_tokens` (> 0; 0 = the plain shuffled loader). Each epoch: a random permutation of the
    windows (from `generator`), stably sorted by length bucket (`len(input_ids) // bucket_tokens`), so windows of
    one bucket stay in random order; cut into consecutive batches of `batch_size` (the last one may be smaller,
    as the shuffled loader's last batch); the batches are then visited in a random order. Every window is seen
    exactly once per epoch, as with `shuffle=True`, and the number of batches per epoch is the same; what changes
    is which windows share a batch (similar lengths: less padding, fewer FLOPs) - a numerics change, so it is a
    config switch, off by default.
    """

    def __init__(self, features: Features, batch_size: int, bucket_tokens: int, generator: torch.Generator):
        if batch_size < 1 or bucket_tokens < 1:
            raise ValueError(f"batch_size and bucket_tokens must be positive, got {batch_size}, {bucket_tokens}")
        self.buckets = [len(w.input_ids) // bucket_tokens for w in features.windows]
        self.batch_size = batch_size
        self.generator = generator

    def __len__(self) -> int:
        return math.ceil(len(self.buckets) / self.batch_size)

    def __iter__(self):
        permutation = torch.randperm(len(self.buckets), generator=self.generator).tolist()
        ordered = sorted(permutation, key=lambda i: self.buckets[i])          # stable: random within a bucket
        batches = [ordered[i : i + self.batch_size] for i in range(0, len(ordered), self.batch_size)]
        for b in torch.randperm(len(batches), generator=self.generator).tolist():
            yield batches[b]
