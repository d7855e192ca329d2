"""Tests for paper_repro.train.loop: optimizer groups, schedule, clipping, step budget, non-finite losses."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from accelerate import Accelerator

from paper_repro.config import CellConfig, TrainConfig, apply_overrides
from paper_repro.data.conll import LABELS, load_conll03
from paper_repro.models.backbone import load_backbone
from paper_repro.models.tagger import build_tagger
from paper_repro.train.cell import run_cell
from paper_repro.train.features import Collator, WindowDataset, tokenize_split
from paper_repro.train.loop import NonFiniteLossError, check_scheduler, cross_entropy, make_optimizer, train


@pytest.fixture(scope="module")
def backbone(tiny_backbone_dir):
    return load_backbone(str(tiny_backbone_dir))


@pytest.fixture(scope="module")
def train_features(tiny_conll_dir, backbone):
    return tokenize_split(load_conll03(tiny_conll_dir)["train"], backbone.tokenizer, 24)


def tagger(backbone, head="last"):
    torch.manual_seed(0)
    model_config = apply_overrides(CellConfig(), {"model.head.name": head, "model.dropout": 0.0}).model
    return build_tagger(copy.deepcopy(backbone.model), model_config, num_labels=len(LABELS))[0]


def setup(backbone, features, config: TrainConfig, head="last", warmup=0):
    accelerator = Accelerator(cpu=True, step_scheduler_with_optimizer=False)  # as run_cell builds it
    model = tagger(backbone, head)
    optimizer, scheduler = make_optimizer(model, config, config.steps, warmup)
    loader = torch.utils.data.DataLoader(
        WindowDataset(features), batch_size=config.batch_size, shuffle=True,
        generator=torch.Generator().manual_seed(0), collate_fn=Collator(backbone.tokenizer.pad_token_id),
    )
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    return accelerator, model, optimizer, loader, scheduler


def test_parameter_groups_and_learning_rates(backbone):
    config = TrainConfig(backbone_lr=3e-5, head_lr=2e-3, weight_decay=0.05, steps=8)
    model = tagger(backbone, "dwatt")
    optimizer, scheduler = make_optimizer(model, config, 8, 2)
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert set(groups) == {"backbone", "backbone_no_decay", "head", "head_no_decay"}
    assert {n: g["initial_lr"] for n, g in groups.items()} == {
        "backbone": 3e-5, "backbone_no_decay": 3e-5, "head": 2e-3, "head_no_decay": 2e-3}
    assert {n: g["weight_decay"] for n, g in groups.items()} == {
        "backbone": 0.05, "backbone_no_decay": 0.0, "head": 0.05, "head_no_decay": 0.0}
    # every trainable parameter is in exactly one group, on the right side
    grouped = {id(p): name for name, g in groups.items() for p in g["params"]}
    assert len(grouped) == sum(len(g["params"]) for g in groups.values())
    assert set(grouped) == {id(p) for p in model.parameters() if p.requires_grad}
    for p in model.backbone.parameters():
        assert grouped[id(p)].startswith("backbone")
    for module in (model.head, model.classifier):
        for p in module.parameters():
            assert grouped[id(p)].startswith("head")
    # by role, not rank (tests/models/test_tagger.py has the full rule): DWAtt's grouped biases are 2-D
    assert model.head.values.U_bias.ndim == 2 and grouped[id(model.head.values.U_bias)] == "head_no_decay"
    assert grouped[id(model.head.values.U)] == "head" and grouped[id(model.classifier.weight)] == "head"
    # linear warmup to the configured peaks (2 of 8 steps), then linear decay to 0
    lrs = []
    for _ in range(config.steps):
        lrs.append({n: g["lr"] for n, g in zip(groups, optimizer.param_groups)})
        optimizer.step()
        scheduler.step()
    assert lrs[0]["head"] == 0.0
    assert lrs[2]["head"] == pytest.approx(2e-3) and lrs[2]["backbone"] == pytest.approx(3e-5)
    assert lrs[5]["head"] == pytest.approx(2e-3 * 3 / 6)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0)


def test_run_cell_optimizer_lrs_are_configured(tiny_cell_config, tmp_path):
    """The cell's optimizer carries the configured per-group peaks (read back via `initial_lr`)."""
    config = tiny_cell_config(tmp_path, "train.backbone_lr=1e-4", "train.head_lr=3e-3")
    model = build_tagger(copy.deepcopy(load_backbone(config.model.backbone).model), config.model, len(LABELS))[0]
    optimizer, _ = make_optimizer(model, config.train, config.train.steps, 0)
    peaks = {g["name"]: g["initial_lr"] for g in optimizer.param_groups}
    assert peaks["backbone"] == 1e-4 and peaks["head"] == 3e-3


def grad_norms_at_step(optimizer) -> list[float]:
    """Record the total gradient norm every time the optimizer steps (after any clipping)."""
    norms: list[float] = []

    def hook(opt, args, kwargs):
        grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))

    optimizer.register_step_pre_hook(hook)
    return norms


