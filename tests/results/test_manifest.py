"""Tests for paper_repro.results.manifest: git provenance of a clean and a dirty checkout (a temporary repo)."""
from __future__ import annotations

import subprocess

import pytest

from paper_repro.results import manifest as provenance


def git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True)


@pytest.fixture(autouse=True)
def _fresh_caches():
    """git_state/git_diff are cached per process: never leave a temporary repo's answer behind."""
    provenance.git_state.cache_clear()
    provenance.git_diff.cache_clear()
    yield
    provenance.git_state.cache_clear()
    provenance.git_diff.cache_clear()


@pytest.fixture
def repo(tmp_path, monkeypatch):
    root = tmp_path / "checkout"
    (root / "paper_repro").mkdir(parents=True)
    (root / "experiments").mkdir()
    (root / "paper_repro" / "mod.py").write_text("x = 1\n")
    (root / "experiments" / "s.yaml").write_text("study: s\n")
    (root / "notes.md").write_text("outside the tracked paths\n")
    git(root, "init", "-q")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.org", "add", ".")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "init")
    monkeypatch.setattr(provenance, "REPO_ROOT", root)
    return root


def fresh():
    provenance.git_state.cache_clear()
    provenance.git_diff.cache_clear()
    return provenance.git_state(), provenance.git_diff()


def test_clean_checkout_has_no_diff(repo):
    (sha, dirty), diff = fresh()
    assert len(sha) == 40 and not dirty and diff is None
    (repo / "notes.md").write_text("changed, but not code\n")          # outside paper_repro/ and experiments/
    (repo / "paper_repro" / "new.py").write_text("y = 2\n")            # untracked alone: not dirty
    (_, dirty), diff = fresh()
    assert not dirty and diff is None


def test_dirty_checkout_diff_lists_untracked_files(repo):
    (repo / "paper_repro" / "mod.py").write_text("x = 2\n")
    (repo / "experiments" / "s.yaml").write_text("study: s2\n")
    (repo / "paper_repro" / "new.py").write_text("y = 2\n")
    (repo / "notes.md").write_text("changed\n")
    (sha, dirty), diff = fresh()
    assert dirty
    assert diff.startswith(f"# uncommitted changes of checkout at {sha}: git diff HEAD -- paper_repro experiments\n")
    assert "#   paper_repro/new.py\n" in diff
    assert "-x = 1\n+x = 2\n" in diff and "+study: s2\n" in diff and "notes.md" not in diff
    # the file applies to the commit as it is (header lines before the first `diff --git` are skipped)
    patch = repo / "cell.diff"
    patch.write_text(diff)
    git(repo, "stash", "-q")
    git(repo, "apply", "--check", str(patch))


def test_outside_git(tmp_path, monkeypatch):
    monkeypatch.setattr(provenance, "REPO_ROOT", tmp_path)
    (sha, dirty), diff = fresh()
    assert (sha, dirty, diff) == ("unknown", False, None)


def test_host_description_names_the_cpu_kernel_set():
    """fp32 results differ in the last bits between AVX2 and AVX-512 kernels (the `lstm` head's, for one): every
    manifest records which one this host dispatches to, beside the CPU model read from /proc/cpuinfo."""
    import torch

    host = provenance.host_description()
    assert set(host) == {"host", "platform", "cpu", "argv"}
    capability = torch.backends.cpu.get_cpu_capability()
    assert host["cpu"].endswith(f"({capability})") and len(host["cpu"]) > len(capability) + 3
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    assert host["cpu"].startswith(model)
