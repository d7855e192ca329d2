"""The benchmarks' clock (`paper_repro/train/timing.py`, re-exported by `bench/common.py`): the device is
synchronised before each clock read on CUDA/MPS, and nothing is waited for on the CPU. Real calls, no mocks: the
CPU path runs here; which synchronisation a CUDA or MPS device selects is checked without a GPU (and run when
one is present)."""
from __future__ import annotations

import functools
import sys
import time
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from paper_repro.train.timing import now, sync_for, synchronize  # noqa: E402


def test_selects_the_devices_synchronisation():
    assert sync_for(None) is None
    assert sync_for("cpu") is None and sync_for(torch.device("cpu")) is None
    cuda = sync_for("cuda:1")
    assert isinstance(cuda, functools.partial) and cuda.func is torch.cuda.synchronize
    assert cuda.args == (torch.device("cuda:1"),)
    assert sync_for(torch.device("cuda")).func is torch.cuda.synchronize
    assert sync_for("mps") is torch.mps.synchronize


def test_cpu_path_runs_and_the_clock_advances():
    synchronize("cpu")
    synchronize(None)
    first = now("cpu")
    x = torch.randn(64, 64)
    (x @ x).sum()
    assert now(torch.device("cpu")) >= first and now() >= first


def test_cuda_before_initialisation_waits_for_nothing():
    """An uninitialised CUDA context has no queued work: synchronize must not initialise it (its cost would land
    in the timed region), nor fail on a CPU-only build."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        pytest.skip("CUDA already initialised in this process")
    synchronize("cuda")
    assert not torch.cuda.is_initialized()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_region_includes_the_queued_kernels():
    device = torch.device("cuda")
    x = torch.randn(4096, 4096, device=device)
    synchronize(device)
    started = now(device)
    for _ in range(20):
        x = x @ x / 4096
    launched = time.perf_counter() - started    # kernels queued, not necessarily run
    finished = now(device) - started
    assert finished >= launched


def test_bench_common_uses_the_synchronising_clock():
    from bench import common

    assert common.now is now and common.synchronize is synchronize
    times: dict[str, float] = {}
    with common.stopwatch(times, "x_s", torch.device("cpu")):
        torch.ones(8).sum()
    with common.stopwatch(times, "x_s"):
        pass
    assert times["x_s"] >= 0
    assert common.device_of(torch.nn.Linear(2, 2)) == torch.device("cpu")
    assert common.device_of(torch.nn.Identity()) is None
    assert common.default_device().type in ("cpu", "cuda", "mps")


def test_training_loop_synchronises_at_observed_steps(tiny_cell_config, tmp_path):
    """The product loop reads its step clock after the device's work at eval steps and the last step: on the CPU
    (no-op) it still runs and times every step that the benchmarks observe."""
    from bench import common

    from paper_repro.train import cell, features

    config = tiny_cell_config(tmp_path)
    splits = cell.load_splits(config.data.data_dir, config.data.hub_id, config.data.convert_iob1, config.data.strict_iob2)
    pristine = cell.pristine_backbone(config.model.backbone, config.model.revision)
    train_idx, _ = cell.training_indices(config, splits["train"])
    train_features = features.cached_features(splits["train"], pristine.tokenizer, config.model.max_length).select(train_idx)
    batches = common.train_batches(config, train_features, 3, pristine.tokenizer.pad_token_id)
    model, optimizer, scheduler, accelerator, _ = common.build_trainable(pristine.model, config, len(batches))
    seconds = common.timed_train_steps(model, optimizer, scheduler, accelerator, config, batches)
    assert len(seconds) == 3 and all(s > 0 for s in seconds)
