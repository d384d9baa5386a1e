from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from scipy import ndimage

from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.models.mesh import ObjMesh
from facecraft.sdk.models.starter import build_starter_model
from facecraft.sdk.render.mesh_io import read_png, write_png
from facecraft.sdk.render.texture import (
    BakeSettings,
    UVBaker,
    UVBakerCache,
    UVLayout,
    _dilation_sources,
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
    """Straightforward dilation: every empty texel within n texels (chessboard) of a covered
    one copies a covered texel at the smallest Euclidean distance (exact, SciPy); ties and
    OpenCV's approximate metric may pick another texel at (almost) the same distance, so the
    test compares distances, not indices."""
    out = img.copy()
    near = ndimage.binary_dilation(mask, np.ones((3, 3), bool), iterations=n) & ~mask
    _, (ri, ci) = ndimage.distance_transform_edt(~mask, return_indices=True)
    out[near] = img[ri[near], ci[near]]
    return out


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
    ref_img = _dilate_reference(ref, mask, d)
    same = np.all(np.abs(img - ref_img) < 1e-6, axis=-1)
    assert same.mean() > 0.97  # the same nearest texel almost everywhere
    gutter, source = _dilation_sources(mask, d)  # and an (almost) nearest one everywhere
    edt = ndimage.distance_transform_edt(~mask).reshape(-1)
    gr, gc = np.divmod(gutter, 256)
    sr, sc = np.divmod(source, 256)
    assert mask.reshape(-1)[source].all()
    assert (np.hypot(gr - sr, gc - sc) <= edt[gutter] * 1.1 + 0.5).all()
    np.testing.assert_array_equal(img.reshape(-1, 3)[gutter], ref.reshape(-1, 3)[source])
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


# --------------------------------------------------------------------------- the one baker
class _LegacyPipelineBaker:
    """The pipeline's former ``_UVBaker`` (its algorithm, verbatim): the reference the one
    baker must reproduce bit for bit for the pipeline's uint8 textures."""

    def __init__(self, model, size: int, dilate: int) -> None:
        import cv2
        import scipy.sparse as sp

        from facecraft.sdk.render.rasterizer import RasterSettings, rasterize

        uvs = model.uvs.astype(np.float64)
        uv_tri = model.uv_triangles.astype(np.int64)
        screen = np.stack([uvs[:, 0] * size, (1.0 - uvs[:, 1]) * size, np.ones(len(uvs))], -1)
        frags = rasterize(torch.from_numpy(screen.astype(np.float32))[None],
                          torch.from_numpy(uv_tri), RasterSettings((size, size)))
        tid = frags.triangle_id[0].reshape(-1).numpy()
        covered = np.flatnonzero(tid >= 0)
        bary = frags.bary[0].reshape(-1, 3).numpy()[covered]
        uv_to_vertex = np.zeros(len(uvs), np.int64)
        uv_to_vertex[uv_tri.ravel()] = model.triangles.astype(np.int64).ravel()
        corners = uv_to_vertex[uv_tri[tid[covered]]]
        rows = covered
        empty = (tid < 0).reshape(size, size)
        src = np.arange(len(covered))
        if dilate and empty.any() and not empty.all():
            _, labels = cv2.distanceTransformWithLabels(
                empty.astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
            cheb = cv2.distanceTransform(empty.astype(np.uint8), cv2.DIST_C, 3).reshape(-1)
            flat = labels.reshape(-1)
            label_to_row = np.zeros(int(flat.max()) + 1, np.int64)
            label_to_row[flat[covered]] = np.arange(len(covered))
            gutter = np.flatnonzero(empty.reshape(-1) & (cheb <= dilate))
            rows = np.concatenate([covered, gutter])
            src = np.concatenate([src, label_to_row[flat[gutter]]])
        self.matrix = sp.csr_matrix(
            (bary[src].reshape(-1).astype(np.float32),
             (np.repeat(rows, 3), corners[src].reshape(-1))),
            shape=(size * size, model.num_vertices))
        self.size = size

    def bake(self, colors: np.ndarray) -> np.ndarray:
        img = self.matrix @ np.asarray(colors, np.float32)
        np.clip(img, 0.0, 1.0, out=img)
        return (img * 255.0 + 0.5).astype(np.uint8).reshape(self.size, self.size, 3)


@pytest.mark.parametrize("dilate", [0, 16])
def test_uv_baker_reproduces_the_former_pipeline_bake(starter, dilate):
    colors = np.random.default_rng(3).random((starter.num_vertices, 3)).astype(np.float32)
    baker = UVBaker(starter, BakeSettings(size=256, dilate=dilate))
    want = _LegacyPipelineBaker(starter, 256, dilate).bake(colors)
    np.testing.assert_array_equal(baker.bake_uint8(colors), want)
    # the float (torch) bake is the same texture before quantisation
    img = baker.bake(colors).image.numpy()
    assert np.abs(np.clip(img, 0, 1) * 255 + 0.5 - want.astype(np.float64) - 0.5).max() <= 1.0


def _reference_bake(layout: UVLayout, colors: np.ndarray, size: int, dilate: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """A straightforward bake of a small mesh: the barycentric coordinates of every texel
    centre in every UV triangle (NumPy solve), interpolation where all are >= 0, then
    :func:`_dilate_reference`. Returns (image (S, S, 3) float64, inside margin (S, S))."""
    u, v = _texel_centres(size)
    p = np.stack([u.ravel(), v.ravel()], -1)
    out = np.zeros((size * size, 3))
    margin = np.full(size * size, -np.inf)
    for tri, uvt in zip(layout.triangles, layout.uv_triangles, strict=True):
        a, b, c = layout.uvs[uvt].astype(np.float64)
        l12 = np.linalg.solve(np.stack([b - a, c - a], -1), (p - a).T).T
        bary = np.concatenate([1.0 - l12.sum(-1, keepdims=True), l12], -1)
        m = bary.min(-1)
        inside = m > margin
        margin[inside] = m[inside]
        out[inside & (m >= 0)] = bary[inside & (m >= 0)] @ colors[tri]
    mask = (margin >= 0).reshape(size, size)
    img = _dilate_reference(out.reshape(size, size, 3), mask, dilate)
    return img, margin.reshape(size, size)


def test_uv_baker_matches_a_straightforward_reference():
    base = _two_islands()  # nudged so that no triangle edge runs through texel centres
    nudge = np.array([[0.0013, 0.0021]] * 3 + [[0.0017, -0.0011]] * 3)
    layout = UVLayout(base.triangles, base.uvs + nudge, base.uv_triangles, base.num_vertices)
    colors = np.array([[0.9, 0.1, 0.2], [0.2, 0.8, 0.1], [0.1, 0.3, 0.9],
                       [0.6, 0.6, 0.1], [0.3, 0.2, 0.5]], np.float32)
    size, d = 256, 8
    ref, margin = _reference_bake(layout, colors, size, d)
    baker = UVBaker(layout, BakeSettings(size=size, dilate=d))
    got = baker.bake_uint8(colors).astype(np.int16)
    want = np.floor(np.clip(ref, 0, 1) * 255 + 0.5).astype(np.int16)
    mask = baker.mask.numpy()
    assert (mask == (margin >= 0)).all()  # the same texels are covered
    assert np.abs(got - want)[mask].max() <= 1  # with the interpolation
    gutter = ~mask & (got.sum(-1) > 0)
    near = ndimage.binary_dilation(mask, np.ones((3, 3), bool), iterations=d) & ~mask
    assert (gutter == near).all()  # the gutter is exactly d texels wide
    # each gutter texel copies a nearest covered texel (OpenCV's metric may pick a neighbour
    # of the exact one: at most one texel's colour gradient, 3 units here)
    diff = np.abs(got - want)[near].max(-1)
    assert (diff <= 4).all() and (diff <= 1).mean() > 0.9
    assert (got[~near & ~mask] == 0).all()


def test_uv_baker_cache_bakes_each_size_once(starter):
    cache = UVBakerCache(starter, dilate=4)
    a = cache.baker(256)
    assert cache.baker(256) is a and cache.baker(BakeSettings(size=256, dilate=4)) is a
    assert cache.baker(BakeSettings(size=256, dilate=0)) is not a
    assert a.settings == BakeSettings(size=256, dilate=4) and "covered=" in repr(a)
    colors = np.random.default_rng(0).random((starter.num_vertices, 3)).astype(np.float32)
    t0 = time.perf_counter()
    for _ in range(5):
        cache.bake_uint8(colors, 256)
    assert (time.perf_counter() - t0) / 5 < 0.2  # a sparse product, no rasterization
    raw = a.bake(colors, dilate=False).image.numpy()
    assert (raw[~a.mask.numpy()] == 0).all()
    np.testing.assert_array_equal(a.dilate(raw), a.bake(colors).image.numpy())
    with pytest.raises(InvalidInputError, match=r"\[256, 2048\]"):
        cache.baker(100)
    with pytest.raises(InvalidInputError):
        a.bake_uint8(colors[:10])
    with pytest.raises(InvalidInputError):
        a.dilate(np.zeros((8, 8, 3), np.float32))
