"""One study cell end to end: data -> few-shot subset -> backbone + fusion head -> training -> parquet + manifest."""
from __future__ import annotations

import copy
import functools
import json
import math
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from paper_repro.config import CellConfig, ConfigError, resolve_steps
from paper_repro.data.conll import Split, corpus_labels, load_conll03, split_statistics
from paper_repro.data.labels import LabelSet
from paper_repro.data.sampling import content_sha256, load_or_create_subset
from paper_repro.models.backbone import Backbone, encoder_shape, load_backbone
from paper_repro.models.tagger import build_tagger
from paper_repro.results import manifest as provenance
from paper_repro.results.schema import cell_table, type_columns
from paper_repro.results.store import write_cell
from paper_repro.train.evaluate import EntitySets, eval_model, eval_schedule, predict, score_by_type
from paper_repro.train.features import (
    Collator,
    Features,
    WindowDataset,
    LengthBucketBatchSampler,
    cached_features,
    length_grouped_batches,
    token_budget,
)
from paper_repro.train.allocator import keep_large_buffers
from paper_repro.train import device as device_setup
from paper_repro.train import layer_cache
from paper_repro.train.loop import TrainState, make_optimizer, train
from paper_repro.validate import validate_cell

SAMPLERS = ("sentences", "ktype", "full")
PROTOCOL = 2   # the protocol version recorded with every cell (README "Protocol")


@functools.lru_cache(maxsize=4)
def load_splits(data_dir: str | None, hub_id: str, convert_iob1: bool, strict_iob2: bool,
                hub_revision: str | None = None) -> dict[str, Split]:
    """The corpus' splits (CoNLL-03 unless `data.data_dir` names another corpus), read once per process (a sweep
    runs many cells on the same data)."""
    return load_conll03(data_dir, hub_id=hub_id, convert_iob1=convert_iob1, strict_iob2=strict_iob2,
                        hub_revision=hub_revision)


@functools.lru_cache(maxsize=2)
def pristine_backbone(name: str, revision: str | None = None) -> Backbone:
    """The pretrained backbone as loaded from disk (a hub id at `revision`); cells fine-tune deep copies of it."""
    return load_backbone(name, revision)


def check_choices(config: CellConfig) -> None:
    """Fail fast, before loading data or models, on a value that selects nothing (a ConfigError: the CLI's exit
    2): the sweep's checks (`paper_repro.validate.validate_cell`), so `cell` and `sweep` accept the same cells."""
    validate_cell(config)


def training_indices(config: CellConfig, train_split: Split,
                     label_set: LabelSet | None = None) -> tuple[list[int], dict]:
    """Indices of the few-shot training sentences and a record of the subset for the manifest. `label_set`: the
    corpus' (default: read from `train_split`); a corpus other than CoNLL-03's label set needs its own
    `data.subset_dir` (the default folder holds CoNLL-03's subset files)."""
    data = config.data
    if data.sampler not in SAMPLERS:
        raise ValueError(f"data.sampler: unknown sampler {data.sampler!r} (known: {', '.join(SAMPLERS)})")
    if data.sampler == "full":
        indices = list(range(len(train_split.sentences)))
        return indices, {"sampler": "full", "n_sentences": len(indices), "sha256": train_split.sha256 or content_sha256(train_split.sentences)}
    label_set = LabelSet.from_sentences(train_split.sentences) if label_set is None else label_set
    if data.subset_dir is None and not label_set.is_conll03():
        raise ConfigError(f"data.subset_dir: set a folder for this corpus' subset files (its entity types "
                          f"{', '.join(label_set.types)} are not CoNLL-03's; the default data/subsets/conll2003 "
                          f"holds CoNLL-03's)")
    subset = load_or_create_subset(train_split, data.sampler, data.size, data.data_seed, data.subset_dir,
                                   version=data.subset_version, types=label_set.types)
    return subset.indices, {
        "sampler": subset.sampler, "size": subset.size, "data_seed": subset.data_seed, "version": subset.version,
        "n_sentences": len(subset.indices), "entity_counts": subset.entity_counts, "sha256": subset.sha256,
    }


def dev_indices(config: CellConfig, n_dev: int) -> list[int]:
    """The fixed dev subsample scored at intermediate eval points (the same for every cell with this seed)."""
    size = config.data.dev_subsample
    if size <= 0 or size >= n_dev:
        return list(range(n_dev))
    rng = np.random.default_rng(config.data.dev_subsample_seed)
    return sorted(rng.choice(n_dev, size=size, replace=False).tolist())


def eval_loader(features: Features, batch_size: int, collator: Collator) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        WindowDataset(features), batch_sampler=length_grouped_batches(features, batch_size, token_budget(batch_size)),
        collate_fn=collator,
    )


