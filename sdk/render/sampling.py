"""Sampling photos at projected vertices, and per-vertex visibility.

The refiner's input in the paper is, per vertex, the photo's colour at the vertex's projection
plus whether the vertex is visible there. :func:`vertex_visibility` decides visibility (facing
the camera and not occluded, by the rasterizer's depth buffer) and :func:`sample_vertex_colors`
samples the photo bilinearly; both are vectorized over vertices.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InvalidInputError
from .rasterizer import Fragments

__all__ = ["sample_image", "vertex_visibility", "sample_vertex_colors", "region_mask"]


def sample_image(image: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of an image at pixel positions.

    Args:
        image: (B, C, H, W) float.
        points: (B, N, 2) float pixel positions (x right, y down; pixel centres at +0.5).

    Returns:
        (B, N, C); points outside the image read the border colour. Differentiable w.r.t. both.
    """
    if image.dim() != 4:
        raise InvalidInputError(f"expected image (B, C, H, W), got {tuple(image.shape)}")
    if points.dim() != 3 or points.shape[-1] != 2 or points.shape[0] != image.shape[0]:
        raise InvalidInputError(f"expected points (B={image.shape[0]}, N, 2), got "
                                f"{tuple(points.shape)}")
    h, w = image.shape[-2:]
    grid = torch.stack([points[..., 0] / w * 2 - 1, points[..., 1] / h * 2 - 1], dim=-1)
    out = F.grid_sample(image, grid[:, :, None].to(image.dtype), mode="bilinear",
                        padding_mode="border", align_corners=False)  # (B, C, N, 1)
    return out[..., 0].transpose(1, 2)


@torch.no_grad()
def vertex_visibility(screen_verts: torch.Tensor, normals_view: torch.Tensor | None,
                      fragments: Fragments, *, depth_tolerance: float = 0.01) -> torch.Tensor:
    """Which vertices the camera sees: inside the image, facing it, and not occluded.

    Args:
        screen_verts: (B, V, 3) pixels and depth (as given to the rasterizer).
        normals_view: (B, V, 3) unit normals in the camera frame (the camera on +Z looking down
            -Z), or None to skip the facing test.
        fragments: the rasterized depth buffer of the same mesh.
        depth_tolerance: a vertex is occluded when the depth buffer at its pixel is nearer than
            its own depth by more than this (same unit as depth; default 1 cm).

    Returns:
        (B, V) bool.

    The facing test uses the normal's z component in the view frame (``normals_view[..., 2] >
    0``, the camera sits on +Z looking down -Z): exact for weak perspective, and a close
    approximation for the paper's narrow (12.6 degree) field of view.
    """
    b, h, w = fragments.triangle_id.shape
    x, y, z = screen_verts[..., 0], screen_verts[..., 1], screen_verts[..., 2]
    inside = (x >= 0) & (x < w) & (y >= 0) & (y < h) & (z > 0)
    col = x.long().clamp(0, w - 1)
    row = y.long().clamp(0, h - 1)
    bidx = torch.arange(b, device=screen_verts.device)[:, None].expand_as(col)
    zbuf = fragments.depth[bidx, row, col]
    covered = fragments.triangle_id[bidx, row, col] >= 0
    visible = inside & covered & (z <= zbuf + depth_tolerance)
    if normals_view is not None:
        visible &= normals_view[..., 2] > 0
    return visible


def sample_vertex_colors(image: torch.Tensor, screen_verts: torch.Tensor,
                         visibility: torch.Tensor) -> torch.Tensor:
    """The refiner's photo input: colour at each projected vertex plus its visibility.

    Args:
        image: (B, 3, H, W) float photo, RGB in [0, 1].
        screen_verts: (B, V, 3) projected vertices (pixels, depth).
        visibility: (B, V) bool from :func:`vertex_visibility`.

    Returns:
        (B, V, 4): RGB sampled bilinearly (zero where not visible) and the visibility (0/1).
    """
    colours = sample_image(image, screen_verts[..., :2])
    vis = visibility.to(colours.dtype).unsqueeze(-1)
    return torch.cat([colours * vis, vis], dim=-1)


def region_mask(fragments: Fragments, triangles: torch.Tensor,
                vertex_ids: torch.Tensor) -> torch.Tensor:
    """(B, H, W) bool: pixels whose triangle has all three corners in a vertex region.

    Args:
        fragments: rasterizer output.
        triangles: (F, 3) int64.
        vertex_ids: (n,) int64 vertex ids of the region (e.g. ``model.regions["skin"]``).
    """
    v = int(triangles.max()) + 1 if triangles.numel() else 0
    in_region = torch.zeros(max(v, int(vertex_ids.max()) + 1 if vertex_ids.numel() else 0),
                            dtype=torch.bool, device=triangles.device)
    in_region[vertex_ids.long()] = True
    tri_in = in_region[triangles.long()].all(dim=1)
    tid = fragments.triangle_id
    return (tid >= 0) & tri_in[tid.clamp(min=0)]
