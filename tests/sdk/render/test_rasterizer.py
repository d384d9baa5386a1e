from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.models.starter import build_starter_model
from facecraft.sdk.render.rasterizer import (
    RasterSettings,
    interpolate,
    pytorch3d_available,
    rasterize,
)


def _ortho(verts: np.ndarray, size: int, extent: float = 0.4) -> torch.Tensor:
    """Front orthographic screen coordinates for a face-model mesh (metres)."""
    v = torch.from_numpy(verts).double()
    c = v.mean(0)
    s = size / extent
    return torch.stack([(v[:, 0] - c[0]) * s + size / 2, -(v[:, 1] - c[1]) * s + size / 2,
                        2.0 - v[:, 2]], -1)[None]


def test_square_coverage_and_pixel_centres():
    sv = torch.tensor([[[2.0, 2.0, 1.0], [6.0, 2.0, 1.0], [6.0, 6.0, 1.0], [2.0, 6.0, 1.0]]])
    tri = torch.tensor([[0, 1, 2], [0, 2, 3]])
    fr = rasterize(sv, tri, RasterSettings((8, 8)))
    expect = np.zeros((8, 8), bool)
    expect[2:6, 2:6] = True  # centres 2.5 .. 5.5 lie inside [2, 6]
    np.testing.assert_array_equal(fr.mask[0].numpy(), expect)
    # interpolating screen x gives the pixel centre back
    x = interpolate(sv[..., :1], fr, tri)[0, ..., 0]
    cols = torch.arange(8).double().expand(8, 8) + 0.5
    torch.testing.assert_close(x[fr.mask[0]].double(), cols[fr.mask[0]])


def test_nearest_triangle_wins_in_any_order():
    near = [[0.0, 0.0, 1.0], [10.0, 0.0, 1.0], [0.0, 10.0, 1.0]]
    far = [[0.0, 0.0, 5.0], [10.0, 0.0, 5.0], [0.0, 10.0, 5.0]]
    tri = torch.tensor([[0, 1, 2], [3, 4, 5]])
    for verts, nearest in ((near + far, 0), (far + near, 1)):
        fr = rasterize(torch.tensor([verts]), tri, RasterSettings((10, 10)))
        assert (fr.triangle_id[fr.mask] == nearest).all()
        assert torch.allclose(fr.depth[fr.mask], torch.tensor(1.0))


def test_backface_culling():
    # CCW in a y-up view = negative area in y-down pixels = facing the camera
    front = torch.tensor([[[1.0, 9.0, 1.0], [9.0, 9.0, 1.0], [1.0, 1.0, 1.0]]])
    tri = torch.tensor([[0, 1, 2]])
    assert rasterize(front, tri, RasterSettings((10, 10), cull_backfaces=True)).mask.any()
    back = front[:, [0, 2, 1]]
    assert not rasterize(back, tri, RasterSettings((10, 10), cull_backfaces=True)).mask.any()
    assert rasterize(back, tri, RasterSettings((10, 10))).mask.any()


def test_perspective_correct_barycentrics():
    # a slanted quad under a pinhole camera: interpolated 3D points re-project to pixel centres
    f, c = 40.0, 16.0
    pts = torch.tensor([[-0.5, -0.5, 2.0], [0.5, -0.5, 4.0], [0.5, 0.5, 4.0], [-0.5, 0.5, 2.0]],
                       dtype=torch.float64)
    sv = torch.stack([f * pts[:, 0] / pts[:, 2] + c, -f * pts[:, 1] / pts[:, 2] + c, pts[:, 2]],
                     -1)[None]
    tri = torch.tensor([[0, 1, 2], [0, 2, 3]])
    fr = rasterize(sv, tri, RasterSettings((32, 32)))
    p = interpolate(pts[None], fr, tri)[0][fr.mask[0]]
    rows, cols = torch.nonzero(fr.mask[0], as_tuple=True)
    torch.testing.assert_close(f * p[:, 0] / p[:, 2] + c, cols.double() + 0.5)
    torch.testing.assert_close(-f * p[:, 1] / p[:, 2] + c, rows.double() + 0.5)
    torch.testing.assert_close(fr.depth[0][fr.mask[0]], p[:, 2])


