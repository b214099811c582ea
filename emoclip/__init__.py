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


if TYPE_CHECKING:  # for type checkers and IDEs (`X as X` marks an explicit re-export)
    from .classes import (
        ClassSet as ClassSet,
        ClassSetError as ClassSetError,
        preset as preset,
        preset_names as preset_names,
    )
    from .convert import convert_checkpoint as convert_checkpoint
    from .factory import (
        ModelSource as ModelSource,
        WeightsNotFoundError as WeightsNotFoundError,
        available_models as available_models,
        best_available as best_available,
        list_models as list_models,
        load_model as load_model,
    )
    from .images import ImageDecodeError as ImageDecodeError
    from .inference.predictor import EmotionPredictor as EmotionPredictor, Prediction as Prediction
    from .model import EmoCLIP as EmoCLIP
    from .model_config import EmoCLIPConfig as EmoCLIPConfig
    from .tokenizer import tokenize as tokenize
    from .video import VideoDecodeError as VideoDecodeError
    from .weights import CheckpointError as CheckpointError
