"""How the image tower runs: fp32 or a bf16 copy, chosen and checked once per model.

A predictor's requested precision (`AnalysisSettings.precision`) is resolved on
first use by its `TowerChoice`; the decision (`resolve_tower`) is shared by every predictor of a
model. Its seams are public so that tests can steer it: `native_bf16` (the CPU probe),
`bf16_tower` (builds the bf16 copy) and `bf16_cosine` (the start-up check) are looked up on this
module at each decision. Also here: the folded temporal transformer shared per model
(`fast_temporal`). Data-parallel encoding is in `emoclip.inference.parallel`.

Memory: once the bf16 tower has passed its check, or the folded temporal model is built, the
weights they were made from are not needed for inference; when those weights are pages of the
checkpoint's memory map (a model loaded from a ``.safetensors`` file), their resident pages are
given back to the kernel (`emoclip.inference.memory.release_file_pages`). The model stays whole: using it
directly pages the weights back in from the file. ``release=False`` (`AnalysisSettings.release_weights`,
``EMOCLIP_RELEASE_WEIGHTS=0``) keeps them.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

from emoclip.inference.fast_paths import (
    FastImageTower,
    FastTemporal,
    cpu_has_native_bf16,
    image_tower_gflops,
)
from emoclip.model.network import EmoCLIP
from emoclip.settings import PRECISIONS

BF16_MIN_COSINE = (
    0.999  # bf16 is used only when its embeddings stay this close to fp32 ("auto" falls
)
# back to fp32 below it, an explicit "bf16" is refused with a RuntimeError)
AUTO_BF16_MIN_GFLOPS = 0.5  # smaller towers (test models) gain nothing from bf16: stay fp32


_RELEASE = contextvars.ContextVar("release_weights", default=True)  # set per decision


def _release_enabled() -> bool:
    return _RELEASE.get()


def _release(model: EmoCLIP, tensors: Iterable[torch.Tensor]) -> int:
    """Give back the resident pages of `model`'s file-mapped `tensors` (see the module docstring):
    bytes, also added to the model's count in `_RELEASED`."""
    if not _release_enabled():
        return 0
    from emoclip.inference.memory import release_file_pages

    released = release_file_pages(tensors)
    _RELEASED[model] = _RELEASED.get(model, 0) + released
    return released


