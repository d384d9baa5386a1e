"""The mesh graph of the graph-convolutional networks: Laplacians and a COMA-style hierarchy.

The texture and shape GCNs (Lin et al., CVPR 2020, following COMA, Ranjan et al., ECCV 2018) run
Chebyshev spectral convolutions (K = 6) on the mesh graph, between levels of a mesh hierarchy:

* each level holds the *rescaled* normalized graph Laplacian ``2 L / lambda_max - I`` with
  ``L = I - D^-1/2 A D^-1/2`` (``A`` the 0/1 edge adjacency), whose eigenvalues lie in
  ``[-1, 1]`` as the Chebyshev recurrence needs;
* level ``l + 1`` is level ``l`` simplified by quadric edge collapse (the maintained
  ``fast_simplification`` library) to about ``V_l / factor`` vertices;
* ``down[l]`` (``V_{l+1} x V_l``) maps a per-vertex signal to the coarser level: each coarse vertex
  takes the barycentric interpolation at its closest point on the fine mesh; ``up[l]``
  (``V_l x V_{l+1}``) maps back: each fine vertex takes the barycentric interpolation at its
  closest point on the coarse mesh. Both are sparse with at most 3 non-negative entries a row,
  summing to 1.

Every matrix is a canonical ``scipy.sparse.csr_matrix`` (sorted indices, no duplicates, no
explicit zeros) with float32 data and int32 indices, so :func:`graph_to_tensors` and
:func:`graph_from_tensors` round-trip exactly. A signal ``x`` of shape ``(V_l, C)`` goes down with
``down[l] @ x`` and up with ``up[l] @ y``; in PyTorch, convert once with
``torch.sparse_csr_tensor(*map(torch.from_numpy, (m.indptr, m.indices, m.data)), m.shape)``.

Meshes may have several connected components (ICT-FaceKit's eyeballs, teeth, lashes) and
unreferenced vertices: an isolated vertex gets a zero row and column in ``L``; only referenced
vertices are simplified. A small component may vanish at a coarse level; its fine vertices then
go up from the nearest coarse surface.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import InvalidInputError, ModelFileError
from .mesh import vertex_adjacency

__all__ = [
    "GraphLevel",
    "MeshGraph",
    "rescaled_laplacian",
    "build_mesh_graph",
    "graph_to_tensors",
    "graph_from_tensors",
]

#: A level may not have fewer vertices than this; below it the graph is too small to convolve.
MIN_LEVEL_VERTICES = 8
_FORMAT = "facecraft.mesh_graph"
_FORMAT_VERSION = 1
_PREFIX = "graph/"


# ----------------------------------------------------------------------------------- dataclasses
@dataclass(frozen=True, eq=False)
class GraphLevel:
    """One level of the mesh hierarchy.

    Attributes:
        vertices: (V_l, 3) float32 positions of this level's mesh, in the input's units (metres
            for FaceCraft models).
        triangles: (F_l, 3) int32 vertex indices into ``vertices``.
        laplacian: (V_l, V_l) float32 canonical CSR, the rescaled Laplacian
            ``2 L / lambda_max - I`` with ``L = I - D^-1/2 A D^-1/2``; an isolated vertex has a
            zero row and column in ``L`` (so ``-1`` on the diagonal here). Eigenvalues in [-1, 1].
        lambda_max: largest eigenvalue of ``L`` before rescaling, in (0, 2].
    """

    vertices: np.ndarray
    triangles: np.ndarray
    laplacian: sp.csr_matrix
    lambda_max: float

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "vertices", np.ascontiguousarray(self.vertices, np.float32))
        set_(self, "triangles", np.ascontiguousarray(self.triangles, np.int32))
        set_(self, "lambda_max", float(self.lambda_max))
        v = self.vertices.shape[0]
        if self.vertices.ndim != 2 or self.vertices.shape[1] != 3:
            raise InvalidInputError(f"expected vertices (V, 3), got {self.vertices.shape}")
        if self.triangles.ndim != 2 or self.triangles.shape[1] != 3:
            raise InvalidInputError(f"expected triangles (F, 3), got {self.triangles.shape}")
        if self.triangles.size and (self.triangles.min() < 0 or self.triangles.max() >= v):
            raise InvalidInputError(f"triangles index vertices outside [0, {v})")
        if not sp.issparse(self.laplacian) or self.laplacian.format != "csr":
            raise InvalidInputError(
                f"laplacian must be a scipy.sparse CSR matrix, got {type(self.laplacian)}")
        if self.laplacian.shape != (v, v):
            raise InvalidInputError(f"laplacian must be ({v}, {v}), got {self.laplacian.shape}")
        if not 0.0 < self.lambda_max <= 2.0:
            raise InvalidInputError(f"lambda_max must lie in (0, 2], got {self.lambda_max}")

    @property
    def num_vertices(self) -> int:
        """V_l, the number of vertices of this level."""
        return self.vertices.shape[0]


@dataclass(frozen=True, eq=False)
class MeshGraph:
    """The mesh hierarchy of the GCNs: per-level Laplacians plus down- and up-sampling maps.

    Attributes:
        levels: ``len(factors) + 1`` levels; ``levels[0]`` is the full mesh.
        down: ``down[i]`` (V_{i+1}, V_i) float32 CSR, rows non-negative, <= 3 non-zeros, sum 1.
        up: ``up[i]`` (V_i, V_{i+1}) float32 CSR, rows non-negative, <= 3 non-zeros, sum 1
            (barycentric coordinates of each fine vertex's closest point on the coarse mesh).
        factors: the requested down-sampling factor of each step, e.g. ``(4, 4, 4, 4)``; achieved
            sizes differ a little, see :attr:`sizes`.
    """

    levels: tuple[GraphLevel, ...]
    down: tuple[sp.csr_matrix, ...]
    up: tuple[sp.csr_matrix, ...]
    factors: tuple[int, ...]

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for name in ("levels", "down", "up", "factors"):
            set_(self, name, tuple(getattr(self, name)))
        set_(self, "factors", tuple(int(f) for f in self.factors))
        n = len(self.factors)
        if len(self.levels) != n + 1 or len(self.down) != n or len(self.up) != n:
            raise InvalidInputError(
                f"a graph with {n} factors needs {n + 1} levels, {n} down and {n} up matrices; "
                f"got {len(self.levels)}, {len(self.down)}, {len(self.up)}")
        sizes = self.sizes
        for i in range(n):
            for what, m, shape in (("down", self.down[i], (sizes[i + 1], sizes[i])),
                                   ("up", self.up[i], (sizes[i], sizes[i + 1]))):
                if not sp.issparse(m) or m.format != "csr":
                    raise InvalidInputError(f"{what}[{i}] must be a scipy.sparse CSR matrix")
                if m.shape != shape:
                    raise InvalidInputError(f"{what}[{i}] must be {shape}, got {m.shape}")

    @property
    def sizes(self) -> tuple[int, ...]:
        """Vertex count of each level, finest first."""
        return tuple(lv.num_vertices for lv in self.levels)

    @property
    def num_levels(self) -> int:
        return len(self.levels)


# ------------------------------------------------------------------------------------- helpers
def _canonical_csr(m: sp.spmatrix) -> sp.csr_matrix:
    """float32 data, int32 indices, sorted, duplicates summed, explicit zeros dropped."""
    m = sp.csr_matrix(m, dtype=np.float64)  # sum duplicates in float64, then cast
    m.sum_duplicates()
    m = sp.csr_matrix(
        (m.data.astype(np.float32), m.indices.astype(np.int32), m.indptr.astype(np.int32)),
        shape=m.shape,
    )
    m.eliminate_zeros()
    m.sort_indices()
    m.indices = m.indices.astype(np.int32, copy=False)
    m.indptr = m.indptr.astype(np.int32, copy=False)
    return m


def _check_mesh(vertices: Any, triangles: Any) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(vertices)
    t = np.asarray(triangles)
    if v.ndim != 2 or v.shape[1] != 3:
        raise InvalidInputError(f"expected vertices (V, 3), got {v.shape}")
    if t.ndim != 2 or t.shape[1] != 3:
        raise InvalidInputError(f"expected triangles (F, 3), got {t.shape}")
    if not np.issubdtype(t.dtype, np.integer):
        raise InvalidInputError(f"triangles must be integer vertex indices, got {t.dtype}")
    if len(t) == 0:
        raise InvalidInputError("the mesh has no triangles")
    if t.min() < 0 or t.max() >= len(v):
        raise InvalidInputError(f"triangles index vertices outside [0, {len(v)})")
    v = v.astype(np.float64)
    if not np.isfinite(v).all():
        raise InvalidInputError("vertices contain NaN or infinity")
    return v, t.astype(np.int64)


def _lambda_max(lap: sp.csr_matrix) -> float:
    """Largest eigenvalue of a normalized Laplacian (float64 CSR), clamped to <= 2."""
    n = lap.shape[0]
    if n <= 64:
        lam = float(np.linalg.eigvalsh(lap.toarray())[-1])
    else:
        from scipy.sparse.linalg import ArpackNoConvergence, eigsh

        v0 = np.random.default_rng(0).standard_normal(n)  # fixed start: reproducible graphs
        try:
            lam = float(eigsh(lap, k=1, which="LA", v0=v0, tol=1e-6,
                              ncv=min(n - 1, 40), maxiter=20 * n,
                              return_eigenvectors=False)[0])
        except ArpackNoConvergence:
            lam = 2.0  # a valid bound for every normalized Laplacian: spectrum still in [-1, 1]
    return min(lam, 2.0)


def _laplacian64(triangles: np.ndarray, num_vertices: int) -> sp.csr_matrix:
    a = vertex_adjacency(triangles, num_vertices)
    deg = np.asarray(a.sum(axis=1)).ravel()
    connected = deg > 0
    inv_sqrt = np.zeros(num_vertices)
    inv_sqrt[connected] = 1.0 / np.sqrt(deg[connected])
    d = sp.diags(inv_sqrt)
    return (sp.diags(connected.astype(np.float64)) - d @ a @ d).tocsr()


def rescaled_laplacian(triangles: np.ndarray, num_vertices: int) -> tuple[sp.csr_matrix, float]:
    """Rescaled normalized graph Laplacian of a triangle mesh, for Chebyshev convolution.

    Args:
        triangles: (F, 3) integer vertex indices, F >= 1.
        num_vertices: V; vertices no triangle uses are isolated (zero row and column of ``L``).

    Returns:
        ``(laplacian, lambda_max)``: (V, V) float32 canonical CSR ``2 L / lambda_max - I`` with
        ``L = I - D^-1/2 A D^-1/2``, eigenvalues in [-1, 1]; and ``lambda_max``, the largest
        eigenvalue of ``L`` (from ``scipy.sparse.linalg.eigsh``, clamped to <= 2; 2 where it
        does not converge, which keeps the spectrum in [-1, 1]).
    """
    t = np.asarray(triangles)
    if t.ndim != 2 or t.shape[1] != 3 or len(t) == 0:
        raise InvalidInputError(f"expected triangles (F, 3) with F >= 1, got {t.shape}")
    num_vertices = int(num_vertices)
    if t.min() < 0 or t.max() >= num_vertices:
        raise InvalidInputError(f"triangles index vertices outside [0, {num_vertices})")
    lap = _laplacian64(t.astype(np.int64), num_vertices)
    lam = _lambda_max(lap)
    if not lam > 1e-12:
        raise InvalidInputError("the mesh has no edges (all triangles degenerate)")
    rescaled = (2.0 / lam) * lap - sp.identity(num_vertices, format="csr")
    return _canonical_csr(rescaled), lam


def _closest_barycentric(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray
                         ) -> np.ndarray:
    """Barycentric coordinates of the closest point to ``p`` on triangle ``abc`` (Ericson 5.1.5).

    Args:
        p, a, b, c: (..., 3) float64.

    Returns:
        (..., 3) float64 weights of ``a, b, c``: non-negative, summing to 1.
    """
    def dot(x, y):
        return np.einsum("...i,...i->...", x, y)

    def div(num, den):
        return num / np.where(np.abs(den) > 1e-300, den, 1.0)

    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = dot(ab, ap), dot(ac, ap)
    bp = p - b
    d3, d4 = dot(ab, bp), dot(ac, bp)
    cp = p - c
    d5, d6 = dot(ab, cp), dot(ac, cp)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    zero, one = np.zeros_like(d1), np.ones_like(d1)
    v_ab = div(d1, d1 - d3)
    w_ac = div(d2, d2 - d6)
    w_bc = div(d4 - d3, (d4 - d3) + (d5 - d6))
    denom = va + vb + vc
    v_in, w_in = div(vb, denom), div(vc, denom)
    conds = [
        (d1 <= 0) & (d2 <= 0),                                # vertex a
        (d3 >= 0) & (d4 <= d3),                               # vertex b
        (vc <= 0) & (d1 >= 0) & (d3 <= 0),                    # edge ab
        (d6 >= 0) & (d5 <= d6),                               # vertex c
        (vb <= 0) & (d2 >= 0) & (d6 <= 0),                    # edge ac
        (va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0),      # edge bc
    ]
    bv = np.select(conds, [zero, one, v_ab, zero, zero, 1 - w_bc], v_in)
    bw = np.select(conds, [zero, zero, zero, one, w_ac, w_bc], w_in)
    bary = np.stack([1.0 - bv - bw, bv, bw], axis=-1)
    bary = np.clip(np.nan_to_num(bary, nan=0.0), 0.0, 1.0)
    s = bary.sum(axis=-1, keepdims=True)
    bary = np.where(s > 1e-12, bary / np.maximum(s, 1e-12), np.array([1.0, 0.0, 0.0]))
    return bary


def _nearest_over_pairs(points: np.ndarray, corners: np.ndarray, qi: np.ndarray,
                        ti: np.ndarray, *, chunk: int = 1 << 18
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closest triangle per query among candidate (query, triangle) pairs.

    Args:
        points: (Q, 3) float64 queries.
        corners: (F, 3, 3) float64 triangle corners.
        qi, ti: (P,) int64 query and triangle of each candidate pair; every query appears.

    Returns:
        ``(dist, tri, bary)``: (Q,) float64 distance to the closest point, (Q,) int64 its
        triangle, (Q, 3) float64 its barycentric coordinates.
    """
    d2 = np.empty(len(qi))
    bary = np.empty((len(qi), 3))
    for s in range(0, len(qi), chunk):  # bounded memory: a few chunks of pairs
        q, t = qi[s:s + chunk], ti[s:s + chunk]
        c = corners[t]
        b = _closest_barycentric(points[q], c[:, 0], c[:, 1], c[:, 2])
        d2[s:s + chunk] = ((np.einsum("pc,pcd->pd", b, c) - points[q]) ** 2).sum(-1)
        bary[s:s + chunk] = b
    order = np.lexsort((ti, d2, qi))  # per query: nearest first, ties to the lower triangle id
    first = order[np.flatnonzero(np.r_[True, qi[order][1:] != qi[order][:-1]])]
    return np.sqrt(d2[first]), ti[first], bary[first]


def _barycentric_map(points: np.ndarray, vertices: np.ndarray, triangles: np.ndarray
                     ) -> sp.csr_matrix:
    """Sparse map from a signal on ``vertices`` to ``points`` by closest-point interpolation.

    Exact closest point on the mesh, in two vectorized passes: the nearest of each point's 8
    nearest triangle centroids gives an upper bound ``d`` on its distance to the mesh; then
    every triangle whose centroid lies within ``d + R`` (``R`` its centroid-to-corner radius,
    taken per size class of triangles) is tested, which includes the closest one.

    Args:
        points: (Q, 3) float64 query positions.
        vertices: (V, 3) float64 target mesh positions.
        triangles: (F, 3) int64 target mesh triangles.

    Returns:
        (Q, V) float32 canonical CSR, rows non-negative with <= 3 non-zeros summing to 1.
    """
    from scipy.spatial import cKDTree

    nq = len(points)
    corners = vertices[triangles]  # (F, 3, 3)
    centroids = corners.mean(axis=1)
    radius = np.linalg.norm(corners - centroids[:, None], axis=-1).max(axis=1)
    k = min(8, len(triangles))
    _, cand = cKDTree(centroids).query(points, k=k)
    qi = [np.repeat(np.arange(nq), k)]
    ti = [np.asarray(cand, np.int64).reshape(-1)]
    bound, _, _ = _nearest_over_pairs(points, corners, qi[0], ti[0])
    # Size classes keep the search balls tight: the few large triangles get a large radius.
    edges = np.unique(np.quantile(radius, [0, 0.25, 0.5, 0.75, 0.9, 0.97, 0.99, 0.999, 1]))
    cls = np.searchsorted(edges[1:-1], radius, side="right")
    for c in np.unique(cls):
        members = np.flatnonzero(cls == c)
        r = bound + radius[members].max()
        found = cKDTree(centroids[members]).query_ball_point(
            points, r=r * (1 + 1e-9) + 1e-12, return_sorted=False)
        lengths = np.fromiter(map(len, found), np.int64, count=nq)
        flat = np.fromiter(itertools.chain.from_iterable(found), np.int64, count=lengths.sum())
        qi.append(np.repeat(np.arange(nq), lengths))
        ti.append(members[flat])
    _, tri, w = _nearest_over_pairs(points, corners, np.concatenate(qi), np.concatenate(ti))
    w[w < 1e-6] = 0.0  # snap near-vertex / near-edge points: fewer, cleaner non-zeros
    w /= w.sum(axis=1, keepdims=True)
    m = sp.coo_matrix((w.ravel(), (np.repeat(np.arange(nq), 3), triangles[tri].ravel())),
                      shape=(nq, len(vertices)))
    return _canonical_csr(m)


def _simplify(vertices: np.ndarray, triangles: np.ndarray, target_vertices: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """Quadric edge collapse of the referenced part of a mesh to about ``target_vertices``.

    ``fast_simplification`` aims at a triangle count; the count is corrected (at most three
    runs) by the achieved vertex count, so the result lands near the vertex target.

    Returns:
        ``(vertices, triangles)``: compact (every vertex referenced), no degenerate triangles.
    """
    import fast_simplification

    used, inv = np.unique(triangles, return_inverse=True)
    pts = np.ascontiguousarray(vertices[used], np.float64)
    tri = np.ascontiguousarray(inv.reshape(-1, 3), np.int32)
    n_faces, n_verts = len(tri), len(used)
    target_faces = n_faces * target_vertices / n_verts
    best = None
    for _ in range(3):
        count = int(np.clip(round(target_faces), 1, n_faces))
        p, f = fast_simplification.simplify(pts, tri, target_count=count)
        f = np.asarray(f, np.int64).reshape(-1, 3)
        f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])]
        keep, f_inv = np.unique(f, return_inverse=True)
        p, f = np.asarray(p, np.float64)[keep], f_inv.reshape(-1, 3)
        err = abs(len(p) - target_vertices) / target_vertices
        if best is None or err < best[0]:
            best = (err, p, f)
        if err < 0.02 or len(p) == 0:
            break
        target_faces *= target_vertices / len(p)
    return best[1], best[2]


