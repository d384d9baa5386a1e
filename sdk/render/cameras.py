"""Rotations, head pose and the cameras of the differentiable renderer.

Everything is pure, batched, differentiable torch; nothing loops over vertices.

Frames
------
* **World / face-model frame**: right-handed, metres, +Y up, the face looking down +Z (towards the
  camera), +X on the subject's left. :class:`Pose` moves the face within this frame.
* **Camera** (the paper's and Deng et al. 2019's set-up, Deep3DFaceRecon ``ParametricFaceModel``):
  the camera sits on the +Z axis at ``(0, 0, camera_distance)``, un-rotated, looking down -Z at the
  origin with +Y up. Deep3DFaceRecon uses ``camera_distance=10`` and ``focal=1015``, ``center=112``
  for a 224 crop with its BFM in decimetres; projection is scale-free, so in metres that is a camera
  at 1.0 m with the same 1015 px focal length (vertical fov ``2 atan(112 / 1015)`` = 12.59 deg): a
  0.2 m face spans about 203 px of the 224 crop. :meth:`PerspectiveCamera.paper` builds it.
* **View space** (:meth:`PerspectiveCamera.to_view`): OpenGL-style, the camera at the origin looking
  down -Z, +X right, +Y up in the image. Because the camera is not rotated, view space is the world
  frame shifted by ``-camera_distance`` along Z, so normals are the same in both.
* **Screen** (what :meth:`PerspectiveCamera.project` returns and the rasterizer expects):
  ``(x_px, y_px, depth)``: x to the image right, y DOWN the image rows, pixel ``(row 0, col 0)``
  covering ``[0, 1) x [0, 1)`` so its centre is ``(0.5, 0.5)``; ``depth`` is the positive distance
  along the view axis in metres (``camera_distance - z_world``; smaller = nearer). The default
  principal point ``(W / 2, H / 2)`` is the image centre, the paper's 112 for 224.

Rotations
---------
Rotation matrices ``R`` act on column vectors (``p' = R p``, i.e. ``verts @ R.T`` for row-stacked
vertices). Euler angles are ``(pitch, yaw, roll)`` in radians about X, Y, Z and compose as
``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)``, matching Deep3DFaceRecon's ``compute_rotation`` (which
returns ``R.T`` because it multiplies ``pts @ rot``). Quaternions are ``(w, x, y, z)``. The 6D
representation (Zhou et al. 2019, "On the Continuity of Rotation Representations") is the first two
*columns* of ``R``, ``(R[:, 0], R[:, 1])`` (equal to PyTorch3D's first two rows of its transposed,
row-vector matrix).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import InvalidInputError

__all__ = [
    "euler_to_matrix",
    "matrix_to_euler",
    "quaternion_to_matrix",
    "matrix_to_quaternion",
    "rotation_6d_to_matrix",
    "matrix_to_rotation_6d",
    "Pose",
    "PerspectiveCamera",
    "WeakPerspectiveCamera",
    "PAPER_FOCAL_PX",
    "PAPER_IMAGE_SIZE",
    "PAPER_CAMERA_DISTANCE",
]

#: Deep3DFaceRecon's focal length in pixels for a 224 x 224 crop.
PAPER_FOCAL_PX = 1015.0
#: The paper's crop size in pixels.
PAPER_IMAGE_SIZE = 224
#: The paper's camera distance in metres (Deep3DFaceRecon's 10 decimetres).
PAPER_CAMERA_DISTANCE = 1.0


def _check(x: object, name: str, tail: tuple[int | None, ...]) -> torch.Tensor:
    """Check ``x`` is a floating-point tensor shaped ``(B, *tail)`` (``None`` in tail = ``V``)."""
    want = "(B, " + ", ".join("V" if t is None else str(t) for t in tail) + ")"
    if not isinstance(x, torch.Tensor):
        raise InvalidInputError(f"expected {name} a torch.Tensor {want}, got {type(x).__name__}")
    shape = tuple(x.shape)
    if len(shape) != len(tail) + 1 or any(t not in (None, d) for t, d in zip(tail, shape[1:],
                                                                               strict=True)):
        hint = "; add a batch dimension with .unsqueeze(0)" if x.ndim == len(tail) else ""
        raise InvalidInputError(f"expected {name} {want}, got {tuple(x.shape)}{hint}")
    if not x.is_floating_point():
        raise InvalidInputError(f"expected {name} a floating-point tensor, got {x.dtype}; "
                                "convert with .float()")
    return x


def _check_verts(x: object, name: str = "verts") -> torch.Tensor:
    return _check(x, name, (None, 3))


# ----------------------------------------------------------------------------- rotations
def euler_to_matrix(angles: torch.Tensor) -> torch.Tensor:
    """Rotation matrices from ``(pitch, yaw, roll)`` Euler angles, ``R = Rz @ Ry @ Rx``.

    Same order and signs as Deep3DFaceRecon's ``compute_rotation`` (which returns ``R.T``).

    Args:
        angles: (B, 3) float, radians: pitch about X, yaw about Y, roll about Z.

    Returns:
        (B, 3, 3) rotation matrices acting on column vectors.
    """
    _check(angles, "angles", (3,))
    c, s = torch.cos(angles), torch.sin(angles)
    cx, cy, cz = c.unbind(-1)
    sx, sy, sz = s.unbind(-1)
    row0 = torch.stack([cy * cz, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx], -1)
    row1 = torch.stack([cy * sz, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx], -1)
    row2 = torch.stack([-sy, cy * sx, cy * cx], -1)
    return torch.stack([row0, row1, row2], -2)


def matrix_to_euler(matrix: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`euler_to_matrix`.

    With ``R = Rz @ Ry @ Rx`` the middle angle (yaw) carries the gimbal lock: the result is unique
    for ``|yaw| < pi / 2`` and returns pitch, roll in ``(-pi, pi]``.

    Args:
        matrix: (B, 3, 3) rotation matrices.

    Returns:
        (B, 3) ``(pitch, yaw, roll)`` in radians.
    """
    m = _check(matrix, "matrix", (3, 3))
    pitch = torch.atan2(m[:, 2, 1], m[:, 2, 2])
    yaw = torch.atan2(-m[:, 2, 0], torch.hypot(m[:, 0, 0], m[:, 1, 0]))
    roll = torch.atan2(m[:, 1, 0], m[:, 0, 0])
    return torch.stack([pitch, yaw, roll], -1)


