"""Backbone loading: quiet (no transformers load report or progress bars in cell logs), and a checkpoint that
lacks encoder weights is refused instead of silently training from random weights."""
from __future__ import annotations

import logging

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
