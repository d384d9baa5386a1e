"""Hair segmentation (MediaPipe's hair model, Apache-2.0, vendored ONNX) around a detected face.

The model takes a 512 x 512 RGB image in [0, 1] plus a fourth channel, the previous frame's hair
mask (zeros for a still photo), and returns background/hair logits. FaceCraft runs it on a
square around the head (``scale`` x the face box, shifted up towards the crown), not on the whole
photo, so the hair gets the model's full resolution; the probability is warped back to photo
pixels (zero outside that square).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from .face_mesh import RotatedRect, crop

__all__ = ["HairSegmenter"]


class HairSegmenter:
    """Hair probability around one face.

    Args:
        run: the model: (1, 512, 512, 4) float32 -> ``[logits (1, 512, 512, 2)]``.
        scale: side of the head square in face-box sizes.
        lift: how far the square's centre sits above the box centre, in box heights.
    """

    INPUT = 512

    def __init__(self, run: Callable[[np.ndarray], list[np.ndarray]], scale: float = 3.0,
                 lift: float = 0.35) -> None:
        self._run = run
        self.scale = float(scale)
        self.lift = float(lift)

    def roi(self, box: np.ndarray, angle: float = 0.0) -> RotatedRect:
        """The head square for a face box ``(x0, y0, x1, y1)`` (photo pixels)."""
        box = np.asarray(box, np.float64)
        w, h = box[2] - box[0], box[3] - box[1]
        up = np.array([np.sin(angle), -np.cos(angle)])  # the face's "up" in photo pixels
        centre = (box[:2] + box[2:]) / 2 + up * self.lift * h
        return RotatedRect(centre, float(max(w, h)) * self.scale, float(angle))

    def probability(self, rgb: np.ndarray, box: np.ndarray, angle: float = 0.0) -> np.ndarray:
        """(H, W) float32 hair probability in photo pixels.

        Args:
            rgb: (H, W, 3) uint8 photo. box: the face box. angle: the face's roll (radians, as
                :class:`~facecraft.sdk.photo.face_mesh.RotatedRect`).
        """
        roi = self.roi(box, angle)
        image, m = crop(rgb, roi, self.INPUT)
        x = np.concatenate([image, np.zeros_like(image[..., :1])], axis=-1)[None]
        logits = np.asarray(self._run(x)[0], np.float32)[0]
        prob = 1.0 / (1.0 + np.exp(logits[..., 0] - logits[..., 1]))  # softmax, channel 1
        h, w = rgb.shape[:2]
        return cv2.warpAffine(prob, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
