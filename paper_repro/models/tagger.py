"""The token tagger: backbone -> fused layers -> fusion head -> subword pooling -> dropout + linear classifier."""
from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel

from paper_repro.config import HeadConfig, ModelConfig
from paper_repro.models import budget
from paper_repro.models.heads import HEADS, HeadContext, build_head
from paper_repro.models.pooling import SubwordPooling


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

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, word_index: torch.Tensor, num_words: int
    ) -> torch.Tensor:
        """input_ids, attention_mask, word_index [B, T] -> logits [B, W, C]."""
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        layers = torch.stack(hidden.hidden_states[self.first_fused :])          # [N, B, T, H]
        tokens = self.head(layers, attention_mask)                                # [B, T, H]
        words = self.pooling(tokens, word_index, num_words)                       # [B, W, H]
        return self.classifier(self.dropout(words))                               # [B, W, C]

    def parameter_groups(self, backbone_lr: float, head_lr: float, weight_decay: float) -> list[dict]:
        """AdamW groups: backbone vs head (head + pooling + classifier), each with/without weight decay.

        Biases, norms and scalars (ndim < 2) get no weight decay.
        """
        groups = []
        for name, lr, modules in (
            ("backbone", backbone_lr, [self.backbone]),
            ("head", head_lr, [self.head, self.pooling, self.classifier]),
        ):
            params = [p for m in modules for p in m.parameters() if p.requires_grad]
            decay = [p for p in params if p.ndim >= 2]
            no_decay = [p for p in params if p.ndim < 2]
            groups.append({"name": f"{name}", "params": decay, "lr": lr, "weight_decay": weight_decay})
            groups.append({"name": f"{name}_no_decay", "params": no_decay, "lr": lr, "weight_decay": 0.0})
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


def build_tagger(backbone: PreTrainedModel, model_config: ModelConfig, num_labels: int) -> tuple[FusionTagger, dict]:
    """Build the tagger around a loaded backbone; returns it with its budget record for the manifest."""
    head_config = model_config.head
    ctx = head_context(backbone, head_config)
    options, target = resolve_head_options(ctx, head_config)
    head = build_head(head_config.name, ctx, **options)
    if getattr(head, "init", None) == "copy_last":
        head.init_from_backbone(backbone)
    pooling = SubwordPooling(model_config.pooling, ctx.hidden_size)
    tagger = FusionTagger(backbone, head, pooling, num_labels, model_config.dropout, head_config.fuse_embeddings)
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
