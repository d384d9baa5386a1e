"""Head pose from 2D landmarks: a closed-form weak-perspective fit.

Given a face model's 3D landmarks and their 2D positions in a photo, find the rotation, scale
and 2D translation of a scaled-orthographic camera (the standard linear fit: an affine camera
by least squares, then its 2x3 matrix projected onto the nearest scaled rotation). The result is
a :class:`~facecraft.sdk.render.cameras.Pose` plus a
:class:`~facecraft.sdk.render.cameras.WeakPerspectiveCamera`, ready for the renderer. It is a
starting
point; learned regressors and photometric refinement do better.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InvalidInputError
from .cameras import Pose, WeakPerspectiveCamera

__all__ = ["PoseFit", "fit_weak_perspective"]


@dataclass(frozen=True)
class PoseFit:
    """A fitted pose and camera.

    Attributes:
        pose: batch-1 pose (model -> world), translation (tx, ty, 0) metres.
        camera: weak-perspective camera (scale px/m, principal point at the image centre).
        residual_px: RMS landmark reprojection error in pixels.
    """

    pose: Pose
    camera: WeakPerspectiveCamera
    residual_px: float


def fit_weak_perspective(points3d: np.ndarray, points2d: np.ndarray,
                         image_size: tuple[int, int], *,
                         weights: np.ndarray | None = None) -> PoseFit:
    """Fit a scaled-orthographic camera to 2D-3D correspondences.

    Args:
        points3d: (N, 3) model-frame points, metres (e.g. ``model.landmarks(model.mean_shape)``).
        points2d: (N, 2) pixel positions (x right, y down) in the photo.
        image_size: (H, W) of the photo.
        weights: optional (N,) non-negative weights.

    Returns:
        :class:`PoseFit`.
    """
    p3 = np.asarray(points3d, np.float64)
    p2 = np.asarray(points2d, np.float64)
    if p3.ndim != 2 or p3.shape[1] != 3 or p2.shape != (len(p3), 2) or len(p3) < 4:
        raise InvalidInputError(f"expected points3d (N>=4, 3) and points2d (N, 2), got "
                                f"{p3.shape} and {p2.shape}")
    h, w = image_size
    cx, cy = w / 2, h / 2
    # image coords with y up, relative to the principal point
    target = np.stack([p2[:, 0] - cx, cy - p2[:, 1]], 1)
    wts = np.ones(len(p3)) if weights is None else np.asarray(weights, np.float64)
    sw = np.sqrt(wts)[:, None]
    design = np.concatenate([p3, np.ones((len(p3), 1))], 1)
    sol, *_ = np.linalg.lstsq(design * sw, target * sw, rcond=None)  # (4, 2)
    affine = sol[:3].T  # (2, 3)
    u, s, vt = np.linalg.svd(affine, full_matrices=False)
    scale = float(s.mean())
    r12 = u @ vt  # nearest matrix with orthonormal rows
    r3 = np.cross(r12[0], r12[1])
    rot = np.stack([r12[0], r12[1], r3])
    if np.linalg.det(rot) < 0:
        rot[2] *= -1
    # translation: least squares with the rotation and scale fixed
    t2 = ((target - scale * p3 @ rot[:2].T) * wts[:, None]).sum(0) / wts.sum() / scale
    pred = scale * (p3 @ rot[:2].T + t2)
    resid = float(np.sqrt((((pred - target) ** 2).sum(1) * wts).sum() / wts.sum()))
    pose = Pose(torch.tensor(rot, dtype=torch.float32)[None],
                torch.tensor([[t2[0], t2[1], 0.0]], dtype=torch.float32))
    camera = WeakPerspectiveCamera(scale, (cx, cy), (int(h), int(w)))
    return PoseFit(pose, camera, resid)
