"""Value checks of a cell config beyond its types, shared by `paper-repro cell`, `run_cell` and the sweep.

`validate_cell` checks the method, sampler and backbone names (with a "did you mean" hint), the documented
choice sets (`CHOICES`), positive counts and the head options. It is a `ConfigError` (the CLI's exit 2) before
anything is loaded. The heads and samplers registries are imported lazily (they pull in torch): importing this
module is as light as `paper_repro.config`.
"""
from __future__ import annotations

import difflib
import inspect
from pathlib import Path

from paper_repro.config import CellConfig, ConfigError, flatten

FALLBACK_METHODS = ("last", "deeper", "deeper_copy", "concat", "dwatt", "scalarmix", "lstm", "attnres", "attnres_block")
FALLBACK_SAMPLERS = ("sentences", "ktype", "full")
CHOICES = {  # documented value sets of CellConfig fields (config.py comments); fp16 is not one of them
    "model.pooling": ("first", "mean", "attention"),
    "model.finetune": ("full", "frozen"),
    "model.head.budget": ("deeper", "none"),
    "train.mixed_precision": ("no", "bf16"),
    "train.log_with": ("none", "tensorboard", "wandb", "mlflow"),
    "train.step_rule": ("epochs", "fixed"),
    "train.eval_schedule": ("linear", "log"),
    "train.eval_precision": ("fp32", "bf16"),
    "train.compile": ("none", "default"),   # see REFUSED
}
# values a user may try that were checked and refused, with the reason (one line each; README "On a GPU")
REFUSED = {
    ("train.compile", "reduce-overhead"): "CUDA graphs crashed (segmentation fault in the compiled backward) in every "
                                          "dwatt run and slowed last's step on an H200 (torch 2.11); not supported",
    ("train.compile", "max-autotune"): "not checked: it picks kernels by timing them, so numerics can vary between runs",
}


def known_methods() -> tuple[str, ...]:
    try:
        from paper_repro.models.heads import HEADS
    except ImportError:
        return FALLBACK_METHODS
    return tuple(sorted(HEADS)) or FALLBACK_METHODS


def known_samplers() -> tuple[str, ...]:
    try:
        from paper_repro.data.sampling import SAMPLERS
    except ImportError:
        return FALLBACK_SAMPLERS
    return tuple(SAMPLERS) + tuple(s for s in ("full",) if s not in SAMPLERS)


def validate_cell(cell: CellConfig) -> None:
    """Value checks beyond types: method, sampler, backbone, head options and the documented choice sets."""
    methods = known_methods()
    if cell.model.head.name not in methods:
        raise ConfigError(f"model.head.name: unknown method {cell.model.head.name!r}{_hint(cell.model.head.name, methods)} (known: {', '.join(methods)})")
    samplers = known_samplers()
    if cell.data.sampler not in samplers:
        raise ConfigError(f"data.sampler: unknown sampler {cell.data.sampler!r}{_hint(cell.data.sampler, samplers)} (known: {', '.join(samplers)})")
    if cell.data.sampler != "full" and cell.data.size < 1:
        raise ConfigError(f"data.size: expected a positive size for sampler {cell.data.sampler}, got {cell.data.size}")
    flat = flatten(cell.to_dict())
    if flat["train.mixed_precision"] == "fp16":
        raise ConfigError("train.mixed_precision: fp16 is not supported (expected no or bf16; bf16 autocast needs "
                          "a GPU or CPU that supports it)")
    for key, choices in CHOICES.items():
        if (key, flat[key]) in REFUSED:
            raise ConfigError(f"{key}: {flat[key]!r} is refused: {REFUSED[key, flat[key]]} (README \"On a GPU\"; "
                              f"known: {', '.join(choices)})")
        if flat[key] not in choices:
            raise ConfigError(f"{key}: unknown value {flat[key]!r}{_hint(flat[key], choices)} "
                              f"(known: {', '.join(choices)})")
    for key in ("train.steps", "train.batch_size", "train.eval_points", "train.eval_batch_size"):
        if flat[key] < 1:
            raise ConfigError(f"{key}: expected a positive integer, got {flat[key]}")
    for key in ("train.warmup_steps", "train.max_steps", "train.length_bucket_tokens"):
        if flat[key] < 0:
            raise ConfigError(f"{key}: expected an integer >= 0, got {flat[key]}")
    if not flat["train.head_lr"] > 0:
        raise ConfigError(f"train.head_lr: expected a number > 0, got {flat['train.head_lr']}")
    for key in ("train.backbone_lr", "train.weight_decay", "data.dev_subsample"):
        if flat[key] < 0:
            raise ConfigError(f"{key}: expected a number >= 0, got {flat[key]}")
    if not 0.0 <= flat["train.warmup_ratio"] < 1.0:
        raise ConfigError(f"train.warmup_ratio: expected 0 <= ratio < 1, got {flat['train.warmup_ratio']}")
    if flat["train.warmup_ratio"] > 0 and flat["train.warmup_steps"] > 0:
        raise ConfigError("train: give warmup_steps or warmup_ratio, not both (set warmup_steps=0 to use the ratio)")
    if flat.get("model.finetune", "full") != "full":   # the speed switches act on the encoder a full cell trains
        for key, off in (("train.freeze_word_embeddings", False), ("train.eval_precision", "fp32")):
            if flat[key] != off:
                raise ConfigError(f"{key}: applies to model.finetune=full only (got {flat[key]!r} with "
                                  f"model.finetune={flat['model.finetune']})")
    if flat["train.head_words_only"] and flat["model.pooling"] != "first":
        raise ConfigError(f"train.head_words_only: needs model.pooling=first (the head's output is kept at each "
                          f"word's first subword only then), got model.pooling={flat['model.pooling']}")
    if flat["train.min_epochs"] <= 0:
        raise ConfigError(f"train.min_epochs: expected a positive number, got {flat['train.min_epochs']}")
    if flat["data.subset_version"] not in (1, 2):
        raise ConfigError(f"data.subset_version: expected 1 or 2, got {flat['data.subset_version']}")
    check_head_options(cell.model.head.name, cell.model.head.options)
    check_backbone(cell.model.backbone)
    check_revision(cell.model.backbone, cell.model.revision)


