"""UV texture baking: per-vertex colours (or any attribute) rasterized into a texture image.

Baking draws the mesh *in UV space* with :func:`facecraft.sdk.render.rasterizer.rasterize`: a UV
vertex ``(u, v)`` (OBJ convention, origin bottom-left) lands at screen
``x = (u - tile_u) * W``, ``y = (1 - (v - tile_v)) * H``, depth 1, so image row 0 is the top of
the texture (``v = 1``) and texel (row i, column j) has its centre at
``u = tile_u + (j + 0.5) / W``, ``v = tile_v + 1 - (i + 0.5) / H``, exactly where
:func:`sample_texture` (bilinear, ``align_corners=False``) reads it back. Each texel whose centre
lies inside a UV triangle gets the barycentric (linear) interpolation of that triangle's corner
values: a convex combination, so colours in [0, 1] stay in [0, 1].

Per-vertex values reach the UV vertices through the corner correspondence ``triangles`` vs
``uv_triangles``: a UV vertex takes the value of the 3D vertex of any corner that uses it (a UV
vertex shared by different 3D vertices only occurs in degenerate layouts). Seams are therefore
exact: both sides of a seam carry the same vertex colours.

UDIM: layouts may spread over tiles ``u in [0, n)`` (ICT-FaceKit uses seven). One call bakes one
tile (:attr:`BakeSettings.tile`, default ``(0, 0)`` = UDIM 1001, ``u, v in [0, 1)``); triangles
of other tiles fall outside the image and are simply not drawn. A triangle that straddles a
tile border is cut at the border.

Seams and mip-mapping: texels outside every UV island would stay black and bleed into the
islands when an engine filters or mip-maps the texture, showing cracks along seams.
:func:`dilate_texture` grows every island outward by ``BakeSettings.dilate`` texels (repeated
3x3 masked averages of already-filled neighbours), leaving covered texels untouched.

Everything is vectorized torch (CPU or CUDA, on the device of the values given) and
differentiable with respect to the baked values: a 2048 x 2048 bake of the 12k-triangle starter
head takes about 1 s on a 2-core CPU, most of it in the rasterizer; 1024 x 1024 about 0.25 s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.render.rasterizer import RasterSettings, rasterize

__all__ = [
    "BakeSettings",
    "TextureBake",
    "UVLayout",
    "bake_texture",
    "bake_corner_attributes",
    "dilate_texture",
    "sample_texture",
    "MIN_TEXTURE_SIZE",
    "MAX_TEXTURE_SIZE",
]

#: Smallest and largest square texture :class:`BakeSettings` accepts, in texels.
MIN_TEXTURE_SIZE = 256
MAX_TEXTURE_SIZE = 2048

_EPS_WEIGHT = 1e-6  # baked weight below which a texel counts as unweighted


@dataclass(frozen=True)
class BakeSettings:
    """How to bake a texture.

    Attributes:
        size: the texture is ``size x size`` texels, an integer in [256, 2048] (a power of two
            suits engines' mip-mapping best, but is not required).
        dilate: how many texels to grow every UV island into the empty gutter
            (:func:`dilate_texture`); 0 leaves empty texels at zero. At most ``size``.
        tile: the UDIM tile to bake, ``(tile_u, tile_v)`` with ``tile_u`` in [0, 10) and
            ``tile_v >= 0`` (UDIM number ``1001 + tile_u + 10 * tile_v``): the texture covers
            ``u in [tile_u, tile_u + 1)``, ``v in [tile_v, tile_v + 1)``.
    """

    size: int = 1024
    dilate: int = 16
    tile: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, (int, np.integer)) \
                or not MIN_TEXTURE_SIZE <= self.size <= MAX_TEXTURE_SIZE:
            raise InvalidInputError(
                f"size must be an integer in [{MIN_TEXTURE_SIZE}, {MAX_TEXTURE_SIZE}] texels, "
                f"got {self.size!r}; e.g. BakeSettings(size=1024)")
        if isinstance(self.dilate, bool) or not isinstance(self.dilate, (int, np.integer)) \
                or not 0 <= self.dilate <= self.size:
            raise InvalidInputError(f"dilate must be an integer in [0, size={self.size}] texels, "
                                    f"got {self.dilate!r}")
        try:
            tu, tv = (int(t) for t in self.tile)
            ok = (tu, tv) == tuple(self.tile) and 0 <= tu < 10 and tv >= 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise InvalidInputError(f"tile must be (tile_u in [0, 10), tile_v >= 0), got "
                                    f"{self.tile!r}; UDIM 1001 is (0, 0), 1002 is (1, 0)")
        object.__setattr__(self, "size", int(self.size))
        object.__setattr__(self, "dilate", int(self.dilate))
        object.__setattr__(self, "tile", (tu, tv))

    @property
    def udim(self) -> int:
        """The tile's UDIM number (1001 for tile (0, 0))."""
        return 1001 + self.tile[0] + 10 * self.tile[1]


@dataclass(frozen=True)
class TextureBake:
    """A baked texture.

    Attributes:
        image: (H, W, C) float32 tensor (C = 3 for colours), row 0 = top (``v = 1``), on the
            device of the baked values; dilated into the gutter by ``settings.dilate`` texels,
            zero beyond. Differentiable with respect to the baked values.
        mask: (H, W) bool, texels whose centre a UV triangle covers (before dilation).
        triangle_id: (H, W) int64 index of the triangle covering each texel, -1 where none.
        weight: (H, W) float32 interpolated weight (dilated like ``image``) when weights were
            given, else ``None``: how much of each texel comes from weighted (e.g. visible)
            vertices; blend ``weight * image + (1 - weight) * fallback``.
        settings: the settings used.
    """

    image: torch.Tensor
    mask: torch.Tensor
    triangle_id: torch.Tensor
    weight: torch.Tensor | None
    settings: BakeSettings


@dataclass(frozen=True)
class UVLayout:
    """A bare UV layout, for baking meshes that are neither a MorphableModel nor an ObjMesh.

    Attributes:
        triangles: (F, 3) integer vertex indices.
        uvs: (U, 2) float texture coordinates, origin bottom-left (OBJ convention), UDIM allowed.
        uv_triangles: (F, 3) integer indices into ``uvs`` per triangle corner.
        num_vertices: V, the number of 3D vertices (``None``: ``triangles.max() + 1``).
    """

    triangles: np.ndarray
    uvs: np.ndarray
    uv_triangles: np.ndarray
    num_vertices: int | None = None


# --------------------------------------------------------------------------- helpers
def _as_tensor(name: str, x: Any, device: torch.device | None = None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x if device is None else x.to(device)
    else:
        a = np.asarray(x)
        if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise InvalidInputError(f"expected {name} as a float array, got dtype {a.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(a, np.float32))
        if device is not None:
            t = t.to(device)
    if not t.is_floating_point():
        t = t.float()
    return t


def _layout(mesh: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, int | None]:
    """(triangles, uvs, uv_triangles, V or None) of a MorphableModel, ObjMesh or UVLayout."""
    try:
        tri = np.asarray(mesh.triangles)
        uvs = np.asarray(mesh.uvs, np.float64)
        uv_tri = np.asarray(mesh.uv_triangles)
    except AttributeError:
        raise InvalidInputError(
            f"expected a mesh with triangles, uvs and uv_triangles (MorphableModel, ObjMesh or "
            f"UVLayout), got {type(mesh).__name__}") from None
    nv = getattr(mesh, "num_vertices", None)
    if nv is None and getattr(mesh, "vertices", None) is not None:
        nv = len(mesh.vertices)
    if tri.ndim != 2 or tri.shape[1] != 3 or not len(tri):
        raise InvalidInputError(f"expected triangles (F, 3) with F > 0, got {tri.shape}")
    if uvs.ndim != 2 or uvs.shape[1] != 2 or not len(uvs) or uv_tri.shape != tri.shape:
        raise InvalidInputError(
            f"the mesh has no UV layout to bake into (uvs {uvs.shape}, uv_triangles "
            f"{uv_tri.shape}, triangles {tri.shape}); import a model with UVs")
    if uv_tri.min() < 0 or uv_tri.max() >= len(uvs):
        raise InvalidInputError(f"uv_triangles index outside [0, {len(uvs)})")
    if not np.isfinite(uvs).all():
        raise InvalidInputError("uvs contain NaN or infinite values")
    return tri.astype(np.int64), uvs, uv_tri.astype(np.int64), nv


def _screen(uvs: np.ndarray, settings: BakeSettings) -> torch.Tensor:
    """(N, 2) UVs -> (1, N, 3) float32 screen vertices of the UV-space bake."""
    s = settings.size
    tu, tv = settings.tile
    x = (uvs[:, 0] - tu) * s
    y = (1.0 - (uvs[:, 1] - tv)) * s
    return torch.from_numpy(np.stack([x, y, np.ones_like(x)], -1).astype(np.float32))[None]


def _bake(uvs: np.ndarray, tri: np.ndarray, attrs: torch.Tensor, weights: torch.Tensor | None,
          settings: BakeSettings) -> TextureBake:
    """Rasterize ``tri`` over ``uvs`` and interpolate (N, C) ``attrs`` (optionally weighted)."""
    dev = attrs.device
    s = settings.size
    c = attrs.shape[1]
    tri_t = torch.from_numpy(tri).to(dev)
    frags = rasterize(_screen(uvs, settings).to(dev), tri_t, RasterSettings((s, s)))
    tid = frags.triangle_id[0]
    mask = tid >= 0
    cov = torch.nonzero(mask.reshape(-1), as_tuple=True)[0]
    bary = frags.bary[0].reshape(-1, 3)[cov].detach().to(attrs.dtype)  # (n, 3)
    corner = tri_t[tid.reshape(-1)[cov]]  # (n, 3) vertex ids
    if weights is not None:
        w = weights[:, None]
        chans = torch.cat([attrs * w, w, attrs], dim=1)
    else:
        chans = attrs
    vals = torch.einsum("nk,nkc->nc", bary, chans[corner])  # (n, C') convex combinations
    if weights is not None:
        wsum = vals[:, c:c + 1]
        weighted = vals[:, :c] / wsum.clamp(min=_EPS_WEIGHT)
        colour = torch.where(wsum > _EPS_WEIGHT, weighted, vals[:, c + 1:])
        vals = torch.cat([colour, wsum.clamp(0.0, 1.0)], dim=1)
    img = vals.new_zeros(s * s, vals.shape[1]).index_put((cov,), vals).view(s, s, -1)
    if settings.dilate:
        img = dilate_texture(img, mask, settings.dilate)
    return TextureBake(
        image=img[..., :c],
        mask=mask,
        triangle_id=tid,
        weight=img[..., c] if weights is not None else None,
        settings=settings,
    )


# --------------------------------------------------------------------------- public API
def bake_texture(mesh: Any, vertex_colors: Any, settings: BakeSettings | None = None, *,
                 weights: Any = None) -> TextureBake:
    """Bake per-vertex values (usually linear RGB albedo) into the mesh's UV layout.

    Args:
        mesh: anything with ``triangles`` (F, 3), ``uvs`` (U, 2) and ``uv_triangles`` (F, 3): a
            :class:`~facecraft.sdk.models.morphable_model.MorphableModel`, an
            :class:`~facecraft.sdk.models.mesh.ObjMesh` or a :class:`UVLayout`.
        vertex_colors: (V, C) float per-vertex values, torch tensor or NumPy array (colours: RGB
            in [0, 1], C = 3). The bake runs on the tensor's device and is differentiable with
            respect to it.
        settings: texture size, gutter dilation and UDIM tile (default :class:`BakeSettings`).
        weights: optional (V,) per-vertex weights in [0, 1] (e.g. photo visibility). Texels
            then take the weight-normalised interpolation ``sum(b w c) / sum(b w)`` (only
            weighted vertices' colours; the plain interpolation where every weight is 0) and
            :attr:`TextureBake.weight` carries ``sum(b w)`` for blending with a fallback.

    Returns:
        :class:`TextureBake` with a (size, size, C) float32 image.

    Raises:
        InvalidInputError: no UV layout, or arrays of the wrong shape.
    """
    settings = BakeSettings() if settings is None else settings
    tri, uvs, uv_tri, nv = _layout(mesh)
    colors = _as_tensor("vertex_colors", vertex_colors)
    if colors.dim() != 2 or colors.shape[1] < 1:
        raise InvalidInputError(f"expected vertex_colors (V, C), got {tuple(colors.shape)}")
    v = colors.shape[0]
    if (nv is not None and v != nv) or tri.max() >= v:
        raise InvalidInputError(f"vertex_colors has {v} rows, the mesh has "
                                f"{nv if nv is not None else int(tri.max()) + 1} vertices")
    if not torch.isfinite(colors).all():
        raise InvalidInputError("vertex_colors contain NaN or infinite values")
    w = None
    if weights is not None:
        w = _as_tensor("weights", weights, colors.device).to(colors.dtype)
        if w.shape != (v,):
            raise InvalidInputError(f"expected weights ({v},), got {tuple(w.shape)}")
        if not torch.isfinite(w).all() or (w < 0).any():
            raise InvalidInputError("weights must be finite and >= 0 (visibility in [0, 1])")
    # each UV vertex takes the 3D vertex of a corner that uses it (unused UVs: vertex 0)
    uv_to_vertex = np.zeros(len(uvs), np.int64)
    uv_to_vertex[uv_tri.ravel()] = tri.ravel()
    idx = torch.from_numpy(uv_to_vertex).to(colors.device)
    return _bake(uvs, uv_tri, colors[idx], None if w is None else w[idx], settings)


def bake_corner_attributes(corner_uvs: Any, corner_values: Any,
                           settings: BakeSettings | None = None, *,
                           weights: Any = None) -> TextureBake:
    """Bake values given per triangle corner (the general case of :func:`bake_texture`).

    Use it for values that may differ on the two sides of a seam, or per-face data.

    Args:
        corner_uvs: (F, 3, 2) float UV of each corner (e.g. ``model.corner_uvs``).
        corner_values: (F, 3, C) float values at each corner, torch or NumPy.
        settings: see :class:`BakeSettings`.
        weights: optional (F, 3) per-corner weights >= 0, as in :func:`bake_texture`.

    Returns:
        :class:`TextureBake` (``triangle_id`` indexes the F triangles).
    """
    settings = BakeSettings() if settings is None else settings
    cu = np.asarray(corner_uvs.detach().cpu() if isinstance(corner_uvs, torch.Tensor)
                    else corner_uvs, np.float64)
    if cu.ndim != 3 or cu.shape[1:] != (3, 2) or not len(cu):
        raise InvalidInputError(f"expected corner_uvs (F, 3, 2), got {cu.shape}")
    if not np.isfinite(cu).all():
        raise InvalidInputError("corner_uvs contain NaN or infinite values")
    f = len(cu)
    vals = _as_tensor("corner_values", corner_values)
    if vals.dim() != 3 or vals.shape[:2] != (f, 3):
        raise InvalidInputError(f"expected corner_values ({f}, 3, C), got {tuple(vals.shape)}")
    w = None
    if weights is not None:
        w = _as_tensor("weights", weights, vals.device).to(vals.dtype)
        if w.shape != (f, 3):
            raise InvalidInputError(f"expected weights ({f}, 3), got {tuple(w.shape)}")
        if not torch.isfinite(w).all() or (w < 0).any():
            raise InvalidInputError("weights must be finite and >= 0")
        w = w.reshape(-1)
    tri = np.arange(3 * f, dtype=np.int64).reshape(f, 3)
    return _bake(cu.reshape(-1, 2), tri, vals.reshape(3 * f, -1), w, settings)


def dilate_texture(image: Any, mask: Any, iterations: int) -> Any:
    """Grow the covered texels of a texture outward into the empty ones (seam padding).

    Each iteration gives every empty texel that has at least one filled 3x3 neighbour the
    average of its filled neighbours, then marks it filled; after ``n`` iterations every empty
    texel within ``n`` texels (chessboard distance) of a covered one is filled. Covered texels
    never change; texels further away keep their value.

    Args:
        image: (H, W, C) float texture (torch tensor or NumPy array).
        mask: (H, W) bool, the covered texels.
        iterations: gutter width in texels, >= 0.

    Returns:
        The dilated (H, W, C) image: a tensor of the input's dtype and device for tensor input
        (differentiable with respect to it), else a float32 NumPy array.
    """
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) \
            or iterations < 0:
        raise InvalidInputError(f"iterations must be an integer >= 0, got {iterations!r}")
    as_numpy = not isinstance(image, torch.Tensor)
    img = _as_tensor("image", image)
    m = mask if isinstance(mask, torch.Tensor) else torch.from_numpy(np.asarray(mask))
    m = m.to(img.device)
    if img.dim() != 3 or m.shape != img.shape[:2] or m.dtype != torch.bool:
        raise InvalidInputError(f"expected image (H, W, C) and a bool mask (H, W), got "
                                f"{tuple(img.shape)} and {tuple(m.shape)} {m.dtype}")
    if iterations == 0 or bool(m.all()) or not bool(m.any()):
        out = img
    else:
        out = _dilate_layers(img, m, int(iterations))
    return out.detach().cpu().numpy() if as_numpy else out


def _dilate_layers(img: torch.Tensor, mask: torch.Tensor, n: int) -> torch.Tensor:
    """:func:`dilate_texture` touching only the gutter band, one vectorized step per ring.

    An empty texel at chessboard distance k from the covered set is filled at iteration k of
    the plain algorithm, from its 3x3 neighbours at distance < k. So: compute the distance
    (OpenCV's exact chessboard transform), then for k = 1..n average, for all ring-k texels at
    once, the neighbours of lower rings. Same result, work proportional to the band, not to
    ``n`` full-image passes.
    """
    import cv2

    h, w, c = img.shape
    empty = (~mask).cpu().numpy().astype(np.uint8)
    dist = cv2.distanceTransform(empty, cv2.DIST_C, 3)  # 0 on covered texels
    ring = np.full((h + 2, w + 2), np.iinfo(np.int32).max, np.int32)  # padded: border never used
    ring[1:-1, 1:-1] = np.minimum(np.rint(dist), n + 1).astype(np.int32)
    ring[1:-1, 1:-1][ring[1:-1, 1:-1] > n] = np.iinfo(np.int32).max
    flat_ring = ring.reshape(-1)
    band = np.flatnonzero((flat_ring >= 1) & (flat_ring <= n))
    band = band[np.argsort(flat_ring[band], kind="stable")]
    starts = np.searchsorted(flat_ring[band], np.arange(1, n + 2))
    offsets = np.array([dy * (w + 2) + dx for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                        if dy or dx])
    dev = img.device
    x = F.pad(img.permute(2, 0, 1), (1, 1, 1, 1)).permute(1, 2, 0).reshape(-1, c)
    ring_t = torch.from_numpy(flat_ring).to(dev)
    for k in range(1, n + 1):
        a, b = int(starts[k - 1]), int(starts[k])
        if a == b:
            break
        idx = torch.from_numpy(band[a:b]).to(dev)
        nb = idx[:, None] + torch.from_numpy(offsets).to(dev)  # (m, 8)
        use = (ring_t[nb] < k).to(x.dtype)  # filled before ring k (>= 1 by construction)
        vals = (x[nb] * use[..., None]).sum(1) / use.sum(1, keepdim=True)
        x = x.index_put((idx,), vals) if x.requires_grad else x.index_put_((idx,), vals)
    return x.view(h + 2, w + 2, c)[1:-1, 1:-1]


def sample_texture(image: Any, uvs: Any, *, tile: tuple[int, int] = (0, 0)) -> Any:
    """Bilinearly sample a texture at UV coordinates (the inverse of baking).

    Texel (row i, column j) is centred at ``u = tile_u + (j + 0.5) / W``,
    ``v = tile_v + 1 - (i + 0.5) / H`` (``grid_sample`` with ``align_corners=False``); UVs
    outside the tile clamp to its border texels.

    Args:
        image: (H, W, C) float texture, row 0 = top (``v = tile_v + 1``); torch or NumPy.
        uvs: (N, 2) float UVs, origin bottom-left (OBJ convention).
        tile: the UDIM tile the image covers, ``(tile_u, tile_v)``.

    Returns:
        (N, C) sampled values; a tensor (differentiable with respect to image and uvs) for
        tensor input, else a float32 NumPy array.
    """
    as_numpy = not isinstance(image, torch.Tensor)
    img = _as_tensor("image", image)
    uv = _as_tensor("uvs", uvs, img.device).to(img.dtype)
    if img.dim() != 3:
        raise InvalidInputError(f"expected image (H, W, C), got {tuple(img.shape)}")
    if uv.dim() != 2 or uv.shape[1] != 2:
        raise InvalidInputError(f"expected uvs (N, 2), got {tuple(uv.shape)}")
    tu, tv = tile
    gx = 2.0 * (uv[:, 0] - tu) - 1.0
    gy = 2.0 * (1.0 - (uv[:, 1] - tv)) - 1.0
    grid = torch.stack([gx, gy], -1)[None, None]  # (1, 1, N, 2)
    out = F.grid_sample(img.permute(2, 0, 1)[None], grid, mode="bilinear",
                        padding_mode="border", align_corners=False)  # (1, C, 1, N)
    out = out[0, :, 0].T
    return out.detach().cpu().numpy() if as_numpy else out
