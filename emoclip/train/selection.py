"""Evaluation during training, model selection and export, as a mixin of `engine.Trainer`: zero-shot
validation (the best weights by ``eval.metric`` are exported), the export's config and provenance
record, the final export, the test report and the Hub upload."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from ..model import EmoCLIP
from ..model_config import EmoCLIPConfig
from . import checkpoint as ckpt
from . import distributed as du
from .loading import build_dataset
from .run_state import preserved_rng
from .runlog import json_safe

__all__ = ["SelectionMixin"]

log = logging.getLogger("emoclip.train")


class SelectionMixin:
    """Evaluation, selection and export of `engine.Trainer`."""

    @property
    def has_validation(self) -> bool:
        """Whether a validation split is configured (model selection)."""
        return self.val_set is not None

    def evaluate(self, dataset: Dataset, split: str, model: EmoCLIP | None = None) -> dict[str, Any]:
        """Zero-shot metrics of `model` (default: the one training) on `dataset`; RNG untouched."""
        from .evaluate import evaluate_dataset, summary

        with preserved_rng():
            if model is None:
                self.recalibrate_batchnorm()
            result = evaluate_dataset(model or self.model, dataset, [c.name for c in self.data_classes.classes],
                                      self.eval_classes, batch_size=self.cfg.eval.batch_size or self.cfg.train.batch_size,
                                      num_workers=self.cfg.train.num_workers, precision=self.cfg.train.precision,
                                      padding=self.cfg.eval.distributed_padding)
        self.set_train_mode()
        out = {"split": split, "classes": self.eval_classes.name, **summary(result)}
        self.logger.record({"event": "eval", "step": self.step, "epoch": self.epoch, **out})
        self.logger.scalars(self.step, {f"{split}/war": result["war"], f"{split}/uar": result["uar"]})
        log.info("eval %s at step %d: WAR %.4f UAR %.4f (n=%d)", split, self.step, result["war"], result["uar"],
                 result["num_samples"])
        return out

    def validate(self) -> None:
        """Evaluate on the validation split; export the weights when the metric improves."""
        metrics = self.evaluate(self.val_set, self.cfg.eval.split or "val")
        self._last_eval_step = self.step
        key = self.cfg.eval.metric
        value = metrics.get(key)
        best = None if self.best is None else self.best["metrics"].get(key)
        if value is not None and not math.isnan(value) and (best is None or value > best):
            self.best = {"epoch": self.epoch, "step": self.step, "metrics": metrics}
            self.export({"val": metrics})

    @property
    def export_name(self) -> str:
        """File stem and config name of the exported weights."""
        return self.cfg.out.name or self.model.config.name

    def export_config(self, metrics: dict[str, Any]) -> EmoCLIPConfig:
        """The exported model's config: name, class set and the training record."""
        cfg = self.cfg
        inline = cfg.data.classes or cfg.eval.classes or cfg.data.dataset in ("synthetic", "manifest")
        return ckpt.export_config(
            self.model.config, name=self.export_name, pretrained=self.pretrained,
            classes=self.eval_classes if inline else None, training=self.training_record(),
            metrics=json_safe(metrics),
        )

    def training_record(self) -> dict[str, Any]:
        """How the weights were made, for the export's provenance."""
        from ..version import __version__

        cfg, d = self.cfg, self.cfg.data
        backbone = self._backbone_note()
        selection = "final weights (no validation split)"
        if self.best is not None:
            selection = (f"best {cfg.eval.metric.upper()} on split {cfg.eval.split!r} at epoch "
                         f"{self.best['epoch']} (step {self.best['step']})")
        return {
            "data": {"dataset": d.dataset, "mode": d.mode, "fold": d.fold, "label_type": d.label_type,
                     "leave_out": d.leave_out, "classes": self.data_classes.name},
            "steps": self.step, "epochs": self.epoch, "optimizer": cfg.optim.name, "lr": cfg.optim.lr,
            "schedule": cfg.optim.schedule, "precision": cfg.train.precision, "world_size": self.dist.world_size,
            "global_batch": cfg.train.batch_size * cfg.train.grad_accum * self.dist.world_size,
            "seed": cfg.train.seed, "backbone": backbone, "selection": selection,
            "emoclip_version": __version__, "config": cfg.to_dict(),
        }

    def _backbone_note(self) -> str:
        cfg = self.cfg
        origin = (f"open_clip pretrained {self.model.config.model.backbone_pretrained!r}" if self.pretrained
                  else "random initialisation")
        if self.tuned_params:
            towers = "+".join(n for n, on in (("visual", cfg.model.finetune_visual),
                                              ("text transformer", cfg.model.finetune_text)) if on)
            return f"{origin}, {towers} fine-tuned at lr x {cfg.optim.backbone_lr_scale:g}"
        trained = any(p.requires_grad for p in self.model.backbone.parameters())
        return f"{origin}, {'trained' if trained else 'frozen'}"

    def export(self, metrics: dict[str, Any]) -> Path:
        """Write ``<run>/<name>.safetensors`` + ``.json`` (rank 0), then wait for every rank."""
        config = self.export_config(metrics)
        path = self.run_dir / f"{self.export_name}.safetensors"
        if self.dist.is_main:
            trained_only = self.pretrained and not any(p.requires_grad for p in self.model.backbone.parameters())
            ckpt.export_weights(self.model, config, path, trained_only=trained_only, dtype=self.cfg.out.export_dtype)
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
            with preserved_rng():
                self.recalibrate_batchnorm()
            path = self.export({})
        if cfg.eval.test_split:
            self._report_test(path)
        if cfg.out.push_to_hub and self.dist.is_main:
            from .hub_publish import push_to_hub

            log.info("pushed to %s", push_to_hub(path, cfg.out.push_to_hub, private=cfg.out.hub_private))
        du.barrier()
        return path

    def _report_test(self, path: Path) -> None:
        """Evaluate the exported weights on ``eval.test_split`` and record it in their sidecar."""
        from ..factory import load_model

        split = self.cfg.eval.test_split
        test_set = build_dataset(self.cfg.data, split, self.model.config.preprocess, train=False, seed=self.cfg.train.seed)
        selected = load_model(path, device=self.device) if self.best is not None else self.model
        metrics = self.evaluate(test_set, split, model=selected)
        if self.dist.is_main:
            ckpt.add_metrics(path, {"test": json_safe(metrics)})
        du.barrier()
