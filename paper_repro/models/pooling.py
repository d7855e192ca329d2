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
        valid = (word_index >= 0) & (word_index < w)
        slot = torch.where(valid, word_index, torch.full_like(word_index, w))
        flat = (torch.arange(b, device=slot.device)[:, None] * (w + 1) + slot).reshape(-1)  # [B*T]
        x = token_features.reshape(b * t, h)

        if self.mode == "first":
            pos = torch.arange(t, device=slot.device).repeat(b)  # [B*T] position within the example
            first = torch.full((slots,), t, dtype=torch.long, device=slot.device)
            first = first.scatter_reduce(0, flat, pos, reduce="amin", include_self=True)  # t = no token
            has = first < t
            src = torch.arange(slots, device=slot.device) // (w + 1) * t + first.clamp(max=t - 1)
            out = x[src] * has[:, None].to(x.dtype)
        else:
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
