import re

import pyarrow.parquet as pq
import pytest

from paper_repro.analysis import report
from paper_repro.results.schema import cell_table

from .conftest import cell_rows, write_study


def _links(text):
    return re.findall(r"\]\(([^)]+)\)", text)


def test_full_report_contents(synth_report):
    text = synth_report.read_text()
    for heading in ("## What the data supports", "## 1. Test F1 vs few-shot size", "## 2. Paired gains",
                    "## 3. Step efficiency", "## 4. Parameter budget", "## 5. Depth attention",
                    "## 6. Per-type F1", "## 7. Cost", "## 8. Completeness"):
        assert heading in text
    assert text.count("(paper's claim)") >= 5
    assert "paired 95% CI above 0 at 3/3 sizes" in text
    dwatt = next(line for line in text.splitlines() if line.startswith("- **dwatt vs deeper**"))
    assert "above 0 at 3/3 sizes" in dwatt and "read as F1 points at 50, 100, 200" in dwatt
    same = next(line for line in text.splitlines() if line.startswith("- **scalarmix vs last**"))
    assert "includes 0 at 50, 100, 200" in same
    assert "- **last vs deeper**" not in text              # mirrored baseline comparison left out
    assert "| 50 | 60.2 ± 1.1 (n=10) |" in text           # F1 table: last at size 50
    assert "No missing cells" in text
    links = _links(text)
    assert any(link.endswith("f1_vs_size.png") for link in links)
    for link in links:
        assert (synth_report.parent / link).exists(), link
    tables = synth_report.parent / "tables"
    assert (tables / "paired_gains.csv").stat().st_size > 1000


def test_report_partial_study(tmp_path):
    study = write_study(tmp_path, "p", methods=("last", "dwatt"), sizes=(50, 100), data_seeds=(0,), seeds=(0, 1),
                        with_dev=False, with_manifest=False)
    (study / "cells" / "dwatt-n100-d0-s1.done").unlink()
    text = report.build_report(study).read_text()
    assert (study / "REPORT.md").exists() and (study / "figures" / "f1_vs_size.png").exists()
    assert "Figure skipped (step efficiency): no dev rows" in text
    assert "**1 missing cells**" in text and "| minilm-l6 | sentences | 100 | dwatt | 0 | 1 |" in text
    assert "no CI (fewer than 2 pairs) at 100" in text
    assert "result cells without a manifest: 0" in text


def test_report_single_seed_no_baseline(tmp_path):
    study = write_study(tmp_path, "q", methods=("dwatt",), sizes=(50,), data_seeds=(0,), seeds=(0,))
    text = report.build_report(study, out_dir=tmp_path / "out", figures=False).read_text()
    assert "No method/baseline pairs with test results" in text
    assert "(n=1)" in text and "Figure skipped (F1 vs size): figures not requested" in text
    assert not (tmp_path / "out" / "figures").exists()


def test_report_empty_study(tmp_path):
    (tmp_path / "empty" / "cells").mkdir(parents=True)
    text = report.build_report(tmp_path / "empty").read_text()
    assert "_No test rows._" in text and "Figures skipped" in text


def test_report_from_results_parquet_only(tmp_path):
    rows = cell_rows("a", "last", 50, 0, 0, 0.6) + cell_rows("b", "dwatt", 50, 0, 0, 0.65)
    (tmp_path / "r").mkdir()
    pq.write_table(cell_table(rows), tmp_path / "r" / "results.parquet")
    text = report.build_report(tmp_path / "r", figures=False).read_text()
    assert "from `results.parquet`" in text and "manifests; methods: last, dwatt" in text


def test_execute_notebooks_flag(tmp_path, monkeypatch):
    import paper_repro.analysis.notebooks as nbmod

    calls = []

    def fake(study_dir, out_dir, **kw):
        calls.append((study_dir, out_dir))
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "f1_vs_size.ipynb").write_text("{}")
        return [out_dir / "f1_vs_size.ipynb"]

    monkeypatch.setattr(nbmod, "run_notebooks", fake)
    study = write_study(tmp_path, "n", methods=("last",), sizes=(50,), data_seeds=(0,), seeds=(0,))
    assert "Not executed" in report.build_report(study, figures=False).read_text()
    assert calls == []
    text = report.build_report(study, execute_notebooks=True, figures=False).read_text()
    assert len(calls) == 1 and "[f1_vs_size.ipynb](notebooks/f1_vs_size.ipynb)" in text


def test_main_cli(tmp_path, capsys):
    study = write_study(tmp_path, "c", methods=("last", "dwatt"), sizes=(50,), data_seeds=(0,), seeds=(0, 1))
    assert report.main([str(study), "--n-boot", "500", "--no-figures", "-q"]) == 0
    assert capsys.readouterr().out.strip().endswith("REPORT.md")
    with pytest.raises(SystemExit) as exit_info:
        report.main([str(tmp_path / "missing")])
    assert exit_info.value.code == 2
