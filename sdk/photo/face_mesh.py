"""MediaPipe's face mesh on a photo: a rotated region of interest, 468 3D landmarks, the face
presence score, and per eye 5 iris points with 71 eye-contour points.

The geometry follows MediaPipe's documented graphs (face_landmark, iris_landmark modules):

- **ROI from a detection**: the box centre, rotated so the line from the subject's right eye to
  their left eye is horizontal, a square of 1.5 x the box's longer side.
- **ROI from landmarks** (a second pass, more accurate on photos): the landmarks' bounding box in
  the frame rotated by the eye-corner line (points 33 -> 263), 1.5 x its longer side.
- **Mesh**: the ROI warped to 192 x 192, RGB in [0, 1]; outputs (x, y, z) in crop pixels (z is
  relative depth on the x scale, smaller = nearer) and a face-presence logit.
- **Iris**: per eye a square ROI of 2.3 x the eye-corner distance around its corners (33/133,
  362/263), 64 x 64 RGB in [0, 1]; the subject's left eye is mirrored into the model's right-eye
  view and back.

Every point comes back in photo pixels (x right, y down); z is scaled like x.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["RotatedRect", "MeshSettings", "FaceMeshResult", "roi_from_box", "roi_from_points",
           "crop", "FaceMeshModel", "IrisModel", "RIGHT_EYE_CORNERS", "LEFT_EYE_CORNERS"]

#: Mesh indices of the subject's right eye's outer and inner corner (image left, frontal photo).
RIGHT_EYE_CORNERS = (33, 133)
#: Mesh indices of the subject's left eye's inner and outer corner.
LEFT_EYE_CORNERS = (362, 263)
#: Mesh points that define the landmark ROI's rotation (right eye outer -> left eye outer).
_ROTATION_POINTS = (33, 263)

#: A model run: (1, S, S, 3) float32 NHWC input -> its outputs, in the model's order.
ModelRun = Callable[[np.ndarray], list[np.ndarray]]


@dataclass(frozen=True)
class RotatedRect:
    """A square region of a photo.

    Attributes:
        center: (2,) photo pixels.
        size: side in photo pixels.
        angle: radians; the region's x axis is the photo's x axis rotated by ``angle``
            (counter-clockwise on screen is negative, as y points down).
    """

    center: np.ndarray
    size: float
    angle: float

    def to_crop(self, out: int) -> np.ndarray:
        """(2, 3) affine matrix from photo pixels to an ``out`` x ``out`` crop of this region."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        k = out / self.size
        rot = np.array([[c, s], [-s, c]]) * k  # photo -> region frame, scaled
        t = np.array([out / 2, out / 2]) - rot @ self.center
        return np.concatenate([rot, t[:, None]], axis=1)


def _angle(p0: np.ndarray, p1: np.ndarray) -> float:
    d = np.asarray(p1, np.float64) - np.asarray(p0, np.float64)
    return float(np.arctan2(d[1], d[0]))


def roi_from_box(box: np.ndarray, right_eye: np.ndarray, left_eye: np.ndarray,
                 scale: float = 1.5) -> RotatedRect:
    """MediaPipe's mesh ROI from a detection: box centre, eye-line rotation, ``scale`` x the
    box's longer side."""
    box = np.asarray(box, np.float64)
    side = float(max(box[2] - box[0], box[3] - box[1])) * scale
    return RotatedRect((box[:2] + box[2:]) / 2, side, _angle(right_eye, left_eye))


def roi_from_points(points: np.ndarray, scale: float = 1.5) -> RotatedRect:
    """MediaPipe's mesh ROI from 468 landmarks (photo pixels): their bounding box in the frame
    rotated by the eye-corner line, ``scale`` x its longer side."""
    xy = np.asarray(points, np.float64)[:, :2]
    angle = _angle(xy[_ROTATION_POINTS[0]], xy[_ROTATION_POINTS[1]])
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, s], [-s, c]])
    local = xy @ rot.T
    lo, hi = local.min(0), local.max(0)
    center = rot.T @ ((lo + hi) / 2)
    return RotatedRect(center, float((hi - lo).max()) * scale, angle)


