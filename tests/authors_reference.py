"""An independent re-implementation of the authors' EmoCLIP modules (NickyFot/EmoCLIP), for tests.

Written from reference.md §3, §7 and the vit-pytorch style the authors' code follows; it does not
import `emoclip.model.temporal`. Module nesting reproduces the authors' state-dict keys exactly:

    temporal_transformer.layers.{i}.0.fn.norm.*           Residual(PreNorm(Attention)).fn.norm
    temporal_transformer.layers.{i}.0.fn.fn.to_qkv.weight  Attention.to_qkv (no bias)
    temporal_transformer.layers.{i}.0.fn.fn.to_out.0.*     Attention.to_out = Sequential(Linear, Dropout)
    temporal_transformer.layers.{i}.1.fn.norm.*           Residual(PreNorm(FeedForward)).fn.norm
    temporal_transformer.layers.{i}.1.fn.fn.net.{0,3}.*    FeedForward.net = [Linear, GELU, Dropout, Linear, Dropout]
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


class Residual(nn.Module):
    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x) + x


class PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden_dim),
            nn.GELU(approximate="tanh"),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int = 8, dim_head: int = 64, dropout: float = 0.0) -> None:
        super().__init__()
        inner_dim = dim_head * heads
        project_out = not (heads == 1 and dim_head == dim)
        self.heads = heads
        self.scale = dim_head**-0.5
        self.to_qkv = nn.Linear(dim, inner_dim * 3, bias=False)
        self.to_out = (
            nn.Sequential(nn.Linear(inner_dim, dim), nn.Dropout(dropout))
            if project_out
            else nn.Identity()
        )

    def _split_heads(self, t: torch.Tensor) -> torch.Tensor:  # 'b n (h d) -> b h n d'
        b, n, hd = t.shape
        return t.reshape(b, n, self.heads, hd // self.heads).permute(0, 2, 1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (self._split_heads(t) for t in self.to_qkv(x).chunk(3, dim=-1))
        dots = torch.matmul(q, k.transpose(-1, -2)) * self.scale
        attn = dots.softmax(dim=-1)
        out = torch.matmul(attn, v)  # (b, h, n, d)
        b, h, n, d = out.shape
        out = out.permute(0, 2, 1, 3).reshape(b, n, h * d)  # 'b h n d -> b n (h d)'
        return self.to_out(out)


class Transformer(nn.Module):
    def __init__(
        self, dim: int, depth: int, heads: int, dim_head: int, mlp_dim: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    Residual(
                        PreNorm(
                            dim, Attention(dim, heads=heads, dim_head=dim_head, dropout=dropout)
                        )
                    ),
                    Residual(PreNorm(dim, FeedForward(dim, mlp_dim, dropout=dropout))),
                ]
            )
            for _ in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attn, ff in self.layers:
            x = attn(x)
            x = ff(x)
        return x


class TemporalTransformer(nn.Module):
    """The authors' signature: ``(input_dim, depth, heads, mlp_dim, dim_head)``; no final norm."""

    def __init__(
        self,
        input_dim: int,
        depth: int,
        heads: int,
        mlp_dim: int,
        dim_head: int,
        num_positions: int = 1024,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.randn(1, 1, input_dim))
        self.pos_embedding = nn.Parameter(torch.randn(1, num_positions, input_dim))
        self.dropout = nn.Dropout(dropout)
        # their Transformer(dim, depth, heads, dim_head, mlp_dim, dropout), arguments in that order
        self.temporal_transformer = Transformer(input_dim, depth, heads, dim_head, mlp_dim, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        cls_tokens = self.cls_token.expand(b, -1, -1)  # repeat '() n d -> b n d'
        x = torch.cat((cls_tokens, x), dim=1)
        x = x + self.pos_embedding[:, : n + 1]
        x = self.dropout(x)
        return self.temporal_transformer(x)  # (b, n+1, dim); the caller takes [:, 0]


def build_clip(arch: dict) -> nn.Module:
    """An open_clip CLIP (OpenAI key layout) from an open_clip architecture dict."""
    from open_clip.model import CLIP

    arch = copy.deepcopy(arch)
    arch.pop("custom_text", None)
    return CLIP(**arch)


class VClip(nn.Module):
    """The authors' VClip: CLIP backbone + temporal transformer + a trainable copy of logit_scale.

    The authors call ``TemporalTransformer(input_dim=d_model, depth=num_layers, heads=nhead,
    mlp_dim=d_model, dim_head=dim_forward)``: the head size is ``dim_forward`` and the FFN width
    ``d_model`` (reference.md §7.2). Here head size and FFN width are explicit.
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        depth: int,
        heads: int,
        head_dim: int,
        mlp_dim: int,
        num_positions: int = 1024,
    ) -> None:
        super().__init__()
        self.logit_scale = nn.Parameter(backbone.logit_scale.detach().clone())
        self.backbone = backbone
        d_model = int(backbone.text_projection.shape[1])
        self.temporal = TemporalTransformer(d_model, depth, heads, mlp_dim, head_dim, num_positions)

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) -> (B, D): CLS output of the temporal model over CLIP frame features."""
        b, t = frames.shape[:2]
        feats = self.backbone.encode_image(frames.reshape(b * t, *frames.shape[2:]))
        return self.temporal(feats.view(b, t, -1).float())[:, 0]

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.backbone.encode_text(tokens)


class DownstreamTask(nn.Module):
    """The authors' DownstreamTask: visual tower + temporal + MLP head."""

    def __init__(self, clip_model: VClip, d_model: int, n_classes: int = 7) -> None:
        super().__init__()
        self.backbone = clip_model.backbone.visual
        self.temporal = clip_model.temporal
        self.mlp = nn.Sequential(nn.Linear(d_model, 256), nn.ReLU(), nn.Linear(256, n_classes))

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        """The CLS embedding before the head (what EmoCLIP's encode_video returns)."""
        b, t = frames.shape[:2]
        feats = self.backbone(frames.reshape(b * t, *frames.shape[2:]))
        return self.temporal(feats.view(b, t, -1))[:, 0]


# ----------------------------------------------------------------------------- helpers


@torch.no_grad()
def randomize_(module: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """Replace every parameter by random values (not just its init distribution).

    Matrices/convolutions ~ N(0, 1/fan_in) (so every sub-layer changes its input by O(1)),
    LayerNorm gains ~ 1 + 0.2·N(0,1), biases and other vectors ~ 0.1·N(0,1), the temporal CLS
    token and positions ~ N(0,1) (the authors' randn init), logit scales uniform in [3, 5].
    """
    for name, p in module.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        noise = torch.randn(p.shape, generator=generator, dtype=torch.float32)
        if name.endswith("logit_scale"):
            value = 3.0 + 2.0 * torch.rand(p.shape, generator=generator)
        elif leaf in ("cls_token", "pos_embedding"):
            value = noise
        elif p.dim() >= 2:
            value = noise / math.sqrt(math.prod(p.shape[1:]))
        elif leaf == "weight":  # LayerNorm gains
            value = 1.0 + 0.2 * noise
        else:
            value = 0.1 * noise
        p.copy_(value.to(p.dtype))
    return module


def openai_fp16_(model: nn.Module) -> nn.Module:
    """OpenAI CLIP's ``convert_weights``: fp16 for Conv/Linear/MHA projections/proj/text_projection.

    What ``clip.load`` leaves on CUDA (reference.md §7.1): LayerNorms, embeddings and logit_scale
    stay fp32.
    """

    def _convert(layer: nn.Module) -> None:
        if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            layer.weight.data = layer.weight.data.half()
            if layer.bias is not None:
                layer.bias.data = layer.bias.data.half()
        if isinstance(layer, nn.MultiheadAttention):
            for attr in (
                "in_proj_weight",
                "q_proj_weight",
                "k_proj_weight",
                "v_proj_weight",
                "in_proj_bias",
                "bias_k",
                "bias_v",
            ):
                tensor = getattr(layer, attr)
                if tensor is not None:
                    tensor.data = tensor.data.half()
        for name in ("text_projection", "proj"):
            attr = getattr(layer, name, None)
            if isinstance(attr, torch.Tensor):
                attr.data = attr.data.half()

    model.apply(_convert)
    return model


def ddp_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """``DistributedDataParallel(module).state_dict()``: every key prefixed with ``module.``."""
    return {f"module.{k}": v for k, v in module.state_dict().items()}


def param_count(state: dict[str, torch.Tensor]) -> int:
    return sum(math.prod(v.shape) for v in state.values())
