"""open_clip's ViT image tower read as typed weights, or the reason it cannot be (`read_vit`).

The fast image tower (`emoclip.inference.fast_paths.FastImageTower`) re-lays a plain open_clip
``VisionTransformer``: class-token pooling, a bias-free patch convolution, pre-norm residual
blocks of ``nn.MultiheadAttention`` and a (QuickGELU or GELU) MLP, and a final projection. This
module is the one place that reads those submodules by name: each is fetched with
``get_submodule`` / ``get_parameter`` and checked by type, so a change in open_clip surfaces as an
`UnsupportedTower` that says what differs, never as an AttributeError inside the fast tower.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


class UnsupportedTower(ValueError):
    """The image tower is not the plain ViT the fast tower re-lays; the message says what differs."""


@dataclass(frozen=True)
class BlockWeights:
    """One residual block: ``x + attn(ln_1(x))``, then ``x + c_proj(act(c_fc(ln_2(x))))``."""

    ln_1: nn.LayerNorm
    attn: nn.MultiheadAttention
    ln_2: nn.LayerNorm
    c_fc: nn.Linear
    c_proj: nn.Linear
    quick_gelu: bool  # x * sigmoid(1.702 x), else nn.GELU with `gelu_approximate`
    gelu_approximate: str
    module: nn.Module  # the block itself (its pages can be given back once copied)

    @property
    def in_proj(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(3 width, width) query/key/value weight and (3 width,) bias."""
        w, b = self.attn.in_proj_weight, self.attn.in_proj_bias
        if w is None or b is None:  # checked by `read_vit`
            raise UnsupportedTower("attention without a packed in_proj weight and bias")
        return w, b


@dataclass(frozen=True)
class ViTWeights:
    """The tensors and norms of a plain open_clip ViT (shapes for width W, grid G x G, patch P)."""

    patch_weight: torch.Tensor  # (W, 3, P, P), no bias
    patch: int
    grid: tuple[int, int]
    class_embedding: torch.Tensor  # (W,)
    positional_embedding: torch.Tensor  # (G*G + 1, W)
    ln_pre: nn.LayerNorm | None
    blocks: list[BlockWeights]
    ln_post: nn.LayerNorm | None
    proj: torch.Tensor  # (W, D)

    @property
    def width(self) -> int:
        return int(self.patch_weight.shape[0])

    @property
    def tokens(self) -> int:
        return self.grid[0] * self.grid[1] + 1


def _module(parent: nn.Module, name: str, kind: type[nn.Module]) -> nn.Module:
    try:
        module = parent.get_submodule(name)
    except AttributeError as exc:
        raise UnsupportedTower(f"no submodule {name!r} ({exc})") from None
    if not isinstance(module, kind):
        raise UnsupportedTower(f"{name} is {type(module).__name__}, not {kind.__name__}")
    return module


def _norm(parent: nn.Module, name: str) -> nn.LayerNorm | None:
    module = _module(parent, name, nn.Module)
    if isinstance(module, nn.Identity):
        return None
    if not isinstance(module, nn.LayerNorm) or module.weight is None or module.bias is None:
        raise UnsupportedTower(f"{name} is {type(module).__name__}, not an affine LayerNorm")
    return module


def _pair(value: object, name: str) -> tuple[int, int]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise UnsupportedTower(f"{name} is {value!r}, not a pair of ints")
    return int(value[0]), int(value[1])


