"""Fitting a face model to 468 landmarks: synthetic recovery, a real photo, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.models.mesh_landmarks import build_mesh_landmarks
from facecraft.sdk.pipeline.mesh_fit import MeshFitSettings, MeshFitter

from ...conftest import assets_or_skip


@pytest.fixture(scope="module")
def setup():
    from facecraft.sdk.models.starter import build_starter_model

    model = build_starter_model()
    return model, build_mesh_landmarks(model)


def _rot_y(a: float) -> np.ndarray:
    return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])


def test_recovers_pose_and_shape_of_a_synthetic_face(setup):
    model, ml = setup
    rng = np.random.default_rng(1)
    ci = rng.normal(0, 1, len(model.identity_basis)).astype(np.float32)
    ce = np.zeros(len(model.expression_basis), np.float32)
    ce[[3, 10, 20]] = 0.5
    v = model.mean_shape + np.tensordot(ci, model.identity_basis, 1) \
        + np.tensordot(ce, model.expression_basis, 1)
    rot = _rot_y(0.35)
    x = 3000 * ml.points(v, model.triangles) @ rot[:2].T * [1, -1] + [500, 400]
    fit = MeshFitter(model, ml).fit(x)
    assert fit.rms_px < 2.0  # of a face about 500 px wide
    assert fit.scale == pytest.approx(3000, rel=0.06)  # face size and camera scale trade off
    assert np.abs(fit.rotation - rot).max() < 0.05
    assert np.corrcoef(fit.identity, ci)[0, 1] > 0.8
    assert np.abs(fit.projected - x).max() < 8
    # the mean face explains it far worse
    neutral = MeshFitter(model, ml, MeshFitSettings(max_identity=0, expressions=False)).fit(x)
    assert neutral.rms_px > 3 * fit.rms_px


def test_weights_and_bad_input(setup):
    model, ml = setup
    x = ml.points(model.mean_shape, model.triangles)[:, :2] * 2000 * [1, -1] + 300
    w = np.ones(468)
    w[:100] = 0
    assert MeshFitter(model, ml).fit(x, w).rms_px < 1.0
    fitter = MeshFitter(model, ml)
    with pytest.raises(InvalidInputError, match="468"):
        fitter.fit(x[:67])
    with pytest.raises(InvalidInputError, match="finite"):
        fitter.fit(np.full((468, 2), np.nan))
    with pytest.raises(InvalidInputError, match="weights"):
        fitter.fit(x, np.zeros(468))
    with pytest.raises(InvalidInputError, match="iterations"):
        MeshFitSettings(iterations=0)


def test_fits_a_real_photo(setup):
    from facecraft.sdk.photo.image_io import read_image
    from facecraft.sdk.photo.mediapipe_frontend import MediaPipeFrontEnd

    model, ml = setup
    path = assets_or_skip("photos", "london-faces", "neutral", "001_03.jpg")
    face = MediaPipeFrontEnd().analyze(read_image(path).to_uint8())[0]
    fit = MeshFitter(model, ml).fit(face.points)
    iod = np.linalg.norm(face.points[33, :2] - face.points[263, :2])
    assert fit.rms_px < 0.04 * iod
    assert abs(np.degrees(np.arcsin(fit.rotation[0, 2]))) < 15  # a frontal studio photo
