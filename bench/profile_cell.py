"""Where the time of a cell goes: train-step parts, padding waste, the optimizer's embedding share, eval parts.

Part 1 (train): `--warmup` + `--steps` training steps of a fresh tagger (`--head`, default `last`) on real batches of
the few-shot subset, each step cut into timed parts: collate (the train loader's `Collator` on the same windows),
backbone forward (with all hidden states), fusion (stack + head + pooling + dropout + classifier), loss, backward,
clip, AdamW, scheduler + zero_grad. Padding waste = padded token slots / all slots of the batches.
Part 2 (optimizer): fused AdamW and the clip-norm computation on copies of the word-embedding table alone and on
the other parameters alone (random gradients), to split the optimizer's cost.
Part 3 (eval): `--eval-passes` passes of the product's `predict` over the dev subsample (`--dev`) and the product's
`score`, with the eval loader's iteration (collate) and the model's forward timed from the outside (a wrapping
iterator and module): post-processing = predict - loader - forward. Padding waste of the eval batches.
Part 4 (`--cell`): one `run_cell` (warm caches) and its manifest timings, optionally under cProfile
(`--cprofile`, the top functions by cumulative time; cProfile slows the Python-heavy parts).
`--torch-profile N`: torch.profiler over N training steps, top ops by self CPU time.

  python bench/profile_cell.py --backbone minilm-l6 --cell
  python bench/profile_cell.py --size 20 --dev 50 --steps 3 --warmup 1 --test-limit 50   # validation only
"""
from __future__ import annotations

import cProfile
import io
import pstats
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import common  # noqa: E402

BENCH = "profile_cell"
TRAIN_PARTS = ("collate_s", "backbone_fwd_s", "fusion_fwd_s", "loss_s", "backward_s", "clip_s", "optimizer_s",
               "zero_grad_s")


def now(device=None) -> float:
    """The clock of every timed region: `device` (CUDA/MPS) synchronised first (`common.now`)."""
    return common.now(device)


def train_breakdown(work, args, results) -> dict[str, float]:
    """Median seconds of each part of a training step (the product loop's order of operations)."""
    import torch

    from paper_repro.train.loop import cross_entropy

    model, optimizer, scheduler, accelerator, _ = work.build(args.head)
    tagger = accelerator.unwrap_model(model)
    device = accelerator.device
    parts: dict[str, list[float]] = {p: [] for p in (*TRAIN_PARTS, "step_s")}
    real = slots = 0
    for i, batch in enumerate(work.batches):
        t0 = now(device)
        windows = [work.train_features.windows[j] for j in batch["window_id"].tolist()]
        work.collator(list(zip(batch["window_id"].tolist(), windows)))
        batch = common.on_device(batch, device)          # a prepared loader's copy (CPU: nothing)
        t1 = now(device)
        num_words = batch["labels"].shape[1]
        hidden = tagger.backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                 output_hidden_states=True)
        t2 = now(device)
        layers = torch.stack(hidden.hidden_states[tagger.first_fused:])
        tokens = tagger.head(layers, batch["attention_mask"])
        words = tagger.pooling(tokens, batch["word_index"], num_words)
        logits = tagger.classifier(tagger.dropout(words))
        t3 = now(device)
        loss = cross_entropy(logits, batch["labels"])
        if not torch.isfinite(loss):
            raise RuntimeError("non-finite loss")
        t4 = now(device)
        accelerator.backward(loss)
        t5 = now(device)
        accelerator.clip_grad_norm_(model.parameters(), work.config.train.max_grad_norm)
        t6 = now(device)
        optimizer.step()
        t7 = now(device)
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        t8 = now(device)
        if i < args.warmup:
            continue
        for name, (a, b) in zip(TRAIN_PARTS, [(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5), (t5, t6), (t6, t7),
                                              (t7, t8)]):
            parts[name].append(b - a)
        parts["step_s"].append(t8 - t1)
        real += int(batch["attention_mask"].sum())
        slots += batch["attention_mask"].numel()
    for name, values in parts.items():
        for k, v in enumerate(values):
            results.add(args.head, f"train_{name}", v, "s", step=k)
    summary = {name: common.median(values) for name, values in parts.items()}
    summary["padding_fraction"] = 1 - real / slots
    del model, optimizer, scheduler
    return summary


