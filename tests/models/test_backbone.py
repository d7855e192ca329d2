"""Backbone loading: quiet (no transformers load report or progress bars in cell logs), a checkpoint that
lacks encoder weights is refused instead of silently training from random weights, and an alias whose packaged
model is missing names what the HF cache holds when the hub does not answer."""
from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys

import pytest
from fixtures import write_tiny_bert

from paper_repro.models.backbone import BackboneError, load_backbone


def test_loading_is_quiet(tmp_path, capfd, caplog):
    folder = write_tiny_bert(tmp_path / "bert")          # saved with a pooler: "unexpected" keys on load
    capfd.readouterr()
    with caplog.at_level(logging.INFO):
        backbone = load_backbone(str(folder))
    out, err = capfd.readouterr()
    assert backbone.model.config.num_hidden_layers == 2
    assert "LOAD REPORT" not in out + err + caplog.text and "Loading weights" not in err


def test_missing_encoder_weights_are_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    folder = write_tiny_bert(tmp_path / "bert")
    weights = load_file(folder / "model.safetensors")
    dropped = [key for key in weights if "encoder.layer.1.output.dense" in key]
    assert dropped
    save_file({k: v for k, v in weights.items() if k not in dropped}, folder / "model.safetensors",
              metadata={"format": "pt"})
    with pytest.raises(BackboneError, match="lacks encoder weights"):
        load_backbone(str(folder))


# Run in a fresh interpreter: huggingface_hub reads HF_ENDPOINT at import.
ALIAS_FALLBACK = """
import json, sys
from paper_repro.models.backbone import MINILM_HUB_ID, BackboneError, hub_kwargs
try:
    hub_kwargs("minilm-l6", MINILM_HUB_ID, None)     # what an alias loads when its package is missing
except BackboneError as error:
    print(json.dumps(str(error)))
else:
    sys.exit("no error")
"""


def alias_fallback_message(tmp_path, hub_cache) -> str:
    with socket.socket() as probe:                   # a local port nobody listens on: the hub does not answer
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HOME=str(tmp_path / "hf-home"), HF_HUB_CACHE=str(hub_cache))
    done = subprocess.run([sys.executable, "-c", ALIAS_FALLBACK], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_alias_hub_fallback_names_the_cached_commit_or_its_absence(tmp_path):
    sha = "0123456789abcdef0123456789abcdef01234567"
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    message = alias_fallback_message(tmp_path, empty)
    assert message.startswith("backbone minilm-l6: the packaged model is not installed")
    assert "sentence-transformers/all-MiniLM-L6-v2" in message and "the HF cache has no copy of it" in message
    assert "HF_HUB_OFFLINE" not in message and "\n" not in message

    cached = tmp_path / "cache"
    repo = cached / "models--sentence-transformers--all-MiniLM-L6-v2"   # the HF cache layout: refs + snapshot
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(sha)
    (repo / "snapshots" / sha).mkdir(parents=True)
    message = alias_fallback_message(tmp_path, cached)
    assert message.endswith(f"; or set HF_HUB_OFFLINE=1 to use the HF cache's copy (commit {sha})")
