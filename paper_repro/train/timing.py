"""Wall-clock timing of device work: CUDA and MPS kernels run asynchronously, so a clock read right after
launching them measures the launch, not the work. `synchronize(device)` waits for the device's queued work
before the clock is read (`torch.cuda.synchronize` on CUDA, `torch.mps.synchronize` on MPS); on the CPU the work
is done when the call returns and it is a no-op. `now(device)` = synchronize, then `time.perf_counter()`.

Used by the training loop at the steps whose cumulative time is observed (evaluation points and the last step)
and by every timed region of the benchmarks (`bench/common.py`).
"""
from __future__ import annotations

import functools
import time
from typing import Callable

import torch


def sync_for(device: torch.device | str | None) -> Callable[[], None] | None:
    """The call that waits for `device`'s queued work: `torch.cuda.synchronize(device)` for a CUDA device,
    `torch.mps.synchronize()` for MPS, None (nothing to wait for) for the CPU or no device."""
    if device is None:
        return None
    device = torch.device(device)
    if device.type == "cuda":
        return functools.partial(torch.cuda.synchronize, device)
    if device.type == "mps":
        return torch.mps.synchronize
    return None


def synchronize(device: torch.device | str | None) -> None:
    """Wait until `device` has finished its queued work (no-op on the CPU, and on CUDA before the process has
    initialised it: nothing can be queued then, and a timed region must not pay for the initialisation)."""
    sync = sync_for(device)
    if sync is None:
        return
    if torch.device(device).type == "cuda" and not torch.cuda.is_initialized():
        return
    sync()


def now(device: torch.device | str | None = None) -> float:
    """`time.perf_counter()` after the device's queued work is done: the clock read of a timed region."""
    synchronize(device)
    return time.perf_counter()
