"""Spherical-harmonics (SH) lighting of Lambertian faces, the paper's / Deng et al. 2019's model.

A vertex with albedo ``rho`` (linear RGB) and unit normal ``n`` gets the colour
``rho * sum_k Y_k(n) * gamma[c, k]`` per channel ``c``: nine second-order SH basis functions
``Y_k`` (already convolved with the Lambertian kernel) and nine coefficients per RGB channel.

Layout and constants match Deep3DFaceRecon_pytorch's ``ParametricFaceModel.compute_color``
(``models/bfm.py``):

* ``sh`` is ``(B, 27)`` **channel-major**: ``sh.reshape(B, 3, 9)[:, c, k]`` is band ``k`` of
  channel ``c`` (``sh[:, 0:9]`` red, ``9:18`` green, ``18:27`` blue).
* ``DEFAULT_SH_INIT`` = ``(0.8, 0, ..., 0)`` is added to each channel's nine coefficients (their
  ``init_lit``), so ``sh = 0`` means a uniform ambient light of irradiance
  ``0.8 * a0 * c0 = 0.8 * pi / sqrt(4 pi) = 0.4 sqrt(pi)`` (:data:`DEFAULT_AMBIENT_IRRADIANCE`,
  about 0.709). ``add_ambient_init=False`` uses ``sh`` as given.
* With ``a = (pi, 2 pi / sqrt(3), 2 pi / sqrt(8))`` and
  ``c = (1 / sqrt(4 pi), sqrt(3) / sqrt(4 pi), 3 sqrt(5) / sqrt(12 pi))`` the basis order is::

      Y0 =  a0 c0                     Y5 = -a2 c2 ny nz
      Y1 = -a1 c1 ny                  Y6 =  a2 c2 / (2 sqrt(3)) (3 nz^2 - 1)
      Y2 =  a1 c1 nz                  Y7 = -a2 c2 nx nz
      Y3 = -a1 c1 nx                  Y8 =  a2 c2 / 2 (nx^2 - ny^2)
      Y4 =  a2 c2 nx ny

Normals are in the world frame, which (the camera being un-rotated on +Z, see
:mod:`facecraft.sdk.render.cameras`) is also the view frame: rotate model-frame normals by the head
pose
first (:meth:`facecraft.sdk.render.cameras.Pose.transform_normals`), as Deep3DFaceRecon does with
``face_norm @ rotation``. A normal facing the camera is ``+Z``. Normals are used as given (not
re-normalised). Irradiance is not clamped, matching the paper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import InvalidInputError

__all__ = [
    "SH_NUM_BANDS",
    "SH_NUM_COEFFS",
    "DEFAULT_SH_INIT",
    "DEFAULT_AMBIENT_IRRADIANCE",
    "sh_basis",
    "sh_irradiance",
    "shade_sh",
    "fit_sh",
    "SHLighting",
    "SHShader",
]

#: Basis functions per colour channel (SH bands 0-2).
SH_NUM_BANDS = 9
#: Coefficients per image: 9 bands x RGB.
SH_NUM_COEFFS = 27
#: Added to each channel's 9 coefficients when ``add_ambient_init`` (Deep3DFaceRecon ``init_lit``).
DEFAULT_SH_INIT: tuple[float, ...] = (0.8, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
#: Irradiance everywhere for ``sh = 0`` with the init added: ``0.8 * pi / sqrt(4 pi)``.
DEFAULT_AMBIENT_IRRADIANCE = 0.8 * math.pi / math.sqrt(4 * math.pi)

_A = (math.pi, 2 * math.pi / math.sqrt(3.0), 2 * math.pi / math.sqrt(8.0))
_C = (1 / math.sqrt(4 * math.pi), math.sqrt(3.0) / math.sqrt(4 * math.pi),
      3 * math.sqrt(5.0) / math.sqrt(12 * math.pi))


def _check(x: object, name: str, shape: tuple[int | None, ...]) -> torch.Tensor:
    """Check ``x`` is a floating tensor of ``shape`` (``None`` = any size)."""
    want = "(" + ", ".join("BV"[i] if s is None else str(s) for i, s in enumerate(shape)) + ")"
    if not isinstance(x, torch.Tensor):
        raise InvalidInputError(f"expected {name} a torch.Tensor {want}, got {type(x).__name__}")
    if x.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, x.shape,
                                                                              strict=True)):
        raise InvalidInputError(f"expected {name} {want}, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise InvalidInputError(f"expected {name} a floating-point tensor, got {x.dtype}")
    return x


def _check_same(ref: torch.Tensor, ref_name: str, **others: torch.Tensor | None) -> None:
    for name, t in others.items():
        if t is not None and t.shape[:2] != ref.shape[:2]:
            raise InvalidInputError(f"{name} has (B, V) = {tuple(t.shape[:2])} but {ref_name} has "
                                    f"{tuple(ref.shape[:2])}; they must match")


def _init(sh: torch.Tensor) -> torch.Tensor:
    """The (27,) init in the ``sh`` layout, on ``sh``'s dtype and device."""
    return sh.new_tensor(DEFAULT_SH_INIT).repeat(3)


