"""The peer a researcher would pick: a cell written the way transformers'
`examples/pytorch/token-classification/run_ner_no_trainer.py` does it, on the same data and budget as ours.

What it keeps from that script (the costs that make it the peer):
  * reads the raw splits and builds `datasets` datasets, then tokenizes them in every run with
    `tokenize_and_align_labels` (`label_all_tokens=False`: the label on the first subword, -100 elsewhere;
    `truncation=True` at `max_length`, so words past it are dropped, as the script drops them);
  * `AutoModelForTokenClassification` loaded from disk in every run;
  * `DataCollatorForTokenClassification` (padding to the batch max), a shuffled train DataLoader;
  * AdamW with `no_decay = ["bias", "LayerNorm.weight"]` groups and a linear schedule with warm-up;
  * evaluation with `model.eval()` over a DataLoader in dataset order (padding to the batch max), argmax,
    `pad_across_processes` + `gather`, `get_labels` (ids -> tags where the label is not -100), seqeval.
What it takes from our protocol so the two cells compute the same thing (and F1 is comparable):
  * the same few-shot subset, dev subsample, test split, steps, batch sizes, warm-up ratio, weight decay,
    seed, and the same eval points (log-spaced; the script evaluates once per epoch);
  * two learning rates as ours (backbone `train.backbone_lr`, classifier `train.head_lr`) unless
    `single_lr=True` (the script's one `--learning_rate` = `backbone_lr` for every parameter);
  * gradient clipping at `train.max_grad_norm` as ours (the script does not clip);
  * seqeval called directly (no `evaluate.load`, which needs the hub), strict IOB2 and default mode.
Not done (as with `--output_dir` unset): checkpointing, saving the model, trackers.
"""
from __future__ import annotations

import math
import time

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from datasets import Dataset, DatasetDict
from seqeval.metrics import f1_score
from seqeval.scheme import IOB2
from torch.utils.data import DataLoader
from transformers import (
    AutoConfig,
    AutoModelForTokenClassification,
    AutoTokenizer,
    DataCollatorForTokenClassification,
    get_scheduler,
)

from paper_repro.config import CellConfig
from paper_repro.data.conll import LABELS, Split
from paper_repro.models.backbone import PREFIX_SPACE_MODEL_TYPES, resolve_backbone
from paper_repro.train import device as device_setup
from paper_repro.train.cell import dev_indices, training_indices
from paper_repro.config import resolve_steps
from paper_repro.train.evaluate import eval_schedule

if __package__ in (None, ""):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import common  # noqa: E402


def as_columns(split: Split, indices: list[int]) -> dict[str, list]:
    return {
        "tokens": [list(split.sentences[i].tokens) for i in indices],
        "ner_tags": [list(split.sentences[i].tags) for i in indices],
    }