@pytest.mark.parametrize("max_grad_norm", [1e-3, 0.0])
def test_gradient_clipping(backbone, train_features, max_grad_norm):
    config = TrainConfig(steps=3, batch_size=4, max_grad_norm=max_grad_norm, head_lr=1e-3)
    accelerator, model, optimizer, loader, scheduler = setup(backbone, train_features, config)
    norms = grad_norms_at_step(optimizer.optimizer)
    train(model, optimizer, scheduler, loader, accelerator, config, config.steps, [3], lambda state, loss: None)
    assert len(norms) == 3
    if max_grad_norm:
        assert max(norms) <= max_grad_norm * 1.01
    else:
        assert min(norms) > 1e-2  # unclipped gradients of a random model are far larger


def test_train_step_budget_and_eval_callback(backbone, train_features):
    config = TrainConfig(steps=23, batch_size=4)  # more steps than one pass over the windows
    assert len(train_features.windows) < config.steps * config.batch_size
    accelerator, model, optimizer, loader, scheduler = setup(backbone, train_features, config)
    calls = []
    state = train(model, optimizer, scheduler, loader, accelerator, config, config.steps, [20, 1, 5, 23],
                  lambda s, loss: calls.append((s.step, loss, model.training)))
    assert state.step == 23 and scheduler.scheduler.last_epoch == 23
    assert [c[0] for c in calls] == [1, 5, 20, 23]
    assert all(math.isfinite(c[1]) and c[1] > 0 for c in calls)
    windows = len(train_features.windows)
    per_epoch = -(-windows // config.batch_size)
    full, rest = divmod(config.steps, per_epoch)
    assert state.examples_seen == full * windows + min(rest * config.batch_size, windows)
    assert state.train_seconds > 0 and state.loss_since_eval == []


def test_cross_entropy_ignores_padding():
    logits = torch.tensor([[[10.0, 0.0], [0.0, 10.0], [5.0, 5.0]]])
    labels = torch.tensor([[0, 1, -100]])
    expected = torch.nn.functional.cross_entropy(logits[0, :2], labels[0, :2])
    assert cross_entropy(logits, labels) == pytest.approx(float(expected))


def test_non_finite_loss_stops_the_cell(tiny_cell_config, tmp_path):
    # a huge head learning rate blows the classifier up within a few steps: a real NaN, no mock
    config = tiny_cell_config(tmp_path, "train.head_lr=1e30", "train.step_rule=fixed", "train.warmup_steps=0", "train.steps=6")
    with pytest.raises(NonFiniteLossError, match="non-finite training loss"):
        run_cell(config)
    results = tmp_path / "results"
    assert not results.exists() or not [p for p in results.rglob("*") if p.is_file()]


def test_non_finite_backbone_lr(tiny_cell_config, tmp_path):
    config = tiny_cell_config(tmp_path, "train.backbone_lr=1e20", "train.step_rule=fixed", "train.warmup_steps=0", "train.steps=6")
    with pytest.raises(NonFiniteLossError):
        run_cell(config)
    assert not (tmp_path / "results").exists()


def test_check_scheduler_refuses_a_per_process_scheduler():
    """Accelerate's default wrapper steps the schedule num_processes times per call; train() refuses it (the
    2-process run is in tests/train/test_distributed.py)."""
    from types import SimpleNamespace

    from accelerate.scheduler import AcceleratedScheduler
    from transformers import get_linear_schedule_with_warmup

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    wrap = lambda **kw: AcceleratedScheduler(get_linear_schedule_with_warmup(optimizer, 1, 4), optimizer, **kw)  # noqa: E731
    two, one = SimpleNamespace(num_processes=2), SimpleNamespace(num_processes=1)
    with pytest.raises(ValueError, match="step_scheduler_with_optimizer=False"):
        check_scheduler(wrap(step_with_optimizer=True), two)
    check_scheduler(wrap(step_with_optimizer=False), two)
    check_scheduler(wrap(step_with_optimizer=True, split_batches=True), two)
    check_scheduler(wrap(step_with_optimizer=True), one)
    check_scheduler(get_linear_schedule_with_warmup(optimizer, 1, 4), two)  # unprepared: stepped as called


def test_plain_progress_lines_off_a_terminal(backbone, train_features, capsys):
    """Without a TTY (progress=False) the loop logs one line every `log_every` steps and at the end, no \\r."""
    config = TrainConfig(steps=5, batch_size=4, warmup_steps=1)
    accelerator, model, optimizer, loader, scheduler = setup(backbone, train_features, config)
    train(model, optimizer, scheduler, loader, accelerator, config, config.steps, [5], lambda s, loss: None,
          progress=False, log_every=2)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("[train]")]
    assert [line.split()[2] for line in lines] == ["2/5", "4/5", "5/5"]
    assert all("loss" in line and "steps/s" in line and "eta" in line for line in lines)
    assert "\r" not in err