def test_chunking_and_batching_do_not_change_the_result():
    m = build_starter_model()
    sv = _ortho(m.mean_shape, 96)
    tri = torch.from_numpy(m.triangles).long()
    a = rasterize(sv, tri, RasterSettings((96, 96)))
    b = rasterize(sv.repeat(3, 1, 1), tri, RasterSettings((96, 96), max_candidates=1024))
    for k in range(3):
        torch.testing.assert_close(b.triangle_id[k], a.triangle_id[0])
        torch.testing.assert_close(b.bary[k], a.bary[0])


def _silhouette_iou(verts: np.ndarray, triangles: np.ndarray, size: int) -> float:
    sv = _ortho(verts, size)
    fr = rasterize(sv, torch.from_numpy(triangles).long(), RasterSettings((size, size)))
    ours = fr.mask[0].numpy()
    # independent reference: OpenCV fills every projected triangle (sub-pixel precision)
    ref = np.zeros((size, size), np.uint8)
    shift = 4
    pts = np.round((sv[0, :, :2].numpy() - 0.5) * (1 << shift)).astype(np.int32)
    for poly in pts[triangles]:  # one call per triangle: fillPoly would XOR overlaps
        cv2.fillConvexPoly(ref, poly, 1, lineType=cv2.LINE_8, shift=shift)
    ref = ref.astype(bool)
    # the two differ only on boundary pixels (pixel-centre rule vs OpenCV's touched pixels)
    kernel = np.ones((3, 3), np.uint8)
    assert not (ours & ~cv2.dilate(ref.astype(np.uint8), kernel).astype(bool)).any()
    assert not (ref & ~cv2.dilate(ours.astype(np.uint8), kernel).astype(bool)).any()
    # every projected vertex lies on or within one pixel of the rendered silhouette
    px = np.floor(sv[0, :, :2].numpy()).astype(int)
    inside = (px >= 0).all(1) & (px < size).all(1)
    grown = cv2.dilate(ours.astype(np.uint8), kernel).astype(bool)
    assert grown[px[inside, 1], px[inside, 0]].all()
    return (ours & ref).sum() / (ours | ref).sum()


def test_silhouette_matches_projection_starter():
    m = build_starter_model()
    assert _silhouette_iou(m.mean_shape, m.triangles, 224) > 0.97


@pytest.mark.slow
def test_silhouette_matches_projection_ict(ict_dir):
    from facecraft.sdk.models.importers.ict import import_ict_facekit

    m = import_ict_facekit(ict_dir, face_only=True)
    assert _silhouette_iou(m.mean_shape, m.triangles, 224) > 0.95


def test_gradients_match_finite_differences():
    torch.manual_seed(0)
    sv = torch.tensor([[[3.3, 2.2, 1.0], [27.1, 4.7, 1.5], [14.2, 28.9, 2.0],
                        [29.3, 27.4, 1.2]]], dtype=torch.float64, requires_grad=True)
    colours = torch.rand(1, 4, 3, dtype=torch.float64, requires_grad=True)
    tri = torch.tensor([[0, 1, 2], [1, 3, 2]])
    weights = torch.rand(1, 32, 32, 3, dtype=torch.float64)
    settings = RasterSettings((32, 32))

    def loss(s, c):
        return (interpolate(c, rasterize(s, tri, settings), tri) * weights).sum()

    # coverage is fixed for small steps (no pixel centre lies this close to an edge)
    assert torch.autograd.gradcheck(loss, (sv, colours), eps=1e-6, atol=1e-5)


def test_bad_inputs():
    with pytest.raises(InvalidInputError, match="screen_verts"):
        rasterize(torch.zeros(4, 3), torch.zeros(1, 3, dtype=torch.long), RasterSettings((4, 4)))
    with pytest.raises(InvalidInputError, match="outside"):
        rasterize(torch.zeros(1, 3, 3), torch.tensor([[0, 1, 5]]), RasterSettings((4, 4)))
    with pytest.raises(InvalidInputError, match="image_size"):
        RasterSettings((0, 4))


@pytest.mark.skipif(not pytorch3d_available(), reason="pytorch3d is not installed (optional "
                    "extra `.[pytorch3d]`; no wheel exists for this torch)")
def test_pytorch3d_backend_parity():
    m = build_starter_model()
    sv = _ortho(m.mean_shape, 128).float()
    tri = torch.from_numpy(m.triangles).long()
    a = rasterize(sv, tri, RasterSettings((128, 128)))
    b = rasterize(sv, tri, RasterSettings((128, 128), backend="pytorch3d"))
    assert (a.triangle_id == b.triangle_id).float().mean() > 0.99
