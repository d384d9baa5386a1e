from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.models.starter import build_starter_model
from facecraft.sdk.render.cameras import PerspectiveCamera, Pose, WeakPerspectiveCamera
from facecraft.sdk.render.pose_fit import fit_weak_perspective
from facecraft.sdk.render.renderer import MeshRenderer, RenderSettings, render_mesh
from facecraft.sdk.render.sampling import region_mask, sample_image, sample_vertex_colors

from ...conftest import assets_or_skip, uv_sphere


def _sphere(rows=10, cols=14, dtype=torch.float32):
    v, t = uv_sphere(rows, cols, radius=0.1)
    return torch.from_numpy(v).to(dtype)[None], torch.from_numpy(t).long()


def test_lit_sphere_brightest_facing_the_light():
    v, tri = _sphere(24, 32)
    cam = PerspectiveCamera.paper(64)
    sh = torch.zeros(1, 27)
    sh[:, [2, 11, 20]] = 0.5  # Y2 ~ nz: light from the camera side
    out = render_mesh(v, tri, torch.full_like(v, 0.5), camera=cam, sh=sh)
    assert out.image.shape == (1, 64, 64, 3) and out.mask.shape == (1, 64, 64)
    lum = out.image[0, ..., 0]
    centre = lum[30:34, 30:34].mean()
    rim = lum[out.mask[0]].min()
    assert centre > rim + 0.1
    # about half the vertices are visible (the front hemisphere)
    assert 0.35 < out.visibility.float().mean() < 0.6
    front = out.visibility[0] & (v[0, :, 2] > 0.05)
    assert front.sum() == (v[0, :, 2] > 0.05).sum()
    assert not (out.visibility[0] & (v[0, :, 2] < -0.01)).any()


def test_gradients_flow_to_colours_positions_and_sh_finite_differences():
    v, tri = _sphere(5, 6, torch.float64)
    cam = WeakPerspectiveCamera(120.0, (16.0, 16.0), (32, 32))
    albedo = torch.rand(1, v.shape[1], 3, dtype=torch.float64)
    sh = 0.1 * torch.randn(1, 27, dtype=torch.float64)
    weights = torch.rand(1, 32, 32, 3, dtype=torch.float64)
    settings = RenderSettings(cull_backfaces=True)

    def loss(verts, alb, light):
        out = render_mesh(verts, tri, alb, camera=cam, sh=light, settings=settings)
        return (out.image * weights).sum()

    inputs = (v.clone().requires_grad_(True), albedo.requires_grad_(True),
              sh.requires_grad_(True))
    assert torch.autograd.gradcheck(loss, inputs, eps=1e-6, atol=1e-5)
    grads = torch.autograd.grad(loss(*inputs), inputs)
    assert all(g.abs().sum() > 0 for g in grads)


def test_pose_moves_the_render_and_renderer_module():
    v, tri = _sphere()
    cam = PerspectiveCamera.paper(64)
    r = MeshRenderer(tri, cam)
    centred = r(v, torch.ones_like(v))
    shifted = r(v, torch.ones_like(v),
                pose=Pose(torch.eye(3)[None], torch.tensor([[0.02, 0.0, 0.0]])))
    cx0 = torch.nonzero(centred.mask[0])[:, 1].float().mean()
    cx1 = torch.nonzero(shifted.mask[0])[:, 1].float().mean()
    assert cx1 > cx0 + 5  # +X (the subject's left) moves right in the image
    with pytest.raises(InvalidInputError, match="albedo"):
        r(v, torch.ones(1, 3, 3))


