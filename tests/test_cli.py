"""The `paper-repro` command line as a user meets it (subprocesses of `python -m paper_repro.cli`): one line on
stderr and exit status 2 for bad input, nothing written; `cell` validates like `sweep`; the config reference."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from paper_repro.config import CellConfig, flatten

REPO = Path(__file__).resolve().parents[1]


def cli(*argv: str, cwd: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    environ = dict(os.environ)
    environ["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [environ.get("PYTHONPATH")])])
    environ.setdefault("OMP_NUM_THREADS", "1")
    environ.setdefault("HF_HUB_OFFLINE", "1")
    environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    environ.update(env)
    return subprocess.run([sys.executable, "-m", "paper_repro.cli", *argv], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=environ)


def one_error_line(done: subprocess.CompletedProcess, *fragments: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("paper-repro: error: "), done.stderr
    assert "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------------- cell --config
def test_cell_config_missing_file(tmp_path):
    done = cli("cell", "--config", "nowhere.yaml", cwd=tmp_path)
    one_error_line(done, "nowhere.yaml: cannot read config file")
    assert done.stdout == "" and files_under(tmp_path) == []


def test_cell_config_bad_yaml(tmp_path):
    (tmp_path / "bad.yaml").write_text("train:\n  steps: [1, 2\n")
    done = cli("cell", "--config", "bad.yaml", cwd=tmp_path)
    one_error_line(done, "bad.yaml: invalid YAML (", "line ")
    assert files_under(tmp_path) == ["bad.yaml"]


def test_cell_config_unknown_key_names_the_file(tmp_path):
    (tmp_path / "c.yaml").write_text("train:\n  stepz: 3\n")
    one_error_line(cli("cell", "--config", "c.yaml", cwd=tmp_path), "c.yaml: unknown config key train.stepz")


# ------------------------------------------------------------------------- cell validates like sweep
@pytest.mark.parametrize("override, fragments", [
    ("train.mixed_precision=fp16", ["train.mixed_precision: fp16 is not supported"]),
    ("model.backbone=minilm_l6", ["did you mean minilm-l6?"]),
    ("train.step_rule=epoch", ["train.step_rule: unknown value 'epoch'", "did you mean epochs?"]),
    ("data.size=0", ["data.size: expected a positive size"]),
    ("train.warmup_ratio=0.1", ["give warmup_steps or warmup_ratio, not both"]),
    ("model.head.options.gamma=1", ["model.head.options.gamma: head last has no option 'gamma'"]),
])
def test_cell_refuses_what_sweep_refuses(tmp_path, override, fragments, capsys):
    from paper_repro.cli import main

    assert main(["cell", f"results_dir={tmp_path / 'results'}", f"data.subset_dir={tmp_path / 's'}", override]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("paper-repro: error: ")
    assert all(fragment in err for fragment in fragments), err
    assert files_under(tmp_path) == []


def test_cell_fp16_from_the_shell(tmp_path):
    # used to train on CPU and record fp16
    done = cli("cell", f"results_dir={tmp_path / 'results'}", "train.mixed_precision=fp16", cwd=tmp_path, timeout=120)
    one_error_line(done, "train.mixed_precision: fp16 is not supported")
    assert files_under(tmp_path) == []


def test_sweep_refuses_the_same_values(tmp_path):
    import yaml

    study = {"study": "v", "base": {"results_dir": str(tmp_path / "results")},
             "grid": {"train.mixed_precision": ["fp16"]}}
    (tmp_path / "v.yaml").write_text(yaml.safe_dump(study))
    done = cli("sweep", "v.yaml", "--dry-run", cwd=tmp_path, timeout=120)
    one_error_line(done, "train.mixed_precision: fp16 is not supported")


def test_cell_help_lists_every_key_with_default_and_comment(tmp_path):
    done = cli("cell", "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    flat = flatten(CellConfig().to_dict())
    for key in flat:
        assert f"  {key}=" in done.stdout, key
    assert "  train.steps=200  # the floor of the \"epochs\" rule" in done.stdout
    assert "  train.mixed_precision=no  # " in done.stdout and "paper-repro config" in done.stdout


def test_config_command_prints_commented_yaml_that_reads_back(tmp_path):
    done = cli("config", "train.mixed_precision=no", "model.head.name=dwatt", "train.steps=50", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "mixed_precision: 'no'  # " in done.stdout and "name: dwatt  # " in done.stdout
    path = tmp_path / "cell.yaml"
    path.write_text(done.stdout)
    config = CellConfig.from_yaml(path)
    assert (config.train.mixed_precision, config.model.head.name, config.train.steps) == ("no", "dwatt", 50)
    one_error_line(cli("config", "train.mixed_precision=fp16", cwd=tmp_path), "fp16 is not supported")


# ---------------------------------------------------------------------------------------------- budget
def test_budget_offline_unresolvable_backbone(tmp_path):
    done = cli("budget", "--backbone", "no-such-org/no-such-encoder", cwd=tmp_path, HF_HUB_OFFLINE="1",
               HF_HUB_CACHE=str(tmp_path / "hub"), timeout=300)
    one_error_line(done, "backbone 'no-such-org/no-such-encoder'", "HF_HUB_OFFLINE is set")
    assert done.stdout == ""


def test_data_without_a_local_folder_or_the_hub_is_one_line(tmp_path):
    """No CoNLL-03 folder and an offline hub (the datasets library, not a stand-in): one line naming both ways to
    give the data, exit 2, no traceback."""
    done = cli("data", cwd=tmp_path, PAPER_REPRO_CONLL03="", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               HF_HOME=str(tmp_path / "hf"), HF_DATASETS_CACHE=str(tmp_path / "hf" / "datasets"))
    one_error_line(done, "no local CoNLL-03 folder (data.data_dir or $PAPER_REPRO_CONLL03)",
                   "the hub dataset 'tomaarsen/conll2003' could not be loaded", "scripts/ensure_env.sh")
    assert done.stdout == ""


@pytest.mark.parametrize("backbone", ["minilm-l6", "mpnet-base"])
def test_budget_write_gives_the_committed_csv(backbone, tmp_path):
    """`budget --write` on the packaged backbone (its real config, not the shapes tests/models/test_budget.py types)
    writes what results/budget/<backbone>.csv holds, the file its column of the README's budget table comes from."""
    if backbone == "mpnet-base":
        from paper_repro.models.backbone import BackboneError, load_backbone_config

        try:
            load_backbone_config(backbone)
        except BackboneError:
            pytest.skip("the packaged MPNet is not assembled here (paper-repro fetch-models)")
    out = tmp_path / "out" / f"{backbone}.csv"
    done = cli("budget", "--backbone", backbone, "--write", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith(f"wrote {out}\n")
    assert out.read_text() == (REPO / "results" / "budget" / f"{backbone}.csv").read_text()


def test_budget_write_to_a_folder_or_an_unwritable_path_is_one_line(tmp_path):
    one_error_line(cli("budget", "--write", str(tmp_path), cwd=tmp_path), "is a folder", "results/budget/minilm-l6.csv")
    (tmp_path / "file").write_text("")
    done = cli("budget", "--write", str(tmp_path / "file" / "b.csv"), cwd=tmp_path)   # its folder is a file
    one_error_line(done, "nothing written")
    assert files_under(tmp_path) == ["file"]


def test_budget_alias_typo(tmp_path):
    one_error_line(cli("budget", "--backbone", "mpnet_base", cwd=tmp_path), "did you mean mpnet-base?")


def test_budget_mpnet_without_its_wheels(tmp_path, monkeypatch, capsys):
    # the MPNet part wheels not installed and nothing assembled: the alias falls back to the hub id, offline
    from paper_repro.cli import main
    from paper_repro.models import backbone

    monkeypatch.setattr(backbone, "mpnet_part_files", lambda: None)
    monkeypatch.setenv("PAPER_REPRO_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert main(["budget", "--backbone", "mpnet-base"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("paper-repro: error: backbone 'mpnet-base' (sentence-transformers/all-mpnet-base-v2)")
    assert "WITH_MPNET=1 bash scripts/install.sh" in err


# ----------------------------------------------------------------------------------------- status, collect
def test_status_of_a_typo(tmp_path):
    (tmp_path / "results" / "smoke" / "cells").mkdir(parents=True)
    done = cli("status", "results/smoek", cwd=tmp_path)
    one_error_line(done, "results/smoek: no such study directory", "did you mean results/smoke?")
    assert done.stdout == ""
    # the results folder itself is not a study: say which studies are in it
    one_error_line(cli("status", "results", cwd=tmp_path), "not a study's results folder", "studies in it: smoke")
    ok = cli("status", "results/smoke", cwd=tmp_path)
    assert ok.returncode == 0 and ok.stdout.startswith("study smoke: 0 done"), ok.stderr


def test_collect_without_cells_writes_nothing(tmp_path):
    (tmp_path / "results" / "empty" / "cells").mkdir(parents=True)
    (tmp_path / "results" / "empty" / "cells" / "x.parquet").write_bytes(b"PAR1 partial")  # no done marker
    done = cli("collect", "results/empty", cwd=tmp_path)
    one_error_line(done, "results/empty: no finished cells to collect", "1 parquet files without a done marker")
    assert not (tmp_path / "results" / "empty" / "results.parquet").exists()
    one_error_line(cli("collect", "results/nothing", cwd=tmp_path), "results/nothing: no such study directory")
    assert files_under(tmp_path) == ["results/empty/cells/x.parquet"]


def test_a_closed_stdout_pipe_ends_quietly():
    """`paper-repro status ... | head`: the reader left before the output was written; exit 1, no traceback."""
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run([sys.executable, "-m", "paper_repro.cli", "status", "results/smoke", "--study",
                               "experiments/smoke.yaml"], cwd=REPO, stdout=write, stderr=subprocess.PIPE, text=True,
                              timeout=300)
    finally:
        os.close(write)
    assert done.returncode == 1 and done.stderr == "", done.stderr
