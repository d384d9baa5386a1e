"""Skin masks from 68 iBUG landmarks (for the masked photometric loss and evaluation).

The mask is the face region - the jaw contour closed over a forehead band estimated from the
brows - minus the eyes, the brows and the mouth interior. Polygons are filled by OpenCV, so the
cost is independent of the number of pixels tested in Python. Hair occlusion is not known from
landmarks alone; a segmentation model (when one ships offline) can refine the mask with
:func:`refine_skin_mask`'s colour test.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import InvalidInputError

__all__ = ["skin_mask_from_landmarks", "refine_skin_mask"]


def _poly(points: np.ndarray) -> np.ndarray:
    return np.round(points * 16).astype(np.int32)  # 4 fractional bits (OpenCV's shift=4)


def skin_mask_from_landmarks(lm68: np.ndarray, image_size: tuple[int, int], *,
                             forehead: float = 0.6, feature_margin: float = 0.04) -> np.ndarray:
    """A boolean skin mask from one face's 68 landmarks.

    Args:
        lm68: (68, 2) pixel positions (x right, y down, iBUG order).
        image_size: (H, W) of the image.
        forehead: forehead band height as a fraction of the brow-to-nose-tip distance.
        feature_margin: margin around eyes, brows and mouth as a fraction of the face width.

    Returns:
        (H, W) bool, True on skin.
    """
    lm = np.asarray(lm68, np.float64)
    if lm.shape != (68, 2) or not np.isfinite(lm).all():
        raise InvalidInputError(f"expected finite (68, 2) landmarks, got {lm.shape}")
    h, w = image_size
    brows = lm[17:27]
    nose_tip = lm[30]
    up = brows.mean(0) - nose_tip  # towards the forehead (rotation-aware)
    lifted = brows[::-1] + forehead * up  # left brow back to the right, raised
    outline = np.concatenate([lm[0:17], lifted])
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [_poly(outline - 0.5)], 1, lineType=cv2.LINE_8, shift=4)
    face_w = np.linalg.norm(lm[16] - lm[0])
    margin = max(1, int(round(feature_margin * face_w)))
    holes = np.zeros_like(mask)
    for idx in (range(36, 42), range(42, 48), range(60, 68)):
        cv2.fillPoly(holes, [_poly(lm[list(idx)] - 0.5)], 1, lineType=cv2.LINE_8, shift=4)
    for idx in (range(17, 22), range(22, 27)):
        cv2.polylines(holes, [_poly(lm[list(idx)] - 0.5)], False, 1,
                      thickness=max(1, 2 * margin), lineType=cv2.LINE_8, shift=4)
    holes = cv2.dilate(holes, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8))
    return (mask > 0) & (holes == 0)


def refine_skin_mask(image: np.ndarray, mask: np.ndarray, *, max_sigma: float = 3.0) -> np.ndarray:
    """Drop mask pixels whose colour is far from the mask's robust mean (hair, glasses, hands).

    Args:
        image: (H, W, 3) float RGB in [0, 1].
        mask: (H, W) bool initial mask.
        max_sigma: keep pixels within this many robust standard deviations (per channel, in
            a chroma-luma space) of the median skin colour.

    Returns:
        (H, W) bool refined mask (a subset of ``mask``).
    """
    if image.shape[:2] != mask.shape or image.ndim != 3:
        raise InvalidInputError(f"image {image.shape} and mask {mask.shape} do not match")
    if not mask.any():
        return mask.copy()
    ycc = cv2.cvtColor(np.ascontiguousarray(image, np.float32), cv2.COLOR_RGB2YCrCb)
    vals = ycc[mask]
    med = np.median(vals, axis=0)
    mad = np.median(np.abs(vals - med), axis=0) * 1.4826 + 1e-3
    z = np.abs(ycc - med) / mad
    ok = (z[..., 1] < max_sigma) & (z[..., 2] < max_sigma) & (z[..., 0] < 2 * max_sigma)
    return mask & ok
