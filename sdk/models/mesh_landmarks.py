"""The 468 points of MediaPipe's face mesh on any face model, as barycentric surface points.

The photo front-end returns 468 points per face; fitting a face model to them needs to know
where each point sits on that model. :func:`build_mesh_landmarks` works it out once per model:

1. MediaPipe's canonical face mesh (vendored, ``facecraft/sdk/data/mediapipe-mesh``) is placed
   on the model's mean shape by a similarity transform on 14 unambiguous pairs of canonical
   vertices and the model's iBUG-68 landmarks (eye and mouth corners, nose tip, subnasale, lip
   centres, chin, nasion; :data:`ANCHOR_PAIRS`);
2. a thin-plate spline on the same pairs bends it onto the model's proportions;
3. each of the 468 bent points takes the closest point on the model's surface (the ``face``
   region's triangles where the model tags one), kept as (triangle, barycentric coordinates).

:func:`load_or_build_mesh_landmarks` caches the result per model geometry (content hash) in the
FaceCraft cache folder.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic_file import write_atomic
from ..errors import InvalidInputError
from .default_model import default_cache_dir
from .mesh import read_obj_vertices
from .morphable_model import MorphableModel
from .surface import closest_points_on_mesh, model_content_hash

__all__ = ["ANCHOR_PAIRS", "MeshLandmarks", "canonical_mesh_path", "canonical_mesh_vertices",
           "build_mesh_landmarks", "load_or_build_mesh_landmarks"]

#: (canonical mesh vertex, iBUG-68 index) pairs that mean the same point on every face.
ANCHOR_PAIRS: tuple[tuple[int, int], ...] = (
    (33, 36), (133, 39), (362, 42), (263, 45),  # eye corners
    (4, 30), (2, 33), (168, 27),                # nose tip, subnasale, nasion
    (61, 48), (291, 54), (0, 51), (17, 57), (13, 62), (14, 66),  # mouth
    (152, 8),                                   # chin
)

_CACHE_VERSION = 1


def canonical_mesh_path() -> Path:
    """The vendored canonical face mesh (OBJ, centimetres)."""
    return Path(__file__).resolve().parents[1] / "data" / "mediapipe-mesh" / \
        "canonical_face_model.obj"


def canonical_mesh_vertices() -> np.ndarray:
    """(468, 3) float64 canonical mesh vertices in metres (+Y up, looking down +Z)."""
    v = read_obj_vertices(canonical_mesh_path())
    if v.shape != (468, 3):
        raise InvalidInputError(f"the canonical mesh has {v.shape} vertices, expected 468")
    return np.asarray(v, np.float64) * 0.01


@dataclass(frozen=True, eq=False)
class MeshLandmarks:
    """Where the 468 mesh points sit on one face model.

    Attributes:
        faces: (468,) int64 triangle of each point.
        bary: (468, 3) float64 barycentric coordinates in it.
        distance: (468,) float64 metres from the bent canonical point to the surface (large
            values flag points the model does not cover well).
        model_hash: the face model geometry's content hash.
    """

    faces: np.ndarray
    bary: np.ndarray
    distance: np.ndarray
    model_hash: str

    def points(self, verts: np.ndarray, triangles: np.ndarray) -> np.ndarray:
        """The 468 points on a shape of the model.

        Args:
            verts: (V, 3) or (B, V, 3) vertices. triangles: (F, 3) the model's triangles.

        Returns:
            (468, 3) or (B, 468, 3), same units as ``verts``.
        """
        corners = np.asarray(verts)[..., np.asarray(triangles)[self.faces], :]  # (...,468,3,3)
        return np.einsum("nc,...ncd->...nd", self.bary, corners)


def _similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Umeyama similarity (no reflection) mapping src (N, 3) onto dst."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(d0.T @ s0 / len(src))
    d = np.eye(3)
    if np.linalg.det(u @ vt) < 0:
        d[2, 2] = -1
    rot = u @ d @ vt
    scale = float(np.trace(np.diag(sig) @ d) / ((s0 ** 2).sum() / len(src)))
    return scale, rot, mu_d - scale * rot @ mu_s


def build_mesh_landmarks(model: MorphableModel) -> MeshLandmarks:
    """Place the 468 canonical mesh points on a face model's surface (see the module doc)."""
    from scipy.interpolate import RBFInterpolator

    mean = np.asarray(model.mean_shape, np.float64)
    lm68 = np.asarray(model.landmarks(mean), np.float64)
    can = canonical_mesh_vertices()
    src = can[[a for a, _ in ANCHOR_PAIRS]]
    dst = lm68[[b for _, b in ANCHOR_PAIRS]]
    s, rot, t = _similarity(src, dst)
    placed = s * can @ rot.T + t
    anchors = placed[[a for a, _ in ANCHOR_PAIRS]]
    warp = RBFInterpolator(anchors, dst - anchors, kernel="thin_plate_spline")
    bent = placed + warp(placed)
    tris = np.asarray(model.triangles, np.int64)
    keep = np.arange(len(tris))
    if "face" in model.regions:
        face = np.zeros(len(mean), bool)
        face[np.asarray(model.regions["face"])] = True
        inside = face[tris].all(axis=1)
        if inside.sum() >= 100:
            keep = np.nonzero(inside)[0]
    tri, bary, dist = closest_points_on_mesh(bent, mean, tris[keep])
    return MeshLandmarks(keep[tri], bary, dist, model_content_hash(model))


def load_or_build_mesh_landmarks(model: MorphableModel, cache_dir: str | Path | None = None
                                 ) -> MeshLandmarks:
    """:func:`build_mesh_landmarks`, cached in ``<cache>/mesh468/<model hash>.npz``."""
    key = model_content_hash(model)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "mesh468"
    path = folder / f"{key[:24]}-v{_CACHE_VERSION}.npz"
    if path.is_file():
        try:
            with np.load(path) as z:
                meta = json.loads(str(z["meta"]))
                if meta.get("model_hash") == key:
                    return MeshLandmarks(z["faces"], z["bary"], z["distance"], key)
        except (OSError, ValueError, KeyError):
            pass  # unreadable cache: rebuild
    out = build_mesh_landmarks(model)
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, faces=out.faces, bary=out.bary, distance=out.distance,
             meta=json.dumps({"model_hash": key, "version": _CACHE_VERSION}))
    write_atomic(path, buf.getvalue())
    return out
