"""Tests of facecraft.sdk.models.mesh_graph: Laplacians, COMA hierarchy, storage round trip."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from facecraft.sdk.errors import InvalidInputError, ModelFileError
from facecraft.sdk.models.mesh import read_obj
from facecraft.sdk.models.mesh_graph import (
    GraphLevel,
    MeshGraph,
    build_mesh_graph,
    graph_from_tensors,
    graph_to_tensors,
    rescaled_laplacian,
)

ASSETS = Path(__file__).resolve().parents[3].parent / "shared" / "assets"
ICT_TARBALL = ASSETS / "face-models" / "ict-facekit" / "FaceXModel.tar.xz"
ICT_NEUTRAL = "FaceXModel/generic_neutral_mesh.obj"


# ------------------------------------------------------------------------ synthetic meshes
def icosphere(subdivisions: int = 4, radius: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Unit icosphere: ``10 * 4**s + 2`` vertices (2562 for s = 4), CCW-outward triangles.

    Returns:
        (V, 3) float32 vertices and (F, 3) int32 triangles.
    """
    t = (1 + 5 ** 0.5) / 2
    v = np.array([[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t],
                  [0, -1, -t], [0, 1, -t], [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]],
                 np.float64)
    f = np.array([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9],
                  [5, 11, 4], [11, 10, 2], [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2],
                  [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10],
                  [8, 6, 7], [9, 8, 1]], np.int64)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    for _ in range(subdivisions):
        edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
        uniq, inv = np.unique(edges, axis=0, return_inverse=True)
        mid = v[uniq].mean(axis=1)
        mid /= np.linalg.norm(mid, axis=1, keepdims=True)
        m = len(v) + inv.reshape(3, -1)  # midpoint ids of edges 01, 12, 20 of every face
        a, b, c = f.T
        children = ([a, m[0], m[2]], [b, m[1], m[0]], [c, m[2], m[1]], [m[0], m[1], m[2]])
        f = np.concatenate([np.stack(x, 1) for x in children])
        v = np.concatenate([v, mid])
    return (v * radius).astype(np.float32), f.astype(np.int32)


def open_grid(n: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """A gently curved n x n height field over the unit square: an open surface with a border."""
    x, y = np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, n))
    v = np.stack([x.ravel(), y.ravel(), 0.1 * np.sin(3 * x.ravel()) * np.cos(2 * y.ravel())], 1)
    idx = np.arange(n * n).reshape(n, n)
    a, b = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel()
    c, d = idx[1:, 1:].ravel(), idx[1:, :-1].ravel()
    f = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    return v.astype(np.float32), f.astype(np.int32)


def two_components_and_a_stray() -> tuple[np.ndarray, np.ndarray]:
    """A sphere and a smaller shifted sphere, plus one vertex no triangle uses (the last)."""
    v1, f1 = icosphere(3)
    v2, f2 = icosphere(2, radius=0.3)
    v = np.concatenate([v1, v2 + np.float32([2.0, 0.0, 0.0]), [[0.0, 5.0, 0.0]]])
    f = np.concatenate([f1, f2 + len(v1)])
    return v.astype(np.float32), f.astype(np.int32)


def unscaled(level: GraphLevel) -> np.ndarray:
    """Dense float64 L = I - D^-1/2 A D^-1/2 recovered from the rescaled Laplacian."""
    n = level.num_vertices
    return (level.laplacian.toarray().astype(np.float64) + np.eye(n)) * level.lambda_max / 2


def assert_canonical_f32(m: sp.csr_matrix) -> None:
    assert m.format == "csr" and m.dtype == np.float32
    assert m.indices.dtype == np.int32 and m.indptr.dtype == np.int32
    assert m.has_canonical_format
    assert np.all(m.data != 0)


@pytest.fixture(scope="module")
def sphere():
    return icosphere(4)


@pytest.fixture(scope="module")
def sphere_graph(sphere):
    return build_mesh_graph(*sphere)


# ------------------------------------------------------------------------------ Laplacian
def test_icosphere_fixture_sizes():
    v, f = icosphere(4)
    assert v.shape == (2562, 3) and f.shape == (5120, 3)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-6)


