"""Triangle rasterization to a triangle-id / barycentric buffer, in pure PyTorch.

The nvdiffrast design: *which* triangle covers a pixel is decided without gradients (a z-buffer
over candidate pixels), and *everything after it* - barycentrics, depth, interpolated attributes
- is recomputed from the screen-space vertices with autograd, so images are differentiable with
respect to vertex positions (through the barycentrics) and any per-vertex attribute.

Screen convention (what :mod:`facecraft.sdk.render.cameras` produces): ``screen_verts[..., 0]`` is
pixels to the right, ``[..., 1]`` pixels *down* (image rows), ``[..., 2]`` the depth (metres or
any unit, > 0, smaller = nearer). Pixel (row i, column j) has its centre at (x=j+0.5, y=i+0.5)
and is covered by a triangle when its centre lies inside it (edges inclusive). A triangle that
faces the camera (counter-clockwise seen from outside, in a +Y-up view) has a *negative* signed
area in these y-down coordinates; ``cull_backfaces`` drops the others.

Speed: triangles are grouped by the power-of-two size of their pixel bounding box and every
group tests its candidate pixels in one batched tensor operation (no Python loop over triangles
or pixels); groups are cut into chunks of at most ``RasterSettings.max_candidates`` pixel tests
to bound memory. A pytorch3d backend (``backend="pytorch3d"``) gives the same Fragments where
pytorch3d is installed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import InvalidInputError

__all__ = ["RasterSettings", "Fragments", "rasterize", "interpolate", "pytorch3d_available"]


@dataclass(frozen=True)
class RasterSettings:
    """How to rasterize.

    Attributes:
        image_size: (H, W) in pixels.
        cull_backfaces: drop triangles whose front (CCW in a +Y-up view) faces away.
        max_candidates: upper bound on pixel tests held in memory at once (a memory / speed
            trade-off; 4M tests take about 200 MB).
        backend: ``"torch"`` (the default, CPU and CUDA) or ``"pytorch3d"``.
    """

    image_size: tuple[int, int]
    cull_backfaces: bool = False
    max_candidates: int = 1 << 22
    backend: str = "torch"

    def __post_init__(self) -> None:
        h, w = self.image_size
        if int(h) != h or int(w) != w or h < 1 or w < 1 or h > 16384 or w > 16384:
            raise InvalidInputError(f"image_size must be (H, W) in [1, 16384], got "
                                    f"{self.image_size}")
        object.__setattr__(self, "image_size", (int(h), int(w)))
        if self.max_candidates < 1024:
            raise InvalidInputError(f"max_candidates must be >= 1024, got {self.max_candidates}")
        if self.backend not in ("torch", "pytorch3d"):
            raise InvalidInputError(f"backend must be 'torch' or 'pytorch3d', got "
                                    f"{self.backend!r}")


@dataclass(frozen=True)
class Fragments:
    """The rasterizer's output: one (nearest) triangle per pixel.

    Attributes:
        triangle_id: (B, H, W) int64 triangle index, -1 where no triangle covers the pixel.
        bary: (B, H, W, 3) float perspective-correct barycentric coordinates of the pixel
            centre in that triangle (0 where empty); differentiable w.r.t. the screen vertices.
        depth: (B, H, W) float depth at the pixel centre (0 where empty), differentiable.
    """

    triangle_id: torch.Tensor
    bary: torch.Tensor
    depth: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        """(B, H, W) bool: pixels covered by a triangle."""
        return self.triangle_id >= 0

    def detach(self) -> Fragments:
        return Fragments(self.triangle_id, self.bary.detach(), self.depth.detach())


def pytorch3d_available() -> bool:
    """Whether the pytorch3d backend can be used in this environment."""
    try:
        import pytorch3d.renderer  # noqa: F401
    except Exception:
        return False
    return True


def _check(screen_verts: torch.Tensor, triangles: torch.Tensor) -> None:
    if screen_verts.dim() != 3 or screen_verts.shape[-1] != 3:
        raise InvalidInputError(f"expected screen_verts (B, V, 3), got "
                                f"{tuple(screen_verts.shape)}")
    if triangles.dim() != 2 or triangles.shape[-1] != 3:
        raise InvalidInputError(f"expected triangles (F, 3), got {tuple(triangles.shape)}")
    if triangles.device != screen_verts.device:
        raise InvalidInputError("screen_verts and triangles must be on the same device")
    if triangles.numel() and (int(triangles.min()) < 0
                              or int(triangles.max()) >= screen_verts.shape[1]):
        raise InvalidInputError(f"triangles index vertices outside [0, {screen_verts.shape[1]})")


def _edge(ax, ay, bx, by, px, py):
    """Signed doubled area of (a, b, p): positive when p is left of a->b in y-down coords."""
    return (bx - ax) * (py - ay) - (by - ay) * (px - ax)


@torch.no_grad()
def _visible_triangles(sv: torch.Tensor, tri: torch.Tensor,
                       settings: RasterSettings) -> torch.Tensor:
    """(B, H, W) int64 nearest covering triangle per pixel (-1: none), without gradients.

    Each triangle's three barycentrics and its inverse depth are affine in the pixel position,
    ``a * x + b * y + c``; their 4 x 3 coefficients are computed once per triangle, so testing a
    candidate pixel is four multiply-adds.
    """
    b = sv.shape[0]
    h, w = settings.image_size
    f = tri.shape[0]
    dev, dt = sv.device, sv.dtype
    p = sv[:, tri]  # (B, F, 3 corners, 3)
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    x0, x1, x2 = x.unbind(-1)
    y0, y1, y2 = y.unbind(-1)
    area = _edge(x0, y0, x1, y1, x2, y2)
    c0 = torch.ceil(x.amin(-1) - 0.5).clamp(min=0)
    c1 = torch.floor(x.amax(-1) - 0.5).clamp(max=w - 1)
    r0 = torch.ceil(y.amin(-1) - 0.5).clamp(min=0)
    r1 = torch.floor(y.amax(-1) - 0.5).clamp(max=h - 1)
    ok = (c1 >= c0) & (r1 >= r0) & (area != 0) & (z.amin(-1) > 0) & torch.isfinite(area)
    if settings.cull_backfaces:
        ok &= area < 0
    bi, fi = torch.nonzero(ok, as_tuple=True)
    if not bi.numel():
        return torch.full((b, h, w), -1, dtype=torch.long, device=dev)
    # barycentric l_k = edge(opposite edge, p) / area = A_k x + B_k y + C_k
    xs = torch.stack([x1, x2, x0], -1)[bi, fi]  # edge start of l0, l1, l2
    ys = torch.stack([y1, y2, y0], -1)[bi, fi]
    xe = torch.stack([x2, x0, x1], -1)[bi, fi]
    ye = torch.stack([y2, y0, y1], -1)[bi, fi]
    ar = area[bi, fi][:, None]
    ca = -(ye - ys) / ar
    cb = (xe - xs) / ar
    cc = ((ye - ys) * xs - (xe - xs) * ys) / ar
    iz = 1.0 / z[bi, fi]
    coef = torch.stack([ca, cb, cc], 1)  # (N, 3 [a, b, c], 3 barycentrics)
    coef = torch.cat([coef, (coef * iz[:, None, :]).sum(-1, keepdim=True)], -1)  # + 1/z
    box = torch.stack([c0[bi, fi], r0[bi, fi], c1[bi, fi], r1[bi, fi]], -1).long()
    # power-of-two box classes, separately in x and y
    # (boxes under 2 px share the 2 px class: fewer, larger batches beat exact fits)
    lx = torch.ceil(torch.log2((box[:, 2] - box[:, 0] + 1).to(torch.float32))).long().clamp(min=1)
    ly = torch.ceil(torch.log2((box[:, 3] - box[:, 1] + 1).to(torch.float32))).long().clamp(min=1)
    cls = lx * 32 + ly
    pix_all, iz_all, t_all = [], [], []
    for c in torch.unique(cls).tolist():
        sel = torch.nonzero(cls == c, as_tuple=True)[0]
        gw, gh = 1 << (c // 32), 1 << (c % 32)
        per = max(1, settings.max_candidates // (gw * gh))
        oy, ox = torch.meshgrid(torch.arange(gh, device=dev), torch.arange(gw, device=dev),
                                indexing="ij")
        ox, oy = ox.reshape(1, -1), oy.reshape(1, -1)
        for s in range(0, len(sel), per):
            k = sel[s:s + per]
            bx = box[k]
            col = bx[:, 0:1] + ox  # (n, gw*gh)
            row = bx[:, 1:2] + oy
            cf = coef[k]  # (n, 3, 4)
            px = (col.to(dt) + 0.5).unsqueeze(-1)
            py = (row.to(dt) + 0.5).unsqueeze(-1)
            lam = px * cf[:, None, 0, :3] + py * cf[:, None, 1, :3] + cf[:, None, 2, :3]
            inside = (lam >= 0).all(-1) & (col <= bx[:, 2:3]) & (row <= bx[:, 3:4])
            nz = torch.nonzero(inside, as_tuple=True)
            if not nz[0].numel():
                continue
            kk = k[nz[0]]
            cz = cf[nz[0], :, 3]
            pix_all.append((bi[kk] * h + row[nz]) * w + col[nz])
            iz_all.append(px[nz][:, 0] * cz[:, 0] + py[nz][:, 0] * cz[:, 1] + cz[:, 2])
            t_all.append(fi[kk])
    out = torch.full((b * h * w,), -1, dtype=torch.long, device=dev)
    if not pix_all:
        return out.view(b, h, w)
    pix, inv_depth, tid = torch.cat(pix_all), torch.cat(iz_all), torch.cat(t_all)
    zbuf = torch.full((b * h * w,), -float("inf"), device=dev, dtype=dt)
    zbuf.scatter_reduce_(0, pix, inv_depth, reduce="amax")  # nearest = largest 1/z
    win = inv_depth >= zbuf[pix]
    best = torch.full((b * h * w,), f, dtype=torch.long, device=dev)
    best.scatter_reduce_(0, pix[win], tid[win], reduce="amin")  # ties: the lowest id
    out = torch.where(best < f, best, out)
    return out.view(b, h, w)


@torch.no_grad()
def _visible_triangles_pytorch3d(sv: torch.Tensor, tri: torch.Tensor,
                                 settings: RasterSettings) -> torch.Tensor:
    """The same buffer from pytorch3d's rasterizer (NDC: +X left, +Y up, shorter side [-1, 1])."""
    from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
    from pytorch3d.structures import Meshes

    b = sv.shape[0]
    h, w = settings.image_size
    s = min(h, w)
    ndc = torch.stack([(w / 2 - sv[..., 0]) * 2 / s, (h / 2 - sv[..., 1]) * 2 / s, sv[..., 2]],
                      dim=-1)
    meshes = Meshes(verts=list(ndc.float()), faces=[tri.long()] * b)
    pix_to_face, _, _, _ = rasterize_meshes(
        meshes, image_size=(h, w), blur_radius=0.0, faces_per_pixel=1,
        cull_backfaces=settings.cull_backfaces, perspective_correct=False)
    pf = pix_to_face[..., 0]
    offset = (torch.arange(b, device=pf.device) * tri.shape[0]).view(b, 1, 1)
    return torch.where(pf >= 0, pf - offset, pf).long()


