"""Temporal transformer: per-frame embeddings -> one video embedding (the CLS output).

Same computation as the authors' ``TemporalTransformer`` (reference.md §7.2), with readable
parameter names; `emoclip.weights.convert` maps their state-dict keys onto these.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from emoclip.model.config import TemporalConfig


class TemporalAttention(nn.Module):
    """Multi-head self-attention with a bias-free fused qkv projection."""

    def __init__(self, dim: int, heads: int, head_dim: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.qkv = nn.Linear(dim, 3 * heads * head_dim, bias=False)
        self.proj = nn.Linear(heads * head_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape  # (B, N, dim)
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(
            q, k, v
        )  # (B, heads, N, head_dim), scale head_dim^-0.5
        return self.proj(out.transpose(1, 2).reshape(b, n, self.heads * self.head_dim))


class TemporalMLP(nn.Module):
    """Linear -> tanh-approximated GELU -> Linear."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class TemporalBlock(nn.Module):
    """Pre-norm residual block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, dim: int, config: TemporalConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = TemporalAttention(dim, config.heads, config.head_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = TemporalMLP(dim, config.mlp_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TemporalTransformer(nn.Module):
    """CLS token + learned positions + pre-norm blocks, no final norm.

    Args:
        dim: Width of the frame embeddings (the CLIP embedding size).
        config: Depth, heads, head size, feed-forward width, number of positions.
    """

    def __init__(self, dim: int, config: TemporalConfig) -> None:
        super().__init__()
        self.max_frames = config.max_positions - 1
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.randn(1, config.max_positions, dim))
        self.blocks = nn.ModuleList(TemporalBlock(dim, config) for _ in range(config.depth))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Pool frame embeddings.

        Args:
            frames: (B, T, D) per-frame embeddings, T <= max_frames.

        Returns:
            (B, D) the output at the CLS position.
        """
        b, t, _ = frames.shape
        if t > self.max_frames:
            raise ValueError(f"at most {self.max_frames} frames per window, got {t}")
        x = torch.cat([self.cls_token.expand(b, -1, -1).to(frames.dtype), frames], dim=1)
        x = x + self.pos_embedding[:, : t + 1].to(frames.dtype)  # (B, T+1, D)
        for block in self.blocks:
            x = block(x)
        return x[:, 0]
