"""Tests for paper_repro.train.cell.run_cell on the tiny invented corpus and random tiny BERT."""
from __future__ import annotations

import json
import math

import pyarrow.parquet as pq
import pytest
import torch

from paper_repro.config import CellConfig
from paper_repro.models.heads import HEADS
from paper_repro.results.schema import CELL_SCHEMA
from paper_repro.results.store import cell_paths, is_done
from paper_repro.train.cell import depth_item_names, run_cell
from paper_repro.train.evaluate import DEPTH_GROUPS, eval_schedule

METRICS = ["f1", "precision", "recall", "f1_strict", "precision_strict", "recall_strict", "f1_PER", "f1_LOC", "f1_ORG", "f1_MISC"]


def run(config: CellConfig):
    path = run_cell(config)
    paths = cell_paths(config.results_dir, config.study, config.run_id)
    assert path == paths["parquet"]
    table = pq.read_table(path)
    manifest = json.loads(paths["manifest"].read_text())
    return table, table.to_pandas(), manifest


@pytest.fixture(scope="module")
def dwatt_cell(tiny_cell_config, tmp_path_factory):
    config = tiny_cell_config(tmp_path_factory.mktemp("dwatt"), "model.head.name=dwatt", "train.steps=6", "train.eval_points=3")
    return config, *run(config)


def test_rows_and_schema(dwatt_cell, tiny_conll_dir):
    config, table, df, manifest = dwatt_cell
    assert table.schema.equals(CELL_SCHEMA, check_metadata=False)
    steps = eval_schedule(6, 3, 1)       # linear after the 1 warmup step
    assert steps == [3, 4, 6]
    assert manifest["eval_steps"] == steps
    assert manifest["steps"]["total"] == 6 and manifest["steps"]["warmup"] == 1
    assert list(zip(df.step, df.split)) == [(3, "dev"), (4, "dev"), (6, "dev"), (6, "test")]  # test only at the end
    assert (df.protocol == 2).all() and (df.stage == "").all() and (df.warmup_steps == 1).all()
    assert (df.steps_total == 6).all()
    assert (df.run_id == config.run_id).all() and (df.study == "tiny").all() and (df.method == "dwatt").all()
    assert (df.config_hash == config.config_hash()).all()
    assert df.eval_sentences.tolist() == [15, 15, 15, 15]     # every dev/test sentence, long ones included
    assert df.examples_seen.tolist() == [12, 16, 24, 24]
    assert df.wall_clock_s.is_monotonic_increasing and (df.eval_s > 0).all()
    assert df.train_loss.map(math.isfinite).all()
    for metric in METRICS:
        values = df[metric].dropna()
        assert values.between(0, 1).all() and (len(values) == len(df) or metric.startswith("f1_")), metric
    assert df.head_params.iloc[0] == manifest["budget"]["head_params"] > 0
    assert df.budget_target.iloc[0] == manifest["budget"]["target"] > 0
    assert json.loads(df.versions.iloc[0]) == manifest["versions"] and "torch" in manifest["versions"]
    assert is_done(config.results_dir, config.study, config.run_id)


def test_manifest(dwatt_cell):
    config, _, df, manifest = dwatt_cell
    for key in ["config", "budget", "timings", "subset", "versions", "git", "features", "data", "dev_subsample"]:
        assert key in manifest, key
    assert CellConfig.from_dict(manifest["config"]).run_id == config.run_id == manifest["run_id"]
    assert CellConfig.from_dict(manifest["config"]) == config
    assert set(manifest["git"]) - {"diff_file", "diff_sha256"} == {"sha", "dirty"}
    assert ("diff_file" in manifest["git"]) == manifest["git"]["dirty"]  # a dirty checkout's cell keeps its diff
    assert manifest["device_settings"] == {"compiled": False}       # CPU: nothing set (CUDA: cuDNN attention off, TF32)
    assert {"load_s", "tokenize_s", "train_s", "eval_s", "step_time_s", "total_s", "cpu_s"} <= set(manifest["timings"])
    assert 0 < manifest["timings"]["cpu_s"]                             # the process's CPU time (sweep/cost.py)
    assert len(manifest["timings"]["eval_s"]) == 4
    subset = manifest["subset"]
    assert subset["n_sentences"] == 16 and subset["sha256"] == df.subset_sha256.iloc[0]
    assert manifest["data"]["train"]["sentences"] == 40
    assert manifest["features"]["train_windows"] >= 16
    assert manifest["features"]["lost_words_test"] == 0
    # the encoder's size, read back by the cost model where its config is not on disk (sweep/cost.py)
    assert manifest["backbone"]["shape"] == {"layers": 2, "hidden": 32, "intermediate": 64}
    assert manifest["cpu"].endswith(")") and manifest["platform"]          # which CPU kernels produced it


