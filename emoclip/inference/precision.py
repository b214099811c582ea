"""How the image tower runs: the choice of `emoclip.inference.autotune`, made once per model and
layout and shared by its predictors (`TowerSelector`); and the folded temporal model (`fast_temporal`).

A predictor's precision (``"auto"``, ``"fp32"``, ``"bf16"``; `requested_precision`) is resolved on
first use: `autotune.choose_tower` measures the candidate towers on this machine (or reads the
choice it kept on disk) and the winner serves every predictor of the model with the same request,
batch and workers. Data-parallel encoding is in `emoclip.inference.parallel`.

Memory: the fast towers and the folded temporal model hold their own copies of the weights they
are made from. When those weights are pages of the checkpoint's memory map (a model loaded from
a ``.safetensors`` file), their resident pages are given back to the kernel as each block is
copied (`emoclip.inference.memory.release_file_pages`); the losers of the measurement are freed as
soon as they lose, so after the choice one copy of the tower's weights is resident. The model stays
whole: using it directly pages the weights back in from the file. ``release=False`` keeps them.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from emoclip.inference.autotune import TowerChoice, choose_tower
from emoclip.inference.fast_paths import FastTemporal
from emoclip.model.network import EmoCLIP
from emoclip.settings import PRECISIONS

log = logging.getLogger("emoclip.inference.tower")


def requested_precision(value: str | None) -> str:
    """A requested image-tower precision, normalised (None or empty: ``"auto"``); ValueError
    unless it is one of `PRECISIONS`."""
    precision = (value or "auto").strip().lower()
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    return precision


def _release(model: EmoCLIP, tensors: Iterable[torch.Tensor], enabled: bool = True) -> int:
    """Give back the resident pages of `model`'s file-mapped `tensors` (see the module docstring):
    bytes, also added to the model's count in `_RELEASED`."""
    if not enabled:
        return 0
    from emoclip.inference.memory import release_file_pages

    released = release_file_pages(tensors)
    _RELEASED[model] = _RELEASED.get(model, 0) + released
    return released


