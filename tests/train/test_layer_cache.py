"""Tests for paper_repro.train.layer_cache (the frozen-backbone track) on the tiny invented corpus and random BERT:
cached logits equal the live frozen encoder's, frozen and full cells score the same sentences with the same labels,
the cache is built once and reused, concurrent builders leave one valid cache, and the key follows its parts."""
from __future__ import annotations

import copy
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from fixtures import write_tiny_bert

from paper_repro.config import apply_overrides
from paper_repro.data.conll import LABELS, load_conll03
from paper_repro.models.backbone import load_backbone
from paper_repro.models.tagger import build_tagger
from paper_repro.results.store import cell_paths
from paper_repro.train import layer_cache
from paper_repro.train.cell import run_cell
from paper_repro.train.features import Collator, cached_features

FP16_ATOL = 2e-2   # logits from float16 states (hidden states of the tiny BERT are LayerNorm outputs, |x| ~ 1-4)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A fresh cache root for the test (layers and features)."""
    monkeypatch.setenv("PAPER_REPRO_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "layers"


@pytest.fixture(scope="module")
def tiny(tiny_conll_dir, tiny_backbone_dir):
    return load_conll03(str(tiny_conll_dir)), load_backbone(str(tiny_backbone_dir))


def frozen_parts(splits, backbone, max_length, sentences=None):
    parts = {}
    for part, name in (("train", "train"), ("dev", "valid"), ("test", "test")):
        split = splits[name]
        chosen = sentences if sentences is not None and part == "train" else list(range(len(split.sentences)))
        parts[part] = (split, cached_features(split, backbone.tokenizer, max_length).select(chosen))
    return parts


@pytest.mark.parametrize("head, pooling, fuse", [("last", "first", False), ("deeper", "attention", False),
                                                  ("dwatt", "mean", True), ("concat", "first", False)])
def test_cached_logits_equal_live_frozen_encoder(tiny, tiny_cell_config, tmp_path, cache_dir, head, pooling, fuse):
    splits, backbone = tiny
    config = tiny_cell_config(tmp_path, f"model.head.name={head}", f"model.pooling={pooling}",
                              f"model.head.fuse_embeddings={str(fuse).lower()}", "model.dropout=0.1")
    torch.manual_seed(0)
    live, _ = build_tagger(copy.deepcopy(backbone.model), config.model, num_labels=len(LABELS), seed=3)
    live.eval()
    frozen_in = layer_cache.frozen_inputs(backbone, config.model, frozen_parts(splits, backbone, config.model.max_length))
    cached = layer_cache.FrozenTagger(copy.deepcopy(live), frozen_in.layers).eval()
    assert cached.tagger.backbone is None
    features = cached_features(splits["valid"], backbone.tokenizer, config.model.max_length)
    items = list(enumerate(features.windows))
    plain = Collator(backbone.tokenizer.pad_token_id)(items)
    rows = frozen_in.collators["dev"](items)
    for key in ("attention_mask", "word_index", "labels", "window_id"):     # the same batch but for input_ids
        assert torch.equal(plain[key], rows[key]), key
    num_words = plain["labels"].shape[1]
    with torch.no_grad():
        expected = live(plain["input_ids"], plain["attention_mask"], plain["word_index"], num_words)
        got = cached(rows["input_ids"], rows["attention_mask"], rows["word_index"], num_words)
        # forward_from_layers on the live states is forward exactly
        hidden = backbone.model(input_ids=plain["input_ids"], attention_mask=plain["attention_mask"],
                                output_hidden_states=True).hidden_states
        layers = torch.stack(hidden[live.first_fused:])
        again = live.forward_from_layers(layers, plain["attention_mask"], plain["word_index"], num_words)
        # the cached states are the live ones in float16 on every real token, zeros on padding
        gathered = frozen_in.layers.gather(rows["input_ids"])
    assert torch.equal(again, expected)
    real = plain["attention_mask"].bool()
    assert torch.allclose(gathered[:, real], layers[:, real], rtol=1e-3, atol=1e-3)
    assert not gathered[:, ~real].any()
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=FP16_ATOL), (got - expected).abs().max()
    assert (got.argmax(-1) == expected.argmax(-1)).float().mean() > 0.99