# ---------------------------------------------------------------------------------------- build
def build_mesh_graph(vertices: np.ndarray, triangles: np.ndarray,
                     factors: tuple[int, ...] = (4, 4, 4, 4), *,
                     progress: bool = False) -> MeshGraph:
    """Build the GCN mesh hierarchy: simplify, sample maps and Laplacians for every level.

    Args:
        vertices: (V, 3) float positions (metres for FaceCraft models; any unit works).
        triangles: (F, 3) integer indices; several components and unreferenced vertices are fine.
        factors: down-sampling factor of each step (integers >= 2); level ``l + 1`` targets
            ``round(V_l' / factor)`` vertices where ``V_l'`` counts the referenced vertices.
        progress: show a ``tqdm`` bar over the levels (on stderr).

    Returns:
        A :class:`MeshGraph` with ``len(factors) + 1`` levels; ``levels[0]`` keeps the input
        vertices (as float32) and triangles unchanged.

    Raises:
        InvalidInputError: (a ``ValueError``) for malformed input, or when a level would have
            fewer than 8 vertices (use fewer or smaller factors).
    """
    v, t = _check_mesh(vertices, triangles)
    factors = tuple(factors)
    if not all(isinstance(f, int | np.integer) and f >= 2 for f in factors):
        raise InvalidInputError(f"factors must be integers >= 2, got {factors}")
    from tqdm.auto import tqdm

    bar = tqdm(total=len(factors) + 1, desc="mesh graph", unit="level", disable=not progress)
    try:
        lap, lam = rescaled_laplacian(t, len(v))
        levels = [GraphLevel(v, t, lap, lam)]
        bar.update(1)
        meshes = [(v, t)]
        down, up = [], []
        for i, f in enumerate(factors):
            fv, ft = meshes[-1]
            n_ref = len(np.unique(ft))
            target = int(round(n_ref / f))
            if target < MIN_LEVEL_VERTICES:
                raise InvalidInputError(
                    f"level {i + 1} would have {target} vertices ({n_ref} / {f}), fewer than "
                    f"{MIN_LEVEL_VERTICES}; use fewer or smaller factors than {factors}")
            cv, ct = _simplify(fv, ft, target)
            if len(cv) < MIN_LEVEL_VERTICES or len(ct) == 0:
                raise InvalidInputError(
                    f"simplifying level {i} ({n_ref} vertices) by {f} left {len(cv)} vertices, "
                    f"fewer than {MIN_LEVEL_VERTICES}; use fewer or smaller factors")
            down.append(_barycentric_map(cv, fv, ft))
            up.append(_barycentric_map(fv, cv, ct))
            lap, lam = rescaled_laplacian(ct, len(cv))
            levels.append(GraphLevel(cv, ct, lap, lam))
            meshes.append((cv, ct))
            bar.update(1)
            bar.set_postfix_str(f"V={len(cv)}")
    finally:
        bar.close()
    return MeshGraph(levels=tuple(levels), down=tuple(down), up=tuple(up),
                     factors=tuple(int(f) for f in factors))


