"""The README's tables that come from our commands' CSVs, never typed: the parameter budget (`paper-repro budget
--write`, the solver's output) and the frozen track's layer-cache sizes (`python -m paper_repro.train.layer_cache
--write`)."""
from __future__ import annotations

from pathlib import Path

from transformers import BertConfig

from paper_repro.analysis import readme_tables
from paper_repro.models.budget import budget_csv_rows, budget_table, budget_target, write_budget_csv
from paper_repro.models.heads import HeadContext


def ctx_target(layers: int, hidden: int) -> tuple[HeadContext, int]:
    config = BertConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4, intermediate_size=4 * hidden,
                        vocab_size=100)
    ctx = HeadContext.from_config(config, layers)
    return ctx, budget_target(ctx)


def solver_csv(path: Path, name: str, layers: int, hidden: int) -> Path:
    ctx, target = ctx_target(layers, hidden)
    write_budget_csv(budget_csv_rows(budget_table(ctx, target), name, ctx, 1, False, 0.03), path)
    return path


def test_budget_block_from_the_solvers_csv(tmp_path):
    small = solver_csv(tmp_path / "results" / "budget" / "small.csv", "small", 3, 32)
    large = solver_csv(tmp_path / "results" / "budget" / "large.csv", "large", 4, 64)
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{readme_tables.BEGIN}\n{readme_tables.END}\n\n"
                      f"{readme_tables.BUDGET_BEGIN}\nSTALE 1,774,464\n{readme_tables.BUDGET_END}\n\nafter\n")
    argv = [str(readme), "--bench-dir", str(tmp_path / "none"), "--budget", str(small), "--budget", str(large)]
    assert readme_tables.main(argv) == 0
    text = readme.read_text()
    block = text[text.index(readme_tables.BUDGET_BEGIN):text.index(readme_tables.BUDGET_END)]
    assert "STALE" not in block and text.endswith("after\n")
    assert "`results/budget/small.csv`, `results/budget/large.csv`" in block       # named relative to the README
    assert "| method | `small` (3 × 32) knob | params | deviation | `large` (4 × 64) knob | params | deviation |" in block
    rows = {line.split(" | ")[0][2:]: line for line in block.splitlines() if line.startswith("| `")}
    assert list(rows) == ["`last`", "`deeper`", "`deeper_copy`", "`concat`", "`dwatt`", "`scalarmix`", "`lstm`",
                          "`attnres`", "`attnres_block`", "`concat/linear`"]      # the solver's order
    target = next(r for r in budget_table(*ctx_target(3, 32)) if r["method"] == "deeper")["params"]
    assert f"| `deeper` | – | {target:,} | 0 (the target) |" in rows["`deeper`"]
    assert "unmatched (budget control)" in rows["`scalarmix`"] and "(no knob" in rows["`concat/linear`"]
    gamma = next(r for r in budget_table(*ctx_target(3, 32)) if r["method"] == "dwatt")["knob_value"]
    assert f"| γ {gamma:.3f} |" in rows["`dwatt`"]
    assert f"DWAtt's γ at this budget: {gamma:.2f} on `small`" in block and "the paper's is 0.5" in block
    assert readme_tables.main([*argv, "--check"]) == 0
    small.write_text(small.read_text().replace(f",{target},{target},0,True,defines target",
                                               f",{target + 1},{target},0,True,defines target"))
    assert readme_tables.main([*argv, "--check"]) == 1                 # the CSV moved: the README is out of date


def test_a_missing_budget_csv_says_how_to_write_it(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"{readme_tables.BEGIN}\n{readme_tables.END}\n{readme_tables.BUDGET_BEGIN}\n"
                      f"{readme_tables.BUDGET_END}\n")
    missing = tmp_path / "results" / "budget" / "minilm-l6.csv"
    assert readme_tables.main([str(readme), "--bench-dir", str(tmp_path / "none"), "--budget", str(missing)]) == 0
    assert ("_Missing: `results/budget/minilm-l6.csv` (run `paper-repro budget --backbone minilm-l6 --write "
            "results/budget/minilm-l6.csv`)._") in readme.read_text()


def test_budget_without_its_markers_is_one_error(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"{readme_tables.BEGIN}\n{readme_tables.END}\n")
    small = solver_csv(tmp_path / "small.csv", "small", 3, 32)
    assert readme_tables.main([str(readme), "--bench-dir", str(tmp_path / "none"), "--budget", str(small)]) == 2
    assert "`<!-- BEGIN budget -->`" in capsys.readouterr().err and "BEGIN budget" not in readme.read_text()


def test_budget_csvs_of_other_budgets_or_not_a_budget_csv_are_one_error(tmp_path, capsys):
    readme = tmp_path / "README.md"
    original = f"{readme_tables.BEGIN}\n{readme_tables.END}\n{readme_tables.BUDGET_BEGIN}\n{readme_tables.BUDGET_END}\n"
    readme.write_text(original)
    small = solver_csv(tmp_path / "small.csv", "small", 3, 32)
    ctx, _ = ctx_target(4, 64)
    two = tmp_path / "two_layers.csv"
    write_budget_csv(budget_csv_rows(budget_table(ctx, budget_target(ctx, layers=2)), "large", ctx, 2, False, 0.03), two)
    argv = [str(readme), "--bench-dir", str(tmp_path / "none"), "--budget", str(small)]
    assert readme_tables.main([*argv, "--budget", str(two)]) == 2
    assert "solved for different budgets" in capsys.readouterr().err
    (tmp_path / "other.csv").write_text("method,params\ndwatt,5\n")
    assert readme_tables.main([*argv, "--budget", str(tmp_path / "other.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "other.csv: not a `paper-repro budget --write` table" in err
    assert readme.read_text() == original                                        # nothing written


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
    readme = tmp_path / "README.md"
    readme.write_text(f"{readme_tables.BEGIN}\n{readme_tables.END}\n{readme_tables.LAYER_CACHE_BEGIN}\nSTALE\n"
                      f"{readme_tables.LAYER_CACHE_END}\n")
    argv = [str(readme), "--bench-dir", str(tmp_path / "none"), "--layer-cache", str(sizes)]
    assert readme_tables.main(argv) == 0
    text = readme.read_text()
    block = text[text.index(readme_tables.LAYER_CACHE_BEGIN):text.index(readme_tables.LAYER_CACHE_END)]
    assert "STALE" not in block and "from `results/layer_cache/sizes.csv`" in block
    assert ("train / valid splits at max_length 128: 1,000 / 400 subwords, every backbone's tokenizer gives the same "
            "counts.") in block
    assert "| backbone | layers × hidden | train | valid | all | all, with `fuse_embeddings` |" in block
    assert "| `small` | 6 × 384 | 1.25 GiB | 0.50 GiB | **1.75 GiB** | 2.10 GiB |" in block      # sums of the splits
    assert "| `large` | 12 × 768 | 5.00 GiB | 2.00 GiB | **7.00 GiB** | 7.75 GiB |" in block
    assert readme_tables.main([*argv, "--check"]) == 0
    sizes.write_text(SIZES.replace("large,valid,128,5,400", "large,valid,128,5,401"))
    assert readme_tables.main(argv) == 0
    assert "`small` 1,000 / 400; `large` 1,000 / 401 subwords" in readme.read_text()    # tokenizers that differ
    sizes.unlink()
    assert readme_tables.main(argv) == 0
    assert "_Missing: `results/layer_cache/sizes.csv` (run `python -m paper_repro.train.layer_cache" in readme.read_text()
