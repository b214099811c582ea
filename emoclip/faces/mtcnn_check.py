"""MTCNN's refinement networks as a face / not-face check of a box: `MTCNNCheck`, in numpy.

MTCNN (Zhang et al., 2016) finds faces in three stages; its second and third networks, RNet and
ONet, take a candidate's square crop (``24x24`` and ``48x48`` RGB, values mapped by
``(x - 127.5) / 128``) and output, among other things, the softmax probability that it is a face.
They were trained on WIDER FACE (faces in many poses, sizes and lights), so they are a second
opinion beside the face-landmark model's presence score (`emoclip.faces.verify`), which doubts
profiles. The weights are facenet-pytorch 2.6.0's (MIT licence), converted once by
``scripts/convert_mtcnn.py``; ONet's ship as ``emoclip/assets/mtcnn_onet.safetensors`` (the
library's check), RNet's are not shipped (measured, not kept: give its converted file as
``path``). They load without running code and without torch.

Layers (NCHW, valid convolutions, max pooling with ceil rounding, PReLU after each layer):
    RNet 24 px: conv 3x3 -> 28, pool 3/2, conv 3x3 -> 48, pool 3/2, conv 2x2 -> 64 (3x3),
        dense 576 -> 128, dense 128 -> 2 (softmax).
    ONet 48 px: conv 3x3 -> 32, pool 3/2, conv 3x3 -> 64, pool 3/2, conv 3x3 -> 64, pool 2/2,
        conv 2x2 -> 128 (3x3), dense 1152 -> 256, dense 256 -> 2 (softmax).
The feature map is flattened in (width, height, channel) order before the first dense layer
(the original networks were trained on transposed images).
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from emoclip.faces.boxes import FaceBox, check_image
from emoclip.faces.crops import crop_square

__all__ = ["MTCNN_MARGIN", "MTCNNCheck", "default_mtcnn_model", "face_probability"]

MTCNN_MARGIN = 0.0  # the crop is the box's square (MTCNN's own crops have no margin)
# name -> (input side, [(conv layer, pool (kernel, stride) or None)], dense layers, head)
_NETS: dict[str, tuple[int, list[tuple[str, tuple[int, int] | None]], list[str], str]] = {
    "rnet": (24, [("conv1", (3, 2)), ("conv2", (3, 2)), ("conv3", None)], ["dense4"], "dense5_1"),
    "onet": (
        48,
        [("conv1", (3, 2)), ("conv2", (3, 2)), ("conv3", (2, 2)), ("conv4", None)],
        ["dense5"],
        "dense6_1",
    ),
}


def default_mtcnn_model() -> Path:
    """Path of the bundled ONet weights (1.5 MB)."""
    return Path(__file__).resolve().parents[1] / "assets" / "mtcnn_onet.safetensors"


def _matmul_t(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b.T`` for float32 ``(M, K)`` and ``(N, K)``, by ``cv2.gemm``: numpy's threaded BLAS
    took 5-10x longer on these small matrices on a busy 2-core machine."""
    out = cv2.gemm(a, b, 1.0, None, 0.0, flags=cv2.GEMM_2_T)  # type: ignore[call-overload]
    return np.asarray(out)


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Valid cross-correlation: ``(N, C, H, W)`` by ``(O, C, k, k)`` -> ``(N, O, H-k+1, W-k+1)``.
    Products run through `_matmul_t`."""
    k = w.shape[-1]
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))  # N C H' W' k k
    n, c, h, wd = win.shape[:4]
    cols = np.ascontiguousarray(win.transpose(0, 2, 3, 1, 4, 5)).reshape(n * h * wd, c * k * k)
    out = _matmul_t(cols, w.reshape(w.shape[0], -1)) + b
    return np.ascontiguousarray(out.reshape(n, h, wd, -1).transpose(0, 3, 1, 2))


def _pool(x: np.ndarray, k: int, s: int) -> np.ndarray:
    """Max pooling with ceil rounding (a last window may hang past the edge): ``(N, C, H, W)``."""
    h, w = x.shape[2:]
    oh, ow = -(-(h - k) // s) + 1, -(-(w - k) // s) + 1
    ph, pw = (oh - 1) * s + k - h, (ow - 1) * s + k - w
    x = np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)), constant_values=-np.inf)
    out = x[:, :, : (oh - 1) * s + 1 : s, : (ow - 1) * s + 1 : s]
    for i in range(k):
        for j in range(k):
            if i or j:
                out = np.maximum(
                    out, x[:, :, i : i + (oh - 1) * s + 1 : s, j : j + (ow - 1) * s + 1 : s]
                )
    return out


def _dense(x: np.ndarray, weights: dict[str, np.ndarray], name: str) -> np.ndarray:
    """A dense layer: ``(N, I)`` -> ``(N, O)``."""
    w = weights[f"{name}.weight"]
    return _matmul_t(np.ascontiguousarray(x), w) + weights[f"{name}.bias"]


def _prelu(x: np.ndarray, a: np.ndarray) -> np.ndarray:
    """PReLU with one slope per channel (axis 1)."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return np.where(x > 0, x, x * a.reshape(shape))


