"""The token tagger: backbone -> fused layers -> fusion head -> subword pooling -> dropout + linear classifier."""
from __future__ import annotations

import fnmatch
import math
import re

import torch
from torch import nn
from transformers import PreTrainedModel

from paper_repro.config import HeadConfig, ModelConfig
from paper_repro.models import budget
from paper_repro.models.heads import HEADS, DeeperEncoder, HeadContext, LastLayer, build_head
from paper_repro.models.pooling import SubwordPooling, first_tokens


# heads whose forward reads only layers[-1]: the tagger passes them the last hidden state alone
LAST_LAYER_HEADS = (LastLayer, DeeperEncoder)

_BIAS_NAME = re.compile(r"(^|_)bias(_|$)")      # bias, U_bias, value_ln_bias, LSTM's bias_ih_l0
_NORM_AFFINE_NAME = re.compile(r"(^|_)ln(_|$)")  # ln_weight, ln_bias, value_ln_weight: LayerNorm affines


def is_norm_module(module: nn.Module) -> bool:
    """nn.LayerNorm (and subclasses), or any module whose class name contains "Norm" (GroupNorm, RMSNorm,
    BatchNorm1d, a backbone's own T5LayerNorm-style classes)."""
    return isinstance(module, nn.LayerNorm) or "Norm" in type(module).__name__


def no_decay(name: str, module: nn.Module) -> bool:
    """Whether parameter ``name`` owned directly by ``module`` (``module.named_parameters(recurse=False)``)
    takes no weight decay. Decided by role, never by tensor rank:

    - every parameter of a normalization module (``is_norm_module``: the backbone's LayerNorms too);
    - biases: the name is ``bias`` or has a ``bias`` word (``U_bias``, ``bias_ih_l0``);
    - norm affines held outside a norm module: the name has an ``ln`` word (``ln_weight``, ``value_ln_bias``);
    - what the module declares in its ``NO_DECAY`` class attribute (fnmatch patterns over its own parameter
      names; heads declare their depth embeddings, mixing weights and scalar gains there).

    Everything else decays: weight matrices, the classifier weight, and the backbone's embedding tables (the
    Hugging Face convention excludes only biases and LayerNorm weights).
    """
    if is_norm_module(module):
        return True
    if _BIAS_NAME.search(name) or _NORM_AFFINE_NAME.search(name):
        return True
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in getattr(module, "NO_DECAY", ()))


def split_by_decay(
    roots: list[tuple[str, nn.Module]],
) -> tuple[list[tuple[str, nn.Parameter]], list[tuple[str, nn.Parameter]]]:
    """The trainable parameters under the named ``roots`` as (decay, no_decay) lists of (qualified name,
    parameter), each parameter once (a shared parameter is listed under its first owner)."""
    decay, exempt, seen = [], [], set()
    for root_name, root in roots:
        for prefix, module in root.named_modules(prefix=root_name):
            for name, param in module.named_parameters(recurse=False):
                if not param.requires_grad or id(param) in seen:
                    continue
                seen.add(id(param))
                (exempt if no_decay(name, module) else decay).append((f"{prefix}.{name}" if prefix else name, param))
    return decay, exempt


