"""The training loop: one `Trainer` per process steps, logs, validates and saves a run.

One `Trainer` per process. Under ``torchrun`` the model is wrapped in DDP (NCCL on CUDA, gloo on
CPU) and every rank reads its own shard (`ResumableSampler`, a DistributedSampler that can start
mid-epoch). The loss is the authors' symmetric in-batch contrastive loss (reference.md §3):
``(CE(logits_per_video, arange) + CE(logits_per_text, arange)) / 2`` with
``logits = exp(logit_scale) * norm(video) @ norm(text).T``; gradient accumulation keeps the
in-batch negatives of the whole accumulated batch (`loss.accumulate_gradients`).

Resuming restores the trained tensors, optimiser, scheduler, GradScaler, counters and every
rank's RNG states (`run_state`).

With ``train.gather_features`` the logits span the global batch (every rank's embeddings; the
authors used the per-GPU batch only); the local slice's gradient is scaled so that DDP's averaging
gives exactly the global-batch gradient (`distributed.all_gather_with_grad`).

Frame-level warm-up (``train.warmup_frame_steps``), optionally ending in a switch to a video
phase with a frozen image tower (``train.freeze_visual_after_warmup``): see `phases`.

Run folder: ``config.yaml`` (the resolved config), ``state.pt`` (resume; every epoch, every
``train.save_every_steps`` and at the end), ``log.jsonl`` (one line per step, plus evaluations),
``tensorboard/``, and the export ``<out.name>.safetensors`` + ``.json``: the best validation
weights when a validation split is configured, else the final ones (`selection`).

The parts the trainer uses live beside it: `loss` (the contrastive logits and loss, the module DDP
wraps, gradient accumulation), `model_setup` (the model to train and its trained parameters),
`optim` (optimisers and schedules), `sampling` (per-item seeding, the "late" pick, the resumable
sampler, the hold-out split), `run_data` (the datasets, sampler and step counts of a run),
`runlog` (log.jsonl, TensorBoard, wandb), `step_log` (what each step logs), `phases` (the
warm-up's switch, BatchNorm re-estimation), `selection` (evaluation during the run, model
selection, the run's end: export, test report, Hub upload), `run_state` (state.pt, RNG streams),
`export` (the exported weights and their provenance), `run_result` (`TrainResult`, the run folder)
and `errors` (`TrainSetupError`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from emoclip.model.config import PreprocessConfig
from emoclip.train import checkpoint as ckpt, distributed as du, phases, run_state
from emoclip.train.errors import TrainSetupError
from emoclip.train.loading import collate
from emoclip.train.loss import ContrastiveModel, accumulate_gradients
from emoclip.train.model_setup import build_model, configure_trainable, frozen_names, model_config
from emoclip.train.optim import build_optimizer, build_scheduler
from emoclip.train.recipe import TrainConfig
from emoclip.train.run_data import build_run_data
from emoclip.train.run_result import TrainResult, resolve_run_dir
from emoclip.train.run_state import preserved_rng
from emoclip.train.runlog import RunLogger, import_wandb
from emoclip.train.sampling import EpochSeededDataset
from emoclip.train.selection import ModelSelection
from emoclip.train.step_log import log_step

log = logging.getLogger("emoclip.train")


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
        self.losses: list[tuple[int, float]] = []
        self._lr = cfg.optim.lr
        self._embeddings: tuple[torch.Tensor, torch.Tensor] | None = None
        self._check_options()
        pre = model_config(cfg.model.name, cfg.model.num_frames).preprocess
        self._build_data(pre)  # data errors first
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
        self.selection = ModelSelection(
            cfg,
            dist,
            self.run_dir,
            self.model,
            self.logger,
            val_set=self.val_set,
            data_classes=self.data_classes,
            eval_classes=self.eval_classes,
            pretrained=self.pretrained,
            tuned_params=self.tuned_params,
            prepare=self.recalibrate_batchnorm,
            resume=self.set_train_mode,
        )

    # -- setup --

    def _check_options(self) -> None:
        cfg = self.cfg
        if cfg.out.push_to_hub and self.dist.is_main:
            from emoclip.train.hub_publish import check_can_push

            check_can_push(cfg.out.push_to_hub)
        if cfg.log.wandb:
            import_wandb()
        cuda = self.device.type == "cuda"
        if cfg.train.precision == "bf16" and cuda and not torch.cuda.is_bf16_supported():
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

    def _build_data(self, pre: PreprocessConfig) -> None:
        d = build_run_data(self.cfg, self.dist, pre)
        self.train_set, self.val_set, self.warmup_set = d.train_set, d.val_set, d.warmup_set
        self.sampler, self.steps_per_epoch = d.sampler, d.steps_per_epoch
        self.total_steps = d.total_steps
        self.data_classes, self.eval_classes = d.data_classes, d.eval_classes

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
        inputs = [
            (b["frames"].to(self.device, non_blocking=True), b["tokens"].to(self.device))
            for b in batches
        ]
        loss, self._embeddings = accumulate_gradients(
            self.wrapped,
            inputs,
            frame_level=self.in_warmup,
            autocast=self.autocast,
            scaler=self.scaler,
            gather=self.cfg.train.gather_features and self.dist.distributed,
            distributed=self.dist.distributed,
        )
        return loss

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
            weights = self.selection.finish(step=self.step, epoch=self.epoch)
        self.logger.close()
        return TrainResult(
            self.run_dir,
            weights,
            self.model,
            self.step,
            self.epoch,
            self.losses,
            self.selection.best,
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
        if self.selection.has_validation and self.epoch % self.cfg.eval.every == 0:
            self.selection.validate(step=self.step, epoch=self.epoch)
        self.save_state()

    def _log_step(self, loss: float, seconds: float) -> None:
        self.losses.append((self.step, loss))
        log_step(
            self.logger,
            step=self.step,
            epoch=self.epoch,
            total_steps=self.total_steps,
            loss=loss,
            lr=self._lr,
            logit_scale=float(self.model.logit_scale.detach().exp()),
            embeddings=self._embeddings,
            seconds=seconds,
            clips=self.cfg.train.batch_size * self.cfg.train.grad_accum * self.dist.world_size,
            every=self.cfg.log.every,
            is_main=self.dist.is_main,
        )

    def enter_video_phase(self, *, recalibrate: bool = True) -> None:
        """End the frame-level warm-up: re-estimate BatchNorm statistics on warm-up batches, freeze
        the image tower (eval mode) and start the video phase's optimiser and schedule.

        Args:
            recalibrate: False when resuming (the statistics are in the saved state).
        """
        if recalibrate:
            seed, pre = self.cfg.train.seed + 1, self.model.config.preprocess
            data = EpochSeededDataset(phases.warmup_dataset(self.cfg, pre, seed), seed)
            with preserved_rng():
                self.recalibrate_batchnorm(data)
        self.model.backbone.visual.requires_grad_(False)
        self.in_video_phase = True
        # DDP: the new set of trained parameters
        self.wrapped = self._wrap(ContrastiveModel(self.model))
        self.optimizer, self.scheduler = phases.video_phase_optim(
            self.cfg, self.model, self.total_steps
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
        phases.recalibrate_batchnorm(
            self.model,
            self.cfg,
            partial(self._loader, batch_size=self.cfg.train.batch_size),
            self.autocast,
            self.device,
            data,
        )

    # -- state --

    def save_state(self) -> Path:
        """Write ``<run>/state.pt`` (rank 0 writes every rank's RNG states)."""
        return run_state.save_state(
            self.run_dir,
            self.dist,
            lambda rngs: {
                "model": ckpt.trained_state(self.model, self.frozen),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "epoch": self.epoch,
                "batch_in_epoch": self.batch_in_epoch,
                "step": self.step,
                "best": self.selection.best,
                "last_eval_step": self.selection.last_eval_step,
                "rng": rngs,
                "world_size": self.dist.world_size,
                "config": self.cfg.to_dict(),
            },
        )

    def restore(self, path: Path) -> None:
        """Continue from a saved state: tensors, optimiser, scheduler, scaler, counters, RNG."""
        state = run_state.load_trained(path, self.model, self.frozen)
        if self.switches_phase and state["step"] >= self.cfg.train.warmup_frame_steps:
            self.step = state["step"]
            self.enter_video_phase(recalibrate=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.batch_in_epoch = state["epoch"], state["batch_in_epoch"]
        self.step = state["step"]
        self.selection.best = state["best"]
        self.selection.last_eval_step = state["last_eval_step"]
        run_state.restore_streams(path, state, self.cfg, self.dist, self.step)
        log.info(
            "resumed from %s at step %d (epoch %d, batch %d)",
            path,
            self.step,
            self.epoch,
            self.batch_in_epoch,
        )


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
