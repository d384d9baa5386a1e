"""Triangle-mesh helpers shared by importers, the face model and the renderer.

Conventions: vertices are ``(V, 3)`` float32 (batched ``(B, V, 3)``), triangles ``(F, 3)``
int32/int64 vertex indices, counter-clockwise seen from outside (the face's normal points out
of the head). All functions are vectorized over vertices and faces.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ModelFormatError

__all__ = [
    "ObjMesh",
    "read_obj",
    "read_obj_vertices",
    "triangulate",
    "vertex_normals",
    "vertex_normals_np",
    "vertex_adjacency",
]


@dataclass(frozen=True)
class ObjMesh:
    """A Wavefront OBJ as read by :func:`read_obj`, polygons already split into triangles.

    Attributes:
        vertices: (V, 3) float32, in the file's units.
        triangles: (F, 3) int32 vertex indices (0-based).
        uvs: (U, 2) float32 texture coordinates, or an empty (0, 2) array.
        uv_triangles: (F, 3) int32 indices into ``uvs`` per triangle corner, or (0, 3).
        triangle_groups: (F,) int32 index into ``group_names`` (the ``usemtl`` in force).
        group_names: material names in order of first use; ``""`` before any ``usemtl``.
        polygon_of_triangle: (F,) int32 index of the source polygon of each triangle.
    """

    vertices: np.ndarray
    triangles: np.ndarray
    uvs: np.ndarray
    uv_triangles: np.ndarray
    triangle_groups: np.ndarray
    group_names: tuple[str, ...]
    polygon_of_triangle: np.ndarray


def triangulate(polygons: list[list[int]] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split polygons into triangles by fanning from each polygon's first corner.

    A quad ``(a, b, c, d)`` becomes ``(a, b, c)`` and ``(a, c, d)``, keeping its winding.

    Args:
        polygons: (P, n) integer array, or a list of index lists of mixed lengths (n >= 3).

    Returns:
        ``(triangles, source)``: (F, 3) int32 indices and (F,) int32 polygon index of each.
    """
    if isinstance(polygons, np.ndarray):
        if polygons.ndim != 2 or polygons.shape[1] < 3:
            raise ValueError(f"expected polygons (P, n>=3), got {polygons.shape}")
        groups = {polygons.shape[1]: (np.arange(len(polygons)), polygons)}
    else:
        lengths = np.fromiter((len(p) for p in polygons), dtype=np.int64, count=len(polygons))
        if len(lengths) and lengths.min() < 3:
            raise ValueError("every polygon needs at least 3 corners")
        groups = {}
        for n in np.unique(lengths):
            idx = np.flatnonzero(lengths == n)
            groups[int(n)] = (idx, np.array([polygons[i] for i in idx], dtype=np.int64))
    tris, src = [], []
    for n, (idx, poly) in groups.items():
        for k in range(1, n - 1):  # fan triangles: a few per polygon size, not per polygon
            tris.append(np.stack([poly[:, 0], poly[:, k], poly[:, k + 1]], axis=1))
            src.append(idx)
    if not tris:
        return np.zeros((0, 3), np.int32), np.zeros((0,), np.int32)
    tri = np.concatenate(tris)
    s = np.concatenate(src)
    order = np.argsort(s, kind="stable")  # keep triangles of one polygon together, in order
    return tri[order].astype(np.int32), s[order].astype(np.int32)


