"""Cost of each fusion head relative to `last`: training step time and eval throughput, at the matched budget.

For each repeat, heads run round-robin (the order rotates by one head per repeat, to cancel drift). A block
is: build the tagger (`build_tagger`: deep copy of the pristine backbone + the head solved to the `deeper`
budget), run `--warmup` + `--steps` optimizer steps of the product's training loop on the same real batches
of the few-shot subset (forward + backward + clip + AdamW; the warm-up steps are not counted), then
`--eval-passes` passes of the product's `predict` over the dev subsample (length-grouped batches).
Per repeat, a head's ratio is its median step time over `last`'s; the headline is the median of those ratios
over repeats (eval: `last`'s sentences/s over the head's). Targets: dwatt <= 1.10x, every head <= 1.15x; and
(issue "Cells at the hardware's pace") every budget-matched head's step at most `deeper`'s (`step_time_ratio_deeper`
<= 1, reported when `deeper` runs).
`--profile` runs torch.profiler on each head that misses a target (and on `last`, to compare) and prints
the top ops; `--profile-heads` profiles the named heads whatever their ratios.

  python bench/head_overhead.py --backbone minilm-l6
  python bench/head_overhead.py --backbone mpnet-base --repeats 3
  python bench/head_overhead.py --size 20 --dev 50 --steps 3 --warmup 1 --repeats 1   # validation only
"""
from __future__ import annotations

import gc
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import common  # noqa: E402

BENCH = "head_overhead"
DWATT_TARGET = 1.10
HEAD_TARGET = 1.15


def target_of(head: str) -> float:
    return DWATT_TARGET if head == "dwatt" else HEAD_TARGET


class Workload:
    """The data every block uses: training batches of the few-shot subset and the dev eval loader."""

    def __init__(self, args, config):
        from paper_repro.train import cell, features

        self.config = config
        data = config.data
        splits = cell.load_splits(data.data_dir, data.hub_id, data.convert_iob1, data.strict_iob2)
        self.pristine = cell.pristine_backbone(config.model.backbone, config.model.revision)
        tokenizer, max_length = self.pristine.tokenizer, config.model.max_length
        train_idx, _ = cell.training_indices(config, splits["train"])
        train_features = features.cached_features(splits["train"], tokenizer, max_length).select(train_idx)
        self.batches = common.train_batches(config, train_features, args.warmup + args.steps, tokenizer.pad_token_id)
        self.dev_split = splits["valid"]
        self.dev_idx = cell.dev_indices(config, len(self.dev_split.sentences))
        self.dev_features = features.cached_features(self.dev_split, tokenizer, max_length).select(self.dev_idx)
        self.collator = features.Collator(tokenizer.pad_token_id)

    def eval_loader(self, accelerator):
        from paper_repro.train import cell

        return accelerator.prepare(cell.eval_loader(self.dev_features, self.config.train.eval_batch_size, self.collator))

    def build(self, head: str):
        from paper_repro.config import apply_overrides

        config = apply_overrides(self.config, {"model.head.name": head})
        return common.build_trainable(self.pristine.model, config, len(self.batches))


def run_block(work: Workload, head: str, args) -> tuple[list[float], list[float], int, float]:
    """(timed step seconds, eval sentences/s per pass, head params, warm-up seconds) of one fresh tagger with `head`.
    The warm-up steps' time is where `train.compile` compiles the training graph (the first eval pass, the eval
    graph): reported, never part of the step medians."""
    from paper_repro.train.evaluate import predict

    model, optimizer, scheduler, accelerator, record = work.build(head)
    all_steps = common.timed_train_steps(model, optimizer, scheduler, accelerator, work.config, work.batches)
    steps, warmup_s = all_steps[args.warmup:], sum(all_steps[: args.warmup])
    throughput = []
    if args.eval_passes > 0:
        loader = work.eval_loader(accelerator)
        sentences = {i: work.dev_split.sentences[i] for i in work.dev_idx}
        for _ in range(args.eval_passes):
            started = common.now(accelerator.device)
            predict(model, loader, accelerator, work.dev_features, sentences, depth_weights=False)  # as at dev eval points
            throughput.append(len(sentences) / (common.now(accelerator.device) - started))
    del model, optimizer, scheduler
    gc.collect()
    return steps, throughput, record["head_params"], warmup_s


def profile_head(work: Workload, head: str, args, out_dir: Path) -> str:
    """torch.profiler over `--profile-steps` training steps of `head` (after the warm-up steps); the top ops."""
    from torch.profiler import ProfilerActivity, profile

    model, optimizer, scheduler, accelerator, _ = work.build(head)
    warm, timed = work.batches[: args.warmup], work.batches[args.warmup:][: args.profile_steps]
    if warm:
        common.timed_train_steps(model, optimizer, scheduler, accelerator, work.config, warm)
    gpu = accelerator.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if gpu else [])
    with profile(activities=activities, record_shapes=True) as prof:
        common.timed_train_steps(model, optimizer, scheduler, accelerator, work.config, timed)
    table = prof.key_averages().table(sort_by="self_cuda_time_total" if gpu else "self_cpu_time_total",
                                      row_limit=args.profile_rows)
    path = out_dir / f"{BENCH}_profile_{Path(str(work.config.model.backbone)).name}_{head}.txt"
    common.store.atomic_write_bytes(path, table.encode())
    del model, optimizer, scheduler
    gc.collect()
    return f"== torch.profiler, {head}, {len(timed)} training steps (written to {path})\n{table}"


