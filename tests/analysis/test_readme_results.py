"""The README results section is generated from a study's parquet: planted numbers come out as written."""
from paper_repro.analysis import readme_tables


def test_results_section_between_markers(synth_study, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{readme_tables.RESULTS_BEGIN}\nSTALE\n{readme_tables.RESULTS_END}\n\nafter\n"
                      f"{readme_tables.BEGIN}\n{readme_tables.END}\n")
    assert readme_tables.main([str(readme), "--bench-dir", str(tmp_path / "none"),
                               "--results-study", str(synth_study)]) == 0
    text = readme.read_text()
    section = text[text.index(readme_tables.RESULTS_BEGIN):text.index(readme_tables.RESULTS_END)]
    assert "STALE" not in section and text.endswith(f"{readme_tables.END}\n")
    assert "`dwatt` − `last`" in section and "`dwatt` − `deeper`" in section
    # the planted dwatt gain over last is +5 F1 points (± small noise) at every size (conftest.METHOD_OFFSETS)
    gains = [float(line.split("|")[5]) for line in section.splitlines() if "`dwatt` − `last`" in line]
    assert len(gains) == 3 and all(abs(gain - 5.0) <= 0.2 for gain in gains)
