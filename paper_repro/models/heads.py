"""Layer-fusion heads: a registry of modules that fuse the backbone's hidden states into token features.

Every head maps ``layers [N, B, T, H]`` (z_1..z_N, z_N = last fused layer) and ``attention_mask [B, T]``
(1 = real token) to token features ``[B, T, H]``. Which layers are fused (e.g. whether the embedding output
is z_1) is the caller's choice; the head only sees ``ctx.num_fused = N``.
Per-token heads (all but ``deeper``, ``deeper_copy`` and ``lstm``) ignore the mask: padding cannot affect real tokens.

Each head has a class attribute ``knob``: the name of its width option solved for the parameter budget
(see ``paper_repro.models.budget``), or None. ``knob_for(**options)`` refines it for option combinations
that remove the knob (concat with ``projection="linear"``); ``knob_from_unit(unit, ctx, **options)`` maps an
integer search unit to the knob's value (a width, ``unit / H`` for a ratio, ``unit * heads`` for a width
that must divide into heads).

Weight decay is decided by parameter role (``paper_repro.models.tagger.no_decay``): biases, normalization
modules and norm affines are recognised by name/type everywhere; any module may in addition declare
``NO_DECAY``, a tuple of fnmatch patterns over the names of its *own* (direct, ``recurse=False``) parameters
that take no weight decay (depth embeddings, mixing weights, scalar gains, grouped norm affines).

Heads never import training code.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:   # transformers is imported where a head builds backbone layers: validating a config stays cheap
    from transformers import PretrainedConfig, PreTrainedModel


@dataclass(frozen=True)
class HeadContext:
    hidden_size: int  # H
    num_fused: int  # N = number of fused layers given to the head
    backbone_config: PretrainedConfig | None = None  # for heads that build backbone-type layers

    @classmethod
    def from_config(cls, config: PretrainedConfig, num_fused: int) -> "HeadContext":
        return cls(hidden_size=config.hidden_size, num_fused=num_fused, backbone_config=config)


HEADS: dict[str, type] = {}


def register_head(name: str):
    def decorate(cls):
        if name in HEADS:
            raise ValueError(f"head {name!r} is already registered")
        cls.name = name
        HEADS[name] = cls
        return cls

    return decorate


def build_head(name: str, ctx: HeadContext, **options) -> nn.Module:
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; known: {', '.join(sorted(HEADS))}")
    return HEADS[name](ctx, **options)


class FusionHead(nn.Module):
    """Base class: the knob protocol. Subclasses define __init__(ctx, **options) and forward(layers, mask)."""

    name: ClassVar[str]
    knob: ClassVar[str | None] = None
    NO_DECAY: ClassVar[tuple[str, ...]] = ()  # fnmatch patterns over own parameter names: no weight decay
    # True for a head whose output at a token depends on that token's layer states alone (no attention across
    # tokens): it can run on any subset of tokens with the same values there (`train.head_words_only`)
    token_local: ClassVar[bool] = False
    # what `validate.check_head_options` checks before a run: a text option's allowed values, and a numeric
    # option's smallest value where it is not the default (integers >= 1, numbers > 0)
    OPTION_CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {}
    OPTION_MINIMA: ClassVar[dict[str, int]] = {}

    @classmethod
    def knob_for(cls, **options) -> str | None:
        """The width knob under these options (None if they leave no knob)."""
        return cls.knob

    @classmethod
    def knob_from_unit(cls, unit: int, ctx: HeadContext, **options) -> Any:
        """Knob value for integer search unit ``unit >= 1``; parameter count must be monotone in unit."""
        return int(unit)


# ----------------------------------------------------------------------------------------------------------
@register_head("last")
class LastLayer(FusionHead):
    """h = z_N. No parameters."""

    token_local = True

    def __init__(self, ctx: HeadContext):
        super().__init__()

    def forward(self, layers: Tensor, attention_mask: Tensor) -> Tensor:
        return layers[-1]


# ----------------------------------------------------------------------------------------------------------
@register_head("deeper")
class DeeperEncoder(FusionHead):
    """h = Enc_k(z_N): k extra encoder layers of the backbone's own type and config stacked on z_N.

    Built generically as ``AutoModel.from_config(config with num_hidden_layers=k).encoder`` (embeddings and
    pooler discarded), so it works for BERT (per-layer self-attention) and MPNet (the encoder computes its
    shared relative position bias itself). The [B, T] mask is turned into the form the encoder's attention
    implementation wants (boolean for sdpa, additive float for eager) by transformers' own
    ``create_bidirectional_mask``, as the backbone model does.

    ``init="random"``: the backbone's own init (from_config). ``init="copy_last"``: after construction the
    caller calls ``init_from_backbone(backbone)``, which copies the backbone's last encoder layer (and any
    encoder-level parameters such as MPNet's relative attention bias) into every new layer. Callers may
    always call ``init_from_backbone``; it is a no-op for ``init="random"``.
    """

    INITS = ("random", "copy_last")
    OPTION_CHOICES = {"init": INITS}

    def __init__(self, ctx: HeadContext, layers: int = 1, init: str = "random"):
        super().__init__()
        if ctx.backbone_config is None:
            raise ValueError("deeper head needs ctx.backbone_config")
        if init not in self.INITS:
            raise ValueError(f"init must be one of {self.INITS}, got {init!r}")
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        from transformers import AutoModel

        config = copy.deepcopy(ctx.backbone_config)
        config.num_hidden_layers = layers
        model = AutoModel.from_config(config)
        self.config = model.config
        self.encoder = model.encoder
        self.init = init

    @torch.no_grad()
    def init_from_backbone(self, backbone: PreTrainedModel) -> None:
        if self.init != "copy_last":
            return
        source = getattr(backbone, "base_model", backbone).encoder
        last = source.layer[-1].state_dict()
        for layer in self.encoder.layer:
            layer.load_state_dict(last)
        own = self.encoder.state_dict()
        shared = {k: v for k, v in source.state_dict().items() if not k.startswith("layer.") and k in own}
        self.encoder.load_state_dict(shared, strict=False)

    def forward(self, layers: Tensor, attention_mask: Tensor) -> Tensor:
        x = layers[-1]
        from transformers.masking_utils import create_bidirectional_mask

        mask = create_bidirectional_mask(config=self.config, inputs_embeds=x, attention_mask=attention_mask)
        return self.encoder(x, attention_mask=mask)[0]


@register_head("deeper_copy")
class DeeperEncoderCopy(DeeperEncoder):
    """``deeper`` with ``init="copy_last"`` by default: the extra layer(s) start as copies of the backbone's
    last encoder layer (``build_tagger`` calls ``init_from_backbone``). Same architecture, options and
    parameter count as ``deeper``; the budget code treats every DeeperEncoder subclass as the target."""

    def __init__(self, ctx: HeadContext, layers: int = 1, init: str = "copy_last"):
        super().__init__(ctx, layers=layers, init=init)


# ----------------------------------------------------------------------------------------------------------
@register_head("concat")
class ConcatProjection(FusionHead):
    """h = P([z_1; ...; z_N]) per token: [B, T, N·H] -> [B, T, H].

    ``projection="mlp"``: P(x) = W_2 GELU(W_1 x), W_1: NH -> width, W_2: width -> H (knob ``width``).
    ``projection="linear"``: P(x) = W x, W: NH -> H (no knob; cannot be matched to a budget).
    """

    knob = "width"
    token_local = True
    PROJECTIONS = ("mlp", "linear")
    OPTION_CHOICES = {"projection": PROJECTIONS}

    def __init__(self, ctx: HeadContext, projection: str = "mlp", width: int | None = None):
        super().__init__()
        if projection not in self.PROJECTIONS:
            raise ValueError(f"projection must be one of {self.PROJECTIONS}, got {projection!r}")
        n, h = ctx.num_fused, ctx.hidden_size
        if projection == "linear":
            if width is not None:
                raise ValueError("projection='linear' takes no width")
            self.proj = nn.Linear(n * h, h)
        else:
            width = h if width is None else int(width)
            self.proj = nn.Sequential(nn.Linear(n * h, width), nn.GELU(), nn.Linear(width, h))
        self.projection = projection

    @classmethod
    def knob_for(cls, projection: str = "mlp", **options) -> str | None:
        return None if projection == "linear" else cls.knob

    def forward(self, layers: Tensor, attention_mask: Tensor) -> Tensor:
        n, b, t, h = layers.shape
        return self.proj(layers.permute(1, 2, 0, 3).reshape(b, t, n * h))


# ----------------------------------------------------------------------------------------------------------
class GroupedBottleneck(nn.Module):
    """G independent bottleneck MLPs f_g(x) = W_g · LN_g(GELU(U_g · x)), as one batched matmul.

    U: [G, H, r] (+ bias [G, r]), LN_g affine [G, r], W: [G, r, H] (+ bias [G, H]); r = width.
    forward: x [G, ..., H] -> [G, ..., H] (group g applied to x[g]).
    """

    NO_DECAY: ClassVar[tuple[str, ...]] = ("U_bias", "W_bias", "ln_weight", "ln_bias")

    def __init__(self, groups: int, hidden: int, width: int, eps: float = 1e-5):
        super().__init__()
        self.groups, self.hidden, self.width, self.eps = groups, hidden, width, eps
        self.U = nn.Parameter(torch.empty(groups, hidden, width))
        self.U_bias = nn.Parameter(torch.empty(groups, width))
        self.ln_weight = nn.Parameter(torch.ones(groups, width))
        self.ln_bias = nn.Parameter(torch.zeros(groups, width))
        self.W = nn.Parameter(torch.empty(groups, width, hidden))
        self.W_bias = nn.Parameter(torch.empty(groups, hidden))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:  # nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        for p, fan_in in ((self.U, self.hidden), (self.U_bias, self.hidden), (self.W, self.width), (self.W_bias, self.width)):
            bound = 1.0 / math.sqrt(fan_in)
            p.uniform_(-bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        x = x.reshape(self.groups, -1, self.hidden)  # [G, M, H]
        u = F.gelu(torch.baddbmm(self.U_bias[:, None, :], x, self.U))  # [G, M, r]
        u = F.layer_norm(u, (self.width,), eps=self.eps) * self.ln_weight[:, None, :] + self.ln_bias[:, None, :]
        return torch.baddbmm(self.W_bias[:, None, :], u, self.W).reshape(shape)  # [G, ..., H]


@register_head("dwatt")
class DWAtt(FusionHead):
    """Depth-Wise Attention (ElNokrashy et al., 2024): attention over depth, per token.

        k_n = W_K p_n                        p_n ∈ R^{d_pos} learned depth embedding (U[0,1]); W_K: d_pos -> H
        v_n = LN_n(f_{V,n}(z_n))             a separate bottleneck MLP and LayerNorm per layer n
        q   = 1 + ELU(z_N + f_Q(z_N))        (positive query)
        a_n = softmax_n(q · k_n / s)         s = sqrt(H) if scale else 1
        h   = z_N + Σ_n a_n v_n

    with f(x) = W · LN(GELU(U · x)), U: H -> γH, W: γH -> H (knob ``gamma``, width round(γH) >= 1).
    Keys are input-independent (they depend only on p). The 1/sqrt(H) scale is our choice (dot-product
    attention convention); with scale=False the logits are raw q·k, which for |q|~|k|~sqrt(H) saturates the
    softmax at init. The N value MLPs run as one grouped matmul (GroupedBottleneck).
    ``last_weights``: the last forward's a, [B, T, N], detached.
    """

    knob = "gamma"
    token_local = True
    NO_DECAY: ClassVar[tuple[str, ...]] = ("depth_embedding", "value_ln_weight", "value_ln_bias")

    def __init__(self, ctx: HeadContext, gamma: float = 0.5, d_pos: int = 24, scale: bool = True):
        super().__init__()
        n, h = ctx.num_fused, ctx.hidden_size
        width = round(gamma * h)
        if width < 1:
            raise ValueError(f"gamma={gamma} gives bottleneck width round(γH)={width} < 1")
        self.width, self.scale = width, scale
        self.depth_embedding = nn.Parameter(torch.empty(n, d_pos).uniform_(0.0, 1.0))  # p: [N, d_pos]
        self.key = nn.Linear(d_pos, h)  # W_K
        self.values = GroupedBottleneck(n, h, width)  # f_{V,n}
        self.value_ln_weight = nn.Parameter(torch.ones(n, h))  # LN_n affine
        self.value_ln_bias = nn.Parameter(torch.zeros(n, h))
        self.query = GroupedBottleneck(1, h, width)  # f_Q
        self.last_weights: Tensor | None = None

    @classmethod
    def knob_from_unit(cls, unit: int, ctx: HeadContext, **options) -> float:
        return unit / ctx.hidden_size

    def keys(self) -> Tensor:
        """k = W_K p: [N, H]."""
        return self.key(self.depth_embedding)

    def forward(self, layers: Tensor, attention_mask: Tensor) -> Tensor:
        z_last = layers[-1]  # [B, T, H]
        h = z_last.shape[-1]
        v = F.layer_norm(self.values(layers), (h,))  # [N, B, T, H]
        v = v * self.value_ln_weight[:, None, None, :] + self.value_ln_bias[:, None, None, :]
        q = 1.0 + F.elu(z_last + self.query(z_last[None])[0])  # [B, T, H]
        logits = torch.einsum("bth,nh->btn", q, self.keys())
        if self.scale:
            logits = logits / math.sqrt(h)
        a = logits.softmax(dim=-1)  # [B, T, N]
        self.last_weights = a.detach()
        return z_last + torch.einsum("btn,nbth->bth", a, v)


# ----------------------------------------------------------------------------------------------------------
@register_head("scalarmix")
class ScalarMix(FusionHead):
    """ELMo scalar mix: s = softmax(w) over z_{layer_start+1..N}; h = γ Σ_n s_n z_n (w init 0, γ init 1).

    No width knob: a "no budget" control.
    """

    NO_DECAY: ClassVar[tuple[str, ...]] = ("w", "gamma")  # mixing logits and scalar gain
    token_local = True
    OPTION_MINIMA = {"layer_start": 0}

    def __init__(self, ctx: HeadContext, layer_start: int = 0):
        super().__init__()
        if not 0 <= layer_start < ctx.num_fused:
            raise ValueError(f"layer_start must be in [0, {ctx.num_fused}), got {layer_start}")
        self.layer_start = layer_start
        self.w = nn.Parameter(torch.zeros(ctx.num_fused - layer_start))
        self.gamma = nn.Parameter(torch.ones(()))

    def weights(self) -> Tensor:
        return self.w.softmax(dim=0)

    def forward(self, layers: Tensor, attention_mask: Tensor) -> Tensor:
        return self.gamma * torch.einsum("n,nbth->bth", self.weights(), layers[self.layer_start :])


# ----------------------------------------------------------------------------------------------------------
@register_head("lstm")
class DepthBiLSTM(FusionHead):
    """BiLSTM over depth: for each real token, the sequence z_1..z_N (depth as time) goes through a
    bidirectional LSTM (hidden size knob ``hidden``); h = W [→h_N ; ←h_1], W: 2·hidden -> H.

    One LSTM call over the [M, N, H] real tokens (mask-selected); padding positions are zeros.
    The recurrence runs at its own weights' dtype with autocast off: fp32 under a bf16 autocast on every device
    (oneDNN has no autocast bf16 LSTM on CPUs without AVX-512, and one rule everywhere keeps a cell's numerics
    independent of the host), bf16 in ``train.eval_precision=bf16``'s cast copy; ``proj`` follows autocast.
    """

    knob = "hidden"
    token_local = True

    def __init__(self, ctx: HeadContext, hidden: int | None = None):
        super().__init__()
        hidden = ctx.hidden_size if hidden is None else int(hidden)
        self.lstm = nn.LSTM(ctx.hidden_size, hidden, batch_first=True, bidirectional=True)
        self.proj = nn.Linear(2 * hidden, ctx.hidden_size)

    def forward(self, layers: Tensor, attention_mask: Tensor) -> Tensor:
        n, b, t, h = layers.shape
        real = attention_mask.bool()  # [B, T]
        seq = layers.permute(1, 2, 0, 3)[real]  # [M, N, H]
        with torch.autocast(seq.device.type, enabled=False):
            _, (h_final, _) = self.lstm(seq.to(self.lstm.weight_ih_l0.dtype))  # [2, M, hidden]: fwd, bwd finals
        final = torch.cat([h_final[0], h_final[1]], dim=-1).to(self.proj.weight.dtype)
        projected = self.proj(final)   # [M, H] (bf16 under autocast)
        out = projected.new_zeros(b, t, h)
        out[real] = projected
        return out


# ----------------------------------------------------------------------------------------------------------
@register_head("attnres")
class DepthAttention(FusionHead):
    """Multi-head attention over depth with input-dependent keys, per token.

        q   = W_q z_N                        [B, T, d]
        k_n = W_k z_n + e_n,  v_n = W_v z_n  shared projections, e_n a learned depth embedding (size d)
        h   = z_N + W_o MHA(q, k, v)         heads ``heads``, d = knob ``width`` (divisible by heads)

    ``block_size > 1`` (head ``attnres_block``): attend over block summaries instead of every layer, the mean
    of consecutive groups of ``block_size`` layers (the last block may be shorter).
    ``last_weights``: last forward's attention averaged over heads, [B, T, N'] (N' = N or #blocks), detached;
    ``last_head_weights`` keeps [B, T, heads, N'].
    """

    knob = "width"
    token_local = True
    NO_DECAY: ClassVar[tuple[str, ...]] = ("depth_embedding",)
    default_block_size: ClassVar[int] = 1

    def __init__(self, ctx: HeadContext, width: int | None = None, heads: int = 4, block_size: int | None = None):
        super().__init__()
        h = ctx.hidden_size
        width = h if width is None else int(width)
        block_size = self.default_block_size if block_size is None else int(block_size)
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        self.heads, self.width, self.block_size = heads, width, block_size
        self.register_buffer("block_of", torch.arange(ctx.num_fused) // block_size, persistent=False)
        self.num_items = math.ceil(ctx.num_fused / block_size)
        self.q = nn.Linear(h, width)
        self.k = nn.Linear(h, width)
        self.v = nn.Linear(h, width)
        self.depth_embedding = nn.Parameter(torch.empty(self.num_items, width).normal_(0.0, 0.02))
        self.o = nn.Linear(width, h)
        self.last_weights: Tensor | None = None
        self.last_head_weights: Tensor | None = None

    @classmethod
    def knob_from_unit(cls, unit: int, ctx: HeadContext, heads: int = 4, **options) -> int:
        return int(unit) * heads

    def summarize(self, layers: Tensor) -> Tensor:
        """[N, B, T, H] -> [N', B, T, H]: block means (identity when block_size == 1)."""
        if self.block_size == 1:
            return layers
        sums = layers.new_zeros(self.num_items, *layers.shape[1:]).index_add(0, self.block_of, layers)
        counts = torch.bincount(self.block_of, minlength=self.num_items).to(layers.dtype)
        return sums / counts[:, None, None, None]

    def forward(self, layers: Tensor, attention_mask: Tensor) -> Tensor:
        z_last = layers[-1]
        b, t, _ = z_last.shape
        items = self.summarize(layers)  # [N', B, T, H]
        split = lambda x: x.unflatten(-1, (self.heads, self.width // self.heads))  # noqa: E731
        q = split(self.q(z_last))  # [B, T, heads, dh]
        k = split(self.k(items) + self.depth_embedding[:, None, None, :])  # [N', B, T, heads, dh]
        v = split(self.v(items))
        logits = torch.einsum("bthd,nbthd->bthn", q, k) / math.sqrt(self.width // self.heads)
        a = logits.softmax(dim=-1)  # [B, T, heads, N']
        self.last_head_weights = a.detach()
        self.last_weights = self.last_head_weights.mean(dim=2)
        mixed = torch.einsum("bthn,nbthd->bthd", a, v).reshape(b, t, self.width)
        return z_last + self.o(mixed)


@register_head("attnres_block")
class BlockDepthAttention(DepthAttention):
    """``attnres`` over block summaries: mean of consecutive groups of ``block_size`` (default 2) layers."""

    default_block_size: ClassVar[int] = 2
