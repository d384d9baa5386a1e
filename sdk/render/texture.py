"""UV texture baking: per-vertex colours (or any attribute) rasterized into a texture image.

This is FaceCraft's one UV baker: the pipeline (``facecraft create``), the gRPC service and the
rig texture transfer all bake through :class:`UVBaker`, and every texture side is checked
against one range (:data:`MIN_TEXTURE_SIZE`, :data:`MAX_TEXTURE_SIZE`, default
:data:`DEFAULT_TEXTURE_SIZE`).

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
islands when an engine filters or mip-maps the texture, showing cracks along seams. Every empty
texel within ``BakeSettings.dilate`` texels (chessboard distance) of an island copies its
nearest covered texel (Euclidean distance, OpenCV's 5x5 distance transform); covered texels
never change (:func:`dilate_texture`).

Precomputed once: a texel's value is linear in the vertex values (its triangle's barycentrics,
or those of the covered texel it copies), so :class:`UVBaker` rasterizes the layout and solves
the dilation once per (layout, settings); each bake is then one gather (torch, differentiable,
on the values' device) or one sparse (T*T, V) product (:meth:`UVBaker.bake_uint8`, NumPy).
:class:`UVBakerCache` keeps one baker per texture size for a layout (the pipeline and rig
fitters hold one). For the 12k-triangle starter head on one CPU thread (a shared 2-core
machine): building a 1024 x 1024 baker takes about 1 s, a uint8 bake with it about 20 ms (a
float torch bake about 0.1 s); at 2048 x 2048 about 4.4 s, 0.1 s and 0.5 s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InvalidInputError
from .rasterizer import RasterSettings, rasterize

__all__ = [
    "BakeSettings",
    "TextureBake",
    "UVLayout",
    "UVMesh",
    "UVBaker",
    "UVBakerCache",
    "bake_texture",
    "bake_corner_attributes",
    "dilate_texture",
    "sample_texture",
    "check_texture_size",
    "MIN_TEXTURE_SIZE",
    "MAX_TEXTURE_SIZE",
    "DEFAULT_TEXTURE_SIZE",
    "DEFAULT_TEXTURE_DILATE",
]

#: Smallest and largest square texture side FaceCraft bakes, in texels (the pipeline, the gRPC
#: service, rigs and the CLI all check against these).
MIN_TEXTURE_SIZE = 256
MAX_TEXTURE_SIZE = 2048
#: The texture side when none is given, in texels.
DEFAULT_TEXTURE_SIZE = 1024
#: Texels every UV island grows into the gutter when none is given.
DEFAULT_TEXTURE_DILATE = 16

_EPS_WEIGHT = 1e-6  # baked weight below which a texel counts as unweighted

ArrayLike = np.ndarray | torch.Tensor
_Image = TypeVar("_Image", np.ndarray, torch.Tensor)


def check_texture_size(size: object, what: str = "texture size", *,
                       allow_zero: bool = False) -> int:
    """``size`` as an int, if it is an integer in [MIN_TEXTURE_SIZE, MAX_TEXTURE_SIZE].

    Args:
        size: the texture side in texels.
        what: the name used in the message (e.g. ``"--texture-size"``).
        allow_zero: 0 (no texture) is also accepted.

    Raises:
        InvalidInputError: not such an integer (the message gives the range).
    """
    ok = (not isinstance(size, bool) and isinstance(size, (int, np.integer))
          and ((allow_zero and size == 0) or MIN_TEXTURE_SIZE <= size <= MAX_TEXTURE_SIZE))
    if not ok:
        zero = "0 (no texture) or " if allow_zero else ""
        raise InvalidInputError(f"{what} must be {zero}an integer in [{MIN_TEXTURE_SIZE}, "
                                f"{MAX_TEXTURE_SIZE}] texels, got {size!r}")
    return int(size)  # type: ignore[arg-type]


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

    size: int = DEFAULT_TEXTURE_SIZE
    dilate: int = DEFAULT_TEXTURE_DILATE
    tile: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        try:
            check_texture_size(self.size, "size")
        except InvalidInputError as e:
            raise InvalidInputError(f"{e}; e.g. BakeSettings(size=1024)") from None
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


class UVMesh(Protocol):
    """Anything with a UV layout: a MorphableModel, an ObjMesh, a :class:`UVLayout`.

    Attributes:
        triangles: (F, 3) integer vertex indices.
        uvs: (U, 2) float texture coordinates, origin bottom-left.
        uv_triangles: (F, 3) integer indices into ``uvs`` per triangle corner.
    """

    @property
    def triangles(self) -> np.ndarray: ...

    @property
    def uvs(self) -> np.ndarray: ...

    @property
    def uv_triangles(self) -> np.ndarray: ...


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
def _as_tensor(name: str, x: ArrayLike, device: torch.device | None = None) -> torch.Tensor:
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


def _layout(mesh: UVMesh) -> tuple[np.ndarray, np.ndarray, np.ndarray, int | None]:
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
        nv = len(mesh.vertices)  # type: ignore[attr-defined]
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


def _dilation_sources(covered: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The seam dilation as a gather: ``(gutter, source)`` flat texel indices (int64).

    ``gutter`` are the empty texels within ``n`` texels (chessboard distance) of a covered one,
    ``source[i]`` the covered texel nearest to ``gutter[i]`` (Euclidean, OpenCV's 5x5 mask),
    whose value it copies.

    Args:
        covered: (H, W) bool, the texels a UV triangle covers.
        n: the gutter width in texels, >= 0.
    """
    import cv2

    none = np.zeros(0, np.int64)
    empty = ~covered
    if n == 0 or not empty.any() or empty.all():
        return none, none
    e8 = empty.astype(np.uint8)
    _, labels = cv2.distanceTransformWithLabels(e8, cv2.DIST_L2, 5,
                                                labelType=cv2.DIST_LABEL_PIXEL)
    cheb = cv2.distanceTransform(e8, cv2.DIST_C, 3).reshape(-1)  # 0 on covered texels
    flat = labels.reshape(-1)
    cov = np.flatnonzero(covered.reshape(-1))
    label_to_texel = np.zeros(int(flat.max()) + 1, np.int64)  # one label per covered texel
    label_to_texel[flat[cov]] = cov
    gutter = np.flatnonzero(empty.reshape(-1) & (cheb <= n))
    return gutter, label_to_texel[flat[gutter]]


