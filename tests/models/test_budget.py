import pytest
import torch
from transformers import BertConfig, MPNetConfig

from paper_repro.models.budget import (
    BudgetError,
    budget_table,
    budget_target,
    count_trainable,
    head_param_count,
    is_matchable,
    is_target,
    solve_knob,
)
from paper_repro.models.heads import HEADS, HeadContext, build_head

CONFIGS = {
    "tiny-bert": BertConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64, vocab_size=100),
    "tiny-mpnet": MPNetConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64, vocab_size=100),
    "minilm-l6": BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536, vocab_size=30522),
    "mpnet-base": MPNetConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, vocab_size=30527),
}
MATCHED = ["dwatt", "concat", "lstm", "attnres", "attnres_block"]


def ctx_for(kind):
    cfg = CONFIGS[kind]
    return HeadContext.from_config(cfg, cfg.num_hidden_layers)


def test_count_trainable_skips_frozen():
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    m[0].requires_grad_(False)
    assert count_trainable(m) == 4 * 2 + 2


@pytest.mark.parametrize("kind", ["tiny-bert", "tiny-mpnet"])
def test_meta_count_equals_real_count(kind):
    ctx = ctx_for(kind)
    assert budget_target(ctx) == count_trainable(build_head("deeper", ctx))
    assert head_param_count("dwatt", ctx, gamma=0.5) == count_trainable(build_head("dwatt", ctx, gamma=0.5))


def test_target_is_one_backbone_layer():
    ctx = ctx_for("minilm-l6")
    h, i = 384, 1536
    layer = 4 * (h * h + h) + 2 * 2 * h + (h * i + i) + (i * h + h)
    assert budget_target(ctx) == layer
    assert budget_target(ctx, layers=2) == 2 * layer


@pytest.mark.parametrize("kind", sorted(CONFIGS))
@pytest.mark.parametrize("name", MATCHED)
def test_solved_heads_within_tolerance(name, kind):
    ctx = ctx_for(kind)
    target = budget_target(ctx)
    options = solve_knob(name, ctx, target)
    params = head_param_count(name, ctx, **options)
    assert abs(params - target) / target <= 0.03
    knob = HEADS[name].knob
    assert knob in options
    if name == "dwatt":
        assert round(options["gamma"] * ctx.hidden_size) >= 1
    if name.startswith("attnres"):
        assert options["width"] % 4 == 0


def test_solve_keeps_other_options():
    ctx = ctx_for("tiny-bert")
    options = solve_knob("attnres", ctx, budget_target(ctx), heads=2)
    assert options["heads"] == 2 and options["width"] % 2 == 0


def test_unmatchable_and_out_of_tolerance():
    ctx = ctx_for("tiny-bert")
    target = budget_target(ctx)
    for name, options in [("last", {}), ("scalarmix", {}), ("concat", {"projection": "linear"})]:
        assert not is_matchable(name, **options)
        with pytest.raises(BudgetError):
            solve_knob(name, ctx, target, **options)
    assert is_matchable("deeper") and is_matchable("dwatt") and is_matchable("concat")
    assert solve_knob("deeper", ctx, target) == {}
    with pytest.raises(BudgetError, match="dwatt"):
        solve_knob("dwatt", ctx, 10)  # smallest dwatt is far above 10 params


def test_budget_table_rows():
    ctx = ctx_for("tiny-mpnet")
    target = budget_target(ctx)
    rows = {r["method"]: r for r in budget_table(ctx, target)}
    assert set(rows) == set(HEADS) | {"concat/linear"}
    for name in MATCHED:
        assert rows[name]["matched"] and abs(rows[name]["deviation"]) <= 0.03
        assert rows[name]["knob"] == HEADS[name].knob
    assert rows["deeper"]["note"] == "defines target" and rows["deeper"]["matched"]
    assert rows["deeper_copy"]["matched"] and rows["deeper_copy"]["deviation"] == 0 and rows["deeper_copy"]["knob"] is None
    assert rows["scalarmix"]["note"].startswith("no width knob") and not rows["scalarmix"]["matched"]
    assert rows["last"]["params"] == 0
    assert not rows["concat/linear"]["matched"] and rows["concat/linear"]["knob"] is None
    only = budget_table(ctx, target, {"scalarmix": {"layer_start": 1}})
    assert len(only) == 1 and only[0]["params"] == ctx.num_fused - 1 + 1


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_deeper_copy_is_the_target_architecture(kind):
    ctx = ctx_for(kind)
    target = budget_target(ctx)
    assert is_target("deeper") and is_target("deeper_copy") and not is_target("dwatt")
    assert is_matchable("deeper_copy")
    assert head_param_count("deeper_copy", ctx) == target
    assert head_param_count("deeper_copy", ctx, layers=2) == budget_target(ctx, layers=2)
    assert solve_knob("deeper_copy", ctx, target) == {}


@pytest.mark.parametrize("backbone", ["minilm-l6", "mpnet-base"])
def test_committed_budget_csv_is_the_solvers_output(backbone, tmp_path):
    """results/budget/<backbone>.csv (what the README's budget table is rendered from) is what the solver gives now:
    a head or solver change that moves a count fails here until `paper-repro budget --write` is rerun."""
    from pathlib import Path

    from paper_repro.models.budget import budget_csv_rows, write_budget_csv

    committed = Path(__file__).resolve().parents[2] / "results" / "budget" / f"{backbone}.csv"
    ctx = ctx_for(backbone)
    rows = budget_csv_rows(budget_table(ctx, budget_target(ctx)), backbone, ctx, 1, False, 0.03)
    write_budget_csv(rows, tmp_path / "now.csv")
    assert (tmp_path / "now.csv").read_text() == committed.read_text(), (
        f"{committed} is stale: paper-repro budget --backbone {backbone} --write results/budget/{backbone}.csv")