def read_obj_vertices(path: str | Path) -> np.ndarray:
    """Read only the ``v`` lines of an OBJ file, fast (no faces, no UVs).

    Returns:
        (V, 3) float32 positions in the file's units.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ModelFormatError(f"cannot read {path}: {e.strerror or e}") from None
    lines = [ln[2:] for ln in data.split(b"\n") if ln.startswith(b"v ")]
    if not lines:
        raise ModelFormatError(f"{path} has no vertices ('v' lines)")
    return _parse_xyz(lines, path)


def _parse_xyz(lines: list, path: Path) -> np.ndarray:
    """(n, 3) float32 from the text after ``v `` of n lines (extra values such as colours are
    ignored)."""
    try:
        tokens = (b" " if isinstance(lines[0], bytes) else " ").join(lines).split()
        if len(tokens) == 3 * len(lines):  # the common case: exactly x y z on every line
            return np.array(tokens, dtype=np.float64).reshape(-1, 3).astype(np.float32)
        rows = [ln.split()[:3] for ln in lines]
        if any(len(r) < 3 for r in rows):
            raise ValueError
        return np.array(rows, dtype=np.float64).astype(np.float32)
    except ValueError:
        raise ModelFormatError(f"{path}: malformed 'v' lines") from None


def read_obj(path: str | Path) -> ObjMesh:
    """Read a Wavefront OBJ with positions, UVs, polygons and ``usemtl`` groups.

    Polygons are triangulated (see :func:`triangulate`); normals in the file are ignored.
    Vertex colours after the position (``v x y z r g b``) are ignored.
    """
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        raise ModelFormatError(f"cannot read {path}: {e.strerror or e}") from None
    verts: list[str] = []
    uvs: list[str] = []
    faces_v: list[list[int]] = []
    faces_t: list[list[int]] = []
    face_group: list[int] = []
    groups: list[str] = []
    current = -1
    for line in text.splitlines():
        if line.startswith("v "):
            verts.append(line[2:])
        elif line.startswith("vt "):
            uvs.append(line[3:])
        elif line.startswith("f "):
            corners = line[2:].split()
            vi, ti = [], []
            for c in corners:
                parts = c.split("/")
                vi.append(int(parts[0]))
                if len(parts) > 1 and parts[1]:
                    ti.append(int(parts[1]))
            faces_v.append(vi)
            faces_t.append(ti)
            if current < 0:
                groups.append("")
                current = 0
            face_group.append(current)
        elif line.startswith("usemtl"):
            name = line[6:].strip()
            if name in groups:
                current = groups.index(name)
            else:
                groups.append(name)
                current = len(groups) - 1
    if not verts:
        raise ModelFormatError(f"{path} has no vertices")
    if not faces_v:
        raise ModelFormatError(f"{path} has no faces")
    v = _parse_xyz(verts, path)
    nv = len(v)
    tri_src_lists = [[i - 1 if i > 0 else nv + i for i in f] for f in faces_v]
    tris, src = triangulate(tri_src_lists)
    if tris.size and (tris.min() < 0 or tris.max() >= nv):
        raise ModelFormatError(f"{path}: a face refers to a vertex that does not exist")
    has_uv = bool(uvs) and all(len(t) == len(f) for t, f in zip(faces_t, faces_v, strict=True))
    if has_uv:
        uv = np.array(" ".join(uvs).split(), dtype=np.float64).reshape(len(uvs), -1)[:, :2]
        nt = len(uv)
        uv_tris, _ = triangulate([[i - 1 if i > 0 else nt + i for i in t] for t in faces_t])
    else:
        uv = np.zeros((0, 2))
        uv_tris = np.zeros((0, 3), np.int32)
    return ObjMesh(
        vertices=v,
        triangles=tris,
        uvs=uv.astype(np.float32),
        uv_triangles=uv_tris,
        triangle_groups=np.asarray(face_group, np.int32)[src],
        group_names=tuple(groups),
        polygon_of_triangle=src,
    )


class _FaceSumToVertices(torch.autograd.Function):
    """out[b, v] = sum of face_vals[b, f] over the corners (f, k) with triangles[f, k] == v.

    ``torch.bincount`` does the sum (several times faster than ``index_add`` on CPU); the
    backward pass is the matching gather.
    """

    @staticmethod
    def forward(ctx, face_vals: torch.Tensor, triangles: torch.Tensor,
                num_vertices: int) -> torch.Tensor:
        b, f, c = face_vals.shape
        ctx.save_for_backward(triangles)
        offs = (torch.arange(b, device=face_vals.device) * num_vertices)[:, None]
        idx = (triangles.T.reshape(1, -1) + offs).reshape(-1)  # (B * 3F,) corner -> vertex
        vals = face_vals.repeat(1, 3, 1).reshape(-1, c)  # (B * 3F, C), corner k's face value
        out = torch.stack([torch.bincount(idx, weights=vals[:, j], minlength=b * num_vertices)
                           for j in range(c)], dim=-1)
        return out.view(b, num_vertices, c).to(face_vals.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (triangles,) = ctx.saved_tensors
        g = grad_out[:, triangles]  # (B, F, 3 corners, C)
        return g.sum(dim=2), None, None


def vertex_normals(verts: torch.Tensor, triangles: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals, batched and differentiable.

    Args:
        verts: (B, V, 3) or (V, 3) float tensor.
        triangles: (F, 3) long tensor, counter-clockwise seen from outside.

    Returns:
        Unit normals with the shape of ``verts``; zero-area / isolated vertices get (0, 0, 0).
    """
    squeeze = verts.dim() == 2
    v = verts[None] if squeeze else verts
    tri = triangles.long()
    a, b, c = v[:, tri[:, 0]], v[:, tri[:, 1]], v[:, tri[:, 2]]
    fn = torch.cross(b - a, c - a, dim=-1)  # length = 2 x area: area weighting for free
    n = _FaceSumToVertices.apply(fn, tri, v.shape[1])
    n = torch.nn.functional.normalize(n, dim=-1, eps=1e-12)
    return n[0] if squeeze else n


def vertex_normals_np(verts: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """NumPy twin of :func:`vertex_normals` for ``(V, 3)`` or ``(B, V, 3)`` arrays."""
    v = np.asarray(verts, dtype=np.float64)
    squeeze = v.ndim == 2
    if squeeze:
        v = v[None]
    tri = np.asarray(triangles, dtype=np.int64)
    a, b, c = v[:, tri[:, 0]], v[:, tri[:, 1]], v[:, tri[:, 2]]
    fn = np.cross(b - a, c - a)
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, (slice(None), tri[:, k]), fn)
    length = np.linalg.norm(n, axis=-1, keepdims=True)
    n = np.where(length > 1e-20, n / np.maximum(length, 1e-20), 0.0).astype(np.float32)
    return n[0] if squeeze else n


def vertex_adjacency(triangles: np.ndarray, num_vertices: int):
    """Symmetric 0/1 vertex adjacency of a triangle mesh as a ``scipy.sparse.csr_matrix``.

    Returns:
        (V, V) float64 CSR matrix with ones where two vertices share an edge, zero diagonal.
    """
    import scipy.sparse as sp

    tri = np.asarray(triangles, dtype=np.int64)
    i = np.concatenate([tri[:, 0], tri[:, 1], tri[:, 2], tri[:, 1], tri[:, 2], tri[:, 0]])
    j = np.concatenate([tri[:, 1], tri[:, 2], tri[:, 0], tri[:, 0], tri[:, 1], tri[:, 2]])
    a = sp.coo_matrix((np.ones(len(i)), (i, j)), shape=(num_vertices, num_vertices)).tocsr()
    a.data[:] = 1.0
    a.setdiag(0)
    a.eliminate_zeros()
    return a
