"""Worker for tests/train/test_distributed.py, started by `torch.distributed.run` (or plainly for 1 process).

    predict <backbone_dir> <conll_dir> <weights.pt> <out.json> <batch sizes, comma-separated> <max_length>
        evaluate fixed tagger weights on the valid and test splits with `predict`, for each eval batch size;
        the main process writes the predicted tags and depth weights
    cell <config.yaml>
        run one cell (`run_cell`) in every process
    train <backbone_dir> <conll_dir> <out_dir> <steps> <warmup>
        train a tiny dwatt tagger for <steps> optimizer steps with the loop of `run_cell` (an Accelerator built
        like run_cell's, `step_scheduler_with_optimizer=False`); every process writes `rank<i>.json` (the
        learning rates after every step, a hash of its final weights) and `rank<i>.pt` (its final weights)
"""
from __future__ import annotations

import json
import sys

import torch
from accelerate import Accelerator


def predict_main(backbone_dir, conll_dir, weights, out, batch_sizes, max_length) -> None:
    from paper_repro.config import CellConfig, apply_overrides
    from paper_repro.data.conll import LABELS, load_conll03
    from paper_repro.models.backbone import load_backbone
    from paper_repro.models.tagger import build_tagger
    from paper_repro.train.cell import eval_loader
    from paper_repro.train.evaluate import predict
    from paper_repro.train.features import Collator, tokenize_split

    accelerator = Accelerator(cpu=True)
    backbone = load_backbone(backbone_dir)
    model_config = apply_overrides(CellConfig(), {"model.head.name": "dwatt", "model.dropout": 0.0}).model
    model, _ = build_tagger(backbone.model, model_config, num_labels=len(LABELS))
    model.load_state_dict(torch.load(weights))
    model = accelerator.prepare(model)
    splits = load_conll03(conll_dir)
    results = {"num_processes": accelerator.num_processes}
    for batch_size in [int(b) for b in batch_sizes.split(",")]:
        for name in ("valid", "test"):
            split = splits[name]
            features = tokenize_split(split, backbone.tokenizer, int(max_length)).select(list(range(len(split.sentences))))
            loader = accelerator.prepare(eval_loader(features, batch_size, Collator(backbone.tokenizer.pad_token_id)))
            predicted, depth = predict(model, loader, accelerator, features, dict(enumerate(split.sentences)))
            results[f"{name}-{batch_size}"] = {
                "windows": len(features.windows), "batches": len(loader),
                "tags": [predicted[i] for i in range(len(split.sentences))], "depth": depth,
            }
    if accelerator.is_main_process:
        with open(out, "w") as handle:
            json.dump(results, handle)
    accelerator.wait_for_everyone()


def weights_hash(state: dict) -> str:
    import hashlib

    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def train_main(backbone_dir, conll_dir, out_dir, steps, warmup) -> None:
    from pathlib import Path

    from accelerate.utils import set_seed
    from transformers import get_linear_schedule_with_warmup

    from paper_repro.config import CellConfig, TrainConfig, apply_overrides
    from paper_repro.data.conll import LABELS, load_conll03
    from paper_repro.models.backbone import load_backbone
    from paper_repro.models.tagger import build_tagger
    from paper_repro.train.features import Collator, WindowDataset, tokenize_split
    from paper_repro.train.loop import make_optimizer, train

    steps, warmup, out_dir = int(steps), int(warmup), Path(out_dir)
    # as run_cell: the scheduler is stepped once per optimizer step in every process (the launcher sets
    # ACCELERATE_USE_CPU, as `accelerate launch --cpu` does)
    accelerator = Accelerator(step_scheduler_with_optimizer=False)
    rank = accelerator.process_index
    backbone = load_backbone(backbone_dir)
    config = TrainConfig(step_rule="fixed", steps=steps, warmup_steps=warmup, batch_size=2, backbone_lr=1e-3, head_lr=1e-2)
    model_config = apply_overrides(CellConfig(), {"model.head.name": "dwatt", "model.dropout": 0.1}).model
    set_seed(0)
    model, _ = build_tagger(backbone.model, model_config, num_labels=len(LABELS), seed=0)
    set_seed(0)
    initial = weights_hash(model.state_dict())
    optimizer, scheduler = make_optimizer(model, config, steps, warmup)
    features = tokenize_split(load_conll03(conll_dir)["train"], backbone.tokenizer, 24)
    loader = torch.utils.data.DataLoader(
        WindowDataset(features), batch_size=config.batch_size, shuffle=True,
        generator=torch.Generator().manual_seed(0), collate_fn=Collator(backbone.tokenizer.pad_token_id),
    )
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    lrs: list[list[float]] = []

    def on_eval(state, loss) -> None:  # called after every step (after scheduler.step())
        lrs.append([group["lr"] for group in optimizer.param_groups])

    state = train(model, optimizer, scheduler, loader, accelerator, config, steps, list(range(1, steps + 1)), on_eval)
    final = {k: v.detach().cpu().clone() for k, v in accelerator.unwrap_model(model).state_dict().items()}
    torch.save(final, out_dir / f"rank{rank}.pt")

    # Accelerate's default wrapper, for contrast: it steps the schedule once per process per call
    default = Accelerator()
    probe = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    probe, probe_schedule = default.prepare(probe, get_linear_schedule_with_warmup(probe, warmup, steps))
    try:
        train(model, probe, probe_schedule, loader, default, config, 1, [], on_eval)
        refused = ""
    except ValueError as error:
        refused = str(error)
    probe.step()
    probe_schedule.step()
    record = {
        "num_processes": accelerator.num_processes, "steps": state.step, "lrs": lrs,
        "initial_lrs": [group["initial_lr"] for group in optimizer.param_groups],
        "scheduler_steps": scheduler.scheduler.last_epoch, "initial_hash": initial, "final_hash": weights_hash(final),
        "examples_seen": state.examples_seen, "default_refused": refused,
        "default_steps_per_call": probe_schedule.scheduler.last_epoch,
    }
    (out_dir / f"rank{rank}.json").write_text(json.dumps(record))
    accelerator.wait_for_everyone()


def cell_main(config_path) -> None:
    from paper_repro.config import CellConfig
    from paper_repro.train.cell import run_cell

    print("wrote", run_cell(CellConfig.from_yaml(config_path)), flush=True)


if __name__ == "__main__":
    from paper_repro.train.loop import close_process_group

    command, *args = sys.argv[1:]
    {"predict": predict_main, "cell": cell_main, "train": train_main}[command](*args)
    close_process_group()   # as `paper-repro cell` does: no rank exits with the group alive
