"""Evaluation and training across processes: 2 CPU processes (gloo, `torch.distributed.run`).

Evaluation: 2 processes predict exactly what 1 does. The eval loader's batches are length-grouped and of
unequal size, and Accelerate evens out the last round of batches by repeating early ones: every window must
still be predicted exactly once, and no repeated window may count twice (tags, entity counts, depth-attention
weights).

Training: under 2 processes the learning rate follows the single-process schedule over the whole step budget
(Accelerate's default scheduler wrapper would step it twice per optimizer step and reach 0 at half the
budget), and both processes end with identical weights.
"""
from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import get_linear_schedule_with_warmup

from paper_repro.config import CellConfig, apply_overrides
from paper_repro.data.conll import LABELS, entity_counts, load_conll03
from paper_repro.models.backbone import load_backbone
from paper_repro.models.tagger import build_tagger
from paper_repro.train.evaluate import score

WORKER = Path(__file__).with_name("distributed_worker.py")
REPO = Path(__file__).resolve().parents[2]
MAX_LENGTH = 12            # the long invented sentences span several windows
BATCH_SIZES = "3,4,64"     # odd batch counts, partial last batches, and one batch for all


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(args: list[str], processes: int, timeout: int = 240, check: bool = True, **env) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **env}
    if processes == 1:
        command = [sys.executable, str(WORKER), *args]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
                   "--master_addr=127.0.0.1", f"--master_port={free_port()}", str(WORKER), *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert done.returncode == 0 or not check, done.stderr[-4000:]
    return done


