"""Preview pictures of a fitted rig: an orthographic, textured, Lambert-shaded render, and
panels (photo, reconstruction, rig) side by side for examples and reports.

Drawn with FaceCraft's own rasterizer (:mod:`facecraft.sdk.render.rasterizer`), on the CPU, in well
under a second at 512 x 512. Not a game engine's shading: a quick look that the sliders, the
texture and the expressions landed where they should.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from .rig import Rig

__all__ = ["render_rig", "render_side_by_side"]

_LIGHT = np.array([0.3, 0.4, 1.0]) / np.linalg.norm([0.3, 0.4, 1.0])


def render_rig(rig: Rig, values: Mapping[str, float] | None = None, texture: Any = None, *,
               size: int = 512, yaw_deg: float = 0.0, face_only: bool = True,
               fill: float = 0.9,
               background: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """Render a rig with some slider values, orthographically from the front.

    Args:
        rig: the rig.
        values: slider name -> value (out-of-range values are clipped); None = defaults.
        texture: (H, W, 3) uint8 or float [0, 1] texture in the rig's UV layout (row 0 = top),
            or None for a plain grey material.
        size: the square image's side in pixels, in [64, 4096].
        yaw_deg: turn the head about +Y (degrees; positive shows its left side).
        face_only: frame the rig's ``face`` region (when its sidecar has one), else the whole
            mesh (the whole head: nothing is cut off).
        fill: the fraction of the picture's side the framed part spans, in (0, 1] (less
            leaves room around it, e.g. for a label).
        background: RGB in [0, 1].

    Returns:
        (size, size, 3) uint8 RGB.
    """
    import torch

    from ..models.mesh import vertex_normals_np
    from ..render.rasterizer import RasterSettings, interpolate, rasterize
    from ..render.texture import sample_texture

    if not 64 <= int(size) <= 4096:
        raise InvalidInputError(f"size must be in [64, 4096] pixels, got {size}")
    if not 0.0 < float(fill) <= 1.0:
        raise InvalidInputError(f"fill must be in (0, 1], got {fill}")
    w = rig.weights(values, clip=True)
    verts = (rig.vertices + np.tensordot(w, rig.targets, axes=(0, 0))).astype(np.float64)
    a = np.radians(float(yaw_deg))
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    verts = verts @ rot.T
    frame = verts
    if face_only and len(rig.spec.regions.get("face", ())):
        frame = verts[rig.spec.regions["face"]]
    lo, hi = frame.min(0), frame.max(0)
    centre = (lo + hi) / 2
    scale = float(fill) * size / max(float(hi[0] - lo[0]), float(hi[1] - lo[1]), 1e-6)
    screen = np.stack([size / 2 + (verts[:, 0] - centre[0]) * scale,
                       size / 2 - (verts[:, 1] - centre[1]) * scale,
                       1.0 + (verts[:, 2].max() - verts[:, 2])], 1)
    tri = torch.from_numpy(rig.triangles.astype(np.int64))
    frags = rasterize(torch.from_numpy(screen.astype(np.float32))[None], tri,
                      RasterSettings((size, size), cull_backfaces=True))
    _, first, inverse = np.unique(rig.vertices, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    normals = vertex_normals_np(verts[first], inverse[rig.triangles])[inverse]
    shade = 0.3 + 0.7 * np.clip(normals @ _LIGHT, 0.0, 1.0)
    attrs = [shade[:, None]]
    if texture is not None and len(rig.uvs):
        attrs.append(rig.uvs.astype(np.float64))
    per_pixel = interpolate(torch.from_numpy(np.concatenate(attrs, 1).astype(np.float32)),
                            frags, tri)[0].numpy()
    mask = frags.mask[0].numpy()
    out = np.empty((size, size, 3), np.float32)
    out[:] = background
    light = per_pixel[mask, :1]
    if texture is not None and len(rig.uvs):
        tex = np.asarray(texture)
        tex = tex[..., :3].astype(np.float32) / (255.0 if tex.dtype == np.uint8 else 1.0)
        colour = sample_texture(tex, per_pixel[mask, 1:3])
    else:
        colour = np.full((int(mask.sum()), 3), 0.78, np.float32)
    out[mask] = np.clip(colour * light, 0.0, 1.0)
    return np.rint(out * 255.0).astype(np.uint8)


def render_side_by_side(images: Sequence[np.ndarray], *, height: int = 512,
                        labels: Sequence[str] | None = None, gap: int = 8) -> np.ndarray:
    """Panels scaled to one height and placed left to right, optionally labelled.

    Args:
        images: (H, W, 3) uint8 RGB pictures (e.g. the photo, the reconstruction's overlay, a
            :func:`render_rig`).
        height: the panels' height in pixels.
        labels: one caption per panel (drawn top-left), or None.
        gap: white pixels between panels.

    Returns:
        (height, W_total, 3) uint8 RGB.
    """
    import cv2

    if not images:
        raise InvalidInputError("render_side_by_side needs at least one image")
    if labels is not None and len(labels) != len(images):
        raise InvalidInputError(f"{len(labels)} labels for {len(images)} images")
    panels = []
    for k, img in enumerate(images):
        a = np.asarray(img)
        if a.ndim != 3 or a.shape[2] < 3 or a.dtype != np.uint8:
            raise InvalidInputError(f"images[{k}] must be (H, W, 3) uint8, got {a.shape} "
                                    f"{a.dtype}")
        w = max(1, round(a.shape[1] * height / a.shape[0]))
        p = cv2.resize(np.ascontiguousarray(a[..., :3]), (w, height),
                       interpolation=cv2.INTER_AREA)
        if labels is not None and labels[k]:
            _draw_label(p, labels[k])
        panels.append(p)
        if k < len(images) - 1 and gap:
            panels.append(np.full((height, gap, 3), 255, np.uint8))
    return np.concatenate(panels, 1)


def _draw_label(panel: np.ndarray, text: str) -> None:
    """Draw ``text`` top-left on ``panel`` ((H, W, 3) uint8, in place): white glyphs with a
    2-pixel black outline, readable on any background.

    The glyphs are rasterised once, as a mask, and the outline is that mask dilated: OpenCV's
    ``putText`` advances each glyph by its stroke thickness, so a thick black pass and a thin
    white pass of the same string drift apart along the line (the label looked drawn twice).
    The font scale shrinks so the label fits the panel's width.
    """
    import cv2

    h, w = panel.shape[:2]
    font, thickness = cv2.FONT_HERSHEY_SIMPLEX, 1
    scale = min(0.8, max(0.35, h / 640))
    (tw, th), base = cv2.getTextSize(text, font, scale, thickness)
    if tw > w - 20:
        scale *= (w - 20) / tw
        (tw, th), base = cv2.getTextSize(text, font, scale, thickness)
    pad = 3
    box_h, box_w = min(h, th + base + 2 * pad), min(w, tw + 2 * pad)
    mask = np.zeros((box_h, box_w), np.uint8)
    cv2.putText(mask, text, (pad, pad + th), font, scale, 255, thickness, cv2.LINE_AA)
    halo = cv2.dilate(mask, np.ones((5, 5), np.uint8))
    y0, x0 = min(8, h - box_h), min(8, w - box_w)
    region = panel[y0:y0 + box_h, x0:x0 + box_w].astype(np.float32)
    region *= 1.0 - halo[..., None] / 255.0  # black outline
    region += mask[..., None].astype(np.float32)  # white glyphs over it
    panel[y0:y0 + box_h, x0:x0 + box_w] = np.clip(region, 0, 255).astype(np.uint8)
