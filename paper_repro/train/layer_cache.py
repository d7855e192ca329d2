"""The frozen-backbone track (`model.finetune: frozen`): the encoder's hidden states, computed once and reused.

With a frozen encoder only the fusion head, the subword pooling and the classifier learn, and the encoder's output
never changes. So every fused layer's hidden state of every window of a split is computed once per (backbone,
tokenization and windowing, fused layers), stored float16 on disk, memory-mapped, and shared by every cell and
every sweeper on the machine. A frozen cell never runs the encoder: its tagger (`FrozenTagger`) reads the cached
states and runs head -> pooling -> dropout -> classifier (`FusionTagger.forward_from_layers`), in the same training
loop, with the same eval schedule, batches, selection and statistics as a full cell.

Layout, one folder per split (per distinct words): `$PAPER_REPRO_CACHE/layers/<key>/` (default `~/.cache/paper_repro/layers`)
    hidden.npy    float16 [tokens, N, H], token-major: window w's subwords (special tokens included) are rows
                  offsets[w]:offsets[w+1]; N the fused layers (the embedding output first when fuse_embeddings),
                  H the hidden size. Read with `np.load(..., mmap_mode="r")`.
    offsets.npy   int64 [windows + 1], windows in the order of `cached_features(split, tokenizer, max_length)`
                  (train/features.py: the same windows a full cell trains and predicts on)
    meta.json     the key and its parts, the split it was built for (name, file sha256), shapes, the backbone's
                  source, build seconds, device and versions
The key (24 hex digits of a sha256, `cache_identity`) is a function of exactly what the stored states depend on:
LAYER_CACHE_VERSION; the windows' subwords: the split's words in order (not its tags, label set, name or file
bytes), the tokenizer (its serialized state without truncation/padding, train/features.py `tokenizer_fingerprint`),
max_length and the windowing version (FEATURES_VERSION of train/features.py, whose `cached_features` windows are
the ones stored); the backbone fingerprint (its config and a sha256 of every weight: a revision counts by its
content, so `model.revision` is not a part; the resolved source, a hub snapshot's revision included, is recorded in
meta.json); the fused layers (`fuse_embeddings`) and the dtype. The folder is named by the key alone, so equal
states are stored once.

Whole splits are cached, not only the sentences a cell asks for: a study touches nearly all of them (50 data seeds
x nested subsets up to 1,000 sentences cover ~97% of the 14,041 training sentences, and the full-training-set arm
all of them; every cell scores the dev subsample and the whole test split), and one file per split keeps the
cache immutable once written. Sizes (CoNLL-03, max_length 128: 280,127 / 69,453 / 64,832 subwords in train /
valid / test): MiniLM-L6 (6 x 384) 1.20 / 0.30 / 0.28 GiB, 1.78 GiB in all (2.07 with fuse_embeddings);
MPNet-base (12 x 768) 4.81 / 1.19 / 1.11 GiB, 7.11 GiB in all (7.71 with fuse_embeddings).

Concurrent builders (sweep shards, Slurm tasks on a shared disk): a builder takes an exclusive `flock` on
`<folder>.lock` (the others wait there, then find the folder), builds into a private temp folder beside it and
renames it into place (atomic); where flock is not available, a builder that loses the rename race drops its temp
folder and uses the winner's. A published folder is complete and never written again.

Dropout: a full cell trains the encoder with its internal dropout (attention and hidden dropout, 0.1 in MiniLM and
MPNet); the cached states come from the encoder in eval mode, so a frozen cell has none there. The tagger's own
dropout before the classifier (`model.dropout`) and any dropout inside the head apply in both tracks.
"""
from __future__ import annotations

import contextlib
import copy
import datetime
import errno
import hashlib
import json
import os
import shutil
import socket
import sys
import time
import uuid
import weakref
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from paper_repro.atomic import atomic_write_csv
from paper_repro.config import ModelConfig
from paper_repro.data.conll import Split
from paper_repro.data.labels import CONLL03, LabelSet
from paper_repro.train.features import (
    FEATURES_VERSION,
    Features,
    cached_features,
    collate,
    length_grouped_batches,
    tokenizer_fingerprint,
    tokens_sha256,
)

try:
    import fcntl
