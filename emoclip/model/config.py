"""Model configuration: architecture + preprocessing, stored as JSON beside the weights.

A checkpoint is ``NAME.safetensors`` plus ``NAME.json``; the JSON is an `EmoCLIPConfig`
(``to_dict``/``from_dict``) with a few file-level fields (``sha256``, ``format_version``). The
architecture is always read from here, never guessed from tensor shapes.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

MAX_SIDECAR_BYTES = 4 << 20  # a JSON sidecar larger than this is refused unread
MAX_PARAMETERS = (
    3_000_000_000  # ~12 GB in fp32: EVA/ViT-bigG-sized CLIPs fit, a hostile "100 GB" does not
)
# Per-field caps (`EmoCLIPConfig.check_bounds`); every shipped model is far below them.
BOUNDS = {
    "width": 8192,  # transformer / ResNet widths, embed_dim
    "layers": 128,  # transformer blocks (per tower), temporal depth, ResNet blocks per stage
    "heads": 128,
    "head_dim": 8192,  # temporal head size (the authors' quirk: 2048)
    "mlp": 65536,  # temporal feed-forward width
    "mlp_ratio": 16,
    "context_length": 1024,
    "vocab_size": 1_000_000,
    "image_size": 2048,
    "num_frames": 1024,
    "max_positions": 8192,
}

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
    backbone_pretrained: str | None = (
        "openai"  # open_clip tag that supplies missing backbone weights
    )
    pooling: str = (
        "cls"  # "cls": temporal transformer, CLS output; "mean": mean of frame embeddings
    )
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
    sample_fps: float = 7.5  # frames sampled per second of video (every 4th of ~30, as most of the authors' scripts)
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
    classes: dict[str, Any] | None = (
        None  # an inline class set (ClassSet.to_dict()); wins over the preset
    )
    provenance: dict[str, Any] = field(
        default_factory=dict
    )  # source, data, licence, metrics, command

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmoCLIPConfig:
        """Build from a dict as written by `to_dict` (unknown keys are ignored)."""
        data = dict(data)
        model = dict(data.get("model") or {})
        temporal = model.get("temporal")
        model["temporal"] = (
            None if temporal is None else TemporalConfig(**_known(TemporalConfig, temporal))
        )
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

    def check_bounds(self) -> int:
        """Refuse an architecture too large to build, before anything is allocated.

        Every size field (widths, layers, heads, head size, feed-forward width, context length,
        vocabulary, image size, frames, temporal positions) must be a positive integer within
        `BOUNDS`, and the estimated parameter count within `MAX_PARAMETERS`. A backbone given by
        open_clip name is looked up in open_clip's model configs (a JSON read, no allocation).

        Returns:
            The estimated number of parameters (backbone + temporal model).

        Raises:
            ValueError: naming the field out of bounds, or the estimate.
        """
        pre = self.preprocess
        _bounded("preprocess.image_size", pre.image_size, BOUNDS["image_size"])
        _bounded("preprocess.num_frames", pre.num_frames, BOUNDS["num_frames"])
        backbone = self.model.backbone_config
        if backbone is None:
            backbone = backbone_config(self.model)
        if not isinstance(backbone, dict):
            raise ValueError("model.backbone_config must be a JSON object")
        embed = _bounded("backbone.embed_dim", backbone.get("embed_dim"), BOUNDS["width"])
        total = _vision_parameters(_section(backbone, "vision_cfg"), embed)
        total += _text_parameters(_section(backbone, "text_cfg"), embed)
        t = self.model.temporal
        if t is not None:
            depth = _bounded("temporal.depth", t.depth, BOUNDS["layers"])
            heads = _bounded("temporal.heads", t.heads, BOUNDS["heads"])
            head_dim = _bounded("temporal.head_dim", t.head_dim, BOUNDS["head_dim"])
            mlp = _bounded("temporal.mlp_dim", t.mlp_dim, BOUNDS["mlp"])
            positions = _bounded("temporal.max_positions", t.max_positions, BOUNDS["max_positions"])
            if self.model.pooling == "cls" and pre.num_frames >= positions:
                raise ValueError(
                    f"preprocess.num_frames {pre.num_frames} needs temporal.max_positions > "
                    f"{pre.num_frames}, got {positions}"
                )
            inner = heads * head_dim
            total += (
                depth * (4 * inner * embed + 2 * mlp * embed + 6 * embed) + (positions + 1) * embed
            )
        if total > MAX_PARAMETERS:
            raise ValueError(
                f"the architecture of {self.name!r} has about {total / 1e9:.1f} G parameters "
                f"(~{4 * total / 1e9:.0f} GB in fp32); at most {MAX_PARAMETERS / 1e9:.0f} G are built"
            )
        return total

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
        """Read a JSON sidecar (or a config file shipped in ``emoclip/configs``).

        Raises:
            ValueError: the file is larger than `MAX_SIDECAR_BYTES` or not a JSON object.
        """
        path = Path(path)
        size = path.stat().st_size
        if size > MAX_SIDECAR_BYTES:
            raise ValueError(
                f"{path.name} is {size} bytes; a model config is at most {MAX_SIDECAR_BYTES}"
            )
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path.name} does not hold a JSON object")
        return cls.from_dict(data)


def backbone_config(config: ModelConfig) -> dict[str, Any]:
    """The open_clip architecture dict of `config` (``embed_dim``, ``vision_cfg``, ``text_cfg``, ...)."""
    if config.backbone_config is not None:
        return copy.deepcopy(config.backbone_config)
    import open_clip  # on use: reading emoclip.model.config stays cheap

    found = open_clip.get_model_config(config.backbone)
    if found is None:
        raise ValueError(
            f"open_clip has no architecture named {config.backbone!r}; "
            "give the architecture inline as model.backbone_config"
        )
    return copy.deepcopy(found)


def _bounded(name: str, value: Any, upper: int, lower: int = 1) -> int:
    """`value` as an int in ``[lower, upper]``, else ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not lower <= value <= upper:
        raise ValueError(f"{name} = {value} is out of bounds [{lower}, {upper}]")
    return value