def face_probability(weights: dict[str, np.ndarray], net: str, crops: np.ndarray) -> np.ndarray:
    """The face probability of each crop under an MTCNN network.

    Args:
        weights: The network's tensors by name (``conv1.weight``, ``prelu1.weight``, ...).
        net: ``"rnet"`` or ``"onet"``.
        crops: ``(N, S, S, 3)`` uint8 RGB crops, S = 24 (RNet) or 48 (ONet).

    Returns:
        ``(N,)`` float32 probabilities in [0, 1].
    """
    side, convs, denses, head = _NETS[net]
    if crops.ndim != 4 or crops.shape[1:] != (side, side, 3):
        raise ValueError(f"{net} takes (N, {side}, {side}, 3) crops, got {crops.shape}")
    x = (crops.astype(np.float32).transpose(0, 3, 1, 2) - 127.5) / 128.0
    n = 1
    for name, pool in convs:
        x = _prelu(
            _conv(x, weights[f"{name}.weight"], weights[f"{name}.bias"]),
            weights[f"prelu{n}.weight"],
        )
        if pool is not None:
            x = _pool(x, *pool)
        n += 1
    x = x.transpose(0, 3, 2, 1).reshape(len(x), -1)  # (width, height, channel) order
    for name in denses:
        x = _prelu(_dense(x, weights, name), weights[f"prelu{n}.weight"])
        n += 1
    logits = _dense(x, weights, head)
    logits = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return (e[:, 1] / e.sum(axis=1)).astype(np.float32)


class MTCNNCheck:
    """MTCNN's ONet (or RNet) face probability of boxes in an image (see the module).

    Args:
        net: ``"onet"`` (48 px crops) or ``"rnet"`` (24 px).
        path: Its ``.safetensors`` weights; defaults to `default_mtcnn_model` for ONet (RNet's
            are not shipped: ``scripts/convert_mtcnn.py --nets rnet`` writes them).
        margin: The crop is the box's square enlarged by this share of its side.
    """

    def __init__(
        self, net: str = "onet", path: str | Path | None = None, margin: float = MTCNN_MARGIN
    ) -> None:
        if net not in _NETS:
            raise ValueError(f"net must be 'onet' or 'rnet', got {net!r}")
        if path is None and net != "onet":
            raise ValueError("RNet's weights are not shipped: give the converted file as path")
        self.net = net
        self.path = Path(path) if path is not None else default_mtcnn_model()
        if not self.path.is_file():
            raise FileNotFoundError(f"MTCNN weights not found: '{self.path}'")
        self.margin = float(margin)
        self.size = _NETS[net][0]
        self._weights: dict[str, np.ndarray] | None = None
        self._lock = threading.Lock()

    def _load(self) -> dict[str, np.ndarray]:
        with self._lock:
            if self._weights is None:
                from safetensors.numpy import load_file

                self._weights = {
                    k: v.astype(np.float32) for k, v in load_file(str(self.path)).items()
                }
            return self._weights

    def probabilities(self, image: np.ndarray, boxes: list[FaceBox]) -> np.ndarray:
        """``(len(boxes),)`` face probabilities of `boxes` in `image` (``(H, W, 3)`` uint8 RGB),
        each on the box's square crop (enlarged by `margin`) resized to the network's input."""
        check_image(image)
        if not boxes:
            return np.zeros(0, np.float32)
        crops = np.stack([crop_square(image, b, margin=self.margin, size=self.size) for b in boxes])
        return face_probability(self._load(), self.net, crops)

    def probability(self, image: np.ndarray, box: FaceBox) -> float:
        """The face probability of one `box` of `image` (``(H, W, 3)`` uint8 RGB)."""
        return float(self.probabilities(image, [box])[0])
