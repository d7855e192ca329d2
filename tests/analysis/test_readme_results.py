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
    # the planted dwatt gain over last is +5 F1 points (± small noise) at every size (conftest.METHOD_OFFSETS);
    # column 6 now (a `pairs > 0` column follows `pairs`), then the CI and how it was computed
    rows = [line.split("|") for line in section.splitlines() if "`dwatt` − `last`" in line]
    gains = [float(cells[6]) for cells in rows]
    assert len(gains) == 3 and all(abs(gain - 5.0) <= 0.2 for gain in gains)
    assert all(cells[5].strip() == "10" and cells[8].strip() == "bootstrap" for cells in rows)
    assert "protocol v1" not in section


def test_results_section_stage_and_v1_label(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from paper_repro.results.schema import CELL_SCHEMA_V1

    from .conftest import cell_rows, v1_rows, write_study

    study = write_study(tmp_path, "st", methods=("last", "dwatt"), sizes=(50,), data_seeds=(0,), seeds=(0, 1, 2),
                        stage="tune", offset=-0.3)
    text = readme_tables.results_section(study)
    assert "Stage `eval` only" in text and "_No cells of stage `eval` yet._" in text and "| 50 |" not in text
    write_study(tmp_path, "st", methods=("last", "dwatt"), sizes=(50,), data_seeds=(0,), seeds=(0, 1, 2), stage="eval")
    text = readme_tables.results_section(study)
    assert "| 50 | 59.0 ± 2.5 (3) | 64.2 ± 2.4 (3) |" in text and "| 30." not in text and "| t |" in text
    old = tmp_path / "old"
    old.mkdir()
    rows = cell_rows("a", "last", 50, 0, 0, 0.6) + cell_rows("b", "dwatt", 50, 0, 0, 0.65)
    pq.write_table(pa.Table.from_pylist(v1_rows(rows), schema=CELL_SCHEMA_V1), old / "results.parquet")
    text = readme_tables.results_section(old)
    assert "_protocol v1 (superseded): fixed 200 steps, one head lr, strict-IOB2 `f1`" in text


def test_results_section_shows_a_full_training_set_stage_with_the_report_renderer(tmp_path):
    from paper_repro.analysis import report

    from .conftest import write_full_stage, write_study

    study = write_study(tmp_path, "fs", methods=("last", "dwatt"), sizes=(50,), data_seeds=(0,), seeds=(0, 1),
                        stage="eval")
    write_full_stage(tmp_path, "fs", {"last": [0.60, 0.62], "dwatt": [0.70, 0.71]})
    text = readme_tables.results_section(study)
    assert "#### Full training set (stage `eval_full`, descriptive)" in text
    from paper_repro.analysis.load import load_results, select_stage
    body = report.full_data_section(select_stage(load_results(study), "eval_full"), "eval_full")
    assert body in text and "| minilm-l6 | dwatt − last | 2 | 2 | 9.50 | s0: +10.0 s1: +9.0 |" in body
    assert text.index("Stage `eval` only") < text.index("#### Full training set")


def test_results_section_shows_other_evaluation_stages_descriptively(tmp_path, monkeypatch):
    """cpu_study's K-shot `eval_ktype` (a stage that selects its lr and checks nothing): after the headline stage's
    tables, its own F1 and paired tables (planted 10 points above eval), linked to its report once written."""
    from paper_repro.analysis import report

    from .conftest import write_study

    monkeypatch.chdir(tmp_path)
    study = _study_with_claims(tmp_path, "ks")
    write_study(tmp_path / "results", "ks", methods=("last", "deeper", "dwatt"), sizes=(5, 10), data_seeds=(0, 1),
                seeds=(0, 1, 2), stage="eval_ktype", offset=0.1)
    yaml_path = tmp_path / "experiments" / "ks.yaml"
    yaml_path.write_text(yaml_path.read_text().replace(
        "  - name: eval\n", "  - {name: eval, select: {from: tune}}\n  - {name: eval_ktype, select: {from: tune}}\n"))
    text = readme_tables.results_section(study)
    heading = "#### Stage `eval_ktype` — descriptive: no pre-registered test or claim reads it"
    assert heading + "\n" in text and text.index("Stage `eval` only") < text.index(heading)
    ktype = text[text.index(heading):]
    assert "— minilm-l6, `sentences` sampler, stage `eval_ktype`:" in ktype
    assert "| 5 |" in ktype and "| 50 |" not in ktype and "| 50 |" in text[:text.index(heading)]
    rows = [line.split("|") for line in ktype.splitlines() if "`dwatt` − `deeper`" in line]
    assert len(rows) == 2 and all(abs(float(r[6]) - 4.0) <= 0.3 for r in rows)       # the planted +4 gain
    report.build_report(study, figures=False, n_boot=200)
    linked = readme_tables.results_section(study)
    assert f"{heading} ([REPORT]({study}/stages/eval_ktype/REPORT.md))" in linked
    assert (study / "stages" / "eval_ktype" / "REPORT.md").exists()
    # the answer block: the claims' contrasts and each head against last, in that stage, a row per size, after the
    # verdicts (no concat cells: no concat column)
    answer = readme_tables.build_answer_section([study])
    beyond = answer[answer.index("| (a) |"):].split("Beyond the tests:")[1]
    assert "| study | stage | condition | size | dwatt − deeper | dwatt − last | deeper − last |" in beyond
    rows = [line.split(" | ") for line in beyond.splitlines() if line.startswith("| `ks` |")]
    assert [(r[1], r[3]) for r in rows] == [("`eval_ktype`", "5"), ("`eval_ktype`", "10")]
    # planted (conftest.METHOD_OFFSETS): dwatt − deeper +4, dwatt − last +5, deeper − last +1, each of 6 pairs
    for r in rows:
        for column, planted in ((4, 4.0), (5, 5.0), (6, 1.0)):
            assert abs(float(r[column].split()[0]) - planted) <= 0.3 and r[column].rstrip(" |").endswith("/6")
    assert readme_tables.beyond_tests_lines([_study_with_claims(tmp_path, "plain")]) == []


def test_subset_sentences_of_a_ktype_stage_come_from_the_manifests():
    import pandas as pd

    def man(run_id, sampler, size, data_seed, n):
        return {"run_id": run_id, "config": {"data": {"sampler": sampler, "size": size, "data_seed": data_seed}},
                "subset": {"n_sentences": n}}

    manifests = [man("a", "ktype", 5, 0, 9), man("b", "ktype", 5, 1, 15), man("b2", "ktype", 5, 1, 15),
                 man("c", "ktype", 10, 0, 16), man("d", "ktype", 5, 2, 99), man("e", "sentences", 50, 0, 50)]
    df = pd.DataFrame({"run_id": ["a", "b", "b2", "c", "e"]})     # d is another stage's cell; b2 shares b's subset
    assert readme_tables.subset_sentences_lines(df, manifests) == [
        "Training sentences per subset (the cells' manifests, `subset.n_sentences`): `ktype` 5: 9–15 (2 subsets); "
        "`ktype` 10: 16 (1 subset).", ""]
    assert readme_tables.subset_sentences_lines(df[df["run_id"] == "e"], manifests) == []   # sentences: the size is it


def test_cells_section_lists_each_cell_with_precision_kernel_timings_and_test_f1(tmp_path):
    """`--cells ROOT`: one row per done cell of every study folder under ROOT (e.g. cells run on a GPU)."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    cells = tmp_path / "gpu" / "run_a" / "cells"
    cells.mkdir(parents=True)
    for run_id, precision, settings, f1 in (("last-x-1", "no", {"sdpa_cudnn": False}, 0.5870),
                                             ("dwatt-x-2", "bf16", None, 0.5709),
                                             ("dwatt-x-3", "no", {"sdpa_cudnn": False, "compiled": True}, 0.5709)):
        pq.write_table(pa.table({"split": ["dev", "test"], "step": [200, 200], "f1": [0.6, f1]}), cells / f"{run_id}.parquet")
        manifest = {"run_id": run_id, "device": "cuda:NVIDIA H200 x1", "git": {"sha": "a" * 40, "dirty": precision == "no"},
                    "config": {"model": {"head": {"name": run_id.split("-")[0]}}, "data": {"size": 100},
                               "train": {"seed": 100, "mixed_precision": precision,
                                         **({"compile": "default"} if run_id.endswith("3") else {})}},
                    "timings": {"step_time_s": 0.0179, "train_s": 3.6, "eval_s": [0.32, 0.2], "total_s": 9.9}}
        if settings is not None:
            manifest["device_settings"] = settings
        (cells / f"{run_id}.manifest.json").write_text(json.dumps(manifest))
        (cells / f"{run_id}.done").write_text("")
    text = readme_tables.cells_section(tmp_path / "gpu")
    rows = [line for line in text.splitlines() if line.startswith("| `run_a`")]
    assert len(rows) == 3
    assert "| `dwatt` | 100 | 100 | bf16 | none | off | – | cuda:NVIDIA H200 x1 |" in rows[0] and "`aaaaaaa` |" in rows[0]
    assert "| `dwatt` | 100 | 100 | no | default | off | off |" in rows[1]     # a cell of train.compile (older: none)
    assert "| `last` | 100 | 100 | no | none | off | off |" in rows[2] and "`aaaaaaa` + diff |" in rows[2]
    assert "58.7" in rows[2] and "57.1" in rows[0] and "17.9" in rows[2]


def test_compile_section_sets_each_setting_against_eager_from_the_runs_own_overrides(tmp_path):
    """bench/head_overhead.py runs with train.compile / train.tf32 (labelled by their `overrides`, not file names):
    step and eval ratios to the eager run of the same backbone and head, and the compile break-even in steps."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def run(name, overrides, step, warmup, rate):
        rows = [dict(kind="summary", backbone="/tmp/shape-bert-base", variant=head, metric=metric, value=value,
                     overrides=overrides, date="2026-11-26T13:18:09+00:00")
                for head in ("last", "dwatt")
                for metric, value in (("step_s", step), ("warmup_s", warmup), ("eval_sentences_per_s", rate))]
        pq.write_table(pa.Table.from_pylist(rows), tmp_path / f"{name}.parquet")

    run("eager", "train.compile=none", 0.036, 0.5, 4000.0)
    run("compiled", "train.compile=default", 0.024, 60.5, 6000.0)
    run("tf32", "train.tf32=true", 0.032, 0.5, 5000.0)
    run("bf16", "train.mixed_precision=bf16", 0.040, 0.5, 5000.0)   # not a compile/TF32 run: named, not shown
    text = readme_tables.compile_section(tmp_path, ["eager", "tf32", "compiled", "bf16", "absent"], "T", "D")
    rows = [line for line in text.splitlines() if line.startswith("| `shape-bert-base` | `last`")]
    assert [row.split(" | ")[2] for row in rows] == ["eager", "TF32", "compile default"]   # eager first
    assert "| 24.0 | 0.67× | 6,000 | 1.50× | 60.5 | 5,000 |" in rows[2]      # (60.5 - 0.5) / (0.036 - 0.024)
    assert "| 32.0 | 0.89× | 5,000 | 1.25× |" in rows[1] and rows[1].endswith("| – |")
    assert "`bf16.parquet` (overrides `train.mixed_precision=bf16`)" in text and "`absent.parquet` (missing)" in text
    assert readme_tables.compile_variant("train.compile=max-autotune,train.tf32=true") == "compile max-autotune + TF32"
    assert readme_tables.compile_variant("") == "eager"
    assert readme_tables.compile_variant("train.tf32=1") == "TF32" and readme_tables.compile_variant("train.tf32=maybe") is None
    assert readme_tables.COMPILE_AFTER in {spec.name for spec in readme_tables.BENCHES}   # else the section vanishes
    pq.write_table(pa.Table.from_pylist([dict(kind="summary", backbone="b", variant="last", metric="step_s", value=1.0)]),
                   tmp_path / "bare.parquet")
    assert "`bare.parquet` (no overrides column)" in readme_tables.compile_section(tmp_path, ["eager", "bare"], "T", "D")


def test_results_section_quotes_the_study_progress(synth_study):
    """`paper-repro status --write` leaves PROGRESS.md beside the results; the README quotes it under its study."""
    (synth_study / readme_tables.PROGRESS_FILE).write_text("| stage | cells done |\n|---|---:|\n| eval | 3/9 |\n")
    text = readme_tables.results_section(synth_study)
    assert "#### Progress\n\n| stage | cells done |\n|---|---:|\n| eval | 3/9 |\n" in text
    assert text.index("#### Progress") < text.index("| eval | 3/9 |")


def _study_with_claims(root, name, seeds=(0, 1, 2), planned=None):
    """A study whose YAML (experiments/<name>.yaml, found from the working directory) pre-registers one test and
    one claim; the planted dwatt gain over deeper (conftest.METHOD_OFFSETS) makes the claim supported, or interim
    while fewer than `planned` pairs per size exist."""
    from .conftest import write_study

    write_study(root / "results", name, methods=("last", "deeper", "dwatt"), sizes=(50, 100, 200),
                data_seeds=(0, 1), seeds=seeds, stage="eval")
    (root / "experiments").mkdir(exist_ok=True)
    (root / "experiments" / f"{name}.yaml").write_text(
        f"study: {name}\nstages:\n  - name: eval\n"
        "hypotheses:\n  alpha: 0.05\n  stage: eval\n" + (f"  planned_pairs: {planned}\n" if planned else "")
        + "  tests:\n"
        "    - {id: H1a, kind: pooled, a: dwatt, b: deeper, sampler: sentences, sizes: [50, 100, 200]}\n"
        "claims:\n  smallest_effect: 1.0\n  items:\n"
        "    - {id: a, kind: beats, tests: [H1a], claim: \"DWAtt beats deeper\", rule: \"Holm p below alpha\"}\n")
    return root / "results" / name


def test_answer_markers_take_the_verdicts_across_studies(tmp_path, monkeypatch, capsys):
    """With answer markers near the README's top, the studies' verdicts per claim and their effect sizes go there,
    once: the results block no longer opens with them. A study short of its planned pairs reads interim there,
    numbers marked. Without those markers they head the results block; a lone or reversed marker is an error."""
    monkeypatch.chdir(tmp_path)
    studies = [_study_with_claims(tmp_path, "fine"), _study_with_claims(tmp_path, "frz", seeds=(0, 1), planned=6)]
    markers = (f"{readme_tables.ANSWER_BEGIN}\nSTALE\n{readme_tables.ANSWER_END}\n\n"
               f"{readme_tables.RESULTS_BEGIN}\n{readme_tables.RESULTS_END}\n{readme_tables.BEGIN}\n{readme_tables.END}\n")
    argv = ["--bench-dir", str(tmp_path / "none")] + [a for s in studies for a in ("--results-study", str(s))]
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{markers}")
    assert readme_tables.main([str(readme), "--check", *argv]) == 1                 # the stale block is seen
    assert readme_tables.main([str(readme), *argv]) == 0
    text = readme.read_text()
    answer = text[text.index(readme_tables.ANSWER_BEGIN):text.index(readme_tables.ANSWER_END)]
    results = text[text.index(readme_tables.RESULTS_BEGIN):text.index(readme_tables.RESULTS_END)]
    assert "STALE" not in answer and "`fine`: minilm-l6 · sentences" in answer and "`frz`: minilm-l6 · sentences" in answer
    verdict = next(line for line in answer.splitlines() if line.startswith("| (a) |"))
    assert verdict.endswith("| **supported** | **interim** | – |")
    effect = next(line for line in answer.splitlines() if line.startswith("| (a) | H1a |")).split(" | ")
    # the planted dwatt - deeper gain is +4 points at every size (conftest.METHOD_OFFSETS), within the noise
    fine, frz = effect[4], effect[5].removesuffix(" |")
    assert abs(float(fine.split()[0]) - 4.0) < 0.3 and "Holm p" in fine and not fine.endswith("*")
    assert abs(float(frz.split()[0]) - 4.0) < 0.3 and frz.endswith("(*interim*)")
    assert "claims across tracks" not in results and "### Study `fine`" in results
    assert readme_tables.main([str(readme), "--check", *argv]) == 0
    # no answer markers: the same tables head the results block, as before
    readme.write_text(f"# x\n\n{readme_tables.RESULTS_BEGIN}\n{readme_tables.RESULTS_END}\n"
                      f"{readme_tables.BEGIN}\n{readme_tables.END}\n")
    assert readme_tables.main([str(readme), *argv]) == 0
    results = readme.read_text()
    assert "### The paper's claims across tracks" in results and verdict in results
    # a lone answer marker, or the pair reversed: one line, exit 2, the README left as it was
    for broken in (f"{readme_tables.ANSWER_BEGIN}\n\n{markers.split(chr(10), 3)[3]}",
                   f"{readme_tables.ANSWER_END}\n{readme_tables.ANSWER_BEGIN}\n{markers.split(chr(10), 3)[3]}"):
        readme.write_text(broken)
        capsys.readouterr()
        assert readme_tables.main([str(readme), *argv]) == 2
        assert "markers are not a pair in that order" in capsys.readouterr().err and readme.read_text() == broken
    # one study with claims: its verdicts and effects, with no `agree` column
    one = readme_tables.build_answer_section(studies[:1])
    assert "| (a) | DWAtt beats deeper (paper's claim) | – | **supported** |" in one and "agree" not in one


def test_answer_block_decomposes_the_tested_stage_against_last(tmp_path, monkeypatch):
    """Under the verdicts, in the stage the tests read, each fusion head and deeper baseline against `last` per
    study and size: the planted gains (conftest.METHOD_OFFSETS: dwatt +5, deeper +1 over last) come out, on the
    seed units every head has; interim exactly where the claims' tests are; a study without `claims:` left out."""
    monkeypatch.chdir(tmp_path)
    fine = _study_with_claims(tmp_path, "fine", planned=6)               # 2 data seeds x 3 seeds: complete
    frz = _study_with_claims(tmp_path, "frz", seeds=(0, 1), planned=6)   # 4 units: interim
    lag = _study_with_claims(tmp_path, "lag", planned=6)
    for file in (lag / "cells").glob("last-n50-d1-s2-eval.*"):             # `last`, which no test reads, lags a unit
        file.unlink()
    plain = _study_with_claims(tmp_path, "plain")
    yaml_path = tmp_path / "experiments" / "plain.yaml"
    yaml_path.write_text(yaml_path.read_text().split("claims:")[0])
    found = [(s, claims) for s in (fine, frz, lag, plain) if (claims := readme_tables.study_claims(s)) is not None]
    assert [s.name for s, _ in found] == ["fine", "frz", "lag"]
    assert [c[0]["verdict"].iloc[0] for _, c in found] == ["supported", "interim", "supported"]
    lines = "\n".join(readme_tables.against_last_lines(found)).splitlines()
    assert lines[0].startswith("Where the tested gains come from:")
    assert "| study | stage | condition | size | dwatt − last | deeper − last |" in lines
    rows = [line.split(" | ") for line in lines if line.startswith("| `")]
    assert [(r[0], r[1], r[3]) for r in rows] == [
        *[("| `fine`", "`eval`", str(size)) for size in (50, 100, 200)],
        *[("| `frz`", "`eval` (*interim*)", str(size)) for size in (50, 100, 200)],
        *[("| `lag`", "`eval`", str(size)) for size in (50, 100, 200)]]
    for r in rows:
        # every column on the units all heads share: lag's size 50 lost one unit in each column, not only last's
        pairs = {"| `fine`": "/6", "| `frz`": "/4", "| `lag`": "/5" if r[3] == "50" else "/6"}[r[0]]
        for column, planted in ((4, 5.0), (5, 1.0)):
            assert abs(float(r[column].split()[0]) - planted) <= 0.3 and r[column].rstrip(" |").endswith(pairs)
    answer = readme_tables.build_answer_section([fine, frz, lag, plain])
    assert answer.index("How large each tested contrast is") < answer.index("Where the tested gains come from")
    assert readme_tables.against_last_lines([]) == []
