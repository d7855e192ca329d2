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
TRACKED = ("paper_repro", "experiments")   # the paths whose uncommitted changes make a cell `git_dirty`


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, check=True, timeout=20
    ).stdout


@functools.lru_cache(maxsize=1)
def git_state() -> tuple[str, bool]:
    """(commit sha, dirty flag) of the checkout the package runs from; ("unknown", False) outside git.
    Dirty: uncommitted changes to tracked files under paper_repro/ or experiments/."""
    try:
        sha = _git("rev-parse", "HEAD").strip()
        dirty = bool(_git("status", "--porcelain", "--untracked-files=no", "--", *TRACKED).strip())
    except (OSError, subprocess.SubprocessError):
        return "unknown", False
    return sha, dirty


@functools.lru_cache(maxsize=1)
def git_diff() -> str | None:
    """What a dirty checkout changes, for `cells/<run_id>.diff`: `git diff HEAD` of paper_repro/ and
    experiments/ after a header naming the commit and the untracked files under paper_repro/ (listed, not
    included). None when the checkout is clean or not a git repository. `git apply` reads the file as is
    (the header lines come before the first `diff --git`)."""
    sha, dirty = git_state()
    if not dirty:
        return None
    try:
        diff = _git("diff", "HEAD", "--no-color", "--no-ext-diff", "--", *TRACKED)
        untracked = _git("ls-files", "--others", "--exclude-standard", "--", "paper_repro").splitlines()
    except (OSError, subprocess.SubprocessError):
        return None
    header = [f"# uncommitted changes of {REPO_ROOT.name} at {sha}: git diff HEAD -- {' '.join(TRACKED)}"]
    if untracked:
        header.append("# untracked files under paper_repro/ (not in this diff):")
        header += [f"#   {path}" for path in untracked]
    return "\n".join(header) + "\n" + diff


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


def cpu_description() -> str:
    """CPU model and the kernel set torch dispatches to ("AMD EPYC (AVX2)"): fp32 results differ in the last bits
    between AVX2 and AVX-512 kernels, so a cell's manifest says which one produced it."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return f"{model} ({torch.backends.cpu.get_cpu_capability()})"


def host_description() -> dict[str, str]:
    return {"host": socket.gethostname(), "platform": platform.platform(), "cpu": cpu_description(),
            "argv": " ".join(sys.argv)}
