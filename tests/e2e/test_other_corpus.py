"""Another NER corpus end to end: an invented CoNLL-format corpus whose entity types are not CoNLL-03's (`Gene`,
`DRUG`, lower-case `loc`) runs through `data.data_dir` with the packaged MiniLM, its label set read from the
training split; per-type F1 of its types lands in the parquet (`f1_by_type`; the fixed CoNLL-03 columns are null).
Bad corpora stop the `paper-repro` command line with exit status 2, one line naming file and line, nothing written.

Every sentence here is invented from the templates below (never CoNLL-03 text)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from paper_repro.cli import main
from paper_repro.config import CellConfig, apply_overrides
from paper_repro.results.schema import CELL_SCHEMA, per_type_long
from paper_repro.results.store import cell_paths, is_done

SLOTS = {
    "Gene": [("zorbin",), ("quilt", "7"), ("mavek",), ("tessil", "b"), ("prodan",)],
    "DRUG": [("kelvax",), ("trimorex",), ("solvane", "plus"), ("nepharin",), ("duloxa",)],
    "loc": [("marrow",), ("upper", "fen"), ("the", "lung"), ("liver",), ("cortex",)],
}
TEMPLATES = [
    "{DRUG} blocks {Gene} in the {loc} .",
    "mice given {DRUG} showed no change in {Gene} levels .",
    "{Gene} is expressed in {loc} cells .",
    "the trial compared {DRUG} with {DRUG} over six weeks .",
    "no effect was seen .",
    "{Gene} and {Gene} bind near the {loc} .",
]
TYPES = ("DRUG", "Gene", "loc")        # the canonical order: no CoNLL-03 type, then sorted (upper case first)


def fill(template: str, index: int) -> list[tuple[str, str]]:
    pairs, used = [], {kind: 0 for kind in SLOTS}
    for word in template.split():
        kind = word[1:-1] if word.startswith("{") else None
        if kind is None:
            pairs.append((word, "O"))
            continue
        name = SLOTS[kind][(index + 2 * used[kind]) % len(SLOTS[kind])]
        used[kind] += 1
        pairs += [(token, ("B-" if i == 0 else "I-") + kind) for i, token in enumerate(name)]
    return pairs


def conll_text(n: int, offset: int) -> str:
    lines = ["-DOCSTART- O", ""]
    for i in range(offset, offset + n):
        lines += [f"{token} {tag}" for token, tag in fill(TEMPLATES[i % len(TEMPLATES)], i)] + [""]
    return "\n".join(lines)


def write_corpus(folder: Path, sizes=(("train", 60, 0), ("valid", 18, 100), ("test", 18, 200))) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, n, offset in sizes:
        (folder / f"{split}.txt").write_text(conll_text(n, offset))
    return folder


@pytest.mark.slow
def test_minilm_cell_on_another_corpus(minilm_available, tmp_path):
    data = write_corpus(tmp_path / "corpus")
    config = apply_overrides(CellConfig(), {
        "study": "other", "results_dir": str(tmp_path / "results"), "data.data_dir": str(data),
        "data.subset_dir": str(tmp_path / "subsets"), "data.size": 48, "data.dev_subsample": 0,
        "model.backbone": "minilm-l6", "model.head.name": "dwatt",
        "train.step_rule": "fixed", "train.steps": 40, "train.warmup_steps": 4, "train.eval_points": 2,
        "train.backbone_lr": 1e-4,
    })
    from paper_repro.train.cell import run_cell

    path = run_cell(config)
    paths = cell_paths(config.results_dir, "other", config.run_id)
    assert path == paths["parquet"] and is_done(config.results_dir, "other", config.run_id)
    table = pq.read_table(path)
    assert table.schema.equals(CELL_SCHEMA, check_metadata=False)
    rows = table.to_pylist()
    assert [(r["step"], r["split"], r["eval_sentences"]) for r in rows] == [(22, "dev", 18), (40, "dev", 18),
                                                                          (40, "test", 18)]
    manifest = json.loads(paths["manifest"].read_text())
    assert manifest["labels"] == {"types": list(TYPES),
                                  "labels": ["O", "B-DRUG", "I-DRUG", "B-Gene", "I-Gene", "B-loc", "I-loc"]}
    # (the manifest is written with sorted keys: compare the key sets)
    assert set(manifest["subset"]["entity_counts"]) == set(TYPES) and manifest["subset"]["n_sentences"] == 48
    assert all(manifest["subset"]["entity_counts"][t] > 0 for t in TYPES)
    assert {"PER", "LOC", "ORG", "MISC"}.isdisjoint(manifest["data"]["train"])
    assert sum(manifest["data"]["train"][t] for t in TYPES) == manifest["data"]["train"]["entities"] > 0
    assert set(manifest["depth_attention"]["per_type"]) == {*TYPES, "O", "ALL"}      # dwatt's depth weights
    assert all(w is not None and abs(sum(w) - 1) < 1e-4 for w in manifest["depth_attention"]["per_type"].values())
    assert len(list((tmp_path / "subsets").iterdir())) == 1                            # its own subset folder
    for row in rows:
        assert [t for t, _ in row["f1_by_type"]] == list(TYPES)
        assert all(row[f"f1_{t}"] is None for t in ("PER", "LOC", "ORG", "MISC"))     # not types of this corpus
    test = rows[-1]
    by_type = dict(test["f1_by_type"])
    # the templated corpus is easy (1.0 on data seeds 0 and 1 with 1 or 2 threads); a broken pipeline (labels
    # misaligned, ids of another label set, per-type scores of the wrong types) stays far below
    assert test["f1"] > 0.8, f"test F1 {test['f1']:.3f}"
    assert all(0.5 < by_type[t] <= 1.0 for t in TYPES), by_type                       # every type learned
    assert min(by_type.values()) <= test["f1"] <= max(by_type.values())               # micro F1 between the types'
    assert rows[1]["f1"] >= rows[0]["f1"] - 0.05 and math.isfinite(test["train_loss"])
    long = per_type_long(table).to_pylist()
    assert [(r["split"], r["type"]) for r in long[-3:]] == [("test", t) for t in TYPES]
    assert [r["f1"] for r in long[-3:]] == [by_type[t] for t in TYPES]


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    status = main(argv)
    captured = capsys.readouterr()
    assert captured.out == ""
    return status, captured.err


def cli_argv(data: Path, tiny_backbone_dir: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["cell", f"data.data_dir={data}", f"model.backbone={tiny_backbone_dir}",
            f"results_dir={tmp_path / 'results'}", "data.size=4", "train.steps=2", *extra]


def test_cli_unparsable_tag_exits_2_naming_file_and_line(tiny_backbone_dir, tmp_path, capsys):
    data = write_corpus(tmp_path / "corpus")
    lines = (data / "train.txt").read_text().splitlines()
    lines[5] = lines[5].split()[0] + " X-FOO"                  # line 6
    (data / "train.txt").write_text("\n".join(lines) + "\n")
    status, err = run_cli(cli_argv(data, tiny_backbone_dir, tmp_path, f"data.subset_dir={tmp_path / 's'}"), capsys)
    assert status == 2
    assert err == (f"paper-repro: error: {data / 'train.txt'}:6: expected a tag O, B-<type> or I-<type>, "
                   f"found 'X-FOO'\n")
    assert not (tmp_path / "results").exists() and not (tmp_path / "s").exists()   # nothing written


def test_cli_test_type_missing_from_train_exits_2(tiny_backbone_dir, tmp_path, capsys):
    data = write_corpus(tmp_path / "corpus")
    (data / "test.txt").write_text((data / "test.txt").read_text() + "\nvexa B-Virus\n")
    line = len((data / "test.txt").read_text().splitlines())
    status, err = run_cli(cli_argv(data, tiny_backbone_dir, tmp_path, f"data.subset_dir={tmp_path / 's'}"), capsys)
    assert status == 2 and err.count("\n") == 1
    assert err.startswith(f"paper-repro: error: {data / 'test.txt'}:{line}: entity type 'Virus' (tag 'B-Virus') "
                          f"is not in the label set read from the training split {data / 'train.txt'}")
    assert not (tmp_path / "results").exists() and not (tmp_path / "s").exists()


def test_cli_other_corpus_needs_its_own_subset_dir(tiny_backbone_dir, tmp_path, capsys):
    data = write_corpus(tmp_path / "corpus")
    status, err = run_cli(cli_argv(data, tiny_backbone_dir, tmp_path), capsys)   # no data.subset_dir
    assert status == 2 and err.count("\n") == 1
    assert err.startswith("paper-repro: error: data.subset_dir: set a folder for this corpus' subset files "
                          "(its entity types DRUG, Gene, loc are not CoNLL-03's")
    assert not (tmp_path / "results").exists()


def test_cli_data_prints_the_corpus_types(tmp_path, capsys):
    data = write_corpus(tmp_path / "corpus")
    assert main(["data", "--data-dir", str(data)]) == 0
    header, train, *_ = capsys.readouterr().out.splitlines()
    assert header.split() == ["split", "sentences", "tokens", "documents", *TYPES, "entities", "sha256"]
    assert train.split()[:2] == ["train", "60"]


def test_tiny_frozen_cell_on_another_corpus(tiny_cell_config, tmp_path):
    """The frozen track (cached hidden states, paper_repro/train/layer_cache.py) reads the corpus' label ids too."""
    data = write_corpus(tmp_path / "corpus")
    config = tiny_cell_config(tmp_path, f"data.data_dir={data}", "model.finetune=frozen", "model.head.name=dwatt",
                              "train.steps=3")
    from paper_repro.train.cell import run_cell

    table = pq.read_table(run_cell(config))
    manifest = json.loads(cell_paths(config.results_dir, config.study, config.run_id)["manifest"].read_text())
    assert manifest["labels"]["types"] == list(TYPES) and "layer_cache" in manifest
    rows = table.to_pylist()
    assert [r["split"] for r in rows] == ["dev", "dev", "test"]
    assert all([t for t, _ in r["f1_by_type"]] == list(TYPES) and r["f1_PER"] is None for r in rows)
    assert all(0.0 <= r["f1"] <= 1.0 and all(math.isnan(v) or 0.0 <= v <= 1.0 for _, v in r["f1_by_type"])
               for r in rows)
