"""ICT-FaceKit and the rigs: a second rig made from ICT's own identity modes, correspondences
between the starter and ICT topologies with their residuals, and an ICT reconstruction of a
real photo (landmark fit on ../shared's 300-W photo) fitted onto both rigs, textured, written
as GLB and checked by the Khronos validator."""

from __future__ import annotations

import numpy as np
import pytest

from facecraft.sdk.models.default_model import load_default_model
from facecraft.sdk.models.importers.ict import import_ict_facekit
from facecraft.sdk.render.mesh_io import read_png
from facecraft.sdk.render.texture import BakeSettings
from facecraft.sdk.rigs.correspondence import load_or_build_correspondence
from facecraft.sdk.rigs.fit import RigFitter
from facecraft.sdk.rigs.materials import estimate_materials, estimate_materials_from_photo
from facecraft.sdk.rigs.output import write_rig_outputs
from facecraft.sdk.rigs.rig import starter_rig

from .._rig_fixtures import (
    fit_identity_to_landmarks,
    make_ict_rig,
    photo_landmarks,
    photo_vertex_colors,
    validate_glbs,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ict(ict_dir):
    return import_ict_facekit(ict_dir)


@pytest.fixture(scope="module")
def starter_model():
    return load_default_model()


@pytest.fixture(scope="module")
def rigs(ict, starter_model):
    return {"starter": starter_rig(model=starter_model), "ict-face": make_ict_rig(ict)}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("corr-cache")


@pytest.fixture(scope="module")
def fitters(ict, rigs, cache):
    return {name: RigFitter(ict, rig, cache_dir=cache) for name, rig in rigs.items()}


@pytest.fixture(scope="module")
def reconstruction(ict):
    """ICT identity (40 modes) + weak-perspective pose fitted to the 68 manual landmarks of
    the 300-W photo, with photo colours per vertex."""
    photo_path, lm = photo_landmarks()
    photo = read_png(photo_path)
    coeffs, pose_fit, rms = fit_identity_to_landmarks(ict, lm, photo.shape[:2], n_identity=40)
    verts = ict.shape(identity=coeffs)
    colors, visible = photo_vertex_colors(ict, verts, pose_fit, photo)
    return {"photo": photo, "landmarks": lm, "coeffs": coeffs, "vertices": verts,
            "colors": colors, "visible": visible, "rms_px": rms}


def test_ict_rig(rigs, ict):
    rig = rigs["ict-face"]
    s = rig.summary()
    assert s["identity_sliders"] == 30 and s["expression_sliders"] == 7
    assert s["arkit_expressions"] == 7 and ("eyeBlink_L", "eyeBlink_R") in rig.spec.symmetric_pairs
    assert rig.uvs.min() >= 0 and rig.uvs.max() <= 1  # UDIM tiles packed into one layout
    np.testing.assert_allclose(rig.landmarks(), ict.landmarks(ict.mean_shape), atol=1e-6)


def test_cross_topology_correspondences(ict, starter_model, rigs, cache):
    reports = {}
    for model, rig in ((ict, rigs["starter"]), (starter_model, rigs["ict-face"]),
                       (ict, rigs["ict-face"])):
        corr = load_or_build_correspondence(model, rig, cache_dir=cache)
        rep = corr.report()
        reports[f"{model.name} -> {rig.name}"] = rep
        print(f"correspondence {model.name} -> {rig.name}: residual mean "
              f"{rep['residual_mean_mm']:.2f} mm, p95 {rep['residual_p95_mm']:.2f} mm over "
              f"{rep['face_vertices']} face vertices (landmarks after similarity "
              f"{rep['landmark_error_mm']:.2f} mm, built in {rep['build_seconds']:.1f} s)")
    same = reports["ict-facekit -> ict-face"]
    assert same["residual_mean_mm"] < 1e-3 and same["landmark_error_mm"] < 1e-3
    for key in ("ict-facekit -> starter", "facecraft-starter -> ict-face"):
        assert reports[key]["residual_mean_mm"] < 3.0, reports[key]
        assert reports[key]["residual_p95_mm"] < 8.0, reports[key]


def test_photo_reconstruction_onto_both_rigs(fitters, reconstruction, ict, tmp_path):
    assert reconstruction["rms_px"] < 15.0  # the landmark fit itself
    face = reconstruction["vertices"]
    written = []
    for name, fitter in fitters.items():
        fit = fitter.fit(face)
        rep = fit.report()
        print(f"ICT photo reconstruction -> {name} rig: residual mean "
              f"{rep['residual_mean_mm']:.2f} mm, p95 {rep['residual_p95_mm']:.2f} mm "
              f"({rep['sliders']} sliders)")
        assert rep["residual_mean_mm"] < 5.0 and rep["residual_p95_mm"] < 12.0
        for s in fitter.rig.identity_sliders:
            assert s.min <= fit.values[s.name] <= s.max
        c = np.zeros(ict.num_expression)
        names = list(ict.expression_names)
        c[names.index("jawOpen")], c[names.index("eyeBlink_L")] = 0.4, 0.7
        expr = fitter.expressions(c)
        assert expr.method == "names" and expr.weights["jawOpen"] == pytest.approx(0.4)
        assert expr.weights["eyeBlink_L"] == pytest.approx(0.7)
        tex = fitter.transfer_texture(vertex_colors=reconstruction["colors"],
                                      settings=BakeSettings(size=256, dilate=4))
        assert tex.mean() > 20  # the photo's colours arrived
        mats = estimate_materials(ict, reconstruction["colors"], vertices=face,
                                  visibility=reconstruction["visible"])
        out = write_rig_outputs(tmp_path / name, fitter.rig, fit, expressions=expr,
                                texture=tex, materials=mats, stem="image_0010",
                                target_normals=False)
        written.append(out.glb)
    # the ICT rig holds 30 of the 40 modes the face used: only those 10 are missing
    ict_fit = fitters["ict-face"].fit(face)
    assert ict_fit.residual_mean_mm < 1.5
    reports = validate_glbs(written, tmp_path)
    for rep in reports:
        assert rep["numErrors"] == 0, rep["messages"]


def test_random_ict_faces_and_least_squares_expressions(fitters, ict, starter_model):
    rng = np.random.default_rng(0)
    face = ict.shape(identity=np.clip(rng.normal(size=ict.num_identity), -2.5, 2.5))
    for name, fitter in fitters.items():
        rep = fitter.fit(face).report()
        print(f"random ICT face (100 modes) -> {name} rig: residual mean "
              f"{rep['residual_mean_mm']:.2f} mm, p95 {rep['residual_p95_mm']:.2f} mm")
        assert rep["residual_mean_mm"] < 5.0
    # no shared names -> least squares: an ICT jawOpen seen through the starter rig's shapes
    c = np.zeros(ict.num_expression)
    c[list(ict.expression_names).index("jawOpen")] = 0.5
    lsq = fitters["starter"].expressions(c, method="least_squares")
    print(f"ICT jawOpen 0.5 -> starter by least squares: jawOpen "
          f"{lsq.weights['jawOpen']:.2f}, residual {lsq.residual_mean_mm:.2f} mm")
    assert lsq.weights["jawOpen"] > 0.2 and lsq.residual_mean_mm < 3.0


def test_materials_from_the_photo_agree_with_the_texture(reconstruction, ict):
    from_photo = estimate_materials_from_photo(reconstruction["photo"],
                                               reconstruction["landmarks"])
    from_tex = estimate_materials(ict, reconstruction["colors"],
                                  vertices=reconstruction["vertices"],
                                  visibility=reconstruction["visible"])
    print("materials (photo):", {k: v for k, v in from_photo.to_json().items()
                                 if k.endswith(("hex", "type", "category", "density"))})
    assert abs(from_photo.skin_ita_deg - from_tex.skin_ita_deg) < 15
    assert from_photo.iris_category in ("brown", "dark_brown")  # her eyes are brown
    assert abs(from_photo.iris_lightness - from_tex.iris_lightness) < 10
    assert from_photo.eyebrow_density > 0.2