class Tower:
    """The image tower a predictor encodes with: a callable plus how and why it was chosen."""

    def __init__(
        self,
        model: EmoCLIP,
        fn: Callable[[torch.Tensor], torch.Tensor] | None,
        precision: str,
        reason: str,
        cosine: float | None,
        implementation: str,
        refused: bool = False,
    ) -> None:
        self.fn, self.precision, self.reason = fn, precision, reason
        self.cosine, self.implementation = cosine, implementation
        self.refused = (
            refused  # an explicit "bf16" that failed the start-up check: `reason` says why
        )
        self.released_bytes = 0  # resident fp32 weight pages given back once this tower was chosen
        self._model = weakref.ref(model)
        self._versions = _visual_versions(model)

    def current(self) -> bool:
        """False once the model's image-tower weights were replaced or edited in place."""
        model = self._model()
        return model is not None and _visual_versions(model) == self._versions

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) CLIP-normalised frames -> (N, D) projected features."""
        if self.fn is not None:
            return self.fn(images)
        model = (
            self._model()
        )  # fp32: the model's own tower (held weakly: the cache must not keep it alive)
        if model is None:
            raise RuntimeError("the model of this image tower was garbage-collected")
        return model.encode_image(images)


def _visual_versions(model: EmoCLIP) -> tuple:
    return tuple(
        (p.data_ptr(), p._version, p.device.type) for p in model.backbone.visual.parameters()
    )


_TOWERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {precision: Tower}
_TEMPORALS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> FastTemporal | None
_RELEASED: weakref.WeakKeyDictionary = (
    weakref.WeakKeyDictionary()
)  # model -> bytes of weight pages given back
_CACHE_LOCK = threading.Lock()


def resolve_tower(model: EmoCLIP, requested: str, release: bool = True) -> Tower:
    """The (shared, per model) image tower for a requested precision (see
    `AnalysisSettings.precision`); `release` gives back the fp32 pages a bf16 copy replaces."""
    with _CACHE_LOCK:
        towers = _TOWERS.setdefault(model, {})
        tower = towers.get(requested)
        if tower is None or not tower.current():
            token = _RELEASE.set(release)
            try:  # a refusal is cached too
                tower = towers[requested] = _choose_tower(model, requested)
            finally:
                _RELEASE.reset(token)
        if tower.refused:
            raise RuntimeError(tower.reason)
        return tower


class TowerChoice:
    """One predictor's image tower for its requested precision: resolved on first use (the
    decision is shared per model, `resolve_tower`) and again when the model's image-tower weights
    change.

    Args:
        model: The model whose image tower runs.
        requested: ``"auto"``, ``"fp32"`` or ``"bf16"`` (`AnalysisSettings.precision`).
        release: Give back fp32 weight pages a bf16 copy replaces (`AnalysisSettings.release_weights`).
    """

    def __init__(self, model: EmoCLIP, requested: str, release: bool = True) -> None:
        if requested not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {requested!r}")
        self.model, self.requested, self.release = model, requested, release
        self._tower: Tower | None = None

    def tower(self) -> Tower:
        """The tower in use; RuntimeError when an explicit ``"bf16"`` failed its start-up check."""
        tower = self._tower
        if tower is None or not tower.current():
            tower = self._tower = resolve_tower(self.model, self.requested, self.release)
        return tower

    def info(self) -> dict[str, Any]:
        """How the precision was chosen: requested, chosen, reason, cosine to fp32, implementation."""
        t = self.tower()
        return {
            "requested": self.requested,
            "precision": t.precision,
            "reason": t.reason,
            "cosine": t.cosine,
            "implementation": t.implementation,
        }


def _choose_tower(model: EmoCLIP, requested: str) -> Tower:
    fp32 = None  # the model's own encode_image
    if requested == "fp32":
        return Tower(model, fp32, "fp32", "requested", None, "open_clip")
    device = model.logit_scale.device.type
    if requested == "auto":
        if device != "cpu":
            return Tower(
                model,
                fp32,
                "fp32",
                f"auto: bf16 is only chosen on CPU (device {device})",
                None,
                "open_clip",
            )
        if not native_bf16():
            return Tower(
                model,
                fp32,
                "fp32",
                "auto: this CPU has no native bf16 (avx512_bf16/amx_bf16)",
                None,
                "open_clip",
            )
        gflops = image_tower_gflops(model.backbone.visual)
        if gflops < AUTO_BF16_MIN_GFLOPS:
            return Tower(
                model,
                fp32,
                "fp32",
                f"auto: the image tower is too small for bf16 to pay ({gflops:.2g} GFLOP/frame)",
                None,
                "open_clip",
            )
    released = _RELEASED.get(model, 0)
    fn, implementation = bf16_tower(model)
    with _releasing_after_each_block(model):  # the fp32 reference pass, block by block
        # the start-up check, the same for "auto" and an explicit "bf16"
        cosine = bf16_cosine(model, fn)
    if not cosine >= BF16_MIN_COSINE:
        why = f"bf16 embeddings reached cosine {cosine:.5f} < {BF16_MIN_COSINE} of fp32 on the start-up check"
        if requested == "auto":
            return Tower(model, fp32, "fp32", f"auto: {why}", cosine, "open_clip")
        return Tower(
            model,
            None,
            "bf16",
            f"precision 'bf16' refused: {why} ({implementation} tower); "
            "use precision 'fp32' or 'auto'",
            cosine,
            implementation,
            refused=True,
        )
    check = f"cosine {cosine:.5f} >= {BF16_MIN_COSINE} of fp32"
    reason = f"requested, {check}" if requested == "bf16" else f"auto: native bf16, {check}"
    tower = Tower(model, fn, "bf16", reason, cosine, implementation)
    _release(model, model.backbone.visual.parameters())  # the bf16 copy serves inference
    tower.released_bytes = _RELEASED.get(model, 0) - released  # this lock's holder alone releases
    return tower


@contextlib.contextmanager
def _releasing_after_each_block(model: EmoCLIP) -> Iterator[None]:
    """While inside, each residual block of the image tower gives back its weights' file pages
    after its forward pass, so an fp32 pass over a memory-mapped tower holds one block resident."""
    blocks = getattr(getattr(model.backbone.visual, "transformer", None), "resblocks", None)
    if not _release_enabled() or blocks is None:
        yield
        return

    def after(
        module: torch.nn.Module, args: object, output: object
    ) -> None:  # None: the output stays
        _release(model, module.parameters())

    hooks = [blk.register_forward_hook(after) for blk in blocks]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()


def native_bf16() -> bool:
    """Whether ``"auto"`` may consider bf16 on this CPU (`fast_paths.cpu_has_native_bf16`: AVX512-BF16
    or AMX-BF16). Looked up on this module at each decision: patch it to steer ``"auto"``."""
    return cpu_has_native_bf16()


def bf16_tower(model: EmoCLIP) -> tuple[Callable[[torch.Tensor], torch.Tensor], str]:
    """A bf16 copy of the image tower (the model itself stays fp32): oneDNN-packed when possible.

    Returns:
        ``(fn, implementation)``: `fn` maps (N, 3, S, S) normalised frames to (N, D) features;
        `implementation` is ``"onednn-packed"`` or ``"open_clip"``. Every bf16 decision builds its
        tower through this module attribute, so a replacement is checked by `bf16_cosine` too.
    """
    import copy

    visual = model.backbone.visual
    fast = FastImageTower.build(
        visual, torch.bfloat16, on_block=lambda blk: _release(model, blk.parameters())
    )
    if fast is not None:
        return fast, "onednn-packed"
    with torch.no_grad():
        plain = copy.deepcopy(visual).to(torch.bfloat16).eval()
    return (lambda x: plain(x.to(torch.bfloat16)).float()), "open_clip"


@torch.inference_mode()
def bf16_cosine(model: EmoCLIP, fn: Callable[[torch.Tensor], torch.Tensor]) -> float:
    """The start-up check: the smallest cosine between the model's fp32 embeddings and `fn`'s of a
    fixed batch of 4 smooth random images ((4, 3, S, S)); bf16 is used when it is at least
    `BF16_MIN_COSINE`. Looked up on this module at each decision."""
    cfg = model.config.preprocess
    size = cfg.image_size
    gen = torch.Generator().manual_seed(0)
    low = torch.rand(4, 3, 7, 7, generator=gen)
    images = torch.nn.functional.interpolate(
        low, size=(size, size), mode="bilinear", align_corners=False
    )
    images = (images + 0.08 * torch.randn(images.shape, generator=gen)).clamp(0, 1)
    x = (images - torch.tensor(cfg.mean).view(1, 3, 1, 1)) / torch.tensor(cfg.std).view(1, 3, 1, 1)
    x = x.to(model.logit_scale.device)
    ref = model.encode_image(x).float()
    out = fn(x).float()
    return float(torch.nn.functional.cosine_similarity(ref, out, dim=-1).min())


def fast_temporal(model: EmoCLIP, release: bool = True) -> FastTemporal | None:
    """The model's folded temporal transformer (shared, rebuilt if its weights change), or None;
    `release` gives back the attention weights' pages it folds."""
    temporal = model.temporal
    if (
        temporal is None
        or model.logit_scale.device.type != "cpu"
        or not FastTemporal.worthwhile(temporal)
    ):
        return None
    with _CACHE_LOCK:
        fast = _TEMPORALS.get(model)
        versions = tuple((p.data_ptr(), p._version) for p in temporal.parameters())
        if fast is None or fast.versions != versions or fast.temporal is not temporal:
            # the folded matrices replace the attention weights (the rest of the model is used as is):
            # their pages are given back block by block as they are folded
            released = _RELEASED.get(model, 0)
            token = _RELEASE.set(release)
            try:
                fast = _TEMPORALS[model] = FastTemporal(
                    temporal,
                    on_block=lambda blk: _release(
                        model, (blk.attn.qkv.weight, blk.attn.proj.weight)
                    ),
                )
            finally:
                _RELEASE.reset(token)
            fast.released_bytes = _RELEASED.get(model, 0) - released
        return fast
