"""The README's tables that come from our commands' CSVs, never typed: the parameter budget (`paper-repro budget
--write`, the solver's output) and the frozen track's layer-cache sizes (`python -m paper_repro.train.layer_cache
--write`). Bad CSVs are one error line naming the file, with the README left as it was."""
from __future__ import annotations

from pathlib import Path

import pytest
from transformers import BertConfig

from paper_repro.analysis import readme_tables
from paper_repro.models.budget import budget_csv_rows, budget_table, budget_target, write_budget_csv
from paper_repro.models.heads import HeadContext

REPO = Path(__file__).resolve().parents[2]


def ctx_target(layers: int, hidden: int, extra: int = 1) -> tuple[HeadContext, int]:
    config = BertConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4, intermediate_size=4 * hidden,
                        vocab_size=100)
    ctx = HeadContext.from_config(config, layers)
    return ctx, budget_target(ctx, layers=extra)


def solver_csv(path: Path, name: str, layers: int, hidden: int, extra: int = 1, tolerance: float = 0.03) -> Path:
    ctx, target = ctx_target(layers, hidden, extra)
    write_budget_csv(budget_csv_rows(budget_table(ctx, target, tolerance=tolerance), name, ctx, extra, False, tolerance),
                     path)
    return path


def readme_with(tmp_path: Path, markers: tuple[str, str], inside: str = "") -> Path:
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{readme_tables.BEGIN}\n{readme_tables.END}\n\n{markers[0]}\n{inside}{markers[1]}\n\nafter\n")
    return readme


def block(readme: Path, markers: tuple[str, str]) -> str:
    text = readme.read_text()
    return text[text.index(markers[0]):text.index(markers[1])]


BUDGET = (readme_tables.BUDGET_BEGIN, readme_tables.BUDGET_END)
LAYER_CACHE = (readme_tables.LAYER_CACHE_BEGIN, readme_tables.LAYER_CACHE_END)


# ---------------------------------------------------------------------------------------------- budget
def test_budget_block_from_the_solvers_csv(tmp_path):
    small = solver_csv(tmp_path / "results" / "budget" / "small.csv", "small", 3, 32)
    large = solver_csv(tmp_path / "results" / "budget" / "large.csv", "large", 4, 64)
    readme = readme_with(tmp_path, BUDGET, "STALE 1,774,464\n")
    argv = [str(readme), "--bench-dir", str(tmp_path / "none"), "--budget", str(small), "--budget", str(large)]
    assert readme_tables.main(argv) == 0
    text = block(readme, BUDGET)
    assert "STALE" not in text and readme.read_text().endswith("after\n")
    assert "`results/budget/small.csv`, `results/budget/large.csv`" in text       # named relative to the README
    assert "Target: the `deeper` head's trainable parameters, 1 extra backbone layer; tolerance ±3%." in text
    assert "| method | `small` (3 × 32) knob | params | deviation | `large` (4 × 64) knob | params | deviation |" in text
    rows = {line.split(" | ")[0][2:]: line for line in text.splitlines() if line.startswith("| `")}
    assert list(rows) == ["`last`", "`deeper`", "`deeper_copy`", "`concat`", "`dwatt`", "`scalarmix`", "`lstm`",
                          "`attnres`", "`attnres_block`", "`concat/linear`"]      # the solver's order
    solved = {row["method"]: row for row in budget_table(*ctx_target(3, 32))}
    target = solved["deeper"]["params"]
    assert f"| `deeper` | – | {target:,} | 0 (the target) |" in rows["`deeper`"]
    assert f"| `deeper_copy` | – | {target:,} | 0 (the target's architecture) |" in rows["`deeper_copy`"]
    assert "unmatched (budget control)" in rows["`scalarmix`"] and "(no knob" in rows["`concat/linear`"]
    assert f"| γ {solved['dwatt']['knob_value']:.3f} | {solved['dwatt']['params']:,} |" in rows["`dwatt`"]
    assert f"| width {solved['concat']['knob_value']} | {solved['concat']['params']:,} |" in rows["`concat`"]
    assert readme_tables.main([*argv, "--check"]) == 0
    small.write_text(small.read_text().replace(f",{target},{target},0,True,defines target",
                                               f",{target + 1},{target},0,True,defines target"))
    assert readme_tables.main([*argv, "--check"]) == 1                 # the CSV moved: the README is out of date


