"""Provenance recorded with every cell: code version, package versions, host and device."""
from __future__ import annotations

import functools
import importlib.metadata
import platform
import socket
import subprocess
import sys
from pathlib import Path

import torch

PACKAGES = ("paper-repro", "torch", "transformers", "accelerate", "datasets", "seqeval", "pyarrow", "numpy")
REPO_ROOT = Path(__file__).resolve().parents[2]


@functools.lru_cache(maxsize=1)
def git_state() -> tuple[str, bool]:
    """(commit sha, dirty flag) of the checkout the package runs from; ("unknown", False) outside git."""
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, check=True, timeout=20
        ).stdout.strip()

    try:
        sha = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", "paper_repro", "experiments"))
    except (OSError, subprocess.SubprocessError):
        return "unknown", False
    return sha, dirty


@functools.lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def device_description(device: torch.device, num_processes: int) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:  # CPU timings depend on the intra-op thread count: record it
        name = f"{platform.processor() or platform.machine()} threads={torch.get_num_threads()}"
    return f"{device.type}:{name} x{num_processes}"


def host_description() -> dict[str, str]:
    return {"host": socket.gethostname(), "platform": platform.platform(), "argv": " ".join(sys.argv)}
