"""Headless execution of the analysis notebooks (`analysis/*.ipynb`) on one study, with nbclient.

Each notebook has a cell tagged `parameters` (`study_dir = "results/smoke"`); like papermill, a cell tagged
`injected-parameters` with the given values is inserted after it. Executed copies go to `out_dir`; the
committed notebooks stay without outputs.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

NOTEBOOKS = ("f1_vs_size.ipynb", "step_efficiency.ipynb", "depth_attention.ipynb")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
PACKAGE_ROOT = Path(__file__).resolve().parents[2]     # the checkout holding paper_repro/ and analysis/


class NotebookError(RuntimeError):
    """One or more notebooks failed; the partially executed copies are still written."""


def notebooks_dir() -> Path:
    """`analysis/` of the checkout (paper_repro.paths.project_root: also right for a non-editable install)."""
    from paper_repro.paths import project_root

    return project_root() / "analysis"


def inject_parameters(nb: Any, parameters: dict[str, Any]) -> Any:
    """Insert an `injected-parameters` code cell after the `parameters`-tagged cell (or first)."""
    import nbformat

    source = "# Parameters\n" + "\n".join(f"{k} = {v!r}" for k, v in parameters.items()) + "\n"
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    if (nb.get("nbformat"), nb.get("nbformat_minor", 0)) < (4, 5):
        cell.pop("id", None)
    cells = [c for c in nb.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    index = next((i + 1 for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])), 0)
    cells.insert(index, cell)
    nb.cells = cells
    return nb


def strip_outputs(nb: Any) -> Any:
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def run_notebooks(
    study_dir: str | Path, out_dir: str | Path, notebooks: Iterable[str] | None = None,
    source_dir: str | Path | None = None, timeout: int = 600, kernel_name: str = "python3",
    parameters: dict[str, Any] | None = None,
) -> list[Path]:
    """Execute the analysis notebooks headless on `study_dir`; write the executed copies to `out_dir` and
    return their paths. The kernel runs with the checkout as working directory and on PYTHONPATH (so the
    package imports even when not installed). Raises NotebookError listing failures, after writing all."""
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    try:
        KernelSpecManager().get_kernel_spec(kernel_name)
    except NoSuchKernel as error:
        raise NotebookError(f"no Jupyter kernel {kernel_name!r}; install one with "
                            f"`python -m ipykernel install --sys-prefix`") from error
    source = Path(source_dir) if source_dir is not None else notebooks_dir()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    params = {"study_dir": str(Path(study_dir).resolve()), **(parameters or {})}
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("MPLBACKEND", "Agg")
    written, failures = [], []
    for name in (notebooks or NOTEBOOKS):
        path = source / name
        nb = nbformat.read(path, as_version=4)
        inject_parameters(nb, params)
        root = source.parent
        client = NotebookClient(nb, timeout=timeout, kernel_name=kernel_name,
                                resources={"metadata": {"path": str(root)}})
        try:
            client.execute(env=env, cwd=str(root))
        except CellExecutionError as error:
            text = _ANSI.sub("", str(error)).strip()
            last = text.splitlines()[-1] if text else type(error).__name__
            failures.append(f"{name}: {last}")
            log.error("notebook %s failed: %s", name, last)
            log.debug("notebook %s traceback:\n%s", name, text)
        except Exception as error:  # noqa: BLE001 - kernel start-up/timeouts: record and go on
            failures.append(f"{name}: {type(error).__name__}: {error}")
            log.error("notebook %s failed: %s", name, error)
        target = out / name
        nbformat.write(nb, target)
        written.append(target)
    if failures:
        raise NotebookError("; ".join(failures))
    return written


def display_figures(paths: Sequence[Path]) -> None:
    """Show the PNGs among `paths` in a notebook (no-op outside IPython)."""
    try:
        from IPython.display import Image, display
    except ImportError:  # pragma: no cover
        return
    for path in paths:
        if Path(path).suffix == ".png":
            display(Image(filename=str(path)))