except ImportError:  # not POSIX: the atomic rename alone keeps the cache valid
    fcntl = None

LAYER_CACHE_VERSION = 1         # bump when what is stored changes: invalidates every cache
DTYPE = np.float16
BUILD_BATCH_SIZE = 64           # windows per encoder forward while building
BUILDS: list[str] = []          # folders this process built (tests count them)


class LayerCacheError(RuntimeError):
    """A cache folder that does not match its key or the windows it is asked for."""


def cache_root() -> Path:
    return Path(os.environ.get("PAPER_REPRO_CACHE", Path.home() / ".cache" / "paper_repro")) / "layers"


# ---------------------------------------------------------------------------------------------------- the key
_FINGERPRINTS: "weakref.WeakKeyDictionary[nn.Module, str]" = weakref.WeakKeyDictionary()


def backbone_fingerprint(model: nn.Module) -> str:
    """sha256 of the encoder's config (without its path and transformers version) and of every tensor of its
    state dict (names, dtypes, shapes, bytes): the same weights give the same fingerprint wherever they were
    loaded from. Memoized per model object (the pristine backbone is never trained)."""
    if model in _FINGERPRINTS:
        return _FINGERPRINTS[model]
    digest = hashlib.sha256()
    config = {k: v for k, v in model.config.to_dict().items() if not k.startswith("_") and k != "transformers_version"}
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"\x1e{name}\x1f{tensor.dtype}\x1f{tuple(tensor.shape)}\x1f".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data)
    _FINGERPRINTS[model] = digest.hexdigest()
    return _FINGERPRINTS[model]


def cache_identity(split: Split, tokenizer, model: nn.Module, max_length: int, fuse_embeddings: bool) -> dict[str, Any]:
    """What the cached states of `split` depend on, and nothing else (the parts of the key): the windows' subwords
    (the split's words in order, `tokens_sha256`; the tokenizer, `tokenizer_fingerprint`; max_length; the windowing
    code, FEATURES_VERSION), the encoder (`backbone_fingerprint`: config and weights, so a revision counts by its
    content), the fused layers and the dtype. Not the split's name, tags, label set or file sha256 (the hidden
    states never see them: a relabelled or re-encoded copy of the same words shares the cache), nor the
    backbone's source or revision label (`model.revision`: equal weights give equal states; meta.json records the
    resolved source and revision)."""
    return {
        "version": LAYER_CACHE_VERSION,
        "tokens": tokens_sha256(split),
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "windowing": FEATURES_VERSION,
        "max_length": int(max_length),
        "backbone": backbone_fingerprint(model),
        "fuse_embeddings": bool(fuse_embeddings),
        "dtype": np.dtype(DTYPE).name,
    }


def cache_key(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]


def cache_path(identity: dict[str, Any]) -> Path:
    """`$PAPER_REPRO_CACHE/layers/<key>`: named by the key alone, so equal states share one folder (meta.json says
    which split it was built for)."""
    return cache_root() / cache_key(identity)


# ---------------------------------------------------------------------------------------------- the cache
@dataclass
class LayerCache:
    path: Path
    hidden: np.ndarray       # float16 [tokens, N, H], memory-mapped
    offsets: np.ndarray      # int64 [windows + 1]
    meta: dict[str, Any]
    built: bool = False      # whether this call built it (False: found on disk, or built by another process)

    @property
    def tokens(self) -> int:
        return int(self.hidden.shape[0])

    @property
    def num_layers(self) -> int:
        return int(self.hidden.shape[1])

    @property
    def hidden_size(self) -> int:
        return int(self.hidden.shape[2])

    def record(self) -> dict[str, Any]:
        """For the cell's manifest."""
        return {"path": str(self.path), "key": self.meta["key"], "built": self.built,
                "build_s": self.meta.get("build_s"), "windows": len(self.offsets) - 1, "tokens": self.tokens,
                "layers": self.num_layers, "hidden_size": self.hidden_size,
                "bytes": int(self.hidden.size * self.hidden.itemsize)}


_OPENED: dict[str, LayerCache] = {}


