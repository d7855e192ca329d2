"""Device settings a cell applies: cuDNN attention is switched off on CUDA (per-shape plan building made bf16 cells
4x slower on an H200), nothing changes on the CPU."""
from __future__ import annotations

import torch

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
        assert device.configure("cuda:0") == {"sdpa_cudnn": False}
        assert torch.backends.cuda.cudnn_sdp_enabled() is False
        assert (torch.backends.cuda.flash_sdp_enabled(), torch.backends.cuda.mem_efficient_sdp_enabled()) == (flash, efficient)
    finally:
        torch.backends.cuda.enable_cudnn_sdp(before)