def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """The 9 Lambertian-convolved SH basis values of each normal (order in the module docstring).

    Args:
        normals: (B, V, 3) float unit normals, world frame.

    Returns:
        (B, V, 9) float.
    """
    _check(normals, "normals", (None, None, 3))
    x, y, z = normals.unbind(-1)
    k1, k2 = _A[1] * _C[1], _A[2] * _C[2]
    return torch.stack([
        torch.full_like(x, _A[0] * _C[0]),
        -k1 * y,
        k1 * z,
        -k1 * x,
        k2 * x * y,
        -k2 * y * z,
        0.5 * k2 / math.sqrt(3.0) * (3 * z * z - 1),
        -k2 * x * z,
        0.5 * k2 * (x * x - y * y),
    ], dim=-1)


def sh_irradiance(normals: torch.Tensor, sh: torch.Tensor, *,
                  add_ambient_init: bool = True) -> torch.Tensor:
    """Per-vertex RGB irradiance (the shading without albedo).

    Args:
        normals: (B, V, 3) float unit normals, world frame.
        sh: (B, 27) float, channel-major (see the module docstring).
        add_ambient_init: add :data:`DEFAULT_SH_INIT` to each channel first, as the paper does.

    Returns:
        (B, V, 3) float, linear RGB irradiance (unclamped).
    """
    _check(sh, "sh", (None, SH_NUM_COEFFS))
    basis = sh_basis(normals)
    if sh.shape[0] != normals.shape[0]:
        raise InvalidInputError(f"sh has batch {sh.shape[0]} but normals has batch "
                                f"{normals.shape[0]}; give one set of coefficients per image")
    if add_ambient_init:
        sh = sh + _init(sh)
    gamma = sh.reshape(-1, 3, SH_NUM_BANDS)  # (B, 3 channels, 9 bands)
    return basis @ gamma.transpose(1, 2)


def shade_sh(albedo: torch.Tensor, normals: torch.Tensor, sh: torch.Tensor, *,
             add_ambient_init: bool = True) -> torch.Tensor:
    """Lambertian SH shading, ``albedo * irradiance`` (Deep3DFaceRecon ``compute_color``).

    Args:
        albedo: (B, V, 3) float, linear RGB in [0, 1].
        normals: (B, V, 3) float unit normals, world frame (pose already applied).
        sh: (B, 27) float, channel-major.
        add_ambient_init: add :data:`DEFAULT_SH_INIT` to each channel first.

    Returns:
        (B, V, 3) float, linear RGB (not clamped).
    """
    _check(albedo, "albedo", (None, None, 3))
    _check(normals, "normals", (None, None, 3))
    _check_same(albedo, "albedo", normals=normals)
    return albedo * sh_irradiance(normals, sh, add_ambient_init=add_ambient_init)