def test_frozen_and_full_cells_score_the_same(tiny_cell_config, tmp_path, cache_dir):
    """Same subset, same eval rows (steps, splits, eval_sentences), same budget and batches; only head parameters
    train in the frozen cell; finetune recorded in the parquet and the manifest."""
    layer_cache.BUILDS.clear()
    full = tiny_cell_config(tmp_path / "full", "model.head.name=dwatt", "train.steps=6", "train.eval_points=3")
    frozen = apply_overrides(full, ["model.finetune=frozen", f"results_dir={tmp_path / 'frozen' / 'results'}"])
    assert frozen.run_id != full.run_id
    tables = {}
    for name, config in (("full", full), ("frozen", frozen)):
        path = run_cell(config)
        tables[name] = pq.read_table(path).to_pandas()
        manifest = json.loads(cell_paths(config.results_dir, config.study, config.run_id)["manifest"].read_text())
        tables[name + "_manifest"] = manifest
    a, b = tables["full"], tables["frozen"]
    columns = ["split", "step", "eval_sentences", "examples_seen", "steps_total", "warmup_steps", "size",
               "subset_sha256", "head_params", "budget_target", "method"]
    assert a[columns].equals(b[columns])
    assert (a.finetune == "full").all() and (b.finetune == "frozen").all()
    assert b.f1.between(0, 1).all() and b.train_loss.map(np.isfinite).all()
    fm, zm = tables["full_manifest"], tables["frozen_manifest"]
    assert fm["features"] == zm["features"] and fm["subset"] == zm["subset"] and fm["eval_steps"] == zm["eval_steps"]
    assert "layer_cache" not in fm and set(zm["layer_cache"]) == {"train", "valid", "test"}
    assert all(record["built"] for record in zm["layer_cache"].values()) and len(layer_cache.BUILDS) == 3
    assert "layer_cache_s" in zm["timings"] and zm["config"]["model"]["finetune"] == "frozen"
    # the build's CPU time is part of the cell's and recorded apart (sweep/cost.py prices cells without it)
    assert 0 < zm["timings"]["layer_cache_cpu_s"] <= zm["timings"]["cpu_s"]


def test_frozen_optimizer_has_head_parameters_only(tiny, tiny_cell_config, tmp_path, cache_dir):
    from paper_repro.train.loop import make_optimizer

    splits, backbone = tiny
    config = tiny_cell_config(tmp_path, "model.head.name=dwatt", "model.finetune=frozen", "model.pooling=attention")
    frozen_in = layer_cache.frozen_inputs(backbone, config.model, frozen_parts(splits, backbone, 24, [0, 1, 2]))
    before = {k: v.clone() for k, v in backbone.model.state_dict().items()}
    model, record = layer_cache.frozen_tagger(backbone.model, config.model, len(LABELS), 0, frozen_in.layers)
    optimizer, _ = make_optimizer(model, config.train, 10, 1)
    names = [n for group in optimizer.param_groups for n in group["param_names"]]
    assert names and all(n.split(".")[0] in ("head", "pooling", "classifier") for n in names)
    assert {group["initial_lr"] for group in optimizer.param_groups} == {config.train.head_lr}   # (lr: 0 in warmup)
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == \
        sum(p.numel() for p in model.parameters())
    assert not any(k.startswith("tagger.backbone") for k in model.state_dict())
    assert model.head is model.tagger.head and record["head_params"] > 0
    # the pristine backbone is read, never changed
    assert all(torch.equal(before[k], v) for k, v in backbone.model.state_dict().items())
    # a copy of the tagger (train.eval_precision=bf16 predicts with a bf16 copy) shares the cache, never copies it
    twin = copy.deepcopy(model).to(torch.bfloat16).eval()
    assert twin.layers is model.layers and twin.head is not model.head
    features = frozen_parts(splits, backbone, 24, [0, 1, 2])["train"][1]
    batch = frozen_in.collators["train"](list(enumerate(features.windows)))
    args = (batch["input_ids"], batch["attention_mask"], batch["word_index"], batch["labels"].shape[1])
    with torch.no_grad():
        assert twin(*args).dtype == torch.bfloat16 and model.eval()(*args).dtype == torch.float32