def rasterize(screen_verts: torch.Tensor, triangles: torch.Tensor,
              settings: RasterSettings) -> Fragments:
    """Rasterize a batch of meshes sharing one triangle list.

    Args:
        screen_verts: (B, V, 3) float: x pixels right, y pixels down, depth > 0 (see the module
            docstring). Gradients flow into ``bary`` and ``depth``.
        triangles: (F, 3) int64 vertex indices.
        settings: image size, culling, memory bound, backend.

    Returns:
        :class:`Fragments` with (B, H, W) triangle ids and perspective-correct barycentrics.
    """
    _check(screen_verts, triangles)
    tri = triangles.long()
    if settings.backend == "pytorch3d":
        tid = _visible_triangles_pytorch3d(screen_verts, tri, settings)
    else:
        tid = _visible_triangles(screen_verts.detach(), tri, settings)
    return _fragments_from_ids(screen_verts, tri, tid)


def _fragments_from_ids(sv: torch.Tensor, tri: torch.Tensor, tid: torch.Tensor) -> Fragments:
    """Differentiable barycentrics and depth for the covered pixels of a triangle-id buffer."""
    b, h, w = tid.shape
    flat = tid.reshape(-1)
    cov = torch.nonzero(flat >= 0, as_tuple=True)[0]
    bary = sv.new_zeros(b * h * w, 3)
    depth = sv.new_zeros(b * h * w)
    if cov.numel():
        bidx = cov // (h * w)
        rem = cov % (h * w)
        py = (rem // w).to(sv.dtype) + 0.5
        px = (rem % w).to(sv.dtype) + 0.5
        corners = sv[bidx[:, None], tri[flat[cov]]]  # (N, 3, 3) with grad
        x, y, z = corners[..., 0], corners[..., 1], corners[..., 2]
        area = _edge(x[:, 0], y[:, 0], x[:, 1], y[:, 1], x[:, 2], y[:, 2])
        l0 = _edge(x[:, 1], y[:, 1], x[:, 2], y[:, 2], px, py) / area
        l1 = _edge(x[:, 2], y[:, 2], x[:, 0], y[:, 0], px, py) / area
        lin = torch.stack([l0, l1, 1.0 - l0 - l1], dim=-1)
        persp = lin / z  # perspective correction: interpolate 1/z linearly in screen space
        denom = persp.sum(-1, keepdim=True)
        bary = bary.index_put((cov,), persp / denom)
        depth = depth.index_put((cov,), 1.0 / denom[:, 0])
    return Fragments(tid, bary.view(b, h, w, 3), depth.view(b, h, w))


def interpolate(attrs: torch.Tensor, fragments: Fragments,
                triangles: torch.Tensor) -> torch.Tensor:
    """Interpolate per-vertex attributes at every pixel through the barycentrics.

    Args:
        attrs: (B, V, C) or (V, C) float per-vertex attributes (colours, normals, UVs, ...).
        fragments: from :func:`rasterize` with the same triangles.
        triangles: (F, 3) int64.

    Returns:
        (B, H, W, C), zero where no triangle covers the pixel; differentiable w.r.t. ``attrs``
        and, through ``fragments.bary``, the screen vertices.
    """
    if attrs.dim() == 2:
        attrs = attrs[None].expand(fragments.triangle_id.shape[0], -1, -1)
    if attrs.dim() != 3:
        raise InvalidInputError(f"expected attrs (B, V, C) or (V, C), got {tuple(attrs.shape)}")
    b, h, w = fragments.triangle_id.shape
    if attrs.shape[0] != b:
        raise InvalidInputError(f"attrs batch {attrs.shape[0]} != fragments batch {b}")
    tri = triangles.long()
    tid = fragments.triangle_id.reshape(b, -1)
    corner_v = tri[tid.clamp(min=0)]  # (B, HW, 3)
    c = attrs.shape[-1]
    gathered = torch.gather(attrs, 1, corner_v.reshape(b, -1, 1).expand(-1, -1, c))
    gathered = gathered.view(b, h * w, 3, c)
    out = (gathered * fragments.bary.reshape(b, h * w, 3, 1)).sum(dim=2)
    out = out * (tid >= 0).unsqueeze(-1).to(out.dtype)
    return out.view(b, h, w, c)