def optimizer_split(work, args) -> dict[str, float]:
    """Fused AdamW step and grad-norm time on the word-embedding table alone vs the other parameters alone."""
    import torch

    tagger = work.build(args.head)[0]
    embedding = tagger.backbone.get_input_embeddings().weight
    device = embedding.device
    others = [p for p in tagger.parameters() if p is not embedding and p.requires_grad]
    out = {"word_embedding_params": float(embedding.numel()), "other_params": float(sum(p.numel() for p in others))}
    generator = torch.Generator().manual_seed(0)
    for name, params in (("word_embedding", [embedding]), ("other", others)):
        copies = [torch.nn.Parameter(p.detach().clone()) for p in params]
        for p in copies:
            p.grad = (torch.randn(p.shape, generator=generator) * 1e-3).to(p.device)
        opt = torch.optim.AdamW(copies, lr=1e-5, weight_decay=0.01, fused=True)
        opt.step()
        times, norms = [], []
        for _ in range(args.opt_repeats):
            t0 = now(device)
            opt.step()
            t1 = now(device)
            torch.nn.utils.clip_grad_norm_(copies, 1e9)
            t2 = now(device)
            times.append(t1 - t0)
            norms.append(t2 - t1)
        out[f"adamw_{name}_s"] = common.median(times)
        out[f"clip_norm_{name}_s"] = common.median(norms)
        t0 = now(device)
        for _ in range(args.opt_repeats):
            for p in copies:
                p.grad = torch.zeros_like(p)
        out[f"grad_alloc_zero_{name}_s"] = (now(device) - t0) / args.opt_repeats
    return out


class TimedIterable:
    """Wraps an iterable; adds the seconds spent in `next` to `self.seconds`."""

    def __init__(self, inner, device=None):
        self.inner, self.seconds, self.real, self.slots, self.device = inner, 0.0, 0, 0, device

    def __len__(self):
        return len(self.inner)

    def __iter__(self):
        iterator = iter(self.inner)
        while True:
            started = now(self.device)
            try:
                batch = next(iterator)
            except StopIteration:
                return
            self.seconds += now(self.device) - started
            self.real += int(batch["attention_mask"].sum())
            self.slots += batch["attention_mask"].numel()
            yield batch


class TimedModel:
    """Forwards attribute access to the model; times its calls (`seconds`)."""

    def __init__(self, model, device=None):
        self.__dict__["model"], self.__dict__["seconds"], self.__dict__["device"] = model, 0.0, device

    def __getattr__(self, name):
        return getattr(self.model, name)

    def __call__(self, *a, **k):
        started = now(self.device)
        out = self.model(*a, **k)
        self.__dict__["seconds"] += now(self.device) - started
        return out


def eval_breakdown(work, args, results) -> dict[str, float]:
    import inspect

    from paper_repro.train.evaluate import predict, score

    model, _, _, accelerator, _ = work.build(args.head)
    sentences = {i: work.dev_split.sentences[i] for i in work.dev_idx}
    gold = [list(work.dev_split.sentences[i].tags) for i in work.dev_idx]
    rows = []
    for p in range(args.eval_passes):
        loader = TimedIterable(work.eval_loader(accelerator), accelerator.device)
        timed = TimedModel(model, accelerator.device)
        started = now(accelerator.device)
        kwargs = {"depth_weights": False} if "depth_weights" in inspect.signature(predict).parameters else {}
        predicted, _ = predict(timed, loader, accelerator, work.dev_features, sentences, **kwargs)
        total = now(accelerator.device) - started
        started = now(accelerator.device)
        score(gold, [predicted[i] for i in work.dev_idx])
        scored = now(accelerator.device) - started
        row = {"predict_s": total, "loader_s": loader.seconds, "forward_s": timed.seconds,
               "post_s": total - loader.seconds - timed.seconds, "score_s": scored,
               "sentences_per_s_predict": len(sentences) / total,
               "padding_fraction": 1 - loader.real / loader.slots}
        rows.append(row)
        for metric, value in row.items():
            results.add(args.head, f"eval_{metric}", value, common.unit_of(metric) or "", repeat=p)
    return {k: common.median(r[k] for r in rows) for k in rows[0]}