def test_laplacian_symmetric_spectrum_in_unit_interval():
    v, f = icosphere(3)  # 642 vertices: eigsh path, dense eigvalsh still quick
    lap, lam = rescaled_laplacian(f, len(v))
    assert lap.shape == (642, 642)
    assert_canonical_f32(lap)
    assert abs(lap - lap.T).max() < 1e-7
    eig = np.linalg.eigvalsh(lap.toarray().astype(np.float64))
    assert eig.min() >= -1 - 1e-4 and eig.max() <= 1 + 1e-4
    assert eig.max() == pytest.approx(1.0, abs=1e-4)  # lambda_max is tight, not just a bound
    assert eig.min() == pytest.approx(-1.0, abs=1e-4)  # L's zero eigenvalue (one component)
    dense_l = np.linalg.eigvalsh(unscaled(GraphLevel(v, f, lap, lam)))
    assert lam == pytest.approx(dense_l.max(), abs=1e-5)
    assert 0 < lam <= 2


def test_unscaled_laplacian_entries():
    v, f = icosphere(2)
    lap, lam = rescaled_laplacian(f, len(v))
    L = unscaled(GraphLevel(v, f, lap, lam))
    a = (np.abs(L) > 1e-9) & ~np.eye(len(v), dtype=bool)
    deg = a.sum(1)
    assert set(np.unique(deg)) == {5, 6}  # 12 valence-5 vertices, the rest valence 6
    assert np.allclose(np.diag(L), 1.0, atol=1e-6)
    i, j = np.nonzero(a)
    assert np.allclose(L[i, j], -1 / np.sqrt(deg[i] * deg[j]), atol=1e-6)
    row = np.flatnonzero(deg == 6)[0]  # a valence-6 row: 1 on the diagonal, six times -1/6ish
    assert np.isclose(L[row].sum(), 1 - (1 / np.sqrt(deg[row] * deg[a[row]])).sum(), atol=1e-6)
    assert np.allclose(L @ np.sqrt(deg), 0, atol=1e-5)  # D^1/2 1 spans the null space


def test_isolated_vertex_has_zero_laplacian_row():
    f = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 1], [1, 3, 2]])  # a tetrahedron, vertex 4 unused
    lap, lam = rescaled_laplacian(f, 5)
    L = unscaled(GraphLevel(np.zeros((5, 3)), f, lap, lam))
    assert np.all(L[4] == 0) and np.all(L[:, 4] == 0)
    assert lap[4, 4] == -1 and lap[4].nnz == 1
    assert lam == pytest.approx(np.linalg.eigvalsh(L).max(), abs=1e-6)
    assert lam == pytest.approx(4 / 3, abs=1e-6)  # K4: eigenvalues 0, 4/3, 4/3, 4/3


@pytest.mark.parametrize("tris, n", [
    (np.zeros((0, 3), int), 4),
    (np.array([[0, 1, 2]]), 2),
    (np.array([[0, 1]]), 3),
])
def test_laplacian_rejects_bad_triangles(tris, n):
    with pytest.raises(ValueError):
        rescaled_laplacian(tris, n)


# ------------------------------------------------------------------------------ hierarchy
def test_level_sizes_follow_factors(sphere_graph):
    g = sphere_graph
    assert g.factors == (4, 4, 4, 4) and g.num_levels == 5
    assert g.sizes[0] == 2562
    for lvl, n in enumerate(g.sizes):
        assert n == pytest.approx(2562 / 4 ** lvl, rel=0.25), g.sizes
    for lv in g.levels:
        assert lv.vertices.dtype == np.float32 and lv.triangles.dtype == np.int32
        assert lv.triangles.max() < lv.num_vertices
        assert len(np.unique(lv.triangles)) == lv.num_vertices  # coarse levels are compact
        assert_canonical_f32(lv.laplacian)
        assert 0 < lv.lambda_max <= 2