def main(argv: list[str] | None = None) -> int:
    from paper_repro.models.heads import HEADS

    parser = common.make_parser(__doc__.splitlines()[0], steps=20, repeats=5)
    parser.add_argument("--heads", type=common.str_list, default=list(HEADS),
                        help="comma-separated heads (`last` is always added: it is the reference)")
    parser.add_argument("--warmup", type=int, default=5, help="optimizer steps per block before timing")
    parser.add_argument("--eval-passes", type=int, default=1, help="timed dev passes per block (0: no eval timing)")
    parser.add_argument("--profile", action="store_true", help="profile the heads that miss a target")
    parser.add_argument("--profile-heads", type=common.str_list, default=[], help="profile these heads anyway")
    parser.add_argument("--profile-steps", type=int, default=10)
    parser.add_argument("--profile-rows", type=int, default=25)
    parser.add_argument("--set", type=common.str_list, default=[], dest="overrides",
                        help="config overrides key=value,... of every block (e.g. train.mixed_precision=bf16)")
    args = parser.parse_args(argv)
    heads = ["last"] + [h for h in dict.fromkeys(args.heads) if h != "last"]
    unknown = sorted(set(heads + args.profile_heads) - set(HEADS))
    if unknown:
        parser.error(f"unknown heads {unknown} (known: {', '.join(HEADS)})")
    common.setup(args)
    results = common.Results(BENCH, args, size=args.size, batch_size=args.batch_size, dev=args.dev,
                             warmup=args.warmup, timed_steps=args.steps, overrides=",".join(args.overrides))
    print(f"[{BENCH}] {common.describe_machine()}")

    steps = {h: {} for h in heads}        # head -> repeat -> step seconds
    warmups = {h: [] for h in heads}      # head -> warm-up seconds per repeat (train.compile: compiling)
    evals = {h: {} for h in heads}        # head -> repeat -> sentences/s
    params = {}
    with common.cells_dir(args.keep_cells) as folder:
        config = common.cell_config(args, folder, BENCH)
        work = Workload(args, common.apply_overrides(config, args.overrides) if args.overrides else config)
        for repeat in range(args.repeats):
            for position, head in enumerate(common.rotated(heads, repeat)):
                step_s, throughput, params[head], warmup_s = run_block(work, head, args)
                steps[head][repeat], evals[head][repeat] = step_s, throughput
                warmups[head].append(warmup_s)
                results.add(head, "warmup_s", warmup_s, "s", repeat=repeat, position=position)
                for i, seconds in enumerate(step_s):
                    results.add(head, "step_s", seconds, "s", repeat=repeat, position=position, step=i)
                for i, rate in enumerate(throughput):
                    results.add(head, "eval_sentences_per_s", rate, "sentences/s", repeat=repeat, position=position, step=i)
                print(f"[{BENCH}] repeat {repeat} {head:<14} step {common.median(step_s) * 1000:8.1f} ms"
                      + (f"  eval {common.median(throughput):8.1f} sent/s" if throughput else "")
                      + f"  warm-up {warmup_s:6.1f} s ({args.warmup} steps)")

        table, missing = [], []
        for head in heads:
            step_ratios = [common.median(steps[head][r]) / common.median(steps["last"][r]) for r in range(args.repeats)]
            row = {"head": head, "params": params[head], "step_ms": 1000 * common.median(sum(steps[head].values(), [])),
                   "step_x_last": common.median(step_ratios)}
            results.summary(head, "head_params", params[head], "params")
            results.summary(head, "step_s", row["step_ms"] / 1000, "s")
            results.summary(head, "warmup_s", common.median(warmups[head]), "s")
            results.summary(head, "step_time_ratio", row["step_x_last"], "x last")
            if "deeper" in steps:
                deeper_ratios = [common.median(steps[head][r]) / common.median(steps["deeper"][r])
                                 for r in range(args.repeats)]
                row["step_x_deeper"] = common.median(deeper_ratios)
                results.summary(head, "step_time_ratio_deeper", row["step_x_deeper"], "x deeper")
            ok = row["step_x_last"] <= target_of(head)
            if args.eval_passes > 0:
                eval_ratios = [common.median(evals["last"][r]) / common.median(evals[head][r]) for r in range(args.repeats)]
                row["eval_sent_s"] = common.median(sum(evals[head].values(), []))
                row["eval_x_last"] = common.median(eval_ratios)
                results.summary(head, "eval_sentences_per_s", row["eval_sent_s"], "sentences/s")
                results.summary(head, "eval_time_ratio", row["eval_x_last"], "x last")
                ok = ok and row["eval_x_last"] <= target_of(head)
            row["target"] = target_of(head)
            row["meets_target"] = ok
            results.summary(head, "target_ratio", target_of(head), "x last")
            results.summary(head, "meets_target", float(ok), "bool")
            if not ok:
                missing.append(head)
            table.append(row)
        print()
        print(common.format_table(table))
        print(f"ratios: median over {args.repeats} repeats of (head / last) in the same repeat; "
              f"targets dwatt <= {DWATT_TARGET}x, other heads <= {HEAD_TARGET}x (train step and eval time)")
        path = results.write(args.out)

        to_profile = list(dict.fromkeys(args.profile_heads + (missing if args.profile else [])))
        if to_profile:
            if "last" not in to_profile:
                to_profile.append("last")
            for head in to_profile:
                print()
                print(profile_head(work, head, args, path.parent))
        elif missing:
            print(f"missed: {', '.join(missing)} (rerun with --profile to see their top ops)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
