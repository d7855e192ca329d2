"""Tests for paper_repro.train.features: word/label alignment, windows, truncation, BPE prefix space, cache."""
from __future__ import annotations

import pickle

import pytest
import torch
from accelerate import Accelerator

from fixtures import invented_sentences
from paper_repro.data.conll import LABEL2ID, LABELS, Sentence, Split
from paper_repro.models.backbone import load_tokenizer
from paper_repro.models.pooling import SubwordPooling
from paper_repro.train import features as F
from paper_repro.train.cell import eval_loader
from paper_repro.train.evaluate import predict

SOFT_HYPHEN = "\u00ad"  # removed by BERT's normalizer: a word without subwords


def split_of(*sentences: tuple[list[str], list[str]], name: str = "test") -> Split:
    return Split(name, [Sentence(tuple(t), tuple(g), 0) for t, g in sentences], source="invented", sha256=None, scheme="iob2")


@pytest.fixture(scope="module")
def tokenizer(tiny_backbone_dir):
    return load_tokenizer(str(tiny_backbone_dir))


LONG = invented_sentences(40, 0, with_long=True)[20]  # the 42-word invented sentence


def long_split() -> Split:
    return split_of(([t for t, _ in LONG], [g for _, g in LONG]))


def test_labels_on_first_subword(tokenizer):
    tokens = ["Carol", "Zorblatt", "visited", "Vandoria", "."]
    tags = ["B-PER", "I-PER", "O", "B-LOC", "O"]
    features = F.tokenize_split(split_of((tokens, tags)), tokenizer, max_length=64)
    (window,) = features.windows
    assert (window.sentence, window.word_offset) == (0, 0)
    assert window.labels == [LABEL2ID[t] for t in tags]
    pieces = tokenizer.convert_ids_to_tokens(window.input_ids)
    assert pieces == ["[CLS]", "carol", "zor", "##bla", "##tt", "visited", "van", "##dor", "##ia", ".", "[SEP]"]
    assert window.word_index == [-1, 0, 1, 1, 1, 2, 3, 3, 3, 4, -1]
    # first pooling reads exactly the first subword of each word
    ids = torch.tensor([window.input_ids], dtype=torch.float)[..., None]
    first = SubwordPooling("first")(ids, torch.tensor([window.word_index]), len(tokens))[0, :, 0]
    assert first.tolist() == [tokenizer.convert_tokens_to_ids(p) for p in ["carol", "zor", "visited", "van", "."]]
    assert features.lost_words == 0 and features.truncated_words == 0


def test_collate_pads(tokenizer):
    split = split_of((["Dave"], ["B-PER"]), (["Alice", "Marlow", "visited", "Oslo"], ["B-PER", "I-PER", "O", "B-LOC"]))
    features = F.tokenize_split(split, tokenizer, max_length=64)
    batch = F.collate(features.windows, [0, 1], tokenizer.pad_token_id)
    assert batch["input_ids"].shape == (2, 6) and batch["labels"].shape == (2, 4)
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0, 0], [1] * 6]
    assert batch["word_index"][0].tolist() == [-1, 0, -1, -1, -1, -1]
    assert batch["labels"][0].tolist() == [LABEL2ID["B-PER"], F.IGNORE_INDEX, F.IGNORE_INDEX, F.IGNORE_INDEX]
    assert batch["window_id"].tolist() == [0, 1]


def test_lost_word_is_counted_and_ignored(tokenizer):
    features = F.tokenize_split(split_of((["Dave", SOFT_HYPHEN, "left"], ["B-PER", "O", "O"])), tokenizer, max_length=64)
    (window,) = features.windows
    assert features.lost_words == 1
    assert window.labels == [LABEL2ID["B-PER"], F.IGNORE_INDEX, LABEL2ID["O"]]
    assert window.word_index == [-1, 0, 2, -1]
    assert features.select([0]).lost_words == 1


def test_split_into_windows():
    assert F.split_into_windows([1, 1, 1], 5) == [(0, 3)]
    assert F.split_into_windows([2, 2, 2], 4) == [(0, 2), (2, 3)]
    assert F.split_into_windows([3, 9, 1], 4) == [(0, 1), (1, 2), (2, 3)]  # a too-long word gets its own window
    assert F.split_into_windows([0, 4, 0, 1], 4) == [(0, 3), (3, 4)]