def run_peer(config: CellConfig, test_limit: int = 0, single_lr: bool = False) -> dict:
    """One peer cell; returns {"timings": {...}, "evals": [{split, step, f1, f1_strict}], "f1_test", ...}."""
    started = common.now()
    times: dict[str, float] = {}
    train_cfg = config.train
    # a fresh Accelerate state: a cell of another mixed precision may have run before in this process
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    accelerator = Accelerator(mixed_precision=train_cfg.mixed_precision, dynamo_backend="no")  # never from ACCELERATE_DYNAMO_*
    device_setup.configure(accelerator.device)   # the same attention kernels as ours on CUDA (CPU: nothing)
    set_seed(train_cfg.seed)

    with common.stopwatch(times, "load_s"):
        splits = common.read_splits(config, test_limit)
        train_idx, _ = training_indices(config, splits["train"])
        dev_idx = dev_indices(config, len(splits["valid"].sentences))
        raw_datasets = DatasetDict({
            "train": Dataset.from_dict(as_columns(splits["train"], train_idx)),
            "validation": Dataset.from_dict(as_columns(splits["valid"], dev_idx)),
            "test": Dataset.from_dict(as_columns(splits["test"], list(range(len(splits["test"].sentences))))),
        })
        label_list = list(LABELS)
        label_to_id = {label: i for i, label in enumerate(label_list)}
        source = resolve_backbone(config.model.backbone)
        model_config = AutoConfig.from_pretrained(source, num_labels=len(label_list))
        if model_config.model_type in PREFIX_SPACE_MODEL_TYPES:
            tokenizer = AutoTokenizer.from_pretrained(source, use_fast=True, add_prefix_space=True)
        else:
            tokenizer = AutoTokenizer.from_pretrained(source, use_fast=True)
        model = AutoModelForTokenClassification.from_pretrained(source, config=model_config)
        model.config.label2id = {label: i for i, label in enumerate(label_list)}
        model.config.id2label = dict(enumerate(label_list))

    max_length = config.model.max_length

    def tokenize_and_align_labels(examples):
        tokenized_inputs = tokenizer(
            examples["tokens"], max_length=max_length, padding=False, truncation=True, is_split_into_words=True
        )
        labels = []
        for i, label in enumerate(examples["ner_tags"]):
            word_ids = tokenized_inputs.word_ids(batch_index=i)
            previous_word_idx = None
            label_ids = []
            for word_idx in word_ids:
                if word_idx is None:                      # special tokens
                    label_ids.append(-100)
                elif word_idx != previous_word_idx:       # the first subword of a word
                    label_ids.append(label_to_id[label[word_idx]])
                else:                                     # label_all_tokens=False
                    label_ids.append(-100)
                previous_word_idx = word_idx
            labels.append(label_ids)
        tokenized_inputs["labels"] = labels
        return tokenized_inputs

    with common.stopwatch(times, "tokenize_s"):
        with accelerator.main_process_first():
            processed = raw_datasets.map(
                tokenize_and_align_labels, batched=True, remove_columns=raw_datasets["train"].column_names,
                desc="Running tokenizer on dataset",
            )

    data_collator = DataCollatorForTokenClassification(tokenizer, pad_to_multiple_of=None)
    train_dataloader = DataLoader(processed["train"], shuffle=True, collate_fn=data_collator,
                                  batch_size=train_cfg.batch_size)
    eval_dataloader = DataLoader(processed["validation"], collate_fn=data_collator,
                                 batch_size=train_cfg.eval_batch_size)
    test_dataloader = DataLoader(processed["test"], collate_fn=data_collator, batch_size=train_cfg.eval_batch_size)

    no_decay = ["bias", "LayerNorm.weight"]
    prefix = model.base_model_prefix + "."
    head_lr = train_cfg.backbone_lr if single_lr else train_cfg.head_lr
    optimizer_grouped_parameters = []
    for in_backbone, lr in ((True, train_cfg.backbone_lr), (False, head_lr)):
        named = [(n, p) for n, p in model.named_parameters() if n.startswith(prefix) == in_backbone]
        optimizer_grouped_parameters += [
            {"params": [p for n, p in named if not any(nd in n for nd in no_decay)],
             "weight_decay": train_cfg.weight_decay, "lr": lr},
            {"params": [p for n, p in named if any(nd in n for nd in no_decay)], "weight_decay": 0.0, "lr": lr},
        ]
    optimizer = torch.optim.AdamW([g for g in optimizer_grouped_parameters if g["params"]], lr=train_cfg.backbone_lr)
    # the cell's step rule and warmup, resolved on the peer's own training examples (one per sentence)
    max_train_steps, warmup_steps = resolve_steps(train_cfg, len(processed["train"]))
    lr_scheduler = get_scheduler(
        name="linear", optimizer=optimizer,
        num_warmup_steps=warmup_steps, num_training_steps=max_train_steps,
    )
    model, optimizer, train_dataloader, eval_dataloader, test_dataloader, lr_scheduler = accelerator.prepare(
        model, optimizer, train_dataloader, eval_dataloader, test_dataloader, lr_scheduler
    )

    def get_labels(predictions, references):
        y_pred = predictions.detach().cpu().clone().numpy()
        y_true = references.detach().cpu().clone().numpy()
        true_predictions = [
            [label_list[p] for (p, l) in zip(pred, gold_label) if l != -100]
            for pred, gold_label in zip(y_pred, y_true)
        ]
        true_labels = [
            [label_list[l] for (p, l) in zip(pred, gold_label) if l != -100]
            for pred, gold_label in zip(y_pred, y_true)
        ]
        return true_predictions, true_labels

    evals: list[dict] = []
    eval_seconds: list[float] = []

    def evaluate(split_name: str, dataloader, step: int) -> None:
        tick = common.now(accelerator.device)
        model.eval()
        all_predictions, all_references = [], []
        for batch in dataloader:
            with torch.no_grad():
                outputs = model(**batch)
            predictions = outputs.logits.argmax(dim=-1)
            labels = batch["labels"]
            predictions = accelerator.pad_across_processes(predictions, dim=1, pad_index=-100)
            labels = accelerator.pad_across_processes(labels, dim=1, pad_index=-100)
            predictions_gathered, labels_gathered = accelerator.gather((predictions, labels))
            preds, refs = get_labels(predictions_gathered, labels_gathered)
            all_predictions += preds
            all_references += refs
        f1 = f1_score(all_references, all_predictions, zero_division=0)   # conlleval (default mode), as the cell
        f1_strict = f1_score(all_references, all_predictions, mode="strict", scheme=IOB2, zero_division=0)
        model.train()
        eval_seconds.append(common.now(accelerator.device) - tick)
        evals.append({"split": split_name, "step": step, "f1": float(f1), "f1_strict": float(f1_strict)})

    eval_steps = set(eval_schedule(max_train_steps, train_cfg.eval_points, warmup_steps, train_cfg.eval_schedule))
    num_update_steps_per_epoch = len(train_dataloader)
    num_train_epochs = math.ceil(max_train_steps / num_update_steps_per_epoch)
    completed_steps, train_seconds, last_loss = 0, 0.0, float("nan")
    for _epoch in range(num_train_epochs):
        model.train()
        for batch in train_dataloader:
            tick = time.perf_counter()
            outputs = model(**batch)
            loss = outputs.loss
            accelerator.backward(loss)
            if train_cfg.max_grad_norm > 0:
                accelerator.clip_grad_norm_(model.parameters(), train_cfg.max_grad_norm)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad()
            completed_steps += 1
            if completed_steps in eval_steps or completed_steps == max_train_steps:
                common.synchronize(accelerator.device)   # as our loop: the observed totals include queued GPU work
            train_seconds += time.perf_counter() - tick
            if completed_steps in eval_steps:
                last_loss = float(loss.detach())
                evaluate("dev", eval_dataloader, completed_steps)
                if completed_steps == max_train_steps:
                    evaluate("test", test_dataloader, completed_steps)
            if completed_steps >= max_train_steps:
                break

    total = common.now(accelerator.device) - started
    test = [e for e in evals if e["split"] == "test"]
    dev = [e for e in evals if e["split"] == "dev" and e["step"] == max_train_steps]
    timings = {
        "load_s": times["load_s"], "tokenize_s": times["tokenize_s"], "train_s": train_seconds,
        "eval_s": float(sum(eval_seconds)), "evals": float(len(eval_seconds)),
        "step_time_s": train_seconds / max_train_steps, "total_s": total,
    }
    timings["other_s"] = total - sum(timings[k] for k in ("load_s", "tokenize_s", "train_s", "eval_s"))
    truncated = sum(len(ids) >= max_length for ids in processed["test"]["input_ids"])
    return {
        "timings": timings, "evals": evals, "train_loss": last_loss, "truncated_test_sentences": truncated,
        "f1_test": test[0]["f1"] if test else float("nan"),
        "f1_strict_test": test[0]["f1_strict"] if test else float("nan"),
        "f1_dev": dev[0]["f1"] if dev else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    """One peer cell on the benchmark's arguments; prints its timings and F1 (writes nothing)."""
    parser = common.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--single-lr", action="store_true", help="one learning rate (backbone_lr) for all parameters")
    args = parser.parse_args(argv)
    common.setup(args)
    config = common.cell_config(args, results_dir="unused", study="peer")
    result = run_peer(config, test_limit=args.test_limit, single_lr=args.single_lr)
    row = {**result["timings"], "f1_test": result["f1_test"], "f1_dev": result["f1_dev"]}
    print(common.format_table([row]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