def fused_layer_names(num_layers: int, fuse_embeddings: bool) -> list[str]:
    return (["emb"] if fuse_embeddings else []) + [f"L{i}" for i in range(1, num_layers + 1)]


def depth_item_names(head: torch.nn.Module, layer_names: list[str]) -> list[str]:
    """What the head's depth attention weighs: the fused layers, or blocks of them ("L1-L2", attnres_block)."""
    block_of = getattr(head, "block_of", None)
    if block_of is None:
        return layer_names
    blocks: dict[int, list[str]] = {}
    for name, block in zip(layer_names, block_of.tolist()):
        blocks.setdefault(block, []).append(name)
    return [group[0] if len(group) == 1 else f"{group[0]}-{group[-1]}" for group in blocks.values()]


def per_device_batch(batch_size: int, processes: int) -> int:
    """`train.batch_size` is the global batch (what the run_id records): each of `processes` processes takes an
    equal share, so the optimisation does not change with the number of processes."""
    if batch_size % processes:
        raise ConfigError(f"train.batch_size {batch_size} does not divide over {processes} processes "
                          f"(it is the global batch; give a multiple of {processes})")
    return batch_size // processes


def tracker_config(config: CellConfig) -> dict[str, object]:
    """The flattened config as tracker hyper-parameters (scalars only; head options as JSON text)."""
    flat = {key: value for key, value in config.identity().items()}
    return {key: (value if isinstance(value, (int, float, str, bool)) else json.dumps(value, sort_keys=True))
            for key, value in flat.items()}


def tracker_run_name(tracker: str, run_id: str) -> dict[str, object]:
    """Tracker-specific init kwargs that name the run by its run_id."""
    if tracker == "wandb":
        return {"name": run_id}
    if tracker == "mlflow":
        return {"run_name": run_id}
    return {}


def show_progress(accelerator: Accelerator) -> bool:
    return accelerator.is_main_process and sys.stderr.isatty()


