from __future__ import annotations

import numpy as np
import pytest

from facecraft.sdk.errors import ModelFormatError
from facecraft.sdk.models.mesh import read_obj, read_obj_vertices, triangulate, vertex_adjacency

OBJ = """# a unit square as one quad plus a triangle, two materials
mtllib x.mtl
v 0 0 0
v 1 0 0
v 1 1 0
v 0 1 0
v 2 0 0 0.5 0.5 0.5
vt 0 0
vt 1 0
vt 1 1
vt 0 1
vt 0.5 0.5
vn 0 0 1
usemtl A
f 1/1/1 2/2/1 3/3/1 4/4/1
usemtl B
f 2/2/1 5/5/1 -3/3/1
usemtl A
f 1/1 3/3 4/4
"""


def test_read_obj_quads_uvs_groups(tmp_path):
    p = tmp_path / "m.obj"
    p.write_text(OBJ)
    m = read_obj(p)
    assert m.vertices.shape == (5, 3) and m.vertices.dtype == np.float32
    np.testing.assert_array_equal(m.triangles, [[0, 1, 2], [0, 2, 3], [1, 4, 2], [0, 2, 3]])
    np.testing.assert_array_equal(m.uv_triangles, [[0, 1, 2], [0, 2, 3], [1, 4, 2], [0, 2, 3]])
    assert m.group_names == ("A", "B")
    np.testing.assert_array_equal(m.triangle_groups, [0, 0, 1, 0])
    np.testing.assert_array_equal(m.polygon_of_triangle, [0, 0, 1, 2])
    np.testing.assert_array_equal(read_obj_vertices(p), m.vertices)
    # CCW quad split keeps the winding: both normals +Z
    v = m.vertices[m.triangles[:2]]
    n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    assert (n[:, 2] > 0).all()


def test_triangulate_mixed_polygons():
    tris, src = triangulate([[0, 1, 2, 3, 4], [5, 6, 7]])
    np.testing.assert_array_equal(tris, [[0, 1, 2], [0, 2, 3], [0, 3, 4], [5, 6, 7]])
    np.testing.assert_array_equal(src, [0, 0, 0, 1])
    with pytest.raises(ValueError):
        triangulate([[0, 1]])


def test_read_obj_errors(tmp_path):
    with pytest.raises(ModelFormatError, match="cannot read"):
        read_obj(tmp_path / "missing.obj")
    bad = tmp_path / "bad.obj"
    bad.write_text("v 0 0 0\nv 1 0 0\nf 1 2 9\n")
    with pytest.raises(ModelFormatError, match="does not exist"):
        read_obj(bad)
    empty = tmp_path / "empty.obj"
    empty.write_text("# nothing\n")
    with pytest.raises(ModelFormatError, match="no vertices"):
        read_obj_vertices(empty)


def test_vertex_adjacency_symmetric():
    a = vertex_adjacency(np.array([[0, 1, 2], [0, 2, 3]]), 5)
    dense = a.toarray()
    np.testing.assert_array_equal(dense, dense.T)
    assert dense[0, 2] == 1 and dense[1, 3] == 0 and dense[4].sum() == 0
    assert dense.diagonal().sum() == 0
