"""The morphable face model: a mean mesh plus linear shape and albedo bases.

Decoding follows the paper (and Deng et al. 2019)::

    S = S_mean + sum_k c_i[k] I_base[k] + sum_k c_e[k] E_base[k]      (V, 3) metres
    T = T_mean + sum_k c_t[k] T_base[k]                                 (V, 3) linear RGB in [0, 1]

Coefficient scaling
-------------------
Every importer scales the bases so that the coefficients are *unit-variance*: where a source gives
PCA variances (BFM, Surrey) or standard deviations, each basis vector is multiplied by the mode's
standard deviation, so that ``c ~ N(0, I)`` samples the population and ``|c_k| <= 3`` is the usual
plausible range. Sources whose modes are already scaled that way (ICT-FaceKit, FLAME's shape
space) are stored as given. Expression modes are blendshape deltas (weights in [0, 1] for
ARKit-style rigs) or PCA modes scaled the same way (BFM's expression PCA); ``expression_kind``
says which.

Coordinate frame: right-handed, metres, +Y up, the face looking down +Z (towards a camera on the
+Z axis), +X on the subject's left. The origin is the source's own (near the centre of the head
for ICT-FaceKit and the starter, near the nose tip for the Surrey model): pose estimation
absorbs it in the translation.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import InvalidInputError
from ..photo.landmarks import NUM_LANDMARKS
from .mesh import vertex_normals, vertex_normals_np

__all__ = [
    "MorphableModel",
    "MorphableModelLayer",
    "REGION_NAMES",
    "ExpressionKind",
    "landmarks_from_vertices",
]

#: Region names with a fixed meaning. Importers map their source's groups onto these where they
#: can and may add others; a region is a sorted int32 array of vertex ids.
REGION_NAMES: dict[str, str] = {
    "face": "the whole facial surface a photo shows (forehead to chin, ear to ear)",
    "skin": "facial skin used by photometric losses: face minus eyes, brows, lips interior",
    "eye_left": "subject's left eyeball (sclera, iris)",
    "eye_right": "subject's right eyeball",
    "mouth_interior": "mouth socket, gums, tongue",
    "teeth": "teeth",
    "back_of_head": "scalp, back of head and neck",
    "eyelashes": "eyelash cards",
}

ExpressionKind = str  # "blendshape" (weights in [0, 1]) or "pca" (unit-variance coefficients)


@dataclass(frozen=True, eq=False)
class MorphableModel:
    """A linear 3D morphable face model, held as NumPy arrays.

    Attributes:
        name: short identifier, e.g. ``"ict-facekit"``.
        mean_shape: (V, 3) float32, metres.
        identity_basis: (Ki, V, 3) float32, metres per unit coefficient.
        identity_names: Ki names (human-readable slider names where the source has them).
        expression_basis: (Ke, V, 3) float32, metres per unit coefficient.
        expression_names: Ke names (ARKit names for ICT and the starter model).
        triangles: (F, 3) int32, counter-clockwise seen from outside; quads already split.
        uvs: (U, 2) float32 texture coordinates, origin bottom-left (OBJ convention), in [0, 1]
            or spread over UDIM tiles (u in [0, n), as ICT-FaceKit does); (0, 2) without a layout.
        uv_triangles: (F, 3) int32 indices into ``uvs`` for each triangle corner, or (0, 3).
        landmark_faces: (68,) int32 triangle holding each iBUG-68 landmark.
        landmark_bary: (68, 3) float32 barycentric coordinates within that triangle.
        regions: vertex-id sets by region name (see :data:`REGION_NAMES`), int32 sorted.
        albedo_mean: (V, 3) float32 linear RGB in [0, 1], or ``None`` (shape-only model).
        albedo_basis: (Ka, V, 3) float32 per unit coefficient, or ``None``.
        albedo_names: Ka names.
        expression_kind: ``"blendshape"`` or ``"pca"`` (see the module docstring).
        provenance: where the data came from (source, files, importer, options), JSON-able.
        licence: the source's licence text or SPDX id with a note; travels with the file.
        graph: the mesh graph for the GCNs (:class:`facecraft.sdk.models.mesh_graph.MeshGraph`),
            or ``None`` until :func:`facecraft.sdk.models.mesh_graph.build_mesh_graph` has run.
    """

    name: str
    mean_shape: np.ndarray
    identity_basis: np.ndarray
    identity_names: tuple[str, ...]
    expression_basis: np.ndarray
    expression_names: tuple[str, ...]
    triangles: np.ndarray
    uvs: np.ndarray
    uv_triangles: np.ndarray
    landmark_faces: np.ndarray
    landmark_bary: np.ndarray
    regions: dict[str, np.ndarray] = field(default_factory=dict)
    albedo_mean: np.ndarray | None = None
    albedo_basis: np.ndarray | None = None
    albedo_names: tuple[str, ...] = ()
    expression_kind: ExpressionKind = "blendshape"
    provenance: dict[str, Any] = field(default_factory=dict)
    licence: str = ""
    graph: Any = None

    def __post_init__(self) -> None:
        f32 = np.float32
        set_ = object.__setattr__
        set_(self, "mean_shape", np.ascontiguousarray(self.mean_shape, f32))
        set_(self, "identity_basis", np.ascontiguousarray(self.identity_basis, f32))
        set_(self, "expression_basis", np.ascontiguousarray(self.expression_basis, f32))
        set_(self, "triangles", np.ascontiguousarray(self.triangles, np.int32))
        set_(self, "uvs", np.ascontiguousarray(np.asarray(self.uvs).reshape(-1, 2), f32))
        set_(self, "uv_triangles",
             np.ascontiguousarray(np.asarray(self.uv_triangles).reshape(-1, 3), np.int32))
        set_(self, "landmark_faces", np.ascontiguousarray(self.landmark_faces, np.int32))
        set_(self, "landmark_bary", np.ascontiguousarray(self.landmark_bary, f32))
        set_(self, "identity_names", tuple(self.identity_names))
        set_(self, "expression_names", tuple(self.expression_names))
        set_(self, "albedo_names", tuple(self.albedo_names))
        set_(self, "regions", {k: np.unique(np.asarray(v, np.int32))
                               for k, v in self.regions.items()})
        if self.albedo_mean is not None:
            set_(self, "albedo_mean", np.ascontiguousarray(self.albedo_mean, f32))
        if self.albedo_basis is not None:
            set_(self, "albedo_basis", np.ascontiguousarray(self.albedo_basis, f32))
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise :class:`InvalidInputError` naming the first inconsistent array."""
        v = self.mean_shape.shape[0]

        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise InvalidInputError(f"morphable model {self.name!r}: {msg}")

        need(self.mean_shape.shape == (v, 3) and v >= 3,
             f"mean_shape must be (V, 3), got {self.mean_shape.shape}")
        for what, basis, names in (
            ("identity", self.identity_basis, self.identity_names),
            ("expression", self.expression_basis, self.expression_names),
        ):
            need(basis.ndim == 3 and basis.shape[1:] == (v, 3),
                 f"{what}_basis must be (K, {v}, 3), got {basis.shape}")
            need(len(names) == basis.shape[0],
                 f"{len(names)} {what}_names for {basis.shape[0]} {what} modes")
        need(self.triangles.ndim == 2 and self.triangles.shape[1] == 3,
             f"triangles must be (F, 3), got {self.triangles.shape}")
        need(len(self.triangles) > 0, "has no triangles")
        need(self.triangles.min() >= 0 and self.triangles.max() < v,
             f"triangles index vertices outside [0, {v})")
        if len(self.uv_triangles):
            need(self.uv_triangles.shape == self.triangles.shape,
                 f"uv_triangles {self.uv_triangles.shape} != triangles {self.triangles.shape}")
            need(self.uv_triangles.min() >= 0 and self.uv_triangles.max() < len(self.uvs),
                 "uv_triangles index UVs that do not exist")
        need(self.landmark_faces.shape == (NUM_LANDMARKS,),
             f"landmark_faces must be ({NUM_LANDMARKS},), got {self.landmark_faces.shape}")
        need(self.landmark_bary.shape == (NUM_LANDMARKS, 3),
             f"landmark_bary must be ({NUM_LANDMARKS}, 3), got {self.landmark_bary.shape}")
        need(self.landmark_faces.min() >= 0 and self.landmark_faces.max() < len(self.triangles),
             "landmark_faces index triangles that do not exist")
        for name, ids in self.regions.items():
            need(ids.ndim == 1 and (ids.size == 0 or (ids.min() >= 0 and ids.max() < v)),
                 f"region {name!r} indexes vertices outside [0, {v})")
        if self.albedo_mean is not None:
            need(self.albedo_mean.shape == (v, 3),
                 f"albedo_mean must be ({v}, 3), got {self.albedo_mean.shape}")
            basis = self.albedo_basis if self.albedo_basis is not None else np.zeros((0, v, 3))
            need(basis.ndim == 3 and basis.shape[1:] == (v, 3),
                 f"albedo_basis must be (K, {v}, 3), got {basis.shape}")
            need(len(self.albedo_names) == basis.shape[0],
                 f"{len(self.albedo_names)} albedo_names for {basis.shape[0]} albedo modes")
        else:
            need(self.albedo_basis is None, "albedo_basis given without albedo_mean")
        need(self.expression_kind in ("blendshape", "pca"),
             f"expression_kind must be 'blendshape' or 'pca', got {self.expression_kind!r}")
        if self.graph is not None:
            need(self.graph.levels[0].num_vertices == v,
                 f"graph is for {self.graph.levels[0].num_vertices} vertices, model has {v}")

    # ------------------------------------------------------------ properties
    @property
    def num_vertices(self) -> int:
        return self.mean_shape.shape[0]

    @property
    def num_identity(self) -> int:
        return self.identity_basis.shape[0]

    @property
    def num_expression(self) -> int:
        return self.expression_basis.shape[0]

    @property
    def num_albedo(self) -> int:
        return 0 if self.albedo_basis is None else self.albedo_basis.shape[0]

    @property
    def has_albedo(self) -> bool:
        return self.albedo_mean is not None

    @property
    def corner_uvs(self) -> np.ndarray:
        """(F, 3, 2) float32 UV of each triangle corner; (F, 3, 2) zeros without a UV layout."""
        if not len(self.uv_triangles):
            return np.zeros((len(self.triangles), 3, 2), np.float32)
        return self.uvs[self.uv_triangles]

    def submesh(self, vertex_ids: np.ndarray, name: str | None = None) -> MorphableModel:
        """The model restricted to some vertices (e.g. only the face region).

        Triangles with a corner outside the set are dropped, vertices are renumbered in
        ascending order of their old ids, UVs are compacted, regions intersected. Every
        landmark's triangle must survive. The mesh graph is dropped (rebuild it).

        Args:
            vertex_ids: (n,) integer ids of the vertices to keep.
            name: the new model's name (default: unchanged).
        """
        keep = np.unique(np.asarray(vertex_ids, np.int64))
        if keep.size == 0 or keep[0] < 0 or keep[-1] >= self.num_vertices:
            raise InvalidInputError(f"vertex_ids must be non-empty ids in [0, {self.num_vertices})")
        new_id = np.full(self.num_vertices, -1, np.int64)
        new_id[keep] = np.arange(len(keep))
        tri_new = new_id[self.triangles]
        kept_tri = np.flatnonzero((tri_new >= 0).all(axis=1))
        tri_map = np.full(len(self.triangles), -1, np.int64)
        tri_map[kept_tri] = np.arange(len(kept_tri))
        lm_faces = tri_map[self.landmark_faces]
        if (lm_faces < 0).any():
            lost = np.flatnonzero(lm_faces < 0).tolist()
            raise InvalidInputError(f"the vertex set drops the triangles of landmarks {lost}")
        uvs, uv_tris = self.uvs, self.uv_triangles
        if len(uv_tris):
            uv_tris = uv_tris[kept_tri]
            used, inverse = np.unique(uv_tris, return_inverse=True)
            uvs, uv_tris = uvs[used], inverse.reshape(-1, 3)
        regions = {k: new_id[v][new_id[v] >= 0] for k, v in self.regions.items()}
        regions = {k: v for k, v in regions.items() if v.size}
        provenance = dict(self.provenance, submesh_vertices=int(len(keep)))
        return dataclasses.replace(
            self,
            name=self.name if name is None else name,
            mean_shape=self.mean_shape[keep],
            identity_basis=self.identity_basis[:, keep],
            expression_basis=self.expression_basis[:, keep],
            triangles=tri_new[kept_tri],
            uvs=uvs,
            uv_triangles=uv_tris,
            landmark_faces=lm_faces,
            regions=regions,
            albedo_mean=None if self.albedo_mean is None else self.albedo_mean[keep],
            albedo_basis=None if self.albedo_basis is None else self.albedo_basis[:, keep],
            provenance=provenance,
            graph=None,
        )

    def replace(self, **changes: Any) -> MorphableModel:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # ---------------------------------------------------------------- numpy
    def shape(self, identity: np.ndarray | None = None,
              expression: np.ndarray | None = None) -> np.ndarray:
        """Decode vertex positions (NumPy).

        Args:
            identity: (Ki,) or (B, Ki) coefficients (fewer than Ki: the rest are zero); None = 0.
            expression: (Ke,) or (B, Ke) coefficients, likewise.

        Returns:
            (V, 3) float32 metres, or (B, V, 3) when either argument is batched.
        """
        batched = any(c is not None and np.ndim(c) == 2 for c in (identity, expression))
        out = np.broadcast_to(self.mean_shape, (1, *self.mean_shape.shape)).astype(np.float32)
        for name, c, basis in (("identity", identity, self.identity_basis),
                               ("expression", expression, self.expression_basis)):
            if c is None:
                continue
            c2 = _coeffs_2d(name, np.asarray(c, np.float32), basis.shape[0])
            k = c2.shape[1]
            out = out + np.tensordot(c2, basis[:k], axes=(1, 0))
        return out if batched else out[0]

    def albedo(self, coeffs: np.ndarray | None = None) -> np.ndarray:
        """Decode per-vertex albedo (NumPy): (V, 3) or (B, V, 3) linear RGB, not clipped."""
        if self.albedo_mean is None:
            raise InvalidInputError(f"model {self.name!r} has no albedo model")
        if coeffs is None:
            return self.albedo_mean.copy()
        assert self.albedo_basis is not None
        c2 = _coeffs_2d("albedo", np.asarray(coeffs, np.float32), self.num_albedo)
        out = self.albedo_mean[None] + np.tensordot(c2, self.albedo_basis[: c2.shape[1]],
                                                    axes=(1, 0))
        return out if np.ndim(coeffs) == 2 else out[0]

    def landmarks(self, verts: np.ndarray) -> np.ndarray:
        """68 landmark positions from vertices (V, 3) or (B, V, 3) -> (68, 3) or (B, 68, 3)."""
        corners = np.asarray(verts)[..., self.triangles[self.landmark_faces], :]  # (..,68,3,3)
        return np.einsum("...lcd,lc->...ld", corners, self.landmark_bary).astype(np.float32)

    def normals(self, verts: np.ndarray | None = None) -> np.ndarray:
        """Unit vertex normals of ``verts`` (default: the mean shape), (V, 3) or (B, V, 3)."""
        return vertex_normals_np(self.mean_shape if verts is None else verts, self.triangles)

    def landmark_vertices(self) -> np.ndarray:
        """(68,) int32: the vertex nearest each landmark (its largest barycentric weight)."""
        corner = np.argmax(self.landmark_bary, axis=1)
        return self.triangles[self.landmark_faces, corner].astype(np.int32)

    # ---------------------------------------------------------------- torch
    def to_torch(self, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32) -> MorphableModelLayer:
        """An ``nn.Module`` that decodes batches of coefficients, differentiably."""
        return MorphableModelLayer(self).to(device=device, dtype=dtype)

    def summary(self) -> dict[str, Any]:
        """A JSON-able overview (what ``facecraft models info`` prints)."""
        lo, hi = self.mean_shape.min(0), self.mean_shape.max(0)
        return {
            "name": self.name,
            "vertices": self.num_vertices,
            "triangles": int(len(self.triangles)),
            "identity_modes": self.num_identity,
            "expression_modes": self.num_expression,
            "expression_kind": self.expression_kind,
            "albedo_modes": self.num_albedo if self.has_albedo else None,
            "uvs": int(len(self.uvs)),
            "landmarks": NUM_LANDMARKS,
            "regions": {k: int(len(v)) for k, v in sorted(self.regions.items())},
            "extent_m": [round(float(x), 4) for x in (hi - lo)],
            "graph_levels": (None if self.graph is None
                             else [lv.num_vertices for lv in self.graph.levels]),
        }