def test_budget_outside_the_tolerance_is_said(tmp_path):
    tight = solver_csv(tmp_path / "tight.csv", "small", 3, 32, tolerance=0.0001)
    readme = readme_with(tmp_path, BUDGET)
    assert readme_tables.main([str(readme), "--bench-dir", str(tmp_path / "none"), "--budget", str(tight)]) == 0
    text = block(readme, BUDGET)
    solved = {row["method"]: row for row in budget_table(*ctx_target(3, 32), tolerance=0.0001)}
    outside = [name for name, row in solved.items() if row["note"].startswith("best knob outside")]
    assert outside and "tolerance ±0.01%." in text
    for name in outside:
        line = next(line for line in text.splitlines() if line.startswith(f"| `{name}` |"))
        assert line.endswith("**outside ±0.01%** |"), line


def test_a_missing_budget_csv_says_how_to_write_it(tmp_path):
    readme = readme_with(tmp_path, BUDGET)
    missing = tmp_path / "results" / "budget" / "minilm-l6.csv"
    assert readme_tables.main([str(readme), "--bench-dir", str(tmp_path / "none"), "--budget", str(missing)]) == 0
    assert ("_Missing: `results/budget/minilm-l6.csv` (run `paper-repro budget --backbone <backbone> --write "
            "results/budget/minilm-l6.csv`)._") in readme.read_text()


def test_budget_without_its_markers_is_one_error(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"{readme_tables.BEGIN}\n{readme_tables.END}\n")
    small = solver_csv(tmp_path / "small.csv", "small", 3, 32)
    assert readme_tables.main([str(readme), "--bench-dir", str(tmp_path / "none"), "--budget", str(small)]) == 2
    assert "`<!-- BEGIN budget -->`" in capsys.readouterr().err and "BEGIN budget" not in readme.read_text()


def fused_csv(tmp_path: Path) -> Path:
    config = BertConfig(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=256, vocab_size=100)
    ctx = HeadContext.from_config(config, 5)                           # the embedding output fused as a 5th layer
    path = tmp_path / "fused.csv"
    write_budget_csv(budget_csv_rows(budget_table(ctx, budget_target(ctx)), "large", ctx, 1, True, 0.03), path)
    return path


def unfitting_csv(case: str, tmp_path: Path, small: Path) -> Path:
    """A second --budget CSV that cannot be rendered beside `small` (a `solver_csv` of backbone "small")."""
    path = tmp_path / {"not a budget csv": "other.csv", "empty file": "empty.csv", "a folder": "folder",
                       "bad number": "bad.csv"}.get(case, "x.csv")
    if case == "other layers":
        return solver_csv(path, "large", 4, 64, extra=2)
    if case == "fused":
        return fused_csv(tmp_path)
    if case == "same backbone":
        return solver_csv(path, "small", 3, 32)
    if case == "a folder":
        path.mkdir()
    elif case == "not a budget csv":
        path.write_text("method,params\ndwatt,5\n")
    elif case == "empty file":
        path.write_text("")
    else:                                                       # "bad number": backbone "large", params not a number
        header, first, *rest = solver_csv(path, "large", 4, 64).read_text().splitlines()
        cells = first.split(",")
        cells[header.split(",").index("params")] = "12x"
        path.write_text("\n".join([header, ",".join(cells), *rest]) + "\n")
    return path


@pytest.mark.parametrize("case, message", [
    ("other layers", "solved for different budgets"),
    ("fused", "solved for different budgets"),
    ("same backbone", "a backbone twice"),
    ("not a budget csv", "other.csv: not a `paper-repro budget --write` table (no column backbone"),
    ("empty file", "empty.csv: not a `paper-repro budget --write` table"),
    ("a folder", "folder: not a `paper-repro budget --write` table"),
    ("bad number", "bad.csv: not a `paper-repro budget --write` table (column params"),
])
def test_budget_csvs_that_do_not_fit_are_one_error(tmp_path, capsys, case, message):
    small = solver_csv(tmp_path / "small.csv", "small", 3, 32)
    other = unfitting_csv(case, tmp_path, small)
    readme = readme_with(tmp_path, BUDGET)
    before = readme.read_text()
    argv = [str(readme), "--bench-dir", str(tmp_path / "none"), "--budget", str(small), "--budget", str(other)]
    assert readme_tables.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err, err
    assert readme.read_text() == before                                         # nothing written


# ---------------------------------------------------------------------------------------------- layer cache
SIZES = """backbone,split,max_length,windows,subwords,layers,hidden,gib,gib_fuse_embeddings
small,train,128,10,1000,6,384,1.25,1.5
small,valid,128,5,400,6,384,0.5,0.6
large,train,128,10,1000,12,768,5,5.5
large,valid,128,5,400,12,768,2,2.25
"""


