"""The checkout root for data files: beside the package (editable install), else $PAPER_REPRO_ROOT or the
current directory — a non-editable install must not look for subsets or notebooks inside site-packages."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from paper_repro import paths

REPO = Path(__file__).resolve().parents[1]


def test_editable_checkout_is_found_beside_the_package():
    assert paths.project_root() == REPO


def test_installed_copy_uses_root_env_or_cwd_with_one_line_error(tmp_path):
    """A copy of the package outside the checkout (what `pip install .` gives) finds the checkout through
    PAPER_REPRO_ROOT or the working directory, and fails with one line elsewhere."""
    site = tmp_path / "site-packages"
    shutil.copytree(REPO / "paper_repro", site / "paper_repro", ignore=shutil.ignore_patterns("__pycache__"))
    code = "from paper_repro.paths import project_root; print(project_root())"

    def run(cwd, **env):
        import os
        return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(site), **env})

    assert run(REPO).stdout.strip() == str(REPO)                                      # run from the checkout
    assert run(tmp_path, PAPER_REPRO_ROOT=str(REPO)).stdout.strip() == str(REPO)     # or told where it is
    lost = run(tmp_path)
    assert lost.returncode != 0 and "set PAPER_REPRO_ROOT" in lost.stderr.strip().splitlines()[-1]
    wrong = run(tmp_path, PAPER_REPRO_ROOT=str(tmp_path))
    assert wrong.returncode != 0 and "not a paper_repro checkout" in wrong.stderr


def test_subsets_and_notebooks_resolve_through_the_root(monkeypatch, tmp_path):
    from paper_repro.analysis.notebooks import notebooks_dir
    from paper_repro.data.sampling import default_subset_dir

    assert default_subset_dir() == REPO / "data" / "subsets" / "conll2003"
    assert (notebooks_dir() / "f1_vs_size.ipynb").exists()
    monkeypatch.setenv("PAPER_REPRO_ROOT", str(tmp_path))
    with pytest.raises(paths.CheckoutNotFound):
        default_subset_dir()
