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
split), `runlog` (log.jsonl, TensorBoard, wandb) and `errors` (`TrainSetupError`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from ..model import EmoCLIP

if TYPE_CHECKING:
    from torch.nn.parallel import DistributedDataParallel
from ..model_config import EmoCLIPConfig, PreprocessConfig
from . import checkpoint as ckpt, distributed as du
from .errors import TrainSetupError
from .loading import build_dataset, class_set, collate
from .loss import ContrastiveModel, contrastive_logits, contrastive_loss
from .model_setup import build_model, configure_trainable, frozen_names, model_config
from .optim import build_optimizer, build_scheduler, build_video_optimizer
from .recipe import TrainConfig
from .runlog import RunLogger, import_wandb, json_safe
from .sampling import EpochSeededDataset, LateFrameDataset, ResumableSampler, split_holdout

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


class Trainer:
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
        self._build_data(
            model_config(cfg.model.name, cfg.model.num_frames).preprocess
        )  # data errors first
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
        if (
            cfg.train.precision == "bf16"
            and self.device.type == "cuda"
            and not torch.cuda.is_bf16_supported()
        ):
            raise TrainSetupError(
                "train.precision=bf16 is not supported on this GPU; use fp16 or fp32"
            )

    def _wrap(self, module: nn.Module) -> nn.Module:
        if not self.dist.distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(
            module, device_ids=ids, find_unused_parameters=self.cfg.train.warmup_frame_steps > 0
        )

    @property
    def switches_phase(self) -> bool:
        """Whether the frame-level warm-up ends in a frozen image tower and a video phase."""
        return self.cfg.train.freeze_visual_after_warmup and self.cfg.train.warmup_frame_steps > 0

    @property
    def in_warmup(self) -> bool:
        """Whether the next step is a frame-level warm-up step."""
        return self.step < self.cfg.train.warmup_frame_steps

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
            self.val_set = build_dataset(
                cfg.data, cfg.eval.split, pre, train=False, seed=cfg.train.seed
            )
        elif cfg.eval.holdout_fraction > 0:  # validation clips carved off the training split
            clean = build_dataset(cfg.data, "train", pre, train=False, seed=cfg.train.seed)
            keep, held = split_holdout(train_set, cfg.eval.holdout_fraction, cfg.train.seed)
            train_set, self.val_set = Subset(train_set, keep), Subset(clean, held)
        self.train_set = EpochSeededDataset(train_set, cfg.train.seed)
        self.warmup_set = self.train_set  # the same clips unless the warm-up draws its own
        t = cfg.train
        if t.warmup_frame_steps and (t.warmup_frame_pick != "mean" or t.warmup_num_frames):
            if cfg.eval.holdout_fraction > 0:
                raise TrainSetupError(
                    "train.warmup_frame_pick=late / train.warmup_num_frames do not combine "
                    "with eval.holdout_fraction"
                )
            self.warmup_set = EpochSeededDataset(
                self._warmup_dataset(pre, cfg.train.seed), cfg.train.seed
            )
        self.sampler = ResumableSampler(
            self.train_set, num_replicas=d.world_size, rank=d.rank, seed=cfg.train.seed
        )
        batches = self.sampler.num_samples // cfg.train.batch_size
        self.steps_per_epoch = batches // cfg.train.grad_accum
        if self.steps_per_epoch < 1:
            raise TrainSetupError(
                f"the training split has {len(self.train_set)} clips: too few for batch_size "
                f"{cfg.train.batch_size} x grad_accum {cfg.train.grad_accum} x {d.world_size} processes"
            )
        self.total_steps = cfg.train.max_steps or cfg.train.epochs * self.steps_per_epoch
        self.data_classes = class_set(cfg.data)
        self.eval_classes = (
            class_set(dataclasses.replace(cfg.data, classes=cfg.eval.classes))
            if cfg.eval.classes
            else self.data_classes
        )

    def _loader(
        self, dataset: Dataset, sampler: Any = None, batch_size: int | None = None
    ) -> DataLoader:
        t = self.cfg.train
        # Its own generator: creating an iterator must not draw from torch's global one.
        generator = torch.Generator().manual_seed(t.seed + self.epoch)
        return DataLoader(
            dataset,
            batch_size=batch_size or t.batch_size,
            sampler=sampler,
            drop_last=sampler is not None,
            num_workers=t.num_workers,
            pin_memory=self.device.type == "cuda",
            generator=generator,
            collate_fn=partial(collate, context_length=self.model.context_length),
        )

    # -- one step --

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast for the configured precision (a no-op for fp32)."""
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.cfg.train.precision)
        return torch.autocast(
            self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None
        )

    def compute_gradients(self, batches: Sequence[dict[str, Any]]) -> float:
        """Accumulate the gradient of the contrastive loss over `batches` (one optimiser step).

        Returns:
            The loss over the union of the batches (this rank's).
        """
        frame_level = self.in_warmup
        inputs = [
            (b["frames"].to(self.device, non_blocking=True), b["tokens"].to(self.device))
            for b in batches
        ]
        cache = self._feature_cache(inputs, frame_level) if len(inputs) > 1 else None
        gather = self.cfg.train.gather_features and self.dist.distributed
        for j, (frames, tokens) in enumerate(inputs):
            last = j == len(inputs) - 1
            sync = (
                contextlib.nullcontext()
                if last or not self.dist.distributed
                else cast("DistributedDataParallel", self.wrapped).no_sync()
            )
            with sync:
                with self.autocast():
                    video, text, scale = self.wrapped(frames, tokens, frame_level)
                if cache is not None:  # this micro-batch with gradients, the others as constants
                    video = torch.cat([*cache[0][:j], video, *cache[0][j + 1 :]])
                    text = torch.cat([*cache[1][:j], text, *cache[1][j + 1 :]])
                    scale = scale if last else scale.detach()  # logit_scale's gradient counted once
                loss = contrastive_loss(contrastive_logits(video, text, scale, gather=gather))
                self.scaler.scale(loss).backward()
        self._embeddings = (video.detach(), text.detach())
        return float(loss.detach())

    @torch.no_grad()
    def _feature_cache(
        self, inputs: list[tuple[torch.Tensor, torch.Tensor]], frame_level: bool
    ) -> tuple[list, list]:
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
        log.info(
            "training %s: %d steps (%d per epoch), run folder %s",
            self.model.config.name,
            self.total_steps,
            self.steps_per_epoch,
            self.run_dir,
        )
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
        return TrainResult(
            self.run_dir,
            weights,
            self.model,
            self.step,
            self.epoch,
            self.losses,
            self.best,
            interrupted,
        )

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
            if (
                t.stop_at_step is not None
                and self.step == t.stop_at_step
                and self.step > start_step
            ):
                log.info(
                    "stopping at step %d as asked (train.stop_at_step); resume with --resume auto",
                    self.step,
                )
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
        record = {
            "step": self.step,
            "epoch": self.epoch,
            "loss": loss,
            "lr": lr,
            "logit_scale": float(self.model.logit_scale.detach().exp()),
        }
        self.logger.record(record)
        if self._embeddings is not None and (self.step % self.cfg.log.every == 0 or self.step == 1):
            video, text = self._embeddings
            n = video.shape[0]
            off = ~torch.eye(n, dtype=torch.bool, device=video.device)
            cos_v = float((video.float() @ video.float().t())[off].mean()) if n > 1 else 0.0
            cos_t = float((text.float() @ text.float().t())[off].mean()) if n > 1 else 0.0
            clips = self.cfg.train.batch_size * self.cfg.train.grad_accum * self.dist.world_size
            self.logger.scalars(
                self.step,
                {
                    "train/loss": loss,
                    "train/lr": lr,
                    "train/logit_scale": record["logit_scale"],
                    "train/video_cosine": cos_v,
                    "train/text_cosine": cos_t,
                    "train/clips_per_second": clips / max(seconds, 1e-9),
                },
            )
            if self.dist.is_main:
                log.info(
                    "step %d/%d epoch %d loss %.4f lr %.3g scale %.1f video-cos %.3f %.1f clips/s",
                    self.step,
                    self.total_steps,
                    self.epoch,
                    loss,
                    lr,
                    record["logit_scale"],
                    cos_v,
                    clips / max(seconds, 1e-9),
                )

    # -- evaluation, selection, export --

    @property
    def has_validation(self) -> bool:
        """Whether a validation split is configured (model selection)."""
        return self.val_set is not None

    def evaluate(
        self, dataset: Dataset, split: str, model: EmoCLIP | None = None
    ) -> dict[str, Any]:
        """Zero-shot metrics of `model` (default: the one training) on `dataset`; RNG untouched."""
        from .evaluate import evaluate_dataset, summary

        with _preserved_rng():
            if model is None:
                self.recalibrate_batchnorm()
            result = evaluate_dataset(
                model or self.model,
                dataset,
                [c.name for c in self.data_classes.classes],
                self.eval_classes,
                batch_size=self.cfg.eval.batch_size or self.cfg.train.batch_size,
                num_workers=self.cfg.train.num_workers,
                precision=self.cfg.train.precision,
                padding=self.cfg.eval.distributed_padding,
            )
        self.set_train_mode()
        out = {"split": split, "classes": self.eval_classes.name, **summary(result)}
        self.logger.record({"event": "eval", "step": self.step, "epoch": self.epoch, **out})
        self.logger.scalars(
            self.step, {f"{split}/war": result["war"], f"{split}/uar": result["uar"]}
        )
        log.info(
            "eval %s at step %d: WAR %.4f UAR %.4f (n=%d)",
            split,
            self.step,
            result["war"],
            result["uar"],
            result["num_samples"],
        )
        return out

    def validate(self) -> None:
        """Evaluate on the validation split; export the weights when the metric improves."""
        if self.val_set is None:
            raise TrainSetupError("validate() needs a validation split (eval.split or a holdout)")
        metrics = self.evaluate(self.val_set, self.cfg.eval.split or "val")
        self._last_eval_step = self.step
        key = self.cfg.eval.metric
        value = metrics.get(key)
        best = None if self.best is None else self.best["metrics"].get(key)
        if value is not None and not math.isnan(value) and (best is None or value > best):
            self.best = {"epoch": self.epoch, "step": self.step, "metrics": metrics}
            self.export({"val": metrics})

    def enter_video_phase(self, *, recalibrate: bool = True) -> None:
        """End the frame-level warm-up: re-estimate BatchNorm statistics on warm-up batches, freeze
        the image tower (eval mode) and start the video phase's optimiser and schedule.

        Args:
            recalibrate: False when resuming (the statistics are in the saved state).
        """
        if recalibrate:
            data = EpochSeededDataset(
                self._warmup_dataset(self.model.config.preprocess, self.cfg.train.seed + 1),
                self.cfg.train.seed + 1,
            )
            with _preserved_rng():
                self.recalibrate_batchnorm(data)
        self.model.backbone.visual.requires_grad_(False)
        self.in_video_phase = True
        self.wrapped = self._wrap(
            ContrastiveModel(self.model)
        )  # DDP: the new set of trained parameters
        self.optimizer = build_video_optimizer(self.cfg, self.model)
        self.scheduler = build_scheduler(
            self.cfg,
            self.optimizer,
            self.total_steps - self.cfg.train.warmup_frame_steps,
            warmup_steps=self.cfg.optim.video_warmup_steps,
        )
        self.set_train_mode()
        log.info(
            "step %d: image tower frozen; video phase (%d steps)",
            self.step,
            self.total_steps - self.cfg.train.warmup_frame_steps,
        )

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
            data = build_dataset(
                self.cfg.data,
                "train",
                self.model.config.preprocess,
                train=False,
                seed=self.cfg.train.seed + 1,
            )
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

    @property
    def export_name(self) -> str:
        """File stem and config name of the exported weights."""
        return self.cfg.out.name or self.model.config.name

    def export_config(self, metrics: dict[str, Any]) -> EmoCLIPConfig:
        """The exported model's config: name, class set and the training record."""
        cfg = self.cfg
        inline = (
            cfg.data.classes or cfg.eval.classes or cfg.data.dataset in ("synthetic", "manifest")
        )
        return ckpt.export_config(
            self.model.config,
            name=self.export_name,
            pretrained=self.pretrained,
            classes=self.eval_classes if inline else None,
            training=self.training_record(),
            metrics=json_safe(metrics),
        )

    def training_record(self) -> dict[str, Any]:
        """How the weights were made, for the export's provenance."""
        from ..version import __version__

        cfg, d = self.cfg, self.cfg.data
        backbone = self._backbone_note()
        selection = "final weights (no validation split)"
        if self.best is not None:
            selection = (
                f"best {cfg.eval.metric.upper()} on split {cfg.eval.split!r} at epoch "
                f"{self.best['epoch']} (step {self.best['step']})"
            )
        return {
            "data": {
                "dataset": d.dataset,
                "mode": d.mode,
                "fold": d.fold,
                "label_type": d.label_type,
                "leave_out": d.leave_out,
                "classes": self.data_classes.name,
            },
            "steps": self.step,
            "epochs": self.epoch,
            "optimizer": cfg.optim.name,
            "lr": cfg.optim.lr,
            "schedule": cfg.optim.schedule,
            "precision": cfg.train.precision,
            "world_size": self.dist.world_size,
            "global_batch": cfg.train.batch_size * cfg.train.grad_accum * self.dist.world_size,
            "seed": cfg.train.seed,
            "backbone": backbone,
            "selection": selection,
            "emoclip_version": __version__,
            "config": cfg.to_dict(),
        }

    def _backbone_note(self) -> str:
        cfg = self.cfg
        origin = (
            f"open_clip pretrained {self.model.config.model.backbone_pretrained!r}"
            if self.pretrained
            else "random initialisation"
        )
        if self.tuned_params:
            towers = "+".join(
                n
                for n, on in (
                    ("visual", cfg.model.finetune_visual),
                    ("text transformer", cfg.model.finetune_text),
                )
                if on
            )
            return f"{origin}, {towers} fine-tuned at lr x {cfg.optim.backbone_lr_scale:g}"
        trained = any(p.requires_grad for p in self.model.backbone.parameters())
        return f"{origin}, {'trained' if trained else 'frozen'}"

    def export(self, metrics: dict[str, Any]) -> Path:
        """Write ``<run>/<name>.safetensors`` + ``.json`` (rank 0), then wait for every rank."""
        config = self.export_config(metrics)
        path = self.run_dir / f"{self.export_name}.safetensors"
        if self.dist.is_main:
            trained_only = self.pretrained and not any(
                p.requires_grad for p in self.model.backbone.parameters()
            )
            ckpt.export_weights(
                self.model, config, path, trained_only=trained_only, dtype=self.cfg.out.export_dtype
            )
            log.info("exported %s", path)
        du.barrier()
        return path

    def _finish(self) -> Path:
        """Final validation or export, optional test report and Hub upload; returns the weights."""
        cfg = self.cfg
        if self.has_validation and self._last_eval_step != self.step:
            self.validate()
        if self.best is not None:
            path = self.run_dir / f"{self.export_name}.safetensors"
        else:
            with _preserved_rng():
                self.recalibrate_batchnorm()
            path = self.export({})
        if cfg.eval.test_split:
            self._report_test(path, cfg.eval.test_split)
        if cfg.out.push_to_hub and self.dist.is_main:
            from .hub_publish import push_to_hub

            log.info(
                "pushed to %s", push_to_hub(path, cfg.out.push_to_hub, private=cfg.out.hub_private)
            )
        du.barrier()
        return path

    def _report_test(self, path: Path, split: str) -> None:
        """Evaluate the exported weights on `split` (``eval.test_split``); record it in their sidecar."""
        from ..factory import load_model

        test_set = build_dataset(
            self.cfg.data,
            split,
            self.model.config.preprocess,
            train=False,
            seed=self.cfg.train.seed,
        )
        selected = load_model(path, device=self.device) if self.best is not None else self.model
        metrics = self.evaluate(test_set, split, model=selected)
        if self.dist.is_main:
            ckpt.add_metrics(path, {"test": json_safe(metrics)})
        du.barrier()

    # -- state --

    def save_state(self) -> Path:
        """Write ``<run>/state.pt`` (rank 0 writes every rank's RNG states)."""
        rngs = du.all_gather_objects(ckpt.rng_state())
        path = self.run_dir / ckpt.STATE_FILE
        if self.dist.is_main:
            ckpt.save_state(
                path,
                {
                    "model": ckpt.trained_state(self.model, self.frozen),
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "scaler": self.scaler.state_dict(),
                    "epoch": self.epoch,
                    "batch_in_epoch": self.batch_in_epoch,
                    "step": self.step,
                    "best": self.best,
                    "last_eval_step": self._last_eval_step,
                    "rng": rngs,
                    "world_size": self.dist.world_size,
                    "config": self.cfg.to_dict(),
                },
            )
        du.barrier()
        return path

    def restore(self, path: Path) -> None:
        """Continue from a saved state: tensors, optimiser, scheduler, scaler, counters, RNG."""
        state = ckpt.load_state(path)
        missing, unexpected = self.model.load_state_dict(state["model"], strict=False)
        if unexpected or set(missing) - set(self.frozen):
            raise ValueError(
                f"{path} does not fit this model: unexpected {unexpected[:5]}, "
                f"missing {sorted(set(missing) - set(self.frozen))[:5]}"
            )
        if self.switches_phase and state["step"] >= self.cfg.train.warmup_frame_steps:
            self.step = state["step"]
            self.enter_video_phase(recalibrate=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.batch_in_epoch, self.step = (
            state["epoch"],
            state["batch_in_epoch"],
            state["step"],
        )
        self.best, self._last_eval_step = state["best"], state["last_eval_step"]
        _warn_config_changes(state["config"], self.cfg.to_dict())
        if state["world_size"] == self.dist.world_size:
            ckpt.set_rng_state(state["rng"][self.dist.rank])
        else:
            log.warning(
                "%s was saved by %d processes, this run has %d: RNG streams are reseeded",
                path,
                state["world_size"],
                self.dist.world_size,
            )
            ckpt.seed_everything(self.cfg.train.seed + 1000 * self.dist.rank + self.step)
        log.info(
            "resumed from %s at step %d (epoch %d, batch %d)",
            path,
            self.step,
            self.epoch,
            self.batch_in_epoch,
        )


_RESUME_MAY_CHANGE = {
    "train.max_steps",
    "train.stop_at_step",
    "train.epochs",
    "train.num_workers",
    "out.dir",
    "out.push_to_hub",
    "log.every",
    "log.tensorboard",
    "log.wandb",
    "train.save_every_steps",
}


def _warn_config_changes(saved: dict[str, Any], current: dict[str, Any]) -> None:
    """Log the settings that differ from the ones the state was saved with."""
    changed = [
        f"{section}.{k}: {v!r} -> {current[section].get(k)!r}"
        for section, values in saved.items()
        if isinstance(values, dict)
        for k, v in values.items()
        if f"{section}.{k}" not in _RESUME_MAY_CHANGE and current.get(section, {}).get(k) != v
    ]
    if changed:
        log.warning(
            "resuming with a changed config (the run will differ from an uninterrupted one): %s",
            "; ".join(changed),
        )


@contextlib.contextmanager
def _preserved_rng() -> Iterator[None]:
    """Run a block (evaluation, BatchNorm recalibration) without moving any RNG stream."""
    state = ckpt.rng_state()
    try:
        yield
    finally:
        ckpt.set_rng_state(state)


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