# ----------------------------------------------------------------------------------- storage
def _put_csr(out: dict[str, np.ndarray], key: str, m: sp.csr_matrix) -> None:
    out[f"{key}/data"] = np.ascontiguousarray(m.data, np.float32)
    out[f"{key}/indices"] = np.ascontiguousarray(m.indices, np.int32)
    out[f"{key}/indptr"] = np.ascontiguousarray(m.indptr, np.int32)


def graph_to_tensors(graph: MeshGraph) -> tuple[dict[str, np.ndarray], dict]:
    """Flatten a graph into plain arrays plus JSON-able metadata (e.g. for a safetensors file).

    Array names (``l`` a level, ``i`` a step)::

        graph/level{l}/vertices            (V_l, 3) float32
        graph/level{l}/triangles           (F_l, 3) int32
        graph/level{l}/laplacian/data      (nnz,) float32     CSR parts; indices and indptr
        graph/level{l}/laplacian/indices   (nnz,) int32
        graph/level{l}/laplacian/indptr    (V_l + 1,) int32
        graph/down{i}/{data,indices,indptr}, graph/up{i}/{data,indices,indptr}

    Returns:
        ``(tensors, meta)``; ``meta`` holds the format name and version, ``factors``, and per
        level ``num_vertices``, ``num_triangles`` and ``lambda_max`` (exact as a JSON float).
    """
    tensors: dict[str, np.ndarray] = {}
    for l_, lv in enumerate(graph.levels):
        key = f"{_PREFIX}level{l_}"
        tensors[f"{key}/vertices"] = np.ascontiguousarray(lv.vertices, np.float32)
        tensors[f"{key}/triangles"] = np.ascontiguousarray(lv.triangles, np.int32)
        _put_csr(tensors, f"{key}/laplacian", lv.laplacian)
    for i, (d, u) in enumerate(zip(graph.down, graph.up, strict=True)):
        _put_csr(tensors, f"{_PREFIX}down{i}", d)
        _put_csr(tensors, f"{_PREFIX}up{i}", u)
    meta = {
        "format": _FORMAT,
        "version": _FORMAT_VERSION,
        "factors": list(graph.factors),
        "levels": [{"num_vertices": lv.num_vertices, "num_triangles": int(len(lv.triangles)),
                    "lambda_max": float(lv.lambda_max)} for lv in graph.levels],
    }
    return tensors, meta


