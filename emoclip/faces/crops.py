"""Square face crops: `square_box`, `crop_square` (black padding past the image edges) and
`center_crop` (the fallback without a face); cv2 + numpy, no torch.

Images are ``(H, W, 3)`` uint8 RGB arrays in [0, 255]; crops are ``(size, size, 3)`` uint8 RGB.
"""

from __future__ import annotations

import cv2
import numpy as np

from emoclip.faces.boxes import FaceBox, check_image

__all__ = ["center_crop", "crop_square", "square_box"]


def square_box(
    box: FaceBox, margin: float, image_shape: tuple[int, ...]
) -> tuple[int, int, int, int]:
    """Square around the centre of `box` with side ``max(w, h) * (1 + margin)``.

    The side is capped at the image's longer side (so a face filling the frame is not drowned in
    padding) and is at least 1 pixel. The square is *not* clipped: it may extend past the image.

    Args:
        box: Face box in pixels.
        margin: Extra context as a fraction of the box's longer side (0.25 = 25 % larger).
        image_shape: Shape of the image, ``(H, W, ...)``.

    Returns:
        ``(x, y, side, side)`` integer pixels, same convention as `FaceBox.as_tuple`.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    height, width = image_shape[:2]
    side = max(box.w, box.h) * (1.0 + margin)
    side = round(min(side, max(height, width)))
    side = max(side, 1)
    cx, cy = box.center
    return round(cx - side / 2.0), round(cy - side / 2.0), side, side


def _resize_square(patch: np.ndarray, size: int) -> np.ndarray:
    side = patch.shape[0]
    if side == size:
        return np.ascontiguousarray(patch)
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(patch, (size, size), interpolation=interpolation)


def crop_square(
    image: np.ndarray, box: FaceBox, *, margin: float = 0.25, size: int = 224
) -> np.ndarray:
    """Cut a square face crop around `box` and resize it.

    Parts of the square outside the image are padded with black (``cv2.BORDER_CONSTANT``, value 0)
    rather than replicated edges, which would smear the face border into streaks.
    Shrinking uses ``cv2.INTER_AREA``, enlarging ``cv2.INTER_CUBIC``.

    Args:
        image: ``(H, W, 3)`` uint8 RGB array in [0, 255].
        box: Face box in pixels of `image`.
        margin: Extra context as a fraction of the box's longer side (see `square_box`).
        size: Output side in pixels.

    Returns:
        ``(size, size, 3)`` uint8 RGB array.
    """
    height, width = _check_crop_args(image, size)
    x, y, side, _ = square_box(box, margin, image.shape)
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + side, width), min(y + side, height)
    if x1 <= x0 or y1 <= y0:  # square entirely outside the image
        return np.zeros((size, size, 3), dtype=np.uint8)
    patch = cv2.copyMakeBorder(
        image[y0:y1, x0:x1],
        top=y0 - y,
        bottom=y + side - y1,
        left=x0 - x,
        right=x + side - x1,
        borderType=cv2.BORDER_CONSTANT,
        value=(0, 0, 0),
    )
    return _resize_square(patch, size)


def _check_crop_args(image: np.ndarray, size: int) -> tuple[int, int]:
    """Validate a crop's image and output size: the image's (height, width)."""
    check_image(image)
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    return image.shape[0], image.shape[1]


def center_crop(image: np.ndarray, size: int = 224) -> np.ndarray:
    """Take the largest central square of `image` and resize it.

    Args:
        image: ``(H, W, 3)`` uint8 RGB array in [0, 255].
        size: Output side in pixels.

    Returns:
        ``(size, size, 3)`` uint8 RGB array.
    """
    height, width = _check_crop_args(image, size)
    side = min(height, width)
    y0, x0 = (height - side) // 2, (width - side) // 2
    return _resize_square(image[y0 : y0 + side, x0 : x0 + side], size)
