"""A ``.tflite`` model run directly: `TFLiteModel`, by LiteRT (``ai-edge-litert``), or by
OpenCV's DNN module where LiteRT is not installed (it has no wheel for every platform).

MediaPipe's Tasks API runs only models that carry its metadata; the face-landmark model (the
face-presence check of `emoclip.faces.verify`) does not, so it is run here, as is BlazeFace for
a photo's tile search (`emoclip.faces.blazeface`: a call ~1.7x cheaper in CPU than MediaPipe's
``detect``), one call at a time,
on one thread (data parallelism lives above this layer). LiteRT ran it in ~2-5 ms a crop where
OpenCV took ~19 ms on the same busy 2-core machine. Both are imported on the first call.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from emoclip.quiet import quiet_native_stderr

__all__ = ["TFLiteModel"]


class TFLiteModel:
    """One ``.tflite`` model with one float32 input, created on the first call.

    Args:
        path: The model file.
        threads: LiteRT's CPU threads for one call.
        backend: ``"auto"`` (LiteRT when installed, else OpenCV), ``"litert"`` or ``"opencv"``.
    """

    def __init__(self, path: str | Path, threads: int = 1, backend: str = "auto") -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"Model not found: '{self.path}'")
        if backend not in ("auto", "litert", "opencv"):
            raise ValueError(f"backend must be 'auto', 'litert' or 'opencv', got {backend!r}")
        self.threads = int(threads)
        self.backend = backend
        self._interpreter: Any = None
        self._lock = threading.Lock()

    def _ensure(self) -> Any:
        if self._interpreter is None:
            try:
                from ai_edge_litert.interpreter import Interpreter
            except ImportError as e:  # pragma: no cover - depends on the environment
                raise ImportError(
                    "Face verification needs LiteRT: pip install ai-edge-litert"
                ) from e
            with quiet_native_stderr():  # "INFO: Created TensorFlow Lite XNNPACK delegate"
                interpreter = Interpreter(model_path=str(self.path), num_threads=self.threads)
                interpreter.allocate_tensors()
            self._interpreter = interpreter
        return self._interpreter

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run the model on `x` (its input shape, float32); returns each output by tensor name."""
        with self._lock:
            interpreter = self._ensure()
            if isinstance(interpreter, _OpenCVModel):
                return interpreter(x)
            interpreter.set_tensor(
                interpreter.get_input_details()[0]["index"], np.ascontiguousarray(x, np.float32)
            )
            interpreter.invoke()
            return {
                o["name"]: np.array(interpreter.get_tensor(o["index"]))
                for o in interpreter.get_output_details()
            }


class _OpenCVModel:
    """The same model through ``cv2.dnn`` (NCHW input; the same output names)."""

    def __init__(self, path: Path) -> None:
        import cv2

        self.net = cv2.dnn.readNetFromTFLite(str(path))
        self.names = list(self.net.getUnconnectedOutLayersNames())

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        self.net.setInput(np.ascontiguousarray(x.transpose(0, 3, 1, 2), np.float32))
        return dict(zip(self.names, self.net.forward(self.names)))