@pytest.mark.parametrize("max_length", [8, 12, 24])
def test_long_sentence_windows(tokenizer, max_length):
    split = long_split()
    n_words = len(split.sentences[0].tokens)
    features = F.tokenize_split(split, tokenizer, max_length=max_length)
    assert len(features.windows) > 1
    covered = []
    for window in features.windows:
        assert len(window.input_ids) <= max_length
        assert window.input_ids[0] == tokenizer.cls_token_id and window.input_ids[-1] == tokenizer.sep_token_id
        words = sorted({i for i in window.word_index if i >= 0})
        assert words == list(range(len(window.labels)))  # every word of the window has subwords
        covered += [window.word_offset + j for j in range(len(window.labels))]
        tags = split.sentences[0].tags[window.word_offset : window.word_offset + len(window.labels)]
        assert window.labels == [LABEL2ID[t] for t in tags]
    assert covered == list(range(n_words))  # at word boundaries, in order, no word lost or repeated
    assert features.sentence_windows == {0: list(range(len(features.windows)))}
    # the windows are greedy: each (but the last) could not take the next word
    lengths = [len(tokenizer.tokenize(w)) for w in split.sentences[0].tokens]
    for a, b in zip(features.windows, features.windows[1:]):
        assert sum(lengths[a.word_offset : b.word_offset]) + lengths[b.word_offset] > max_length - 2


def test_word_longer_than_window_is_truncated(tokenizer):
    split = split_of((["Carol", "Zorblatt", "left"], ["B-PER", "I-PER", "O"]))
    features = F.tokenize_split(split, tokenizer, max_length=4)  # 2 subwords per window; zorblatt has 3
    assert features.truncated_words == 1
    assert [(w.word_offset, len(w.labels)) for w in features.windows] == [(0, 1), (1, 1), (2, 1)]
    assert tokenizer.convert_ids_to_tokens(features.windows[1].input_ids) == ["[CLS]", "zor", "##bla", "[SEP]"]
    assert features.windows[1].labels == [LABEL2ID["I-PER"]]
    with pytest.raises(ValueError, match="max_length"):
        F.tokenize_split(split, tokenizer, max_length=2)


class FirstPieceModel(torch.nn.Module):
    """Predicts label (id of the word's first subword) % 9: the expected tags follow from the words alone."""

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Identity()
        self.pooling = SubwordPooling("first")

    def forward(self, input_ids, attention_mask, word_index, num_words):
        scores = torch.nn.functional.one_hot(input_ids % len(LABELS), len(LABELS)).float()
        return self.pooling(scores, word_index, num_words)


def expected_first_piece_tags(tokenizer, sentence: Sentence) -> list[str]:
    tags = []
    for word in sentence.tokens:
        pieces = tokenizer(word, add_special_tokens=False)["input_ids"]
        tags.append(LABELS[pieces[0] % len(LABELS)] if pieces else "O")
    return tags


@pytest.mark.parametrize("max_length, batch_size", [(6, 3), (10, 4), (24, 64)])
def test_every_word_predicted_once_after_reassembly(tokenizer, max_length, batch_size):
    sentences = invented_sentences(15, 7, with_long=True)
    split = split_of(*[([t for t, _ in s], [g for _, g in s]) for s in sentences], (["Dave", SOFT_HYPHEN, "Zorblatt"], ["B-PER", "O", "B-PER"]))
    features = F.tokenize_split(split, tokenizer, max_length).select(list(range(len(split.sentences))))
    accelerator = Accelerator(cpu=True)
    loader = accelerator.prepare(eval_loader(features, batch_size, F.Collator(tokenizer.pad_token_id)))
    sentences = dict(enumerate(split.sentences))
    predicted, depth = predict(FirstPieceModel(), loader, accelerator, features, sentences)
    assert depth is None
    assert sorted(predicted) == list(range(len(split.sentences)))
    for index, sentence in sentences.items():
        assert predicted[index] == expected_first_piece_tags(tokenizer, sentence), index


def test_select_orders_and_rejects_missing(tokenizer):
    split = split_of((["Dave"], ["B-PER"]), (["Oslo"], ["B-LOC"]), (["Globex"], ["B-ORG"]))
    features = F.tokenize_split(split, tokenizer, max_length=16)
    subset = features.select([2, 0])
    assert [w.sentence for w in subset.windows] == [2, 0]
    assert subset.sentence_windows == {2: [0], 0: [1]}
    with pytest.raises(ValueError, match="no windows"):
        features.select([5])


