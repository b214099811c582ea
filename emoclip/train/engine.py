"""The training loop: contrastive video-text training, evaluation, state and export.

One `Trainer` per process. Under ``torchrun`` the model is wrapped in DDP (NCCL on CUDA, gloo on
CPU) and every rank reads its own shard (`ResumableSampler`, a DistributedSampler that can start
mid-epoch). The loss is the authors' symmetric in-batch contrastive loss (reference.md §3):
``(CE(logits_per_video, arange) + CE(logits_per_text, arange)) / 2`` with
``logits = exp(logit_scale) * norm(video) @ norm(text).T``.

Gradient accumulation keeps the in-batch negatives of the whole accumulated batch: the features
of all micro-batches are first computed without gradients, then each micro-batch is recomputed
with gradients and the loss over the full batch (the others' features as constants) is
back-propagated. The summed gradients equal those of one large batch (up to float rounding and
BatchNorm batch statistics), at the cost of one extra forward pass.

Resuming restores the trained tensors, optimiser, scheduler, GradScaler, epoch/step counters and
every rank's RNG states. Training items are seeded by ``(train.seed, epoch, index)``
(`EpochSeededDataset`), so an interrupted run continues with exactly the batches, augmentations
and losses of an uninterrupted one, whatever ``num_workers`` is.

With ``train.gather_features`` the logits span the global batch (every rank's embeddings; the
authors used the per-GPU batch only); the local slice's gradient is scaled so that DDP's averaging
gives exactly the global-batch gradient (`distributed.all_gather_with_grad`).

Frame-level warm-up (``train.warmup_frame_steps``): the first steps bypass the temporal model and
pair each caption with a frame embedding, the normalised mean over the clip's frames (pick
"mean") or one random frame from the clip's second half, where the expression has formed (pick
"late"), optionally from clips of ``train.warmup_num_frames`` frames. With
``train.freeze_visual_after_warmup`` the warm-up ends in a switch to a video phase: BatchNorm
statistics are re-estimated on ``train.bn_recalibrate_batches`` warm-up batches, the image tower is
frozen (eval mode, kept as trained: it stays in the training state and the export), and a new
optimiser and schedule train the temporal model (at ``optim.lr``), the text tower and logit_scale
(at lr x ``optim.video_text_lr_scale``); the warm-up's own schedule then ends at the switch.

Run folder: ``config.yaml`` (the resolved config), ``state.pt`` (resume; every epoch, every
``train.save_every_steps`` and at the end), ``log.jsonl`` (one line per step, plus evaluations),
``tensorboard/``, and the export ``<out.name>.safetensors`` + ``.json``: the best validation
weights when a validation split is configured, else the final ones.

The parts the trainer uses live beside it: `loss` (the contrastive logits and loss, the module DDP
wraps), `model_setup` (the model to train and its trained parameters), `optim` (optimisers and
schedules), `sampling` (per-item seeding, the "late" pick, the resumable sampler, the hold-out
split), `runlog` (log.jsonl, TensorBoard, wandb) and `errors` (`TrainSetupError`). `Trainer`'s
methods beyond the setup, the step and the loop come from mixins: `phases` (the warm-up's end:
BatchNorm re-estimation, freezing, the video phase), `selection` (evaluation during training,
model selection, export, test report, Hub upload) and `run_state` (``state.pt``, resuming).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from ..model import EmoCLIP
from ..model_config import PreprocessConfig
from . import checkpoint as ckpt
from . import distributed as du
from .errors import TrainSetupError
from .loading import build_dataset, class_set, collate
from .loss import ContrastiveModel, contrastive_logits, contrastive_loss
from .model_setup import build_model, configure_trainable, frozen_names, model_config
from .optim import build_optimizer, build_scheduler
from .phases import PhaseMixin
from .recipe import TrainConfig
from .run_state import StateMixin
from .runlog import RunLogger, import_wandb
from .sampling import EpochSeededDataset, LateFrameDataset, ResumableSampler, split_holdout
from .selection import SelectionMixin

log = logging.getLogger("emoclip.train")


@dataclass
class TrainResult:
    """What `train` returns.

    Attributes:
        run_dir: The run folder (config.yaml, state.pt, log.jsonl, tensorboard/, the export).
        weights: The exported ``.safetensors`` (None when interrupted).
        model: The trained model (on its device; the selected one is the exported file).
        step: Optimiser steps done in total.
        epoch: Completed epochs.
        losses: ``(step, loss)`` of every step of this invocation (mean over ranks).
        best: Validation record of the exported weights, if a validation split was used.
        interrupted: Stopped by ``train.stop_at_step``.
    """

    run_dir: Path
    weights: Path | None
    model: EmoCLIP
    step: int
    epoch: int
    losses: list[tuple[int, float]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    interrupted: bool = False


def resolve_run_dir(cfg: TrainConfig, config_path: str | Path | None = None) -> Path:
    """``out.dir``, else ``runs/<config file stem>``, else ``runs/<model name>``."""
    if cfg.out.dir:
        return Path(cfg.out.dir)
    stem = Path(config_path).stem if config_path else Path(cfg.model.name).stem
    return Path("runs") / stem


class Trainer(PhaseMixin, SelectionMixin, StateMixin):
    """One process's share of a training run (see the module docstring).

    Args:
        cfg: The resolved config.
        dist: This process's place in the job (`distributed.init_distributed`).
        run_dir: Where config, state, logs and weights go.
    """

    def __init__(self, cfg: TrainConfig, dist: du.DistInfo, run_dir: Path) -> None:
        self.cfg, self.dist, self.run_dir = cfg, dist, Path(run_dir)
        self.device = dist.device
        self.step = self.epoch = self.batch_in_epoch = 0
        self.best: dict[str, Any] | None = None
        self.losses: list[tuple[int, float]] = []
        self._last_eval_step = -1
        self._lr = cfg.optim.lr
        self._embeddings: tuple[torch.Tensor, torch.Tensor] | None = None
        self._check_options()
        self._build_data(model_config(cfg.model.name, cfg.model.num_frames).preprocess)  # data errors first
        ckpt.seed_everything(cfg.train.seed)  # identical model init on every rank
        self.model, self.pretrained = build_model(cfg)
        self.main_params, self.tuned_params = configure_trainable(self.model, cfg, self.pretrained)
        self.frozen = frozen_names(self.model)
        self.model.to(self.device)
        self.wrapped = self._wrap(ContrastiveModel(self.model))
        self.optimizer = build_optimizer(cfg, self.main_params, self.tuned_params)
        self.in_video_phase = False  # after the warm-up's switch (train.freeze_visual_after_warmup)
        first = cfg.train.warmup_frame_steps if self.switches_phase else self.total_steps
        self.scheduler = build_scheduler(cfg, self.optimizer, first)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.train.precision == "fp16")
        ckpt.seed_everything(cfg.train.seed + 1000 * dist.rank)  # per-rank streams from here on
        if dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            cfg.save(self.run_dir / "config.yaml")
        self.logger = RunLogger(self.run_dir, cfg, dist.is_main)

    # -- setup --

    def _check_options(self) -> None:
        cfg = self.cfg
        if cfg.out.push_to_hub and self.dist.is_main:
            from .hub_publish import check_can_push

            check_can_push(cfg.out.push_to_hub)
        if cfg.log.wandb:
            import_wandb()
        if cfg.train.precision == "bf16" and self.device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise TrainSetupError("train.precision=bf16 is not supported on this GPU; use fp16 or fp32")

    def _wrap(self, module: nn.Module) -> nn.Module:
        if not self.dist.distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids,
                                       find_unused_parameters=self.cfg.train.warmup_frame_steps > 0)

    def _warmup_dataset(self, pre: PreprocessConfig, seed: int, train: bool = True) -> Dataset:
        """Training clips for the frame-level warm-up (``warmup_num_frames``, the "late" pick)."""
        t = self.cfg.train
        if t.warmup_num_frames:
            pre = dataclasses.replace(pre, num_frames=t.warmup_num_frames)
        data = build_dataset(self.cfg.data, "train", pre, train=train, seed=seed)
        return LateFrameDataset(data) if t.warmup_frame_pick == "late" else data

    def _build_data(self, pre: PreprocessConfig) -> None:
        cfg, d = self.cfg, self.dist
        train_set = build_dataset(cfg.data, "train", pre, train=True, seed=cfg.train.seed)
        self.val_set = None
        if cfg.eval.split:
            self.val_set = build_dataset(cfg.data, cfg.eval.split, pre, train=False, seed=cfg.train.seed)
        elif cfg.eval.holdout_fraction > 0:  # validation clips carved off the training split
            clean = build_dataset(cfg.data, "train", pre, train=False, seed=cfg.train.seed)
            keep, held = split_holdout(train_set, cfg.eval.holdout_fraction, cfg.train.seed)
            train_set, self.val_set = Subset(train_set, keep), Subset(clean, held)
        self.train_set = EpochSeededDataset(train_set, cfg.train.seed)
        self.warmup_set = self.train_set  # the same clips unless the warm-up draws its own
        t = cfg.train
        if t.warmup_frame_steps and (t.warmup_frame_pick != "mean" or t.warmup_num_frames):
            if cfg.eval.holdout_fraction > 0:
                raise TrainSetupError("train.warmup_frame_pick=late / train.warmup_num_frames do not combine "
                                      "with eval.holdout_fraction")
            self.warmup_set = EpochSeededDataset(self._warmup_dataset(pre, cfg.train.seed), cfg.train.seed)
        self.sampler = ResumableSampler(self.train_set, num_replicas=d.world_size, rank=d.rank, seed=cfg.train.seed)
        batches = self.sampler.num_samples // cfg.train.batch_size
        self.steps_per_epoch = batches // cfg.train.grad_accum
        if self.steps_per_epoch < 1:
            raise TrainSetupError(f"the training split has {len(train_set)} clips: too few for batch_size "
                                  f"{cfg.train.batch_size} x grad_accum {cfg.train.grad_accum} x {d.world_size} processes")
        self.total_steps = cfg.train.max_steps or cfg.train.epochs * self.steps_per_epoch
        self.data_classes = class_set(cfg.data)
        self.eval_classes = class_set(dataclasses.replace(cfg.data, classes=cfg.eval.classes)) \
            if cfg.eval.classes else self.data_classes

    def _loader(self, dataset: Dataset, sampler: Any = None, batch_size: int | None = None) -> DataLoader:
        t = self.cfg.train
        # Its own generator: creating an iterator must not draw from torch's global one.
        generator = torch.Generator().manual_seed(t.seed + self.epoch)
        return DataLoader(dataset, batch_size=batch_size or t.batch_size, sampler=sampler, drop_last=sampler is not None,
                          num_workers=t.num_workers, pin_memory=self.device.type == "cuda", generator=generator,
                          collate_fn=partial(collate, context_length=self.model.context_length))

    # -- one step --

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast for the configured precision (a no-op for fp32)."""
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.cfg.train.precision)
        return torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None)

    def compute_gradients(self, batches: Sequence[dict[str, Any]]) -> float:
        """Accumulate the gradient of the contrastive loss over `batches` (one optimiser step).

        Returns:
            The loss over the union of the batches (this rank's).
        """
        frame_level = self.in_warmup
        inputs = [(b["frames"].to(self.device, non_blocking=True), b["tokens"].to(self.device)) for b in batches]
        cache = self._feature_cache(inputs, frame_level) if len(inputs) > 1 else None
        gather = self.cfg.train.gather_features and self.dist.distributed
        for j, (frames, tokens) in enumerate(inputs):
            last = j == len(inputs) - 1
            sync = contextlib.nullcontext() if last or not self.dist.distributed else self.wrapped.no_sync()
            with sync:
                with self.autocast():
                    video, text, scale = self.wrapped(frames, tokens, frame_level)
                if cache is not None:  # this micro-batch with gradients, the others as constants
                    video = torch.cat([*cache[0][:j], video, *cache[0][j + 1:]])
                    text = torch.cat([*cache[1][:j], text, *cache[1][j + 1:]])
                    scale = scale if last else scale.detach()  # logit_scale's gradient counted once
                loss = contrastive_loss(contrastive_logits(video, text, scale, gather=gather))
                self.scaler.scale(loss).backward()
        self._embeddings = (video.detach(), text.detach())
        return float(loss.detach())

    @torch.no_grad()
    def _feature_cache(self, inputs: list[tuple[torch.Tensor, torch.Tensor]], frame_level: bool) -> tuple[list, list]:
        videos, texts = [], []
        for frames, tokens in inputs:
            with self.autocast():
                video, text, _ = self.wrapped(frames, tokens, frame_level)
            videos.append(video)
            texts.append(text)
        return videos, texts

    def optimizer_step(self) -> None:
        """Clip (optionally), step through the GradScaler, zero grads, advance per-step schedules."""
        t = self.cfg.train
        if t.clip_grad_norm:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.main_params + self.tuned_params, t.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.cfg.optim.schedule != "multistep":
            self.scheduler.step()
        if t.max_logit_scale is not None:
            with torch.no_grad():
                self.model.logit_scale.clamp_(max=t.max_logit_scale)
        self.step += 1

    def train_step(self, batches: Sequence[dict[str, Any]]) -> float:
        """One optimiser step; returns the loss averaged over ranks."""
        self._lr = self.optimizer.param_groups[0]["lr"]  # the lr this step uses
        loss = self.compute_gradients(batches)
        self.optimizer_step()
        return du.all_mean(loss, self.device)

    # -- loop --

    def set_train_mode(self) -> None:
        """Train mode, except a frozen image tower (keeps any BatchNorm statistics fixed)."""
        self.model.train()
        if not any(p.requires_grad for p in self.model.backbone.visual.parameters()):
            self.model.backbone.visual.eval()

    def fit(self) -> TrainResult:
        """Train until ``max_steps`` / ``epochs`` (or ``stop_at_step``), evaluate and export."""
        start_step = self.step
        log.info("training %s: %d steps (%d per epoch), run folder %s", self.model.config.name,
                 self.total_steps, self.steps_per_epoch, self.run_dir)
        self.set_train_mode()
        reason = "done" if self.step >= self.total_steps else ""
        while not reason:
            reason = self._train_epoch(start_step)
            if reason == "phase":
                reason = ""
            elif reason == "epoch":
                self._end_epoch()
                reason = "done" if self.step >= self.total_steps else ""
        interrupted = reason == "interrupt"
        weights = None
        self.save_state()
        if not interrupted:
            weights = self._finish()
        self.logger.close()
        return TrainResult(self.run_dir, weights, self.model, self.step, self.epoch, self.losses,
                           self.best, interrupted)

    def _train_epoch(self, start_step: int) -> str:
        """Train on (the rest of) the current epoch; returns why it stopped."""
        t = self.cfg.train
        self.sampler.set_epoch(self.epoch, start=self.batch_in_epoch * t.batch_size)
        dataset = self.warmup_set if self.in_warmup else self.train_set
        dataset.epoch = self.epoch
        batches = iter(self._loader(dataset, self.sampler))
        tic = time.perf_counter()
        while self.batch_in_epoch + t.grad_accum <= self.steps_per_epoch * t.grad_accum:
            loss = self.train_step([next(batches) for _ in range(t.grad_accum)])
            self.batch_in_epoch += t.grad_accum
            self._log_step(loss, time.perf_counter() - tic)
            tic = time.perf_counter()
            if self.switches_phase and not self.in_video_phase and not self.in_warmup:
                self.enter_video_phase()
            if self.step >= self.total_steps:
                return "done"
            if t.stop_at_step is not None and self.step == t.stop_at_step and self.step > start_step:
                log.info("stopping at step %d as asked (train.stop_at_step); resume with --resume auto", self.step)
                return "interrupt"
            if t.save_every_steps and self.step % t.save_every_steps == 0:
                self.save_state()
            if self.step == t.warmup_frame_steps and self.warmup_set is not self.train_set:
                return "phase"  # a new loader over the video clips, same epoch position
        return "epoch"

    def _end_epoch(self) -> None:
        self.epoch += 1
        self.batch_in_epoch = 0
        if self.cfg.optim.schedule == "multistep":
            self.scheduler.step()
        if self.has_validation and self.epoch % self.cfg.eval.every == 0:
            self.validate()
        self.save_state()

    def _log_step(self, loss: float, seconds: float) -> None:
        self.losses.append((self.step, loss))
        lr = self._lr
        record = {"step": self.step, "epoch": self.epoch, "loss": loss, "lr": lr,
                  "logit_scale": float(self.model.logit_scale.detach().exp())}
        self.logger.record(record)
        if self.step % self.cfg.log.every == 0 or self.step == 1:
            video, text = self._embeddings
            n = video.shape[0]
            off = ~torch.eye(n, dtype=torch.bool, device=video.device)
            cos_v = float((video.float() @ video.float().t())[off].mean()) if n > 1 else 0.0
            cos_t = float((text.float() @ text.float().t())[off].mean()) if n > 1 else 0.0
            clips = self.cfg.train.batch_size * self.cfg.train.grad_accum * self.dist.world_size
            self.logger.scalars(self.step, {"train/loss": loss, "train/lr": lr,
                                            "train/logit_scale": record["logit_scale"],
                                            "train/video_cosine": cos_v, "train/text_cosine": cos_t,
                                            "train/clips_per_second": clips / max(seconds, 1e-9)})
            if self.dist.is_main:
                log.info("step %d/%d epoch %d loss %.4f lr %.3g scale %.1f video-cos %.3f %.1f clips/s",
                         self.step, self.total_steps, self.epoch, loss, lr, record["logit_scale"], cos_v,
                         clips / max(seconds, 1e-9))



def train(
    cfg: TrainConfig,
    *,
    resume: str | None = None,
    config_path: str | Path | None = None,
    dist: du.DistInfo | None = None,
) -> TrainResult:
    """Run (or resume) one training run in this process.

    Args:
        cfg: The resolved config (``out.dir`` is filled in here when empty).
        resume: None, ``"auto"`` (``<run>/state.pt`` when it exists) or a state file/run folder.
        config_path: The YAML the config came from (names the default run folder).
        dist: This process's place in the job (default: from the torchrun environment).

    Returns:
        A `TrainResult`.
    """
    info = dist or du.init_distributed(cfg.train.device)
    run_dir = resolve_run_dir(cfg, config_path)
    cfg.out.dir = str(run_dir)
    state = ckpt.find_resume(resume, run_dir)
    trainer = Trainer(cfg, info, run_dir)
    try:
        if state is not None:
            trainer.restore(state)
        return trainer.fit()
    finally:
        trainer.logger.close()
