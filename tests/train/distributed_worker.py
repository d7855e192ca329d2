"""Worker for tests/train/test_distributed.py, started by `torch.distributed.run` (or plainly for 1 process).

    predict <backbone_dir> <conll_dir> <weights.pt> <out.json> <batch sizes, comma-separated> <max_length>
        evaluate fixed tagger weights on the valid and test splits with `predict`, for each eval batch size;
        the main process writes the predicted tags and depth weights
    cell <config.yaml>
        run one cell (`run_cell`) in every process
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


def cell_main(config_path) -> None:
    from paper_repro.config import CellConfig
    from paper_repro.train.cell import run_cell

    print("wrote", run_cell(CellConfig.from_yaml(config_path)), flush=True)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"predict": predict_main, "cell": cell_main}[command](*args)
