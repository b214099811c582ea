"""CPU inference fast paths: the image tower re-laid for oneDNN in bf16, the temporal transformer
with its heads folded, and the CPU probing and size estimates that decide whether to use them.

Each computes the same function as the module it is built from, with less work; training never
goes through them. `emoclip.inference.precision` chooses and checks them per model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX-BF16)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool({"avx512_bf16", "amx_bf16"} & flags)
    except OSError:
        pass
    return False


def image_tower_gflops(visual: nn.Module) -> float:
    """Rough GFLOP per frame of an image tower (2 x tokens x parameters), for size decisions only."""
    params = sum(p.numel() for p in visual.parameters())
    grid = getattr(visual, "grid_size", None)
    tokens = (grid[0] * grid[1] + 1) if grid else 50
    return 2.0 * tokens * params / 1e9


def _param_versions(module: nn.Module) -> tuple:
    """Identity + in-place version of every parameter: changes when weights are replaced or edited."""
    return tuple((p.data_ptr(), p._version) for p in module.parameters())


class FastImageTower:
    """An open_clip ViT image tower re-laid for CPU inference in bfloat16 (or float32).

    Same function as ``visual(x)``: the patch embedding runs as one GEMM; every linear layer runs
    through oneDNN with its weight pre-packed once and its bias, activation and the residual add
    fused into the GEMM; the LayerNorms' scale and shift are folded into the linear layer that
    follows them (``W (g*x + b) + c = (W g) x + (W b + c)``); QuickGELU becomes a fused SiLU by
    scaling ``c_fc`` by 1.702 and ``c_proj`` by 1/1.702; attention is two batched GEMMs with a
    float32 softmax (``scaled_dot_product_attention`` in a float32 build). Only the class token
    leaves the tower, so the last block computes keys and values for every token but its query,
    attention, output projection and MLP for the class token alone (for ViT-B/32 that skips 6.5 %
    of the tower's FLOPs, work whose result was discarded). Folding is done in float64, then cast.
    Built with `build`, which returns None when the tower is not the plain ViT this understands or
    the oneDNN ops are missing (the caller then uses ``visual`` itself).
    """

    def __init__(
        self,
        visual: nn.Module,
        dtype: torch.dtype,
        batch_hint: int = 32,
        on_block: Callable[[nn.Module], object] | None = None,
    ) -> None:
        # open_clip's VisionTransformer: submodules are read by name, and nn.Module.__getattr__
        # is typed `Tensor | Module`, so the tower is handled as Any here.
        tower: Any = visual
        mk = torch.ops.mkldnn
        self.dtype = dtype
        conv = tower.conv1
        self.patch = int(conv.kernel_size[0])
        self.grid = tuple(int(g) for g in tower.grid_size)
        width = conv.out_channels
        tokens = self.grid[0] * self.grid[1] + 1
        hint = batch_hint * tokens

        def cast(t: torch.Tensor) -> torch.Tensor:
            return t.detach().to(dtype).contiguous()

        def pack(w: torch.Tensor) -> torch.Tensor:
            return mk._reorder_linear_weight(cast(w), hint)

        def folded(norm: Any, weight: torch.Tensor, bias: torch.Tensor | None, k: float = 1.0):
            """Linear `weight`, `bias` (times `k`) applied after `norm`'s affine: (W', b') for the bare norm."""
            w = weight.detach().double()
            b = (
                bias.detach().double()
                if bias is not None
                else torch.zeros(w.shape[0], dtype=torch.float64)
            )
            if getattr(norm, "weight", None) is not None:
                b = b + w @ norm.bias.detach().double() if norm.bias is not None else b
                w = w * norm.weight.detach().double()[None, :]
            return w * k, b * k

        self.ln_pre = (
            None
            if isinstance(tower.ln_pre, nn.Identity)
            else (
                tower.ln_pre.normalized_shape,
                cast(tower.ln_pre.weight),
                cast(tower.ln_pre.bias),
                tower.ln_pre.eps,
            )
        )
        self.w_patch = pack(conv.weight.reshape(width, -1))
        self.cls_pos = cast(tower.class_embedding + tower.positional_embedding[0])
        self.pos = cast(tower.positional_embedding[1:])
        proj_w, proj_b = folded(tower.ln_post, tower.proj.t(), None)  # (D_out, width)
        self.post_eps = None if isinstance(tower.ln_post, nn.Identity) else tower.ln_post.eps
        self.proj, self.proj_bias = cast(proj_w.t()), cast(proj_b)
        self.blocks = []
        last = len(tower.transformer.resblocks) - 1
        for i, blk in enumerate(tower.transformer.resblocks):
            attn, gelu = blk.attn, blk.mlp.gelu
            if type(gelu).__name__ == "QuickGELU":  # x*sigmoid(1.702x) = silu(1.702x)/1.702
                k, act, algo = 1.702, "swish", ""
            else:
                k, act, algo = 1.0, "gelu", gelu.approximate
            wqkv, bqkv = folded(blk.ln_1, attn.in_proj_weight, attn.in_proj_bias)
            if i == last:  # the class token's query alone; keys and values of every token
                self.last_q = (
                    cast(wqkv[:width].t()),
                    cast(bqkv[:width]),
                )  # (width, width) for addmm on B rows
                self.last_kv = (pack(wqkv[width:]), cast(bqkv[width:]))
                packed_qkv = None  # `_last_block` uses last_q / last_kv instead
            else:
                packed_qkv = (pack(wqkv), cast(bqkv))
            wfc, bfc = folded(blk.ln_2, blk.mlp.c_fc.weight, blk.mlp.c_fc.bias, k)
            self.blocks.append(
                (
                    blk.ln_1.eps,
                    attn.num_heads,
                    *(packed_qkv or (None, None)),
                    pack(attn.out_proj.weight),
                    cast(attn.out_proj.bias),
                    blk.ln_2.eps,
                    pack(wfc),
                    cast(bfc),
                    act,
                    algo,
                    pack(blk.mlp.c_proj.weight.detach().double() / k),
                    cast(blk.mlp.c_proj.bias),
                )
            )
            if on_block is not None:
                on_block(blk)  # done with this block's weights (`precision` gives back their pages)

    @classmethod
    def build(
        cls,
        visual: nn.Module,
        dtype: torch.dtype = torch.bfloat16,
        batch_hint: int = 32,
        on_block: Callable[[nn.Module], object] | None = None,
    ) -> FastImageTower | None:
        """A fast tower for `visual`, or None when it is not supported (use ``visual`` as is).
        `on_block` is called with each residual block once its weights are copied."""
        if not fast_tower_supported(visual):
            return None
        try:
            with torch.no_grad():
                tower = cls(visual, dtype, batch_hint, on_block)
                # the ops exist and accept these shapes (image_size = grid x patch, checked above)
                gh, gw = tower.grid
                tower(torch.zeros(1, 3, gh * tower.patch, gw * tower.patch))
            return tower
        except (RuntimeError, AttributeError, TypeError, NotImplementedError):
            return None

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
        mk = torch.ops.mkldnn
        eps1, heads, _, _, wo, bo, eps2, wfc, bfc, act, algo, wpr, bpr = self.blocks[-1]
        hd = d // heads
        h = F.layer_norm(x, (d,), eps=eps1)
        kv = mk._linear_pointwise(h, *self.last_kv, "none", [], "")  # (B*N, 2*width)
        k, v = kv.view(b, n, 2, heads, hd).permute(2, 0, 3, 1, 4).reshape(2, b * heads, n, hd)
        cls_x = x.view(b, n, d)[:, 0]  # (B, width)
        q = torch.addmm(self.last_q[1], h.view(b, n, d)[:, 0], self.last_q[0]).view(
            b * heads, 1, hd
        )
        scores = torch.bmm(q, k.transpose(1, 2)).float().mul_(hd**-0.5)  # (B*H, 1, N)
        o = torch.bmm(torch.softmax(scores, dim=-1).to(v.dtype), v).view(b, d)
        cls_x = mk._linear_pointwise.binary(o, cls_x.contiguous(), wo, bo, "add")
        hidden = mk._linear_pointwise(F.layer_norm(cls_x, (d,), eps=eps2), wfc, bfc, act, [], algo)
        return mk._linear_pointwise.binary(hidden, cls_x, wpr, bpr, "add")

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) CLIP-normalised frames -> (N, D) float32 projected features."""
        mk = torch.ops.mkldnn
        b, p = images.shape[0], self.patch
        gh, gw = self.grid
        x = (
            images.to(self.dtype)
            .view(b, 3, gh, p, gw, p)
            .permute(0, 2, 4, 1, 3, 5)
            .reshape(b * gh * gw, 3 * p * p)
        )
        x = mk._linear_pointwise(x, self.w_patch, None, "none", [], "").view(b, gh * gw, -1)
        x = torch.cat([self.cls_pos.expand(b, 1, -1), x + self.pos], dim=1)
        n, d = x.shape[1], x.shape[2]
        if self.ln_pre is not None:
            x = F.layer_norm(x, *self.ln_pre)
        x = x.reshape(b * n, d)
        shape = (d,)
        for eps1, heads, wqkv, bqkv, wo, bo, eps2, wfc, bfc, act, algo, wpr, bpr in self.blocks[
            :-1
        ]:
            qkv = mk._linear_pointwise(F.layer_norm(x, shape, eps=eps1), wqkv, bqkv, "none", [], "")
            o = self._attention(qkv, b, n, heads, d)
            x = mk._linear_pointwise.binary(o, x, wo, bo, "add")
            h = mk._linear_pointwise(F.layer_norm(x, shape, eps=eps2), wfc, bfc, act, [], algo)
            x = mk._linear_pointwise.binary(h, x, wpr, bpr, "add")
        cls_tok = self._last_block(x, b, n, d)
        if self.post_eps is not None:
            cls_tok = F.layer_norm(cls_tok, shape, eps=self.post_eps)
        return torch.addmm(self.proj_bias, cls_tok, self.proj).float()


def fast_tower_supported(visual: nn.Module) -> bool:
    """The tower is open_clip's plain ViT: class-token pooling, no attentional pooler, no extras."""
    tower: Any = visual  # read by submodule name, as in `FastImageTower`
    if not (
        hasattr(torch.ops.mkldnn, "_linear_pointwise")
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
    ):
        return False
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        params = list(tower.parameters())
        if not params or any(p.device.type != "cpu" for p in params):
            return False
        conv = tower.conv1
        if (
            conv.bias is not None
            or conv.kernel_size != conv.stride
            or conv.kernel_size[0] != conv.kernel_size[1]
        ):
            return False
        if conv.in_channels != 3 or tuple(tower.image_size) != tuple(
            g * conv.kernel_size[0] for g in tower.grid_size
        ):
            return False
        if (
            getattr(visual, "attn_pool", None) is not None
            or getattr(visual, "pool_type", "tok") != "tok"
        ):
            return False
        if getattr(visual, "final_ln_after_pool", False) or getattr(visual, "output_tokens", False):
            return False
        if tower.proj is None or not isinstance(tower.patch_dropout, nn.Identity):
            return False
        if not getattr(tower.transformer, "batch_first", True):
            return False
        for blk in tower.transformer.resblocks:
            attn = blk.attn
            if not isinstance(attn, nn.MultiheadAttention) or not attn._qkv_same_embed_dim:
                return False
            if (
                attn.in_proj_bias is None
                or attn.bias_k is not None
                or attn.add_zero_attn
                or not attn.batch_first
            ):
                return False
            if hasattr(blk, "ln_1_kv") or hasattr(blk, "ln_attn"):
                return False
            if not (isinstance(blk.ls_1, nn.Identity) and isinstance(blk.ls_2, nn.Identity)):
                return False
            if not isinstance(blk.ln_1, nn.LayerNorm) or not isinstance(blk.ln_2, nn.LayerNorm):
                return False
            if list(dict(blk.mlp.named_children())) != ["c_fc", "gelu", "c_proj"]:
                return False
            gelu = blk.mlp.gelu
            if type(gelu).__name__ != "QuickGELU" and not isinstance(gelu, nn.GELU):
                return False
        for norm in (tower.ln_pre, tower.ln_post):
            if not isinstance(norm, (nn.LayerNorm, nn.Identity)):
                return False
    except AttributeError:
        return False
    return True


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
