"""BlazeFace (Bazarevsky et al. 2019), MediaPipe's face detector: anchors, decoding, weighted NMS.

Two released models, both converted to ONNX and vendored
(:mod:`facecraft.sdk.photo.mediapipe_models`):

==============  =====  =======================  ===========================================
model           input  anchors                  for
==============  =====  =======================  ===========================================
``short``       128    16x16x2 + 8x8x6 = 896    faces within ~2 m: selfies, portraits
``full``        192    48x48x1 = 2,304          faces within ~5 m: groups, small faces
==============  =====  =======================  ===========================================

Each anchor regresses 16 numbers: the box centre offset, width and height, and 6 keypoints
(the subject's right eye, left eye, nose tip, mouth centre, right ear tragion, left ear tragion),
in input pixels relative to the anchor centre; plus a score logit. Anchors have a fixed unit size
(``fixed_anchor_size``), so decoding is a scale and a shift. Overlapping detections are merged
by MediaPipe's *weighted* NMS (a score-weighted mean of every box that overlaps the best one).

The photo is letterboxed (aspect kept, padded) into the square input with values in [-1, 1];
boxes and keypoints are mapped back to photo pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import InvalidInputError

__all__ = ["BlazeFaceSpec", "SHORT_RANGE", "FULL_RANGE", "BlazeDetection", "anchors",
           "decode", "weighted_nms", "letterbox", "BlazeFace"]

#: How many keypoints a BlazeFace anchor regresses.
NUM_KEYPOINTS = 6


@dataclass(frozen=True)
class BlazeFaceSpec:
    """One BlazeFace model's input size and anchor layout (MediaPipe's SSD anchor options).

    Attributes:
        name: ``"short"`` or ``"full"``.
        input_size: square input side in pixels.
        grids: ``(cells per side, anchors per cell)`` for each feature map, in output order.
        min_score: detections below this probability are dropped.
    """

    name: str
    input_size: int
    grids: tuple[tuple[int, int], ...]
    min_score: float

    @property
    def num_anchors(self) -> int:
        return sum(n * n * k for n, k in self.grids)


#: The short-range model: strides 8 (2 anchors per cell) and 16 (3 layers x 2 anchors).
SHORT_RANGE = BlazeFaceSpec("short", 128, ((16, 2), (8, 6)), 0.5)
#: The full-range model: one stride-4 layer, one anchor per cell.
FULL_RANGE = BlazeFaceSpec("full", 192, ((48, 1),), 0.6)


@dataclass(frozen=True, eq=False)
class BlazeDetection:
    """Detections of one photo by one model (after NMS).

    Attributes:
        boxes: (N, 4) float64 ``(x0, y0, x1, y1)`` photo pixels.
        keypoints: (N, 6, 2) float64 photo pixels (right eye, left eye, nose tip, mouth centre,
            right ear, left ear; the subject's sides).
        scores: (N,) float64 probabilities, best first.
    """

    boxes: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray


def anchors(spec: BlazeFaceSpec) -> np.ndarray:
    """(A, 2) float32 anchor centres in [0, 1] input coordinates, in the model's output order
    (feature map, row, column, anchor)."""
    out = []
    for n, k in spec.grids:
        c = (np.arange(n, dtype=np.float32) + 0.5) / n
        xy = np.stack(np.meshgrid(c, c, indexing="xy"), axis=-1).reshape(-1, 1, 2)
        out.append(np.repeat(xy, k, axis=1).reshape(-1, 2))
    return np.concatenate(out)


def decode(raw: np.ndarray, logits: np.ndarray, spec: BlazeFaceSpec, anchor_xy: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw model outputs -> boxes, keypoints and scores above ``spec.min_score``.

    Args:
        raw: (A, 16) regressors. logits: (A,) or (A, 1) score logits.
        anchor_xy: (A, 2) from :func:`anchors`.

    Returns:
        boxes (M, 4) ``(x0, y0, x1, y1)``, keypoints (M, 6, 2), scores (M,), all in [0, 1]
        input coordinates (float64).
    """
    s = float(spec.input_size)
    scores = 1.0 / (1.0 + np.exp(-np.clip(np.asarray(logits, np.float64).reshape(-1), -100, 100)))
    keep = scores >= spec.min_score
    r = np.asarray(raw, np.float64)[keep] / s
    a = anchor_xy[keep].astype(np.float64)
    centre = r[:, 0:2] + a
    half = r[:, 2:4] / 2
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    kps = r[:, 4:4 + 2 * NUM_KEYPOINTS].reshape(-1, NUM_KEYPOINTS, 2) + a[:, None]
    return boxes, kps, scores[keep]


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    lo = np.maximum(box[:2], boxes[:, :2])
    hi = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = lambda b: np.prod(np.clip(b[..., 2:] - b[..., :2], 0, None), axis=-1)  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-12)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                 threshold: float = 0.3
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's weighted non-maximum suppression.

    The best remaining detection and every other one overlapping it by more than *threshold*
    (IoU) are merged into one: boxes and keypoints averaged with the scores as weights, the score
    the best one's. Loops over output faces (a handful), never over anchors.

    Returns:
        boxes (N, 4), keypoints (N, 6, 2), scores (N,), best first; and (N,) int64 indices of
        each group's best input detection.
    """
    order = np.argsort(-scores, kind="stable")
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    left = np.ones(len(scores), bool)
    out_b, out_k, out_s, out_i = [], [], [], []
    while left.any():
        i = int(np.argmax(left))
        group = left & (_iou(boxes[i], boxes) > threshold)
        group[i] = True
        w = scores[group] / scores[group].sum()
        out_b.append(w @ boxes[group])
        out_k.append(np.tensordot(w, keypoints[group], axes=1))
        out_s.append(scores[i])
        out_i.append(order[i])
        left &= ~group
    if not out_s:
        return (np.zeros((0, 4)), np.zeros((0, NUM_KEYPOINTS, 2)), np.zeros(0),
                np.zeros(0, np.int64))
    return np.stack(out_b), np.stack(out_k), np.asarray(out_s), np.asarray(out_i, np.int64)


def letterbox(rgb: np.ndarray, size: int) -> tuple[np.ndarray, float, np.ndarray]:
    """Fit a photo into a ``size`` square, aspect kept, zero padded, values in [-1, 1].

    Args:
        rgb: (H, W, 3) uint8 RGB.

    Returns:
        ``(image, scale, offset)``: (size, size, 3) float32 input; photo pixels per input
        pixel; (2,) input-pixel offset of the photo's corner, so that
        ``photo_xy = (input_xy - offset) * scale``.
    """
    h, w = rgb.shape[:2]
    scale = max(h, w) / size
    nw, nh = max(1, round(w / scale)), max(1, round(h / scale))
    small = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if scale > 1 else
                       cv2.INTER_LINEAR)
    out = np.full((size, size, 3), -1.0, np.float32)
    ox, oy = (size - nw) // 2, (size - nh) // 2
    out[oy:oy + nh, ox:ox + nw] = small.astype(np.float32) * (2.0 / 255.0) - 1.0
    return out, scale, np.array([ox, oy], np.float64)


#: A model run: (1, S, S, 3) float32 NHWC input -> its outputs, in the model's order.
ModelRun = Callable[[np.ndarray], list[np.ndarray]]


class BlazeFace:
    """A BlazeFace detector on one model.

    Args:
        run: runs the model (see :mod:`facecraft.sdk.photo.mediapipe_models`): (1, S, S, 3)
            float32 -> ``[regressors (1, A, 16), classificators (1, A, 1)]``.
        spec: :data:`SHORT_RANGE` or :data:`FULL_RANGE`.
        nms_threshold: IoU above which detections merge.
    """

    def __init__(self, run: ModelRun, spec: BlazeFaceSpec, nms_threshold: float = 0.3) -> None:
        self._run = run
        self.spec = spec
        self.nms_threshold = float(nms_threshold)
        self._anchors = anchors(spec)

    def detect_window(self, rgb: np.ndarray, window: tuple[int, int, int, int] | None = None
                      ) -> BlazeDetection:
        """Faces in the photo, or in one square-ish *window* ``(x0, y0, x1, y1)`` of it (for
        tiling large photos); coordinates in photo pixels either way."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise InvalidInputError(f"expected an (H, W, 3) uint8 RGB photo, got {rgb.shape} "
                                    f"{rgb.dtype}")
        x0, y0 = (0, 0) if window is None else window[:2]
        part = rgb if window is None else rgb[window[1]:window[3], window[0]:window[2]]
        image, scale, offset = letterbox(part, self.spec.input_size)
        raw, logits = self._run(image[None])[:2]
        boxes, kps, scores = decode(raw.reshape(-1, 16), logits, self.spec, self._anchors)
        boxes, kps, scores, _ = weighted_nms(boxes, kps, scores, self.nms_threshold)
        s = float(self.spec.input_size)
        shift = np.array([x0, y0], np.float64)
        boxes = ((boxes.reshape(-1, 2, 2) * s - offset) * scale + shift).reshape(-1, 4)
        kps = (kps * s - offset) * scale + shift
        return BlazeDetection(boxes, kps, scores)