def test_length_grouped_batches(tokenizer):
    features = F.tokenize_split(long_split(), tokenizer, max_length=8)
    batches = F.length_grouped_batches(features, 3)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(features.windows)))
    lengths = [len(features.windows[i].input_ids) for i in flat]
    assert lengths == sorted(lengths, reverse=True)
    assert all(len(b) == 3 for b in batches[:-1])


# --- byte-level BPE (RoBERTa-style): the tokenizer needs add_prefix_space for pre-split words -------------


@pytest.fixture(scope="module")
def bpe_backbone_dir(tmp_path_factory):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_roberta")
    texts = [" ".join(t for t, _ in s) for s in invented_sentences(40, 0, with_long=True)]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=400, min_frequency=2, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], show_progress=False)
    bpe.save_model(str(folder))
    tokenizer = RobertaTokenizerFast(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"))
    tokenizer.save_pretrained(folder)
    config = RobertaConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=len(tokenizer),
        max_position_embeddings=80, pad_token_id=tokenizer.pad_token_id,
    )
    RobertaModel(config).save_pretrained(folder)
    return folder


def test_bpe_tokenizer_gets_prefix_space(bpe_backbone_dir):
    tokenizer = load_tokenizer(str(bpe_backbone_dir))
    assert tokenizer.is_fast and tokenizer.add_prefix_space is True
    tokens = ["Paris", "visited", "Zorblatt", "in", "Paris", "."]
    tags = ["B-LOC", "O", "B-PER", "O", "B-LOC", "O"]
    features = F.tokenize_split(split_of((tokens, tags)), tokenizer, max_length=64)
    (window,) = features.windows
    assert window.input_ids[0] == tokenizer.bos_token_id and window.input_ids[-1] == tokenizer.eos_token_id
    pieces = tokenizer.convert_ids_to_tokens(window.input_ids)
    per_word = [[p for p, w in zip(pieces, window.word_index) if w == j] for j in range(len(tokens))]
    # every word starts with the space marker, so a word tokenizes the same at the start and mid-sentence
    assert all(word[0].startswith("Ġ") for word in per_word)
    assert per_word[0] == per_word[4]
    assert "".join("".join(word) for word in per_word) == "".join("Ġ" + t for t in tokens)
    assert window.labels == [LABEL2ID[t] for t in tags]
    # the full backbone loads through the same path
    from paper_repro.models.backbone import load_backbone

    backbone = load_backbone(str(bpe_backbone_dir))
    assert backbone.tokenizer.add_prefix_space is True and backbone.num_layers == 2


# --- the cache ------------------------------------------------------------------------------------------


def test_cache_memory_disk_and_key(tokenizer):
    split = long_split()
    F._MEMORY_CACHE.clear()
    first = F.cached_features(split, tokenizer, 12)
    assert F.cached_features(split, tokenizer, 12) is first  # memory
    key = F.features_key(split, tokenizer, 12)
    path = F.cache_dir() / f"{key}.pkl"
    assert path.is_file() and "paper_repro_cache" in str(path)  # the session's temporary cache
    assert not list(path.parent.glob("*.tmp"))
    F._MEMORY_CACHE.clear()
    from_disk = F.cached_features(split, tokenizer, 12)
    assert from_disk is not first and from_disk == first
    assert from_disk == F.tokenize_split(split, tokenizer, 12)
    with open(path, "rb") as handle:
        assert pickle.load(handle) == first
    # keyed on max_length and on the content
    other = F.cached_features(split, tokenizer, 24)
    assert F.features_key(split, tokenizer, 24) != key and len(other.windows) < len(first.windows)
    relabeled = split_of((list(split.sentences[0].tokens), ["O"] * len(split.sentences[0].tokens)))
    assert F.features_key(relabeled, tokenizer, 12) != key


def test_cache_keys_on_tokenizer(tokenizer, tiny_backbone_dir):
    from transformers import BertTokenizerFast

    cased = BertTokenizerFast(vocab=str(tiny_backbone_dir / "vocab.txt"), do_lower_case=False)
    split = long_split()
    assert F.features_key(split, cased, 12) != F.features_key(split, tokenizer, 12)


def tokenizer_of(folder):
    return load_tokenizer(str(folder))


