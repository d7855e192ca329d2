"""How far a training step is from this CPU's compute floor.

FLOPs of forward + loss + backward per training step are counted with `torch.utils.flop_counter.FlopCounterMode`
on real batches of the few-shot subset (the tagger with `--head`, default `last`; the backbone's share is
reported separately). The CPU's fp32 matmul rate is measured by timing a large `torch.mm` (`--mm-size`,
best of `--mm-repeats`). The floor of a step is its FLOPs over that rate; our measured step time (the product's
training loop, forward + backward + clip + AdamW, warm-up excluded) is reported as a multiple of the floor.
FlopCounterMode counts matmul-like ops only (mm, bmm, addmm, attention), so the floor is a lower bound.
Evaluation likewise (`--eval-passes`, default 2; 0: off): the forward FLOPs of the product's `predict` over the dev
subsample (`--dev`, length-grouped eval batches as at a dev evaluation point) against the same rate, and the
median measured pass (after one untimed warm-up pass) as a multiple of that floor. This says how much faster fp32
evaluation could get at all on this CPU.

  python bench/floor.py --backbone minilm-l6
  python bench/floor.py --set train.length_bucket_tokens=8 --variant last+bucket8   # a speed switch on
  python bench/floor.py --size 20 --steps 3 --warmup 1 --mm-size 512 --repeats 1   # validation only
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import common  # noqa: E402

BENCH = "floor"


def matmul_rate(size: int, repeats: int, device=None) -> list[float]:
    """FLOP/s of each timed `torch.mm(a, b)` with [size, size] fp32 operands on `device` (where the training
    steps run; default the CPU), after one warm-up call; the device is synchronised before each clock read."""
    import torch

    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device or "cpu")
    b = torch.randn(size, size, generator=generator).to(device or "cpu")
    torch.mm(a, b)
    rates = []
    for _ in range(repeats):
        started = common.now(device)
        torch.mm(a, b)
        rates.append(2 * size**3 / (common.now(device) - started))
    return rates


def count_step_flops(model, batch) -> tuple[int, int]:
    """(all, backbone) FLOPs of forward + loss + backward on `batch`; gradients are cleared after."""
    from torch.utils.flop_counter import FlopCounterMode

    from paper_repro.train.loop import cross_entropy

    batch = common.on_device(batch, common.device_of(model))
    counter = FlopCounterMode(display=False)
    with counter:
        logits = model(batch["input_ids"], batch["attention_mask"], batch["word_index"], batch["labels"].shape[1])
        cross_entropy(logits, batch["labels"]).backward()
    model.zero_grad(set_to_none=True)
    counts = counter.get_flop_counts()
    # the backbone's own entry misses its backward (its inputs, token ids, need no grad, so the module tracker's
    # backward hook never fires): take the total minus the modules after it, whose inputs do need grad
    root = type(model).__name__
    after = sum(sum(ops.values()) for name, ops in counts.items()
                if name.count(".") == 1 and name.startswith(root + ".") and name != f"{root}.backbone")
    total = counter.get_total_flops()
    return total, total - after


def eval_floor(config, splits, pristine, args, results, variant) -> dict[str, float]:
    """Forward FLOPs of one `predict` pass over the dev subsample, and the median seconds of `--eval-passes`
    timed passes (one warm-up pass first), with a fresh tagger of the configured head."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from paper_repro.train import cell, features
    from paper_repro.train.evaluate import predict

    tokenizer = pristine.tokenizer
    dev_split = splits["valid"]
    dev_idx = cell.dev_indices(config, len(dev_split.sentences))
    dev_features = features.cached_features(dev_split, tokenizer, config.model.max_length).select(dev_idx)
    sentences = {i: dev_split.sentences[i] for i in dev_idx}
    model, _, _, accelerator, _ = common.build_trainable(pristine.model, config, 1)
    loader = accelerator.prepare(cell.eval_loader(dev_features, config.train.eval_batch_size,
                                                  features.Collator(tokenizer.pad_token_id)))
    # the forwards predict runs, counted with autograd on (FlopCounterMode's module tracker hooks the inputs that
    # need grad, e.g. DWAtt's depth embeddings, which fails under predict's inference_mode); outputs discarded
    counter = FlopCounterMode(display=False)
    model.eval()
    with torch.enable_grad(), counter:
        for batch in loader:
            model(batch["input_ids"], batch["attention_mask"], batch["word_index"], batch["labels"].shape[1])
    flops = counter.get_total_flops()
    predict(model, loader, accelerator, dev_features, sentences, depth_weights=False)      # warm-up
    seconds = []
    for i in range(args.eval_passes):
        started = common.now(accelerator.device)
        predict(model, loader, accelerator, dev_features, sentences, depth_weights=False)
        seconds.append(common.now(accelerator.device) - started)
        results.add(variant, "eval_pass_s", seconds[-1], "s", step=i)
    print(f"[{BENCH}] eval: {len(sentences)} dev sentences, {flops / 1e9:.1f} GFLOP per pass, "
          f"{common.median(seconds):.2f}s per pass (median of {len(seconds)})")
    del model
    return {"eval_flops": flops, "eval_s": common.median(seconds), "sentences": len(sentences)}


