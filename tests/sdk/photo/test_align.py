from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.models.starter import build_starter_model
from facecraft.sdk.photo.align import (
    CROP_TEMPLATE_224,
    align_face,
    five_from_68,
    similarity_transform,
)
from facecraft.sdk.photo.face_mask import refine_skin_mask, skin_mask_from_landmarks
from facecraft.sdk.render.cameras import PerspectiveCamera

from ...conftest import assets_or_skip


def test_similarity_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.random((5, 2)) * 100
    ang, s, t = 0.3, 1.7, np.array([12.0, -4.0])
    rot = s * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    m = similarity_transform(src, src @ rot.T + t)
    np.testing.assert_allclose(m[:, :2], rot, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], t, atol=1e-9)
    with pytest.raises(InvalidInputError, match="degenerate"):
        similarity_transform(np.ones((5, 2)), src)


def test_align_is_invertible_and_samples_the_right_pixels():
    h, w = 300, 400
    xs = np.broadcast_to(np.arange(w, dtype=np.float32) + 0.5, (h, w))
    ys = np.broadcast_to((np.arange(h, dtype=np.float32) + 0.5)[:, None], (h, w))
    photo = np.stack([xs, ys, np.zeros_like(xs)], -1)  # each pixel holds its own centre
    lm5 = CROP_TEMPLATE_224 @ np.array([[1.1, 0.2], [-0.2, 1.1]]).T + [60.0, 30.0]
    a = align_face(photo, lm5)
    np.testing.assert_allclose(a.landmarks5, CROP_TEMPLATE_224, atol=1e-9)
    np.testing.assert_allclose(a.to_photo(a.to_crop(lm5)), lm5, atol=1e-9)
    r, c = np.mgrid[40:180:7, 40:180:7]
    centres = np.stack([c + 0.5, r + 0.5], -1).reshape(-1, 2)
    expect = a.to_photo(centres)
    got = a.image[r.ravel(), c.ravel(), :2]
    np.testing.assert_allclose(got, expect, atol=1e-3)  # bilinear on a linear ramp is exact


def test_template_matches_the_paper_camera():
    m = build_starter_model()
    five = five_from_68(m.landmarks(m.mean_shape))
    proj = PerspectiveCamera.paper(224).project(torch.from_numpy(five)[None].float())[0, :, :2]
    np.testing.assert_allclose(proj.numpy() - [0, 25.0], CROP_TEMPLATE_224, atol=0.05)


def test_skin_mask_on_a_real_photo():
    faces = json.loads(assets_or_skip("landmarks68.json").read_text())["images"]
    lm = np.asarray(faces["photos/eos-300w/image_0010.png"]["faces"][0]["lm68_xy"])
    size = (1024, 1280)
    mask = skin_mask_from_landmarks(lm, size)
    cheek = ((lm[2] + lm[31] + lm[48]) / 3).astype(int)
    assert mask[cheek[1], cheek[0]]
    for p in (lm[36:42].mean(0), lm[42:48].mean(0), lm[62], lm[19]):  # eyes, mouth, brow
        assert not mask[int(p[1]), int(p[0])]
    outside = lm[8] + (lm[8] - lm[27]) * 0.3  # below the chin
    assert not mask[int(outside[1]), int(outside[0])]
    # roughly the face: between 30% and 90% of the landmarks' bounding box
    box = np.prod(lm.max(0) - lm.min(0))
    assert 0.3 < mask.sum() / box < 0.9
    img = np.full((*size, 3), 0.6, np.float32)
    img[:, : int(lm[:, 0].mean())] = [0.1, 0.05, 0.02]  # "hair" over the left half
    img[mask & (np.arange(size[1])[None] >= int(lm[:, 0].mean()))] = [0.8, 0.6, 0.5]
    refined = refine_skin_mask(img, mask)
    assert refined.sum() < mask.sum() and (refined <= mask).all()
    with pytest.raises(InvalidInputError):
        skin_mask_from_landmarks(lm[:5], size)
