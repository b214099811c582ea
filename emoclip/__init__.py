"""EmoCLIP: zero-shot video facial-expression recognition with natural-language descriptions.

    import emoclip
    model = emoclip.load_model("emoclip-vitb32")
    predictor = emoclip.EmotionPredictor(model)
    prediction = predictor.predict("clip.mp4", emoclip.preset("mafw-11"))
    print(prediction.top, prediction.probabilities)

Heavy dependencies (open_clip, mediapipe, OpenCV) are imported on first use, not here.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .version import __version__

_EXPORTS = {
    "available_models": "factory",
    "best_available": "factory",
    "list_models": "factory",
    "load_model": "factory",
    "ModelSource": "factory",
    "WeightsNotFoundError": "factory",
    "EmoCLIP": "model",
    "EmoCLIPConfig": "model_config",
    "tokenize": "tokenizer",
    "CheckpointError": "weights",
    "ClassSet": "classes",
    "ClassSetError": "classes",
    "preset": "classes",
    "preset_names": "classes",
    "VideoDecodeError": "video",
    "ImageDecodeError": "images",
    "EmotionPredictor": "inference.predictor",
    "Prediction": "inference.predictor",
    "convert_checkpoint": "convert",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    # Lazy re-exports keep `import emoclip` free of torch/open_clip/cv2 work until first use.
    if name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'emoclip' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # for type checkers and IDEs
    from .classes import ClassSet, ClassSetError, preset, preset_names
    from .convert import convert_checkpoint
    from .factory import (
        ModelSource,
        WeightsNotFoundError,
        available_models,
        best_available,
        list_models,
        load_model,
    )
    from .images import ImageDecodeError
    from .model import EmoCLIP
    from .model_config import EmoCLIPConfig
    from .inference.predictor import EmotionPredictor, Prediction
    from .tokenizer import tokenize
    from .video import VideoDecodeError
    from .weights import CheckpointError
