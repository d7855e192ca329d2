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
other kernels need no per-shape plan. TF32 (`train.tf32`: fp32 matmuls and cuDNN, whose PyTorch default is on) is
set on or off at every cell: the flags are global to the process, and a sweep may run cells of both kinds. Nothing
changes on the CPU.
"""
from __future__ import annotations

from typing import Any

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import TorchDynamoPlugin, is_compiled_module

from paper_repro.config import TrainConfig


def dynamo_plugin(config: TrainConfig) -> TorchDynamoPlugin:
    """`train.compile` as Accelerate's plugin: "none" -> no compilation; "default" -> inductor with dynamic shapes (a
    cell's batches have dozens of lengths and word counts: one graph, not one per shape). Every field is set, so
    Accelerate reads none of its ACCELERATE_DYNAMO_* environment variables. Inductor's `fallback_random` is passed
    with this compile only (not set process-wide): dropout draws from torch's own generator as in eager mode, where
    inductor's Philox stream would give a compiled cell other dropout masks than its eager twin at the same seed (a
    different sample, not float noise)."""
    if config.compile == "none":
        return TorchDynamoPlugin(backend="no", mode="default", fullgraph=False, dynamic=False,
                                 use_regional_compilation=False)
    if config.compile != "default":   # validate_cell refuses the rest; this guards direct callers
        raise ValueError(f"train.compile: only none and default are supported, got {config.compile!r}")
    return TorchDynamoPlugin(backend="inductor", mode="default", fullgraph=False, dynamic=True,
                             use_regional_compilation=False, options={"fallback_random": True})


def make_accelerator(config: TrainConfig, **kwargs: Any) -> Accelerator:
    """A fresh Accelerator for one cell: `train.mixed_precision`, `train.compile`, and the scheduler stepped once per
    optimizer step (`step_scheduler_with_optimizer=False`: Accelerate's default would end the schedule at
    1/num_processes of the budget). `kwargs`: trackers (`log_with`, `project_dir`).

    Accelerate keeps its state process-wide: a sweep process running cells of different mixed precision would
    fail at the second cell ("AcceleratorState has already been initialized"). The previous cell's accelerator
    state is forgotten first (not the process group: PartialState stays)."""
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    if config.compile != "none":
        # dynamo caches graphs per code object (FusionTagger.forward), not per model, and past its recompile limit it
        # runs the frame eagerly with a warning: a sweep process compiling cell after cell would go quietly eager.
        # Forget the previous cells' graphs, count this cell's (`compile_stats`), and fail loudly at the limit.
        import torch._dynamo

        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()
        if hasattr(torch._dynamo.config, "fail_on_recompile_limit_hit"):   # torch >= 2.6 (process-wide)
            torch._dynamo.config.fail_on_recompile_limit_hit = True
    accelerator = Accelerator(mixed_precision=config.mixed_precision, step_scheduler_with_optimizer=False,
                              dynamo_plugin=dynamo_plugin(config), **kwargs)
    set_tf32(accelerator.device, config)   # after: Accelerate turns TF32 on for a compiled fp32 model on CUDA
    return accelerator


def compile_stats() -> dict[str, int]:
    """What dynamo compiled since `make_accelerator` (for the manifest): unique graphs, and frames it captured."""
    import torch._dynamo

    stats = torch._dynamo.utils.counters["stats"]
    return {"unique_graphs": int(stats.get("unique_graphs", 0)), "calls_captured": int(stats.get("calls_captured", 0))}


def set_tf32(device: torch.device | str, config: TrainConfig | None) -> bool:
    """CUDA: TF32 for fp32 matmuls and cuDNN (the `lstm` head's RNN) as `train.tf32` says, set at every cell (the
    flags are process-wide and PyTorch's cuDNN default is on); returns the value set. Nothing on the CPU."""
    tf32 = bool(config.tf32) if config is not None else False
    if torch.device(device).type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
    return tf32


def is_compiled(model: torch.nn.Module) -> bool:
    """Whether `model` (as `accelerator.prepare` returned it) runs through torch.compile."""
    return bool(is_compiled_module(model))


def configure(device: torch.device | str, config: TrainConfig | None = None) -> dict[str, Any]:
    """Apply the settings for `device` (and `config.tf32`: off without a config); returns what was set (empty on
    the CPU)."""
    if torch.device(device).type != "cuda":
        return {}
    torch.backends.cuda.enable_cudnn_sdp(False)
    return {"sdpa_cudnn": False, "tf32": set_tf32(device, config)}