class FusionTagger(nn.Module):
    """logits[B, W, C] = Linear(Dropout(Pool(Head(stack(z_first..z_L)))))."""

    def __init__(
        self,
        backbone: PreTrainedModel,
        head: nn.Module,
        pooling: SubwordPooling,
        num_labels: int,
        dropout: float,
        fuse_embeddings: bool,
    ):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(backbone.config.hidden_size, num_labels)
        self.first_fused = 0 if fuse_embeddings else 1
        self.words_only_training = False   # train.head_words_only (set by run_cell; see `words`)
        self.took_words_path = False       # a training forward took the word-initial path (for the manifest; only
                                           # written in forward, never read there: no compile guard on it)

    def words_only(self) -> bool:
        """Whether this forward runs the head on word-initial tokens only: training steps, with
        `train.head_words_only`, a head that works token by token, and `first` pooling (which keeps exactly those
        tokens' outputs). Evaluation always runs every token (the depth-attention weights average all subwords)."""
        return (self.training and self.words_only_training and getattr(self.head, "token_local", False)
                and self.pooling.mode == "first")

    def words(self, layers: torch.Tensor, attention_mask: torch.Tensor, word_index: torch.Tensor,
              num_words: int) -> torch.Tensor:
        """Fused layers [N, B, T, H] -> word features [B, W, H]: the head, then the subword pooling. Under
        `words_only()` the head sees only each word's first token, as a [N, 1, B·W, H] batch: the values the
        pooling keeps are computed from the same inputs by the same per-token function, and the tokens it drops
        are never computed. Equal up to float rounding: kernels may be chosen by the number of rows. In fp32 on
        this CPU the logits and the backbone's gradients were the same to the bit and the head's parameter
        gradients differed in summation order only (`tests/models/test_tagger.py`); under bf16 autocast some
        heads' logits moved by about one bf16 step."""
        if not self.words_only():
            return self.pooling(self.head(layers, attention_mask), word_index, num_words)
        self.took_words_path = True
        n, b, t, h = layers.shape
        src, has = first_tokens(word_index, num_words)                             # [B*W], [B*W]
        picked = layers.reshape(n, b * t, h)[:, src].unsqueeze(1)                  # [N, 1, B*W, H]
        words = self.head(picked, has.unsqueeze(0).to(attention_mask.dtype))[0]    # [B*W, H]
        return (words * has[:, None].to(words.dtype)).reshape(b, int(num_words), h)   # no token: zeros, as pooling

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, word_index: torch.Tensor, num_words: int
    ) -> torch.Tensor:
        """input_ids, attention_mask, word_index [B, T] -> logits [B, W, C].

        A head that reads only the last layer (`last`, `deeper`, `deeper_copy`: `LAST_LAYER_HEADS`) gets a [1, B, T, H]
        view of it: the backbone keeps no other hidden state and nothing is stacked (the same values and gradients).
        """
        if isinstance(self.head, LAST_LAYER_HEADS):
            last = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            layers = last.unsqueeze(0)                                            # [1, B, T, H]
        else:
            hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
            layers = torch.stack(hidden.hidden_states[self.first_fused :])      # [N, B, T, H]
        words = self.words(layers, attention_mask, word_index, num_words)         # [B, W, H]
        return self.classifier(self.dropout(words))                               # [B, W, C]

    def forward_from_layers(
        self, layers: torch.Tensor, attention_mask: torch.Tensor, word_index: torch.Tensor, num_words: int
    ) -> torch.Tensor:
        """`forward` from the fused layers on: layers [N, B, T, H] (what `forward` stacks from the backbone's
        hidden states), attention_mask, word_index [B, T] -> logits [B, W, C]. The frozen track
        (`model.finetune: frozen`, paper_repro/train/layer_cache.py) feeds it cached hidden states."""
        words = self.words(layers, attention_mask, word_index, num_words)         # [B, W, H]
        return self.classifier(self.dropout(words))                               # [B, W, C]

    def parameter_groups(self, backbone_lr: float, head_lr: float, weight_decay: float) -> list[dict]:
        """AdamW groups: backbone vs head (head + pooling + classifier), each with/without weight decay.

        Which parameters take no decay is decided by role (``no_decay``): biases, normalization parameters,
        depth embeddings and mixing weights/scalar gains; not by tensor rank (DWAtt's grouped biases and
        LayerNorm affines are 2-D). Each group also carries ``param_names``, the parameters' names in the tagger
        (``named_parameters()``), in torch's own format for named parameter groups.
        """
        groups = []
        for name, lr, roots in (
            ("backbone", backbone_lr, ["backbone"]),
            ("head", head_lr, ["head", "pooling", "classifier"]),
        ):
            decay, exempt = split_by_decay([(root, getattr(self, root)) for root in roots])
            for suffix, members, wd in (("", decay, weight_decay), ("_no_decay", exempt, 0.0)):
                groups.append({"name": f"{name}{suffix}", "params": [p for _, p in members],
                               "param_names": [n for n, _ in members], "lr": lr, "weight_decay": wd})
        return [g for g in groups if g["params"]]


