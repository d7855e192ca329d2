"""Settings a cell applies to its accelerator before the model runs, recorded in the manifest (`device_settings`).

CUDA: cuDNN's kernel is left out of `scaled_dot_product_attention` (flash / memory-efficient / math remain). With
bf16 autocast PyTorch prefers cuDNN attention on Hopper, and cuDNN builds an execution plan for every new sequence
length; a cell's batches come in dozens of lengths (padded to the longest window of each batch), so a bf16 MiniLM
cell on an H200 spent most of its steps building plans: 98 ms per training step against 25 ms in fp32, and its
first dev evaluation took 3.6 s against 0.4 s; with cuDNN attention off, 18 ms and 0.3 s (README "On a GPU"). The
other kernels need no per-shape plan. Nothing changes on the CPU.
"""
from __future__ import annotations

from typing import Any

import torch


def configure(device: torch.device | str) -> dict[str, Any]:
    """Apply the settings for `device`; returns what was set (empty on the CPU)."""
    if torch.device(device).type != "cuda":
        return {}
    torch.backends.cuda.enable_cudnn_sdp(False)
    return {"sdpa_cudnn": False}
