"""The Accelerate training loop: a fixed optimizer-step budget, per-group learning rates, eval callbacks.

The same code runs on CPU, one GPU, or several processes under `accelerate launch`.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from accelerate import Accelerator
from torch.nn import functional as F
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from paper_repro.config import TrainConfig
from paper_repro.train.features import IGNORE_INDEX
from paper_repro.train.timing import synchronize


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite: the cell stops and writes no result."""


@dataclass
class TrainState:
    step: int = 0
    examples_seen: int = 0          # training windows consumed, all processes together
    train_seconds: float = 0.0      # optimizer-step time, evaluation excluded
    loss_since_eval: list[float] = field(default_factory=list)


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean word-level cross entropy; logits [B, W, C], labels [B, W] with IGNORE_INDEX padding."""
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX)


def make_optimizer(model, config: TrainConfig, steps: int, warmup: int) -> tuple[torch.optim.Optimizer, object]:
    """Fused AdamW over the model's parameter groups and a linear schedule: `warmup` steps up, then down to 0
    at `steps` (the cell's resolved budget, `config.resolve_steps`). The scheduler is meant to be stepped once
    per optimizer step, so the Accelerator must be built with `step_scheduler_with_optimizer=False`."""
    groups = model.parameter_groups(config.backbone_lr, config.head_lr, config.weight_decay)
    # the fused kernel (CPU and CUDA) is ~3x faster than the per-tensor loop on a 22M-parameter encoder
    optimizer = torch.optim.AdamW(groups, fused=True)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup, steps)
    return optimizer, scheduler


def check_scheduler(scheduler, accelerator: Accelerator) -> None:
    """Refuse a scheduler that Accelerate would step once per process per optimizer step.

    A scheduler prepared by an Accelerator built with ``step_scheduler_with_optimizer=True`` (the default) and
    ``split_batches=False`` runs ``num_processes`` scheduler steps per ``scheduler.step()``: with 2 processes
    the linear schedule would reach 0 at half the budget. With ``step_scheduler_with_optimizer=False`` the
    prepared scheduler steps exactly once per call, i.e. once per optimizer step in every process.
    """
    if accelerator.num_processes > 1 and getattr(scheduler, "step_with_optimizer", False) \
            and not getattr(scheduler, "split_batches", False):
        raise ValueError(
            f"the scheduler would step {accelerator.num_processes} times per optimizer step; "
            "build the Accelerator with step_scheduler_with_optimizer=False"
        )


def log_line(state: TrainState, steps: int, loss: float, optimizer) -> None:
    """One plain progress line on stderr (flushed): step, loss, head lr, steps/s, ETA of the training steps."""
    rate = state.step / state.train_seconds if state.train_seconds > 0 else float("nan")
    eta = (steps - state.step) / rate if rate > 0 else float("nan")
    lrs = [group["lr"] for group in optimizer.param_groups]
    print(f"[train] step {state.step}/{steps} loss {loss:.4f} lr {max(lrs):.3g} {rate:.2f} steps/s "
          f"eta {eta:.0f}s", file=sys.stderr, flush=True)


def train(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    loader: torch.utils.data.DataLoader,
    accelerator: Accelerator,
    config: TrainConfig,
    steps: int,
    eval_steps: list[int],
    on_eval: Callable[[TrainState, float], None],
    progress: bool = False,
    log_every: int | None = None,
) -> TrainState:
    """Run `steps` optimizer steps, cycling over `loader`; call `on_eval(state, mean_loss)` at each eval step.
    `state.train_seconds` includes the device's queued work at every eval step and the last step (synchronised
    there on CUDA/MPS, `train/timing.py`): with every step an eval step, per-step times (the benchmarks).

    `progress` (a terminal): a tqdm bar. Otherwise (Slurm, redirected output) the main process logs one plain
    line every `log_every` steps (default $PAPER_REPRO_LOG_EVERY or 50; 0 = silent) and at the last step:
    step, mean loss since the last line, lr of the head group, steps/s and ETA — no `\r` frames in logs."""
    check_scheduler(scheduler, accelerator)
    state = TrainState()
    pending = sorted(eval_steps)
    observed = set(eval_steps) | {steps}   # steps whose cumulative time is read: the device's queued work counts
    model.train()
    bar = tqdm(total=steps, desc="train", leave=False, disable=not progress)
    if log_every is None:
        log_every = int(os.environ.get("PAPER_REPRO_LOG_EVERY", "50"))
    log = not progress and log_every > 0 and accelerator.is_main_process
    logged_losses: list[torch.Tensor] = []
    while state.step < steps:
        for batch in loader:
            started = time.perf_counter()
            num_words = batch["labels"].shape[1]
            logits = model(batch["input_ids"], batch["attention_mask"], batch["word_index"], num_words)
            loss = cross_entropy(logits, batch["labels"])
            if not torch.isfinite(loss):
                raise NonFiniteLossError(f"non-finite training loss {loss.item()} at step {state.step + 1}")
            accelerator.backward(loss)
            grad_norm = None
            if config.max_grad_norm > 0:
                grad_norm = accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            if not accelerator.optimizer_step_was_skipped:  # fp16 overflow only: as Accelerate's wrapper does
                scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            state.examples_seen += len(batch["window_id"]) * accelerator.num_processes
            state.loss_since_eval.append(loss.detach())
            if state.step in observed:     # CUDA/MPS run asynchronously: finish this step's kernels (CPU: no-op)
                synchronize(accelerator.device)
            state.train_seconds += time.perf_counter() - started
            bar.update(1)
            if accelerator.trackers:  # an experiment tracker (train.log_with): loss, lr, grad norm per step
                values = {"train/loss": float(loss), "train/lr": max(g["lr"] for g in optimizer.param_groups)}
                if grad_norm is not None:
                    values["train/grad_norm"] = float(grad_norm)
                accelerator.log(values, step=state.step)
            if log:
                logged_losses.append(loss.detach())
                if state.step % log_every == 0 or state.step == steps:
                    log_line(state, steps, float(torch.stack(logged_losses).mean()), optimizer)
                    logged_losses = []
            if pending and state.step == pending[0]:
                pending.pop(0)
                losses = accelerator.reduce(torch.stack(state.loss_since_eval), reduction="mean")
                on_eval(state, float(losses.mean()))
                state.loss_since_eval = []
            if state.step >= steps:
                break
    bar.close()
    return state


def close_process_group() -> None:
    """Destroy the default process group if one is up (a cell under `accelerate launch`). A rank that exits with
    the group alive can abort ("terminate called without an active exception", SIGABRT) while gloo's threads still
    run, which turns a finished cell into a failed launch; seen on a loaded 2-core machine."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
