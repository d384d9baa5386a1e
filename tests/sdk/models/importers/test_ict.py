"""ICT-FaceKit on the real model from ../shared/assets (unpacked into a temp cache)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from facecraft.sdk.errors import ModelFormatError
from facecraft.sdk.models.importers.ict import import_ict_facekit
from facecraft.sdk.models.mesh import read_obj_vertices

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ict(ict_dir):
    return import_ict_facekit(ict_dir)


def test_counts_and_names(ict):
    assert ict.num_vertices == 26719
    assert ict.num_identity == 100
    assert ict.num_expression >= 53
    for name in ("jawOpen", "eyeBlink_L", "eyeBlink_R", "mouthSmile_L", "browInnerUp_R"):
        assert name in ict.expression_names
    assert len(ict.uvs) == 28911 and len(ict.uv_triangles) == len(ict.triangles)
    # 25,836 quads + 548 triangles -> 52,220 triangles
    assert len(ict.triangles) == 2 * 25836 + 548
    assert {"face", "skin", "back_of_head", "eye_left", "eye_right", "teeth",
            "mouth_interior", "material:M_Face"} <= set(ict.regions)
    assert ict.expression_kind == "blendshape" and "MIT" in ict.licence


def test_modes_are_file_minus_neutral_in_metres(ict, ict_dir):
    neutral = read_obj_vertices(ict_dir / "generic_neutral_mesh.obj")
    np.testing.assert_allclose(ict.mean_shape, neutral * 0.01, atol=1e-7)
    k = ict.identity_names.index("identity042")
    ident = read_obj_vertices(ict_dir / "identity042.obj")
    np.testing.assert_allclose(ict.shape(np.eye(ict.num_identity)[k]), ident * 0.01, atol=2e-7)
    e = ict.expression_names.index("jawOpen")
    jaw = read_obj_vertices(ict_dir / "jawOpen.obj")
    np.testing.assert_allclose(ict.shape(None, np.eye(ict.num_expression)[e]), jaw * 0.01,
                               atol=2e-7)


def test_landmarks_and_frame(ict, ict_dir):
    ids = json.loads((ict_dir / "vertex_indices.json").read_text())["idx_to_landmark_verts"]
    np.testing.assert_array_equal(ict.landmark_vertices(), ids)
    lm = ict.landmarks(ict.mean_shape)
    assert lm[0, 0] < 0 < lm[16, 0]  # iBUG 0 is the subject's right: -X
    assert lm[30, 2] == lm[:, 2].max()  # nose tip nearest the camera (+Z)
    extent = ict.mean_shape.max(0) - ict.mean_shape.min(0)
    assert 0.15 < extent[0] < 0.3  # metres, not centimetres
    # eyeBlink_L moves the subject's left (+X) side
    d = ict.expression_basis[ict.expression_names.index("eyeBlink_L")]
    moved = np.linalg.norm(d, axis=1) > 1e-4
    assert ict.mean_shape[moved, 0].mean() > 0.01


def test_face_only(ict_dir):
    face = import_ict_facekit(ict_dir, face_only=True)
    assert face.num_vertices == 9409
    full = import_ict_facekit(ict_dir)
    np.testing.assert_allclose(face.landmarks(face.mean_shape), full.landmarks(full.mean_shape))
    assert "teeth" not in face.regions and len(face.regions["skin"]) == 6706


def test_clear_errors(tmp_path, ict_dir):
    with pytest.raises(ModelFormatError, match="generic_neutral_mesh.obj not found"):
        import_ict_facekit(tmp_path)
    broken = tmp_path / "FaceXModel"
    broken.mkdir()
    for name in ("generic_neutral_mesh.obj", "vertex_indices.json", "identity000.obj"):
        shutil.copy(ict_dir / name, broken / name)
    (broken / "browDown_L.obj").write_text("v 0 0 0\n")
    with pytest.raises(ModelFormatError, match="bases do not match|missing"):
        import_ict_facekit(tmp_path)
