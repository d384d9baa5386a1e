from __future__ import annotations

import numpy as np
import pytest
import torch

from facecraft.sdk.errors import FaceCraftError, InvalidInputError
from facecraft.sdk.models.mesh import read_obj, vertex_normals_np
from facecraft.sdk.models.starter import build_starter_model
from facecraft.sdk.render.mesh_io import read_ply, read_png, write_obj, write_ply, write_png


@pytest.fixture(scope="module")
def starter():
    return build_starter_model()


def _texture(h: int = 64, w: int = 96) -> np.ndarray:
    """An asymmetric RGB test image (catches flips and BGR/RGB swaps)."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x + 2 * y) % 256],
                    -1).astype(np.uint8)


def test_obj_round_trip_with_texture(tmp_path, starter):
    m = starter
    tex = _texture()
    p = write_obj(tmp_path / "head.obj", m.mean_shape, m.triangles, uvs=m.uvs,
                  uv_triangles=m.uv_triangles,
                  normals=vertex_normals_np(m.mean_shape, m.triangles), texture=tex)
    assert {f.name for f in tmp_path.iterdir()} == {"head.obj", "head.mtl", "head.png"}
    back = read_obj(p)
    np.testing.assert_array_equal(back.triangles, m.triangles)
    np.testing.assert_array_equal(back.uv_triangles, m.uv_triangles)
    np.testing.assert_array_equal(back.uvs, m.uvs)  # %.9g: float32-exact
    np.testing.assert_allclose(back.vertices, m.mean_shape, rtol=0, atol=1e-7)
    assert back.group_names == ("face",)
    text = p.read_text()
    assert "mtllib head.mtl" in text and "usemtl face" in text
    a, b, c = m.triangles[0] + 1
    ta, tb, tc = m.uv_triangles[0] + 1
    assert f"\nf {a}/{ta}/{a} {b}/{tb}/{b} {c}/{tc}/{c}\n" in text
    mtl = (tmp_path / "head.mtl").read_text()
    assert "newmtl face" in mtl and "map_Kd head.png" in mtl
    np.testing.assert_array_equal(read_png(tmp_path / "head.png"), tex)
    assert not list(tmp_path.glob(".*.tmp"))  # no temp files left behind


def test_obj_names_a_callers_material(tmp_path):
    """``mtllib=``: the OBJ names an MTL its caller writes (facecraft create's NAME.mtl), in one
    write, and writes no MTL or PNG itself."""
    verts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    uvs = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], np.float32)
    (tmp_path / "skin.mtl").write_text("newmtl skin\nKd 1 1 1\n")
    p = write_obj(tmp_path / "t.obj", verts, np.array([[0, 1, 2]]), uvs=uvs, mtllib="skin.mtl",
                  material_name="skin")
    lines = p.read_text().splitlines()
    assert lines[1] == "mtllib skin.mtl" and lines[-2:] == ["usemtl skin", "f 1/1 2/2 3/3"]
    assert sorted(f.name for f in tmp_path.iterdir()) == ["skin.mtl", "t.obj"]
    assert read_obj(p).group_names == ("skin",)
    with pytest.raises(InvalidInputError, match="not both"):
        write_obj(tmp_path / "u.obj", verts, np.array([[0, 1, 2]]), uvs=uvs, mtllib="a.mtl",
                  texture=np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(InvalidInputError, match="mtllib"):
        write_obj(tmp_path / "u.obj", verts, np.array([[0, 1, 2]]), mtllib="my file.mtl")
    assert not (tmp_path / "u.obj").exists()


def test_obj_vt_origin_is_bottom_left(tmp_path):
    verts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    uvs = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], np.float32)  # v = 1 is the image top
    p = write_obj(tmp_path / "t.obj", verts, np.array([[0, 1, 2]]), uvs=uvs)
    assert "vt 0 1\n" in p.read_text()  # written as given, no flip
    assert "f 1/1 2/2 3/3\n" in p.read_text()
    np.testing.assert_array_equal(read_obj(p).uvs, uvs)


def test_obj_variants_and_vertex_colors(tmp_path):
    verts = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float64)
    tris = np.array([[0, 1, 2], [0, 2, 3]])
    cols = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.5, 0.25, 1]])
    p = write_obj(tmp_path / "c.obj", verts, tris, vertex_colors=cols,
                  normals=np.tile([0.0, 0, 1], (4, 1)))
    text = p.read_text()
    assert "v 1 0 0 0 1 0\n" in text and "f 1//1 2//2 3//3\n" in text
    assert "mtllib" not in text and not (tmp_path / "c.mtl").exists()
    vs = [ln.split()[1:] for ln in text.splitlines() if ln.startswith("v ")]
    back_cols = np.array(vs, float)[:, 3:]
    np.testing.assert_allclose(back_cols, np.round(cols * 255) / 255, atol=1e-6)
    plain = write_obj(tmp_path / "p.obj", torch.from_numpy(verts), torch.from_numpy(tris))
    assert "f 1 2 3\n" in plain.read_text()
    np.testing.assert_array_equal(read_obj(plain).triangles, tris)
    # per-vertex UVs without uv_triangles; float texture in [0, 1]
    tex = np.random.default_rng(0).random((8, 8, 3))
    write_obj(tmp_path / "u.obj", verts, tris, uvs=verts[:, :2], texture=tex)
    np.testing.assert_array_equal(read_png(tmp_path / "u.png"),
                                  np.round(tex * 255).astype(np.uint8))
    np.testing.assert_array_equal(read_obj(tmp_path / "u.obj").uv_triangles, tris)


def test_obj_write_full_size(tmp_path):
    rng = np.random.default_rng(0)
    v = 30000
    verts = rng.normal(size=(v, 3)).astype(np.float32)
    tris = rng.integers(0, v, (60000, 3))
    uvs = rng.random((v, 2)).astype(np.float32)
    write_obj(tmp_path / "big.obj", verts, tris, uvs=uvs, uv_triangles=tris, normals=verts,
              vertex_colors=rng.random((v, 3)))
    back = read_obj(tmp_path / "big.obj")
    assert back.vertices.shape == (v, 3) and len(back.triangles) == 60000


@pytest.mark.parametrize("binary", [True, False])
def test_ply_round_trip(tmp_path, starter, binary):
    m = starter
    rng = np.random.default_rng(1)
    cols = rng.random((m.num_vertices, 3))
    nrm = vertex_normals_np(m.mean_shape, m.triangles)
    p = write_ply(tmp_path / "head.ply", m.mean_shape, m.triangles, vertex_colors=cols,
                  normals=nrm, binary=binary)
    head = p.read_bytes()[:400]
    assert (b"binary_little_endian" in head) == binary
    assert b"property uchar red" in head and b"property list uchar int vertex_indices" in head
    back = read_ply(p)
    np.testing.assert_array_equal(back.vertices, m.mean_shape)  # float32-exact both ways
    np.testing.assert_array_equal(back.triangles, m.triangles)
    np.testing.assert_array_equal(back.vertex_colors, np.round(cols * 255).astype(np.uint8))
    np.testing.assert_array_equal(back.normals, nrm)


def test_ply_uint8_colors_no_normals(tmp_path):
    verts = np.eye(3, dtype=np.float32)
    cols = np.array([[255, 0, 0], [0, 128, 0], [1, 2, 3]], np.uint8)
    for binary in (True, False):
        p = write_ply(tmp_path / f"t{binary}.ply", verts, np.array([[0, 1, 2]]),
                      vertex_colors=cols, binary=binary)
        back = read_ply(p)
        np.testing.assert_array_equal(back.vertex_colors, cols)
        assert back.normals is None
    bare = read_ply(write_ply(tmp_path / "bare.ply", verts, np.array([[0, 1, 2]])))
    assert bare.vertex_colors is None and bare.triangles.tolist() == [[0, 1, 2]]


def test_trimesh_reads_our_files(tmp_path, starter):
    trimesh = pytest.importorskip("trimesh")
    m = starter
    cols = np.random.default_rng(2).random((m.num_vertices, 3))
    ply = trimesh.load(write_ply(tmp_path / "h.ply", m.mean_shape, m.triangles,
                                 vertex_colors=cols), process=False)
    np.testing.assert_allclose(ply.vertices, m.mean_shape, atol=1e-7)
    np.testing.assert_array_equal(ply.faces, m.triangles)
    np.testing.assert_array_equal(ply.visual.vertex_colors[:, :3],
                                  np.round(cols * 255).astype(np.uint8))
    ascii_ply = trimesh.load(write_ply(tmp_path / "a.ply", m.mean_shape, m.triangles,
                                       binary=False), process=False)
    np.testing.assert_array_equal(ascii_ply.faces, m.triangles)
    obj = trimesh.load(write_obj(tmp_path / "h.obj", m.mean_shape, m.triangles,
                                 uvs=m.uvs, uv_triangles=m.uv_triangles, texture=_texture()),
                       process=False, force="mesh")
    assert len(obj.faces) == len(m.triangles)


def test_png_round_trip_rgba_16bit_grey(tmp_path):
    rgb = _texture(5, 7)
    np.testing.assert_array_equal(read_png(write_png(tmp_path / "a.png", rgb)), rgb)
    rgba = np.concatenate([rgb, np.full((5, 7, 1), 77, np.uint8)], -1)
    np.testing.assert_array_equal(read_png(write_png(tmp_path / "b.png", rgba)), rgba)
    f = np.random.default_rng(3).random((6, 4, 3)).astype(np.float32)
    back16 = read_png(write_png(tmp_path / "c.png", f, bit_depth=16))
    assert back16.dtype == np.uint16
    np.testing.assert_allclose(back16 / 65535.0, f, atol=1 / 65535)
    np.testing.assert_allclose(read_png(tmp_path / "c.png", as_float=True), f, atol=1 / 65535)
    grey = read_png(write_png(tmp_path / "g.png", torch.linspace(0, 1, 12).view(3, 4)))
    assert grey.shape == (3, 4) and grey[0, 0] == 0 and grey[-1, -1] == 255
    # channel order on disk is what other tools expect: red stays red
    import cv2

    write_png(tmp_path / "red.png", np.array([[[1.0, 0, 0]]]))
    assert cv2.imread(str(tmp_path / "red.png"))[0, 0].tolist() == [0, 0, 255]  # BGR


@pytest.mark.parametrize("call", [
    lambda p: write_obj(p, np.zeros((3, 2)), [[0, 1, 2]]),
    lambda p: write_obj(p, np.zeros((3, 3)), np.array([[0, 1, 3]])),
    lambda p: write_obj(p, np.zeros((3, 3)), np.array([[0.0, 1, 2]])),
    lambda p: write_obj(p, np.full((3, 3), np.nan), np.array([[0, 1, 2]])),
    lambda p: write_obj(p, np.zeros((3, 3)), np.array([[0, 1, 2]]), texture=np.zeros((4, 4, 3))),
    lambda p: write_obj(p, np.zeros((3, 3)), np.array([[0, 1, 2]]), uvs=np.zeros((5, 2))),
    lambda p: write_obj(p, np.zeros((3, 3)), np.array([[0, 1, 2]]), uvs=np.zeros((3, 2)),
                        texture=np.zeros((4, 4))),
    lambda p: write_obj(p, np.zeros((3, 3)), np.array([[0, 1, 2]]), material_name="a b"),
    lambda p: write_obj(p, np.zeros((3, 3)), np.array([[0, 1, 2]]),
                        vertex_colors=np.zeros((2, 3))),
    lambda p: write_ply(p, np.zeros((3, 3)), np.array([[0, 1, 2]]), normals=np.zeros((3, 2))),
    lambda p: write_ply(p, np.zeros((3, 3)), np.array([[0, 1, 2]]),
                        vertex_colors=np.array(["a"] * 9).reshape(3, 3)),
    lambda p: write_png(p, np.zeros((4, 4, 2))),
    lambda p: write_png(p, np.zeros((4, 4, 3)), bit_depth=12),
])
def test_bad_arrays_raise(tmp_path, call):
    with pytest.raises(InvalidInputError):
        call(tmp_path / "x.obj")
    assert not list(tmp_path.iterdir())  # nothing written


def test_os_errors_are_facecraft_errors(tmp_path):
    missing = tmp_path / "no" / "such" / "dir" / "m.obj"
    with pytest.raises(FaceCraftError, match="cannot write"):
        write_obj(missing, np.eye(3), [[0, 1, 2]])
    with pytest.raises(FaceCraftError, match="cannot write"):
        write_png(tmp_path / "no" / "x.png", np.zeros((2, 2, 3)))
    with pytest.raises(FaceCraftError, match="cannot read"):
        read_ply(tmp_path / "none.ply")
    (tmp_path / "junk.ply").write_bytes(b"not a ply")
    with pytest.raises(FaceCraftError):
        read_ply(tmp_path / "junk.ply")