def _check_values(name: str, values: ArrayLike, num_vertices: int) -> torch.Tensor:
    t = _as_tensor(name, values)
    if t.dim() != 2 or t.shape[1] < 1:
        raise InvalidInputError(f"expected {name} (V, C), got {tuple(t.shape)}")
    if t.shape[0] != num_vertices:
        raise InvalidInputError(f"{name} has {t.shape[0]} rows, the mesh has {num_vertices} "
                                "vertices")
    if not torch.isfinite(t).all():
        raise InvalidInputError(f"{name} contain NaN or infinite values")
    return t


# --------------------------------------------------------------------------- the baker
class UVBaker:
    """One UV layout's bake at one :class:`BakeSettings`, rasterized and dilated once.

    Building it rasterizes the layout in UV space and solves the seam dilation; each
    :meth:`bake` is then a gather and a 3-term weighted sum per texel (no rasterization, no
    Python loop over texels), :meth:`bake_uint8` one sparse product.

    Args:
        mesh: a :class:`UVMesh` (MorphableModel, ObjMesh, :class:`UVLayout`).
        settings: size, dilation and tile (default :class:`BakeSettings`).
        device: where to rasterize and keep the tables (default CPU).

    Attributes:
        settings: the settings.
        num_vertices: V, the rows :meth:`bake` takes.
        mask: (T, T) bool, texels a UV triangle covers (before dilation).
        triangle_id: (T, T) int64 triangle covering each texel, -1 where none.
        num_covered: covered texels (the first rows of the tables; the gutter follows).

    Raises:
        InvalidInputError: no UV layout.
    """

    def __init__(self, mesh: UVMesh, settings: BakeSettings | None = None, *,
                 device: torch.device | str | None = None) -> None:
        self.settings = BakeSettings() if settings is None else settings
        tri, uvs, uv_tri, nv = _layout(mesh)
        self.num_vertices = int(nv if nv is not None else tri.max() + 1)
        if tri.max() >= self.num_vertices:
            raise InvalidInputError(f"triangles index vertex {int(tri.max())} of "
                                    f"{self.num_vertices}")
        # each UV vertex takes the 3D vertex of a corner that uses it (unused UVs: vertex 0)
        uv_to_vertex = np.zeros(len(uvs), np.int64)
        uv_to_vertex[uv_tri.ravel()] = tri.ravel()
        s = self.settings.size
        dev = torch.device("cpu") if device is None else torch.device(device)
        with torch.no_grad():
            frags = rasterize(_screen(uvs, self.settings).to(dev),
                              torch.from_numpy(uv_tri).to(dev), RasterSettings((s, s)))
        self.triangle_id = frags.triangle_id[0]
        self.mask = self.triangle_id >= 0
        tid = self.triangle_id.reshape(-1).cpu().numpy()
        covered = np.flatnonzero(tid >= 0)
        bary = frags.bary[0].reshape(-1, 3)[torch.from_numpy(covered).to(dev)].cpu().numpy()
        corners = uv_to_vertex[uv_tri[tid[covered]]]  # (n, 3) vertex ids
        gutter, source = _dilation_sources(tid.reshape(s, s) >= 0, self.settings.dilate)
        row_of_texel = np.zeros(s * s, np.int64)
        row_of_texel[covered] = np.arange(len(covered))
        src = np.concatenate([np.arange(len(covered)), row_of_texel[source]])
        self.num_covered = len(covered)
        self._gutter, self._source = gutter, source
        self._texels_np = np.concatenate([covered, gutter])
        self._bary_np = np.ascontiguousarray(bary[src], np.float32)  # (M, 3)
        self._corners_np = corners[src]  # (M, 3) vertex ids
        self._texels = torch.from_numpy(self._texels_np).to(dev)
        self._bary = torch.from_numpy(self._bary_np).to(dev)
        self._corners = torch.from_numpy(self._corners_np).to(dev)
        self._matrix = None  # scipy CSR (T*T, V), built by the first bake_uint8

    @property
    def size(self) -> int:
        """The texture side in texels."""
        return self.settings.size

    def __repr__(self) -> str:
        st = self.settings
        return (f"UVBaker(size={st.size}, dilate={st.dilate}, tile={st.tile}, "
                f"covered={self.num_covered}, gutter={len(self._gutter)})")

    def bake(self, values: ArrayLike, *, weights: ArrayLike | None = None,
             dilate: bool = True) -> TextureBake:
        """Bake per-vertex values (usually linear RGB albedo).

        Args:
            values: (V, C) float per-vertex values, torch or NumPy (colours: RGB in [0, 1]).
                The bake runs on the tensor's device and is differentiable with respect to it.
            weights: optional (V,) per-vertex weights >= 0 (e.g. photo visibility). Texels
                then take the weight-normalised interpolation ``sum(b w c) / sum(b w)`` (the
                plain interpolation where every weight is 0) and :attr:`TextureBake.weight`
                carries ``sum(b w)`` clipped to [0, 1].
            dilate: grow the islands into the gutter (False: empty texels stay 0).

        Returns:
            :class:`TextureBake` with a (T, T, C) float32 image.
        """
        colors = _check_values("vertex_colors", values, self.num_vertices)
        dev = colors.device
        c = colors.shape[1]
        chans = colors
        if weights is not None:
            w = _as_tensor("weights", weights, dev).to(colors.dtype)
            if w.shape != (self.num_vertices,):
                raise InvalidInputError(f"expected weights ({self.num_vertices},), got "
                                        f"{tuple(w.shape)}")
            if not torch.isfinite(w).all() or (w < 0).any():
                raise InvalidInputError("weights must be finite and >= 0 (visibility in "
                                        "[0, 1])")
            chans = torch.cat([colors * w[:, None], w[:, None], colors], dim=1)
        m = len(self._texels) if dilate else self.num_covered
        bary = self._bary[:m].to(dev, colors.dtype)
        vals = torch.einsum("mk,mkc->mc", bary, chans[self._corners[:m].to(dev)])
        if weights is not None:
            wsum = vals[:, c:c + 1]
            weighted = vals[:, :c] / wsum.clamp(min=_EPS_WEIGHT)
            colour = torch.where(wsum > _EPS_WEIGHT, weighted, vals[:, c + 1:])
            vals = torch.cat([colour, wsum.clamp(0.0, 1.0)], dim=1)
        s = self.size
        img = vals.new_zeros(s * s, vals.shape[1]).index_put(
            (self._texels[:m].to(dev),), vals).view(s, s, -1)
        return TextureBake(image=img[..., :c], mask=self.mask.to(dev),
                           triangle_id=self.triangle_id.to(dev),
                           weight=img[..., c] if weights is not None else None,
                           settings=self.settings)

    def bake_uint8(self, colors: np.ndarray) -> np.ndarray:
        """Bake (V, C) float colours in [0, 1] into a (T, T, C) uint8 texture (one sparse
        product; values are clipped to [0, 1] and rounded half up), seams dilated."""
        import scipy.sparse as sp

        x = np.asarray(colors, np.float32)
        if x.ndim != 2 or x.shape[0] != self.num_vertices or not len(x.T):
            raise InvalidInputError(f"expected colors ({self.num_vertices}, C), got {x.shape}")
        if not np.isfinite(x).all():
            raise InvalidInputError("colors contain NaN or infinite values")
        if self._matrix is None:
            s = self.size
            self._matrix = sp.csr_matrix(
                (self._bary_np.reshape(-1), (np.repeat(self._texels_np, 3),
                                             self._corners_np.reshape(-1))),
                shape=(s * s, self.num_vertices))
        img = self._matrix @ x
        np.clip(img, 0.0, 1.0, out=img)
        return (img * 255.0 + 0.5).astype(np.uint8).reshape(self.size, self.size, -1)

    def dilate(self, image: _Image) -> _Image:
        """Apply this baker's seam dilation to any (T, T, C) image of its layout: each gutter
        texel copies its nearest covered texel (NumPy in, NumPy out; tensors stay
        differentiable)."""
        s = self.size
        if tuple(image.shape[:2]) != (s, s) or image.ndim != 3:
            raise InvalidInputError(f"expected an image ({s}, {s}, C), got "
                                    f"{tuple(image.shape)}")
        return _copy_texels(image, self._gutter, self._source)