def test_key_ignores_truncation_and_padding_state(tiny_backbone_dir, tmp_path):
    """A tokenizer.json may carry truncation/padding (MiniLM's does: 128 subwords) and the tokenizer's first call
    resets them: before the fix the same split got one key before that call and another after it, so the first
    cell of a sweep process cached its train split under one key and every later cell under another (a second
    file, and in memory a second copy). The windows never depend on them (tokenize_split calls the tokenizer with
    neither and cuts windows itself)."""
    import shutil

    folder = tmp_path / "tok"
    shutil.copytree(tiny_backbone_dir, folder)
    fresh = load_tokenizer(str(folder))
    fresh.backend_tokenizer.enable_truncation(max_length=16)
    fresh.backend_tokenizer.enable_padding(length=16)
    fresh.save_pretrained(str(folder))                     # a tokenizer.json with truncation and padding
    split = long_split()
    before = load_tokenizer(str(folder))                   # as loaded: truncation and padding set
    assert before.backend_tokenizer.truncation is not None and before.backend_tokenizer.padding is not None
    after = load_tokenizer(str(folder))
    after(["a"], is_split_into_words=True)                 # any call without them resets them
    assert after.backend_tokenizer.truncation is None and after.backend_tokenizer.padding is None
    key = F.features_key(split, before, 12)
    assert F.features_key(split, after, 12) == key == F.features_key(split, tokenizer_of(tiny_backbone_dir), 12)
    assert F.tokenize_split(split, before, 12) == F.tokenize_split(split, after, 12)
    F._MEMORY_CACHE.clear()
    first = F.cached_features(split, before, 12)
    F._MEMORY_CACHE.clear()
    assert F.cached_features(split, after, 12) == first
    assert sorted(p.name for p in F.cache_dir().glob(f"*{key}*")) == [f"{key}.pkl"]


def test_key_is_the_windows_and_label_ids_only(tokenizer):
    """Equal features share one key and one file: the split's name, file sha256 and source, the tokenizer's Python
    class, and the label set beyond the ids it gives the split's tags do not enter; what changes the features does
    (the words, each word's label id, max_length, the tokenizer's state)."""
    from transformers import PreTrainedTokenizerFast

    from paper_repro.data.labels import CONLL03, LabelSet

    split = long_split()
    key = F.features_key(split, tokenizer, 12)
    renamed = Split("valid", list(split.sentences), source="elsewhere.txt", sha256="f" * 64, scheme="iob2")
    assert F.features_key(renamed, tokenizer, 12) == key
    F._MEMORY_CACHE.clear()
    assert F.cached_features(renamed, tokenizer, 12) == F.cached_features(split, tokenizer, 12)
    assert len(list(F.cache_dir().glob(f"*{key}*"))) == 1
    # the same tokenizer state under another Python class: the same windows, the same key
    plain = PreTrainedTokenizerFast(tokenizer_object=tokenizer.backend_tokenizer)
    assert type(plain) is not type(tokenizer)
    assert F.tokenize_split(split, plain, 12) == F.tokenize_split(split, tokenizer, 12)
    assert F.features_key(split, plain, 12) == key
    # label sets: one that adds a type gives the CoNLL-03 tags the same ids (same features, same key); one that
    # renumbers them does not
    wider = LabelSet.from_types([*CONLL03.types, "ZZZ"])
    assert F.tokenize_split(split, tokenizer, 12, wider) == F.tokenize_split(split, tokenizer, 12)
    assert F.features_key(split, tokenizer, 12, wider) == key
    places = split_of((["Carol", "visited", "Vandoria", "."], ["O", "O", "B-LOC", "O"]))
    renumbered = LabelSet.from_types(["LOC"])               # B-LOC is 1 here, 3 in CoNLL-03
    assert F.tokenize_split(places, tokenizer, 12, renumbered) != F.tokenize_split(places, tokenizer, 12)
    assert F.features_key(places, tokenizer, 12, renumbered) != F.features_key(places, tokenizer, 12)
    # the tags matter only through their ids; words and max_length always
    words = split_of(([t.upper() + "x" for t in split.sentences[0].tokens], list(split.sentences[0].tags)))
    assert F.features_key(words, tokenizer, 12) != key and F.features_key(split, tokenizer, 13) != key


# --- speed (issue "Cells at the hardware's pace") ----------------------------------------------------------