def head_context(backbone: PreTrainedModel, head_config: HeadConfig) -> HeadContext:
    layers = backbone.config.num_hidden_layers + (1 if head_config.fuse_embeddings else 0)
    return HeadContext(hidden_size=backbone.config.hidden_size, num_fused=layers, backbone_config=backbone.config)


def resolve_head_options(ctx: HeadContext, head_config: HeadConfig) -> tuple[dict, int]:
    """The head's options with its width knob solved to the budget; returns (options, budget target)."""
    if head_config.name not in HEADS:
        raise ValueError(f"unknown head {head_config.name!r} (known: {', '.join(sorted(HEADS))})")
    options = dict(head_config.options)
    if head_config.budget == "none":
        return options, 0
    if head_config.budget != "deeper":
        raise ValueError(f"model.head.budget: expected 'deeper' or 'none', got {head_config.budget!r}")
    target = budget.budget_target(ctx, layers=head_config.budget_layers)
    knob = budget.knob_of(head_config.name, **options)
    if knob is not None and knob not in options:
        options = budget.solve_knob(head_config.name, ctx, target, tolerance=head_config.budget_tolerance, **options)
    return options, target


@torch.no_grad()
def init_head_independent(tagger: FusionTagger, seed: int) -> None:
    """Initialise the parameters every method shares (the classifier; the subword pooling) from a generator
    of their own, so they are the same for every head at a given seed however much of the global RNG building
    the head consumed. Order: classifier weight, classifier bias (``nn.Linear``'s default distributions).
    The pooling's parameters are constant-initialised (attention pooling's scorer starts at zero: a mean),
    so they draw nothing from the generator; any parameter added there must be initialised here, after the bias.
    """
    generator = torch.Generator().manual_seed(int(seed))  # drawn on the CPU in float32: the same on any device
    weight, bias = tagger.classifier.weight, tagger.classifier.bias
    drawn_weight = torch.empty(weight.shape, dtype=torch.float32)
    nn.init.kaiming_uniform_(drawn_weight, a=math.sqrt(5), generator=generator)
    bound = 1.0 / math.sqrt(weight.shape[1])
    drawn_bias = torch.empty(bias.shape, dtype=torch.float32).uniform_(-bound, bound, generator=generator)
    weight.copy_(drawn_weight)
    bias.copy_(drawn_bias)


def build_tagger(
    backbone: PreTrainedModel, model_config: ModelConfig, num_labels: int, seed: int = 0
) -> tuple[FusionTagger, dict]:
    """Build the tagger around a loaded backbone; returns it with its budget record for the manifest.

    The head is initialised from the global RNG (seed it before); the classifier from its own generator
    seeded with ``seed`` (``init_head_independent``), so every method gets the same classifier at a seed.
    Building consumes the global RNG by an amount that depends on the head: re-seed it afterwards if dropout
    and batch order must match across methods.
    """
    head_config = model_config.head
    ctx = head_context(backbone, head_config)
    options, target = resolve_head_options(ctx, head_config)
    head = build_head(head_config.name, ctx, **options)
    if getattr(head, "init", None) == "copy_last":
        head.init_from_backbone(backbone)
    pooling = SubwordPooling(model_config.pooling, ctx.hidden_size)
    tagger = FusionTagger(backbone, head, pooling, num_labels, model_config.dropout, head_config.fuse_embeddings)
    init_head_independent(tagger, seed)
    record = {
        "method": head_config.name,
        "options": options,
        "head_params": budget.count_trainable(head),
        "pooling_params": budget.count_trainable(pooling),
        "target": target,
        "deviation": (budget.count_trainable(head) - target) / target if target else None,
        "fused_layers": ctx.num_fused,
        "table": budget.budget_table(ctx, target or budget.budget_target(ctx, layers=head_config.budget_layers)),
    }
    return tagger, record