def test_cache_built_once_and_reused(tiny_cell_config, tmp_path, cache_dir):
    layer_cache.BUILDS.clear()
    first = tiny_cell_config(tmp_path, "model.finetune=frozen", "train.steps=2")
    run_cell(first)
    assert len(layer_cache.BUILDS) == 3
    folders = sorted(p for p in cache_dir.iterdir() if p.is_dir())
    assert sorted(json.loads((p / "meta.json").read_text())["split"]["name"] for p in folders) == ["test", "train",
                                                                                                 "valid"]
    stamps = {p: (p / "hidden.npy").stat().st_mtime_ns for p in folders}
    second = tiny_cell_config(tmp_path, "model.finetune=frozen", "train.steps=2", "train.seed=1",
                              "model.head.name=scalarmix", "data.data_seed=1")
    run_cell(second)
    assert len(layer_cache.BUILDS) == 3                     # nothing rebuilt
    manifest = json.loads(cell_paths(second.results_dir, second.study, second.run_id)["manifest"].read_text())
    assert not any(record["built"] for record in manifest["layer_cache"].values())
    assert {record["path"] for record in manifest["layer_cache"].values()} == {str(p) for p in folders}
    assert stamps == {p: (p / "hidden.npy").stat().st_mtime_ns for p in folders}
    assert not [p for p in cache_dir.iterdir() if ".tmp-" in p.name]


def test_key_follows_its_parts(tiny, tiny_backbone_dir, tmp_path, cache_dir):
    splits, backbone = tiny
    other = load_backbone(str(write_tiny_bert(tmp_path / "other_bert", seed=1)))
    same = load_backbone(str(tiny_backbone_dir))                  # the same weights, loaded again
    train = splits["train"]

    def key(model=backbone.model, max_length=24, fuse=False, split=train):
        return layer_cache.cache_key(layer_cache.cache_identity(split, backbone.tokenizer, model, max_length, fuse))

    base = key()
    assert key() == base and key(model=same.model) == base
    assert len({base, key(max_length=32), key(fuse=True), key(model=other.model), key(split=splits["valid"])}) == 5
    assert layer_cache.cache_path(layer_cache.cache_identity(train, backbone.tokenizer, backbone.model, 24, False)) \
        == cache_dir / base
    # a tokenizer.json with truncation/padding settings (MiniLM's has them; its first call resets them): same key
    from paper_repro.models.backbone import load_tokenizer

    padded = load_tokenizer(str(tiny_backbone_dir))
    padded.backend_tokenizer.enable_truncation(max_length=16)
    padded.backend_tokenizer.enable_padding(length=16)
    assert layer_cache.tokenizer_fingerprint(padded) == layer_cache.tokenizer_fingerprint(backbone.tokenizer)
    assert key() == layer_cache.cache_key(layer_cache.cache_identity(train, padded, backbone.model, 24, False))
    # fuse_embeddings stores one more layer
    a = layer_cache.layer_cache(train, backbone.tokenizer, backbone.model, 24, False)
    b = layer_cache.layer_cache(train, backbone.tokenizer, backbone.model, 24, True)
    assert (a.num_layers, b.num_layers) == (2, 3) and a.path != b.path
    np.testing.assert_array_equal(np.asarray(a.hidden), np.asarray(b.hidden[:, 1:]))
    meta = json.loads((a.path / "meta.json").read_text())
    assert meta["key"] == base and meta["identity"]["max_length"] == 24 and meta["tokens"] == a.tokens