def test_depth_attention_in_manifest(dwatt_cell):
    _, _, _, manifest = dwatt_cell
    depth = manifest["depth_attention"]
    assert depth["layers"] == ["L1", "L2"]
    assert set(depth["per_type"]) == set(DEPTH_GROUPS)
    for group, weights in depth["per_type"].items():
        assert len(weights) == 2 and sum(weights) == pytest.approx(1.0, abs=1e-5), group
    assert "scalarmix_weights" not in manifest


def test_scalarmix_weights(tiny_cell_config, tmp_path):
    _, _, manifest = run(tiny_cell_config(tmp_path, "model.head.name=scalarmix", "model.head.fuse_embeddings=true", "train.steps=3"))
    mix = manifest["scalarmix_weights"]
    assert mix["layers"] == ["emb", "L1", "L2"]
    assert len(mix["weights"]) == 3 and sum(mix["weights"]) == pytest.approx(1.0, abs=1e-6)
    assert "depth_attention" not in manifest


def test_block_attention_names_blocks(tiny_cell_config, tmp_path):
    _, _, manifest = run(tiny_cell_config(tmp_path, "model.head.name=attnres_block", "train.steps=3"))
    depth = manifest["depth_attention"]
    assert depth["layers"] == ["L1-L2"]  # one block of two layers
    assert all(len(w) == 1 and w[0] == pytest.approx(1.0) for w in depth["per_type"].values())


def test_depth_item_names():
    class Blocks(torch.nn.Module):
        block_of = torch.tensor([0, 0, 1, 1, 2])

    names = ["emb", "L1", "L2", "L3", "L4"]
    assert depth_item_names(Blocks(), names) == ["emb-L1", "L2-L3", "L4"]
    assert depth_item_names(torch.nn.Identity(), names) == names


def test_deterministic_cells_repeat(tiny_cell_config, tmp_path):
    try:
        a = run(tiny_cell_config(tmp_path / "a", "train.deterministic=true", "model.dropout=0.1", "model.head.name=dwatt"))[1]
        b = run(tiny_cell_config(tmp_path / "b", "train.deterministic=true", "model.dropout=0.1", "model.head.name=dwatt"))[1]
    finally:
        torch.use_deterministic_algorithms(False)
    assert a[METRICS + ["train_loss"]].equals(b[METRICS + ["train_loss"]])
    # the next non-deterministic cell does not inherit the global switch
    run(tiny_cell_config(tmp_path / "c", "train.steps=2", "train.eval_points=1"))
    assert not torch.are_deterministic_algorithms_enabled()


def test_seed_and_data_seed(tiny_cell_config, tmp_path):
    s0 = run(tiny_cell_config(tmp_path, "train.seed=0", "train.steps=2"))
    s1 = run(tiny_cell_config(tmp_path, "train.seed=1", "train.steps=2"))
    d1 = run(tiny_cell_config(tmp_path, "data.data_seed=1", "train.steps=2"))
    assert s0[1].subset_sha256.iloc[0] == s1[1].subset_sha256.iloc[0]      # the subset depends on data_seed only
    assert s0[2]["subset"]["sha256"] == s1[2]["subset"]["sha256"]
    assert d1[1].subset_sha256.iloc[0] != s0[1].subset_sha256.iloc[0]
    assert len({s0[1].run_id.iloc[0], s1[1].run_id.iloc[0], d1[1].run_id.iloc[0]}) == 3
    assert not s0[1].train_loss.equals(s1[1].train_loss)                    # but training differs
    assert sorted(p.name for p in (tmp_path / "subsets").iterdir()) == ["sentences-v2-16-seed0.json", "sentences-v2-16-seed1.json"]


