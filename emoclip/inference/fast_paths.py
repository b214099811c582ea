"""CPU inference fast paths: the image tower re-laid in bf16 or fp32 (`FastImageTower`), the
temporal transformer with its heads folded (`FastTemporal`), and a tower's size estimate.

Each computes the same function as the module it is built from, with less work; training never
goes through them. `emoclip.inference.autotune` checks and times them per model and machine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from emoclip.inference.linear_ops import LinearOps, linear_backend
from emoclip.inference.vit_weights import BlockWeights, UnsupportedTower, ViTWeights, read_vit
from emoclip.model.network import EmoCLIP


def image_tower_gflops(visual: nn.Module) -> float:
    """Rough GFLOP per frame of an image tower (2 x tokens x parameters), for size decisions only."""
    params = sum(p.numel() for p in visual.parameters())
    grid = getattr(visual, "grid_size", None)
    tokens = (grid[0] * grid[1] + 1) if grid else 50
    return 2.0 * tokens * params / 1e9


def _param_versions(module: nn.Module) -> tuple:
    """Identity + in-place version of every parameter: changes when weights are replaced or edited."""
    return tuple((p.data_ptr(), p._version) for p in module.parameters())


_Block = tuple  # (eps1, heads, wqkv, bqkv, wo, bo, eps2, wfc, bfc, act, algo, wpr, bpr)


def _folded(
    norm: nn.LayerNorm, weight: torch.Tensor, bias: torch.Tensor | None, k: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(W', b') in float64 such that ``W' n(x) + b' = k (W (g n(x) + c) + b)`` for a LayerNorm
    with scale g and shift c and `n` its bare normalisation: the norm's affine folded into the
    linear layer that follows it. `weight` is (out, in)."""
    w = weight.detach().double()
    b = bias.detach().double() if bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    b = b + w @ norm.bias.detach().double()
    w = w * norm.weight.detach().double()[None, :]
    return w * k, b * k


