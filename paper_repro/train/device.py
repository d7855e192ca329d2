"""The cell's Accelerator and the settings it applies to its device before the model runs, recorded in the manifest
(`device_settings`).

`make_accelerator` builds the Accelerator a cell (and every bench that times a cell's steps) trains with, from the
config alone: mixed precision and `torch.compile` (`train.compile`, Accelerate's dynamo plugin, always given
explicitly: an `accelerate config` or `ACCELERATE_DYNAMO_*` variable in the user's environment must not compile a
cell whose run id says it is eager).

CUDA: cuDNN's kernel is left out of `scaled_dot_product_attention` (flash / memory-efficient / math remain). With
bf16 autocast PyTorch prefers cuDNN attention on Hopper, and cuDNN builds an execution plan for every new sequence
length; a cell's batches come in dozens of lengths (padded to the longest window of each batch), so a bf16 MiniLM
cell on an H200 spent most of its steps building plans: 98 ms per training step against 25 ms in fp32, and its
first dev evaluation took 3.6 s against 0.4 s; with cuDNN attention off, 18 ms and 0.3 s (README "On a GPU"). The
other kernels need no per-shape plan. TF32 matmuls (`train.tf32`, torch.backends.cuda.matmul.allow_tf32) are set
on or off at every cell: the flag is global to the process, and a sweep may run cells of both kinds; cuDNN's own
TF32 flag (the `lstm` head's RNN) keeps PyTorch's default. Nothing changes on the CPU.
"""
from __future__ import annotations

from typing import Any

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import TorchDynamoPlugin, is_compiled_module

from paper_repro.config import TrainConfig


def dynamo_plugin(config: TrainConfig) -> TorchDynamoPlugin:
    """`train.compile` as Accelerate's plugin: "none" -> no compilation; a torch.compile mode -> inductor at that
    mode with dynamic shapes (a cell's batches have dozens of lengths and word counts: one graph, not one per
    shape). Every field is set, so Accelerate reads none of its ACCELERATE_DYNAMO_* environment variables."""
    if config.compile == "none":
        return TorchDynamoPlugin(backend="no", mode="default", fullgraph=False, dynamic=False,
                                 use_regional_compilation=False)
    import torch._inductor.config as inductor_config

    # dropout draws from torch's own generator as in eager mode (inductor's Philox stream would give every compiled
    # cell other dropout masks than its eager twin at the same seed: a different sample, not float noise)
    inductor_config.fallback_random = True
    return TorchDynamoPlugin(backend="inductor", mode=config.compile, fullgraph=False, dynamic=True,
                             use_regional_compilation=False)


def make_accelerator(config: TrainConfig, **kwargs: Any) -> Accelerator:
    """A fresh Accelerator for one cell: `train.mixed_precision`, `train.compile`, and the scheduler stepped once per
    optimizer step (`step_scheduler_with_optimizer=False`: Accelerate's default would end the schedule at
    1/num_processes of the budget). `kwargs`: trackers (`log_with`, `project_dir`).

    Accelerate keeps its state process-wide: a sweep process running cells of different mixed precision would
    fail at the second cell ("AcceleratorState has already been initialized"). The previous cell's accelerator
    state is forgotten first (not the process group: PartialState stays)."""
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    return Accelerator(mixed_precision=config.mixed_precision, step_scheduler_with_optimizer=False,
                       dynamo_plugin=dynamo_plugin(config), **kwargs)


def is_compiled(model: torch.nn.Module) -> bool:
    """Whether `model` (as `accelerator.prepare` returned it) runs through torch.compile."""
    return bool(is_compiled_module(model))


def configure(device: torch.device | str, config: TrainConfig | None = None) -> dict[str, Any]:
    """Apply the settings for `device` (and `config.tf32`: off without a config); returns what was set (empty on
    the CPU)."""
    if torch.device(device).type != "cuda":
        return {}
    tf32 = bool(config.tf32) if config is not None else False
    torch.backends.cuda.enable_cudnn_sdp(False)
    torch.backends.cuda.matmul.allow_tf32 = tf32
    return {"sdpa_cudnn": False, "tf32_matmul": tf32}