def open_cache(path: Path, key: str | None = None) -> LayerCache:
    """A published cache folder, memory-mapped (memoized in this process)."""
    path = Path(path)
    if str(path) in _OPENED:
        return replace(_OPENED[str(path)], built=False)
    try:
        meta = json.loads((path / "meta.json").read_text())
        hidden = np.load(path / "hidden.npy", mmap_mode="r")
        offsets = np.load(path / "offsets.npy")
    except (OSError, ValueError) as error:
        raise LayerCacheError(f"{path}: unreadable layer cache ({error}); delete the folder to rebuild it") from None
    if key is not None and meta.get("key") != key:
        raise LayerCacheError(f"{path}: holds key {meta.get('key')!r}, expected {key!r}; delete the folder")
    expected = (int(offsets[-1]), meta.get("layers"), meta.get("hidden_size"))
    if hidden.dtype != DTYPE or hidden.shape != expected or offsets[0] != 0 or np.any(np.diff(offsets) <= 0):
        raise LayerCacheError(f"{path}: hidden states {hidden.dtype}{list(hidden.shape)} do not match its offsets "
                              f"and meta.json {list(expected)}; delete the folder to rebuild it")
    cache = LayerCache(path=path, hidden=hidden, offsets=offsets, meta=meta)
    _OPENED[str(path)] = cache
    return cache


@contextlib.contextmanager
def build_lock(final: Path, log=None):
    """An exclusive flock on `<final>.lock` (waiting for another builder, with a line saying so); without flock
    (another OS, a file system that refuses it) no lock: the atomic rename still keeps the cache valid."""
    if fcntl is None:
        yield
        return
    fd = os.open(final.parent / f"{final.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if log:
                log(f"waiting for another process building {final.name}")
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            pass
        yield
    finally:
        os.close(fd)  # releases the lock


def publish(tmp: Path, final: Path) -> bool:
    """Rename the built temp folder into place; False (temp folder removed) when another builder was first."""
    try:
        os.rename(tmp, final)
        return True
    except OSError as error:
        if error.errno in (errno.ENOTEMPTY, errno.EEXIST) and (final / "meta.json").exists():
            shutil.rmtree(tmp, ignore_errors=True)
            return False
        raise


def remove_stale_temps(final: Path) -> None:
    """Temp folders of dead builders on this host (a killed process leaves its temp folder behind)."""
    host = socket.gethostname()
    for tmp in final.parent.glob(f".{final.name}.tmp-*"):
        parts = tmp.name.rsplit("-", 3)  # .<name>.tmp, host, pid, token
        if len(parts) != 4 or parts[1] != host or not parts[2].isdigit():
            continue
        try:
            os.kill(int(parts[2]), 0)
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except PermissionError:
            pass


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def stderr_line(text: str) -> None:
    print(f"[layer_cache] {text}", file=sys.stderr, flush=True)


@torch.no_grad()
def encode_into(model: nn.Module, features: Features, pad_token_id: int, first_fused: int, hidden: np.ndarray,
                offsets: np.ndarray, device: torch.device, progress: bool, label: str) -> None:
    """Run the encoder over every window (length-grouped batches) and write the fused layers' states of each
    window's subwords to hidden[offsets[w]:offsets[w+1]] (float16); the encoder is called as FusionTagger.forward
    calls it."""
    from tqdm.auto import tqdm

    batches = length_grouped_batches(features, BUILD_BATCH_SIZE)
    bar = tqdm(total=len(batches), desc=f"layer cache {label}", leave=False, disable=not progress)
    started, next_report = time.perf_counter(), 0.1
    for done, positions in enumerate(batches, start=1):
        batch = collate([features.windows[p] for p in positions], positions, pad_token_id)
        output = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device),
                       output_hidden_states=True)
        states = torch.stack(output.hidden_states[first_fused:], dim=2).to("cpu", torch.float16).numpy()  # [B,T,N,H]
        if not np.isfinite(states).all():
            raise LayerCacheError(f"{label}: hidden states beyond the float16 range")
        for row, position in enumerate(positions):
            start, end = offsets[position], offsets[position + 1]
            hidden[start:end] = states[row, : end - start]
        bar.update(1)
        if not progress and done / len(batches) >= next_report and done < len(batches):
            elapsed = time.perf_counter() - started
            stderr_line(f"{label}: {done}/{len(batches)} batches, {elapsed:.0f}s, eta "
                        f"{elapsed * (len(batches) - done) / done:.0f}s")
            next_report += 0.1
    bar.close()


