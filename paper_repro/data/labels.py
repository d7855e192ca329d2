"""The label set of a NER corpus: its entity types, read from the training split, and the IOB tags over them.

A tag is `O`, `B-<type>` or `I-<type>` (IOB1 or IOB2; `paper_repro.data.conll` converts IOB1 to IOB2). A type is
any non-empty text without whitespace, kept exactly as written (case included: `loc` and `LOC` are two types);
`O` and `ALL` are reserved (the depth-attention groups of `paper_repro.train.evaluate` use them). Anything else
(`X-FOO`, `B-`, `BPER`, `b-PER`) is a tag the scheme cannot parse.

Canonical order (`canonical_types`): the CoNLL-03 types that occur, in CoNLL-03's order PER, LOC, ORG, MISC, then
every other type sorted by code point (Python's `sorted`: upper case before lower case). The labels are `O`, then
`B-t`, `I-t` per type in that order, and a label's id is its position. So CoNLL-03 gives exactly
O, B-PER, I-PER, B-LOC, I-LOC, B-ORG, I-ORG, B-MISC, I-MISC (ids 0..8), as before the label set was read from the
data, and every classifier, feature and run id of a CoNLL-03 cell is unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

CONLL03_TYPES = ("PER", "LOC", "ORG", "MISC")
RESERVED_TYPES = ("O", "ALL")
TAG_PREFIXES = ("B", "I")


def parse_tag(tag: str) -> str | None:
    """The entity type of an IOB tag (None for `O`); a ValueError with a one-line reason if the tag is not
    `O`, `B-<type>` or `I-<type>`."""
    if tag == "O":
        return None
    prefix, dash, entity_type = tag.partition("-")
    if not dash or prefix not in TAG_PREFIXES:
        raise ValueError(f"expected a tag O, B-<type> or I-<type>, found {tag!r}")
    if not entity_type or any(c.isspace() for c in entity_type):
        raise ValueError(f"expected a tag O, B-<type> or I-<type> with a non-empty type, found {tag!r}")
    if entity_type in RESERVED_TYPES:
        raise ValueError(f"entity type {entity_type!r} of tag {tag!r} is reserved (types may not be "
                         f"{' or '.join(RESERVED_TYPES)})")
    return entity_type


def canonical_types(types: Iterable[str]) -> tuple[str, ...]:
    """The CoNLL-03 types present, in CoNLL-03's order, then the others sorted (code point order)."""
    present = set(types)
    return tuple(t for t in CONLL03_TYPES if t in present) + tuple(sorted(present - set(CONLL03_TYPES)))


@dataclass(frozen=True)
class LabelSet:
    """Entity types (canonical order) and the IOB2 labels over them: `O`, then `B-t`, `I-t` per type."""

    types: tuple[str, ...]
    labels: tuple[str, ...] = field(init=False, repr=False)
    label2id: dict[str, int] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        types = tuple(self.types)
        for entity_type in types:
            parse_tag(f"B-{entity_type}")   # the same rules as a tag in a file (ValueError otherwise)
        if types != canonical_types(types) or len(set(types)) != len(types):
            raise ValueError(f"entity types must be unique and in canonical order {canonical_types(types)}, "
                             f"got {types}")
        labels = ("O",) + tuple(f"{prefix}-{t}" for t in types for prefix in TAG_PREFIXES)
        object.__setattr__(self, "types", types)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "label2id", {label: index for index, label in enumerate(labels)})

    @classmethod
    def from_types(cls, types: Iterable[str]) -> "LabelSet":
        """The label set over `types` (any order, duplicates allowed), put in canonical order."""
        return cls(canonical_types(types))

    @classmethod
    def from_tags(cls, tags: Iterable[str]) -> "LabelSet":
        """The label set of every type among `tags` (ValueError on a tag the scheme cannot parse)."""
        return cls.from_types(t for t in map(parse_tag, tags) if t is not None)

    @classmethod
    def from_sentences(cls, sentences: Iterable) -> "LabelSet":
        """The label set of the types in `sentences` (objects with `.tags`), e.g. a training split."""
        return cls.from_tags({tag for sentence in sentences for tag in sentence.tags})

    def __len__(self) -> int:
        return len(self.labels)

    def __contains__(self, label: object) -> bool:
        return label in self.label2id

    def type_of(self, label: str) -> str:
        """`O` for `O`, else the label's entity type (`B-DRUG-X` -> `DRUG-X`)."""
        return "O" if label == "O" else label[2:]

    def is_conll03(self) -> bool:
        return self.types == CONLL03_TYPES


CONLL03 = LabelSet(CONLL03_TYPES)


def label_names(labels: LabelSet | Sequence[str]) -> tuple[str, ...]:
    """The label names of a LabelSet or of a plain sequence of labels."""
    return labels.labels if isinstance(labels, LabelSet) else tuple(labels)