def run_cell(config: CellConfig) -> Path:
    """Train and evaluate one cell; write `<results_dir>/<study>/cells/<run_id>.parquet` + manifest + done marker."""
    check_choices(config)
    keep_large_buffers()   # gradients reuse heap memory across steps (train/allocator.py; numbers unchanged)
    started, cpu_started = time.perf_counter(), time.process_time()
    timings: dict[str, object] = {}
    train_cfg, model_cfg = config.train, config.model
    if train_cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    trackers = None if train_cfg.log_with == "none" else [train_cfg.log_with]
    accelerator = device_setup.make_accelerator(train_cfg, log_with=trackers,
                                                project_dir=str(Path(config.results_dir) / config.study / "trackers"))
    if trackers:  # the run is named by its run_id; its hyper-parameters are the flattened config
        accelerator.init_trackers(config.study, config=tracker_config(config),
                                  init_kwargs={train_cfg.log_with: tracker_run_name(train_cfg.log_with, config.run_id)})
    device_settings = device_setup.configure(accelerator.device, train_cfg)
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != accelerator.num_processes:  # e.g. torchrun on a CPU-only host: N copies racing on one cell
        raise RuntimeError(
            f"launched as {launched} processes but Accelerate runs {accelerator.num_processes}; "
            "on a CPU-only host launch with `accelerate launch --cpu`"
        )
    progress = show_progress(accelerator)

    tick = time.perf_counter()
    splits = load_splits(config.data.data_dir, config.data.hub_id, config.data.convert_iob1, config.data.strict_iob2,
                         config.data.hub_revision)
    label_set = corpus_labels(splits)   # read from the training split (CoNLL-03: LABELS, unchanged)
    train_idx, subset_record = training_indices(config, splits["train"], label_set)
    dev_idx = dev_indices(config, len(splits["valid"].sentences))
    pristine = pristine_backbone(model_cfg.backbone, model_cfg.revision)
    timings["load_s"] = time.perf_counter() - tick

    tick = time.perf_counter()
    tokenizer, max_length = pristine.tokenizer, model_cfg.max_length
    train_features = cached_features(splits["train"], tokenizer, max_length, label_set).select(train_idx)
    dev_features = cached_features(splits["valid"], tokenizer, max_length, label_set).select(dev_idx)
    test_split = splits["test"]
    test_features = cached_features(test_split, tokenizer, max_length, label_set).select(
        list(range(len(test_split.sentences))))
    timings["tokenize_s"] = time.perf_counter() - tick
    frozen = None
    if model_cfg.finetune == "frozen":  # the encoder never runs: its cached hidden states do (train/layer_cache.py)
        tick, cpu_tick = time.perf_counter(), time.process_time()
        parts = {"train": (splits["train"], train_features), "dev": (splits["valid"], dev_features),
                 "test": (test_split, test_features)}
        frozen = layer_cache.frozen_inputs(pristine, model_cfg, parts, accelerator.device, progress, label_set)
        # a cache built here (the backbone's first frozen cell) is a one-off, not the cell's cost (sweep/cost.py)
        timings["layer_cache_s"] = time.perf_counter() - tick
        timings["layer_cache_cpu_s"] = time.process_time() - cpu_tick

    steps, warmup = resolve_steps(train_cfg, len(train_features.windows))
    set_seed(train_cfg.seed, deterministic=train_cfg.deterministic)
    torch.use_deterministic_algorithms(train_cfg.deterministic)  # set_seed never turns it off: not for the next cell
    # the classifier and pooling are initialised from their own generator (same init for every method); the
    # global RNG is re-seeded after the head is built, so dropout masks and batch order do not depend on it
    if frozen is None:
        model, budget_record = build_tagger(copy.deepcopy(pristine.model), model_cfg, num_labels=len(label_set),
                                            seed=train_cfg.seed)
    else:  # head + pooling + classifier only, on the cached states; initialised as a full cell's at this seed
        model, budget_record = layer_cache.frozen_tagger(pristine.model, model_cfg, len(label_set), train_cfg.seed,
                                                         frozen.layers)
    tagger = model.tagger if frozen is not None else model
    tagger.words_only_training = train_cfg.head_words_only    # training steps only (FusionTagger.words)
    if train_cfg.freeze_word_embeddings:  # before the optimizer: its groups take only parameters that need a gradient
        model.backbone.get_input_embeddings().weight.requires_grad_(False)
    set_seed(train_cfg.seed, deterministic=train_cfg.deterministic)
    optimizer, scheduler = make_optimizer(model, train_cfg, steps, warmup)
    collator = Collator(tokenizer.pad_token_id)
    collators = frozen.collators if frozen else {"train": collator, "dev": collator, "test": collator}
    order = torch.Generator().manual_seed(train_cfg.seed)
    train_loader = torch.utils.data.DataLoader(
        WindowDataset(train_features), batch_size=per_device_batch(train_cfg.batch_size, accelerator.num_processes),
        shuffle=True, generator=order,
        collate_fn=collators["train"],
    )
    if train_cfg.length_bucket_tokens > 0:  # similar-length batches (features.LengthBucketBatchSampler)
        train_loader = torch.utils.data.DataLoader(WindowDataset(train_features), collate_fn=collators["train"],
            batch_sampler=LengthBucketBatchSampler(train_features, per_device_batch(train_cfg.batch_size,
                accelerator.num_processes), train_cfg.length_bucket_tokens, generator=order))
    dev_loader = eval_loader(dev_features, train_cfg.eval_batch_size, collators["dev"])
    test_loader = eval_loader(test_features, train_cfg.eval_batch_size, collators["test"])
    model, optimizer, train_loader, dev_loader, test_loader, scheduler = accelerator.prepare(
        model, optimizer, train_loader, dev_loader, test_loader, scheduler
    )
    device_settings["compiled"] = device_setup.is_compiled(model)   # train.compile, as Accelerate applied it

    git_sha, git_dirty = provenance.git_state()
    versions = provenance.package_versions()
    device = provenance.device_description(accelerator.device, accelerator.num_processes)
    head_cfg = model_cfg.head
    fixed_columns = {
        "run_id": config.run_id, "study": config.study, "stage": config.stage, "protocol": PROTOCOL,
        "backbone": model_cfg.backbone, "method": head_cfg.name, "finetune": model_cfg.finetune,
        "pooling": model_cfg.pooling, "fuse_embeddings": head_cfg.fuse_embeddings,
        "head_params": budget_record["head_params"], "budget_target": budget_record["target"],
        "sampler": config.data.sampler, "size": config.data.size, "data_seed": config.data.data_seed,
        "seed": train_cfg.seed, "backbone_lr": train_cfg.backbone_lr, "head_lr": train_cfg.head_lr,
        "steps_total": steps, "warmup_steps": warmup, "batch_size": train_cfg.batch_size,
        "git_sha": git_sha, "git_dirty": git_dirty, "config_hash": config.config_hash(),
        "subset_sha256": subset_record["sha256"], "versions": json.dumps(versions, sort_keys=True), "device": device,
    }
    rows: list[dict] = []
    eval_seconds: list[float] = []
    final: dict[str, object] = {}
    gold_entities: dict[str, EntitySets] = {}

    def evaluate(split_name: str, loader, features: Features, split: Split, indices: list[int], state: TrainState, loss: float):
        tick = time.perf_counter()
        sentences = {i: split.sentences[i] for i in indices}
        # depth-attention statistics are recorded once, at the final test evaluation
        predicted, depth = predict(eval_model(model, accelerator, train_cfg.eval_precision), loader, accelerator,
                                   features, sentences, progress,
                                   depth_weights=split_name == "test", label_set=label_set)
        if split_name not in gold_entities:   # the same gold at every evaluation of a split: its entities once
            gold_entities[split_name] = EntitySets.of([list(split.sentences[i].tags) for i in indices])
        metrics, by_type = score_by_type(gold_entities[split_name], [predicted[i] for i in indices], label_set.types)
        seconds = time.perf_counter() - tick
        eval_seconds.append(seconds)
        rows.append({
            **fixed_columns, **metrics, **type_columns(by_type),   # f1_PER..f1_MISC (None if absent), f1_by_type
            "step": state.step, "examples_seen": state.examples_seen, "split": split_name,
            "eval_sentences": len(indices), "train_loss": loss, "wall_clock_s": state.train_seconds, "eval_s": seconds,
        })
        if split_name == "test":
            final["depth_attention"] = depth
        if trackers:
            logged = {**metrics, **{f"f1_{t}": v for t, v in by_type.items() if f"f1_{t}" not in metrics}}
            accelerator.log({f"{split_name}/{k}": v for k, v in logged.items() if math.isfinite(v)}, step=state.step)

    def on_eval(state: TrainState, loss: float) -> None:
        evaluate("dev", dev_loader, dev_features, splits["valid"], dev_idx, state, loss)
        if state.step == steps:
            evaluate("test", test_loader, test_features, test_split, list(range(len(test_split.sentences))), state, loss)

    eval_steps = eval_schedule(steps, train_cfg.eval_points, warmup, train_cfg.eval_schedule)
    state = train(model, optimizer, scheduler, train_loader, accelerator, train_cfg, steps, eval_steps, on_eval,
                  progress)
    timings.update(train_s=state.train_seconds, eval_s=eval_seconds, step_time_s=state.train_seconds / steps)
    timings["total_s"] = time.perf_counter() - started
    # every thread of this process (sweep/cost.py plans with it); under `accelerate launch` with N processes, the
    # main process's share only (the manifest's `device` says how many ran)
    timings["cpu_s"] = time.process_time() - cpu_started
    if trackers:
        accelerator.end_training()

    head = accelerator.unwrap_model(model).head
    layer_names = fused_layer_names(pristine.num_layers, head_cfg.fuse_embeddings)
    if device_settings["compiled"]:   # what dynamo compiled in this cell (0 graphs: it ran eager after all)
        device_settings["compile_stats"] = device_setup.compile_stats()
    manifest = {
        "run_id": config.run_id,
        "config": config.to_dict(),
        "config_hash": config.config_hash(),
        "budget": budget_record,
        "subset": subset_record,
        "dev_subsample": {"seed": config.data.dev_subsample_seed, "n_sentences": len(dev_idx)},
        "data": {name: split_statistics(split, label_set.types) for name, split in splits.items()},
        "labels": {"types": list(label_set.types), "labels": list(label_set.labels)},
        "features": {
            "train_windows": len(train_features.windows), "lost_words_train_subset": train_features.lost_words,
            "lost_words_test": test_features.lost_words, "truncated_words_test": test_features.truncated_words,
        },
        "steps": {"rule": train_cfg.step_rule, "total": steps, "warmup": warmup,
                  "train_windows": len(train_features.windows),
                  "epochs": steps * train_cfg.batch_size / max(1, len(train_features.windows))},
        "eval_steps": eval_steps,
        "timings": timings,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "versions": versions,
        # what loaded (the hub commit sha, or the packaged wheel's version) and its size (what prices cells elsewhere)
        "backbone": {**pristine.provenance, "shape": encoder_shape(pristine.model.config)},
        "git": {"sha": git_sha, "dirty": git_dirty},
        "device": device,
        "device_settings": device_settings,
        # train.head_words_only as it ran: the training forwards that took the word-initial path (deeper: none)
        "head_tokens_in_training": "words" if tagger.took_words_path else "all",
        **provenance.host_description(),
    }
    if frozen is not None:
        manifest["layer_cache"] = frozen.record
    if final.get("depth_attention"):
        manifest["depth_attention"] = {"layers": depth_item_names(head, layer_names), "per_type": final["depth_attention"]}
    if hasattr(head, "weights") and callable(head.weights):
        weights = head.weights().detach().float().cpu().tolist()
        manifest["scalarmix_weights"] = {"layers": layer_names[-len(weights):], "weights": weights}
    if not accelerator.is_main_process:
        return Path()
    return write_cell(config.results_dir, config.study, config.run_id, cell_table(rows), manifest,
                      diff=provenance.git_diff() if git_dirty else None)
