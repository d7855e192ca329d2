"""Typed configuration of one study cell, with YAML round trip and type-checked `key=value` overrides.

A cell is one (backbone, fusion head, few-shot subset, seed) run. Nested sections are addressed with dotted
keys: `train.steps=100`, `model.head.name=dwatt`. Unknown keys and wrong types are errors, never ignored.
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import inspect
import io
import json
import math
import re
import tokenize
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration key or value that does not fit the dataclass schema."""


# YAML 1.1 (PyYAML) reads `1e-3` and `1.0e5` as strings; a float field takes them as numbers
EXPONENT_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
# the words YAML 1.1 reads as booleans besides true/false; a bool field still takes them (old files), a str
# field keeps them as text (`train.mixed_precision: no` is "no")
YAML11_BOOL_WORDS = {w: value for word, value in (("yes", True), ("no", False), ("on", True), ("off", False))
                     for w in (word, word.capitalize(), word.upper())}
BOOL_TAG = "tag:yaml.org,2002:bool"


class ConfigLoader(yaml.SafeLoader):
    """SafeLoader whose only booleans are true/false (True, TRUE, false, ...): YAML 1.1's yes/no/on/off stay
    strings, so `mixed_precision: no` is the text the user wrote. Used for every config and study file."""


ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ConfigLoader.add_implicit_resolver(BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def load_yaml(text: str) -> Any:
    """Parse config/study YAML with `ConfigLoader` (booleans only true/false)."""
    return yaml.load(text, Loader=ConfigLoader)  # noqa: S506 (a SafeLoader subclass)


def yaml_error_text(error: yaml.YAMLError) -> str:
    """One line for a YAML syntax error: the problem and where."""
    problem = getattr(error, "problem", None)
    mark = getattr(error, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def read_yaml_file(path: str | Path, what: str) -> Any:
    """Parse the YAML file at `path`; unreadable files and bad YAML become a one-line `ConfigError` naming `what`."""
    try:
        return load_yaml(Path(path).read_text())
    except OSError as error:
        raise ConfigError(f"{path}: cannot read {what} ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: cannot read {what} (not UTF-8 text)") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: invalid YAML ({yaml_error_text(error)})") from None


@dataclass
class DataConfig:
    data_dir: str | None = None          # CoNLL files; None -> $PAPER_REPRO_CONLL03, else the hub dataset
    hub_id: str = "tomaarsen/conll2003"
    hub_revision: str | None = None      # commit of the hub dataset (used when no local folder is found); None: main; a study's lock sets it
    convert_iob1: bool = False           # convert IOB1 input to IOB2 (the scheme used is recorded)
    strict_iob2: bool = True             # reject I-X after O / another type
    sampler: str = "sentences"           # "sentences" (N sentences) | "ktype" (K mentions per type) | "full"
    size: int = 100                      # N for `sentences`, K for `ktype`, ignored for `full`
    data_seed: int = 0                   # draws the subset; independent of `train.seed`
    subset_version: int = 2              # 2: nested (one permutation per data_seed, size N = its first N); 1: independent draws (protocol v1)
    subset_dir: str | None = None        # None -> data/subsets/conll2003 in the checkout
    dev_subsample: int = 1000            # dev sentences scored at intermediate eval points (0 = all)
    dev_subsample_seed: int = 0          # fixed across cells so every method is scored on the same sentences


@dataclass
class HeadConfig:
    name: str = "last"                   # a key of paper_repro.models.heads.HEADS
    fuse_embeddings: bool = False        # include the embedding output z_0 among the fused layers
    budget: str = "deeper"               # "deeper": solve the width knob to match `deeper` (k=budget_layers); "none": use `options` as given
    budget_layers: int = 1               # extra backbone layers that define the parameter budget
    budget_tolerance: float = 0.03
    options: dict[str, Any] = field(default_factory=dict)  # head keyword options (e.g. {"d_pos": 24}); a knob given here is not solved


@dataclass
class ModelConfig:
    backbone: str = "minilm-l6"          # alias (minilm-l6, mpnet-base), hub id or local path
    revision: str | None = None          # hub ids only: branch, tag or commit sha to load (null = main, or the commit pinned in <study>.lock.yaml); the manifest records the commit used
    max_length: int = 128                # subword window; longer sentences are split into windows
    window_stride_words: int = 0         # reserved context overlap between windows (0 = disjoint windows)
    pooling: str = "first"               # subword -> word pooling: first | mean | attention
    dropout: float = 0.1                 # before the classifier
    finetune: str = "full"               # "full": the encoder trains too; "frozen": only head + pooling + classifier, on cached hidden states
    head: HeadConfig = field(default_factory=HeadConfig)


@dataclass
class TrainConfig:
    seed: int = 0                        # head init, dropout and batch order (classifier init: own generator)
    step_rule: str = "epochs"            # "epochs": max(steps, ceil(min_epochs x batches per epoch)); "fixed": `steps`
    steps: int = 200                     # the floor of the "epochs" rule, or the whole budget under "fixed"
    min_epochs: float = 5.0              # passes over the training windows the "epochs" rule guarantees
    max_steps: int = 0                   # cap of the resolved budget (0 = none)
    batch_size: int = 8
    backbone_lr: float = 5e-5
    head_lr: float = 1e-3                # head + classifier; see README "Protocol" for why it is separate
    weight_decay: float = 0.01
    warmup_steps: int = 20               # linear warmup, the same number of steps at every size
    warmup_ratio: float = 0.0            # > 0: warmup = ratio x resolved budget instead (then warmup_steps must be 0)
    max_grad_norm: float = 1.0
    eval_schedule: str = "linear"        # "linear": dev evals evenly spaced after warmup, the last at the final step; "log" (v1)
    eval_points: int = 8                 # dev evaluations per cell
    eval_batch_size: int = 64
    mixed_precision: str = "no"          # "no" | "bf16" (GPU autocast through Accelerate)
    deterministic: bool = False          # torch.use_deterministic_algorithms + seeded everything
    log_with: str = "none"               # experiment tracker through Accelerate: none | tensorboard | wandb | mlflow (not in the run id)
    # speed switches (issue "Cells at the hardware's pace"), off by default; they change the numerics, so a cell that
    # sets one gets another run id (omitted from the hash at their default: OMITTED_AT_DEFAULT)
    length_bucket_tokens: int = 0        # > 0: training batches of similar-length windows (length buckets this many subwords wide; each window once per epoch, batches in random order); 0: the shuffled loader
    freeze_word_embeddings: bool = False # keep the backbone's word-embedding table fixed (no gradient, no AdamW update: ~half of MiniLM's parameters)
    eval_precision: str = "fp32"         # "fp32" | "bf16": predict with a bf16 copy of the model (CPU: ~1.8x sentences/s; training precision: mixed_precision)
    compile: str = "none"                # "none" | "default": torch.compile (inductor, dynamic shapes, eager dropout RNG) of the tagger through Accelerate's dynamo plugin (reduce-overhead refused: CUDA graphs crashed on an H200; max-autotune unchecked: validate.REFUSED)
    head_words_only: bool = False        # training steps run a token-by-token head (not deeper) on each word's first subword only (model.pooling: first): the same function, equal up to float rounding (fp32 CPU: logits to the bit); evaluation unchanged
    tf32: bool = False                   # CUDA: TF32 for fp32 matmuls and cuDNN in training and eval; no effect on the CPU


@dataclass
class CellConfig:
    study: str = "adhoc"
    stage: str = ""                      # the study stage that runs this cell (e.g. "tune", "eval"); "" = none
    results_dir: str = "results"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    # keys that say where a result goes, not what is computed: kept out of the run id
    NON_IDENTITY_KEYS: typing.ClassVar[tuple[str, ...]] = ("study", "stage", "results_dir", "data.data_dir", "data.subset_dir",
                                                            "train.log_with")
    # keys omitted from the hash at their default: keys added after cells were run, left out of the identity
    # while they hold their default value, so that no existing run id moved (any other value enters the hash)
    OMITTED_AT_DEFAULT: typing.ClassVar[tuple[str, ...]] = ("model.revision", "model.finetune", "train.length_bucket_tokens",
                                                            "train.freeze_word_embeddings", "train.eval_precision",
                                                            "data.hub_revision", "train.compile", "train.tf32",
                                                            "train.head_words_only")

    def to_dict(self) -> dict[str, Any]:
        """`dataclasses.asdict(self)`, built without deep-copying the immutable leaves (a sweep hashes thousands of
        cells: this is most of expanding a study)."""
        return plain(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "CellConfig":
        return build_dataclass(cls, raw, prefix="")

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] = ()) -> "CellConfig":
        raw = read_yaml_file(path, "config file") or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        try:
            config = cls.from_dict(raw)
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}") from None
        return apply_overrides(config, overrides)

    def identity(self) -> dict[str, Any]:
        """The config without its non-identity keys, and without the `OMITTED_AT_DEFAULT` keys that hold their
        default value: what determines the computation."""
        flat = flatten(self.to_dict())
        defaults = default_values()
        return {k: v for k, v in flat.items() if k not in self.NON_IDENTITY_KEYS
                and not (k in self.OMITTED_AT_DEFAULT and v == defaults[k])}

    def config_hash(self) -> str:
        canonical = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def run_id(self) -> str:
        """Short, readable, deterministic id: method-size-seeds plus a hash of the canonical config."""
        d, m, t = self.data, self.model, self.train
        return f"{m.head.name}-{d.sampler}{d.size}-d{d.data_seed}-s{t.seed}-{self.config_hash()[:12]}"