def _block(blk: nn.Module, i: int) -> BlockWeights:
    where = f"resblocks.{i}"
    attn = _module(blk, "attn", nn.MultiheadAttention)
    assert isinstance(attn, nn.MultiheadAttention)
    if attn.in_proj_weight is None or attn.in_proj_bias is None or attn.bias_k is not None:
        raise UnsupportedTower(f"{where}.attn is not plain self-attention with a packed qkv bias")
    if attn.add_zero_attn or not attn.batch_first:
        raise UnsupportedTower(f"{where}.attn adds a zero token or is not batch-first")
    for extra in ("ln_1_kv", "ln_attn"):
        if hasattr(blk, extra):
            raise UnsupportedTower(f"{where} has {extra} (not a plain residual block)")
    for scale in ("ls_1", "ls_2"):
        _module(blk, scale, nn.Identity)
    mlp = _module(blk, "mlp", nn.Module)
    if [n for n, _ in mlp.named_children()] != ["c_fc", "gelu", "c_proj"]:
        raise UnsupportedTower(f"{where}.mlp is not c_fc, gelu, c_proj")
    gelu = _module(mlp, "gelu", nn.Module)
    quick = type(gelu).__name__ == "QuickGELU"
    if not quick and not isinstance(gelu, nn.GELU):
        raise UnsupportedTower(f"{where}.mlp.gelu is {type(gelu).__name__}")
    ln_1, ln_2 = _norm(blk, "ln_1"), _norm(blk, "ln_2")
    if ln_1 is None or ln_2 is None:
        raise UnsupportedTower(f"{where} has no pre-norm LayerNorms")
    c_fc, c_proj = _module(mlp, "c_fc", nn.Linear), _module(mlp, "c_proj", nn.Linear)
    assert isinstance(c_fc, nn.Linear) and isinstance(c_proj, nn.Linear)
    approximate = "" if quick or not isinstance(gelu, nn.GELU) else gelu.approximate
    return BlockWeights(ln_1, attn, ln_2, c_fc, c_proj, quick, approximate, blk)


def read_vit(visual: nn.Module) -> ViTWeights:
    """The typed weights of open_clip's plain ViT `visual` (on the CPU).

    Raises:
        UnsupportedTower: `visual` is something else (another pooling, an attentional pooler, patch
            dropout, layer scale, a conv bias, CUDA weights...): the message says what.
    """
    params = list(visual.parameters())
    if not params or any(p.device.type != "cpu" for p in params):
        raise UnsupportedTower("the image tower's weights are not all on the CPU")
    conv = _module(visual, "conv1", nn.Conv2d)
    assert isinstance(conv, nn.Conv2d)
    k = _pair(conv.kernel_size, "conv1.kernel_size")
    if conv.bias is not None or k != _pair(conv.stride, "conv1.stride") or k[0] != k[1]:
        raise UnsupportedTower("conv1 is not a square bias-free patch embedding (stride = kernel)")
    grid = _pair(getattr(visual, "grid_size", None), "grid_size")
    image = _pair(getattr(visual, "image_size", None), "image_size")
    if conv.in_channels != 3 or image != (grid[0] * k[0], grid[1] * k[1]):
        raise UnsupportedTower(f"image size {image} is not grid {grid} x patch {k[0]}")
    if (
        getattr(visual, "attn_pool", None) is not None
        or getattr(visual, "pool_type", "tok") != "tok"
    ):
        raise UnsupportedTower("the tower does not pool by its class token")
    if getattr(visual, "final_ln_after_pool", False) or getattr(visual, "output_tokens", False):
        raise UnsupportedTower("the tower normalises after pooling or outputs its tokens")
    _module(visual, "patch_dropout", nn.Identity)
    transformer = _module(visual, "transformer", nn.Module)
    if not getattr(transformer, "batch_first", True):
        raise UnsupportedTower("the transformer is not batch-first")
    resblocks = _module(transformer, "resblocks", nn.ModuleList)
    assert isinstance(resblocks, nn.ModuleList)
    try:
        proj = visual.get_parameter("proj")
    except AttributeError:
        raise UnsupportedTower("the tower has no output projection (proj)") from None
    return ViTWeights(
        patch_weight=conv.weight,
        patch=k[0],
        grid=grid,
        class_embedding=visual.get_parameter("class_embedding"),
        positional_embedding=visual.get_parameter("positional_embedding"),
        ln_pre=_norm(visual, "ln_pre"),
        blocks=[_block(blk, i) for i, blk in enumerate(resblocks)],
        ln_post=_norm(visual, "ln_post"),
        proj=proj,
    )
