"""The 468 mesh points on a face model: placement, symmetry, caching."""

from __future__ import annotations

import numpy as np
import pytest

from facecraft.sdk.models.mesh_landmarks import (
    ANCHOR_PAIRS,
    build_mesh_landmarks,
    canonical_mesh_vertices,
    load_or_build_mesh_landmarks,
)
from facecraft.sdk.photo.landmarks import IBUG68_FLIP, IBUG68_FROM_MESH468


@pytest.fixture(scope="module")
def starter():
    from facecraft.sdk.models.starter import StarterSettings, build_starter_model

    return build_starter_model(StarterSettings())


def test_canonical_mesh_is_the_vendored_one():
    v = canonical_mesh_vertices()
    assert v.shape == (468, 3)
    assert 0.13 < np.ptp(v[:, 0]) < 0.17  # about 15 cm wide, in metres
    assert v[4, 2] == v[:, 2].max()  # the nose tip is the most forward point


def test_points_land_on_the_model_where_the_anchors_say(starter):
    ml = build_mesh_landmarks(starter)
    assert ml.faces.shape == (468,) and np.allclose(ml.bary.sum(1), 1)
    pts = ml.points(starter.mean_shape, starter.triangles)
    lm = starter.landmarks(starter.mean_shape)
    for a, b in ANCHOR_PAIRS:
        assert np.linalg.norm(pts[a] - lm[b]) < 0.006, (a, b)  # metres
    assert np.median(ml.distance) < 0.005
    # batched shapes give the same points
    batch = ml.points(np.stack([starter.mean_shape] * 2), starter.triangles)
    np.testing.assert_allclose(batch[1], pts)


def test_mirror_points_stay_mirrored(starter):
    pts = build_mesh_landmarks(starter).points(starter.mean_shape, starter.triangles)
    ids = np.asarray(IBUG68_FROM_MESH468)
    flip = ids[list(IBUG68_FLIP)]  # the mesh vertex of each landmark's mirror partner
    mirrored = pts[flip] * [-1, 1, 1]
    assert np.abs(pts[ids] - mirrored).max() < 0.004


def test_cache_round_trip(starter, tmp_path):
    a = load_or_build_mesh_landmarks(starter, tmp_path)
    (f,) = tmp_path.glob("*.npz")
    b = load_or_build_mesh_landmarks(starter, tmp_path)
    np.testing.assert_array_equal(a.faces, b.faces)
    np.testing.assert_allclose(a.bary, b.bary)
    f.write_bytes(b"garbage")
    c = load_or_build_mesh_landmarks(starter, tmp_path)
    np.testing.assert_array_equal(a.faces, c.faces)