def test_region_mask_and_sampling():
    m = build_starter_model()
    v = torch.from_numpy(m.mean_shape)[None]
    tri = torch.from_numpy(m.triangles).long()
    fit = fit_weak_perspective(m.landmarks(m.mean_shape),
                               m.landmarks(m.mean_shape)[:, :2] * [800, -800] + 64, (128, 128))
    out = render_mesh(v, tri, torch.zeros_like(v), camera=fit.camera, pose=fit.pose)
    skin = region_mask(out.fragments, tri, torch.from_numpy(m.regions["skin"]).long())
    eyes = region_mask(out.fragments, tri, torch.from_numpy(m.regions["eye_left"]).long())
    assert skin.sum() > 20 * eyes.sum() > 0
    assert not (skin & eyes).any() and (skin <= out.mask).all()
    img = torch.arange(4 * 6, dtype=torch.float32).view(1, 1, 4, 6)
    s = sample_image(img, torch.tensor([[[0.5, 0.5], [3.5, 2.5], [1.0, 0.5]]]))
    torch.testing.assert_close(s[0, :, 0], torch.tensor([0.0, 15.0, 0.5]))


def test_pose_fit_recovers_a_known_pose():
    m = build_starter_model()
    p3 = m.landmarks(m.mean_shape)
    pose = Pose.from_euler(torch.tensor([[0.1, -0.4, 0.05]]), torch.tensor([[0.01, -0.02, 0]]))
    cam = WeakPerspectiveCamera(900.0, (100.0, 120.0), (240, 200))
    p2 = cam.project(pose.transform(torch.from_numpy(p3)[None]))[0, :, :2].numpy()
    fit = fit_weak_perspective(p3, p2, (240, 200))
    assert fit.residual_px < 1e-3
    torch.testing.assert_close(fit.pose.rotation, pose.rotation, atol=1e-4, rtol=0)
    assert abs(fit.camera.scale - 900.0) < 1e-2


def _real_photo(size: int = 256):
    """The 300-W photo with manual landmarks, cropped around the face; RGB float in [0, 1]."""
    path = assets_or_skip("photos", "eos-300w", "image_0010.png")
    faces = json.loads(assets_or_skip("landmarks68.json").read_text())["images"]
    lm = np.asarray(faces["photos/eos-300w/image_0010.png"]["faces"][0]["lm68_xy"])
    img = cv2.imread(str(path))[:, :, ::-1]
    c = (lm.min(0) + lm.max(0)) / 2
    side = (lm.max(0) - lm.min(0)).max() * 1.6
    s = size / side
    warp = np.array([[s, 0, -(c[0] - side / 2) * s], [0, s, -(c[1] - side / 2) * s]])
    crop = cv2.warpAffine(img, warp, (size, size), flags=cv2.INTER_AREA)
    return crop.astype(np.float32) / 255, lm * s + warp[:, 2]


def _resample_psnr(model, size=256):
    photo, lm = _real_photo(size)
    fit = fit_weak_perspective(model.landmarks(model.mean_shape), lm, (size, size))
    v = torch.from_numpy(model.mean_shape)[None]
    tri = torch.from_numpy(model.triangles).long()
    first = render_mesh(v, tri, torch.zeros_like(v), camera=fit.camera, pose=fit.pose)
    image = torch.from_numpy(photo).permute(2, 0, 1)[None]
    colours = sample_vertex_colors(image, first.screen_verts, first.visibility)
    again = render_mesh(v, tri, colours[..., :3], camera=fit.camera, pose=fit.pose)
    tri_visible = first.visibility[0][tri].all(1)
    tid = again.fragments.triangle_id[0]
    mask = (tid >= 0) & tri_visible[tid.clamp(min=0)]
    assert mask.sum() > 0.3 * size * size  # the face fills the crop
    mse = ((again.image[0] - torch.from_numpy(photo))[mask] ** 2).mean().item()
    return 10 * np.log10(1.0 / mse), fit.residual_px


@pytest.mark.slow
def test_photo_sampled_and_rerendered_gives_the_photo_back_ict(ict_dir):
    from facecraft.sdk.models.importers.ict import import_ict_facekit

    psnr, resid = _resample_psnr(import_ict_facekit(ict_dir, face_only=True))
    assert resid < 10  # pixels at 256: the mean shape fits the landmarks loosely
    assert psnr > 30, psnr  # measured 34.2 dB


def test_photo_sampled_and_rerendered_starter():
    # the starter's face has ~3k vertices (coarser than ICT's 9k): Gouraud over larger
    # triangles blurs more, measured 29.0 dB
    psnr, _ = _resample_psnr(build_starter_model())
    assert psnr > 27, psnr