def _copy_texels(image: _Image, dst: np.ndarray, src: np.ndarray) -> _Image:
    """``image`` with flat texels ``dst`` replaced by texels ``src`` (a copy)."""
    h, w, c = image.shape
    if isinstance(image, torch.Tensor):
        flat = image.reshape(h * w, c)
        d = torch.from_numpy(dst).to(image.device)
        out = flat.index_put((d,), flat[torch.from_numpy(src).to(image.device)])
        return out.view(h, w, c)
    out = np.array(image, copy=True).reshape(h * w, c)
    out[dst] = out[src]
    return out.reshape(h, w, c)


class UVBakerCache:
    """The :class:`UVBaker` of one UV layout per texture size, each built on first use.

    Args:
        mesh: the layout (a :class:`UVMesh`).
        dilate: gutter texels for bakers asked for by size (capped at the size).
    """

    def __init__(self, mesh: UVMesh, *, dilate: int = DEFAULT_TEXTURE_DILATE) -> None:
        self.mesh = mesh
        self.dilate = int(dilate)
        self._bakers: dict[BakeSettings, UVBaker] = {}

    def baker(self, size: int | BakeSettings) -> UVBaker:
        """The baker for a texture side (with this cache's dilation) or full settings."""
        st = (size if isinstance(size, BakeSettings)
              else BakeSettings(size=check_texture_size(size), dilate=min(self.dilate, size)))
        got = self._bakers.get(st)
        if got is None:
            got = self._bakers[st] = UVBaker(self.mesh, st)
        return got

    def bake_uint8(self, colors: np.ndarray, size: int | BakeSettings) -> np.ndarray:
        """(V, 3) colours in [0, 1] -> (T, T, 3) uint8 texture (see :meth:`UVBaker.bake_uint8`)."""
        return self.baker(size).bake_uint8(colors)