def test_layer_cache_block_from_its_csv(tmp_path):
    sizes = tmp_path / "results" / "layer_cache" / "sizes.csv"
    sizes.parent.mkdir(parents=True)
    sizes.write_text(SIZES)
    readme = readme_with(tmp_path, LAYER_CACHE, "STALE\n")
    argv = [str(readme), "--bench-dir", str(tmp_path / "none"), "--layer-cache", str(sizes)]
    assert readme_tables.main(argv) == 0
    text = block(readme, LAYER_CACHE)
    assert "STALE" not in text and "from `results/layer_cache/sizes.csv`" in text
    assert "`python -m paper_repro.train.layer_cache small large --write results/layer_cache/sizes.csv`" in text
    assert ("train / valid splits at max_length 128: 1,000 / 400 subwords, every backbone's tokenizer gives the same "
            "counts.") in text
    assert "| backbone | layers × hidden | train | valid | all | all, with `fuse_embeddings` |" in text
    assert "| `small` | 6 × 384 | 1.25 GiB | 0.50 GiB | **1.75 GiB** | 2.10 GiB |" in text      # sums of the splits
    assert "| `large` | 12 × 768 | 5.00 GiB | 2.00 GiB | **7.00 GiB** | 7.75 GiB |" in text
    assert readme_tables.main([*argv, "--check"]) == 0
    sizes.write_text(SIZES.replace("large,valid,128,5,400", "large,valid,128,5,401"))
    assert readme_tables.main(argv) == 0
    assert "`small` 1,000 / 400; `large` 1,000 / 401 subwords" in readme.read_text()    # tokenizers that differ
    sizes.unlink()
    assert readme_tables.main(argv) == 0
    assert "_Missing: `results/layer_cache/sizes.csv` (run the command above)._" in readme.read_text()


@pytest.mark.parametrize("change, message", [
    (lambda t: t.replace("large,valid,128,5,400,12,768,2,2.25\n", ""), "not one row per backbone and split"),
    (lambda t: t + "large,valid,128,5,400,12,768,2,2.25\n", "not one row per backbone and split"),
    (lambda t: t.replace("large,valid,128", "large,valid,256").replace("large,train,128", "large,train,256"),
     "sizes at more than one max_length (128, 256)"),
    (lambda t: t.replace(",1.25,", ",1.2x,"), "(column gib:"),
])
def test_layer_cache_csvs_that_do_not_fit_are_one_error(tmp_path, capsys, change, message):
    sizes = tmp_path / "sizes.csv"
    sizes.write_text(change(SIZES))
    readme = readme_with(tmp_path, LAYER_CACHE)
    before = readme.read_text()
    assert readme_tables.main([str(readme), "--bench-dir", str(tmp_path / "none"), "--layer-cache", str(sizes)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "sizes.csv" in err, err
    assert readme.read_text() == before


# ---------------------------------------------------------------------------------------------- the repository's
def test_the_readme_blocks_are_the_committed_csvs():
    """README.md's budget and layer-cache blocks are what the committed CSVs render to now (as
    `bash scripts/update_readme.sh --check` verifies for every generated section), and the committed sizes are
    subwords × layers × hidden × 2 bytes, MPNet's rows included (which no test re-tokenizes)."""
    import pandas as pd

    readme = REPO / "README.md"
    budgets = [REPO / "results" / "budget" / f"{name}.csv" for name in ("minilm-l6", "mpnet-base")]
    shown = [str(path.relative_to(REPO)) for path in budgets]
    assert block(readme, BUDGET) == f"{BUDGET[0]}\n" + readme_tables.budget_section(budgets, shown)
    sizes = REPO / "results" / "layer_cache" / "sizes.csv"
    assert block(readme, LAYER_CACHE) == (f"{LAYER_CACHE[0]}\n"
                                          + readme_tables.layer_cache_section(sizes, "results/layer_cache/sizes.csv"))
    table = pd.read_csv(sizes)
    expected = table.subwords * table.layers * table.hidden * 2 / 2**30
    assert ((table.gib / expected - 1).abs() < 1e-5).all()
    assert ((table.gib_fuse_embeddings / (expected * (table.layers + 1) / table.layers) - 1).abs() < 1e-5).all()
    assert set(table.backbone) == {"minilm-l6", "mpnet-base"}
