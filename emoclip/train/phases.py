"""The frame-level warm-up's end (``train.freeze_visual_after_warmup``): BatchNorm re-estimation,
freezing the image tower and the video phase's optimiser and schedule, as a mixin of `engine.Trainer`
(it uses the trainer's config, model, data, loaders and step counter)."""

from __future__ import annotations

import itertools
import logging

import torch
from torch import nn
from torch.utils.data import Dataset

from .loading import build_dataset
from .loss import ContrastiveModel
from .optim import build_scheduler, build_video_optimizer
from .run_state import preserved_rng
from .sampling import EpochSeededDataset

__all__ = ["PhaseMixin"]

log = logging.getLogger("emoclip.train")


class PhaseMixin:
    """Warm-up / video-phase switch and BatchNorm recalibration of `engine.Trainer`."""

    @property
    def switches_phase(self) -> bool:
        """Whether the frame-level warm-up ends in a frozen image tower and a video phase."""
        return self.cfg.train.freeze_visual_after_warmup and self.cfg.train.warmup_frame_steps > 0

    @property
    def in_warmup(self) -> bool:
        """Whether the next step is a frame-level warm-up step."""
        return self.step < self.cfg.train.warmup_frame_steps

    def enter_video_phase(self, *, recalibrate: bool = True) -> None:
        """End the frame-level warm-up: re-estimate BatchNorm statistics on warm-up batches, freeze
        the image tower (eval mode) and start the video phase's optimiser and schedule.

        Args:
            recalibrate: False when resuming (the statistics are in the saved state).
        """
        if recalibrate:
            data = EpochSeededDataset(self._warmup_dataset(self.model.config.preprocess, self.cfg.train.seed + 1),
                                      self.cfg.train.seed + 1)
            with preserved_rng():
                self.recalibrate_batchnorm(data)
        self.model.backbone.visual.requires_grad_(False)
        self.in_video_phase = True
        self.wrapped = self._wrap(ContrastiveModel(self.model))  # DDP: the new set of trained parameters
        self.optimizer = build_video_optimizer(self.cfg, self.model)
        self.scheduler = build_scheduler(self.cfg, self.optimizer, self.total_steps - self.cfg.train.warmup_frame_steps,
                                         warmup_steps=self.cfg.optim.video_warmup_steps)
        self.set_train_mode()
        log.info("step %d: image tower frozen; video phase (%d steps)", self.step,
                 self.total_steps - self.cfg.train.warmup_frame_steps)

    def recalibrate_batchnorm(self, data: Dataset | None = None) -> None:
        """Recompute BatchNorm running statistics of a training image tower on
        ``train.bn_recalibrate_batches`` batches of `data` (default: clean training clips).

        A frozen image tower keeps its statistics (they are part of what the rest learnt on).
        """
        n = self.cfg.train.bn_recalibrate_batches
        visual = self.model.backbone.visual
        norms = [m for m in visual.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not n or not norms or not any(p.requires_grad for p in visual.parameters()):
            return
        if data is None:
            data = build_dataset(self.cfg.data, "train", self.model.config.preprocess, train=False,
                                 seed=self.cfg.train.seed + 1)
        loader = self._loader(data, batch_size=self.cfg.train.batch_size)
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches
        self.model.train()
        with torch.no_grad():
            for batch in itertools.islice(loader, n):
                with self.autocast():
                    self.model.encode_image(batch["frames"].flatten(0, 1).to(self.device))
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