def quaternion_to_matrix(quaternion: torch.Tensor) -> torch.Tensor:
    """Rotation matrices from quaternions ``(w, x, y, z)`` (normalised here; any scale > 0).

    Args:
        quaternion: (B, 4) float.

    Returns:
        (B, 3, 3) rotation matrices.
    """
    q = _check(quaternion, "quaternion", (4,))
    w, x, y, z = q.unbind(-1)
    two_s = 2.0 / (q * q).sum(-1)
    m = [1 - two_s * (y * y + z * z), two_s * (x * y - z * w), two_s * (x * z + y * w),
         two_s * (x * y + z * w), 1 - two_s * (x * x + z * z), two_s * (y * z - x * w),
         two_s * (x * z - y * w), two_s * (y * z + x * w), 1 - two_s * (x * x + y * y)]
    return torch.stack(m, -1).reshape(q.shape[0], 3, 3)


def _sqrt_positive(x: torch.Tensor) -> torch.Tensor:
    """``sqrt(max(x, 0))`` with a zero (not NaN) gradient where ``x <= 0``."""
    out = torch.zeros_like(x)
    pos = x > 0
    out[pos] = torch.sqrt(x[pos])
    return out


def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """Unit quaternions ``(w, x, y, z)`` with ``w >= 0`` from rotation matrices.

    Uses the best-conditioned of the four standard formulas per matrix, so it is stable near
    180-degree rotations.

    Args:
        matrix: (B, 3, 3) rotation matrices.

    Returns:
        (B, 4) float.
    """
    m = _check(matrix, "matrix", (3, 3))
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = m.reshape(-1, 9).unbind(-1)
    q_abs = _sqrt_positive(torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22,
                                        1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1))
    cands = torch.stack([
        torch.stack([q_abs[:, 0] ** 2, m21 - m12, m02 - m20, m10 - m01], -1),
        torch.stack([m21 - m12, q_abs[:, 1] ** 2, m10 + m01, m02 + m20], -1),
        torch.stack([m02 - m20, m10 + m01, q_abs[:, 2] ** 2, m12 + m21], -1),
        torch.stack([m10 - m01, m20 + m02, m21 + m12, q_abs[:, 3] ** 2], -1),
    ], -2) / (2.0 * q_abs.clamp(min=0.1))[..., None]
    best = q_abs.argmax(-1)
    q = cands[torch.arange(m.shape[0], device=m.device), best]
    q = F.normalize(q, dim=-1)
    return torch.where(q[:, :1] < 0, -q, q)


