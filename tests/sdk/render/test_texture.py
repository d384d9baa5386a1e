from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.models.mesh import ObjMesh
from facecraft.sdk.models.starter import build_starter_model
from facecraft.sdk.render.mesh_io import read_png, write_png
from facecraft.sdk.render.texture import (
    BakeSettings,
    UVLayout,
    bake_corner_attributes,
    bake_texture,
    dilate_texture,
    sample_texture,
)


@pytest.fixture(scope="module")
def starter():
    return build_starter_model()


def _position_colors(verts: np.ndarray) -> np.ndarray:
    """Smooth per-vertex colours: positions normalised to [0, 1] per axis."""
    lo, hi = verts.min(0), verts.max(0)
    return ((verts - lo) / (hi - lo)).astype(np.float32)


def _uv_vertex_colors(mesh, colors: np.ndarray) -> np.ndarray:
    """(U, 3) the colour each UV vertex should carry (via the corner correspondence)."""
    idx = np.zeros(len(mesh.uvs), np.int64)
    idx[mesh.uv_triangles.ravel()] = mesh.triangles.ravel()
    return colors[idx]


def _texel_centres(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) u and v of every texel centre of tile (0, 0)."""
    j, i = np.meshgrid(np.arange(size), np.arange(size))
    return (j + 0.5) / size, 1.0 - (i + 0.5) / size


def _two_islands() -> UVLayout:
    """Two separate UV triangles (3D vertices 0-2 and 2-4: vertex 2 is on a seam)."""
    uvs = np.array([[0.1, 0.1], [0.4, 0.1], [0.1, 0.45],
                    [0.6, 0.6], [0.9, 0.6], [0.9, 0.9]])
    return UVLayout(triangles=np.array([[0, 1, 2], [2, 3, 4]]), uvs=uvs,
                    uv_triangles=np.array([[0, 1, 2], [3, 4, 5]]), num_vertices=5)


def test_linear_colours_baked_exactly():
    # colours that are a linear function of UV: every covered texel equals it at its centre
    uvs = np.array([[0.1, 0.15], [0.85, 0.1], [0.9, 0.9], [0.12, 0.8]])
    layout = UVLayout(np.array([[0, 1, 2], [0, 2, 3]]), uvs, np.array([[0, 1, 2], [0, 2, 3]]))
    lin = lambda u, v: np.stack([u, v, 0.5 * u + 0.25 * v + 0.1], -1)  # noqa: E731
    bake = bake_texture(layout, lin(uvs[:, 0], uvs[:, 1]), BakeSettings(size=256, dilate=0))
    u, v = _texel_centres(256)
    inside = (u > 0.16) & (u < 0.84) & (v > 0.2) & (v < 0.78)  # surely inside the quad
    assert bake.mask.numpy()[inside].all()
    m = bake.mask.numpy()
    np.testing.assert_allclose(bake.image.numpy()[m], lin(u, v)[m], atol=2e-6)
    assert (bake.image.numpy()[~m] == 0).all() and (bake.triangle_id.numpy()[~m] == -1).all()
    # row 0 is the top of the texture (v = 1): the green channel (= v) falls down the rows
    col = bake.image.numpy()[:, 128, 1]
    assert col[m[:, 128]][0] > 0.75 and col[m[:, 128]][-1] < 0.2


def test_resample_gives_vertex_colours_back(starter):
    colors = _position_colors(starter.mean_shape)
    want = _uv_vertex_colors(starter, colors)
    for size, tol in ((1024, 2.0 / 255), (2048, 1.0 / 255)):
        bake = bake_texture(starter, colors, BakeSettings(size=size))
        got = sample_texture(bake.image, starter.uvs)
        err = np.abs(got.detach().numpy() - want)
        print(f"starter re-sampled at {size}: max {err.max() * 255:.2f}/255, "
              f"mean {err.mean() * 255:.3f}/255")
        # bilinear reads 4 texels around a vertex whose colour field has a kink there (and
        # dilated gutter texels at island borders): error ~ colour gradient x one texel
        assert err.max() < tol and err.mean() < 0.1 / 255


def test_texels_are_barycentric_combinations(starter):
    rng = np.random.default_rng(0)
    colors = rng.random((starter.num_vertices, 3)).astype(np.float32)  # rough, not smooth
    bake = bake_texture(starter, colors, BakeSettings(size=512, dilate=0))
    tid = bake.triangle_id.numpy()
    img = bake.image.numpy()
    rows, cols = np.nonzero(tid >= 0)
    t = tid[rows, cols]
    corner_cols = colors[starter.triangles[t]]  # (n, 3 corners, 3)
    assert (img[rows, cols] >= corner_cols.min(1) - 1e-6).all()
    assert (img[rows, cols] <= corner_cols.max(1) + 1e-6).all()
    # and exactly the barycentric interpolation at the texel centre (independent NumPy maths)
    pick = rng.choice(len(t), 5000, replace=False)
    r, c, t = rows[pick], cols[pick], t[pick]
    p = np.stack([(c + 0.5) / 512, 1 - (r + 0.5) / 512], -1)
    a, b, d = (starter.uvs[starter.uv_triangles[t, k]].astype(np.float64) for k in range(3))
    m = np.stack([b - a, d - a], -1)  # (n, 2, 2)
    l12 = np.linalg.solve(m, (p - a)[..., None])[..., 0]
    bary = np.concatenate([1 - l12.sum(-1, keepdims=True), l12], -1)
    assert (bary > -1e-4).all()  # the texel centre is inside its triangle
    np.testing.assert_allclose(img[r, c], (bary[..., None] * corner_cols[pick]).sum(1),
                               atol=1e-4)


def _dilate_reference(img: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    """The plain algorithm: n full-image passes of 3x3 masked averages."""
    x = torch.from_numpy(img).permute(2, 0, 1)[None].double()
    f = torch.from_numpy(mask)[None, None].double()
    for _ in range(n):
        s = F.avg_pool2d(torch.cat([x * f, f], 1), 3, 1, 1, count_include_pad=True)
        grow = (f == 0) & (s[:, -1:] > 0)
        x = torch.where(grow, s[:, :-1] / s[:, -1:].clamp(min=1e-12), x)
        f = torch.where(grow, 1.0, f)
    return x[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("layout", ["islands", "starter"])
def test_dilation_fills_gutter_and_keeps_islands(starter, layout):
    mesh = _two_islands() if layout == "islands" else starter
    nv = 5 if layout == "islands" else starter.num_vertices
    colors = 0.2 + 0.6 * np.random.default_rng(1).random((nv, 3))  # never 0: filled > 0
    d = 16
    plain = bake_texture(mesh, colors, BakeSettings(size=256, dilate=0))
    bake = bake_texture(mesh, colors, BakeSettings(size=256, dilate=d))
    mask = bake.mask.numpy()
    assert (mask == plain.mask.numpy()).all()
    img, ref = bake.image.numpy(), plain.image.numpy()
    np.testing.assert_array_equal(img[mask], ref[mask])  # covered texels never change
    near = ndimage.binary_dilation(mask, np.ones((3, 3), bool), iterations=d)
    assert (img[near] > 0).all()  # no empty texel within d texels of an island
    assert (img[~near] == 0).all()  # and nothing beyond
    assert (img[near] >= 0.2 - 1e-6).all() and (img[near] <= 0.8 + 1e-6).all()
    np.testing.assert_allclose(img, _dilate_reference(ref, mask, d), atol=1e-5)
    if layout == "islands":
        assert (~near).any() and (near & ~mask).sum() > 10 * mask.sum() // 10


def test_dilate_texture_numpy_and_edge_cases():
    img = np.zeros((8, 8, 2), np.float32)
    mask = np.zeros((8, 8), bool)
    img[3, 4], mask[3, 4] = [0.5, 1.0], True
    out = dilate_texture(img, mask, 2)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    np.testing.assert_array_equal(out[1:6, 2:7], np.broadcast_to([0.5, 1.0], (5, 5, 2)))
    assert out[0].sum() == 0 and out[:, :2].sum() == 0
    np.testing.assert_array_equal(dilate_texture(img, mask, 0), img)
    np.testing.assert_array_equal(dilate_texture(img, np.zeros((8, 8), bool), 3), img)
    with pytest.raises(InvalidInputError):
        dilate_texture(img, mask.astype(np.float32), 2)
    with pytest.raises(InvalidInputError):
        dilate_texture(img, mask, -1)


def test_bake_at_2048(starter):
    # speed is measured in benchmarks/render.py, not asserted here
    colors = torch.from_numpy(_position_colors(starter.mean_shape))
    bake = bake_texture(starter, colors, BakeSettings(size=2048, dilate=16))
    assert bake.image.shape == (2048, 2048, 3) and bake.image.dtype == torch.float32
    assert 0.2 < bake.mask.float().mean() < 1.0


def test_weights_blend_visible_colours(starter):
    nv = starter.num_vertices
    visible = starter.mean_shape[:, 2] > 0.0  # the front of the head
    colors = np.where(visible[:, None], 0.25, 1.0).astype(np.float32)  # hidden ones: junk
    w = visible.astype(np.float32)
    bake = bake_texture(starter, colors, BakeSettings(size=256, dilate=4), weights=w)
    img, wt, mask = bake.image.numpy(), bake.weight.numpy(), bake.mask.numpy()
    some = mask & (wt > 1e-6)
    np.testing.assert_allclose(img[some], 0.25, atol=1e-6)  # only visible colours
    np.testing.assert_allclose(img[mask & (wt == 0)], 1.0, atol=1e-6)  # plain interpolation
    assert 0 < some.mean() < mask.mean() and wt.min() >= 0 and wt.max() <= 1
    assert (wt[mask][np.isin(bake.triangle_id.numpy()[mask],
                             np.flatnonzero(visible[starter.triangles].all(1)))] == 1).all()
    with pytest.raises(InvalidInputError):
        bake_texture(starter, colors, BakeSettings(size=256), weights=np.ones(nv - 1))


def test_corner_bake_matches_vertex_bake(starter):
    colors = _position_colors(starter.mean_shape)
    s = BakeSettings(size=256, dilate=2)
    a = bake_texture(starter, colors, s)
    b = bake_corner_attributes(starter.corner_uvs, colors[starter.triangles], s)
    assert (a.mask == b.mask).all() and (a.triangle_id == b.triangle_id).all()
    torch.testing.assert_close(a.image, b.image, atol=1e-6, rtol=0)


def test_udim_tiles():
    layout = _two_islands()
    colors = np.random.default_rng(2).random((5, 3))
    base = bake_texture(layout, colors, BakeSettings(size=256))
    shifted = UVLayout(layout.triangles, layout.uvs + [2.0, 0.0], layout.uv_triangles)
    assert not bake_texture(shifted, colors, BakeSettings(size=256)).mask.any()
    tile2 = bake_texture(shifted, colors, BakeSettings(size=256, tile=(2, 0)))
    assert tile2.settings.udim == 1003
    assert (tile2.mask == base.mask).all()
    torch.testing.assert_close(tile2.image, base.image, atol=1e-5, rtol=0)
    got = sample_texture(tile2.image, shifted.uvs, tile=(2, 0))
    np.testing.assert_allclose(got.numpy(), _uv_vertex_colors(layout, colors), atol=2e-2)


def test_sample_texture_at_texel_centres_and_grad():
    img = torch.rand(4, 6, 3, dtype=torch.float64, requires_grad=True)
    i, j = np.meshgrid(np.arange(4), np.arange(6), indexing="ij")
    uv = np.stack([(j + 0.5) / 6, 1 - (i + 0.5) / 4], -1).reshape(-1, 2)
    out = sample_texture(img, uv)
    torch.testing.assert_close(out, img.reshape(-1, 3))
    out.sum().backward()
    assert img.grad is not None and torch.allclose(img.grad, torch.ones_like(img))
    np_out = sample_texture(img.detach().numpy(), uv)
    assert isinstance(np_out, np.ndarray) and np_out.shape == (24, 3)


def test_bake_is_differentiable(starter):
    colors = torch.from_numpy(_position_colors(starter.mean_shape)).requires_grad_(True)
    bake = bake_texture(starter, colors, BakeSettings(size=256, dilate=3))
    bake.image.sum().backward()
    assert colors.grad is not None and colors.grad.abs().sum() > 0


@pytest.mark.parametrize("kwargs", [
    {"size": 100}, {"size": 4096}, {"size": 1024.0}, {"size": True}, {"dilate": -1},
    {"dilate": 2.5}, {"tile": (10, 0)}, {"tile": (-1, 0)}, {"tile": (0.5, 0)}, {"tile": 3},
])
def test_bad_settings_raise(kwargs):
    with pytest.raises(InvalidInputError):
        BakeSettings(**kwargs)


def test_bad_inputs_raise(starter):
    s = BakeSettings(size=256)
    with pytest.raises(InvalidInputError, match="vertex_colors"):
        bake_texture(starter, np.zeros((starter.num_vertices, 3, 1)), s)
    with pytest.raises(InvalidInputError, match="rows"):
        bake_texture(starter, np.zeros((10, 3)), s)
    with pytest.raises(InvalidInputError, match="NaN"):
        bake_texture(starter, np.full((starter.num_vertices, 3), np.nan), s)
    no_uv = ObjMesh(vertices=np.eye(3, dtype=np.float32), triangles=np.array([[0, 1, 2]]),
                    uvs=np.zeros((0, 2), np.float32), uv_triangles=np.zeros((0, 3), np.int32),
                    triangle_groups=np.zeros(1, np.int32), group_names=("",),
                    polygon_of_triangle=np.zeros(1, np.int32))
    with pytest.raises(InvalidInputError, match="no UV layout"):
        bake_texture(no_uv, np.zeros((3, 3)), s)
    with pytest.raises(InvalidInputError):
        bake_texture(object(), np.zeros((3, 3)), s)
    with pytest.raises(InvalidInputError):
        bake_corner_attributes(np.zeros((4, 3, 3)), np.zeros((4, 3, 3)), s)
    with pytest.raises(InvalidInputError):
        sample_texture(np.zeros((4, 4, 3)), np.zeros((5, 3)))


def test_baked_png_round_trip(tmp_path, starter):
    colors = _position_colors(starter.mean_shape)
    bake = bake_texture(starter, colors, BakeSettings(size=512))
    p = write_png(tmp_path / "starter_albedo.png", bake.image)
    back = read_png(p, as_float=True)
    assert back.shape == (512, 512, 3)
    np.testing.assert_allclose(back, bake.image.numpy(), atol=0.5 / 255 + 1e-6)


@pytest.mark.slow
def test_bake_ict_face(ict_dir):
    from facecraft.sdk.models.importers.ict import import_ict_facekit

    m = import_ict_facekit(ict_dir, face_only=True)
    colors = _position_colors(m.mean_shape)
    t = time.perf_counter()
    bake = bake_texture(m, colors, BakeSettings(size=1024))
    print(f"ICT face ({len(m.triangles)} triangles) baked at 1024 in "
          f"{time.perf_counter() - t:.2f} s, {bake.mask.float().mean():.1%} of tile 1001 covered")
    want = _uv_vertex_colors(m, colors)
    # UV vertices well inside tile 1001 (the face spills into tile 1002 too)
    inside = (m.uvs[:, 0] > 0.005) & (m.uvs[:, 0] < 0.995)
    got = sample_texture(bake.image, m.uvs[inside]).numpy()
    err = np.abs(got - want[inside])
    print(f"ICT re-sampled: max {err.max() * 255:.2f}/255, p99 "
          f"{np.percentile(err, 99) * 255:.2f}/255 over {inside.sum()} UV vertices")
    assert inside.sum() > 5000
    assert np.percentile(err, 99) < 2 / 255 and err.max() < 4 / 255