@pytest.fixture(scope="module")
def predictions(tiny_backbone_dir, tiny_conll_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("distributed")
    backbone = load_backbone(str(tiny_backbone_dir))
    model_config = apply_overrides(CellConfig(), {"model.head.name": "dwatt", "model.dropout": 0.0}).model
    torch.manual_seed(3)
    model, _ = build_tagger(copy.deepcopy(backbone.model), model_config, num_labels=len(LABELS))
    with torch.no_grad():  # a random classifier that predicts a mix of tags, entities included
        model.classifier.weight.normal_(0, 2.0)
    torch.save(model.state_dict(), folder / "weights.pt")
    results = {}
    for processes in (1, 2):
        out = folder / f"predict-{processes}.json"
        launch(["predict", str(tiny_backbone_dir), str(tiny_conll_dir), str(folder / "weights.pt"), str(out),
                BATCH_SIZES, str(MAX_LENGTH)], processes)
        results[processes] = json.loads(out.read_text())
    return results


def test_two_processes_predict_like_one(predictions, tiny_conll_dir):
    one, two = predictions[1], predictions[2]
    assert (one["num_processes"], two["num_processes"]) == (1, 2)
    splits = load_conll03(tiny_conll_dir)
    keys = [k for k in one if k != "num_processes"]
    assert any(one[k]["batches"] % 2 for k in keys)  # some loader had an odd number of batches to even out
    for key in keys:
        gold = [list(s.tags) for s in splits[key.split("-")[0]].sentences]
        assert [len(t) for t in two[key]["tags"]] == [len(g) for g in gold]
        assert two[key]["tags"] == one[key]["tags"], key
        counts = sum((entity_counts(tags) for tags in two[key]["tags"]), start=entity_counts([]))
        assert counts == sum((entity_counts(tags) for tags in one[key]["tags"]), start=entity_counts([]))
        assert sum(counts.values()) > 0  # the random classifier predicts entities: the comparison means something
        assert score(gold, two[key]["tags"]) == pytest.approx(score(gold, one[key]["tags"]), nan_ok=True)


def test_two_processes_depth_weights_like_one(predictions):
    one, two = predictions[1], predictions[2]
    for key in (k for k in one if k != "num_processes"):
        for group, weights in one[key]["depth"].items():
            assert two[key]["depth"][group] == pytest.approx(weights, abs=1e-5), (key, group)


def test_two_process_cell(tiny_cell_config, tmp_path):
    config = tiny_cell_config(tmp_path, "model.head.name=dwatt", "model.max_length=12", "train.eval_batch_size=3",
                              "train.step_rule=fixed", "train.steps=3", "train.warmup_steps=1")
    path = tmp_path / "cell.yaml"
    path.write_text(config.to_yaml())
    # what `accelerate launch --cpu` sets: without it Accelerate would not join the processes on a CPU host
    done = launch(["cell", str(path)], 2, ACCELERATE_USE_CPU="yes")
    assert done.stdout.count("wrote") == 2
    cells = tmp_path / "results" / "tiny" / "cells"
    # (+ a .diff when the checkout has uncommitted changes)
    assert sorted(p.name for p in cells.iterdir() if p.suffix != ".diff") == sorted(f"{config.run_id}{s}" for s in (".done", ".manifest.json", ".parquet"))
    import pyarrow.parquet as pq

    df = pq.read_table(cells / f"{config.run_id}.parquet").to_pandas()
    assert df.eval_sentences.tolist() == [15, 15, 15]
    # train.batch_size (4) is the global batch: 2 windows per process per step, the same 4 as with 1 process
    assert df.examples_seen.iloc[-1] == 3 * 4
    assert json.loads((cells / f"{config.run_id}.manifest.json").read_text())["device"].endswith("x2")


def test_unjoined_processes_refuse_the_cell(tiny_cell_config, tmp_path):
    # torchrun on a CPU-only host without the CPU flag: each process would run (and write) the same cell alone
    config = tiny_cell_config(tmp_path)
    path = tmp_path / "cell.yaml"
    path.write_text(config.to_yaml())
    done = launch(["cell", str(path)], 2, check=False, ACCELERATE_USE_CPU="no")
    assert done.returncode != 0 and "accelerate launch --cpu" in done.stderr
    assert not (tmp_path / "results").exists()


TRAIN_STEPS, TRAIN_WARMUP = 10, 3


def single_process_schedule(steps: int, warmup: int) -> list[float]:
    """The lr factor after each of `steps` optimizer steps, one scheduler step per optimizer step."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = get_linear_schedule_with_warmup(optimizer, warmup, steps)
    factors = []
    for _ in range(steps):
        optimizer.step()
        schedule.step()
        factors.append(optimizer.param_groups[0]["lr"])
    return factors


def test_two_process_training_follows_the_single_process_schedule(tiny_backbone_dir, tiny_conll_dir, tmp_path):
    launch(["train", str(tiny_backbone_dir), str(tiny_conll_dir), str(tmp_path), str(TRAIN_STEPS), str(TRAIN_WARMUP)],
           2, ACCELERATE_USE_CPU="yes")
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    factors = single_process_schedule(TRAIN_STEPS, TRAIN_WARMUP)
    assert factors[-1] == 0 and all(f > 0 for f in factors[:-1])  # 0 only after the last step
    for record in ranks:
        assert record["num_processes"] == 2 and record["steps"] == TRAIN_STEPS
        assert record["scheduler_steps"] == TRAIN_STEPS  # once per optimizer step, not once per process
        assert len(record["lrs"]) == TRAIN_STEPS
        assert len(set(record["initial_lrs"])) == 2  # backbone and head peaks
        for after_step, lrs in zip(factors, record["lrs"]):
            assert lrs == pytest.approx([peak * after_step for peak in record["initial_lrs"]], rel=1e-9, abs=1e-15)
        assert all(lr > 0 for lr in record["lrs"][TRAIN_STEPS // 2])  # still training at half the budget
        # Accelerate's default wrapper, for contrast: two schedule steps per call, which train() refuses
        assert record["default_steps_per_call"] == 2
        assert "step_scheduler_with_optimizer=False" in record["default_refused"]
    # both processes hold the same weights, changed by training on different shards of the data
    assert ranks[0]["initial_hash"] == ranks[1]["initial_hash"] != ranks[0]["final_hash"]
    assert ranks[0]["final_hash"] == ranks[1]["final_hash"]
    weights = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        torch.testing.assert_close(weights[0][key], weights[1][key], rtol=0, atol=0)