def fit_sh(colours: torch.Tensor, albedo: torch.Tensor, normals: torch.Tensor,
           weights: torch.Tensor | None = None, *, add_ambient_init: bool = True,
           ridge: float = 0.0) -> torch.Tensor:
    """Closed-form weighted least-squares SH coefficients explaining ``colours``.

    Solves, per image and channel, ``min sum_v w_v (albedo_v Y(n_v) . gamma - colour_v)^2
    + ridge |sh|^2`` with a QR factorisation (differentiable), where ``gamma`` is ``sh`` plus the
    init when ``add_ambient_init``. The result is in the layout :func:`shade_sh` takes with the
    same ``add_ambient_init``: noise-free ``fit_sh(shade_sh(albedo, normals, sh), albedo,
    normals)`` returns ``sh``. It needs at least 9 vertices with non-zero weight and albedo and
    varied normals per image (a face's visible hemisphere is enough); use ``ridge > 0`` otherwise.

    Args:
        colours: (B, V, 3) float, observed linear RGB (e.g. photo colours at projected vertices).
        albedo: (B, V, 3) float, linear RGB.
        normals: (B, V, 3) float unit normals, world frame.
        weights: (B, V) float >= 0 (e.g. visibility x skin mask), or ``None`` for all ones.
        add_ambient_init: return coefficients *minus* :data:`DEFAULT_SH_INIT`, as ``shade_sh``
            with ``add_ambient_init=True`` expects.
        ridge: Tikhonov weight >= 0 pulling the coefficients towards ``sh = 0``.

    Returns:
        (B, 27) float, channel-major.
    """
    for name, t in (("colours", colours), ("albedo", albedo), ("normals", normals)):
        _check(t, name, (None, None, 3))
    _check_same(colours, "colours", albedo=albedo, normals=normals)
    if weights is not None:
        _check(weights, "weights", (None, None))
        _check_same(colours, "colours", weights=weights)
    if ridge < 0:
        raise InvalidInputError(f"expected ridge >= 0, got {ridge}")
    b, v, _ = colours.shape
    design = albedo.transpose(1, 2)[..., None] * sh_basis(normals)[:, None]  # (B, 3, V, 9)
    target = colours.transpose(1, 2)[..., None]  # (B, 3, V, 1)
    if weights is not None:
        sw = weights.clamp(min=0).sqrt()[:, None, :, None]
        design, target = design * sw, target * sw
    if ridge > 0:
        eye = math.sqrt(ridge) * torch.eye(SH_NUM_BANDS, dtype=design.dtype, device=design.device)
        prior = torch.zeros(b, 3, SH_NUM_BANDS, 1, dtype=design.dtype, device=design.device)
        if add_ambient_init:  # pull towards sh = 0, i.e. gamma = init
            prior = prior + math.sqrt(ridge) * design.new_tensor(DEFAULT_SH_INIT)[:, None]
        design = torch.cat([design, eye.expand(b, 3, -1, -1)], dim=2)
        target = torch.cat([target, prior], dim=2)
    if design.shape[2] < SH_NUM_BANDS:
        raise InvalidInputError(f"fit_sh needs at least {SH_NUM_BANDS} vertices, got {v}; "
                                "pass ridge > 0 to regularise")
    q, r = torch.linalg.qr(design)  # reduced: (B, 3, V, 9), (B, 3, 9, 9)
    gamma = torch.linalg.solve_triangular(r, q.transpose(-1, -2) @ target, upper=True)
    sh = gamma[..., 0].reshape(b, SH_NUM_COEFFS)
    return sh - _init(sh) if add_ambient_init else sh


@dataclass(frozen=True, eq=False)
class SHLighting:
    """Per-image SH lighting, the ``lighting`` stage output of the coefficient regressor.

    Attributes:
        coeffs: (B, 27) float, channel-major (see the module docstring).
        add_ambient_init: whether :data:`DEFAULT_SH_INIT` is added before shading (the paper's
            parameterisation, where the network predicts offsets from an ambient light).
    """

    coeffs: torch.Tensor
    add_ambient_init: bool = True

    def __post_init__(self) -> None:
        _check(self.coeffs, "coeffs", (None, SH_NUM_COEFFS))

    @classmethod
    def ambient(cls, batch_size: int = 1, *, dtype: torch.dtype = torch.float32,
                device: torch.device | str | None = None) -> SHLighting:
        """The paper's default: uniform irradiance :data:`DEFAULT_AMBIENT_IRRADIANCE`."""
        return cls(torch.zeros(batch_size, SH_NUM_COEFFS, dtype=dtype, device=device))

    @property
    def gamma(self) -> torch.Tensor:
        """(B, 3, 9) effective coefficients per channel, init included when enabled."""
        sh = self.coeffs + _init(self.coeffs) if self.add_ambient_init else self.coeffs
        return sh.reshape(-1, 3, SH_NUM_BANDS)

    def irradiance(self, normals: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) irradiance for (B, V, 3) world-frame normals; see :func:`sh_irradiance`."""
        return sh_irradiance(normals, self.coeffs, add_ambient_init=self.add_ambient_init)

    def shade(self, albedo: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) shaded colour; see :func:`shade_sh`."""
        return shade_sh(albedo, normals, self.coeffs, add_ambient_init=self.add_ambient_init)


class SHShader(nn.Module):
    """Thin module around :func:`shade_sh`: ``forward(albedo, normals, lighting) -> colours``."""

    def forward(self, albedo: torch.Tensor, normals: torch.Tensor,
                lighting: SHLighting) -> torch.Tensor:
        """Args and returns as :func:`shade_sh`, the coefficients taken from ``lighting``."""
        return lighting.shade(albedo, normals)