# --------------------------------------------------------------------------- functions
def bake_texture(mesh: UVMesh, vertex_colors: ArrayLike, settings: BakeSettings | None = None,
                 *, weights: ArrayLike | None = None) -> TextureBake:
    """Bake per-vertex values into the mesh's UV layout (a one-off :class:`UVBaker`).

    Bake many times into one layout with a :class:`UVBaker` (or :class:`UVBakerCache`) instead:
    the rasterization and dilation are then done once.

    Args:
        mesh: anything with ``triangles`` (F, 3), ``uvs`` (U, 2) and ``uv_triangles`` (F, 3): a
            :class:`~facecraft.sdk.models.morphable_model.MorphableModel`, an
            :class:`~facecraft.sdk.models.mesh.ObjMesh` or a :class:`UVLayout`.
        vertex_colors: (V, C) float per-vertex values, torch tensor or NumPy array (colours: RGB
            in [0, 1], C = 3). The bake runs on the tensor's device and is differentiable with
            respect to it.
        settings: texture size, gutter dilation and UDIM tile (default :class:`BakeSettings`).
        weights: optional (V,) per-vertex weights, see :meth:`UVBaker.bake`.

    Returns:
        :class:`TextureBake` with a (size, size, C) float32 image.

    Raises:
        InvalidInputError: no UV layout, or arrays of the wrong shape.
    """
    colors = _as_tensor("vertex_colors", vertex_colors)
    baker = UVBaker(mesh, settings, device=colors.device)
    return baker.bake(colors, weights=weights)