def test_sampling_matrices_are_barycentric(sphere_graph):
    g = sphere_graph
    for i, (d, u) in enumerate(zip(g.down, g.up, strict=True)):
        fine, coarse = g.sizes[i], g.sizes[i + 1]
        assert d.shape == (coarse, fine) and u.shape == (fine, coarse)
        for m in (d, u):
            assert_canonical_f32(m)
            assert m.data.min() > 0
            assert np.allclose(np.asarray(m.sum(axis=1)).ravel(), 1.0, atol=1e-6)
            assert np.diff(m.indptr).max() <= 3 and np.diff(m.indptr).min() >= 1


def test_level0_keeps_the_input(sphere, sphere_graph):
    v, f = sphere
    assert np.array_equal(sphere_graph.levels[0].vertices, v)
    assert np.array_equal(sphere_graph.levels[0].triangles, f)


def test_down_up_preserves_smooth_signals_not_noise(sphere_graph):
    g = sphere_graph
    v = g.levels[0].vertices.astype(np.float64)
    d, u = g.down[0].astype(np.float64), g.up[0].astype(np.float64)

    def rel(x):
        return np.linalg.norm(u @ (d @ x) - x) / np.linalg.norm(x)

    smooth = np.sin(2 * v[:, 1]) + v[:, 2] ** 2
    noise = np.random.default_rng(0).standard_normal(len(v))
    assert rel(smooth) < 0.05
    assert rel(v) < 0.05  # the coordinates themselves
    assert rel(noise) > 0.5  # the same test fails on a signal the coarse level cannot hold
    # coarse vertices sit on (or very near) the fine surface they interpolate
    coarse = d @ v
    assert np.abs(np.linalg.norm(coarse, axis=1) - 1).max() < 0.02


def test_build_is_deterministic(sphere, sphere_graph):
    again = build_mesh_graph(*sphere)
    a, _ = graph_to_tensors(sphere_graph)
    b, _ = graph_to_tensors(again)
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_open_surface():
    v, f = open_grid(48)  # 2304 vertices with a border
    g = build_mesh_graph(v, f, (4, 4, 4))
    for lvl, n in enumerate(g.sizes):
        assert n == pytest.approx(len(v) / 4 ** lvl, rel=0.25), g.sizes
    for lv in g.levels[1:]:  # dense spectra of the coarse levels (<= ~600 vertices)
        eig = np.linalg.eigvalsh(lv.laplacian.toarray().astype(np.float64))
        assert eig.min() >= -1 - 1e-4 and eig.max() <= 1 + 1e-4
    x = np.sin(3 * v[:, 0]) + v[:, 1] ** 2
    y = g.up[0] @ (g.down[0] @ x)
    assert np.linalg.norm(y - x) / np.linalg.norm(x) < 0.05


def test_components_and_unreferenced_vertex():
    v, f = two_components_and_a_stray()
    g = build_mesh_graph(v, f, (4, 4), progress=True)
    stray = len(v) - 1
    lap0 = g.levels[0].laplacian
    assert lap0[stray].nnz == 1 and lap0[stray, stray] == -1
    assert g.sizes[0] == len(v)
    assert g.sizes[1] == pytest.approx((len(v) - 1) / 4, rel=0.25)
    for m in (*g.down, *g.up):
        assert np.allclose(np.asarray(m.sum(axis=1)).ravel(), 1.0, atol=1e-6)
    # each component goes down and up on its own: the small sphere's vertices read the small one
    small = np.arange(642, stray)
    x = np.zeros(len(v))
    x[small] = 1.0
    y = g.up[0] @ (g.down[0] @ x)
    assert np.allclose(y[small], 1.0, atol=1e-6) and np.allclose(y[:642], 0.0, atol=1e-6)


def test_rejects_too_many_levels_and_bad_input(sphere):
    v, f = icosphere(1)  # 42 vertices: 42 -> 10 -> 3 is too few
    with pytest.raises(ValueError, match="fewer than 8"):
        build_mesh_graph(v, f, (4, 4))
    with pytest.raises(InvalidInputError, match=r"\(V, 3\)"):
        build_mesh_graph(v[:, :2], f)
    with pytest.raises(InvalidInputError, match="factors"):
        build_mesh_graph(*sphere, (4, 1))
    with pytest.raises(InvalidInputError, match="outside"):
        build_mesh_graph(v, f + 100)