def rotation_6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """Rotation matrices from Zhou et al.'s 6D representation via Gram-Schmidt.

    Args:
        d6: (B, 6) float: the (unnormalised) first column of ``R`` then its second column.

    Returns:
        (B, 3, 3) rotation matrices whose first two columns span the same plane.
    """
    _check(d6, "d6", (6,))
    a1, a2 = d6[:, :3], d6[:, 3:]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rotation_6d(matrix: torch.Tensor) -> torch.Tensor:
    """The 6D representation: ``R``'s first column followed by its second column.

    Args:
        matrix: (B, 3, 3) rotation matrices.

    Returns:
        (B, 6) float.
    """
    return _check(matrix, "matrix", (3, 3))[:, :, :2].transpose(1, 2).reshape(-1, 6)


# ----------------------------------------------------------------------------------- pose
@dataclass(frozen=True, eq=False)
class Pose:
    """A rigid head pose in the world frame: ``p_world = R p_model + t``.

    Attributes:
        rotation: (B, 3, 3) float rotation matrices (column-vector convention).
        translation: (B, 3) float, metres. (Deep3DFaceRecon's translation is in decimetres:
            multiply it by 0.1.)
    """

    rotation: torch.Tensor
    translation: torch.Tensor

    def __post_init__(self) -> None:
        _check(self.rotation, "rotation", (3, 3))
        _check(self.translation, "translation", (3,))
        if self.rotation.shape[0] != self.translation.shape[0]:
            raise InvalidInputError(
                f"rotation has batch {self.rotation.shape[0]} but translation has batch "
                f"{self.translation.shape[0]}; give one translation per rotation")

    @classmethod
    def from_euler(cls, angles: torch.Tensor, translation: torch.Tensor | None = None) -> Pose:
        """A pose from ``(pitch, yaw, roll)`` radians (see :func:`euler_to_matrix`).

        Args:
            angles: (B, 3) float, radians.
            translation: (B, 3) float metres, or ``None`` for zero.
        """
        rot = euler_to_matrix(angles)
        if translation is None:
            translation = angles.new_zeros(angles.shape[0], 3)
        return cls(rot, translation)

    @classmethod
    def identity(cls, batch_size: int = 1, *, dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None) -> Pose:
        """The identity pose, batched."""
        return cls(torch.eye(3, dtype=dtype, device=device).expand(batch_size, 3, 3).clone(),
                   torch.zeros(batch_size, 3, dtype=dtype, device=device))

    def transform(self, verts: torch.Tensor) -> torch.Tensor:
        """Apply the pose to points: ``verts @ R.T + t``.

        Args:
            verts: (B, V, 3) float, metres, model frame.

        Returns:
            (B, V, 3) float, metres, world frame.
        """
        _check_verts(verts)
        return verts @ self.rotation.transpose(1, 2) + self.translation[:, None, :]

    def transform_normals(self, normals: torch.Tensor) -> torch.Tensor:
        """Rotate directions (normals) into the world frame: ``normals @ R.T``.

        Args:
            normals: (B, V, 3) float unit vectors, model frame.

        Returns:
            (B, V, 3) float unit vectors, world (= view) frame.
        """
        _check_verts(normals, "normals")
        return normals @ self.rotation.transpose(1, 2)

    def inverse(self) -> Pose:
        """The inverse pose: ``p_model = R.T (p_world - t)``."""
        rt = self.rotation.transpose(1, 2)
        return Pose(rt, -(rt @ self.translation[..., None])[..., 0])


# -------------------------------------------------------------------------------- cameras
def _size_hw(image_size: int | tuple[int, int]) -> tuple[int, int]:
    hw = (image_size, image_size) if isinstance(image_size, int) else image_size
    if (not isinstance(hw, tuple | list) or len(hw) != 2
            or not all(isinstance(v, int) and v > 0 for v in hw)):
        raise InvalidInputError(
            f"expected image_size a positive int or (H, W) ints, got {image_size!r}")
    return int(hw[0]), int(hw[1])


def _to_view(verts: torch.Tensor, camera_distance: float) -> torch.Tensor:
    _check_verts(verts)
    return verts - verts.new_tensor([0.0, 0.0, camera_distance])


def _pair(v: tuple[float, float], name: str) -> tuple[float, float]:
    try:
        a, b = (float(x) for x in v)
    except (TypeError, ValueError):
        raise InvalidInputError(f"expected {name} a pair of numbers, got {v!r}") from None
    return a, b


