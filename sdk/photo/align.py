"""Face alignment: a similarity transform from 5 landmarks to the regressor's 224x224 crop.

The 5 points are the eye centres, the nose tip and the mouth corners, in the subject's
right-to-left order of the iBUG convention: (right eye, left eye, nose tip, right mouth corner,
left mouth corner) - the subject's right eye is on the image's left in a frontal photo.

:data:`CROP_TEMPLATE_224` is where those points land in the crop. It is derived from the camera
the renderer uses (the paper's / Deng et al.'s: 1015 px focal length at 224 px, 1 m away): the
starter model's mean 5 points projected through it, shifted 25 px up so the face is centred.
A photo aligned this way is therefore already close to a render at zero pose, which is what the
coefficient regressor assumes; like Deng et al. it keeps the transform (here a full similarity,
kept invertible) so results map back to the photo.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import InvalidInputError

__all__ = ["CROP_SIZE", "CROP_TEMPLATE_224", "AlignedFace", "five_from_68",
           "similarity_transform", "align_face"]

CROP_SIZE = 224

#: (5, 2) pixel positions of (right eye, left eye, nose tip, right mouth corner, left mouth
#: corner) in the 224 x 224 crop (x right, y down, pixel centres at +0.5).
CROP_TEMPLATE_224 = np.array([[76.87, 86.03], [147.13, 86.03], [112.00, 120.90],
                              [82.60, 163.68], [141.40, 163.68]], np.float64)


def five_from_68(lm68: np.ndarray) -> np.ndarray:
    """(68, 2) iBUG landmarks -> (5, 2): eye centres (mean of 6 points), nose tip (30), mouth
    corners (48, 54)."""
    lm = np.asarray(lm68, np.float64)
    if lm.shape[-2:] != (68, 2) and lm.shape[-2:] != (68, 3):
        raise InvalidInputError(f"expected (68, 2) landmarks, got {lm.shape}")
    return np.stack([lm[..., 36:42, :].mean(-2), lm[..., 42:48, :].mean(-2), lm[..., 30, :],
                     lm[..., 48, :], lm[..., 54, :]], axis=-2)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src to dst.

    Umeyama's method, no reflection.

    Args:
        src: (N, 2) points. dst: (N, 2) points, N >= 2.

    Returns:
        (2, 3) float64 matrix ``M`` with ``dst ~ M @ [x, y, 1]``.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise InvalidInputError(f"expected two (N>=2, 2) point sets, got {src.shape} and "
                                f"{dst.shape}")
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        raise InvalidInputError("landmarks contain NaN or infinite values")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    var = (s0 ** 2).sum() / len(src)
    if var < 1e-12:
        raise InvalidInputError("landmarks are degenerate (all at one point)")
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1, 1] = -1
    rot = u @ d @ vt
    scale = np.trace(np.diag(sig) @ d) / var
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


@dataclass(frozen=True)
class AlignedFace:
    """A face crop and the transform that made it.

    Attributes:
        image: (S, S, C) crop, same dtype as the photo.
        matrix: (2, 3) float64 photo pixels -> crop pixels (x right, y down, centres at +0.5).
        landmarks5: (5, 2) the photo's 5 points mapped into the crop.
    """

    image: np.ndarray
    matrix: np.ndarray
    landmarks5: np.ndarray

    @property
    def inverse(self) -> np.ndarray:
        """(2, 3) crop pixels -> photo pixels."""
        return cv2.invertAffineTransform(self.matrix)

    def to_photo(self, points: np.ndarray) -> np.ndarray:
        """Map (..., 2) crop pixel positions back to the photo."""
        inv = self.inverse
        p = np.asarray(points, np.float64)
        return p @ inv[:, :2].T + inv[:, 2]

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Map (..., 2) photo pixel positions into the crop."""
        p = np.asarray(points, np.float64)
        return p @ self.matrix[:, :2].T + self.matrix[:, 2]


def align_face(photo: np.ndarray, landmarks5: np.ndarray, size: int = CROP_SIZE) -> AlignedFace:
    """Warp a photo so its 5 landmarks land on the crop template.

    Args:
        photo: (H, W, C) image (float32 or uint8).
        landmarks5: (5, 2) photo pixels, order as :data:`CROP_TEMPLATE_224` (see
            :func:`five_from_68`).
        size: crop size in pixels; the template scales with it.

    Returns:
        :class:`AlignedFace` (bilinear resampling, border replicated).
    """
    if photo.ndim != 3:
        raise InvalidInputError(f"expected photo (H, W, C), got {photo.shape}")
    lm = np.asarray(landmarks5, np.float64)
    if lm.shape != (5, 2):
        raise InvalidInputError(f"expected landmarks5 (5, 2), got {lm.shape}")
    template = CROP_TEMPLATE_224 * (size / CROP_SIZE)
    # pixel-centre convention: OpenCV's warp maps integer pixel indices, ours centres at +0.5
    m = similarity_transform(lm - 0.5, template - 0.5)
    crop = cv2.warpAffine(photo, m, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    if crop.ndim == 2:
        crop = crop[..., None]
    full = m.copy()
    full[:, 2] += 0.5 - m[:, :2].sum(1) * 0.5  # the same map in centre-at-0.5 coordinates
    return AlignedFace(crop, full, lm @ full[:, :2].T + full[:, 2])
