"""`paper-repro fetch-models --study <study.yaml>`: everything a study's cells load from the network, fetched
on a machine that reaches the hub (a login node) so that offline compute nodes (HF_HUB_OFFLINE=1) find it.

What a study needs comes from its expanded grid (`sweep/grid.py`, every stage, as written: the lock is not
applied): the distinct (backbone, model.revision) pairs and the data sources. Per backbone:
  * packaged alias (`minilm-l6`, `mpnet-base`): its wheel(s) located, the MPNet parts assembled, as
    `fetch-models` without a study does; the lock records the wheel's `name==version`;
  * local folder: checked for a config.json; nothing to fetch;
  * hub id: the revision (unset: the commit the lock pins, else `main`) resolved to a commit sha on the hub
    and its config, tokenizer and weight files (top-level; safetensors when the repo has them, else
    pytorch_model*.bin) downloaded into the HF cache at that commit (`huggingface_hub.snapshot_download`).
Cells that read no local CoNLL folder (`data.data_dir`, `$PAPER_REPRO_CONLL03`) use the hub dataset
(`data.hub_id`): it is downloaded and prepared into the datasets cache (`datasets.load_dataset`).

The hub commits go to `<study>.lock.yaml` beside the study (`sweep/lock.py`; the sweep then pins every cell
whose model.revision is unset). An existing lock is honoured: its commits are fetched again, not moved to
the hub's newest `main`, unless `--update`.

`--check` (and any run with HF_HUB_OFFLINE set) touches no network: the HF cache (`local_files_only`) must hold
every hub backbone at its commit (the lock's, else the cache's refs), the packaged wheels must be installed and
the hub dataset prepared; each missing item is one line on stderr and the exit status is 2. Whatever fails
(a missing item, an unknown repo, an unreachable hub: one line, one request with a 10 s timeout and no retries)
exits 2 before the lock is written; an unreachable hub is detected before anything is downloaded.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paper_repro.config import ConfigError
from paper_repro.sweep.lock import COMMIT_SHA

# top-level files a tokenizer + encoder load reads (besides the weights)
MODEL_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
               "vocab.txt", "vocab.json", "merges.txt", "sentencepiece.bpe.model", "spiece.model", "tokenizer.model")


@dataclass
class Need:
    """One thing the study's cells load: a backbone at a requested revision, or a data source."""

    what: str                                  # "backbone" | "dataset" | "data"
    name: str                                  # backbone name, hub dataset id, or data folder
    requested: str | None = None               # model.revision as the study gives it (None: unset)
    cells: int = 0
    kind: str = ""                             # backbone: packaged | local | hub
    revision: str | None = None                # resolved commit sha (hub) / package==version (packaged)
    status: str = "ok"                         # ok | fetched | MISSING
    where: str = ""                            # local folder, or why it is missing
    files: list[str] = field(default_factory=list)   # hub files to download
    ref: str | None = None                     # the branch/tag the hub just resolved to `revision` (cached as refs/<ref>)


def study_needs(study) -> list[Need]:
    """The distinct backbones (with the revision each cell asks for) and data sources of every cell."""
    return cell_needs(study.expand(pending="placeholder"))


def cell_needs(cells) -> list[Need]:
    """The distinct backbones (with the revision each cell asks for) and data sources of `cells`."""
    from paper_repro.data.conll import resolve_data_dir
    from paper_repro.models.backbone import backbone_kind

    backbones: dict[tuple[str, str | None], Need] = {}
    data: dict[tuple[str, str, str | None], Need] = {}
    for cell in cells:
        key = (cell.model.backbone, cell.model.revision)
        need = backbones.setdefault(key, Need("backbone", key[0], key[1], kind=backbone_kind(key[0])))
        need.cells += 1
        folder = resolve_data_dir(cell.data.data_dir)
        source = ("data", str(folder), None) if folder is not None else ("dataset", cell.data.hub_id, cell.data.hub_revision)
        data.setdefault(source, Need(source[0], source[1], source[2])).cells += 1
    return list(backbones.values()) + list(data.values())


def _locked(lock: dict[str, Any] | None, need: Need) -> str | None:
    for entry in (lock or {}).get("backbones", []) if need.what == "backbone" else (lock or {}).get("datasets", []):
        name = entry.get("backbone") if need.what == "backbone" else entry.get("dataset")
        if name == need.name and entry.get("requested") == need.requested and entry.get("revision"):
            return entry["revision"]
    return None


