"""Dense correspondence from a face model's topology to a rig mesh, built once per pair, cached.

Every rig vertex gets a point on the face model's surface: a model triangle and barycentric
coordinates. Any face of that model (a reconstruction, an expression, per-vertex colours) then
maps onto the rig by barycentric interpolation (:meth:`Correspondence.apply`).

Registration (all in the rig's frame, vectorised NumPy / SciPy):

1. **Similarity** (Umeyama: rotation, uniform scale, translation) taking the model's 68
   landmarks on its mean shape onto the rig's 68 landmarks.
2. **Thin-plate RBF warp** (``scipy.interpolate.RBFInterpolator``) of the aligned model
   surface that carries its landmarks exactly onto the rig's.
3. **Closest-point projection** of every rig vertex onto the warped model surface: candidate
   triangles from a ``cKDTree`` over 4 samples per triangle, then the exact point-triangle
   distance (Ericson's regions) for every candidate at once.
4. **Non-rigid ICP** (``icp_iterations`` rounds): rig vertices whose projection is close become
   extra, slightly smoothed RBF anchors (the model point they project to -> the rig vertex),
   the warp is refitted and the rig re-projected. Each round pulls the model surface onto the
   rig's, between the landmarks.

The residual (distance from each rig vertex to its projection, millimetres, mean and 95th
percentile over the rig's face) says how well the two surfaces agree after the warp; a rig
part the model lacks (a neck, a back of head a face-only model has not) shows as large
distances there, and the slider fit gives such vertices no weight.

Cache: ``<cache>/rig-correspondence/<model hash>-<rig hash>-<settings hash>.npz`` where the
hashes are content hashes (sha256 of the geometry and landmark definitions), so a changed
model or rig never reuses a stale file. The cache folder is
:func:`facecraft.sdk.models.default_model.default_cache_dir` unless given.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..models.morphable_model import MorphableModel
from ..models.surface import (
    TRI_SAMPLES,
    closest_points_on_mesh,
    model_content_hash,
)
from .rig import Rig

__all__ = [
    "CorrespondenceSettings",
    "Correspondence",
    "build_correspondence",
    "load_or_build_correspondence",
    "closest_points_on_mesh",
    "similarity_3d",
    "model_content_hash",
]

_CACHE_VERSION = 1


@dataclass(frozen=True)
class CorrespondenceSettings:
    """How to register a face model to a rig.

    Attributes:
        icp_iterations: non-rigid ICP rounds after the landmark warp, in [0, 10]; 0 stops
            after the first projection.
        icp_anchors: rig vertices used as extra warp anchors per round (a seeded random subset
            of the well-matched ones), >= 0.
        icp_smoothing: RBF smoothing of those anchors (the landmarks are exact), in units of
            the normalised frame (coordinates divided by the rig landmarks' RMS radius), >= 0.
        max_anchor_distance_mm: rig vertices farther than this from the model surface are
            never anchors (parts the model lacks), millimetres, > 0.
        candidates: nearest triangle samples tested exactly per rig vertex, in [4, 64].
        exclude_regions: model regions whose triangles are not projected onto (eyelash cards
            float in front of the eyes).
        seed: seed of the anchor sampling.
    """

    icp_iterations: int = 3
    icp_anchors: int = 600
    icp_smoothing: float = 1e-3
    max_anchor_distance_mm: float = 8.0
    candidates: int = 16
    exclude_regions: tuple[str, ...] = ("eyelashes",)
    seed: int = 0

    def __post_init__(self) -> None:
        def check(cond: bool, name: str, expected: str) -> None:
            if not cond:
                raise InvalidInputError(f"CorrespondenceSettings.{name} must be {expected}, "
                                        f"got {getattr(self, name)!r}")

        check(isinstance(self.icp_iterations, int) and 0 <= self.icp_iterations <= 10,
              "icp_iterations", "an integer in [0, 10]")
        check(isinstance(self.icp_anchors, int) and self.icp_anchors >= 0, "icp_anchors",
              "an integer >= 0")
        check(float(self.icp_smoothing) >= 0, "icp_smoothing", ">= 0")
        check(float(self.max_anchor_distance_mm) > 0, "max_anchor_distance_mm", "> 0 mm")
        check(isinstance(self.candidates, int) and 4 <= self.candidates <= 64, "candidates",
              "an integer in [4, 64]")
        object.__setattr__(self, "exclude_regions", tuple(self.exclude_regions))


@dataclass(frozen=True, eq=False)
class Correspondence:
    """Where each rig vertex lies on a face model's surface.

    Attributes:
        model_name: the face model's name. rig_name: the rig's name.
        key: the cache key (model hash, rig hash, settings hash).
        triangles: (V_rig,) int64 model triangle per rig vertex.
        corners: (V_rig, 3) int64 model vertex ids of that triangle.
        bary: (V_rig, 3) float64 barycentric coordinates within it.
        distance: (V_rig,) float64 metres from each rig vertex to its point on the warped
            model surface (the residual).
        scale: model -> rig similarity scale. rotation: (3, 3). translation: (3,) metres;
            ``p_rig = scale * rotation @ p_model + translation``.
        face: (V_rig,) bool, the rig's face vertices (its sidecar region ``"face"``, else the
            vertices whose model triangle lies in the model's ``"face"`` region, else all).
        landmark_error_mm: mean distance between model and rig landmarks after the similarity.
        residual_mean_mm / residual_p95_mm: mean / 95th percentile of ``distance`` over the
            face vertices, millimetres. residual_all_mean_mm: mean over every rig vertex.
        build_seconds: time the registration took (when it was built, cached or not).
        from_cache: whether it was read from the cache.
    """

    model_name: str
    rig_name: str
    key: str
    triangles: np.ndarray
    corners: np.ndarray
    bary: np.ndarray
    distance: np.ndarray
    scale: float
    rotation: np.ndarray
    translation: np.ndarray
    face: np.ndarray
    landmark_error_mm: float
    residual_mean_mm: float
    residual_p95_mm: float
    residual_all_mean_mm: float
    build_seconds: float
    from_cache: bool = False

    @property
    def num_rig_vertices(self) -> int:
        return len(self.triangles)

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Interpolate per-model-vertex values at the rig vertices.

        Args:
            values: (V_model, C) or (B, V_model, C), e.g. vertices (metres, model frame) or
                colours.

        Returns:
            (V_rig, C) or (B, V_rig, C) float64, in the values' own frame and units.
        """
        a = np.asarray(values, np.float64)
        if a.ndim not in (2, 3) or a.shape[-2] <= int(self.corners.max()):
            raise InvalidInputError(f"expected per-model-vertex values (V, C) or (B, V, C) "
                                    f"with V > {int(self.corners.max())}, got {a.shape}")
        return np.einsum("...rkc,rk->...rc", a[..., self.corners, :], self.bary)

    def to_rig_frame(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) model-frame points -> rig frame (the landmark similarity)."""
        return self.scale * np.asarray(points, np.float64) @ self.rotation.T + self.translation

    def transfer_deltas(self, deltas: np.ndarray) -> np.ndarray:
        """(..., V_model, 3) model-frame displacements -> (..., V_rig, 3) rig-frame ones
        (interpolated, rotated and scaled, not translated)."""
        return self.scale * self.apply(deltas) @ self.rotation.T

    def report(self) -> dict[str, Any]:
        """The residual report, JSON-able."""
        return {"model": self.model_name, "rig": self.rig_name,
                "rig_vertices": self.num_rig_vertices,
                "face_vertices": int(self.face.sum()),
                "scale": round(float(self.scale), 5),
                "landmark_error_mm": round(self.landmark_error_mm, 3),
                "residual_mean_mm": round(self.residual_mean_mm, 3),
                "residual_p95_mm": round(self.residual_p95_mm, 3),
                "residual_all_mean_mm": round(self.residual_all_mean_mm, 3),
                "build_seconds": round(self.build_seconds, 3),
                "from_cache": self.from_cache}


# --------------------------------------------------------------------------- geometry
def similarity_3d(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None, *,
                  scale: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """Weighted least-squares similarity (Umeyama, no reflection) taking ``src`` to ``dst``.

    Args:
        src: (N, 3) points. dst: (N, 3) points. weights: (N,) >= 0 or None.
        scale: fit the scale (else 1: a rigid transform).

    Returns:
        ``(s, R, t)`` with ``dst ~ s * src @ R.T + t``.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3 or len(src) < 3:
        raise InvalidInputError(f"expected two (N>=3, 3) point sets, got {src.shape} and "
                                f"{dst.shape}")
    w = np.ones(len(src)) if weights is None else np.asarray(weights, np.float64)
    if w.shape != (len(src),) or (w < 0).any() or w.sum() <= 0:
        raise InvalidInputError(f"expected ({len(src)},) non-negative weights with a positive "
                                "sum")
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    s0, d0 = src - mu_s, dst - mu_d
    cov = (d0 * w[:, None]).T @ s0
    u, sig, vt = np.linalg.svd(cov)
    d = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[2, 2] = -1
    rot = u @ d @ vt
    var = float((w * (s0 ** 2).sum(1)).sum())
    s = float(np.trace(np.diag(sig) @ d) / var) if scale and var > 0 else 1.0
    return s, rot, mu_d - s * rot @ mu_s


# --------------------------------------------------------------------------- hashing
def _settings_hash(settings: CorrespondenceSettings) -> str:
    text = json.dumps({"v": _CACHE_VERSION, **dataclasses.asdict(settings)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------- building
def _rig_face_mask(rig: Rig, model: MorphableModel, corners: np.ndarray) -> np.ndarray:
    if "face" in rig.spec.regions and len(rig.spec.regions["face"]):
        m = np.zeros(rig.num_vertices, bool)
        m[rig.spec.regions["face"]] = True
        return m
    if "face" in model.regions and len(model.regions["face"]):
        member = np.zeros(model.num_vertices, bool)
        member[model.regions["face"]] = True
        return member[corners].sum(1) >= 2
    return np.ones(rig.num_vertices, bool)


def build_correspondence(model: MorphableModel, rig: Rig,
                         settings: CorrespondenceSettings | None = None) -> Correspondence:
    """Register ``model`` to ``rig`` (see the module docstring); no caching.

    Args:
        model: the face model whose reconstructions will be mapped (its mean shape is
            registered).
        rig: the rig.
        settings: see :class:`CorrespondenceSettings`.

    Returns:
        :class:`Correspondence` with its residual report.
    """
    from scipy.interpolate import RBFInterpolator
    from scipy.spatial import cKDTree

    settings = CorrespondenceSettings() if settings is None else settings
    t0 = time.perf_counter()
    rig_v = rig.vertices.astype(np.float64)
    rig_lm = rig.landmarks()
    src = model.mean_shape.astype(np.float64)
    src_lm = model.landmarks(src).astype(np.float64)
    s, rot, t = similarity_3d(src_lm, rig_lm)
    aligned = s * src @ rot.T + t
    aligned_lm = s * src_lm @ rot.T + t
    lm_error = float(np.linalg.norm(aligned_lm - rig_lm, axis=1).mean() * 1e3)

    # normalised frame for the RBF: centred on the rig landmarks, unit RMS radius
    centre = rig_lm.mean(0)
    radius = float(np.sqrt(((rig_lm - centre) ** 2).sum(1).mean()))

    def norm(x):
        return (x - centre) / radius

    keep = np.ones(len(model.triangles), bool)
    for name in settings.exclude_regions:
        ids = model.regions.get(name)
        if ids is not None and len(ids):
            member = np.zeros(model.num_vertices, bool)
            member[ids] = True
            keep &= ~member[model.triangles].any(1)
    tri_ids = np.flatnonzero(keep)
    tris = model.triangles[tri_ids].astype(np.int64)

    def project(warped: np.ndarray):
        corners = warped[tris]
        tree = cKDTree(np.einsum("sk,fkd->fsd", TRI_SAMPLES, corners).reshape(-1, 3))
        return closest_points_on_mesh(rig_v, warped, tris, candidates=settings.candidates,
                                      tree=tree)

    def warp(anchor_src: np.ndarray, anchor_dst: np.ndarray, smoothing: np.ndarray):
        rbf = RBFInterpolator(norm(anchor_src), norm(anchor_dst) - norm(anchor_src),
                              kernel="thin_plate_spline", smoothing=smoothing, degree=1)
        return aligned + rbf(norm(aligned)) * radius

    warped = warp(aligned_lm, rig_lm, np.zeros(len(rig_lm)))
    local_tri, bary, dist = project(warped)
    rng = np.random.default_rng(settings.seed)
    max_d = settings.max_anchor_distance_mm * 1e-3
    for _ in range(settings.icp_iterations):
        good = np.flatnonzero(dist < max_d)
        if not len(good) or not settings.icp_anchors:
            break
        pick = rng.choice(good, min(settings.icp_anchors, len(good)), replace=False)
        anchor_src = np.einsum("nk,nkd->nd", bary[pick], aligned[tris[local_tri[pick]]])
        smooth = np.concatenate([np.zeros(len(rig_lm)),
                                 np.full(len(pick), float(settings.icp_smoothing))])
        warped = warp(np.concatenate([aligned_lm, anchor_src]),
                      np.concatenate([rig_lm, rig_v[pick]]), smooth)
        local_tri, bary, dist = project(warped)

    corners = tris[local_tri]
    face = _rig_face_mask(rig, model, corners)
    d_face = dist[face] if face.any() else dist
    return Correspondence(
        model_name=model.name, rig_name=rig.name,
        key=f"{model_content_hash(model)[:16]}-{rig.content_hash[:16]}-"
            f"{_settings_hash(settings)[:12]}",
        triangles=tri_ids[local_tri], corners=corners, bary=bary, distance=dist,
        scale=s, rotation=rot, translation=t, face=face,
        landmark_error_mm=lm_error,
        residual_mean_mm=float(d_face.mean() * 1e3),
        residual_p95_mm=float(np.percentile(d_face, 95) * 1e3),
        residual_all_mean_mm=float(dist.mean() * 1e3),
        build_seconds=time.perf_counter() - t0,
    )


_ARRAYS = ("triangles", "corners", "bary", "distance", "rotation", "translation", "face")
_SCALARS = ("model_name", "rig_name", "key", "scale", "landmark_error_mm", "residual_mean_mm",
            "residual_p95_mm", "residual_all_mean_mm", "build_seconds")


def load_or_build_correspondence(model: MorphableModel, rig: Rig,
                                 settings: CorrespondenceSettings | None = None, *,
                                 cache_dir: str | Path | None = None,
                                 use_cache: bool = True) -> Correspondence:
    """The correspondence of ``model`` and ``rig``: read from the cache, or built and cached.

    Args:
        model: the face model. rig: the rig. settings: registration settings.
        cache_dir: the cache root (default
            :func:`facecraft.sdk.models.default_model.default_cache_dir`); files go to its
            ``rig-correspondence/`` folder.
        use_cache: False builds without reading or writing the cache.
    """
    settings = CorrespondenceSettings() if settings is None else settings
    if not use_cache:
        return build_correspondence(model, rig, settings)
    from ..models.default_model import default_cache_dir
    from ..render.mesh_io import _atomic_write

    key = (f"{model_content_hash(model)[:16]}-{rig.content_hash[:16]}-"
           f"{_settings_hash(settings)[:12]}")
    folder = (Path(cache_dir) if cache_dir is not None else default_cache_dir())
    path = folder / "rig-correspondence" / f"{key}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                arrays = {k: z[k] for k in _ARRAYS}
            if meta.get("key") == key and len(arrays["triangles"]) == rig.num_vertices:
                return Correspondence(**arrays, **{k: meta[k] for k in _SCALARS},
                                      from_cache=True)
        except Exception:  # a damaged cache entry is rebuilt, never trusted
            pass
        path.unlink(missing_ok=True)
    corr = build_correspondence(model, rig, settings)
    import io

    buf = io.BytesIO()
    meta = {k: getattr(corr, k) for k in _SCALARS}
    np.savez(buf, meta=np.array(json.dumps(meta)),
             **{k: getattr(corr, k) for k in _ARRAYS})
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, buf.getvalue())
    return corr