def test_dev_subsample_and_samplers(tiny_cell_config, tmp_path):
    _, df, manifest = run(tiny_cell_config(tmp_path, "data.dev_subsample=5", "train.steps=3"))
    assert df[df.split == "dev"].eval_sentences.tolist() == [5, 5]
    assert df[df.split == "test"].eval_sentences.tolist() == [15]
    assert manifest["dev_subsample"]["n_sentences"] == 5
    _, df, manifest = run(tiny_cell_config(tmp_path, "data.sampler=full", "train.steps=2"))
    assert manifest["subset"]["n_sentences"] == 40
    _, df, manifest = run(tiny_cell_config(tmp_path, "data.sampler=ktype", "data.size=2", "train.steps=2"))
    assert all(manifest["subset"]["entity_counts"][t] >= 2 for t in ("PER", "LOC", "ORG", "MISC"))
    with pytest.raises(ValueError, match="data.sampler"):
        run_cell(tiny_cell_config(tmp_path, "data.sampler=bogus"))


@pytest.mark.parametrize("head", sorted(HEADS))
def test_every_head_runs(tiny_cell_config, tmp_path, head):
    config = tiny_cell_config(tmp_path, f"model.head.name={head}", "train.steps=3", "model.pooling=mean")
    table, df, manifest = run(config)
    assert table.num_rows == len(eval_schedule(3, 2, 1)) + 1
    assert df[METRICS[:4]].map(math.isfinite).all().all()
    assert manifest["budget"]["method"] == head
    if manifest["budget"]["target"] and head not in ("last", "scalarmix"):
        assert abs(manifest["budget"]["deviation"]) <= config.model.head.budget_tolerance


def test_run_cell_validates_like_the_sweep(tiny_cell_config, tmp_path):
    from paper_repro.config import ConfigError

    # fp16 used to train on CPU and be recorded; a backbone typo used to go to the hub
    for item, message in [("train.mixed_precision=fp16", "fp16 is not supported"),
                          ("model.backbone=minilm_l6", "did you mean minilm-l6?"),
                          ("model.head.options.scale=off", "model.head.options.scale: expected true/false")]:
        config = tiny_cell_config(tmp_path, item, "model.head.name=dwatt")
        with pytest.raises(ConfigError, match=message):
            run_cell(config)
    assert not (tmp_path / "results").exists()


def test_dirty_checkout_writes_the_diff(tiny_cell_config, tmp_path, monkeypatch):
    import hashlib

    from paper_repro.results import manifest as provenance

    diff = "# uncommitted changes\ndiff --git a/paper_repro/x.py b/paper_repro/x.py\n+changed\n"
    monkeypatch.setattr(provenance, "git_state", lambda: ("a" * 40, True))
    monkeypatch.setattr(provenance, "git_diff", lambda: diff)
    config = tiny_cell_config(tmp_path, "train.steps=2")
    _, df, manifest = run(config)
    paths = cell_paths(config.results_dir, config.study, config.run_id)
    assert paths["diff"].read_text() == diff and paths["diff"].parent == paths["manifest"].parent
    assert manifest["git"] == {"sha": "a" * 40, "dirty": True, "diff_file": f"{config.run_id}.diff",
                               "diff_sha256": hashlib.sha256(diff.encode()).hexdigest()}
    assert df.git_dirty.all()
    # rerun from a clean checkout: the stale diff goes
    monkeypatch.setattr(provenance, "git_state", lambda: ("b" * 40, False))
    _, _, manifest = run(config)
    assert manifest["git"] == {"sha": "b" * 40, "dirty": False} and not paths["diff"].exists()