# -------------------------------------------------------------------------------- storage
def test_tensors_round_trip_exactly(sphere_graph, tmp_path):
    from safetensors.numpy import load_file, save_file

    tensors, meta = graph_to_tensors(sphere_graph)
    assert all(k.startswith("graph/") for k in tensors)
    assert "graph/level0/laplacian/indices" in tensors and "graph/up3/data" in tensors
    meta = json.loads(json.dumps(meta))  # JSON-able, and lambda_max survives exactly
    save_file(tensors, tmp_path / "g.safetensors")
    back = graph_from_tensors(load_file(tmp_path / "g.safetensors"), meta)
    g = sphere_graph
    assert isinstance(back, MeshGraph)
    assert back.factors == g.factors and back.sizes == g.sizes
    for a, b in zip(g.levels, back.levels, strict=True):
        assert np.array_equal(a.vertices, b.vertices) and np.array_equal(a.triangles, b.triangles)
        assert a.lambda_max == b.lambda_max
    pairs = [(a.laplacian, b.laplacian) for a, b in zip(g.levels, back.levels, strict=True)]
    pairs += list(zip(g.down, back.down, strict=True)) + list(zip(g.up, back.up, strict=True))
    for a, b in pairs:
        assert a.shape == b.shape
        for part in ("data", "indices", "indptr"):
            x, y = getattr(a, part), getattr(b, part)
            assert x.dtype == y.dtype and np.array_equal(x, y)
        assert_canonical_f32(b)


def test_from_tensors_reports_missing_or_bad_arrays(sphere_graph):
    tensors, meta = graph_to_tensors(sphere_graph)
    broken = dict(tensors)
    del broken["graph/down1/indices"]
    with pytest.raises(ModelFileError, match="down1/indices"):
        graph_from_tensors(broken, meta)
    broken = dict(tensors)
    broken["graph/level2/vertices"] = broken["graph/level2/vertices"][:-1]
    with pytest.raises(ModelFileError, match="level2/vertices"):
        graph_from_tensors(broken, meta)
    with pytest.raises(ModelFileError, match="format"):
        graph_from_tensors(tensors, {**meta, "version": 99})


# ------------------------------------------------------------------------- real ICT mesh
@pytest.fixture(scope="module")
def ict_neutral(tmp_path_factory):
    if not ICT_TARBALL.is_file():
        pytest.skip("../shared/assets not present (a user's own clone): no ICT-FaceKit tarball "
                    f"at {ICT_TARBALL}")
    out = tmp_path_factory.mktemp("ict_neutral")
    with tarfile.open(ICT_TARBALL) as tf:  # only the one member, not the 391 MB archive
        tf.extract(tf.getmember(ICT_NEUTRAL), out, filter="data")
    return read_obj(out / ICT_NEUTRAL)


@pytest.mark.slow
def test_ict_neutral_mesh_graph(ict_neutral):
    v, f = ict_neutral.vertices, ict_neutral.triangles
    assert len(v) == 26719
    g = build_mesh_graph(v, f, (4, 4, 4, 4))  # its time: benchmarks/bench_mesh_graph.py
    assert g.sizes[0] == 26719
    for lvl, n in enumerate(g.sizes):
        assert n == pytest.approx(26719 / 4 ** lvl, rel=0.3), g.sizes
    for i, (d, u) in enumerate(zip(g.down, g.up, strict=True)):
        assert d.shape == (g.sizes[i + 1], g.sizes[i]) and u.shape == (g.sizes[i], g.sizes[i + 1])
        for m in (d, u):
            assert np.allclose(np.asarray(m.sum(axis=1)).ravel(), 1.0, atol=1e-6)
            assert np.diff(m.indptr).max() <= 3
    x = v.astype(np.float64)
    err = np.linalg.norm(g.up[0] @ (g.down[0] @ x) - x) / np.linalg.norm(x - x.mean(0))
    assert err < 0.05