def test_key_is_what_the_states_depend_on_only(tiny, cache_dir):
    """The stored states depend on the words (through the windows), the tokenizer's state, max_length, the
    encoder's weights, the fused layers and the dtype. Before the fix the key also took the split's name, its file
    sha256, its tags and the tokenizer's Python class: the same words relabelled (another label set, IOB1 read as
    IOB2), read from another file (a hub copy, four columns instead of two) or under another split name built a
    second cache of identical states (1.8 GiB for MiniLM-L6, 7.1 GiB for MPNet-base)."""
    from transformers import PreTrainedTokenizerFast

    from paper_repro.data.conll import Sentence, Split
    from paper_repro.data.labels import LabelSet

    splits, backbone = tiny
    test = splits["test"]
    cache = layer_cache.layer_cache(test, backbone.tokenizer, backbone.model, 24, False)
    built = list(layer_cache.BUILDS)
    # the same words: relabelled (every tag O), another name, file sha256 and source
    relabelled = Split("renamed", [Sentence(s.tokens, ("O",) * len(s.tokens), s.doc_id) for s in test.sentences],
                       source="elsewhere", sha256="0" * 64, scheme="iob2")
    plain = PreTrainedTokenizerFast(tokenizer_object=backbone.tokenizer.backend_tokenizer)   # another class
    identity = layer_cache.cache_identity(test, backbone.tokenizer, backbone.model, 24, False)
    assert layer_cache.cache_identity(relabelled, plain, backbone.model, 24, False) == identity
    assert set(identity) == {"version", "tokens", "tokenizer", "windowing", "max_length", "backbone",
                             "fuse_embeddings", "dtype"}
    again = layer_cache.layer_cache(relabelled, plain, backbone.model, 24, False,
                                    label_set=LabelSet.from_types(["PER", "LOC", "ORG", "MISC", "ZZZ"]))
    assert again.path == cache.path and not again.built and layer_cache.BUILDS == built
    assert [p.name for p in cache_dir.iterdir() if p.is_dir()] == [cache.path.name]
    meta = json.loads((cache.path / "meta.json").read_text())
    assert meta["split"]["name"] == "test" and meta["split"]["sha256"] == test.sha256   # provenance, not key
    # other words: another cache
    shifted = Split("test", test.sentences[1:], source=test.source, sha256=test.sha256, scheme="iob2")
    assert layer_cache.cache_identity(shifted, backbone.tokenizer, backbone.model, 24, False) != identity


def test_lost_rename_race_is_harmless(tiny, cache_dir, tmp_path):
    splits, backbone = tiny
    cache = layer_cache.layer_cache(splits["test"], backbone.tokenizer, backbone.model, 24, False)
    tmp = cache.path.parent / f".{cache.path.name}.tmp-other"
    tmp.mkdir()
    (tmp / "hidden.npy").write_bytes(b"a loser's half-written file")
    assert layer_cache.publish(tmp, cache.path) is False
    assert not tmp.exists()
    reopened = layer_cache.open_cache(cache.path, cache.meta["key"])
    np.testing.assert_array_equal(np.asarray(reopened.hidden), np.asarray(cache.hidden))


BUILDER = textwrap.dedent("""
    import json, sys, time
    from paper_repro.data.conll import load_conll03
    from paper_repro.models.backbone import load_backbone
    from paper_repro.train import layer_cache
    from pathlib import Path
    data_dir, model_dir, lock, sync, me = sys.argv[1:6]
    if lock == "nolock":
        layer_cache.fcntl = None          # no flock: both build, the atomic rename decides
    split = load_conll03(data_dir)["train"]
    backbone = load_backbone(model_dir)

    def barrier(name):                    # wait until both builders reached this point (not a wall-clock guess)
        Path(sync, f"{name}-{me}").touch()
        deadline = time.time() + 60
        while len(list(Path(sync).glob(f"{name}-*"))) < 2:
            if time.time() > deadline:
                sys.exit(f"barrier {name}: the other builder never arrived")
            time.sleep(0.01)

    encode, say = layer_cache.encode_into, layer_cache.stderr_line
    def slow(*args, **kwargs):            # nolock: both builders are inside the build at once
        if lock == "nolock":
            barrier("inside")
        else:                             # lock: the holder stays inside until the other one blocks on the lock
            deadline = time.time() + 60
            while not any(Path(sync).glob("waiting-*")) and time.time() < deadline:
                time.sleep(0.01)
        return encode(*args, **kwargs)
    def said(text):                       # the blocked builder's "waiting for another process" line
        if text.startswith("waiting for another process"):
            Path(sync, f"waiting-{me}").touch()
        say(text)
    layer_cache.encode_into, layer_cache.stderr_line = slow, said
    barrier("ready")                      # imports and loading done in both: start together
    cache = layer_cache.layer_cache(split, backbone.tokenizer, backbone.model, 24, False)
    print(json.dumps({"built": cache.built, "path": str(cache.path), "sum": float(cache.hidden.astype("float64").sum())}))
""")