def cell_timings(args, results, folder) -> dict[str, float]:
    from paper_repro.train import cell

    config = common.cell_config(args, folder, BENCH, model__head__name=args.head, train__eval_points=args.eval_points)
    common.prime_caches(config)
    profiler = cProfile.Profile() if args.cprofile else None
    device = common.default_device()
    started = now(device)
    if profiler:
        profiler.enable()
    path = cell.run_cell(config)
    if profiler:
        profiler.disable()
    wall = now(device) - started
    outcome = common.cell_outcome(Path(path), wall)
    for metric in ("total_s", "train_s", "eval_s", "other_s", "step_time_s", "evals", "f1_test"):
        results.summary(args.head, f"cell_{metric}", outcome[metric], common.unit_of(metric))
    if profiler:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(args.cprofile_rows)
        print(text.getvalue())
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = common.make_parser(__doc__.splitlines()[0], steps=30, repeats=1)
    parser.add_argument("--head", default="last")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--eval-passes", type=int, default=2)
    parser.add_argument("--opt-repeats", type=int, default=10)
    parser.add_argument("--cell", action="store_true", help="also run one run_cell and report its timings")
    parser.add_argument("--cprofile", action="store_true", help="run the cell under cProfile")
    parser.add_argument("--cprofile-rows", type=int, default=40)
    parser.add_argument("--torch-profile", type=int, default=0, help="torch.profiler over N training steps")
    args = parser.parse_args(argv)
    common.setup(args)
    results = common.Results(BENCH, args, size=args.size, batch_size=args.batch_size, dev=args.dev,
                             eval_batch_size=args.eval_batch_size, head=args.head)
    print(f"[{BENCH}] {common.describe_machine()}")
    from bench.head_overhead import Workload

    with common.cells_dir(args.keep_cells) as folder:
        work = Workload(args, common.cell_config(args, folder, BENCH, model__head__name=args.head))
        from paper_repro.train import cell, features

        data = work.config.data
        splits = cell.load_splits(data.data_dir, data.hub_id, data.convert_iob1, data.strict_iob2)
        train_idx, _ = cell.training_indices(work.config, splits["train"])
        work.train_features = features.cached_features(splits["train"], work.pristine.tokenizer,
                                                       work.config.model.max_length).select(train_idx)
        train = train_breakdown(work, args, results)
        print(common.format_table([{"part": k, "value": v} for k, v in train.items()]))
        opt = optimizer_split(work, args)
        print(common.format_table([{"part": k, "value": v} for k, v in opt.items()]))
        evals = eval_breakdown(work, args, results)
        print(common.format_table([{"part": k, "value": v} for k, v in evals.items()]))
        for metric, value in {**train, **opt}.items():
            unit = "s" if metric.endswith("_s") else ("params" if metric.endswith("params") else "fraction")
            results.summary(args.head, f"train_{metric}" if metric in train else metric, value, unit)
        for metric, value in evals.items():
            results.summary(args.head, f"eval_{metric}", value, "s" if metric.endswith("_s") else "")
        if args.torch_profile:
            from torch.profiler import ProfilerActivity, profile

            model, optimizer, scheduler, accelerator, _ = work.build(args.head)
            batches = work.batches[: args.torch_profile + 1]
            common.timed_train_steps(model, optimizer, scheduler, accelerator, work.config, batches[:1])
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                common.timed_train_steps(model, optimizer, scheduler, accelerator, work.config, batches[1:])
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))
        if args.cell:
            outcome = cell_timings(args, results, folder)
            print(common.format_table([outcome]))
    results.write(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
