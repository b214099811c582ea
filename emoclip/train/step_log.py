"""What is logged after each optimiser step: log.jsonl, scalars and the console line."""

from __future__ import annotations

import logging

import torch

from emoclip.train.runlog import RunLogger

log = logging.getLogger("emoclip.train")


def log_step(
    logger: RunLogger,
    *,
    step: int,
    epoch: int,
    total_steps: int,
    loss: float,
    lr: float,
    logit_scale: float,
    embeddings: tuple[torch.Tensor, torch.Tensor] | None,
    seconds: float,
    clips: int,
    every: int,
    is_main: bool,
) -> None:
    """Record one step; every `every` steps (and at step 1) also the scalars and a console line.

    Args:
        logger: The run's logger.
        step: Optimiser steps done.
        epoch: The current epoch.
        total_steps: Steps of the whole run.
        loss: The step's loss (mean over ranks).
        lr: The learning rate the step used.
        logit_scale: ``exp(logit_scale)`` after the step.
        embeddings: The last micro-batch's normalised ``(B, D)`` video and text embeddings.
        seconds: The step's wall time.
        clips: Clips per step over all ranks.
        every: ``log.every``.
        is_main: Whether this is rank 0 (the console line).
    """
    record = {
        "step": step,
        "epoch": epoch,
        "loss": loss,
        "lr": lr,
        "logit_scale": logit_scale,
    }
    logger.record(record)
    if embeddings is not None and (step % every == 0 or step == 1):
        video, text = embeddings
        n = video.shape[0]
        off = ~torch.eye(n, dtype=torch.bool, device=video.device)
        cos_v = float((video.float() @ video.float().t())[off].mean()) if n > 1 else 0.0
        cos_t = float((text.float() @ text.float().t())[off].mean()) if n > 1 else 0.0
        logger.scalars(
            step,
            {
                "train/loss": loss,
                "train/lr": lr,
                "train/logit_scale": record["logit_scale"],
                "train/video_cosine": cos_v,
                "train/text_cosine": cos_t,
                "train/clips_per_second": clips / max(seconds, 1e-9),
            },
        )
        if is_main:
            log.info(
                "step %d/%d epoch %d loss %.4f lr %.3g scale %.1f video-cos %.3f %.1f clips/s",
                step,
                total_steps,
                epoch,
                loss,
                lr,
                record["logit_scale"],
                cos_v,
                clips / max(seconds, 1e-9),
            )
