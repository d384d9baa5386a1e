"""Debug drawings of what the front-end found: mesh, iris, region masks, hair.

For people, not for the pipeline: contact sheets, the CLI's ``--debug`` pictures.
"""

from __future__ import annotations

import cv2
import numpy as np

from .mesh_regions import RegionMasks, region_polygons

__all__ = ["REGION_COLORS", "draw_landmarks", "draw_regions"]

#: RGB colour of each mask in :func:`draw_regions`.
REGION_COLORS: dict[str, tuple[int, int, int]] = {
    "skin": (255, 200, 120), "brows": (120, 60, 20), "eyes": (255, 255, 255),
    "iris": (40, 120, 255), "lips": (230, 40, 90), "mouth_interior": (80, 0, 40),
    "nose": (120, 255, 120), "hair": (200, 60, 255),
}


def draw_regions(rgb: np.ndarray, masks: RegionMasks, alpha: float = 0.45) -> np.ndarray:
    """The photo with each region tinted (hair first, then skin, then the features)."""
    out = rgb.astype(np.float32)
    for name in ("hair", "skin", "nose", "brows", "lips", "mouth_interior", "eyes", "iris"):
        if name in masks.masks:
            m = masks[name]
            out[m] = (1 - alpha) * out[m] + alpha * np.asarray(REGION_COLORS[name], np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def draw_landmarks(rgb: np.ndarray, points: np.ndarray, iris: np.ndarray | None = None, *,
                   box: np.ndarray | None = None) -> np.ndarray:
    """The photo with the mesh points (green), region outlines (yellow), iris rims and centres
    (cyan) and the detection box (red). Sizes scale with the face."""
    out = np.ascontiguousarray(rgb.copy())
    xy = np.asarray(points, np.float64)[:, :2]
    size = float(np.ptp(xy[:, 0]))
    r = max(1, round(size / 250))
    t = max(1, round(size / 200))
    sh = 4  # fractional bits
    for polys in region_polygons(xy, None if iris is None else iris).values():
        for p in polys:
            cv2.polylines(out, [np.round(p * (1 << sh)).astype(np.int32)], True, (255, 220, 0),
                          t, cv2.LINE_AA, sh)
    for p in np.round(xy * (1 << sh)).astype(np.int32):
        cv2.circle(out, (int(p[0]), int(p[1])), r << sh, (0, 255, 0), -1, cv2.LINE_AA, sh)
    if iris is not None:
        for eye in np.asarray(iris, np.float64):
            c = np.round(eye[0, :2] * (1 << sh)).astype(np.int32)
            cv2.circle(out, (int(c[0]), int(c[1])), (2 * r + 1) << sh, (0, 255, 255), -1,
                       cv2.LINE_AA, sh)
    if box is not None:
        b = np.round(np.asarray(box) * (1 << sh)).astype(np.int32)
        cv2.rectangle(out, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), (255, 0, 0), t,
                      cv2.LINE_AA, sh)
    return out