def _section(backbone: dict[str, Any], key: str) -> dict[str, Any]:
    value = backbone.get(key)
    if not isinstance(value, dict):
        raise ValueError(f"backbone.{key} must be a JSON object")
    return value


def _vision_parameters(cfg: dict[str, Any], embed: int) -> int:
    """Estimated parameters of an open_clip image tower (ViT, ModifiedResNet or timm)."""
    size = _bounded("vision_cfg.image_size", cfg.get("image_size", 224), BOUNDS["image_size"])
    if cfg.get("timm_model_name"):  # timm's own registry bounds the architecture; the head is ours
        return 4096 * embed
    width = _bounded("vision_cfg.width", cfg.get("width", 768), BOUNDS["width"])
    layers = cfg.get("layers", 12)
    if isinstance(layers, (list, tuple)):  # ModifiedResNet: blocks per stage, channels double
        if len(layers) != 4:
            raise ValueError("vision_cfg.layers of a ResNet must list 4 stages")
        blocks = [_bounded("vision_cfg.layers[]", n, BOUNDS["layers"]) for n in layers]
        return sum(17 * n * (width << i) ** 2 for i, n in enumerate(blocks)) + 4 * (32 * width) ** 2
    depth = _bounded("vision_cfg.layers", layers, BOUNDS["layers"])
    patch = _bounded("vision_cfg.patch_size", cfg.get("patch_size", 16), size)
    ratio = cfg.get("mlp_ratio", 4.0)
    if (
        isinstance(ratio, bool)
        or not isinstance(ratio, (int, float))
        or not 0 < ratio <= BOUNDS["mlp_ratio"]
    ):
        raise ValueError(
            f"vision_cfg.mlp_ratio = {ratio!r} is out of bounds (0, {BOUNDS['mlp_ratio']}]"
        )
    _bounded("vision_cfg.head_width", cfg.get("head_width", 64), BOUNDS["width"])
    tokens = (size // patch) ** 2 + 1
    return int(
        depth * (4 + 2 * ratio) * width**2
        + 3 * patch * patch * width
        + tokens * width
        + width * embed
    )


def _text_parameters(cfg: dict[str, Any], embed: int) -> int:
    """Estimated parameters of an open_clip text tower."""
    context = _bounded(
        "text_cfg.context_length", cfg.get("context_length", 77), BOUNDS["context_length"]
    )
    vocab = _bounded("text_cfg.vocab_size", cfg.get("vocab_size", 49408), BOUNDS["vocab_size"])
    width = _bounded("text_cfg.width", cfg.get("width", 512), BOUNDS["width"])
    _bounded("text_cfg.heads", cfg.get("heads", 8), BOUNDS["heads"])
    depth = _bounded("text_cfg.layers", cfg.get("layers", 12), BOUNDS["layers"])
    ratio = cfg.get("mlp_ratio", 4.0)
    if (
        isinstance(ratio, bool)
        or not isinstance(ratio, (int, float))
        or not 0 < ratio <= BOUNDS["mlp_ratio"]
    ):
        raise ValueError(
            f"text_cfg.mlp_ratio = {ratio!r} is out of bounds (0, {BOUNDS['mlp_ratio']}]"
        )
    return int(depth * (4 + 2 * ratio) * width**2 + (vocab + context) * width + width * embed)


def _known(kind: type, values: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(kind)}
    return {k: v for k, v in values.items() if k in names}


def packaged_config_dir() -> Path:
    """Folder of the JSON configs that ship with the package (one per named model)."""
    return Path(__file__).resolve().parent.parent / "configs"