def landmarks_from_vertices(vertex_ids: np.ndarray,
                            triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Express landmarks given as vertex ids in the (triangle, barycentric) form.

    Args:
        vertex_ids: (L,) integer vertex index per landmark.
        triangles: (F, 3) mesh triangles.

    Returns:
        ``(faces, bary)``: (L,) int32 a triangle using each vertex, and (L, 3) float32
        one-hot barycentric coordinates selecting that vertex.
    """
    vid = np.asarray(vertex_ids, np.int64).reshape(-1)
    tri = np.asarray(triangles, np.int64)
    hit = tri[None, :, :] == vid[:, None, None]  # (L, F, 3)
    any_hit = hit.any(axis=2)
    missing = np.flatnonzero(~any_hit.any(axis=1))
    if missing.size:
        raise InvalidInputError(
            f"landmark vertices {vid[missing].tolist()} belong to no triangle")
    faces = any_hit.argmax(axis=1)
    bary = hit[np.arange(len(vid)), faces].astype(np.float32)
    return faces.astype(np.int32), bary


def _coeffs_2d(name: str, c: np.ndarray, k_max: int) -> np.ndarray:
    if c.ndim == 1:
        c = c[None]
    if c.ndim != 2:
        raise InvalidInputError(f"{name} coefficients must be (K,) or (B, K), got {c.shape}")
    if c.shape[1] > k_max:
        raise InvalidInputError(f"{c.shape[1]} {name} coefficients for a model with {k_max}")
    return c


class MorphableModelLayer(nn.Module):
    """Batched, differentiable decoding of a :class:`MorphableModel` in torch.

    Bases are registered buffers (``.to()`` moves them); the module has no parameters.
    """

    def __init__(self, model: MorphableModel) -> None:
        super().__init__()
        self.num_identity = model.num_identity
        self.num_expression = model.num_expression
        self.num_albedo = model.num_albedo
        v = model.num_vertices
        self.register_buffer("mean_shape", torch.from_numpy(model.mean_shape.reshape(-1)))
        self.register_buffer("identity_basis",
                             torch.from_numpy(model.identity_basis.reshape(-1, 3 * v)))
        self.register_buffer("expression_basis",
                             torch.from_numpy(model.expression_basis.reshape(-1, 3 * v)))
        self.register_buffer("triangles", torch.from_numpy(model.triangles.astype(np.int64)))
        self.register_buffer("landmark_corners", torch.from_numpy(
            model.triangles[model.landmark_faces].astype(np.int64)))
        self.register_buffer("landmark_bary", torch.from_numpy(model.landmark_bary))
        if model.albedo_mean is not None:
            basis = (model.albedo_basis if model.albedo_basis is not None
                     else np.zeros((0, v, 3), np.float32))
            self.register_buffer("albedo_mean", torch.from_numpy(model.albedo_mean.reshape(-1)))
            self.register_buffer("albedo_basis", torch.from_numpy(basis.reshape(-1, 3 * v)))
        else:
            self.albedo_mean = None
            self.albedo_basis = None

    @property
    def num_vertices(self) -> int:
        return self.mean_shape.shape[0] // 3

    def forward(self, identity: torch.Tensor | None = None,
                expression: torch.Tensor | None = None) -> torch.Tensor:
        """S = S_mean + c_i I_base + c_e E_base.

        Args:
            identity: (B, Ki') with Ki' <= Ki (missing trailing modes are zero), or None.
            expression: (B, Ke') likewise, or None.

        Returns:
            verts: (B, V, 3) float, metres (B = 1 when both are None).
        """
        b = next((c.shape[0] for c in (identity, expression) if c is not None), 1)
        out = self.mean_shape.expand(b, -1)
        for name, c, basis in (("identity", identity, self.identity_basis),
                               ("expression", expression, self.expression_basis)):
            if c is None:
                continue
            if c.dim() != 2 or c.shape[0] != b or c.shape[1] > basis.shape[0]:
                raise InvalidInputError(
                    f"{name} must be (B={b}, K<={basis.shape[0]}), got {tuple(c.shape)}")
            out = out + c.to(basis.dtype) @ basis[: c.shape[1]]
        return out.reshape(b, -1, 3)

    def albedo(self, coeffs: torch.Tensor | None = None, batch: int = 1) -> torch.Tensor:
        """T = T_mean + c_t T_base: (B, V, 3) linear RGB (not clipped)."""
        if self.albedo_mean is None:
            raise InvalidInputError("this model has no albedo model")
        if coeffs is None:
            return self.albedo_mean.expand(batch, -1).reshape(batch, -1, 3)
        if coeffs.dim() != 2 or coeffs.shape[1] > self.albedo_basis.shape[0]:
            raise InvalidInputError(
                f"albedo coeffs must be (B, K<={self.albedo_basis.shape[0]}), "
                f"got {tuple(coeffs.shape)}")
        out = self.albedo_mean + coeffs.to(self.albedo_basis.dtype) @ self.albedo_basis[
            : coeffs.shape[1]]
        return out.reshape(coeffs.shape[0], -1, 3)

    def landmarks(self, verts: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) -> (B, 68, 3) landmark positions (barycentric, differentiable)."""
        corners = verts[:, self.landmark_corners]  # (B, 68, 3, 3)
        return (corners * self.landmark_bary[None, :, :, None]).sum(dim=2)

    def normals(self, verts: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) -> (B, V, 3) unit vertex normals."""
        return vertex_normals(verts, self.triangles)
