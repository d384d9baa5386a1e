"""The mesh renderer: pose -> camera -> rasterize -> SH-lit vertex colours -> image.

Composes the plain functions of :mod:`~facecraft.sdk.render.cameras`,
:mod:`~facecraft.sdk.render.lighting`,
:mod:`~facecraft.sdk.render.rasterizer` and :mod:`~facecraft.sdk.render.sampling` the way the paper
renders a
reconstruction onto its photo: per-vertex Lambertian colours under 27 SH coefficients,
interpolated across triangles (Gouraud), composited over the photo. Differentiable w.r.t. the
vertices, the albedo, the pose and the lighting. Used by training (gradients) and by the runtime
(wrap the call in ``torch.inference_mode()``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import InvalidInputError
from ..models.mesh import vertex_normals
from .cameras import PerspectiveCamera, Pose, WeakPerspectiveCamera
from .lighting import shade_sh
from .rasterizer import Fragments, RasterSettings, interpolate, rasterize
from .sampling import vertex_visibility

__all__ = ["RenderSettings", "RenderOutput", "render_mesh", "composite", "MeshRenderer"]

Camera = PerspectiveCamera | WeakPerspectiveCamera


@dataclass(frozen=True)
class RenderSettings:
    """How :func:`render_mesh` draws.

    Attributes:
        cull_backfaces: drop triangles facing away from the camera (faces are closed-ish
            surfaces; culling also halves the rasterizer's work).
        max_candidates: passed to the rasterizer (memory bound).
        backend: rasterizer backend, ``"torch"`` or ``"pytorch3d"``.
        depth_tolerance: metres; see :func:`~facecraft.sdk.render.sampling.vertex_visibility`.
    """

    cull_backfaces: bool = True
    max_candidates: int = 1 << 22
    backend: str = "torch"
    depth_tolerance: float = 0.005


@dataclass(frozen=True)
class RenderOutput:
    """Everything a render produces (named stage outputs, documented shapes).

    Attributes:
        image: (B, H, W, 3) float linear RGB: the lit face, zero (or the background) elsewhere.
        mask: (B, H, W) bool projection mask: pixels the face covers.
        fragments: the rasterizer's triangle ids, barycentrics and depth.
        screen_verts: (B, V, 3) pixels (x right, y down) and depth in metres.
        normals: (B, V, 3) unit vertex normals in the world (= view) frame.
        vertex_colors: (B, V, 3) lit per-vertex colours.
        visibility: (B, V) bool: vertices the camera sees (facing it and not occluded).
    """

    image: torch.Tensor
    mask: torch.Tensor
    fragments: Fragments
    screen_verts: torch.Tensor
    normals: torch.Tensor
    vertex_colors: torch.Tensor
    visibility: torch.Tensor


def composite(image: torch.Tensor, mask: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """The render over a background: ``mask ? image : background``.

    Args:
        image: (B, H, W, C) render. mask: (B, H, W) bool. background: (B, H, W, C) e.g. the photo.
    """
    if background.shape != image.shape:
        raise InvalidInputError(f"background {tuple(background.shape)} must match the render "
                                f"{tuple(image.shape)} (B, H, W, C)")
    return torch.where(mask[..., None], image, background)


def render_mesh(verts: torch.Tensor, triangles: torch.Tensor, albedo: torch.Tensor, *,
                camera: Camera, pose: Pose | None = None, sh: torch.Tensor | None = None,
                settings: RenderSettings = RenderSettings(),
                background: torch.Tensor | None = None) -> RenderOutput:
    """Render a batch of meshes sharing one topology.

    Args:
        verts: (B, V, 3) float, metres, model frame.
        triangles: (F, 3) int64, CCW seen from outside.
        albedo: (B, V, 3) float linear RGB per vertex (or any per-vertex colour).
        camera: where the image comes from (its ``image_size`` is the render size).
        pose: the head pose (model -> world), or None for identity.
        sh: (B, 27) SH lighting (channel-major, Deep3DFaceRecon's init added), or None to skip
            lighting and draw ``albedo`` as is (unlit).
        settings: see :class:`RenderSettings`.
        background: (B, H, W, 3) drawn where the face is not, e.g. the photo; None = zeros.

    Returns:
        :class:`RenderOutput`.
    """
    if verts.dim() != 3 or verts.shape[-1] != 3:
        raise InvalidInputError(f"expected verts (B, V, 3), got {tuple(verts.shape)}")
    if albedo.shape != verts.shape:
        raise InvalidInputError(f"expected albedo {tuple(verts.shape)} (B, V, 3), got "
                                f"{tuple(albedo.shape)}")
    tri = triangles.long()
    world = pose.transform(verts) if pose is not None else verts
    normals = vertex_normals(world, tri)
    colours = albedo if sh is None else shade_sh(albedo, normals, sh)
    screen = camera.project(world)
    raster = RasterSettings(camera.image_size, cull_backfaces=settings.cull_backfaces,
                            max_candidates=settings.max_candidates, backend=settings.backend)
    frags = rasterize(screen, tri, raster)
    image = interpolate(colours, frags, tri)
    if background is not None:
        image = composite(image, frags.mask, background)
    vis = vertex_visibility(screen, normals, frags, depth_tolerance=settings.depth_tolerance)
    return RenderOutput(image=image, mask=frags.mask, fragments=frags, screen_verts=screen,
                        normals=normals, vertex_colors=colours, visibility=vis)


class MeshRenderer(nn.Module):
    """A thin module around :func:`render_mesh` holding the topology, camera and settings.

    Settings can be overridden per call (``renderer(..., settings=replace(s, ...))``).
    """

    def __init__(self, triangles: torch.Tensor, camera: Camera,
                 settings: RenderSettings = RenderSettings()) -> None:
        super().__init__()
        self.register_buffer("triangles", triangles.long())
        self.camera = camera
        self.settings = settings

    def forward(self, verts: torch.Tensor, albedo: torch.Tensor, *, pose: Pose | None = None,
                sh: torch.Tensor | None = None, background: torch.Tensor | None = None,
                settings: RenderSettings | None = None) -> RenderOutput:
        return render_mesh(verts, self.triangles, albedo, camera=self.camera, pose=pose, sh=sh,
                           settings=settings or self.settings, background=background)
