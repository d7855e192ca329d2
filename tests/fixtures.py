"""Builders of the invented test fixtures, as plain functions taking a folder: a CoNLL corpus and a tiny random BERT
backbone with a WordPiece tokenizer over the corpus words.

`tests/conftest.py` wraps them in session fixtures (`tiny_conll_dir`, `tiny_backbone_dir`); the sweep tests call
them directly (per-test roots, subprocesses). Every sentence is invented from the templates below: never copy
CoNLL-03 text into the repository.
"""
from __future__ import annotations

from pathlib import Path

# --- the invented corpus -------------------------------------------------------------------------------
# (tokens, entity type or None) pieces; slots are filled round-robin from the name lists below
PERSONS = [("Alice", "Marlow"), ("Bob", "Quennel"), ("Carol", "Zorblatt"), ("Dave",), ("Erin", "Vosk")]
LOCATIONS = [("Paris",), ("Oslo",), ("Vandoria",), ("Lake", "Mirren"), ("Port", "Quennel")]
ORGS = [("Acme", "Corp"), ("Globex",), ("Initech", "Holdings"), ("Umbrella", "Bank")]
MISCS = [("Zorbish",), ("Grand", "Prix"), ("Vandorian",), ("Winter", "Cup")]
SLOTS = {"PER": PERSONS, "LOC": LOCATIONS, "ORG": ORGS, "MISC": MISCS}

TEMPLATES = [
    "{PER} visited {LOC} on monday .",
    "{ORG} said {PER} will join the board .",
    "the {MISC} team beat {LOC} 3 - 1 .",
    "{PER} of {ORG} met {PER} in {LOC} .",
    "shares in {ORG} rose 5 percent .",
    "it rained all day .",
    "{MISC} fans cheered in {LOC} , {PER} said .",
]
LONG_TEMPLATE = (
    "{PER} , who led {ORG} for ten years before moving to {LOC} , told the {MISC} press on monday that "
    "{ORG} would open offices in {LOC} and {LOC} next year , and that {PER} would run them ."
)
# words the tokenizer splits into several WordPieces (the whole words are not in the vocabulary)
SPLIT_WORDS = {
    "zorblatt": ["zor", "##bla", "##tt"],
    "vandoria": ["van", "##dor", "##ia"],
    "vandorian": ["van", "##dor", "##ian"],
    "quennel": ["que", "##nn", "##el"],
    "initech": ["init", "##ech"],
    "zorbish": ["zor", "##bish"],
}
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# split: (sentences, template offset); every split has every entity type and one long sentence (needs windows)
TINY_SPLITS = {"train": (40, 0), "valid": (15, 100), "test": (15, 200)}


def fill(template: str, index: int) -> list[tuple[str, str]]:
    """Invented sentence `index` of a template as (token, IOB2 tag) pairs."""
    pairs: list[tuple[str, str]] = []
    used = {kind: 0 for kind in SLOTS}
    for word in template.split():
        kind = word[1:-1] if word.startswith("{") else None
        if kind is None:
            pairs.append((word, "O"))
            continue
        names = SLOTS[kind]
        name = names[(index + 3 * used[kind]) % len(names)]
        used[kind] += 1
        pairs += [(token, ("B-" if i == 0 else "I-") + kind) for i, token in enumerate(name)]
    return pairs


def invented_sentences(n: int, offset: int, with_long: bool) -> list[list[tuple[str, str]]]:
    sentences = [fill(TEMPLATES[(offset + i) % len(TEMPLATES)], offset + i) for i in range(n)]
    if with_long:
        sentences[n // 2] = fill(LONG_TEMPLATE, offset)
    return sentences


def conll_text(sentences: list[list[tuple[str, str]]], per_doc: int = 6) -> str:
    lines = []
    for i, sentence in enumerate(sentences):
        if i % per_doc == 0:
            lines += ["-DOCSTART- O", ""]
        lines += [f"{token} {tag}" for token, tag in sentence] + [""]
    return "\n".join(lines)


def write_conll_fixture(folder: str | Path, splits: dict[str, tuple[int, int]] = TINY_SPLITS) -> Path:
    """train.txt / valid.txt / test.txt (2-column CoNLL with -DOCSTART- lines, one long sentence each) under
    `folder`; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for split, (n, offset) in splits.items():
        (folder / f"{split}.txt").write_text(conll_text(invented_sentences(n, offset, with_long=True)))
    return folder


def fixture_vocab() -> list[str]:
    """The WordPiece vocabulary: special tokens, every lower-cased fixture word but SPLIT_WORDS, and their pieces."""
    words = set()
    for template in [*TEMPLATES, LONG_TEMPLATE]:
        words.update(w for w in template.split() if not w.startswith("{"))
    for names in SLOTS.values():
        for name in names:
            words.update(token.lower() for token in name)
    pieces = {piece for split in SPLIT_WORDS.values() for piece in split}
    return SPECIAL_TOKENS + sorted((words - set(SPLIT_WORDS)) | pieces)


def write_tiny_bert(folder: str | Path, *, hidden: int = 32, layers: int = 2, heads: int = 2, seed: int = 0) -> Path:
    """A random BertModel + lower-casing BertTokenizerFast over `fixture_vocab()` under `folder`; returns it."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = fixture_vocab()
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True)
    for word, pieces in SPLIT_WORDS.items():
        assert tokenizer.tokenize(word) == pieces, word
    tokenizer.save_pretrained(folder)
    torch.manual_seed(seed)
    config = BertConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=2 * hidden, vocab_size=len(vocab))
    BertModel(config).save_pretrained(folder)
    return folder
