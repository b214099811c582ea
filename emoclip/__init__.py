"""EmoCLIP: zero-shot video facial-expression recognition with natural-language descriptions.

    import emoclip
    model = emoclip.load_model("emoclip-vitb32")
    predictor = emoclip.EmotionPredictor(model)  # or (model, emoclip.AnalysisSettings(...))
    prediction = predictor.predict("clip.mp4", emoclip.preset("mafw-11"))
    print(prediction.top, prediction.probabilities)

Heavy dependencies (open_clip, mediapipe, OpenCV) are imported on first use, not here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emoclip._lazy import attach
from emoclip.version import __version__

_EXPORTS = {
    "available_models": "weights.registry",
    "best_available": "weights.registry",
    "list_models": "weights.registry",
    "load_model": "weights.factory",
    "ModelSource": "weights.registry",
    "WeightsNotFoundError": "weights.registry",
    "EmoCLIP": "model.network",
    "EmoCLIPConfig": "model.config",
    "tokenize": "model.tokenizer",
    "CheckpointError": "weights.files",
    "ClassSet": "classes",
    "ClassSetError": "classes",
    "preset": "classes",
    "preset_names": "classes",
    "VideoDecodeError": "media.probe",
    "ImageDecodeError": "media.images",
    "EmotionPredictor": "inference.predictor",
    "AnalysisSettings": "settings",
    "ModelLocations": "settings",
    "MediaInput": "media.inputs",
    "resolve_input": "media.inputs",
    "Prediction": "results",
    "convert_checkpoint": "weights.convert",
}

__getattr__, __dir__, _names = attach(__name__, _EXPORTS)
__all__ = ["__version__", *_names]


if TYPE_CHECKING:  # for type checkers and IDEs (`X as X` marks an explicit re-export)
    from emoclip.classes import (
        ClassSet as ClassSet,
        ClassSetError as ClassSetError,
        preset as preset,
        preset_names as preset_names,
    )
    from emoclip.inference.predictor import EmotionPredictor as EmotionPredictor
    from emoclip.media import VideoDecodeError as VideoDecodeError
    from emoclip.media.images import ImageDecodeError as ImageDecodeError
    from emoclip.media.inputs import MediaInput as MediaInput, resolve_input as resolve_input
    from emoclip.model.config import EmoCLIPConfig as EmoCLIPConfig
    from emoclip.model.network import EmoCLIP as EmoCLIP
    from emoclip.model.tokenizer import tokenize as tokenize
    from emoclip.results import Prediction as Prediction
    from emoclip.settings import (
        AnalysisSettings as AnalysisSettings,
        ModelLocations as ModelLocations,
    )
    from emoclip.weights.convert import convert_checkpoint as convert_checkpoint
    from emoclip.weights.factory import load_model as load_model
    from emoclip.weights.files import CheckpointError as CheckpointError
    from emoclip.weights.registry import (
        ModelSource as ModelSource,
        WeightsNotFoundError as WeightsNotFoundError,
        available_models as available_models,
        best_available as best_available,
        list_models as list_models,
    )