def crop(rgb: np.ndarray, roi: RotatedRect, out: int, *, mirror: bool = False
         ) -> tuple[np.ndarray, np.ndarray]:
    """Warp a photo's region to an ``out`` square, RGB in [0, 1].

    Args:
        rgb: (H, W, 3) uint8. mirror: flip the crop left-right (the iris model's other eye).

    Returns:
        ``(image, matrix)``: (out, out, 3) float32; (2, 3) photo -> crop affine (including the
        mirror).
    """
    m = roi.to_crop(out)
    if mirror:
        m = np.array([[-1.0, 0.0, out], [0.0, 1.0, 0.0]]) @ np.vstack([m, [0, 0, 1]])
    img = cv2.warpAffine(rgb, m, (out, out), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return img.astype(np.float32) * (1.0 / 255.0), m


def _to_photo(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(N, 3) crop-pixel points (z on the x scale) -> photo pixels through the inverse of
    *matrix*; z scaled by the same factor as x and y."""
    inv = cv2.invertAffineTransform(matrix)
    xy = points[:, :2] @ inv[:, :2].T + inv[:, 2]
    scale = float(np.sqrt(abs(np.linalg.det(inv[:, :2]))))
    return np.concatenate([xy, points[:, 2:3] * scale], axis=1)


@dataclass(frozen=True)
class MeshSettings:
    """How :class:`FaceMeshModel` places its crop.

    Attributes:
        refine_roi: run the mesh a second time on the ROI from its own landmarks (a photo has no
            previous frame to track from; this costs one more mesh run and is more accurate).
        min_presence: faces whose presence probability is below this are rejected.
    """

    refine_roi: bool = True
    min_presence: float = 0.5


@dataclass(frozen=True, eq=False)
class FaceMeshResult:
    """The mesh of one face.

    Attributes:
        points: (468, 3) float32 photo pixels; z relative depth on the same scale (smaller is
            nearer the camera), zero near the face's centre.
        presence: face-presence probability in [0, 1].
        roi: the region the last mesh run saw.
        iris: (2, 5, 3) float32 photo pixels, [subject's right eye, left eye] x (centre, then 4
            points on the iris rim), or None when not computed.
        eye_contours: (2, 71, 3) float32 photo pixels (eyelids and brow of each eye), or None.
    """

    points: np.ndarray
    presence: float
    roi: RotatedRect
    iris: np.ndarray | None = None
    eye_contours: np.ndarray | None = None


class FaceMeshModel:
    """The 468-point face landmark model.

    Args:
        run: the model: (1, 192, 192, 3) float32 -> ``[points (1, 1, 1, 1404), presence logit]``.
        settings: :class:`MeshSettings`.
    """

    INPUT = 192

    def __init__(self, run: ModelRun, settings: MeshSettings = MeshSettings()) -> None:
        self._run = run
        self.settings = settings

    def _once(self, rgb: np.ndarray, roi: RotatedRect) -> tuple[np.ndarray, float]:
        image, m = crop(rgb, roi, self.INPUT)
        raw, logit = self._run(image[None])[:2]
        pts = _to_photo(np.asarray(raw, np.float64).reshape(468, 3), m)
        presence = float(1.0 / (1.0 + np.exp(-float(np.asarray(logit).reshape(-1)[0]))))
        return pts, presence

    def landmarks(self, rgb: np.ndarray, roi: RotatedRect) -> FaceMeshResult:
        """The mesh in a region (from :func:`roi_from_box`); with ``refine_roi`` the region is
        re-placed from the first landmarks and the mesh run again."""
        pts, presence = self._once(rgb, roi)
        if self.settings.refine_roi and presence >= self.settings.min_presence:
            roi = roi_from_points(pts)
            pts, presence = self._once(rgb, roi)
        return FaceMeshResult(pts.astype(np.float32), presence, roi)


class IrisModel:
    """MediaPipe's iris landmark model, run on both eyes of a mesh.

    Args:
        run: the model: (1, 64, 64, 3) float32 -> ``[contours (1, 213), iris (1, 15)]``.
    """

    INPUT = 64
    SCALE = 2.3

    def __init__(self, run: ModelRun) -> None:
        self._run = run

    def eyes(self, rgb: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Iris and eye contours of both eyes.

        Args:
            points: (468, 3) mesh points, photo pixels.

        Returns:
            ``(iris (2, 5, 3), contours (2, 71, 3))`` float32 photo pixels, [right, left] eye.
        """
        xy = np.asarray(points, np.float64)[:, :2]
        batch, mats = [], []
        for (a, b), mirror in ((RIGHT_EYE_CORNERS, False), (LEFT_EYE_CORNERS, True)):
            p0, p1 = xy[a], xy[b]
            roi = RotatedRect((p0 + p1) / 2, float(np.linalg.norm(p1 - p0)) * self.SCALE,
                              _angle(p0, p1))
            img, m = crop(rgb, roi, self.INPUT, mirror=mirror)
            batch.append(img)
            mats.append(m)
        c, i = self._run(np.stack(batch))[:2]  # both eyes in one batch
        contours = [_to_photo(np.asarray(c[k], np.float64).reshape(71, 3), mats[k])
                    for k in range(2)]
        iris = [_to_photo(np.asarray(i[k], np.float64).reshape(5, 3), mats[k]) for k in range(2)]
        return np.stack(iris).astype(np.float32), np.stack(contours).astype(np.float32)