IMMUTABLE_LEAVES = (str, int, float, bool, type(None))


def plain(value: Any) -> Any:
    """What `dataclasses.asdict` makes of `value` (dataclasses to dicts in field order, lists/tuples/dicts rebuilt,
    other values deep-copied), with str/int/float/bool/None returned as they are."""
    if isinstance(value, IMMUTABLE_LEAVES):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(plain(item) for item in value)
    if isinstance(value, dict):
        return type(value)((plain(k), plain(v)) for k, v in value.items())
    return copy.deepcopy(value)


@functools.lru_cache(maxsize=1)
def default_values() -> typing.Mapping[str, Any]:
    """The default CellConfig, flattened (dotted key -> value); read-only."""
    return types.MappingProxyType(flatten(CellConfig().to_dict()))


def resolve_steps(train: TrainConfig, train_windows: int) -> tuple[int, int]:
    """The cell's optimizer-step budget and warmup steps, resolved from the step rule and the training set size.

    "epochs": max(train.steps, ceil(min_epochs x ceil(train_windows / batch_size))), capped by max_steps (> 0);
    every method at a given size gets the same budget. "fixed": train.steps. Warmup: warmup_steps, or
    round(warmup_ratio x budget) when warmup_ratio > 0.
    """
    if train.step_rule == "fixed":
        steps = train.steps
    elif train.step_rule == "epochs":
        per_epoch = math.ceil(train_windows / train.batch_size)
        steps = max(train.steps, math.ceil(train.min_epochs * per_epoch))
    else:
        raise ConfigError(f"train.step_rule: expected epochs or fixed, got {train.step_rule!r}")
    if train.max_steps > 0:
        steps = min(steps, train.max_steps)
    warmup = round(train.warmup_ratio * steps) if train.warmup_ratio > 0 else train.warmup_steps
    if warmup >= steps:
        raise ConfigError(f"train: warmup ({warmup} steps) must be shorter than the budget ({steps} steps)")
    return steps, warmup


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; `options`-like free dicts are kept as leaves."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and key != "options":
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def check_type(value: Any, annotation: Any, key: str) -> Any:
    """Return `value` if it fits `annotation` (ints widen to float); raise ConfigError otherwise."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(annotation):
            if option is type(None) and value is None:
                return None
            if option is not type(None):
                try:
                    return check_type(value, option, key)
                except ConfigError:
                    continue
        raise ConfigError(f"{key}: expected {annotation}, got {value!r}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item,) = typing.get_args(annotation)
        return [check_type(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str) and EXPONENT_FLOAT.fullmatch(value.strip()):
        return float(value)
    if annotation is bool and isinstance(value, str) and value in YAML11_BOOL_WORDS:
        return YAML11_BOOL_WORDS[value]
    if annotation is bool and not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if annotation is str and isinstance(value, bool):
        raise ConfigError(f"{key}: expected str, got {value!r} (quote the value: unquoted no/yes/on/off are "
                          f"booleans in YAML 1.1)")
    if annotation is int and isinstance(value, bool):
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if isinstance(annotation, type) and not isinstance(value, annotation):
        raise ConfigError(f"{key}: expected {annotation.__name__}, got {value!r}")
    return value


@functools.lru_cache(maxsize=None)
def type_hints(cls: type) -> typing.Mapping[str, Any]:
    """`typing.get_type_hints(cls)`, once per class (a sweep builds thousands of cells); read-only."""
    return types.MappingProxyType(typing.get_type_hints(cls))


@functools.lru_cache(maxsize=None)
def field_names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls))


def build_dataclass(cls: type, raw: dict[str, Any], prefix: str) -> Any:
    hints = type_hints(cls)
    names = field_names(cls)
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"unknown config key {prefix}{unknown[0]!s} (known: {', '.join(sorted(names))})")
    values = {}
    for name, value in raw.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(f"{prefix}{name}: expected a mapping, got {value!r}")
            values[name] = build_dataclass(hint, value, f"{prefix}{name}.")
        else:
            values[name] = check_type(value, hint, prefix + name)
    return cls(**values)


def field_annotation(key: str, cls: type = None) -> Any:
    """The type annotation of a dotted CellConfig key (`train.mixed_precision` -> str); None if unknown."""
    node: Any = CellConfig if cls is None else cls
    for part in key.split("."):
        if not dataclasses.is_dataclass(node):
            return None
        hints = type_hints(node)
        if part not in hints or typing.get_origin(hints[part]) is typing.ClassVar:
            return None
        node = hints[part]
    return node


def takes_text(annotation: Any) -> bool:
    """Whether a field of this annotation takes a string (str, str | None)."""
    if annotation is str:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return str in typing.get_args(annotation)
    return False


def parse_override(item: str) -> tuple[str, Any]:
    """`train.steps=100` -> ("train.steps", 100); values are parsed as YAML scalars/lists/mappings, with booleans
    only true/false. A str field takes the text as typed: `train.mixed_precision=no` is "no", `study=2024` is
    "2024" (`null` still means None for a field that allows it)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r}: expected key=value")
    key, text = item.split("=", 1)
    key = key.strip()
    if not text.strip():
        return key, None
    try:
        value = load_yaml(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"override {item!r}: invalid YAML value ({yaml_error_text(error)})") from None
    if value is not None and not isinstance(value, (str, list, dict)) and takes_text(field_annotation(key)):
        value = text.strip()
    return key, value


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    node = tree
    *parents, leaf = key.split(".")
    for part in parents:
        if not isinstance(node.get(part), dict):
            raise ConfigError(f"unknown config key {key}")
        node = node[part]
    node[leaf] = value


