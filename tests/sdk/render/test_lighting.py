from __future__ import annotations

import math

import pytest
import torch

from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.render.cameras import Pose
from facecraft.sdk.render.lighting import (
    DEFAULT_AMBIENT_IRRADIANCE,
    DEFAULT_SH_INIT,
    SHLighting,
    SHShader,
    fit_sh,
    sh_basis,
    sh_irradiance,
    shade_sh,
)


def _normals(b: int, v: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(b, v, 3, generator=g, dtype=dtype), dim=-1)


def _paper_compute_color(texture, norm, gamma):
    """Deep3DFaceRecon's ``compute_color``, transcribed term by term."""
    a = [math.pi, 2 * math.pi / math.sqrt(3.0), 2 * math.pi / math.sqrt(8.0)]
    c = [1 / math.sqrt(4 * math.pi), math.sqrt(3.0) / math.sqrt(4 * math.pi),
         3 * math.sqrt(5.0) / math.sqrt(12 * math.pi)]
    gamma = gamma.reshape(gamma.shape[0], 3, 9) + torch.tensor([0.8] + [0.0] * 8,
                                                               dtype=gamma.dtype)
    gamma = gamma.permute(0, 2, 1)
    x, y, z = norm[..., :1], norm[..., 1:2], norm[..., 2:]
    big_y = torch.cat([
        a[0] * c[0] * torch.ones_like(x), -a[1] * c[1] * y, a[1] * c[1] * z, -a[1] * c[1] * x,
        a[2] * c[2] * x * y, -a[2] * c[2] * y * z,
        0.5 * a[2] * c[2] / math.sqrt(3.0) * (3 * z ** 2 - 1), -a[2] * c[2] * x * z,
        0.5 * a[2] * c[2] * (x ** 2 - y ** 2)], dim=-1)
    return torch.cat([big_y @ gamma[..., i:i + 1] for i in range(3)], dim=-1) * texture


def test_ambient_default():
    assert DEFAULT_SH_INIT == (0.8,) + (0.0,) * 8
    assert DEFAULT_AMBIENT_IRRADIANCE == pytest.approx(0.4 * math.sqrt(math.pi), abs=1e-15)
    assert DEFAULT_AMBIENT_IRRADIANCE == pytest.approx(0.708982, abs=1e-6)
    n = _normals(2, 100)
    albedo = torch.rand(2, 100, 3, dtype=torch.float64)
    out = shade_sh(albedo, n, torch.zeros(2, 27, dtype=torch.float64))
    torch.testing.assert_close(out, albedo * DEFAULT_AMBIENT_IRRADIANCE)
    off = shade_sh(albedo, n, torch.zeros(2, 27, dtype=torch.float64), add_ambient_init=False)
    assert (off == 0).all()
    lit = SHLighting.ambient(2, dtype=torch.float64)
    torch.testing.assert_close(lit.irradiance(n), torch.full_like(n, DEFAULT_AMBIENT_IRRADIANCE))


def test_matches_paper_compute_color():
    g = torch.Generator().manual_seed(1)
    n = _normals(3, 40, seed=1)
    albedo = torch.rand(3, 40, 3, generator=g, dtype=torch.float64)
    sh = torch.randn(3, 27, generator=g, dtype=torch.float64) * 0.3
    torch.testing.assert_close(shade_sh(albedo, n, sh), _paper_compute_color(albedo, n, sh))
    # Channel-major layout: the red band-0 coefficient only changes red.
    bump = torch.zeros(1, 27, dtype=torch.float64)
    bump[0, 0] = 1.0
    delta = sh_irradiance(n[:1], bump) - sh_irradiance(n[:1], bump * 0)
    assert (delta[..., 0] > 0).all() and (delta[..., 1:] == 0).all()


def test_directional_light_brightens_facing_normals():
    # A light along +Z (towards the camera): band Y2 = a1 c1 nz.
    sh = torch.zeros(1, 27, dtype=torch.float64)
    sh[0, [2, 11, 20]] = 0.5
    n = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]]], dtype=torch.float64)
    irr = sh_irradiance(n, sh)
    assert (irr[0, 0] > DEFAULT_AMBIENT_IRRADIANCE).all()
    assert (irr[0, 1] < DEFAULT_AMBIENT_IRRADIANCE).all()
    torch.testing.assert_close(irr[0, 2], torch.full((3,), DEFAULT_AMBIENT_IRRADIANCE,
                                                     dtype=torch.float64))
    # A light from above (+Y) has a negative Y1 coefficient in the paper's sign convention.
    up = torch.zeros(1, 27, dtype=torch.float64)
    up[0, [1, 10, 19]] = -0.5
    n2 = torch.tensor([[[0.0, 1.0, 0.0], [0.0, -1.0, 0.0]]], dtype=torch.float64)
    irr2 = sh_irradiance(n2, up)
    assert (irr2[0, 0] > irr2[0, 1]).all()


