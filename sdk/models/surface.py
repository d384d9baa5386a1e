"""Triangle-mesh surfaces: the closest surface point to a query point, and a model's geometry hash.

Used wherever points must land on a face model's or a rig's surface as barycentric coordinates:
the dense model-to-rig correspondence (:mod:`facecraft.sdk.rigs.correspondence`) and the
468-point mesh landmarks (:mod:`facecraft.sdk.models.mesh_landmarks`).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from .morphable_model import MorphableModel

__all__ = ["TRI_SAMPLES", "closest_on_triangles", "closest_points_on_mesh", "model_content_hash"]

#: Barycentric sample points per triangle for the candidate search (centroid + 3 inner points).
TRI_SAMPLES = np.array([[1 / 3, 1 / 3, 1 / 3], [2 / 3, 1 / 6, 1 / 6],
                         [1 / 6, 2 / 3, 1 / 6], [1 / 6, 1 / 6, 2 / 3]])


def closest_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray
                          ) -> np.ndarray:
    """Barycentrics (..., 3) of the closest point to ``p`` on triangles (a, b, c), all (..., 3)
    (Ericson, Real-Time Collision Detection 5.1.5, every Voronoi region at once)."""
    def dot(x, y):
        return np.einsum("...i,...i->...", x, y)

    ab, ac, ap = b - a, c - a, p - a
    bp, cp = p - b, p - c
    d1, d2 = dot(ab, ap), dot(ac, ap)
    d3, d4 = dot(ab, bp), dot(ac, bp)
    d5, d6 = dot(ab, cp), dot(ac, cp)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = va + vb + vc
        v_in, w_in = vb / denom, vc / denom
        t_ab = d1 / (d1 - d3)
        t_ac = d2 / (d2 - d6)
        t_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6))
    one = np.ones_like(d1)
    zero = np.zeros_like(d1)
    bary = np.stack([1 - v_in - w_in, v_in, w_in], -1)  # interior (lowest priority)
    cases = [  # (condition, barycentrics), later entries win
        ((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0), np.stack([zero, 1 - t_bc, t_bc], -1)),
        ((vb <= 0) & (d2 >= 0) & (d6 <= 0), np.stack([1 - t_ac, zero, t_ac], -1)),
        ((d6 >= 0) & (d5 <= d6), np.stack([zero, zero, one], -1)),
        ((vc <= 0) & (d1 >= 0) & (d3 <= 0), np.stack([1 - t_ab, t_ab, zero], -1)),
        ((d3 >= 0) & (d4 <= d3), np.stack([zero, one, zero], -1)),
        ((d1 <= 0) & (d2 <= 0), np.stack([one, zero, zero], -1)),
    ]
    for cond, val in cases:
        bary = np.where(cond[..., None], val, bary)
    bad = ~np.isfinite(bary).all(-1)
    if bad.any():  # degenerate triangles: their first corner
        bary[bad] = (1.0, 0.0, 0.0)
    return bary


def closest_points_on_mesh(points: np.ndarray, verts: np.ndarray, triangles: np.ndarray, *,
                           candidates: int = 16, tree: Any = None, chunk: int = 4096
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The closest point on a triangle mesh to each query point.

    Args:
        points: (N, 3) query points.
        verts: (V, 3) mesh vertices (same units). triangles: (F, 3) vertex ids.
        candidates: nearest triangle samples (4 per triangle) tested exactly per point.
        tree: a ``cKDTree`` over the samples (from an earlier call on the same mesh), or None.
        chunk: points per vectorised batch (bounds memory).

    Returns:
        ``(triangle (N,) int64, bary (N, 3) float64, distance (N,) float64)``.
    """
    from scipy.spatial import cKDTree

    p = np.asarray(points, np.float64)
    v = np.asarray(verts, np.float64)
    tri = np.asarray(triangles, np.int64)
    corners = v[tri]  # (F, 3, 3)
    if tree is None:
        tree = cKDTree(np.einsum("sk,fkd->fsd", TRI_SAMPLES, corners).reshape(-1, 3))
    k = min(candidates, 4 * len(tri))
    out_t = np.empty(len(p), np.int64)
    out_b = np.empty((len(p), 3))
    out_d = np.empty(len(p))
    for s in range(0, len(p), chunk):
        q = p[s:s + chunk]
        _, idx = tree.query(q, k=k)
        cand = np.asarray(idx).reshape(len(q), k) // len(TRI_SAMPLES)  # (n, k) triangles
        c = corners[cand]  # (n, k, 3, 3)
        bary = closest_on_triangles(q[:, None], c[..., 0, :], c[..., 1, :], c[..., 2, :])
        closest = np.einsum("nkc,nkcd->nkd", bary, c)
        dist = np.linalg.norm(closest - q[:, None], axis=-1)
        best = dist.argmin(1)
        rows = np.arange(len(q))
        out_t[s:s + chunk] = cand[rows, best]
        out_b[s:s + chunk] = bary[rows, best]
        out_d[s:s + chunk] = dist[rows, best]
    return out_t, out_b, out_d


def model_content_hash(model: MorphableModel) -> str:
    """sha256 (hex) of what a correspondence depends on: mean shape, triangles, landmarks,
    regions."""
    h = hashlib.sha256()
    for a in (model.mean_shape, model.triangles, model.landmark_faces, model.landmark_bary):
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    for k in sorted(model.regions):
        h.update(k.encode())
        h.update(model.regions[k].tobytes())
    return h.hexdigest()
