"""Synthetic training faces: determinism, exact ground truth, framing, backgrounds, the cache."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.models.starter import build_starter_model
from facecraft.sdk.photo.align import CROP_SIZE, CROP_TEMPLATE_224, five_from_68
from facecraft.sdk.render.cameras import PerspectiveCamera
from facecraft.training.synthetic import (
    CachedSyntheticFaces,
    SyntheticFace,
    SyntheticFaces,
    SyntheticSettings,
    template_translation,
)

ASSETS = Path(__file__).resolve().parents[2].parent / "shared" / "assets"
SIZE = 96


@pytest.fixture(scope="module")
def model():
    return build_starter_model()


@pytest.fixture(scope="module")
def dataset(model):
    return SyntheticFaces(model, SyntheticSettings(image_size=SIZE), length=64, seed=7)


def _grass() -> Path:
    p = ASSETS / "photos" / "no-face" / "grass.jpg"
    if not p.exists():
        pytest.skip("../shared/assets/photos/no-face/grass.jpg not present (a user's own clone "
                    "has no shared assets; CI always has them)")
    return p


def test_same_seed_and_index_give_identical_samples(model, dataset):
    a, b = dataset[5], dataset[5]
    other = SyntheticFaces(model, SyntheticSettings(image_size=SIZE), length=64, seed=7)[5]
    assert a.keys() == b.keys() == other.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
        assert torch.equal(a[k], other[k]), k
    c = dataset[6]
    for k in ("image", "identity", "expression", "albedo", "angles", "lighting"):
        assert not torch.equal(a[k], c[k]), k
    d = SyntheticFaces(model, SyntheticSettings(image_size=SIZE), length=64, seed=8)[5]
    assert not torch.equal(a["identity"], d["identity"])


def test_identical_in_another_process(dataset):
    code = ("import torch; from facecraft.sdk.models.starter import build_starter_model; "
            "from facecraft.training.synthetic import SyntheticFaces, SyntheticSettings; "
            f"d = SyntheticFaces(build_starter_model(), SyntheticSettings(image_size={SIZE}), "
            "length=64, seed=7)[5]; "
            "print(repr(d['identity'].tolist())); print(float(d['image'].double().sum()))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    ident, total = r.stdout.strip().splitlines()
    here = dataset[5]
    assert eval(ident) == here["identity"].tolist()  # noqa: S307 - our own subprocess output
    assert float(total) == float(here["image"].double().sum())


def test_sample_fields_and_shapes(model, dataset):
    s = dataset[0]
    assert s["image"].shape == (3, SIZE, SIZE) and s["image"].dtype == torch.float32
    assert s["mask"].shape == s["skin_mask"].shape == (SIZE, SIZE)
    assert s["mask"].dtype == s["skin_mask"].dtype == torch.bool
    assert s["identity"].shape == (model.num_identity,)
    assert s["expression"].shape == (model.num_expression,)
    assert s["albedo"].shape == (model.num_albedo,)
    assert s["angles"].shape == s["translation"].shape == (3,)
    assert s["lighting"].shape == (27,)
    assert s["landmarks2d"].shape == (68, 2) and s["landmarks3d"].shape == (68, 3)
    assert "vertices" not in s
    assert (s["skin_mask"] & ~s["mask"]).sum() == 0 and 0 < s["skin_mask"].sum() < s["mask"].sum()
    batch = dataset.render_batch([0, 1, 2])
    assert isinstance(batch, SyntheticFace) and len(batch) == 3 and batch.vertices is None
    # batched rendering agrees with per-sample rendering (float round-off only)
    for k, v in s.items():
        if v.dtype == torch.bool:
            assert (v != batch.sample(0)[k]).sum() <= 2, k
        else:
            torch.testing.assert_close(v, batch.sample(0)[k], atol=1e-4, rtol=1e-5)


def test_expressions_are_sparse_blendshape_weights(dataset):
    e = dataset.render_batch(range(16)).expression
    assert e.min() >= 0 and e.max() <= 1
    active = (e > 0).float().mean()
    assert 0.05 < active < 0.3  # p = 0.15


def test_landmarks2d_are_the_projection_of_landmarks3d(dataset):
    b = dataset.render_batch(range(8))
    proj = PerspectiveCamera.paper(SIZE).project(b.landmarks3d)[..., :2]
    torch.testing.assert_close(proj, b.landmarks2d)


def test_vertices_and_landmarks3d_follow_the_pose(model):
    s = SyntheticSettings(image_size=SIZE, return_vertices=True)
    ds = SyntheticFaces(model, s, length=4, seed=0)
    b = ds.render_batch([0, 1])
    assert b.vertices is not None and b.vertices.shape == (2, model.num_vertices, 3)
    layer = model.to_torch()
    torch.testing.assert_close(layer.landmarks(b.vertices), b.landmarks3d)
    # undo the pose: R^T (p - t) must be the decoded model-frame shape
    from facecraft.sdk.render.cameras import euler_to_matrix

    rot = euler_to_matrix(b.angles)
    local = (b.vertices - b.translation[:, None]) @ rot
    torch.testing.assert_close(local, layer(b.identity, b.expression), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("size", [SIZE, CROP_SIZE])
def test_zero_pose_puts_the_five_landmarks_on_the_template(model, size):
    s = SyntheticSettings(image_size=size, identity_sigma=0.0, expression_active_prob=0.0,
                          yaw_max_deg=0.0, pitch_max_deg=0.0, roll_max_deg=0.0,
                          translation_jitter=(0.0, 0.0, 0.0))
    ds = SyntheticFaces(model, s, length=1, seed=0)
    b = ds.render_batch([0])
    assert torch.equal(b.angles, torch.zeros(1, 3))
    five = five_from_68(b.landmarks2d[0].numpy())
    template = CROP_TEMPLATE_224 * size / CROP_SIZE
    assert np.abs(five - template).max() < 1.0 * max(1.0, size / CROP_SIZE)
    np.testing.assert_allclose(template_translation(model), [0.0, 0.02235, 0.0019], atol=2e-4)
    np.testing.assert_allclose(b.translation[0].numpy(), ds.base_translation, atol=1e-7)


def test_pose_distribution_is_bounded(model):
    s = SyntheticSettings(image_size=32, yaw_max_deg=40.0, pitch_max_deg=10.0, roll_max_deg=5.0)
    ds = SyntheticFaces(model, s, length=200, seed=3)
    angles = torch.cat([ds.render_batch(range(k, k + 50)).angles for k in range(0, 200, 50)])
    deg = torch.rad2deg(angles).abs().amax(0)
    assert deg[0] <= 10.0 and deg[1] <= 40.0 and deg[2] <= 5.0
    assert deg[1] > 35.0  # uniform: the range is used
    jit = torch.cat([ds.render_batch([i]).translation for i in range(3)])
    assert torch.isfinite(jit).all()


def test_images_in_unit_range_and_extreme_yaw_stays_in_frame(model):
    s = SyntheticSettings(image_size=SIZE, jpeg_prob=0.5)
    ds = SyntheticFaces(model, s, length=48, seed=11)
    b = ds.render_batch(range(48))
    assert b.image.min() >= 0 and b.image.max() <= 1
    yaw = torch.rad2deg(b.angles[:, 1])
    extreme = yaw.abs() > 45
    assert extreme.sum() >= 5 and (yaw > 45).any() and (yaw < -45).any()
    assert (b.mask[extreme].flatten(1).sum(1) > 0.1 * SIZE * SIZE).all()
    five = five_from_68(b.landmarks2d[extreme].numpy())
    assert five.min() > 0.1 * SIZE and five.max() < 0.9 * SIZE
    # the whole neutral mean face stays in frame at the extreme poses
    neutral = dataclasses.replace(s, identity_sigma=0.0, expression_active_prob=0.0)
    nb = SyntheticFaces(model, neutral, length=48, seed=11).render_batch(
        torch.nonzero(extreme)[:, 0].tolist())
    assert nb.landmarks2d.min() >= 0 and nb.landmarks2d.max() <= SIZE


def test_photo_backgrounds_change_only_unmasked_pixels(model):
    photo = _grass()
    s = SyntheticSettings(image_size=SIZE, blur_prob=0.0, jpeg_prob=0.0)
    with_photo = SyntheticFaces(model, s, length=4, seed=2, backgrounds=[photo])
    noise = SyntheticFaces(model, dataclasses.replace(s, background="noise"), length=4, seed=2)
    a, b = with_photo.render_batch([0, 1]), noise.render_batch([0, 1])
    assert torch.equal(a.mask, b.mask) and torch.equal(a.identity, b.identity)
    inside = a.mask[:, None].expand_as(a.image)
    torch.testing.assert_close(a.image[inside], b.image[inside])
    outside = (a.image - b.image).abs().sum(1)[~a.mask]
    assert (outside > 0.05).float().mean() > 0.5
    # a grass photo is green
    bg = a.image.permute(0, 2, 3, 1)[~a.mask]
    assert bg[:, 1].mean() > bg[:, 2].mean()


def test_photo_mode_without_photos_raises(model):
    with pytest.raises(InvalidInputError, match="backgrounds"):
        SyntheticFaces(model, SyntheticSettings(background="photos"), length=1, seed=0)


def test_model_without_albedo_gets_a_flat_skin_tone(model):
    bare = model.replace(albedo_mean=None, albedo_basis=None, albedo_names=(),
                         regions={k: v for k, v in model.regions.items() if k != "skin"})
    ds = SyntheticFaces(bare, SyntheticSettings(image_size=SIZE), length=2, seed=0)
    s = ds[0]
    assert s["albedo"].shape == (0,)
    assert torch.equal(s["skin_mask"], s["mask"])
    face = s["image"].permute(1, 2, 0)[s["mask"]]
    assert face[:, 0].mean() > face[:, 2].mean()  # skin: more red than blue


@pytest.mark.parametrize("bad", [
    {"image_size": 8}, {"identity_sigma": -1.0}, {"yaw_max_deg": 95.0},
    {"expression_active_prob": 1.5}, {"translation_jitter": (0.0, 0.0)},
    {"background": "sky"}, {"ambient_range": (0.5, 0.1)}, {"jpeg_quality": (0, 50)},
])
def test_settings_are_validated(bad):
    with pytest.raises(InvalidInputError):
        SyntheticSettings(**bad)


def test_dataset_arguments_are_validated(model):
    with pytest.raises(InvalidInputError, match="length"):
        SyntheticFaces(model, length=0, seed=0)
    with pytest.raises(InvalidInputError, match="seed"):
        SyntheticFaces(model, length=1, seed=-1)
    ds = SyntheticFaces(model, SyntheticSettings(image_size=32), length=2, seed=0)
    with pytest.raises(InvalidInputError, match="outside"):
        ds.render_batch([2])


@pytest.mark.parametrize("image_dtype", ["float32", "uint8"])
def test_cache_round_trip(model, tmp_path, image_dtype):
    s = SyntheticSettings(image_size=48, return_vertices=image_dtype == "float32")
    ds = SyntheticFaces(model, s, length=7, seed=4)
    # batch_size=1 renders exactly as dataset[i] does (batches agree only to round-off)
    folder = ds.cache_to_disk(tmp_path / "cache", shard_size=3, batch_size=1,
                              image_dtype=image_dtype, progress=False)
    assert sorted(p.name for p in folder.iterdir()) == [
        "manifest.json", "shard_00000.npz", "shard_00001.npz", "shard_00002.npz"]
    cached = CachedSyntheticFaces(folder)
    assert len(cached) == 7 and cached.settings == s
    for i in (0, 4, 6, 3, 2, -1):
        want, got = ds[i], cached[i]
        assert got.keys() == want.keys()
        for k, v in got.items():
            if k == "image" and image_dtype == "uint8":
                torch.testing.assert_close(v, want[k], atol=0.5 / 255 + 1e-6, rtol=0)
            else:
                assert v.dtype == want[k].dtype and torch.equal(v, want[k]), (i, k)
    with pytest.raises(InvalidInputError, match="not empty"):
        ds.cache_to_disk(folder, progress=False)
    with pytest.raises(IndexError):
        cached[7]


def _contact_sheet(batch: SyntheticFace, columns: int = 4) -> np.ndarray:
    """(rows * S, columns * S, 3) uint8 BGR: images with the 68 landmarks and skin outline."""
    tiles = []
    for i in range(len(batch)):
        img = (batch.image[i].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        img = np.ascontiguousarray(img[..., ::-1])
        skin = batch.skin_mask[i].numpy().astype(np.uint8)
        contours, _ = cv2.findContours(skin, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(img, contours, -1, (255, 200, 0), 1)
        for x, y in batch.landmarks2d[i].numpy():
            cv2.circle(img, (int(x), int(y)), 1, (0, 255, 0), -1)
        tiles.append(img)
    rows = math.ceil(len(tiles) / columns)
    tiles += [np.zeros_like(tiles[0])] * (rows * columns - len(tiles))
    return np.concatenate([np.concatenate(tiles[r * columns:(r + 1) * columns], 1)
                           for r in range(rows)], 0)


def test_contact_sheet(model, tmp_path):
    photos = [_grass()] if (ASSETS / "photos" / "no-face" / "grass.jpg").exists() else None
    s = SyntheticSettings(image_size=128)
    ds = SyntheticFaces(model, s, length=8, seed=0, backgrounds=photos)
    sheet = _contact_sheet(ds.render_batch(range(8)))
    path = tmp_path / "synthetic_contact_sheet.png"
    assert cv2.imwrite(str(path), sheet)
    assert sheet.shape == (256, 512, 3) and sheet.std() > 10