def test_normals_follow_pose():
    # Turning the head (yaw 90 deg) makes its forward normal face +X: lit by the +X band (Y3).
    pose = Pose.from_euler(torch.tensor([[0.0, math.pi / 2, 0.0]], dtype=torch.float64))
    n = pose.transform_normals(torch.tensor([[[0.0, 0.0, 1.0]]], dtype=torch.float64))
    b = sh_basis(n)
    assert b[0, 0, 3] < 0 and abs(float(b[0, 0, 2])) < 1e-12


@pytest.mark.parametrize("add_init", [True, False])
def test_fit_sh_round_trip(add_init):
    g = torch.Generator().manual_seed(2)
    n = _normals(2, 500, seed=2)
    albedo = torch.rand(2, 500, 3, generator=g, dtype=torch.float64) * 0.8 + 0.1
    sh = torch.randn(2, 27, generator=g, dtype=torch.float64) * 0.3
    colours = shade_sh(albedo, n, sh, add_ambient_init=add_init)
    fit = fit_sh(colours, albedo, n, add_ambient_init=add_init)
    torch.testing.assert_close(fit, sh, atol=1e-9, rtol=0)
    # Weights: corrupted vertices with zero weight do not matter.
    w = torch.ones(2, 500, dtype=torch.float64)
    w[:, :50] = 0
    bad = colours.clone()
    bad[:, :50] = 5.0
    fit_w = fit_sh(bad, albedo, n, w, add_ambient_init=add_init)
    torch.testing.assert_close(fit_w, sh, atol=1e-9, rtol=0)


def test_fit_sh_hemisphere_float32_and_ridge():
    n = _normals(1, 2000, seed=3, dtype=torch.float32)
    n = torch.where(n[..., 2:] < 0, n * torch.tensor([1.0, 1.0, -1.0]), n)  # visible half only
    albedo = torch.full((1, 2000, 3), 0.6)
    sh = torch.randn(1, 27, generator=torch.Generator().manual_seed(3)) * 0.2
    fit = fit_sh(shade_sh(albedo, n, sh), albedo, n)
    torch.testing.assert_close(fit, sh, atol=2e-3, rtol=0)
    # Too few vertices needs the ridge; with it the fit is finite and pulled towards sh = 0.
    with pytest.raises(InvalidInputError, match="ridge"):
        fit_sh(shade_sh(albedo[:, :4], n[:, :4], sh), albedo[:, :4], n[:, :4])
    few = fit_sh(shade_sh(albedo[:, :4], n[:, :4], sh), albedo[:, :4], n[:, :4], ridge=1e-2)
    assert torch.isfinite(few).all()
    huge = fit_sh(shade_sh(albedo, n, sh), albedo, n, ridge=1e9)
    assert huge.abs().max() < 1e-3


def test_gradcheck_shade_sh():
    g = torch.Generator().manual_seed(4)
    albedo = torch.rand(2, 5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    n = _normals(2, 5, seed=4).requires_grad_(True)
    sh = (torch.randn(2, 27, generator=g, dtype=torch.float64) * 0.3).requires_grad_(True)
    assert torch.autograd.gradcheck(shade_sh, (albedo, n, sh))


def test_gradcheck_fit_sh():
    g = torch.Generator().manual_seed(5)
    n = _normals(1, 12, seed=5)
    albedo = torch.rand(1, 12, 3, generator=g, dtype=torch.float64) + 0.2
    colours = torch.rand(1, 12, 3, generator=g, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda c: fit_sh(c, albedo, n), (colours,))


def test_module_wrappers():
    n = _normals(2, 10, seed=6, dtype=torch.float32)
    albedo = torch.rand(2, 10, 3)
    sh = torch.randn(2, 27) * 0.1
    lit = SHLighting(sh)
    torch.testing.assert_close(SHShader()(albedo, n, lit), shade_sh(albedo, n, sh))
    assert lit.gamma.shape == (2, 3, 9)
    torch.testing.assert_close(lit.gamma[:, :, 0], sh.reshape(2, 3, 9)[:, :, 0] + 0.8)


@pytest.mark.parametrize("call", [
    lambda: sh_basis(torch.zeros(10, 3)),
    lambda: shade_sh(torch.zeros(1, 4, 3), torch.zeros(1, 4, 3), torch.zeros(1, 9)),
    lambda: shade_sh(torch.zeros(1, 4, 3), torch.zeros(1, 5, 3), torch.zeros(1, 27)),
    lambda: shade_sh(torch.zeros(1, 4, 3), torch.zeros(1, 4, 3), torch.zeros(2, 27)),
    lambda: shade_sh(torch.zeros(1, 4, 4), torch.zeros(1, 4, 3), torch.zeros(1, 27)),
    lambda: fit_sh(torch.zeros(1, 20, 3), torch.zeros(1, 20, 3), torch.zeros(1, 20, 3),
                   torch.ones(1, 19)),
    lambda: fit_sh(torch.zeros(1, 20, 3), torch.zeros(1, 20, 3), torch.zeros(1, 20, 3),
                   ridge=-1.0),
    lambda: SHLighting(torch.zeros(27)),
])
def test_bad_inputs_raise(call):
    with pytest.raises(InvalidInputError):
        call()
