"""Fitting a face model to the front-end's 468 landmarks: pose, identity and expression.

The 468 points sit on the model's surface (:mod:`facecraft.sdk.models.mesh_landmarks`), so at
those points the model is linear in its coefficients::

    P(c) = M + B c        (468, 3) metres, c = [identity; expression]

Under a scaled orthographic camera ``x = s R[:2] P + t`` (photo pixels, y flipped to point up),
the fit alternates, a few times, two closed-form steps (no iterative optimiser):

1. **pose** from the current shape: the affine camera that maps ``P`` to the points in least
   squares, made a scaled rotation (SVD of its 2 x 3 part; the third row completes it);
2. **shape** from the pose: the weighted, Tikhonov-regularised linear least squares in ``c``
   (unit-variance identity coefficients pulled towards 0 with weight ``identity_prior``,
   expressions with ``expression_prior``; blendshape weights clipped to [0, 1]).

Points can be weighted (e.g. 0 for the jaw contour of a turned face, which slides along the
silhouette). It is the teacher that can label real photos with coefficients, and a refinement
after the regressor; the result's reprojection error says how well the model explains the photo.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from ..models.mesh_landmarks import MeshLandmarks
from ..models.morphable_model import MorphableModel

__all__ = ["MeshFitSettings", "MeshFit", "MeshFitter"]


@dataclass(frozen=True)
class MeshFitSettings:
    """How :class:`MeshFitter` fits.

    Attributes:
        iterations: pose / shape alternations.
        identity_prior: weight of ``|c_identity|^2`` against the squared reprojection error in
            units of the face's size (the error is measured in fractions of the points' RMS
            radius, so the weight does not depend on the photo's resolution).
        expression_prior: the same for the expression coefficients.
        max_identity: fit only the first modes (None: all).
        expressions: fit expressions (False: neutral face).
    """

    iterations: int = 5
    identity_prior: float = 1e-3
    expression_prior: float = 1e-3
    max_identity: int | None = None
    expressions: bool = True

    def __post_init__(self) -> None:
        if int(self.iterations) < 1:
            raise InvalidInputError(f"iterations must be >= 1, got {self.iterations}")
        if not (self.identity_prior > 0 and self.expression_prior > 0):
            raise InvalidInputError("identity_prior and expression_prior must be > 0")


@dataclass(frozen=True, eq=False)
class MeshFit:
    """A fitted face.

    Attributes:
        identity: (Ki,) float32 coefficients (zeros beyond ``max_identity``).
        expression: (Ke,) float32 coefficients (zeros without ``expressions``).
        scale: photo pixels per metre. rotation: (3, 3) float64 model -> camera (x right,
            y up, z towards the viewer). translation: (2,) photo pixels (y up) of the origin.
        projected: (468, 2) float64 photo pixels (x right, y down) of the fitted points.
        rms_px: weighted RMS reprojection error, photo pixels.
    """

    identity: np.ndarray
    expression: np.ndarray
    scale: float
    rotation: np.ndarray
    translation: np.ndarray
    projected: np.ndarray
    rms_px: float


def _pose(p3: np.ndarray, x2: np.ndarray, w: np.ndarray
          ) -> tuple[float, np.ndarray, np.ndarray]:
    """Scaled orthographic pose: ``x ~ s R[:2] p + t`` (weighted least squares, then projected
    onto scaled rotations)."""
    a = np.concatenate([p3, np.ones((len(p3), 1))], axis=1) * w[:, None]
    cam, *_ = np.linalg.lstsq(a, x2 * w[:, None], rcond=None)  # (4, 2)
    m = cam[:3].T  # (2, 3)
    u, sig, vt = np.linalg.svd(m, full_matrices=False)
    r2 = u @ vt
    s = float(sig.mean())
    rot = np.vstack([r2, np.cross(r2[0], r2[1])])
    if np.linalg.det(rot) < 0:
        rot[2] *= -1
    return s, rot, cam[3]


class MeshFitter:
    """Fits one face model to 468-point meshes (the bases at the 468 points are gathered once).

    Args:
        model: the face model. landmarks: where the 468 points sit on it.
        settings: :class:`MeshFitSettings`.
    """

    def __init__(self, model: MorphableModel, landmarks: MeshLandmarks,
                 settings: MeshFitSettings = MeshFitSettings()) -> None:
        self.model = model
        self.settings = settings
        tri = np.asarray(model.triangles)[landmarks.faces]  # (468, 3) vertex ids
        bary = landmarks.bary

        def at(a: np.ndarray) -> np.ndarray:  # (..., V, 3) -> (..., 468, 3)
            return np.einsum("nc,...ncd->...nd", bary, np.asarray(a, np.float64)[..., tri, :])

        self.mean = at(model.mean_shape)
        ki = len(model.identity_basis)
        if settings.max_identity is not None:
            ki = min(ki, int(settings.max_identity))
        ke = len(model.expression_basis) if settings.expressions else 0
        self._ki, self._ke = ki, ke
        parts = [at(model.identity_basis[:ki])]
        if ke:
            parts.append(at(model.expression_basis[:ke]))
        self.basis = np.concatenate(parts)  # (K, 468, 3)
        prior = np.r_[np.full(ki, settings.identity_prior), np.full(ke, settings.expression_prior)]
        self._prior = prior

    def fit(self, points: np.ndarray, weights: np.ndarray | None = None) -> MeshFit:
        """Fit to one face's 468 points.

        Args:
            points: (468, >=2) photo pixels (x right, y down); a z column is ignored.
            weights: (468,) non-negative weights (default 1).

        Raises:
            InvalidInputError: wrong shapes or non-finite values.
        """
        x = np.asarray(points, np.float64)
        if x.ndim != 2 or x.shape[0] != 468 or x.shape[1] < 2 or not np.isfinite(x[:, :2]).all():
            raise InvalidInputError(f"expected finite (468, 2) points, got {x.shape}")
        w = np.ones(468) if weights is None else np.asarray(weights, np.float64)
        if w.shape != (468,) or (w < 0).any() or w.sum() <= 0:
            raise InvalidInputError("weights must be (468,), non-negative, not all zero")
        x2 = x[:, :2] * [1.0, -1.0]  # y up, like the model
        centre = (w[:, None] * x2).sum(0) / w.sum()
        radius = float(np.sqrt((w * ((x2 - centre) ** 2).sum(1)).sum() / w.sum()))
        k = len(self.basis)
        coeffs = np.zeros(k)
        ws = np.sqrt(w)
        for _ in range(self.settings.iterations if k else 0):
            shape = self.mean + np.tensordot(coeffs, self.basis, axes=1)
            s, rot, t = _pose(shape, x2, w)
            # x2 - t - s R2 mean = s R2 B c   ->   (2N, K) system, errors in units of radius
            proj = s * np.einsum("ij,knj->kni", rot[:2], self.basis)  # (K, 468, 2)
            a = (proj * ws[None, :, None]).reshape(k, -1).T / radius
            r = ((x2 - t - s * self.mean @ rot[:2].T) * ws[:, None]).reshape(-1) / radius
            coeffs = np.linalg.solve(a.T @ a + np.diag(self._prior), a.T @ r)
            if self._ke and self.model.expression_kind == "blendshape":
                coeffs[self._ki:] = np.clip(coeffs[self._ki:], 0.0, 1.0)
        shape = self.mean + np.tensordot(coeffs, self.basis, axes=1)
        s, rot, t = _pose(shape, x2, w)
        fitted = s * shape @ rot[:2].T + t
        err = ((fitted - x2) ** 2).sum(1)
        ident = np.zeros(len(self.model.identity_basis), np.float32)
        ident[:self._ki] = coeffs[:self._ki]
        expr = np.zeros(len(self.model.expression_basis), np.float32)
        expr[:self._ke] = coeffs[self._ki:]
        return MeshFit(ident, expr, s, rot, t, fitted * [1.0, -1.0],
                       float(np.sqrt((w * err).sum() / w.sum())))