def graph_from_tensors(tensors: dict[str, np.ndarray], meta: dict) -> MeshGraph:
    """Rebuild the :class:`MeshGraph` that :func:`graph_to_tensors` flattened (exact inverse).

    Args:
        tensors: the arrays by name (extra names are ignored); torch tensors are accepted too.
        meta: the metadata dict returned alongside them.

    Raises:
        ModelFileError: an array is missing or has a shape that does not fit ``meta``.
    """
    if meta.get("format") != _FORMAT or meta.get("version") != _FORMAT_VERSION:
        raise ModelFileError(
            f"mesh graph metadata is of format {meta.get('format')!r} version "
            f"{meta.get('version')!r}; expected {_FORMAT!r} version {_FORMAT_VERSION}")

    def get(name: str, dtype: type, shape: tuple[int, ...] | None = None) -> np.ndarray:
        if name not in tensors:
            raise ModelFileError(f"mesh graph array {name!r} is missing")
        x = tensors[name]
        x = np.asarray(x.numpy() if hasattr(x, "numpy") else x)
        if x.dtype != dtype:
            raise ModelFileError(f"mesh graph array {name!r} is {x.dtype}, expected {dtype}")
        if shape is not None and x.shape != shape:
            raise ModelFileError(f"mesh graph array {name!r} is {x.shape}, expected {shape}")
        return x

    def csr(key: str, shape: tuple[int, int]) -> sp.csr_matrix:
        data = get(f"{key}/data", np.float32)
        indices = get(f"{key}/indices", np.int32, data.shape)
        indptr = get(f"{key}/indptr", np.int32, (shape[0] + 1,))
        if indptr[-1] != len(data) or (len(indices) and indices.max() >= shape[1]):
            raise ModelFileError(f"mesh graph matrix {key!r} is corrupt")
        m = sp.csr_matrix((data.copy(), indices.copy(), indptr.copy()), shape=shape)
        m.indices = m.indices.astype(np.int32, copy=False)
        m.indptr = m.indptr.astype(np.int32, copy=False)
        return m

    try:
        info = meta["levels"]
        factors = tuple(int(f) for f in meta["factors"])
        sizes = [int(x["num_vertices"]) for x in info]
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"mesh graph metadata is incomplete: {e!r}") from None
    levels = []
    for l_, x in enumerate(info):
        key = f"{_PREFIX}level{l_}"
        n = sizes[l_]
        levels.append(GraphLevel(
            vertices=get(f"{key}/vertices", np.float32, (n, 3)).copy(),
            triangles=get(f"{key}/triangles", np.int32, (int(x["num_triangles"]), 3)).copy(),
            laplacian=csr(f"{key}/laplacian", (n, n)),
            lambda_max=float(x["lambda_max"]),
        ))
    down = tuple(csr(f"{_PREFIX}down{i}", (sizes[i + 1], sizes[i])) for i in range(len(factors)))
    up = tuple(csr(f"{_PREFIX}up{i}", (sizes[i], sizes[i + 1])) for i in range(len(factors)))
    try:
        return MeshGraph(levels=tuple(levels), down=down, up=up, factors=factors)
    except InvalidInputError as e:
        raise ModelFileError(f"mesh graph is inconsistent: {e}") from None