def main(argv: list[str] | None = None) -> int:
    parser = common.make_parser(__doc__.splitlines()[0], steps=20, repeats=3)
    parser.add_argument("--head", default="last", help="fusion head of the tagger (default: last = the backbone alone)")
    parser.add_argument("--warmup", type=int, default=5, help="steps before timing (per repeat)")
    parser.add_argument("--mm-size", type=int, default=2048)
    parser.add_argument("--mm-repeats", type=int, default=10)
    parser.add_argument("--set", type=common.str_list, default=[], dest="overrides",
                        help="config overrides key=value,... (e.g. train.length_bucket_tokens=8: the batches and the "
                             "FLOPs follow them)")
    parser.add_argument("--variant", default=None, help="name of the rows (default: the head)")
    parser.add_argument("--eval-passes", type=int, default=2, help="timed predict passes over the dev subsample (0: no eval)")
    args = parser.parse_args(argv)
    common.setup(args)
    variant = args.variant or args.head
    results = common.Results(BENCH, args, size=args.size, batch_size=args.batch_size, head=args.head,
                             timed_steps=args.steps, warmup=args.warmup, overrides=",".join(args.overrides))
    print(f"[{BENCH}] {common.describe_machine()}")

    from paper_repro.train import cell, features

    with common.cells_dir(args.keep_cells) as folder:
        config = common.cell_config(args, folder, BENCH, model__head__name=args.head)
        if args.overrides:
            config = common.apply_overrides(config, args.overrides)
        data = config.data
        splits = cell.load_splits(data.data_dir, data.hub_id, data.convert_iob1, data.strict_iob2)
        pristine = cell.pristine_backbone(config.model.backbone, config.model.revision)
        tokenizer = pristine.tokenizer
        train_idx, _ = cell.training_indices(config, splits["train"])
        train_features = features.cached_features(splits["train"], tokenizer, config.model.max_length).select(train_idx)
        batches = common.train_batches(config, train_features, args.warmup + args.steps, tokenizer.pad_token_id)
        timed = batches[args.warmup:]

        model, optimizer, scheduler, accelerator, _ = common.build_trainable(pristine.model, config, len(batches))
        flops = [count_step_flops(model, batch) for batch in timed]   # before training: FLOPs do not depend on weights
        del model, optimizer, scheduler
        total_flops = sum(f for f, _ in flops)
        backbone_flops = sum(b for _, b in flops)
        for i, (f, b) in enumerate(flops):
            results.add(variant, "step_flops", f, "FLOP", step=i, tokens=int(timed[i]["attention_mask"].sum()))
            results.add(variant, "backbone_step_flops", b, "FLOP", step=i)

        eval_summary = {}
        if args.eval_passes > 0:
            eval_summary = eval_floor(config, splits, pristine, args, results, variant)

        rates, step_totals = [], []
        for repeat in range(args.repeats):
            for i, rate in enumerate(matmul_rate(args.mm_size, args.mm_repeats, accelerator.device)):
                rates.append(rate)
                results.add("matmul", "matmul_flops_per_s", rate, "FLOP/s", repeat=repeat, step=i)
            model, optimizer, scheduler, accelerator, _ = common.build_trainable(pristine.model, config, len(batches))
            seconds = common.timed_train_steps(model, optimizer, scheduler, accelerator, config, batches)[args.warmup:]
            step_totals.append(sum(seconds))
            for i, s in enumerate(seconds):
                results.add(variant, "step_s", s, "s", repeat=repeat, step=i)
            print(f"[{BENCH}] repeat {repeat}: matmul {max(rates[-args.mm_repeats:]) / 1e9:.1f} GFLOP/s (best), "
                  f"{len(seconds)} steps in {sum(seconds):.2f}s")
            del model, optimizer, scheduler

    peak_rate = max(rates)
    measured = common.median(step_totals) / len(timed)      # mean step time of the median repeat
    floor_all = total_flops / len(timed) / peak_rate
    floor_backbone = backbone_flops / len(timed) / peak_rate
    summary = {
        "matmul_gflops_best": peak_rate / 1e9,
        "matmul_gflops_median": common.median(rates) / 1e9,
        "step_gflop": total_flops / len(timed) / 1e9,
        "backbone_step_gflop": backbone_flops / len(timed) / 1e9,
        "floor_step_s": floor_all,
        "backbone_floor_step_s": floor_backbone,
        "measured_step_s": measured,
        "x_floor": measured / floor_all,
        "x_backbone_floor": measured / floor_backbone if floor_backbone else float("nan"),
        "achieved_gflops": total_flops / len(timed) / measured / 1e9,
        # a frozen-encoder cell (model.finetune: frozen) runs only what follows the backbone: its training step
        # needs this many times fewer FLOPs than the full step (it also skips the encoder's optimizer update;
        # the frozen bench measures the time)
        "head_step_gflop": (total_flops - backbone_flops) / len(timed) / 1e9,
        "frozen_train_bound_x": total_flops / (total_flops - backbone_flops) if total_flops > backbone_flops else float("nan"),
    }
    if eval_summary:
        eval_floor_s = eval_summary["eval_flops"] / peak_rate
        summary.update({"eval_gflop": eval_summary["eval_flops"] / 1e9, "eval_floor_s": eval_floor_s,
                        "eval_measured_s": eval_summary["eval_s"], "eval_x_floor": eval_summary["eval_s"] / eval_floor_s,
                        "eval_sentences": eval_summary["sentences"]})
    units = {"matmul_gflops_best": "GFLOP/s", "matmul_gflops_median": "GFLOP/s", "step_gflop": "GFLOP",
             "backbone_step_gflop": "GFLOP", "achieved_gflops": "GFLOP/s", "x_floor": "x", "x_backbone_floor": "x",
             "eval_gflop": "GFLOP", "eval_x_floor": "x", "eval_sentences": "sentences", "head_step_gflop": "GFLOP",
             "frozen_train_bound_x": "x"}
    for metric, value in summary.items():
        results.summary(variant, metric, value, units.get(metric, "s"))
    print()
    print(common.format_table([{"head": variant, **summary}]))
    print(f"floor = counted forward+backward FLOPs per step / best measured fp32 matmul rate ({args.mm_size}^2 mm); "
          f"measured = mean step time (median of {args.repeats} repeats, {len(timed)} steps each, warm-up excluded)")
    results.write(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