def reference_collate(windows, ids, pad_token_id):
    """The collate before the speed-up (preallocated tensors filled row by row)."""
    length = max(len(w.input_ids) for w in windows)
    words = max(len(w.labels) for w in windows)
    batch = len(windows)
    input_ids = torch.full((batch, length), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((batch, length), dtype=torch.long)
    word_index = torch.full((batch, length), -1, dtype=torch.long)
    labels = torch.full((batch, words), F.IGNORE_INDEX, dtype=torch.long)
    for row, window in enumerate(windows):
        n = len(window.input_ids)
        input_ids[row, :n] = torch.tensor(window.input_ids)
        attention_mask[row, :n] = 1
        word_index[row, :n] = torch.tensor(window.word_index)
        labels[row, : len(window.labels)] = torch.tensor(window.labels)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "word_index": word_index, "labels": labels,
            "window_id": torch.tensor(ids, dtype=torch.long)}


def invented_split(n: int = 15, offset: int = 7) -> Split:
    sentences = invented_sentences(n, offset, with_long=True)
    return split_of(*[([t for t, _ in s], [g for _, g in s]) for s in sentences],
                    (["Dave", SOFT_HYPHEN, "Zorblatt"], ["B-PER", "O", "B-PER"]))


@pytest.mark.parametrize("max_length", [6, 12, 24])
def test_collate_equals_the_reference(tokenizer, max_length):
    features = F.tokenize_split(invented_split(), tokenizer, max_length)
    for size in (1, 3, 7, len(features.windows)):
        for start in range(0, len(features.windows), size):
            ids = list(range(start, min(start + size, len(features.windows))))
            windows = [features.windows[i] for i in ids]
            got, want = F.collate(windows, ids, tokenizer.pad_token_id), reference_collate(windows, ids, tokenizer.pad_token_id)
            assert got.keys() == want.keys()
            for key in want:
                assert got[key].dtype == want[key].dtype and torch.equal(got[key], want[key]), key


@pytest.mark.parametrize("batch_size, max_tokens", [(3, 24), (4, 40), (64, 64 * 24), (2, 1)])
def test_token_budget_batches(tokenizer, batch_size, max_tokens):
    features = F.tokenize_split(invented_split(40, 0), tokenizer, max_length=24)
    batches = F.length_grouped_batches(features, batch_size, max_tokens)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(features.windows)))                   # every window exactly once
    lengths = [len(features.windows[i].input_ids) for i in flat]
    assert lengths == sorted(lengths, reverse=True)                              # longest first
    for batch in batches:
        longest = len(features.windows[batch[0]].input_ids)
        assert len(batch) <= 2 * batch_size
        assert len(batch) == 1 or len(batch) * longest <= max_tokens             # within the budget
    assert F.token_budget(64) == 64 * F.EVAL_TOKENS_PER_WINDOW
    assert F.length_grouped_batches(features, batch_size) == [                   # without a budget: as before
        sorted(range(len(features.windows)), key=lambda i: -len(features.windows[i].input_ids))[i : i + batch_size]
        for i in range(0, len(features.windows), batch_size)]


def test_length_bucket_sampler_covers_every_window_once_per_epoch(tokenizer):
    features = F.tokenize_split(invented_split(40, 0), tokenizer, max_length=24)
    n = len(features.windows)
    generator = torch.Generator().manual_seed(0)
    sampler = F.LengthBucketBatchSampler(features, 4, 4, generator=generator)
    plain = torch.utils.data.DataLoader(F.WindowDataset(features), batch_size=4, shuffle=True,
                                        generator=torch.Generator().manual_seed(0))
    assert len(sampler) == len(plain) == -(-n // 4)                            # as many batches as the shuffled loader
    epochs = [list(sampler) for _ in range(3)]
    for batches in epochs:
        assert sorted(i for b in batches for i in b) == list(range(n))          # each window once per epoch
        assert sum(len(b) < 4 for b in batches) <= 1                            # one short batch at most
    assert epochs[0] != epochs[1]                                               # reshuffled every epoch

    def padding(batches):
        slots = sum(len(b) * max(len(features.windows[i].input_ids) for i in b) for b in batches)
        return 1 - sum(len(w.input_ids) for w in features.windows) / slots

    shuffled = [[int(i) for i in b] for b in torch.utils.data.BatchSampler(
        torch.utils.data.RandomSampler(range(n), generator=torch.Generator().manual_seed(0)), 4, False)]
    assert padding(epochs[0]) < padding(shuffled)                               # similar lengths share a batch
    # the same generator state draws the same batches
    again = F.LengthBucketBatchSampler(features, 4, 4, generator=torch.Generator().manual_seed(0))
    assert list(again) == epochs[0]
    with pytest.raises(ValueError):
        F.LengthBucketBatchSampler(features, 4, 0, generator=generator)