def build(final: Path, identity: dict[str, Any], split: Split, tokenizer, model: nn.Module, max_length: int,
          fuse_embeddings: bool, device: torch.device | str, progress: bool, source: str | None,
          label_set: LabelSet = CONLL03) -> LayerCache:
    """Build the cache of `split` into a private temp folder and publish it (see the module docstring). The windows
    do not depend on the label set; `label_set` is the corpus' (what the split's tags are ids in)."""
    features = cached_features(split, tokenizer, max_length, label_set)
    lengths = np.array([len(w.input_ids) for w in features.windows], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    first_fused = 0 if fuse_embeddings else 1
    layers, size = model.config.num_hidden_layers + 1 - first_fused, model.config.hidden_size
    nbytes = int(offsets[-1]) * layers * size * np.dtype(DTYPE).itemsize
    device = torch.device(device)
    stderr_line(f"building {final.name} ({split.name}): {len(lengths)} windows, {int(offsets[-1])} subwords x "
                f"{layers} layers x {size} ({nbytes / 2**30:.2f} GiB float16) on {device}")
    tmp = final.parent / f".{final.name}.tmp-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    started = time.perf_counter()
    try:
        hidden = np.lib.format.open_memmap(tmp / "hidden.npy", mode="w+", dtype=DTYPE,
                                           shape=(int(offsets[-1]), layers, size))
        # the pristine backbone is never moved or left in another mode: a copy on an accelerator
        encoder = model if device.type == "cpu" else copy.deepcopy(model).to(device)
        was_training = encoder.training
        encoder.eval()
        try:
            encode_into(encoder, features, tokenizer.pad_token_id, first_fused, hidden, offsets, device, progress,
                        final.name)
        finally:
            encoder.train(was_training)
        hidden.flush()
        del hidden
        np.save(tmp / "offsets.npy", offsets)
        build_s = time.perf_counter() - started
        import transformers

        meta = {
            "key": cache_key(identity), "identity": identity, "split": {"name": split.name, "sha256": split.sha256,
                                                                       "source": split.source},
            "windows": len(lengths), "tokens": int(offsets[-1]),
            "layers": layers, "hidden_size": size, "fuse_embeddings": bool(fuse_embeddings), "bytes": nbytes,
            "backbone": {"model_type": model.config.model_type, "source": source,
                         "revision": getattr(model.config, "_commit_hash", None)},
            "build_s": build_s, "device": str(device), "host": socket.gethostname(),
            "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
        for name in ("hidden.npy", "offsets.npy", "meta.json"):
            _fsync(tmp / name)
        _fsync(tmp)
        won = publish(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not won:
        stderr_line(f"{final.name}: another process published it first; using theirs")
        return open_cache(final, cache_key(identity))
    BUILDS.append(str(final))
    stderr_line(f"built {final.name} in {build_s:.1f}s")
    return replace(open_cache(final, cache_key(identity)), built=True)


def layer_cache(split: Split, tokenizer, model: nn.Module, max_length: int, fuse_embeddings: bool,
                device: torch.device | str = "cpu", progress: bool = False, source: str | None = None,
                label_set: LabelSet = CONLL03) -> LayerCache:
    """The cached fused-layer states of every window of `split`: opened if published, else built (once: a
    concurrent builder waits on the lock, then opens what the first one published)."""
    identity = cache_identity(split, tokenizer, model, max_length, fuse_embeddings)
    final = cache_path(identity)
    if (final / "meta.json").exists():
        return open_cache(final, cache_key(identity))
    final.parent.mkdir(parents=True, exist_ok=True)
    with build_lock(final, log=stderr_line):
        if (final / "meta.json").exists():
            return open_cache(final, cache_key(identity))
        remove_stale_temps(final)
        return build(final, identity, split, tokenizer, model, max_length, fuse_embeddings, device, progress, source,
                     label_set)


# ---------------------------------------------------------------------------------------------- frozen cells
class CachedLayers:
    """Several caches (a cell's train / valid / test splits) in one row space: cache c's token rows are
    base[c] + its own rows. `gather` turns rows [B, T] (-1: padding) into layers [N, B, T, H] float32."""

    def __init__(self, caches: list[LayerCache]):
        if len({(c.num_layers, c.hidden_size) for c in caches}) != 1:
            raise LayerCacheError("caches of different layer counts or hidden sizes cannot be stacked")
        self.caches = caches
        self.bases = np.concatenate([[0], np.cumsum([c.tokens for c in caches])]).astype(np.int64)
        self.num_layers, self.hidden_size = caches[0].num_layers, caches[0].hidden_size

    def __deepcopy__(self, memo: dict) -> "CachedLayers":
        """Read-only and shared: a copy of the tagger (e.g. `train.eval_precision: bf16`) never copies the cache."""
        return self

    def gather(self, rows: torch.Tensor) -> torch.Tensor:
        """rows [B, T] as `FrozenCollator` makes them (each window's rows consecutive, then -1 padding) ->
        layers [N, B, T, H] float32 on rows' device, zeros on padding. One slice copy per window."""
        index = rows.detach().to("cpu").numpy()
        b, t = index.shape
        out = np.zeros((self.num_layers, b, t, self.hidden_size), dtype=DTYPE)
        counts = (index >= 0).sum(axis=1)
        for row in range(b):
            n = int(counts[row])
            if n == 0:
                continue
            start = int(index[row, 0])
            c = int(np.searchsorted(self.bases, start, side="right")) - 1
            local = start - int(self.bases[c])
            if c >= len(self.caches) or index[row, n - 1] != start + n - 1 or local + n > self.caches[c].tokens:
                raise LayerCacheError(f"token rows {index[row, :n].tolist()[:4]}... are not one cached window")
            out[:, row, :n] = self.caches[c].hidden[local : local + n].transpose(1, 0, 2)
        return torch.from_numpy(out).to(rows.device).float()


class FrozenCollator:
    """`features.collate`, with `input_ids` replaced by the rows of the window's cached token states (-1 on
    padding): what a FrozenTagger reads instead of running the encoder. `starts[position]` is the first row of
    the window at that position of the loader's Features."""

    def __init__(self, pad_token_id: int, starts: list[int]):
        self.pad_token_id = pad_token_id
        self.starts = starts

    def __call__(self, items: list[tuple[int, Any]]) -> dict[str, torch.Tensor]:
        batch = collate([w for _, w in items], [i for i, _ in items], self.pad_token_id)
        rows = torch.full_like(batch["input_ids"], -1)
        for row, (position, window) in enumerate(items):
            n = len(window.input_ids)
            rows[row, :n] = torch.arange(self.starts[position], self.starts[position] + n)
        batch["input_ids"] = rows
        return batch


class FrozenTagger(nn.Module):
    """A FusionTagger without its backbone: `forward(rows, attention_mask, word_index, num_words)` gathers the
    cached states of the token rows (`FrozenCollator`) and runs `forward_from_layers`. Only the head, the pooling
    and the classifier have parameters (all in the head-lr groups)."""

    def __init__(self, tagger: nn.Module, layers: CachedLayers):
        super().__init__()
        tagger.backbone = None  # never run, never trained, not part of the state dict
        self.tagger = tagger
        self.layers = layers

    @property
    def head(self) -> nn.Module:
        return self.tagger.head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, word_index: torch.Tensor,
                num_words: int) -> torch.Tensor:
        layers = self.layers.gather(input_ids).to(self.tagger.classifier.weight.dtype)  # a bf16 eval copy: bf16
        return self.tagger.forward_from_layers(layers, attention_mask, word_index, num_words)

    def parameter_groups(self, backbone_lr: float, head_lr: float, weight_decay: float) -> list[dict]:
        """FusionTagger's head groups (head + pooling + classifier, with/without weight decay); no backbone group."""
        from paper_repro.models.tagger import split_by_decay

        decay, exempt = split_by_decay([(root, getattr(self.tagger, root)) for root in ("head", "pooling", "classifier")])
        groups = [{"name": f"head{suffix}", "params": [p for _, p in members], "param_names": [n for n, _ in members],
                   "lr": head_lr, "weight_decay": wd}
                  for suffix, members, wd in (("", decay, weight_decay), ("_no_decay", exempt, 0.0))]
        return [g for g in groups if g["params"]]


def frozen_tagger(backbone_model: nn.Module, model_config: ModelConfig, num_labels: int, seed: int,
                  layers: CachedLayers) -> tuple[FrozenTagger, dict]:
    """`build_tagger` around the pristine backbone (read for its config, and by deeper_copy for its last layer;
    never copied, changed or kept), wrapped as a FrozenTagger. The head and classifier are initialised exactly as
    in a full cell at this seed."""
    from paper_repro.models.tagger import build_tagger

    tagger, record = build_tagger(backbone_model, model_config, num_labels=num_labels, seed=seed)
    return FrozenTagger(tagger, layers), record


@dataclass
class FrozenInputs:
    layers: CachedLayers
    collators: dict[str, FrozenCollator]     # per part ("train", "dev", "test")
    record: dict[str, Any]                   # manifest: per split, the cache's path, key, whether built


def frozen_inputs(backbone, model_config: ModelConfig, parts: dict[str, tuple[Split, Features]],
                  device: torch.device | str = "cpu", progress: bool = False,
                  label_set: LabelSet = CONLL03) -> FrozenInputs:
    """The caches of the splits behind `parts` ({"train": (train split, the cell's training Features), ...}: Features
    selected from `cached_features` of the split with the corpus' `label_set`) and one collator per part."""
    tokenizer, max_length = backbone.tokenizer, model_config.max_length
    fuse = model_config.head.fuse_embeddings
    caches: dict[str, LayerCache] = {}
    for split, _ in parts.values():
        if split.name not in caches:
            caches[split.name] = layer_cache(split, tokenizer, backbone.model, max_length, fuse, device, progress,
                                             getattr(backbone, "source", None), label_set)
    names = list(caches)
    layers = CachedLayers([caches[name] for name in names])
    expected = backbone.model.config.num_hidden_layers + int(fuse)
    if layers.num_layers != expected or layers.hidden_size != backbone.model.config.hidden_size:
        raise LayerCacheError(f"cached states have {layers.num_layers} layers x {layers.hidden_size}, the backbone "
                              f"fuses {expected} x {backbone.model.config.hidden_size}")
    collators = {}
    for part, (split, features) in parts.items():
        c = names.index(split.name)
        cache, base = caches[split.name], int(layers.bases[c])
        full = cached_features(split, tokenizer, max_length, label_set)
        position = {(w.sentence, w.word_offset): p for p, w in enumerate(full.windows)}
        starts = []
        for window in features.windows:
            p = position.get((window.sentence, window.word_offset))
            if p is None or cache.offsets[p + 1] - cache.offsets[p] != len(window.input_ids):
                raise LayerCacheError(f"{cache.path}: no cached window of {len(window.input_ids)} subwords for "
                                      f"sentence {window.sentence}, word {window.word_offset}")
            starts.append(base + int(cache.offsets[p]))
        collators[part] = FrozenCollator(tokenizer.pad_token_id, starts)
    record = {name: cache.record() for name, cache in caches.items()}
    return FrozenInputs(layers=layers, collators=collators, record=record)


# ---------------------------------------------------------------------------------------------- sizes (CLI)
SIZE_CSV_COLUMNS = ("backbone", "split", "max_length", "windows", "subwords", "layers", "hidden", "gib",
                    "gib_fuse_embeddings")


def describe(backbones: list[str], max_length: int | None = None, fuse_embeddings: bool = False,
             build_now: bool = False, data_dir: str | None = None, out=None,
             rows: list[dict] | None = None) -> float:
    """Print, per backbone and split, the windows, subwords and float16 size of the layer cache of the splits every
    cell reads (the whole train/valid/test splits: see the module docstring) and whether it is built (with the
    build seconds its meta.json recorded); `build_now` builds the missing ones. Tokenizes (cached) and loads each
    backbone; never runs the encoder unless `build_now`. Returns the total GiB; `rows`, when given, receives one
    dict per backbone and split (SIZE_CSV_COLUMNS: the sizes without and with the embedding output fused)."""
    from paper_repro.config import CellConfig
    from paper_repro.data.conll import corpus_labels
    from paper_repro.train.cell import load_splits, pristine_backbone

    out = out or sys.stdout             # read at call time (a redirected or captured stdout counts)
    data = CellConfig().data
    max_length = max_length or ModelConfig().max_length
    splits = load_splits(data_dir, data.hub_id, data.convert_iob1, data.strict_iob2)
    labels = corpus_labels(splits)
    total_gib = 0.0
    for name in backbones:
        backbone = pristine_backbone(name)
        config = backbone.model.config
        layers = config.num_hidden_layers + int(fuse_embeddings)
        gib_all, build_all, tokens_all = 0.0, 0.0, 0
        for split_name in ("train", "valid", "test"):
            split = splits[split_name]
            identity = cache_identity(split, backbone.tokenizer, backbone.model, max_length, fuse_embeddings)
            path = cache_path(identity)
            if build_now:
                layer_cache(split, backbone.tokenizer, backbone.model, max_length, fuse_embeddings,
                            source=getattr(backbone, "source", None), label_set=labels)
            features = cached_features(split, backbone.tokenizer, max_length, labels)
            tokens = sum(len(w.input_ids) for w in features.windows)
            per_layer = tokens * config.hidden_size * np.dtype(DTYPE).itemsize / 2**30   # GiB of one fused layer
            gib = per_layer * layers
            state = "not built"
            if (path / "meta.json").exists():
                build_s = json.loads((path / "meta.json").read_text()).get("build_s")
                build_all += float(build_s or 0.0)
                state = f"built in {build_s:.1f}s" if isinstance(build_s, (int, float)) else "built"
            gib_all, tokens_all = gib_all + gib, tokens_all + tokens
            if rows is not None:
                rows.append(dict(backbone=name, split=split_name, max_length=max_length, windows=len(features.windows),
                                 subwords=tokens, layers=config.num_hidden_layers, hidden=config.hidden_size,
                                 gib=per_layer * config.num_hidden_layers,
                                 gib_fuse_embeddings=per_layer * (config.num_hidden_layers + 1)))
            print(f"{name} {split_name}: {len(features.windows)} windows, {tokens} subwords x {layers} layers x "
                  f"{config.hidden_size} = {gib:.2f} GiB float16 ({state}) {path}", file=out)
        print(f"{name} all: {tokens_all} subwords, {gib_all:.2f} GiB"
              + (f", built in {build_all:.1f}s (meta.json)" if build_all else ""), file=out)
        total_gib += gib_all
    return total_gib


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m paper_repro.train.layer_cache",
        description="Sizes (and build state) of the frozen track's layer caches of the train/valid/test splits.")
    parser.add_argument("backbones", nargs="*", default=["minilm-l6", "mpnet-base"])
    parser.add_argument("--max-length", type=int, default=None, help="model.max_length (default: the config's)")
    parser.add_argument("--fuse-embeddings", action="store_true", help="model.head.fuse_embeddings=true")
    parser.add_argument("--data-dir", default=None, help="data.data_dir (default: $PAPER_REPRO_CONLL03)")
    parser.add_argument("--build", action="store_true", help="build the caches that are missing")
    parser.add_argument("--write", metavar="CSV", help="also write the sizes as CSV (the README's layer-cache table "
                        "reads results/layer_cache/sizes.csv: bash scripts/update_readme.sh)")
    args = parser.parse_args(argv)
    if args.write and Path(args.write).is_dir():
        print(f"error: --write {args.write}: is a folder; give the CSV's path (results/layer_cache/sizes.csv)",
              file=sys.stderr)
        return 2
    rows: list[dict] = []
    describe(args.backbones, args.max_length, args.fuse_embeddings, args.build, args.data_dir, rows=rows)
    if args.write:
        try:
            write_size_csv(rows, Path(args.write))
        except OSError as error:
            print(f"error: --write {args.write}: {error.strerror or error}; nothing written", file=sys.stderr)
            return 2
        print(f"wrote {args.write}")
    return 0


def write_size_csv(rows: list[dict], path: Path) -> None:
    """`describe`'s rows as CSV, atomically (byte-stable: `atomic_write_csv`)."""
    atomic_write_csv(rows, SIZE_CSV_COLUMNS, path)


if __name__ == "__main__":
    raise SystemExit(main())
