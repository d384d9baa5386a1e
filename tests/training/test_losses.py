"""Losses and metrics: zero at the optimum, masks, empty masks, gradients, references."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from facecraft.sdk.errors import InvalidInputError
from facecraft.training.losses import (
    DENG_LANDMARK_PIXEL_WEIGHT,
    LossWeights,
    albedo_variance,
    coefficient_regularizer,
    combine,
    deng_landmark_weights,
    identity_loss,
    landmark_loss,
    lighting_regularizer,
    photometric_loss,
    psnr,
    ssim,
    supervised_coeff_loss,
    symmetry_loss,
    texture_vertex_loss,
    vertex_loss,
    wgan_critic_loss,
    wgan_generator_loss,
    wgan_gp_gradient_penalty,
)
from facecraft.training.regressor import CoeffLayout, Coeffs3DMM

LAYOUT = CoeffLayout(num_identity=5, num_expression=4, num_albedo=3)


@pytest.fixture
def rng() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _images(rng, b=2, h=8, w=9, dtype=torch.float32):
    render = torch.rand(b, h, w, 3, generator=rng, dtype=dtype)
    photo = torch.rand(b, h, w, 3, generator=rng, dtype=dtype)
    mask = torch.rand(b, h, w, generator=rng) > 0.5
    return render, photo, mask


def _coeffs(rng, b=2, scale=1.0) -> Coeffs3DMM:
    return Coeffs3DMM.from_vector(scale * torch.randn(b, LAYOUT.size, generator=rng), LAYOUT)


def _assert_empty_ok(loss_fn, x):
    loss = loss_fn(x)
    assert loss.item() == 0.0
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


# -------------------------------------------------------------------------- photometric
@pytest.mark.parametrize("kind", ["l21", "l1"])
def test_photometric_zero_positive_and_masked(rng, kind):
    render, photo, mask = _images(rng)
    assert photometric_loss(photo, photo, mask, kind=kind).item() == 0.0
    base = photometric_loss(render, photo, mask, kind=kind)
    assert base.item() > 0
    changed = torch.where(mask[..., None], render, torch.rand_like(render) * 5)
    assert torch.equal(photometric_loss(changed, photo, mask, kind=kind), base)
    # float mask behaves like the bool one
    assert torch.allclose(photometric_loss(render, photo, mask.float(), kind=kind), base)


def test_photometric_matches_definition(rng):
    render, photo, mask = _images(rng)
    d = (render - photo)[mask]
    assert torch.allclose(photometric_loss(render, photo, mask), d.norm(dim=-1).mean())
    assert torch.allclose(photometric_loss(render, photo, mask, kind="l1"),
                          d.abs().sum(-1).mean())


def test_photometric_empty_mask_and_zero_grad_at_optimum(rng):
    render, photo, mask = _images(rng)
    x = render.clone().requires_grad_(True)
    _assert_empty_ok(lambda t: photometric_loss(t, photo, torch.zeros_like(mask)), x)
    y = photo.clone().requires_grad_(True)
    photometric_loss(y, photo, mask).backward()
    assert torch.isfinite(y.grad).all()


def test_photometric_gradcheck(rng):
    render, photo, mask = _images(rng, b=1, h=3, w=4, dtype=torch.float64)
    render.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda r: photometric_loss(r, photo, mask), (render,))
    assert torch.autograd.gradcheck(lambda r: photometric_loss(r, photo, mask.double()),
                                    (render,))


def test_photometric_rejects_bad_input(rng):
    render, photo, mask = _images(rng)
    with pytest.raises(InvalidInputError, match="mask"):
        photometric_loss(render, photo, mask[0])
    with pytest.raises(InvalidInputError, match="kind"):
        photometric_loss(render, photo, mask, kind="l2")
    with pytest.raises(InvalidInputError, match="render"):
        photometric_loss(render.permute(0, 3, 1, 2), photo, mask)


# ----------------------------------------------------------------------------- landmarks
def test_landmark_weights_and_value(rng):
    w = deng_landmark_weights()
    assert w.shape == (68,) and w.sum().item() == 68 + 19 * 11
    assert (w[28:31] == 20).all() and (w[60:] == 20).all() and w[27] == 1 and w[31] == 1
    target = torch.rand(2, 68, 2, generator=rng) * 224
    assert landmark_loss(target, target).item() == 0.0
    pred = target + torch.randn(2, 68, 2, generator=rng)
    loss = landmark_loss(pred, target, image_size=224)
    want = (((pred - target) ** 2).sum(-1) * w).sum() / (2 * 68 * 224 ** 2)
    assert torch.allclose(loss, want)
    # the default weight reproduces Deng's pixel-unit weighting
    deng = (((pred - target) ** 2).sum(-1) * w).sum() / (2 * 68) * DENG_LANDMARK_PIXEL_WEIGHT
    assert torch.allclose(LossWeights().landmark * loss, deng)


def test_landmark_masked_and_empty(rng):
    target = torch.rand(2, 5, 2, generator=rng)
    pred = target + 1
    vis = torch.tensor([[1, 1, 0, 1, 0], [0, 1, 1, 1, 1]], dtype=torch.bool)
    base = landmark_loss(pred, target, weights=vis, image_size=1)
    moved = torch.where(vis[..., None], pred, pred + 7)
    assert torch.equal(landmark_loss(moved, target, weights=vis, image_size=1), base)
    x = pred.clone().requires_grad_(True)
    _assert_empty_ok(lambda t: landmark_loss(t, target, weights=torch.zeros(5)), x)
    with pytest.raises(InvalidInputError, match="68"):
        landmark_loss(pred, target)


def test_landmark_gradcheck(rng):
    target = torch.rand(2, 68, 2, generator=rng, dtype=torch.float64)
    pred = (target + 0.1).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: landmark_loss(p, target, image_size=2.0), (pred,))


# ------------------------------------------------------------------------------ identity
def test_identity_loss(rng):
    a = torch.randn(3, 16, generator=rng, dtype=torch.float64)
    assert identity_loss(a, 2 * a).abs().item() < 1e-12
    assert identity_loss(a, torch.randn(3, 16, generator=rng, dtype=torch.float64)).item() > 0
    assert math.isclose(identity_loss(a, -a).item(), 2.0, rel_tol=1e-9)
    b = torch.randn(3, 16, generator=rng, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: identity_loss(a, x), (b,))
    assert identity_loss(a[:0], a[:0]).item() == 0.0


# -------------------------------------------------------------------------- coefficients
def test_coefficient_regularizer(rng):
    zero = _coeffs(rng, scale=0.0)
    assert coefficient_regularizer(zero).item() == 0.0
    c = _coeffs(rng)
    want = ((c.identity ** 2).sum() + 0.8 * (c.expression ** 2).sum()
            + 1.7e-2 * (c.albedo ** 2).sum()) / 2
    assert torch.allclose(coefficient_regularizer(c), want)
    # pose, lighting and translation are not regularised
    moved = dataclasses.replace(c, angles=c.angles + 1, translation=c.translation + 1)
    assert torch.equal(coefficient_regularizer(moved), coefficient_regularizer(c))


def test_lighting_regularizer(rng):
    white = torch.randn(2, 9, generator=rng).repeat(1, 3)  # same 9 bands for R, G, B
    assert lighting_regularizer(white).abs().item() < 1e-12
    assert lighting_regularizer(torch.randn(2, 27, generator=rng)).item() > 0


def test_albedo_variance(rng):
    albedo = torch.rand(2, 10, 3, generator=rng)
    skin = torch.tensor([0, 2, 3, 7])
    uniform = albedo.clone()
    uniform[:, skin] = torch.tensor([0.5, 0.4, 0.3])
    assert albedo_variance(uniform, skin).abs().item() < 1e-12
    loss = albedo_variance(albedo, skin)
    sk = albedo[:, skin]
    want = ((sk - sk.mean(1, keepdim=True)) ** 2).sum() / (2 * 4)
    assert torch.allclose(loss, want)
    mask = torch.zeros(10, dtype=torch.bool)
    mask[skin] = True
    assert torch.allclose(albedo_variance(albedo, mask), loss)
    changed = albedo.clone()
    changed[:, ~mask] = 9.0
    assert torch.allclose(albedo_variance(changed, skin), loss)
    x = albedo.clone().requires_grad_(True)
    _assert_empty_ok(lambda t: albedo_variance(t, torch.zeros(10, dtype=torch.bool)), x)


def test_supervised_coeff_loss(rng):
    c = _coeffs(rng)
    out = supervised_coeff_loss(c, c)
    assert set(out) == {"identity", "expression", "albedo", "angles", "lighting", "translation"}
    assert all(v.item() == 0 for v in out.values())
    d = supervised_coeff_loss(dataclasses.replace(c, angles=c.angles + 0.5), c)
    assert math.isclose(d["angles"].item(), 0.25, rel_tol=1e-6) and d["identity"].item() == 0
    no_albedo = CoeffLayout(num_identity=5, num_expression=4, num_albedo=0)
    e = Coeffs3DMM.from_vector(torch.randn(2, no_albedo.size, generator=rng), no_albedo)
    assert supervised_coeff_loss(e, e)["albedo"].item() == 0.0
    with pytest.raises(InvalidInputError, match="match"):
        supervised_coeff_loss(c, e)


# ---------------------------------------------------------------------------------- mesh
def test_vertex_losses(rng):
    v = torch.randn(2, 6, 3, generator=rng)
    assert vertex_loss(v, v).item() == 0.0
    offset = torch.tensor([0.003, 0.0, 0.004])  # 5 mm
    assert math.isclose(vertex_loss(v + offset, v).item(), 0.005, rel_tol=1e-5)
    assert texture_vertex_loss(v, v).item() == 0.0
    assert math.isclose(texture_vertex_loss(v, v + offset).item(), 0.007 / 3, rel_tol=1e-5)
    mask = torch.tensor([True, True, False, True, False, False])
    far = v.clone()
    far[:, ~mask] += 10
    assert vertex_loss(far, v, mask).item() == 0.0
    assert texture_vertex_loss(v, far, mask).item() == 0.0
    x = v.clone().requires_grad_(True)
    _assert_empty_ok(lambda t: vertex_loss(t, v + 1, torch.zeros(2, 6)), x)
    x.grad = None
    _assert_empty_ok(lambda t: texture_vertex_loss(v + 1, t, torch.zeros(6)), x)
    y = v.clone().requires_grad_(True)
    vertex_loss(y, v).backward()  # at the optimum: finite gradient
    assert torch.isfinite(y.grad).all()


def test_symmetry_loss(rng):
    mirror = torch.tensor([3, 4, 2, 0, 1])  # 2 on the midline
    half = torch.rand(2, 2, 3, generator=rng)
    sym = torch.cat([half, torch.rand(2, 1, 3, generator=rng), half], dim=1)
    assert symmetry_loss(sym, mirror).item() == 0.0
    asym = sym.clone()
    asym[:, 0] += 0.3
    assert math.isclose(symmetry_loss(asym, mirror).item(), 2 * 0.3 / 5, rel_tol=1e-5)
    mask = torch.tensor([False, True, True, False, True])
    assert symmetry_loss(asym, mirror, mask).item() == 0.0
    with pytest.raises(InvalidInputError, match="mirror_ids"):
        symmetry_loss(sym, mirror[:4])


# ---------------------------------------------------------------------------- adversarial
class _LinearCritic(nn.Module):
    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight


def test_gradient_penalty(rng):
    real = torch.rand(4, 3, 5, 5, generator=rng)
    fake = torch.rand(4, 3, 5, 5, generator=rng).requires_grad_(True)
    w = torch.randn(75, generator=rng)
    unit = _LinearCritic(w / w.norm())
    gp = wgan_gp_gradient_penalty(unit, real, fake, generator=rng)
    assert gp.item() < 1e-10
    steep = _LinearCritic(3 * w / w.norm())
    gp = wgan_gp_gradient_penalty(steep, real, fake, generator=rng)
    assert math.isclose(gp.item(), 4.0, rel_tol=1e-4)
    gp.backward()  # create_graph=True: the penalty reaches the critic's parameters
    assert steep.weight.grad is not None and steep.weight.grad.abs().sum() > 0
    assert fake.grad is None  # real and fake are detached
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(75, 8), nn.Tanh(), nn.Linear(8, 1))
    assert wgan_gp_gradient_penalty(mlp, real, fake, generator=rng).item() > 0


def test_wgan_losses():
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([0.0, -2.0])
    assert wgan_critic_loss(real, fake).item() == -3.0
    assert wgan_generator_loss(fake).item() == 1.0


# -------------------------------------------------------------------------------- metrics
def test_psnr(rng):
    a, b, mask = _images(rng)
    assert torch.isinf(psnr(a, a)).all()
    mse = ((a - b) ** 2).flatten(1).mean(1)
    assert torch.allclose(psnr(a, b), 10 * torch.log10(1 / mse))
    masked_mse = torch.stack([((a[i] - b[i])[mask[i]] ** 2).mean() for i in range(2)])
    assert torch.allclose(psnr(a, b, mask), 10 * torch.log10(1 / masked_mse))
    assert torch.allclose(psnr(255 * a, 255 * b, data_range=255.0), psnr(a, b))
    empty = mask.clone()
    empty[1] = False
    out = psnr(a, b, empty)
    assert torch.isfinite(out[0]) and torch.isnan(out[1])


def _ssim_numpy(x: np.ndarray, y: np.ndarray) -> float:
    """Straightforward single-image SSIM: Gaussian 11 x 11, sigma 1.5, valid windows."""
    r = 5
    t = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-t ** 2 / (2 * 1.5 ** 2))
    win = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    h, w, c = x.shape
    vals = []
    for ch in range(c):
        for i in range(r, h - r):
            for j in range(r, w - r):
                px = x[i - r:i + r + 1, j - r:j + r + 1, ch]
                py = y[i - r:i + r + 1, j - r:j + r + 1, ch]
                mx, my = (win * px).sum(), (win * py).sum()
                vx = (win * (px - mx) ** 2).sum()
                vy = (win * (py - my) ** 2).sum()
                cov = (win * (px - mx) * (py - my)).sum()
                vals.append((2 * mx * my + c1) * (2 * cov + c2)
                            / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2)))
    return float(np.mean(vals))


def test_ssim(rng):
    a = torch.rand(1, 16, 15, 3, generator=rng, dtype=torch.float64)
    assert torch.allclose(ssim(a, a), torch.ones(1, dtype=torch.float64))
    prev = 1.0
    for sigma in (0.02, 0.1, 0.3):
        s = ssim(a, (a + sigma * torch.randn(a.shape, generator=rng, dtype=a.dtype))).item()
        assert s < prev
        prev = s
    b = (a + 0.1 * torch.randn(a.shape, generator=rng, dtype=a.dtype)).clamp(0, 1)
    assert math.isclose(ssim(a, b).item(), _ssim_numpy(a[0].numpy(), b[0].numpy()),
                        rel_tol=1e-9)


def test_ssim_mask(rng):
    a = torch.rand(2, 16, 16, 3, generator=rng)
    b = (a + 0.1 * torch.randn(a.shape, generator=rng)).clamp(0, 1)
    full = torch.ones(2, 16, 16, dtype=torch.bool)
    assert torch.allclose(ssim(a, b, full), ssim(a, b))
    mask = torch.zeros(2, 16, 16, dtype=torch.bool)
    mask[:, 5:8, 5:9] = True  # the 11 x 11 windows of these centres stay inside [0, 15)
    changed = b.clone()
    changed[:, 14:, :] = 0.0
    changed[:, :, 14:] = 0.0
    assert torch.allclose(ssim(a, changed, mask), ssim(a, b, mask))
    mask[1] = False
    out = ssim(a, b, mask)
    assert torch.isfinite(out[0]) and torch.isnan(out[1])
    with pytest.raises(InvalidInputError, match="11 x 11"):
        ssim(a[:, :8], b[:, :8])


# -------------------------------------------------------------------------------- weights
def test_loss_weights_validation():
    w = LossWeights()
    assert w.photometric == 1.92 and w.symmetry == 0.0
    assert math.isclose(w.landmark, 1.6e-3 * 224 ** 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        w.photometric = 2.0  # type: ignore[misc]
    for bad in (-1.0, math.nan, math.inf, True, "1"):
        with pytest.raises(InvalidInputError, match="photometric"):
            LossWeights(photometric=bad)  # type: ignore[arg-type]
    assert isinstance(LossWeights(symmetry=1).symmetry, float)
    assert "symmetry" not in w.active() and "photometric" in w.active()
    gcn = LossWeights.paper_gcn(render_weight=0.4, reference_weight=0.6)
    assert gcn.texture_vertex == 0.6 and math.isclose(gcn.symmetry, 0.2)
    assert gcn.gradient_penalty == 10.0 and gcn.coefficient_reg == 0.0


def test_combine():
    w = LossWeights(photometric=2.0, identity=0.5, symmetry=0.0)
    p = torch.tensor(3.0, requires_grad=True)
    terms = {"photometric": p, "identity": torch.tensor(4.0),
             "symmetry": torch.tensor(math.nan)}
    total, log = combine(terms, w)
    assert total.item() == 8.0
    assert set(log) == {"photometric", "identity", "total"}
    assert log["photometric"].item() == 6.0 and not log["total"].requires_grad
    total.backward()
    assert p.grad.item() == 2.0
    off, log = combine({"symmetry": torch.tensor(1.0)}, w)
    assert off.item() == 0.0 and log == {"total": off}
    with pytest.raises(InvalidInputError, match="unknown"):
        combine({"photo": p}, w)
    with pytest.raises(InvalidInputError, match="0-d"):
        combine({"photometric": torch.ones(2)}, w)
    with pytest.raises(InvalidInputError):
        combine({}, w)