@pytest.mark.parametrize("lock", ["lock", "nolock"])
def test_concurrent_builders_leave_one_valid_cache(tiny_conll_dir, tiny_backbone_dir, tiny, cache_dir, lock, tmp_path):
    """Two processes build the same cache at once. The start is a file barrier, not a clock: on a loaded machine
    one process's imports can take longer than any fixed head start (CI failed that way once)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")])}
    sync = tmp_path / "sync"
    sync.mkdir()
    processes = [subprocess.Popen([sys.executable, "-c", BUILDER, str(tiny_conll_dir), str(tiny_backbone_dir), lock,
                                   str(sync), str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                 for i in range(2)]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert all(p.returncode == 0 for p in processes), [err for _, err in outputs]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert len({r["path"] for r in results}) == 1 and len({r["sum"] for r in results}) == 1
    assert sorted(r["built"] for r in results) == [False, True]   # one published; the other waited or lost
    if lock == "nolock":
        assert "published it first" in "".join(err for _, err in outputs)
    else:
        assert "waiting for another process" in "".join(err for _, err in outputs)
    assert [p.name for p in cache_dir.iterdir() if p.is_dir() or ".tmp-" in p.name] == [Path(results[0]["path"]).name]
    splits, backbone = tiny
    cache = layer_cache.open_cache(Path(results[0]["path"]))
    live = layer_cache.layer_cache(splits["train"], backbone.tokenizer, backbone.model, 24, False)
    assert live.path == cache.path and not live.built            # this process finds it: no third build
    features = cached_features(splits["train"], backbone.tokenizer, 24)
    assert np.array_equal(np.diff(cache.offsets), [len(w.input_ids) for w in features.windows])
    assert np.isfinite(np.asarray(cache.hidden, dtype=np.float32)).all() and np.abs(cache.hidden).sum() > 0


def test_describe_prints_sizes_and_builds(tiny_conll_dir, tiny_backbone_dir, cache_dir):
    """`python -m paper_repro.train.layer_cache` (README: the frozen track's cache sizes): subwords x layers x
    hidden x 2 bytes per split, "not built" until built, then the build seconds of its meta.json."""
    import io

    out = io.StringIO()
    gib = layer_cache.describe([str(tiny_backbone_dir)], 24, data_dir=str(tiny_conll_dir), out=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 and all("(not built)" in line for line in lines[:3]) and not cache_dir.exists()
    subwords = int(lines[3].split(" all: ")[1].split(" subwords")[0])
    assert gib == pytest.approx(subwords * 2 * 32 * 2 / 2**30)
    out = io.StringIO()
    layer_cache.describe([str(tiny_backbone_dir)], 24, build_now=True, data_dir=str(tiny_conll_dir), out=out)
    assert all("built in" in line for line in out.getvalue().splitlines())
    assert len([p for p in cache_dir.iterdir() if p.is_dir()]) == 3


def test_write_sizes_csv(tiny_conll_dir, tiny_backbone_dir, cache_dir, tmp_path, capsys):
    """`--write` (the README's layer-cache table reads results/layer_cache/sizes.csv): one row per backbone and split,
    the sizes `describe` prints, with and without the embedding output; nothing built; a folder is one error line."""
    import pandas as pd

    out = tmp_path / "sizes" / "sizes.csv"
    argv = [str(tiny_backbone_dir), "--max-length", "24", "--data-dir", str(tiny_conll_dir)]
    assert layer_cache.main([*argv, "--write", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    table = pd.read_csv(out)
    assert list(table.columns) == list(layer_cache.SIZE_CSV_COLUMNS) and list(table.split) == ["train", "valid", "test"]
    for line, row in zip(printed[:3], table.itertuples()):
        assert f"{row.windows} windows, {row.subwords} subwords x 2 layers x 32 = " in line
    assert ((table.gib / (table.subwords * 2 * 32 * 2 / 2**30) - 1).abs() < 1e-5).all()   # 6 significant digits
    assert ((table.gib_fuse_embeddings / table.gib - 3 / 2).abs() < 1e-5).all() and not cache_dir.exists()
    assert printed[-1] == f"wrote {out}"
    assert layer_cache.main([*argv, "--write", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


@pytest.mark.slow
def test_committed_sizes_csv_is_what_the_real_splits_give(real_data_dir, minilm_available, tmp_path):
    """results/layer_cache/sizes.csv (the README's table) holds MiniLM's sizes of the real CoNLL-03 splits as they
    are tokenized now (MPNet's rows come from the same code: `python -m paper_repro.train.layer_cache mpnet-base`)."""
    import pandas as pd

    rows: list[dict] = []
    layer_cache.describe(["minilm-l6"], data_dir=str(real_data_dir), out=io.StringIO(), rows=rows)
    committed = pd.read_csv(Path(__file__).resolve().parents[2] / "results" / "layer_cache" / "sizes.csv")
    committed = committed[committed.backbone == "minilm-l6"].reset_index(drop=True)
    now = pd.DataFrame(rows, columns=list(layer_cache.SIZE_CSV_COLUMNS))
    pd.testing.assert_frame_equal(now, committed, check_dtype=False, rtol=1e-5)


def frozen_dwatt_cell(tiny_cell_config, tmp_path, *overrides):
    """Run a frozen `dwatt` tiny cell; (run id, its parquet as a frame, its manifest)."""
    config = tiny_cell_config(tmp_path, "model.finetune=frozen", "model.head.name=dwatt", *overrides)
    run_cell(config)
    paths = cell_paths(config.results_dir, config.study, config.run_id)
    return config.run_id, pq.read_table(paths["parquet"]).to_pandas(), json.loads(paths["manifest"].read_text())


@pytest.mark.slow
def test_compiled_frozen_cell_matches_the_eager_one(tiny_cell_config, tmp_path, cache_dir):
    """train.compile on the frozen track: the FrozenTagger (cache gather + head) runs through torch.compile and
    scores as the eager frozen cell within float noise."""
    _, eager, eager_manifest = frozen_dwatt_cell(tiny_cell_config, tmp_path, "train.steps=3", "train.deterministic=true",
                                                 "train.compile=none")
    _, compiled, manifest = frozen_dwatt_cell(tiny_cell_config, tmp_path, "train.steps=3", "train.deterministic=true",
                                              "train.compile=default")
    assert (eager_manifest["device_settings"].get("compiled"), manifest["device_settings"].get("compiled")) == (False, True)
    assert manifest["device_settings"]["compile_stats"]["unique_graphs"] >= 1       # dynamo really compiled
    assert compiled["train_loss"].tolist() == pytest.approx(eager["train_loss"].tolist(), rel=1e-4, abs=1e-5)
    assert compiled["f1"].tolist() == pytest.approx(eager["f1"].tolist(), abs=1e-6)


def test_words_only_frozen_cell_scores_as_the_plain_one(tiny_cell_config, tmp_path, cache_dir):
    """train.head_words_only on the frozen track (where the head is most of the work): another run id, the manifest
    says it applied, and the metrics match the plain cell's within float noise."""
    plain_id, plain, plain_manifest = frozen_dwatt_cell(tiny_cell_config, tmp_path, "train.steps=6", "train.eval_points=3")
    words_id, words, manifest = frozen_dwatt_cell(tiny_cell_config, tmp_path, "train.steps=6", "train.eval_points=3",
                                                  "train.head_words_only=true")
    assert plain_id != words_id
    assert (plain_manifest["head_tokens_in_training"], manifest["head_tokens_in_training"]) == ("all", "words")   # as run
    assert words["train_loss"].tolist() == pytest.approx(plain["train_loss"].tolist(), rel=1e-5)
    assert words["f1"].tolist() == pytest.approx(plain["f1"].tolist(), abs=1e-4)
