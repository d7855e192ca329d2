"""Where the project's own files are: the checkout that holds `data/subsets/`, `analysis/*.ipynb`,
`experiments/` and `results/`.

With an editable install (`pip install -e .`, what scripts/install.sh does) that is the folder above the
package. A regular install puts the package in site-packages, where those folders do not exist: then the
checkout is `$PAPER_REPRO_ROOT`, else the current directory or one of its parents that holds `experiments/`
and `data/subsets/`. Nothing falls back silently to a folder inside site-packages.
"""
from __future__ import annotations

import os
from pathlib import Path

MARKERS = ("experiments", "data/subsets")


class CheckoutNotFound(FileNotFoundError):
    """No paper_repro checkout could be found for the project's data files."""


def is_checkout(path: Path) -> bool:
    return all((path / marker).is_dir() for marker in MARKERS)


def project_root() -> Path:
    """The checkout root (see the module docstring); CheckoutNotFound with a one-line hint otherwise."""
    given = os.environ.get("PAPER_REPRO_ROOT")
    if given:
        root = Path(given).expanduser().resolve()
        if not is_checkout(root):
            raise CheckoutNotFound(f"PAPER_REPRO_ROOT={given}: not a paper_repro checkout (no experiments/ and data/subsets/)")
        return root
    beside = Path(__file__).resolve().parents[1]
    if is_checkout(beside):
        return beside
    for candidate in (Path.cwd(), *Path.cwd().parents):
        if is_checkout(candidate):
            return candidate
    raise CheckoutNotFound("paper_repro is installed outside its checkout: run from the checkout (it holds "
                           "experiments/ and data/subsets/) or set PAPER_REPRO_ROOT to it")
