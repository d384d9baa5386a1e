from __future__ import annotations

import math

import pytest
import torch

from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.render.cameras import (
    PAPER_FOCAL_PX,
    PerspectiveCamera,
    Pose,
    WeakPerspectiveCamera,
    euler_to_matrix,
    matrix_to_euler,
    matrix_to_quaternion,
    matrix_to_rotation_6d,
    quaternion_to_matrix,
    rotation_6d_to_matrix,
)


def _random_rotations(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return quaternion_to_matrix(torch.randn(n, 4, generator=g, dtype=torch.float64))


def _paper_rotation(angles: torch.Tensor) -> torch.Tensor:
    """Deep3DFaceRecon's compute_rotation, transposed back (it returns R.T for pts @ rot)."""
    out = []
    for x, y, z in angles.tolist():
        rx = torch.tensor([[1, 0, 0], [0, math.cos(x), -math.sin(x)],
                           [0, math.sin(x), math.cos(x)]], dtype=torch.float64)
        ry = torch.tensor([[math.cos(y), 0, math.sin(y)], [0, 1, 0],
                           [-math.sin(y), 0, math.cos(y)]], dtype=torch.float64)
        rz = torch.tensor([[math.cos(z), -math.sin(z), 0], [math.sin(z), math.cos(z), 0],
                           [0, 0, 1]], dtype=torch.float64)
        out.append(rz @ ry @ rx)
    return torch.stack(out)


def test_euler_matches_paper_order():
    angles = torch.tensor([[0.3, -0.5, 0.2], [1.0, 0.4, -2.0]], dtype=torch.float64)
    torch.testing.assert_close(euler_to_matrix(angles), _paper_rotation(angles))
    # Pure yaw turns the face (+Z) towards +X, the subject's left.
    r = euler_to_matrix(torch.tensor([[0.0, math.pi / 2, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(r[0] @ torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64),
                               torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))


def test_rotations_orthonormal():
    g = torch.Generator().manual_seed(1)
    for r in (_random_rotations(64), euler_to_matrix(torch.randn(64, 3, generator=g)),
              rotation_6d_to_matrix(torch.randn(64, 6, generator=g))):
        eye = torch.eye(3, dtype=r.dtype).expand_as(r)
        torch.testing.assert_close(r @ r.transpose(1, 2), eye, atol=1e-5, rtol=0)
        torch.testing.assert_close(torch.linalg.det(r), torch.ones(64, dtype=r.dtype))


def test_euler_round_trip():
    g = torch.Generator().manual_seed(2)
    angles = (torch.rand(128, 3, generator=g, dtype=torch.float64) * 2 - 1) * torch.tensor(
        [math.pi, 0.49 * math.pi, math.pi], dtype=torch.float64)
    torch.testing.assert_close(matrix_to_euler(euler_to_matrix(angles)), angles)
    r = _random_rotations(128, seed=3)
    torch.testing.assert_close(euler_to_matrix(matrix_to_euler(r)), r)


def test_quaternion_round_trip():
    r = _random_rotations(256, seed=4)
    q = matrix_to_quaternion(r)
    assert (q[:, 0] >= 0).all()
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(256, dtype=q.dtype))
    torch.testing.assert_close(quaternion_to_matrix(q), r)
    # Near-180-degree rotations (w ~ 0) are the hard case.
    flips = quaternion_to_matrix(torch.tensor([[0.0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1],
                                               [1e-7, 0.6, 0.8, 0]], dtype=torch.float64))
    torch.testing.assert_close(quaternion_to_matrix(matrix_to_quaternion(flips)), flips)


def test_6d_round_trip():
    r = _random_rotations(128, seed=5)
    d6 = matrix_to_rotation_6d(r)
    torch.testing.assert_close(d6[:, :3], r[:, :, 0])  # first column, then the second
    torch.testing.assert_close(rotation_6d_to_matrix(d6), r)


def test_rotation_gradcheck():
    g = torch.Generator().manual_seed(6)
    angles = torch.randn(2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(euler_to_matrix, (angles,))
    d6 = torch.randn(2, 6, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(rotation_6d_to_matrix, (d6,))
    q = torch.randn(2, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(quaternion_to_matrix, (q,))


def test_pose_transform():
    g = torch.Generator().manual_seed(7)
    angles = torch.randn(3, 3, generator=g, dtype=torch.float64)
    t = torch.randn(3, 3, generator=g, dtype=torch.float64)
    pose = Pose.from_euler(angles, t)
    verts = torch.randn(3, 10, 3, generator=g, dtype=torch.float64)
    r = euler_to_matrix(angles)
    expect = torch.einsum("bij,bvj->bvi", r, verts) + t[:, None]
    torch.testing.assert_close(pose.transform(verts), expect)
    torch.testing.assert_close(pose.transform_normals(verts),
                               torch.einsum("bij,bvj->bvi", r, verts))
    torch.testing.assert_close(pose.inverse().transform(pose.transform(verts)), verts)
    ident = Pose.identity(3, dtype=torch.float64)
    torch.testing.assert_close(ident.transform(verts), verts)


def test_paper_camera_intrinsics():
    cam = PerspectiveCamera.paper()
    assert cam.focal_px == (PAPER_FOCAL_PX, PAPER_FOCAL_PX)
    assert cam.principal_point == (112.0, 112.0) and cam.image_size == (224, 224)
    assert cam.camera_distance == 1.0
    assert cam.fov_deg == pytest.approx(12.59, abs=0.01)
    k = cam.intrinsics(2)
    assert k.shape == (2, 3, 3)
    torch.testing.assert_close(k[0], torch.tensor([[1015.0, 0, 112], [0, 1015, 112], [0, 0, 1]]))
    big = PerspectiveCamera.paper(448)
    assert big.focal_px == (2030.0, 2030.0) and big.principal_point == (224.0, 224.0)
    assert cam.scaled((448, 448)) == big
    # A 0.2 m face fills most of the crop.
    face = torch.tensor([[[0.0, 0.1, 0.0], [0.0, -0.1, 0.0]]])
    span = cam.project(face)[0, 1, 1] - cam.project(face)[0, 0, 1]
    assert 190 < float(span) < 224


def test_project_screen_convention():
    cam = PerspectiveCamera.paper()
    pts = torch.tensor([[[0.0, 0.0, 0.0], [0.05, 0.0, 0.0], [0.0, 0.05, 0.0],
                         [0.0, 0.0, 0.1], [0.0, 0.0, -0.1]]])
    s = cam.project(pts)[0]
    torch.testing.assert_close(s[0], torch.tensor([112.0, 112.0, 1.0]))
    assert s[1, 0] > 112 and s[1, 1] == pytest.approx(112)  # +X -> image right
    assert s[2, 1] < 112 and s[2, 0] == pytest.approx(112)  # +Y -> image top (rows go down)
    assert s[3, 2] < s[0, 2] < s[4, 2]  # nearer (towards the camera at +Z) = smaller depth
    assert float(s[3, 2]) == pytest.approx(0.9)
    view = cam.to_view(pts)
    torch.testing.assert_close(-view[..., 2], cam.project(pts)[..., 2])
    torch.testing.assert_close(cam.unproject(cam.project(pts)), pts)


def test_fov_edge_lands_on_border():
    cam = PerspectiveCamera.from_fov(30.0, (120, 160), camera_distance=2.0)
    half = math.tan(math.radians(15.0))
    depth = 2.0 + 0.5  # a point behind the origin
    pts = torch.tensor([[[0.0, depth * half, -0.5], [0.0, -depth * half, -0.5],
                         [depth * half * 160 / 120, 0.0, -0.5]]], dtype=torch.float64)
    s = cam.project(pts)[0]
    torch.testing.assert_close(s[:, :2], torch.tensor([[80.0, 0.0], [80.0, 120.0], [160.0, 60.0]],
                                                      dtype=torch.float64))
    assert cam.fov_deg == pytest.approx(30.0)


def test_weak_perspective_matches_far_perspective():
    far = 1000.0
    persp = PerspectiveCamera((500.0 * far, 500.0 * far), (64.0, 64.0), (128, 128), far)
    weak = WeakPerspectiveCamera.from_perspective(persp)
    assert weak.scale == pytest.approx(500.0)
    g = torch.Generator().manual_seed(8)
    pts = (torch.rand(2, 50, 3, generator=g, dtype=torch.float64) - 0.5) * 0.2
    a, b = persp.project(pts), weak.project(pts)
    torch.testing.assert_close(a[..., 2], b[..., 2])  # identical depth for z-buffering
    assert (a[..., :2] - b[..., :2]).abs().max() < 0.01  # pixels
    torch.testing.assert_close(weak.unproject(b), pts)


def test_project_gradcheck():
    cam = PerspectiveCamera.paper()
    g = torch.Generator().manual_seed(9)
    pts = (torch.rand(2, 4, 3, generator=g, dtype=torch.float64) - 0.5) * 0.2
    pts.requires_grad_(True)
    assert torch.autograd.gradcheck(cam.project, (pts,))
    weak = WeakPerspectiveCamera(900.0, (112.0, 112.0), (224, 224))
    assert torch.autograd.gradcheck(weak.project, (pts,))


@pytest.mark.parametrize("call", [
    lambda: euler_to_matrix(torch.zeros(3)),
    lambda: euler_to_matrix(torch.zeros(2, 4)),
    lambda: euler_to_matrix(torch.zeros(2, 3, dtype=torch.int64)),
    lambda: matrix_to_euler(torch.zeros(2, 3)),
    lambda: quaternion_to_matrix(torch.zeros(2, 3)),
    lambda: matrix_to_quaternion(torch.zeros(3, 3)),
    lambda: rotation_6d_to_matrix(torch.zeros(2, 9)),
    lambda: matrix_to_rotation_6d([[1, 0, 0]]),
    lambda: Pose(torch.eye(3)[None], torch.zeros(2, 3)),
    lambda: Pose.identity(2).transform(torch.zeros(5, 3)),
    lambda: PerspectiveCamera.paper().project(torch.zeros(1, 5, 2)),
    lambda: PerspectiveCamera.paper().project(torch.zeros(5, 3)),
    lambda: PerspectiveCamera((0.0, 1.0), (1.0, 1.0), (2, 2)),
    lambda: PerspectiveCamera((1.0, 1.0), (1.0, 1.0), (2, 2), camera_distance=0.0),
    lambda: PerspectiveCamera.from_fov(0.0, 224),
    lambda: PerspectiveCamera.paper(image_size=-3),
    lambda: PerspectiveCamera.paper(image_size=(224, 300)),
    lambda: WeakPerspectiveCamera(-1.0, (1.0, 1.0), (2, 2)),
])
def test_bad_inputs_raise(call):
    with pytest.raises(InvalidInputError):
        call()


def test_error_names_argument():
    with pytest.raises(InvalidInputError, match=r"verts \(B, V, 3\), got \(2, 5023\)"):
        PerspectiveCamera.paper().project(torch.zeros(2, 5023))