@dataclass(frozen=True)
class PerspectiveCamera:
    """A pinhole camera on the +Z axis looking at the origin (see the module docstring).

    Attributes:
        focal_px: ``(fx, fy)`` focal lengths in pixels, > 0.
        principal_point: ``(cx, cy)`` in pixels, screen convention (pixel (0, 0)'s centre at
            (0.5, 0.5)); ``(W / 2, H / 2)`` is the image centre.
        image_size: ``(H, W)`` in pixels.
        camera_distance: metres from the origin to the camera along +Z, > 0.
    """

    focal_px: tuple[float, float]
    principal_point: tuple[float, float]
    image_size: tuple[int, int]
    camera_distance: float = PAPER_CAMERA_DISTANCE

    def __post_init__(self) -> None:
        object.__setattr__(self, "focal_px", _pair(self.focal_px, "focal_px"))
        object.__setattr__(self, "principal_point",
                           _pair(self.principal_point, "principal_point"))
        object.__setattr__(self, "image_size", _size_hw(self.image_size))
        object.__setattr__(self, "camera_distance", float(self.camera_distance))
        if min(self.focal_px) <= 0:
            raise InvalidInputError(f"expected focal_px > 0, got {self.focal_px}")
        if not self.camera_distance > 0:
            raise InvalidInputError(f"expected camera_distance > 0 m, got {self.camera_distance}")

    @classmethod
    def from_fov(cls, fov_deg: float, image_size: int | tuple[int, int],
                 camera_distance: float = PAPER_CAMERA_DISTANCE) -> PerspectiveCamera:
        """A camera with square pixels from its *vertical* field of view.

        Args:
            fov_deg: full vertical field of view in degrees, in (0, 180).
            image_size: ``H`` (square) or ``(H, W)`` in pixels.
            camera_distance: metres.
        """
        if not 0 < fov_deg < 180:
            raise InvalidInputError(f"expected fov_deg in (0, 180) degrees, got {fov_deg}")
        h, w = _size_hw(image_size)
        f = (h / 2) / math.tan(math.radians(fov_deg) / 2)
        return cls((f, f), (w / 2, h / 2), (h, w), camera_distance)

    @classmethod
    def paper(cls, image_size: int = PAPER_IMAGE_SIZE) -> PerspectiveCamera:
        """The paper's / Deep3DFaceRecon's camera: 1015 px focal at 224 px, 1.0 m away.

        Args:
            image_size: square crop size in pixels; the focal length scales with it.
        """
        if not isinstance(image_size, int):
            raise InvalidInputError(f"expected image_size one int (the paper's crop is square), "
                                    f"got {image_size!r}; use .scaled((H, W)) to stretch")
        h, w = _size_hw(image_size)
        base = cls((PAPER_FOCAL_PX,) * 2, (PAPER_IMAGE_SIZE / 2,) * 2,
                   (PAPER_IMAGE_SIZE, PAPER_IMAGE_SIZE), PAPER_CAMERA_DISTANCE)
        return base.scaled((h, w))

    @property
    def fov_deg(self) -> float:
        """Full vertical field of view in degrees (for a centred principal point)."""
        return math.degrees(2 * math.atan((self.image_size[0] / 2) / self.focal_px[1]))

    def scaled(self, image_size: int | tuple[int, int]) -> PerspectiveCamera:
        """The same camera rendering at another resolution (same field of view).

        ``fx`` and ``cx`` scale with the width, ``fy`` and ``cy`` with the height, so every
        continuous screen position maps to the same relative place in the new image (a different
        aspect ratio stretches it).
        """
        h, w = _size_hw(image_size)
        sy, sx = h / self.image_size[0], w / self.image_size[1]
        return PerspectiveCamera((self.focal_px[0] * sx, self.focal_px[1] * sy),
                                 (self.principal_point[0] * sx, self.principal_point[1] * sy),
                                 (h, w), self.camera_distance)

    def intrinsics(self, batch_size: int | None = None, *, dtype: torch.dtype = torch.float32,
                   device: torch.device | str | None = None) -> torch.Tensor:
        """The 3x3 matrix ``K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``.

        ``K`` maps OpenCV camera coordinates ``(x_v, -y_v, -z_v)`` (x right, y down, z forward)
        to homogeneous screen pixels.

        Returns:
            (3, 3), or (B, 3, 3) when ``batch_size`` is given.
        """
        (fx, fy), (cx, cy) = self.focal_px, self.principal_point
        k = torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=dtype,
                         device=device)
        return k if batch_size is None else k.expand(batch_size, 3, 3).clone()

    def to_view(self, verts: torch.Tensor) -> torch.Tensor:
        """World to OpenGL view space (camera at the origin looking down -Z, +Y up).

        Args:
            verts: (B, V, 3) float, metres, world frame.

        Returns:
            (B, V, 3) float, metres; points in front of the camera have ``z < 0``.
        """
        return _to_view(verts, self.camera_distance)

    def project(self, verts: torch.Tensor) -> torch.Tensor:
        """World points to screen ``(x_px, y_px, depth)``.

        Args:
            verts: (B, V, 3) float, metres, world frame.

        Returns:
            (B, V, 3) float: pixel x (right), pixel y (down), depth in metres (positive in front
            of the camera, smaller = nearer). Points with depth <= 0 are behind the camera; their
            pixel coordinates are meaningless and the rasterizer must cull them.
        """
        v = self.to_view(verts)
        depth = -v[..., 2]
        x = self.principal_point[0] + self.focal_px[0] * v[..., 0] / depth
        y = self.principal_point[1] - self.focal_px[1] * v[..., 1] / depth
        return torch.stack([x, y, depth], -1)

    def unproject(self, screen: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`project`.

        Args:
            screen: (B, V, 3) float ``(x_px, y_px, depth)``, depth in metres.

        Returns:
            (B, V, 3) float, metres, world frame.
        """
        _check_verts(screen, "screen")
        depth = screen[..., 2]
        x = (screen[..., 0] - self.principal_point[0]) * depth / self.focal_px[0]
        y = -(screen[..., 1] - self.principal_point[1]) * depth / self.focal_px[1]
        return torch.stack([x, y, self.camera_distance - depth], -1)


@dataclass(frozen=True)
class WeakPerspectiveCamera:
    """Scaled orthographic projection along -Z: ``x_px = cx + s x``, ``y_px = cy - s y``.

    Attributes:
        scale: pixels per metre, > 0.
        principal_point: ``(cx, cy)`` pixels where the world origin lands (screen convention).
        image_size: ``(H, W)`` in pixels.
        camera_distance: metres; only used for ``depth = camera_distance - z``, the same depth a
            :class:`PerspectiveCamera` at that distance gives, so z-buffering is unchanged.
    """

    scale: float
    principal_point: tuple[float, float]
    image_size: tuple[int, int]
    camera_distance: float = PAPER_CAMERA_DISTANCE

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", float(self.scale))
        object.__setattr__(self, "principal_point",
                           _pair(self.principal_point, "principal_point"))
        object.__setattr__(self, "image_size", _size_hw(self.image_size))
        object.__setattr__(self, "camera_distance", float(self.camera_distance))
        if not self.scale > 0:
            raise InvalidInputError(f"expected scale > 0 px/m, got {self.scale}")
        if not self.camera_distance > 0:
            raise InvalidInputError(f"expected camera_distance > 0 m, got {self.camera_distance}")

    @classmethod
    def from_perspective(cls, camera: PerspectiveCamera) -> WeakPerspectiveCamera:
        """The weak-perspective approximation of ``camera`` at the origin's depth (``fy / d``)."""
        return cls(camera.focal_px[1] / camera.camera_distance, camera.principal_point,
                   camera.image_size, camera.camera_distance)

    def to_view(self, verts: torch.Tensor) -> torch.Tensor:
        """World to view space, as :meth:`PerspectiveCamera.to_view`."""
        return _to_view(verts, self.camera_distance)

    def project(self, verts: torch.Tensor) -> torch.Tensor:
        """World points to screen ``(x_px, y_px, depth)``; see :meth:`PerspectiveCamera.project`.

        Args:
            verts: (B, V, 3) float, metres, world frame.

        Returns:
            (B, V, 3) float: pixel x (right), pixel y (down), depth in metres.
        """
        _check_verts(verts)
        x = self.principal_point[0] + self.scale * verts[..., 0]
        y = self.principal_point[1] - self.scale * verts[..., 1]
        return torch.stack([x, y, self.camera_distance - verts[..., 2]], -1)

    def unproject(self, screen: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`project`: (B, V, 3) screen to (B, V, 3) world metres."""
        _check_verts(screen, "screen")
        x = (screen[..., 0] - self.principal_point[0]) / self.scale
        y = -(screen[..., 1] - self.principal_point[1]) / self.scale
        return torch.stack([x, y, self.camera_distance - screen[..., 2]], -1)
