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
        assert device.configure("cuda:0") == {"sdpa_cudnn": False, "tf32": False}
        assert torch.backends.cuda.cudnn_sdp_enabled() is False
        assert (torch.backends.cuda.flash_sdp_enabled(), torch.backends.cuda.mem_efficient_sdp_enabled()) == (flash, efficient)
    finally:
        torch.backends.cuda.enable_cudnn_sdp(before)


def test_tf32_follows_the_config_at_every_cell():
    """The flags are process-wide: a cell with tf32 off after one with it on must turn them off again, cuDNN's
    (on by PyTorch's default: the `lstm` head's RNN) included."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        assert device.configure("cuda", TrainConfig(tf32=True))["tf32"] is True
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (True, True)
        assert device.configure("cuda", TrainConfig())["tf32"] is False
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (False, False)
        assert device.configure("cpu", TrainConfig(tf32=True)) == {}     # the CPU has no TF32: nothing set
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (False, False)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@pytest.mark.parametrize("mode", ["none", "default"])
def test_the_accelerator_compiles_as_the_config_says_not_as_the_environment_does(mode, monkeypatch):
    import torch._inductor.config as inductor_config

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
        assert plugin.to_kwargs()["options"] == {"fallback_random": True}   # per compile, not process-wide
        model = accelerator.prepare(torch.nn.Linear(2, 2))      # compiled lazily: wrapping costs nothing here
        assert device.is_compiled(model)
    assert inductor_config.fallback_random is False
    assert accelerator.step_scheduler_with_optimizer is False


def test_only_the_checked_compile_modes_are_built():
    with pytest.raises(ValueError, match="only none and default"):
        device.dynamo_plugin(TrainConfig(compile="max-autotune"))


def test_each_compiling_cell_starts_from_fresh_dynamo_caches():
    """dynamo caches graphs per code object, not per model: without a reset, a sweep process's ninth compiled
    cell would hit the recompile limit and run eager while its manifest says compiled."""
    import torch._dynamo

    class Doubler(torch.nn.Module):
        def forward(self, x):
            return 2 * x

    for _ in range(10):   # more cells than dynamo's recompile limit (8)
        accelerator = device.make_accelerator(TrainConfig(compile="default"), cpu=True)
        model = accelerator.prepare(Doubler())
        model(torch.ones(3))
        assert device.compile_stats()["unique_graphs"] == 1        # compiled, in this cell
    assert torch._dynamo.config.fail_on_recompile_limit_hit is True