def check_head_options(name: str, options: dict) -> None:
    """Options the head's constructor does not take, a value of the wrong type for its annotation, a text value
    outside the head's OPTION_CHOICES and a number below its floor (OPTION_MINIMA, else integers >= 1 and other
    numbers > 0) are errors here, not a TypeError or a truthy string like "off" deep inside a run."""
    try:
        from paper_repro.models.heads import HEADS
    except ImportError:
        return
    if name not in HEADS:
        return
    try:
        parameters = list(inspect.signature(HEADS[name].__init__).parameters.values())[2:]  # self, ctx
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    by_name = {p.name: p for p in parameters}
    for key, value in options.items():
        if key not in by_name:
            raise ConfigError(f"model.head.options.{key}: head {name} has no option {key!r}"
                              f"{_hint(key, tuple(by_name))} (options: {', '.join(by_name) or 'none'})")
        where = f"model.head.options.{key}"
        kinds = {part.strip() for part in str(by_name[key].annotation).replace("<class '", "").replace("'>", "")
                 .split("|")}
        if value is None and "None" in kinds:
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if "bool" in kinds and not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        if "int" in kinds and "float" not in kinds and not (number and isinstance(value, int)):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        if "float" in kinds and not number:
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if "str" in kinds and not isinstance(value, str):
            raise ConfigError(f"{where}: expected text, got {value!r}")
        choices = HEADS[name].OPTION_CHOICES.get(key)
        if choices and value not in choices:
            raise ConfigError(f"{where}: head {name} takes one of {', '.join(choices)}, got {value!r}"
                              f"{_hint(str(value), choices)}")
        if number:   # a declared floor (>=), else integers >= 1 and other numbers > 0
            strict = key not in HEADS[name].OPTION_MINIMA and "int" not in kinds
            floor = HEADS[name].OPTION_MINIMA.get(key, 0 if strict else 1)
            if value < floor or (strict and value == floor):
                raise ConfigError(f"{where}: expected a number {'>' if strict else '>='} {floor}, got {value!r}")


def check_backbone(name: str) -> None:
    """Aliases pass; a local-looking path must exist; a bare name close to an alias is a typo, not a hub id."""
    from paper_repro.models.backbone import ALIASES as BACKBONE_ALIASES
    from paper_repro.models.backbone import is_local_path

    if name in BACKBONE_ALIASES:
        return
    if not name.strip():
        raise ConfigError("model.backbone: empty backbone name")
    if is_local_path(name):
        if not Path(name).expanduser().exists():
            raise ConfigError(f"model.backbone: local backbone path {name} does not exist")
        return
    if "/" not in name:
        close = difflib.get_close_matches(name.lower().replace("_", "-"), BACKBONE_ALIASES, n=1, cutoff=0.75)
        if close:
            raise ConfigError(
                f"model.backbone: unknown backbone alias {name!r} (did you mean {close[0]}? aliases: "
                f"{', '.join(BACKBONE_ALIASES)}; otherwise give a hub id or a local path)"
            )


def check_revision(backbone: str, revision: str | None) -> None:
    """`model.revision` pins a hub id's commit; a packaged alias or a local folder has no hub revision (a packaged
    model's package version is recorded in the manifest instead), so setting one there is an error."""
    if revision is None:
        return
    from paper_repro.models.backbone import backbone_kind

    if not revision.strip() or revision != revision.strip():
        raise ConfigError(f"model.revision: expected a branch, tag or commit sha, got {revision!r} (leave it unset "
                          f"for the default branch)")
    kind = backbone_kind(backbone)
    if kind != "hub":
        what = ("a packaged model (its package version is recorded in the manifest)" if kind == "packaged"
                else "a local folder")
        raise ConfigError(f"model.revision: only a hub-id backbone takes a revision; {backbone} is {what}: "
                          f"unset model.revision")


def _hint(value: object, options: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(str(value), options, n=1)
    return f" (did you mean {close[0]}?)" if close else ""