def test_cells_of_different_mixed_precision_in_one_process(tiny_cell_config, tmp_path):
    """A sweep runs many cells in one process: a grid over mixed precision must not fail at the second cell."""
    _, plain, _ = run(tiny_cell_config(tmp_path, "train.steps=2", "train.mixed_precision=no"))
    _, bf16, manifest = run(tiny_cell_config(tmp_path, "train.steps=2", "train.mixed_precision=bf16"))
    _, again, _ = run(tiny_cell_config(tmp_path / "again", "train.steps=2", "train.mixed_precision=no"))
    assert manifest["config"]["train"]["mixed_precision"] == "bf16"
    assert plain[METRICS + ["train_loss"]].equals(again[METRICS + ["train_loss"]])  # state reset, not leaked


def test_tracker_logs_loss_lr_grad_norm_and_dev_f1(tiny_cell_config, tmp_path):
    """train.log_with=tensorboard: per-step train/loss, train/lr, train/grad_norm and dev F1 at the eval points,
    under results/<study>/trackers/<study>; the run id does not change with the tracker."""
    import struct

    pytest.importorskip("tensorboardX")
    from tensorboardX.proto import event_pb2

    config = tiny_cell_config(tmp_path, "train.steps=4", "train.log_with=tensorboard")
    assert config.run_id == tiny_cell_config(tmp_path, "train.steps=4").run_id
    run(config)
    files = list((tmp_path / "results" / "tiny" / "trackers").rglob("events.out.tfevents.*"))
    assert files   # the run's scalars (+ the hyper-parameters, in a sub-folder of their own)
    scalars: dict[str, list[int]] = {}
    for file in files:
        data, offset = file.read_bytes(), 0
        while offset < len(data):  # TFRecord: u64 length, u32 crc, payload, u32 crc
            (length,) = struct.unpack("<Q", data[offset:offset + 8])
            event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append(event.step)
    assert scalars["train/loss"] == [1, 2, 3, 4] and scalars["train/lr"] == [1, 2, 3, 4]
    assert scalars["train/grad_norm"] == [1, 2, 3, 4]
    assert scalars["dev/f1"] == eval_schedule(4, 2, 1) and scalars["test/f1"] == [4]


@pytest.mark.slow
def test_compiled_cell_matches_the_eager_cell(tiny_cell_config, tmp_path, monkeypatch):
    """train.compile: the tagger runs through torch.compile (inductor, dynamic shapes) and scores as the eager cell
    within float noise; a user's ACCELERATE_DYNAMO_BACKEND never compiles a cell whose config says "none"."""
    monkeypatch.setenv("ACCELERATE_DYNAMO_BACKEND", "inductor")   # e.g. left by `accelerate config`
    eager_config = tiny_cell_config(tmp_path, "train.steps=3", "model.head.name=dwatt", "train.deterministic=true")
    compiled_config = tiny_cell_config(tmp_path, "train.steps=3", "model.head.name=dwatt", "train.deterministic=true",
                                       "train.compile=default")
    assert compiled_config.run_id != eager_config.run_id
    _, eager, eager_manifest = run(eager_config)
    _, compiled, manifest = run(compiled_config)
    assert manifest["config"]["train"]["compile"] == "default"
    assert manifest["run_id"] == compiled_config.run_id
    # 3 steps of a random tiny BERT: predictions identical or off by float noise in the loss
    assert compiled["train_loss"].dropna().tolist() == pytest.approx(eager["train_loss"].dropna().tolist(), rel=1e-4, abs=1e-5)
    assert compiled[METRICS].to_numpy() == pytest.approx(eager[METRICS].to_numpy(), abs=1e-6)
    assert manifest["device_settings"]["compiled"] is True and eager_manifest["device_settings"]["compiled"] is False
    assert manifest["device_settings"]["compile_stats"]["unique_graphs"] >= 1       # dynamo really compiled
    assert "compile_stats" not in eager_manifest["device_settings"]
