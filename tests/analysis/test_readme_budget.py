"""The README's parameter-budget table: rendered from the solver's CSVs (`paper-repro budget --write`), never typed."""
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
