"""Model configuration: architecture + preprocessing, stored as JSON beside the weights.

A checkpoint is ``NAME.safetensors`` plus ``NAME.json``; the JSON is an `EmoCLIPConfig`
(``to_dict``/``from_dict``) with a few file-level fields (``sha256``, ``format_version``). The
architecture is always read from here, never guessed from tensor shapes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
FORMAT_VERSION = 1


@dataclass(frozen=True)
class TemporalConfig:
    """The temporal transformer over per-frame embeddings (defaults: the authors' shapes).

    The authors' code passes its arguments in an order that gives a head size of 2048 and a
    feed-forward width of 512 (reference.md §7.2); those are the defaults here.
    """

    depth: int = 2  # pre-norm blocks, no final LayerNorm
    heads: int = 8
    head_dim: int = 2048  # attention inner width = heads * head_dim = 16384
    mlp_dim: int = 512  # feed-forward hidden width (tanh-approximated GELU)
    max_positions: int = 1024  # learned positions, CLS included: at most 1023 frames


@dataclass(frozen=True)
class ModelConfig:
    """Architecture: an open_clip CLIP backbone plus a way to pool frames into a video."""

    backbone: str = "ViT-B-32-quickgelu"  # open_clip architecture name
    backbone_config: dict[str, Any] | None = None  # inline open_clip config; overrides `backbone`
    backbone_pretrained: str | None = "openai"  # open_clip tag that supplies missing backbone weights
    pooling: str = "cls"  # "cls": temporal transformer, CLS output; "mean": mean of frame embeddings
    temporal: TemporalConfig | None = field(default_factory=TemporalConfig)

    def __post_init__(self) -> None:
        if self.pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', not {self.pooling!r}")
        if self.pooling == "cls" and self.temporal is None:
            raise ValueError("pooling 'cls' needs a temporal config")


@dataclass(frozen=True)
class PreprocessConfig:
    """How videos become model inputs; the predictor follows these values."""

    image_size: int = 224
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD
    num_frames: int = 32  # T: frames per clip/window given to the temporal model
    sample_fps: float = 7.5  # frames sampled per second of video (the authors keep every 4th of ~30)
    window_seconds: float = 4.0  # timeline window length
    hop_seconds: float = 1.0  # timeline window step
    face_detection: bool = True  # False: inputs are already face crops (e.g. synthetic clips)
    face_margin: float = 0.25  # extra border around the detected face box, relative to its side


@dataclass(frozen=True)
class EmoCLIPConfig:
    """Everything needed to rebuild and run a model, saved as the checkpoint's JSON sidecar."""

    name: str
    model: ModelConfig = field(default_factory=ModelConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    summary: str = ""  # one line: what the model is and what it is good for
    default_classes: str = "mafw-11"  # class-set preset the model is meant to be used with
    classes: dict[str, Any] | None = None  # an inline class set (ClassSet.to_dict()); wins over the preset
    provenance: dict[str, Any] = field(default_factory=dict)  # source, data, licence, metrics, command

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmoCLIPConfig:
        """Build from a dict as written by `to_dict` (unknown keys are ignored)."""
        data = dict(data)
        model = dict(data.get("model") or {})
        temporal = model.get("temporal")
        model["temporal"] = None if temporal is None else TemporalConfig(**_known(TemporalConfig, temporal))
        pre = _known(PreprocessConfig, data.get("preprocess") or {})
        for key in ("mean", "std"):
            if key in pre:
                pre[key] = tuple(float(v) for v in pre[key])
        return cls(
            name=str(data["name"]),
            model=ModelConfig(**_known(ModelConfig, model)),
            preprocess=PreprocessConfig(**pre),
            summary=str(data.get("summary", "")),
            default_classes=str(data.get("default_classes", "mafw-11")),
            classes=data.get("classes"),
            provenance=dict(data.get("provenance") or {}),
        )

    def replace(self, **changes: Any) -> EmoCLIPConfig:
        """A copy with some top-level fields changed."""
        return replace(self, **changes)

    def save(self, path: str | Path, **file_fields: Any) -> Path:
        """Write the JSON sidecar; `file_fields` (e.g. ``sha256``) are stored beside the config."""
        payload = {"format_version": FORMAT_VERSION, **self.to_dict(), **file_fields}
        path = Path(path)
        path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> EmoCLIPConfig:
        """Read a JSON sidecar (or a config file shipped in ``emoclip/configs``)."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def _known(kind: type, values: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(kind)}
    return {k: v for k, v in values.items() if k in names}


def packaged_config_dir() -> Path:
    """Folder of the JSON configs that ship with the package (one per named model)."""
    return Path(__file__).parent / "configs"
