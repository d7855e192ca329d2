"""Subword -> word pooling, applied to any head's token features.

``word_index [B, T]`` is the index of the word each token belongs to within its example (-1 for special and
padding tokens; indices >= num_words are ignored too). Words with no tokens get zeros. All modes are
vectorized with scatter/index_add over a flat [B·(W+1)] slot index (slot W of each example collects the
ignored tokens and is dropped).

    first:      h_w = x_{first token of w}
    mean:       h_w = mean_{t ∈ w} x_t
    attention:  h_w = Σ_{t ∈ w} softmax_{t ∈ w}(u·x_t + c) x_t   (u, c init 0, so it starts as mean)
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

POOLINGS = ("first", "mean", "attention")


class SubwordPooling(nn.Module):
    def __init__(self, mode: str = "first", hidden_size: int | None = None):
        super().__init__()
        if mode not in POOLINGS:
            raise ValueError(f"unknown pooling {mode!r}; known: {', '.join(POOLINGS)}")
        self.mode = mode
        if mode == "attention":
            if hidden_size is None:
                raise ValueError("attention pooling needs hidden_size")
            self.scorer = nn.Linear(hidden_size, 1)
            nn.init.zeros_(self.scorer.weight)
            nn.init.zeros_(self.scorer.bias)

    def forward(self, token_features: Tensor, word_index: Tensor, num_words: int) -> Tensor:
        """token_features [B, T, H], word_index [B, T] long, num_words W -> word_features [B, W, H]."""
        b, t, h = token_features.shape
        w = int(num_words)
        slots = b * (w + 1)
        x = token_features.reshape(b * t, h)

        if self.mode == "first":
            src, has = first_tokens(word_index, w, slots=True)
            out = x[src] * has[:, None].to(x.dtype)
        else:
            flat = slot_index(word_index, w)  # [B*T]
            if self.mode == "mean":
                count = torch.zeros(slots, dtype=x.dtype, device=x.device).index_add(0, flat, x.new_ones(b * t))
                weight = 1.0 / count[flat]
            else:  # attention: softmax of the scores within each word (scatter-based)
                score = self.scorer(x).squeeze(-1)  # [B*T]
                peak = torch.full((slots,), float("-inf"), dtype=score.dtype, device=score.device)
                peak = peak.scatter_reduce(0, flat, score.detach(), reduce="amax", include_self=True)
                e = torch.exp(score - peak[flat])
                denom = torch.zeros(slots, dtype=e.dtype, device=e.device).index_add(0, flat, e)
                weight = e / denom[flat]
            out = x.new_zeros(slots, h).index_add(0, flat, x * weight[:, None])
        return out.reshape(b, w + 1, h)[:, :w]


def first_tokens(word_index: Tensor, num_words: int, slots: bool = False) -> tuple[Tensor, Tensor]:
    """Where each word starts: (src, has), src the flat [B*T] index of word w's first token (clamped to its
    example's last token when the word has none) and has whether it has one, both [B*W] (`slots`: [B*(W+1)], the
    pooling's layout with the ignored tokens' slot W). word_index [B, T] as in `SubwordPooling.forward`."""
    b, t = word_index.shape
    w = int(num_words)
    device = word_index.device
    flat = slot_index(word_index, w)
    pos = torch.arange(t, device=device).repeat(b)  # [B*T] position within the example
    first = torch.full((b * (w + 1),), t, dtype=torch.long, device=device)
    first = first.scatter_reduce(0, flat, pos, reduce="amin", include_self=True)  # t = no token
    has = first < t
    src = torch.arange(b * (w + 1), device=device) // (w + 1) * t + first.clamp(max=t - 1)
    if slots:
        return src, has
    return src.view(b, w + 1)[:, :w].reshape(-1), has.view(b, w + 1)[:, :w].reshape(-1)   # static shapes (compile)


def slot_index(word_index: Tensor, num_words: int) -> Tensor:
    """[B, T] word indices -> [B*T] slots b*(W+1) + w: slot W of each example collects the ignored tokens (-1
    and indices >= W)."""
    b = word_index.shape[0]
    valid = (word_index >= 0) & (word_index < num_words)
    slot = torch.where(valid, word_index, torch.full_like(word_index, num_words))
    return (torch.arange(b, device=slot.device)[:, None] * (num_words + 1) + slot).reshape(-1)