class Tower:
    """The image tower a predictor encodes with: a callable plus how and why it was chosen."""

    def __init__(self, model: EmoCLIP, choice: TowerChoice) -> None:
        self.choice = choice
        self.fn, self.precision, self.reason = choice.fn, choice.precision, choice.reason
        self.implementation = choice.name
        self.cosine = choice.parity if choice.precision == "bf16" else None
        self.released_bytes = 0  # resident fp32 weight pages given back while choosing this tower
        self.superseded = False  # a compiled tower measured later replaced this one
        self._model = weakref.ref(model)
        self._versions = _visual_versions(model)

    @property
    def refused(self) -> bool:
        """A forced precision that no candidate could serve (`reason` says why)."""
        return self.choice.refused

    def current(self) -> bool:
        """False once the model's image-tower weights were replaced or edited in place, or a
        faster tower compiled in the background replaced this one."""
        model = self._model()
        return (
            not self.superseded and model is not None and _visual_versions(model) == self._versions
        )

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) CLIP-normalised frames -> (N, D) projected features."""
        if self.fn is not None:
            return self.fn(images)
        model = self._model()  # the plain tower: held weakly (the cache must not keep it alive)
        if model is None:
            raise RuntimeError("the model of this image tower was garbage-collected")
        return model.encode_image(images)


def _visual_versions(model: EmoCLIP) -> tuple:
    return tuple(
        (p.data_ptr(), p._version, p.device.type) for p in model.backbone.visual.parameters()
    )


_TOWERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {layout: Tower}
_TEMPORALS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> FastTemporal | None
_RELEASED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> bytes given back
_COMPILING: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {layout: thread}
_CACHE_LOCK = threading.Lock()


class TowerSelector:
    """One predictor's image tower: resolved on first use through `autotune.choose_tower` (shared
    per model and request), and again when the model's image-tower weights change.

    Args:
        model: The model whose image tower runs.
        precision: ``"auto"``, ``"fp32"`` or ``"bf16"`` (see `requested_precision`).
        batch, workers, threads: The predictor's batch size, encode workers and small-batch
            threads (the layout candidates are timed at).
        cache_dir: Where the machine's choice is kept on disk (None: this process only).
        release: Give back the file pages of weights a fast tower copied.
        compile: Consider compiled towers: a package not on disk yet is compiled in a background
            thread while the chosen tower serves (`tower_challenge`), and replaces it if faster.
    """

    def __init__(
        self,
        model: EmoCLIP,
        precision: str,
        *,
        batch: int = 32,
        workers: int = 1,
        threads: int | None = None,
        cache_dir: Path | None = None,
        release: bool = True,
        compile: bool = False,
    ) -> None:
        self.model, self.requested = model, requested_precision(precision)
        self.layout = (self.requested, batch, workers, threads)
        self.cache_dir, self.release, self.compile = cache_dir, release, compile
        self._tower: Tower | None = None

    def tower(self) -> Tower:
        """The tower in use; RuntimeError when a forced precision could not be served."""
        tower = self._tower
        if tower is None or not tower.current():
            tower = self._tower = self._resolve()
        if tower.refused:
            raise RuntimeError(tower.reason)
        return tower

    def _resolve(self) -> Tower:
        model = self.model
        with _CACHE_LOCK:
            towers = _TOWERS.setdefault(model, {})
            tower = towers.get(self.layout)
            if tower is None or not tower.current():
                released = _RELEASED.get(model, 0)
                precision, batch, workers, threads = self.layout
                choice = choose_tower(
                    model,
                    precision,
                    batch=batch,
                    workers=workers,
                    threads=threads,
                    cache_dir=self.cache_dir,
                    on_block=lambda blk: _release(model, blk.parameters(), self.release),
                    compiled=self.compile,
                )
                tower = towers[self.layout] = Tower(model, choice)  # a refusal is cached too
                if choice.own_weights:  # its own copy serves inference: no fp32 pages left
                    _release(model, model.backbone.visual.parameters(), self.release)
                tower.released_bytes = _RELEASED.get(model, 0) - released
                if choice.pending and self.cache_dir is not None and not choice.refused:
                    self._start_compiling(tower)
            return tower

    def _start_compiling(self, tower: Tower) -> None:
        threads = _COMPILING.setdefault(self.model, {})
        running = threads.get(self.layout)
        if running is not None and running.is_alive():
            return
        thread = threading.Thread(
            target=self._compile, args=(tower,), name="emoclip-compile-tower", daemon=True
        )
        threads[self.layout] = thread
        thread.start()

    def _compile(self, tower: Tower) -> None:
        """Background: each pending compiled candidate compiled, checked and timed against
        `tower`; a faster one replaces it for every predictor of the model and layout."""
        from emoclip.inference.parallel import Layout
        from emoclip.inference.tower_challenge import challenge

        model, (precision, batch, workers, threads) = self.model, self.layout
        assert self.cache_dir is not None
        for name in list(tower.choice.pending):
            try:
                new = challenge(
                    model,
                    tower.choice,
                    name,
                    precision=precision,
                    layout=Layout(batch, workers, threads),
                    cache_dir=self.cache_dir,
                )
            except Exception as exc:  # noqa: BLE001 - the serving tower stays; said once
                tower.choice.failures[name] = f"could not be compiled: {type(exc).__name__}: {exc}"
                log.warning("image tower %s could not be compiled: %s", name, exc)
                continue
            if new is None:
                continue
            with _CACHE_LOCK:
                towers = _TOWERS.setdefault(model, {})
                if towers.get(self.layout) is tower:
                    towers[self.layout] = Tower(model, new)
                    tower.superseded = True
            _release(model, model.backbone.visual.parameters(), self.release and new.own_weights)
            return

    def wait_compiled(self, timeout: float | None = None) -> bool:
        """Wait for this model and layout's background compilation, if any; True when none runs."""
        thread = _COMPILING.get(self.model, {}).get(self.layout)
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def choice(self) -> TowerChoice:
        """How the tower was chosen (without raising for a refusal)."""
        try:
            return self.tower().choice
        except RuntimeError:
            assert self._tower is not None
            return self._tower.choice

    def report(self) -> str:
        """The choice in a few lines for people (`TowerChoice.report`)."""
        return self.choice().report()

    def info(self) -> dict[str, Any]:
        """How the precision was chosen: requested, chosen, reason, cosine to fp32, implementation
        (the candidate's name), frames/s of every candidate measured, why others were not used."""
        t = self.tower()
        c = t.choice
        return {
            "requested": self.requested,
            "precision": t.precision,
            "reason": t.reason,
            "cosine": t.cosine,
            "implementation": t.implementation,
            "source": c.source,
            "frames_per_s": dict(c.frames_per_s),
            "failures": dict(c.failures),
            "cpu": c.cpu,
            "isa": list(c.isa),
        }


def fast_temporal(model: EmoCLIP, release: bool = True) -> FastTemporal | None:
    """The model's folded temporal transformer (shared, rebuilt if its weights change), or None."""
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
            fast = _TEMPORALS[model] = FastTemporal(
                temporal,
                on_block=lambda blk: _release(
                    model, (blk.attn.qkv.weight, blk.attn.proj.weight), release
                ),
            )
            fast.released_bytes = _RELEASED.get(model, 0) - released
        return fast