def datasets_cache_dir() -> Path:
    explicit = os.environ.get("HF_DATASETS_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    hf_home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    return Path(hf_home).expanduser() / "datasets"


def dataset_prepared(hub_id: str) -> Path | None:
    """The datasets-cache folder of a prepared hub dataset (what `datasets.load_dataset` reads offline), or None."""
    *namespace, name = hub_id.split("/")
    try:  # datasets' own naming of the cache folder (packaged_modules/cache: namespace___snake_case_name)
        from datasets.naming import camelcase_to_snakecase

        name = camelcase_to_snakecase(name)
    except ImportError:
        pass
    folder = datasets_cache_dir() / "___".join([*namespace, name])
    if folder.is_dir() and next(folder.glob("*/*/*/dataset_info.json"), None) is not None:
        return folder
    return None


def weight_files(files: list[str]) -> list[str]:
    """The top-level files of a model repo that `load_backbone` reads: config, tokenizer, and one weight format
    (safetensors when present, else pytorch_model*.bin); not onnx/, tf, flax or other subfolders."""
    top = [f for f in files if "/" not in f]
    safetensors = [f for f in top if f.endswith(".safetensors") or f == "model.safetensors.index.json"]
    weights = safetensors or [f for f in top if f.startswith("pytorch_model") and f.endswith((".bin", ".bin.index.json"))]
    return [f for f in top if f in MODEL_FILES] + weights


# ----------------------------------------------------------------------------------------------------------
def check_backbone_offline(need: Need, lock: dict[str, Any] | None, update: bool) -> None:
    """Fill `need` from this machine only (no network)."""
    from paper_repro.models.backbone import (cached_revision, hub_cache_dir, hub_cached, offline_source,
                                             packaged_version)

    if need.kind != "hub":
        local, how = offline_source(need.name)
        need.revision = packaged_version(need.name) if need.kind == "packaged" else None
        need.status, need.where = ("ok", f"{local} ({how})") if local else ("MISSING", how)
        return
    locked = None if update else _locked(lock, need)
    sha = locked or cached_revision(need.name, need.requested)
    at = f"@{need.requested}" if need.requested else ""
    if sha is None:
        need.status, need.where = "MISSING", f"{need.name}{at} is not in the HF cache ({hub_cache_dir()})"
        return
    need.revision = sha
    folder = hub_cached(need.name, revision=sha, tokenizer=True)
    if folder is None:
        why = "pinned by the lock" if locked else "the cache's snapshot"
        need.status, need.where = "MISSING", (f"{need.name}{at} at {sha[:12]} ({why}): config, weights or tokenizer "
                                              f"not in the HF cache ({hub_cache_dir()})")
        return
    need.where = str(folder)


def check_dataset_offline(need: Need, lock: dict[str, Any] | None) -> None:
    from paper_repro.data.conll import DataError, find_split_files
    from paper_repro.models.backbone import cached_revision

    if need.what == "data":
        try:
            files = find_split_files(need.name)
        except DataError as error:
            need.status, need.where = "MISSING", str(error)
        else:
            need.where = f"local folder ({', '.join(p.name for p in files.values())})"
        return
    need.revision = _locked(lock, need) or cached_revision(need.name, None, repo_type="dataset")
    folder = dataset_prepared(need.name)
    need.status, need.where = ("ok", str(folder)) if folder else (
        "MISSING", f"hub dataset {need.name} is not prepared in the datasets cache ({datasets_cache_dir()})")


def resolve_online(needs: list[Need], lock: dict[str, Any] | None, update: bool) -> None:
    """Ask the hub for every hub backbone's and dataset's commit (and file list) before anything is
    downloaded: an unreachable hub (HubUnreachable) or an unknown repo/revision (BackboneError) stops here."""
    from paper_repro.models.backbone import hub_repo_info

    for need in needs:
        if need.what == "dataset":
            target = None if update else (_locked(lock, need) or need.requested)
            need.revision = hub_repo_info(need.name, target, repo_type="dataset")[0]
        elif need.what == "backbone" and need.kind == "hub":
            target = None if update else _locked(lock, need)
            need.revision, files = hub_repo_info(need.name, target or need.requested)
            need.files = weight_files(files)
            if target is None and not COMMIT_SHA.match(need.requested or ""):
                need.ref = need.requested or "main"
            weights = [f for f in need.files if f.endswith((".safetensors", ".bin", ".index.json"))]
            if "config.json" not in need.files or not weights:
                raise ConfigError(f"backbone {need.name}@{need.revision[:12]}: the repo has no config.json or no "
                                  f"weights (safetensors / pytorch_model.bin) at its top level ({len(files)} files)")


def fetch_one(need: Need) -> None:
    """Download/assemble one item (after `resolve_online`); its status says what happened."""
    from paper_repro.models.backbone import (assemble_mpnet, hub_cache_dir, hub_cached, minilm_dir,
                                             packaged_version, unavailable_hint)

    if need.what == "backbone" and need.kind == "packaged":
        folder = minilm_dir() if need.name == "minilm-l6" else assemble_mpnet()
        if folder is None or not (Path(folder) / "config.json").exists():
            need.status, need.where = "MISSING", f"the packaged model is not installed{unavailable_hint(need.name)}"
        else:
            need.revision, need.where = packaged_version(need.name), str(folder)
        return
    if need.what == "backbone" and need.kind == "local":
        ok = (Path(need.name).expanduser() / "config.json").is_file()
        need.status, need.where = ("ok", need.name) if ok else ("MISSING", f"local path {need.name}: no config.json")
        return
    if need.what == "data":
        check_dataset_offline(need, None)
        return
    if need.what == "dataset":
        import datasets

        datasets.load_dataset(need.name, revision=need.revision)
        need.status, need.where = "fetched", str(dataset_prepared(need.name) or datasets_cache_dir())
        return
    from huggingface_hub import snapshot_download

    snapshot_download(need.name, revision=need.revision, cache_dir=hub_cache_dir(), allow_patterns=need.files)
    folder = hub_cached(need.name, revision=need.revision, tokenizer=True)
    if folder is not None and need.ref:   # as a download by branch name would: refs/<ref> -> the commit fetched
        ref = folder.parent.parent / "refs" / need.ref
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(need.revision)
    need.status, need.where = ("fetched", str(folder)) if folder else (
        "MISSING", f"{need.name}@{need.revision[:12]}: downloaded, but no config/weights/tokenizer in the cache")


def lock_entries(needs: list[Need]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    backbones, datasets = [], []
    for need in needs:
        if need.what == "backbone":
            entry: dict[str, Any] = {"backbone": need.name, "kind": need.kind}
            if need.kind == "hub":
                entry.update(requested=need.requested, revision=need.revision)
            elif need.kind == "packaged":
                entry["package"] = need.revision
            backbones.append(entry)
        elif need.what == "dataset":
            datasets.append({"dataset": need.name, "revision": need.revision})
    return backbones, datasets


def format_needs(needs: list[Need]) -> str:
    """The plain-text table printed by the command: one row per backbone/data source."""
    header = ["what", "name", "kind", "cells", "revision", "status", "where"]
    rows = [[n.what, n.name + (f"@{n.requested}" if n.requested else ""), n.kind or "-", str(n.cells),
             n.revision or "-", n.status, n.where] for n in needs]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    return "\n".join("  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), row[-1]]).rstrip()
                     for row in [header, *rows])


def fetch_models(study_path: str, *, check: bool = False, update: bool = False, overrides: list[str] = ()) -> int:
    """The `fetch-models --study` command: 0 with the lock written, 2 (one line per problem) with nothing written."""
    from paper_repro.models.backbone import HubUnreachable, first_line, hub_offline
    from paper_repro.sweep.grid import load_study
    from paper_repro.sweep.lock import format_lock, lock_path, read_lock, write_lock

    study = load_study(study_path, overrides, lock=False)   # the revisions as the study asks for them
    target = lock_path(study_path)
    lock = read_lock(target)
    needs = study_needs(study)
    offline = check or hub_offline()
    if offline:
        if not check:
            print("HF_HUB_OFFLINE is set: checking this machine's caches only (nothing is downloaded)")
        for need in needs:
            if need.what == "backbone":
                check_backbone_offline(need, lock, update)
            else:
                check_dataset_offline(need, lock)
    else:
        try:
            resolve_online(needs, lock, update)
        except HubUnreachable as error:
            print(f"paper-repro: error: fetch-models: {error}; nothing was downloaded or written (on a node "
                  f"without the hub: --check, or HF_HUB_OFFLINE=1)", file=sys.stderr)
            return 2
        for need in needs:
            try:
                fetch_one(need)
            except Exception as error:  # a download that failed half-way: reported, and no lock is written
                need.status, need.where = "MISSING", f"fetch failed: {type(error).__name__}: {first_line(error)}"
    print(format_needs(needs))
    missing = [n for n in needs if n.status == "MISSING"]
    if missing:
        for need in missing:
            print(f"paper-repro: error: missing {need.what} {need.name}: {need.where}", file=sys.stderr)
        print(f"fetch-models: {len(missing)} missing; {target} not written")
        return 2
    backbones, datasets = lock_entries(needs)
    text = format_lock(study_path, study.study, backbones, datasets)
    if lock is not None and target.read_text() == text:
        print(f"{target}: unchanged")
    else:
        write_lock(target, text)
        print(f"wrote {target} (commit it beside the study: sweeps pin unset model.revision to it)")
    return 0


def add_fetch_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--study", help="study file: fetch every backbone (hub ids at their revision) and the hub "
                        "dataset its cells use, and write <study>.lock.yaml beside it")
    parser.add_argument("--check", action="store_true", help="with --study: no network; verify that this machine's "
                        "caches hold everything (exit 2, one line per missing item)")
    parser.add_argument("--update", action="store_true", help="with --study: re-resolve unpinned revisions (the "
                        "hub's main now; with --check the cache's) instead of the commits in the existing lock")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="with --study: overrides the sweep is given")
    return parser