class FastImageTower:
    """An open_clip ViT image tower re-laid for CPU inference in bfloat16 or float32.

    Same function as ``visual(x)``: the patch embedding runs as one GEMM; the LayerNorms' scale
    and shift are folded into the linear layer that follows them (``W (g*x + b) + c = (W g) x +
    (W b + c)``); QuickGELU becomes SiLU by scaling ``c_fc`` by 1.702 and ``c_proj`` by 1/1.702;
    attention is two batched GEMMs with a float32 softmax in bf16 (``scaled_dot_product_attention``
    in fp32). Only the class token leaves the tower, so the last block computes keys and values for
    every token but its query, attention, output projection and MLP for the class token alone (for
    ViT-B/32 that skips 6.5 % of the tower's FLOPs, work whose result was discarded). Folding is done
    in float64, then cast. The linear layers run on `ops` (`emoclip.inference.linear_ops`: public
    operators, or oneDNN's packed weights with bias, activation and residual fused into the GEMM).
    Built with `build`, which raises when it cannot be (nothing is swallowed).
    """

    def __init__(
        self,
        weights: ViTWeights,
        dtype: torch.dtype,
        ops: LinearOps,
        on_block: Callable[[nn.Module], object] | None = None,
    ) -> None:
        self.dtype, self.ops = dtype, ops
        self.patch, self.grid = weights.patch, weights.grid
        width = weights.width
        self.w_patch = self._pack(weights.patch_weight.reshape(width, -1))
        self.cls_pos = self._cast(weights.class_embedding + weights.positional_embedding[0])
        self.pos = self._cast(weights.positional_embedding[1:])
        pre = weights.ln_pre
        self.ln_pre = None if pre is None else (pre.normalized_shape, *self._affine(pre), pre.eps)
        post = weights.ln_post
        if post is None:
            proj_w, proj_b = weights.proj.detach().double().t(), torch.zeros(weights.proj.shape[1])
        else:
            proj_w, proj_b = _folded(post, weights.proj.t(), None)  # (D_out, width)
        self.post_eps = None if post is None else post.eps
        self.proj, self.proj_bias = self._cast(proj_w.t()), self._cast(proj_b)
        self.blocks: list[_Block] = []
        last = len(weights.blocks) - 1
        for i, blk in enumerate(weights.blocks):
            self.blocks.append(self._block(blk, width, last=i == last))
            if on_block is not None:
                on_block(blk.module)  # done with this block's weights (their pages can go back)

    def _cast(self, t: torch.Tensor) -> torch.Tensor:
        return t.detach().to(self.dtype).contiguous()

    def _pack(self, w: torch.Tensor) -> torch.Tensor:
        return self.ops.prepare(self._cast(w))

    def _affine(self, norm: nn.LayerNorm) -> tuple[torch.Tensor, torch.Tensor]:
        return self._cast(norm.weight), self._cast(norm.bias)

    def _block(self, blk: BlockWeights, width: int, last: bool) -> _Block:
        """One residual block's weights, folded and prepared; the last block keeps the class
        token's query apart (`last_q`) from every token's keys and values (`last_kv`)."""
        if blk.quick_gelu:  # x*sigmoid(1.702x) = silu(1.702x)/1.702
            k, act, algo = 1.702, "swish", ""
        else:
            k, act, algo = 1.0, "gelu", blk.gelu_approximate
        wqkv, bqkv = _folded(blk.ln_1, *blk.in_proj)
        qkv: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None)
        if last:  # the class token's query alone: (width, width) for addmm on B rows
            self.last_q = (self._cast(wqkv[:width].t()), self._cast(bqkv[:width]))
            self.last_kv = (self._pack(wqkv[width:]), self._cast(bqkv[width:]))
        else:
            qkv = (self._pack(wqkv), self._cast(bqkv))
        out = blk.attn.out_proj
        wfc, bfc = _folded(blk.ln_2, blk.c_fc.weight, blk.c_fc.bias, k)
        return (
            blk.ln_1.eps,
            blk.attn.num_heads,
            *qkv,
            self._pack(out.weight),
            self._cast(out.bias),
            blk.ln_2.eps,
            self._pack(wfc),
            self._cast(bfc),
            act,
            algo,
            self._pack(blk.c_proj.weight.detach().double() / k),
            self._cast(blk.c_proj.bias),
        )

    @classmethod
    def build(
        cls,
        visual: nn.Module,
        dtype: torch.dtype = torch.bfloat16,
        batch_hint: int = 32,
        on_block: Callable[[nn.Module], object] | None = None,
        backend: str = "onednn",
    ) -> FastImageTower:
        """A fast tower for `visual`, run once on a blank frame to prove its operators work.

        Args:
            visual: open_clip's ViT image tower.
            dtype: torch.bfloat16 or torch.float32.
            batch_hint: Frames per call it will mostly see (oneDNN packs weights for that height).
            on_block: Called with each residual block once its weights are copied.
            backend: The linear layers' `emoclip.inference.linear_ops` backend.

        Raises:
            UnsupportedTower: `visual` is not the plain ViT this re-lays (the message says what).
            RuntimeError: the backend cannot run here (e.g. the private oneDNN operators are
                missing from this torch) or failed on the blank frame; any other error of the
                fast tower's own code propagates too: a failure is never turned into a fallback here.
        """
        weights = read_vit(visual)
        ops = linear_backend(backend, batch_hint * weights.tokens)
        with torch.no_grad():
            tower = cls(weights, dtype, ops, on_block)
            gh, gw = tower.grid
            tower(torch.zeros(1, 3, gh * tower.patch, gw * tower.patch))
        return tower

    def _attention(self, qkv: torch.Tensor, b: int, n: int, heads: int, d: int) -> torch.Tensor:
        """Multi-head attention of a (B*N, 3*D) qkv: (B*N, D).

        In bf16, two batched GEMMs with the softmax in float32: for ViT's short sequences (50
        tokens, 64-d heads) this takes half the time of the CPU flash-attention kernel.
        """
        hd = d // heads
        if self.dtype != torch.bfloat16:
            q, k, v = qkv.view(b, n, 3, heads, hd).permute(2, 0, 3, 1, 4)
            return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b * n, d)
        q, k, v = qkv.view(b, n, 3, heads, hd).permute(2, 0, 3, 1, 4).reshape(3, b * heads, n, hd)
        weights = torch.softmax(torch.bmm(q, k.transpose(1, 2)).float().mul_(hd**-0.5), dim=-1).to(
            self.dtype
        )
        return torch.bmm(weights, v).view(b, heads, n, hd).transpose(1, 2).reshape(b * n, d)

    def _last_block(self, x: torch.Tensor, b: int, n: int, d: int) -> torch.Tensor:
        """The last residual block at the class token only: (B*N, width) tokens -> (B, width)."""
        ops = self.ops
        eps1, heads, _, _, wo, bo, eps2, wfc, bfc, act, algo, wpr, bpr = self.blocks[-1]
        hd = d // heads
        h = F.layer_norm(x, (d,), eps=eps1)
        kv = ops.linear(h, *self.last_kv)  # (B*N, 2*width)
        k, v = kv.view(b, n, 2, heads, hd).permute(2, 0, 3, 1, 4).reshape(2, b * heads, n, hd)
        cls_x = x.view(b, n, d)[:, 0]  # (B, width)
        q = torch.addmm(self.last_q[1], h.view(b, n, d)[:, 0], self.last_q[0]).view(
            b * heads, 1, hd
        )
        scores = torch.bmm(q, k.transpose(1, 2)).float().mul_(hd**-0.5)  # (B*H, 1, N)
        o = torch.bmm(torch.softmax(scores, dim=-1).to(v.dtype), v).view(b, d)
        cls_x = ops.linear_add(o, cls_x.contiguous(), wo, bo)
        hidden = ops.linear(F.layer_norm(cls_x, (d,), eps=eps2), wfc, bfc, act, algo)
        return ops.linear_add(hidden, cls_x, wpr, bpr)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) CLIP-normalised frames -> (N, D) float32 projected features."""
        ops = self.ops
        b, p = images.shape[0], self.patch
        gh, gw = self.grid
        x = (
            images.to(self.dtype)
            .view(b, 3, gh, p, gw, p)
            .permute(0, 2, 4, 1, 3, 5)
            .reshape(b * gh * gw, 3 * p * p)
        )
        x = ops.linear(x, self.w_patch, None).view(b, gh * gw, -1)
        x = torch.cat([self.cls_pos.expand(b, 1, -1), x + self.pos], dim=1)
        n, d = x.shape[1], x.shape[2]
        if self.ln_pre is not None:
            x = F.layer_norm(x, *self.ln_pre)
        x = x.reshape(b * n, d)
        shape = (d,)
        for eps1, heads, wqkv, bqkv, wo, bo, eps2, wfc, bfc, act, algo, wpr, bpr in self.blocks[
            :-1
        ]:
            qkv = ops.linear(F.layer_norm(x, shape, eps=eps1), wqkv, bqkv)
            o = self._attention(qkv, b, n, heads, d)
            x = ops.linear_add(o, x, wo, bo)
            h = ops.linear(F.layer_norm(x, shape, eps=eps2), wfc, bfc, act, algo)
            x = ops.linear_add(h, x, wpr, bpr)
        cls_tok = self._last_block(x, b, n, d)
        if self.post_eps is not None:
            cls_tok = F.layer_norm(cls_tok, shape, eps=self.post_eps)
        return torch.addmm(self.proj_bias, cls_tok, self.proj).float()


def fast_tower_unsupported_reason(visual: nn.Module) -> str | None:
    """None when `visual` is open_clip's plain ViT that `FastImageTower` re-lays, else what differs."""
    try:
        read_vit(visual)
    except UnsupportedTower as exc:
        return str(exc)
    return None


