import nbformat
import pytest

from paper_repro.analysis import notebooks

from .conftest import write_study


def _tags(cell):
    return cell.get("metadata", {}).get("tags", [])


@pytest.mark.parametrize("name", notebooks.NOTEBOOKS)
def test_committed_notebooks_are_clean_and_parameterized(name):
    nb = nbformat.read(notebooks.notebooks_dir() / name, as_version=4)
    nbformat.validate(nb)
    params = [c for c in nb.cells if "parameters" in _tags(c)]
    assert len(params) == 1 and 'study_dir = "results/smoke"' in params[0].source
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "torch" not in code


def test_inject_parameters_after_parameters_cell():
    nb = nbformat.read(notebooks.notebooks_dir() / notebooks.NOTEBOOKS[0], as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in _tags(c))
    notebooks.inject_parameters(nb, {"study_dir": "/x/y"})
    notebooks.inject_parameters(nb, {"study_dir": "/x/z"})          # replaces, does not stack
    injected = [i for i, c in enumerate(nb.cells) if "injected-parameters" in _tags(c)]
    assert injected == [index + 1] and "study_dir = '/x/z'" in nb.cells[index + 1].source
    nbformat.validate(nb)


def test_run_notebooks_headless(tmp_path):
    study = write_study(tmp_path, "nb", methods=("last", "deeper", "dwatt", "scalarmix"), sizes=(50, 100),
                        data_seeds=(0,), seeds=(0, 1))
    out = tmp_path / "executed"
    paths = notebooks.run_notebooks(study, out, timeout=120)
    assert [p.name for p in paths] == list(notebooks.NOTEBOOKS)
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        assert not [o for o in outputs if o.output_type == "error"]
        assert any(o.output_type == "display_data" and "image/png" in o.get("data", {}) for o in outputs), path.name
        assert any("injected-parameters" in _tags(c) for c in nb.cells)
    assert (study / "figures" / "f1_vs_size.png").exists()
    assert (study / "figures" / "depth_attention__dwatt__minilm-l6__sentences.png").exists()
    # the committed notebooks are untouched
    committed = nbformat.read(notebooks.notebooks_dir() / notebooks.NOTEBOOKS[0], as_version=4)
    assert not any("injected-parameters" in _tags(c) for c in committed.cells)


def test_run_notebooks_reports_failures(tmp_path):
    with pytest.raises(notebooks.NotebookError, match=r"f1_vs_size.ipynb: FileNotFoundError: study directory not found"):
        notebooks.run_notebooks(tmp_path / "does-not-exist", tmp_path / "out", notebooks=["f1_vs_size.ipynb"])
    assert (tmp_path / "out" / "f1_vs_size.ipynb").exists()
