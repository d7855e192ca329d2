"""bench/shape_backbone.py (random-weight encoders in a paper backbone's shape) and the README's fp32-vs-bf16 table
built from two bench/head_overhead.py runs. Tiny shapes and the invented corpus; no timing is checked."""
from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

TINY = dict(num_hidden_layers=2, hidden_size=48, num_attention_heads=4, intermediate_size=96, vocab_size=512,
            max_position_embeddings=64)


@pytest.fixture
def tiny_shape(monkeypatch, tiny_backbone_dir, tmp_path) -> Path:
    from bench import shape_backbone

    monkeypatch.setitem(shape_backbone.SHAPES, "tiny", TINY)
    folder = tmp_path / "shape-tiny"
    assert shape_backbone.main(["tiny", str(folder), "--tokenizer-from", str(tiny_backbone_dir)]) == 0
    return folder


def test_shape_folder_loads_as_a_backbone_of_that_shape(tiny_shape, tiny_backbone_dir):
    from paper_repro.models.backbone import load_backbone

    loaded = load_backbone(str(tiny_shape))
    config = loaded.model.config
    assert (config.num_hidden_layers, config.hidden_size, config.vocab_size) == (2, 48, 512)
    assert loaded.num_layers == 2 and loaded.hidden_size == 48
    original = load_backbone(str(tiny_backbone_dir)).tokenizer
    assert loaded.tokenizer("germany beat".split(), is_split_into_words=True)["input_ids"] == \
        original("germany beat".split(), is_split_into_words=True)["input_ids"]


def test_unknown_shape_missing_tokenizer_and_too_small_vocabulary_are_one_line_errors(tmp_path, tiny_backbone_dir,
                                                                                      monkeypatch, capsys):
    from bench import shape_backbone

    assert shape_backbone.main(["bert-base", str(tmp_path / "x"), "--tokenizer-from", str(tmp_path / "nowhere")]) == 2
    assert "not a local folder" in capsys.readouterr().err
    with pytest.raises(shape_backbone.ShapeError, match="unknown shape"):
        shape_backbone.write_shape("bert-huge", tmp_path / "y", tiny_backbone_dir)
    monkeypatch.setitem(shape_backbone.SHAPES, "narrow", {**TINY, "vocab_size": 5})
    assert shape_backbone.main(["narrow", str(tmp_path / "z"), "--tokenizer-from", str(tiny_backbone_dir)]) == 2
    assert "more than the narrow shape's 5 embedding rows" in capsys.readouterr().err
    assert not any((tmp_path / name).exists() for name in ("x", "y", "z"))


def test_precision_table_pairs_an_fp32_and_a_bf16_run(tiny_shape, tiny_conll_dir, tmp_path):
    """Two real head_overhead runs (fp32, bf16 autocast on CPU) on the tiny shape -> one row per head whose ratio
    is the bf16 step over the fp32 step as the two parquet files hold them."""
    from bench import common, head_overhead
    from paper_repro.analysis import readme_tables

    bench_dir = tmp_path / "bench"
    args = ["--backbone", str(tiny_shape), "--data-dir", str(tiny_conll_dir), "--size", "8", "--dev", "0",
            "--repeats", "1", "--batch-size", "4", "--eval-batch-size", "4", "--max-length", "24", "--steps", "2",
            "--warmup", "1", "--heads", "last,dwatt"]
    try:
        for name, precision in (("fp", "no"), ("half", "bf16")):
            assert head_overhead.main([*args, "--set", f"train.mixed_precision={precision}",
                                       "--out", str(bench_dir / f"{name}.parquet")]) == 0
    finally:
        common.install_test_limit(0)
    text = readme_tables.precision_section(bench_dir, "fp", "half", "T", "D")
    steps = {}
    for name in ("fp", "half"):
        frame = pq.read_table(bench_dir / f"{name}.parquet").to_pandas()
        summary = frame[(frame["kind"] == "summary") & (frame["metric"] == "step_s")]
        steps[name] = dict(zip(summary["variant"], summary["value"]))
    for head in ("last", "dwatt"):
        ratio = readme_tables.fmt_ratio(steps["half"][head] / steps["fp"][head])
        assert f"| `shape-tiny` | `{head}` | {readme_tables.fmt_ms(steps['fp'][head])} | " \
               f"{readme_tables.fmt_ms(steps['half'][head])} | {ratio} |" in text
    swapped = readme_tables.precision_section(bench_dir, "half", "fp", "T", "D")   # the files' precisions say no
    assert "`half.parquet` is not a fp32" in swapped and "| `shape-tiny` |" not in swapped
    missing = readme_tables.precision_section(bench_dir, "fp", "absent", "T", "D")
    assert "Not measured yet" in missing and "`absent.parquet`" in missing
