"""Device settings a cell applies: cuDNN attention is switched off on CUDA (per-shape plan building made bf16 cells
4x slower on an H200), TF32 matmuls as `train.tf32` says, nothing changes on the CPU; the cell's Accelerator compiles
exactly when `train.compile` says so, whatever Accelerate's environment variables say."""
from __future__ import annotations

import pytest
import torch
from accelerate.utils import DynamoBackend

from paper_repro.config import TrainConfig
from paper_repro.train import device


def test_cpu_gets_no_settings_and_keeps_the_attention_backends():
    before = torch.backends.cuda.cudnn_sdp_enabled()
    assert device.configure("cpu") == {}
    assert device.configure(torch.device("cpu")) == {}
    assert torch.backends.cuda.cudnn_sdp_enabled() == before


def test_cuda_switches_cudnn_attention_off_and_says_so():
    """The flag is process-wide and settable without a GPU; the other SDPA backends stay on."""
    before = torch.backends.cuda.cudnn_sdp_enabled()
    flash, efficient = torch.backends.cuda.flash_sdp_enabled(), torch.backends.cuda.mem_efficient_sdp_enabled()
    torch.backends.cuda.enable_cudnn_sdp(True)
    try:
        assert device.configure("cuda:0") == {"sdpa_cudnn": False, "tf32_matmul": False}
        assert torch.backends.cuda.cudnn_sdp_enabled() is False
        assert (torch.backends.cuda.flash_sdp_enabled(), torch.backends.cuda.mem_efficient_sdp_enabled()) == (flash, efficient)
    finally:
        torch.backends.cuda.enable_cudnn_sdp(before)


def test_tf32_follows_the_config_at_every_cell():
    """The flag is process-wide: a cell with tf32 off after one with it on must turn it off again."""
    before = torch.backends.cuda.matmul.allow_tf32
    try:
        assert device.configure("cuda", TrainConfig(tf32=True))["tf32_matmul"] is True
        assert torch.backends.cuda.matmul.allow_tf32 is True
        assert device.configure("cuda", TrainConfig())["tf32_matmul"] is False
        assert torch.backends.cuda.matmul.allow_tf32 is False
        assert device.configure("cpu", TrainConfig(tf32=True)) == {}     # the CPU has no TF32: nothing set
        assert torch.backends.cuda.matmul.allow_tf32 is False
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


@pytest.mark.parametrize("mode", ["none", "default", "reduce-overhead", "max-autotune"])
def test_the_accelerator_compiles_as_the_config_says_not_as_the_environment_does(mode, monkeypatch):
    for key, value in {"BACKEND": "inductor", "MODE": "max-autotune", "USE_DYNAMIC": "false",
                       "USE_FULLGRAPH": "true", "USE_REGIONAL_COMPILATION": "true"}.items():
        monkeypatch.setenv(f"ACCELERATE_DYNAMO_{key}", value)    # what `accelerate config` / launch can leave
    accelerator = device.make_accelerator(TrainConfig(compile=mode), cpu=True)
    plugin = accelerator.state.dynamo_plugin
    if mode == "none":
        assert plugin.backend == DynamoBackend.NO
        model = accelerator.prepare(torch.nn.Linear(2, 2))
        assert not device.is_compiled(model)
    else:
        assert plugin.backend == DynamoBackend.INDUCTOR
        assert (plugin.mode, plugin.dynamic, plugin.fullgraph, plugin.use_regional_compilation) == (mode, True, False, False)
        model = accelerator.prepare(torch.nn.Linear(2, 2))      # compiled lazily: wrapping costs nothing here
        assert device.is_compiled(model)
    assert accelerator.step_scheduler_with_optimizer is False