def apply_overrides(config: CellConfig, overrides: list[str] | dict[str, Any]) -> CellConfig:
    """Apply dotted `key=value` overrides (or a {dotted key: value} mapping) and re-validate."""
    pairs = overrides.items() if isinstance(overrides, dict) else map(parse_override, overrides)
    tree = config.to_dict()
    for key, value in pairs:
        set_dotted(tree, key, value)
    return CellConfig.from_dict(tree)


# ---------------------------------------------------------------------------------------------- reference
def field_comments(cls: type) -> dict[str, str]:
    """{field: the comment after its definition in this file}; {} when the source is not available."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    comments: dict[int, str] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                comments[token.start[0]] = token.string.lstrip("#").strip()
    except (tokenize.TokenError, IndentationError):
        return {}
    found: dict[str, str] = {}
    for number, line in enumerate(source.splitlines(), start=1):
        match = re.match(r"\s+(\w+)\s*:", line)
        if match and number in comments and match.group(1) in {f.name for f in dataclasses.fields(cls)}:
            found[match.group(1)] = comments[number]
    return found


def _yaml_scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9)
    return text.removesuffix("\n...\n").strip()


def commented_yaml(config: Any = None, indent: int = 0) -> str:
    """The config as YAML with each field's comment from config.py (reads back with `CellConfig.from_yaml`)."""
    config = CellConfig() if config is None else config
    comments = field_comments(type(config))
    lines: list[str] = []
    pad = " " * indent
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        comment = f"  # {comments[item.name]}" if item.name in comments else ""
        if dataclasses.is_dataclass(value):
            lines.append(f"{pad}{item.name}:{comment}")
            lines.append(commented_yaml(value, indent + 2))
        else:
            lines.append(f"{pad}{item.name}: {_yaml_scalar(value)}{comment}")
    return "\n".join(lines)


def config_reference(config: Any = None, prefix: str = "") -> list[str]:
    """`dotted.key = default  # comment` for every CellConfig field (the `cell --help` listing)."""
    config = CellConfig() if config is None else config
    comments = field_comments(type(config))
    rows: list[str] = []
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        if dataclasses.is_dataclass(value):
            rows += config_reference(value, f"{prefix}{item.name}.")
        else:
            comment = f"  # {comments[item.name]}" if item.name in comments else ""
            shown = value if isinstance(value, str) and value.strip() == value and value else _yaml_scalar(value)
            rows.append(f"{prefix}{item.name}={shown}{comment}")
    return rows