class FastTemporal:
    """`TemporalTransformer` for inference, with each attention head folded to the embedding width.

    With head size h larger than the width D (EmoCLIP: 8 heads of 2048 over D = 512) the query-key
    product ``(Wq x)·(Wk y)`` equals ``x^T (Wq^T Wk) y`` with a D x D matrix per head, and the value
    and output projections ``Wo_h Wv_h`` fold into one D x D matrix, so attention runs in D
    dimensions: ~7x fewer multiply-adds and ~8x less weight memory per window. The last block
    computes only the CLS position (the only output). Same function up to float rounding.
    """

    def __init__(
        self, temporal: nn.Module, on_block: Callable[[Any], object] | None = None
    ) -> None:
        """Fold `temporal`'s weights; `on_block` is called with each block once it is folded."""
        tt: Any = temporal  # a `TemporalTransformer`, read by submodule name
        self.temporal = temporal
        self.max_frames = int(tt.max_frames)
        self.versions = _param_versions(temporal)
        self.released_bytes = 0  # resident pages of the unfolded weights given back (`precision`)
        with torch.no_grad():
            self.cls = tt.cls_token.detach().float()
            self.pos = tt.pos_embedding.detach().float()
            self.blocks = []
            for blk in tt.blocks:
                a = blk.attn
                heads, hd = a.heads, a.head_dim
                w = a.qkv.weight.detach().view(3, heads, hd, -1)  # (3, H, h, D)
                dim = w.shape[-1]
                wo = a.proj.weight.detach().view(dim, heads, hd)  # (D_out, H, h)
                qk = torch.empty(dim, heads, dim)  # x @ qk[:, h] is head h's folded query
                ov = torch.empty(dim, heads, dim)  # (D_out, H, D_in): value and output projection
                for h in range(heads):  # one head at a time in float64: small transient memory
                    wq, wk, wv = w[0, h].double(), w[1, h].double(), w[2, h].double()
                    qk[:, h] = (wq.t() @ wk * hd**-0.5).float()
                    ov[:, h] = (wo[:, h].double() @ wv).float()
                self.blocks.append(
                    (
                        blk.norm1,
                        qk.reshape(dim, heads * dim),
                        heads,
                        ov.reshape(dim, heads * dim),
                        a.proj.bias.detach().float(),
                        blk.norm2,
                        blk.mlp,
                    )
                )
                if on_block is not None:
                    on_block(blk)

    @staticmethod
    def worthwhile(temporal: nn.Module | None) -> bool:
        """Folding pays when a head is wider than half the embedding (2 D^2 < 4 D h per head)."""
        tt: Any = temporal  # a `TemporalTransformer`, read by submodule name
        if tt is None or not hasattr(tt, "blocks") or not len(tt.blocks):
            return False
        a = tt.blocks[0].attn
        dim = a.qkv.weight.shape[1]
        return dim < 2 * a.head_dim and a.qkv.bias is None

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, D) frame embeddings -> (B, D) CLS outputs (not normalised)."""
        b, t, dim = frames.shape
        if t > self.max_frames:
            raise ValueError(f"at most {self.max_frames} frames per window, got {t}")
        x = torch.cat([self.cls.expand(b, -1, -1), frames.float()], dim=1) + self.pos[:, : t + 1]
        last = len(self.blocks) - 1
        for i, (norm1, qk, heads, ov, bias, norm2, mlp) in enumerate(self.blocks):
            h = norm1(x)  # (B, N, D): keys and values are the normalised tokens themselves
            q = h[:, :1] if i == last else h
            n = q.shape[1]
            qh = (q @ qk).view(b, n, heads, dim).transpose(1, 2).reshape(b, heads * n, dim)
            attn = torch.softmax(qh @ h.transpose(1, 2), dim=-1) @ h  # (B, H*n, D)
            out = torch.addmm(
                bias,
                attn.view(b, heads, n, dim).transpose(1, 2).reshape(b * n, heads * dim),
                ov.t(),
            )
            x = (x[:, :1] if i == last else x) + out.view(b, n, dim)
            x = x + mlp(norm2(x))
        return x[:, 0]


class AutocastTower:
    """The model's own tower under ``torch.autocast`` in bfloat16: no second copy of the weights
    (they are cast per call); the model is held weakly, like the plain tower."""

    def __init__(self, model: EmoCLIP) -> None:
        import weakref

        self._model = weakref.ref(model)
        self.device = model.logit_scale.device.type

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) normalised frames -> (N, D) float32."""
        model = self._model()
        if model is None:
            raise RuntimeError("the model of this image tower was garbage-collected")
        with torch.autocast(self.device, dtype=torch.bfloat16):
            return model.encode_image(images).float()
