"""Evaluation during a run and model selection: which weights a run exports and what it reports.

Every ``eval.every`` epochs, and once more at the end, the training model is evaluated zero-shot on
the validation split (``eval.split`` or a hold-out; `scoring.evaluate_dataset`, with BatchNorm
statistics re-estimated first and every RNG stream left untouched); when ``eval.metric`` improves,
the weights are exported (`export`). Without a validation split the final weights are exported.
The run's end then evaluates the exported weights on ``eval.test_split`` (recorded in their
sidecar JSON) and uploads them to the Hub (``out.push_to_hub``).

`engine.Trainer` owns one `ModelSelection`, calls `ModelSelection.validate` after an epoch and
`ModelSelection.finish` at the end, and saves `ModelSelection.best` in its resume state.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn
from torch.utils.data import Dataset

from emoclip.classes import ClassSet
from emoclip.model.network import EmoCLIP
from emoclip.train import checkpoint as ckpt, distributed as du, export as exports
from emoclip.train.errors import TrainSetupError
from emoclip.train.loading import build_dataset
from emoclip.train.recipe import TrainConfig
from emoclip.train.run_state import preserved_rng
from emoclip.train.runlog import RunLogger, json_safe
from emoclip.train.scoring import evaluate_dataset, summary

log = logging.getLogger("emoclip.train")


class ModelSelection:
    """The evaluations of one run, its best validation record and its exported weights.

    Args:
        cfg: The resolved config.
        dist: This process's place in the job.
        run_dir: The run folder (the export goes there).
        model: The model training.
        logger: The run's logger (evaluations go to log.jsonl and the scalars).
        val_set: The validation clips, or None (the final weights are exported).
        data_classes: The dataset's classes, in label order.
        eval_classes: The classes evaluated against (and exported with inline class sets).
        pretrained: Whether the backbone started from pretrained weights.
        tuned_params: The backbone parameters fine-tuned at a scaled learning rate.
        prepare: Readies the training model for an evaluation (BatchNorm re-estimation); called
            with every RNG stream preserved.
        resume: Puts the training model back into training mode after an evaluation.

    Attributes:
        best: ``{"epoch", "step", "metrics"}`` of the exported weights' validation, or None.
        last_eval_step: The step of the last validation (-1: none yet).
    """

    def __init__(
        self,
        cfg: TrainConfig,
        dist: du.DistInfo,
        run_dir: Path,
        model: EmoCLIP,
        logger: RunLogger,
        *,
        val_set: Dataset | None,
        data_classes: ClassSet,
        eval_classes: ClassSet,
        pretrained: bool,
        tuned_params: list[nn.Parameter],
        prepare: Callable[[], None],
        resume: Callable[[], None],
    ) -> None:
        self.cfg, self.dist, self.run_dir = cfg, dist, Path(run_dir)
        self.model, self.logger = model, logger
        self.val_set, self.data_classes, self.eval_classes = val_set, data_classes, eval_classes
        self.pretrained, self.tuned_params = pretrained, tuned_params
        self.prepare, self.resume = prepare, resume
        self.best: dict[str, Any] | None = None
        self.last_eval_step = -1

    @property
    def has_validation(self) -> bool:
        """Whether a validation split is configured (model selection)."""
        return self.val_set is not None

    def evaluate(
        self, dataset: Dataset, split: str, *, step: int, epoch: int, model: EmoCLIP | None = None
    ) -> dict[str, Any]:
        """Zero-shot metrics of `model` (default: the one training) on `dataset`; RNG untouched.

        Returns:
            ``{"split", "classes", ...}`` with `scoring.summary`'s numbers (WAR, UAR, ...).
        """
        with preserved_rng():
            if model is None:
                self.prepare()
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
        self.resume()
        out = {"split": split, "classes": self.eval_classes.name, **summary(result)}
        self.logger.record({"event": "eval", "step": step, "epoch": epoch, **out})
        self.logger.scalars(step, {f"{split}/war": result["war"], f"{split}/uar": result["uar"]})
        log.info(
            "eval %s at step %d: WAR %.4f UAR %.4f (n=%d)",
            split,
            step,
            result["war"],
            result["uar"],
            result["num_samples"],
        )
        return out

    def validate(self, *, step: int, epoch: int) -> None:
        """Evaluate on the validation split; export the weights when the metric improves."""
        if self.val_set is None:
            raise TrainSetupError("validate() needs a validation split (eval.split or a holdout)")
        metrics = self.evaluate(self.val_set, self.cfg.eval.split or "val", step=step, epoch=epoch)
        self.last_eval_step = step
        key = self.cfg.eval.metric
        value = metrics.get(key)
        best = None if self.best is None else self.best["metrics"].get(key)
        if value is not None and not math.isnan(value) and (best is None or value > best):
            self.best = {"epoch": epoch, "step": step, "metrics": metrics}
            self.export({"val": metrics}, step=step, epoch=epoch)

    def training_record(self, *, step: int, epoch: int) -> dict[str, Any]:
        """How the weights were made, for the export's provenance (`export.training_record`)."""
        return exports.training_record(
            self.cfg,
            self.model,
            pretrained=self.pretrained,
            tuned_params=self.tuned_params,
            best=self.best,
            data_classes=self.data_classes,
            step=step,
            epoch=epoch,
            world_size=self.dist.world_size,
        )

    def export(self, metrics: dict[str, Any], *, step: int, epoch: int) -> Path:
        """Write ``<run>/<name>.safetensors`` + ``.json`` (rank 0), then wait for every rank."""
        config = exports.export_config(
            self.cfg,
            self.model,
            metrics,
            pretrained=self.pretrained,
            eval_classes=self.eval_classes,
            training=self.training_record(step=step, epoch=epoch),
        )
        return exports.export(
            self.cfg,
            self.model,
            config,
            self.run_dir,
            pretrained=self.pretrained,
            is_main=self.dist.is_main,
        )

    def finish(self, *, step: int, epoch: int) -> Path:
        """Final validation or export, optional test report and Hub upload; returns the weights."""
        cfg = self.cfg
        if self.has_validation and self.last_eval_step != step:
            self.validate(step=step, epoch=epoch)
        if self.best is not None:
            path = self.run_dir / f"{exports.export_name(cfg, self.model)}.safetensors"
        else:
            with preserved_rng():
                self.prepare()
            path = self.export({}, step=step, epoch=epoch)
        if cfg.eval.test_split:
            self.report_test(path, cfg.eval.test_split, step=step, epoch=epoch)
        if cfg.out.push_to_hub and self.dist.is_main:
            from emoclip.train.hub_publish import push_to_hub

            log.info(
                "pushed to %s", push_to_hub(path, cfg.out.push_to_hub, private=cfg.out.hub_private)
            )
        du.barrier()
        return path

    def report_test(self, path: Path, split: str, *, step: int, epoch: int) -> None:
        """Evaluate the exported weights on `split` (``eval.test_split``); record it in their sidecar."""
        from emoclip.weights.factory import load_model

        test_set = build_dataset(
            self.cfg.data,
            split,
            self.model.config.preprocess,
            train=False,
            seed=self.cfg.train.seed,
        )
        selected = (
            load_model(path, device=self.dist.device) if self.best is not None else self.model
        )
        metrics = self.evaluate(test_set, split, step=step, epoch=epoch, model=selected)
        if self.dist.is_main:
            ckpt.add_metrics(path, {"test": json_safe(metrics)})
        du.barrier()