def bake_corner_attributes(corner_uvs: ArrayLike, corner_values: ArrayLike,
                           settings: BakeSettings | None = None, *,
                           weights: ArrayLike | None = None) -> TextureBake:
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
    cu = np.asarray(corner_uvs.detach().cpu() if isinstance(corner_uvs, torch.Tensor)
                    else corner_uvs, np.float64)
    if cu.ndim != 3 or cu.shape[1:] != (3, 2) or not len(cu):
        raise InvalidInputError(f"expected corner_uvs (F, 3, 2), got {cu.shape}")
    f = len(cu)
    vals = _as_tensor("corner_values", corner_values)
    if vals.dim() != 3 or vals.shape[:2] != (f, 3):
        raise InvalidInputError(f"expected corner_values ({f}, 3, C), got {tuple(vals.shape)}")
    w = None
    if weights is not None:
        w = _as_tensor("weights", weights, vals.device).to(vals.dtype)
        if w.shape != (f, 3):
            raise InvalidInputError(f"expected weights ({f}, 3), got {tuple(w.shape)}")
        w = w.reshape(-1)
    tri = np.arange(3 * f, dtype=np.int64).reshape(f, 3)
    layout = UVLayout(tri, cu.reshape(-1, 2), tri, 3 * f)
    baker = UVBaker(layout, settings, device=vals.device)
    return baker.bake(vals.reshape(3 * f, -1), weights=w)


def dilate_texture(image: _Image, mask: ArrayLike, iterations: int) -> _Image:
    """Grow the covered texels of a texture outward into the empty ones (seam padding).

    Every empty texel within ``iterations`` texels (chessboard distance) of a covered one
    copies its nearest covered texel (Euclidean distance); covered texels never change, texels
    further away keep their value. This is the dilation every :class:`UVBaker` applies.

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
    if img.dim() != 3 or tuple(m.shape) != tuple(img.shape[:2]) or m.dtype != torch.bool:
        raise InvalidInputError(f"expected image (H, W, C) and a bool mask (H, W), got "
                                f"{tuple(img.shape)} and {tuple(m.shape)} {m.dtype}")
    dst, src = _dilation_sources(m.cpu().numpy(), int(iterations))
    if as_numpy:
        return _copy_texels(img.detach().cpu().numpy(), dst, src)
    return _copy_texels(img, dst, src)


def sample_texture(image: _Image, uvs: ArrayLike, *, tile: tuple[int, int] = (0, 0)) -> _Image:
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
