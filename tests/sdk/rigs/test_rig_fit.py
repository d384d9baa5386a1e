"""Fitting the starter rig: geometry helpers, the cached correspondence, the slider round trip
(mean error under 2% of each slider's range), expressions, texture transfer, material
parameters, and the output GLB checked by the Khronos validator (and Blender where present)."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest

from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.models.default_model import load_default_model
from facecraft.sdk.models.surface import closest_on_triangles
from facecraft.sdk.render.texture import BakeSettings, bake_texture
from facecraft.sdk.rigs.correspondence import (
    CorrespondenceSettings,
    closest_points_on_mesh,
    load_or_build_correspondence,
    similarity_3d,
)
from facecraft.sdk.rigs.fit import RigFitSettings, RigFitter
from facecraft.sdk.rigs.gltf import read_glb, write_glb
from facecraft.sdk.rigs.materials import (
    MaterialSettings,
    estimate_materials,
    estimate_materials_from_photo,
    srgb_to_lab,
)
from facecraft.sdk.rigs.output import sliders_json, write_rig_outputs
from facecraft.sdk.rigs.preview import render_rig, render_side_by_side
from facecraft.sdk.rigs.rig import starter_rig

from ...conftest import uv_sphere
from .._rig_fixtures import blender_import, validate_glbs


@pytest.fixture(scope="module")
def model():
    return load_default_model()


@pytest.fixture(scope="module")
def rig(model):
    return starter_rig(model=model)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("corr-cache")


@pytest.fixture(scope="module")
def fitter(model, rig, cache):
    return RigFitter(model, rig, cache_dir=cache)


def _random_values(rig, rng):
    lo = np.array([s.min for s in rig.identity_sliders])
    hi = np.array([s.max for s in rig.identity_sliders])
    return rng.uniform(lo, hi), hi - lo


# --------------------------------------------------------------------------- geometry
def test_closest_points_match_brute_force():
    verts, tris = uv_sphere(rows=10, cols=14)
    rng = np.random.default_rng(1)
    verts = verts * rng.uniform(0.8, 1.2, (len(verts), 1)).astype(np.float32)
    pts = rng.normal(0, 0.08, (300, 3))
    tri, bary, dist = closest_points_on_mesh(pts, verts, tris, candidates=16)
    c = verts[tris].astype(np.float64)  # brute force: every triangle for every point
    b_all = closest_on_triangles(pts[:, None], c[None, :, 0], c[None, :, 1], c[None, :, 2])
    d_all = np.linalg.norm(np.einsum("nfk,fkd->nfd", b_all, c) - pts[:, None], axis=-1)
    np.testing.assert_allclose(dist, d_all.min(1), atol=1e-9)
    np.testing.assert_allclose(np.einsum("nk,nkd->nd", bary, c[tri]) - pts,
                               0, atol=dist.max() + 1e-9)
    assert (bary >= -1e-9).all() and np.allclose(bary.sum(1), 1)


def test_similarity_recovers_a_transform():
    rng = np.random.default_rng(2)
    src = rng.normal(size=(50, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    dst = 1.3 * src @ q.T + [0.1, -0.2, 0.3]
    s, r, t = similarity_3d(src, dst)
    assert s == pytest.approx(1.3) and np.allclose(r, q) and np.allclose(t, [0.1, -0.2, 0.3])
    s, _, _ = similarity_3d(src, dst, scale=False)
    assert s == 1.0


# --------------------------------------------------------------------------- correspondence
def test_identity_correspondence_is_exact_and_cached(model, rig, fitter, cache):
    corr = fitter.correspondence
    rep = corr.report()
    assert rep["residual_mean_mm"] < 1e-3 and rep["landmark_error_mm"] < 1e-3
    assert corr.scale == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(corr.apply(model.mean_shape), rig.vertices, atol=1e-6)
    assert corr.face.sum() == len(rig.spec.regions["face"])
    again = load_or_build_correspondence(model, rig, cache_dir=cache)
    assert again.from_cache and again.key == corr.key
    np.testing.assert_array_equal(again.bary, corr.bary)
    files = list((cache / "rig-correspondence").glob("*.npz"))
    assert len(files) == 1 and corr.key in files[0].name
    other = load_or_build_correspondence(model, rig, CorrespondenceSettings(icp_iterations=0),
                                         cache_dir=cache)
    assert not other.from_cache and other.key != corr.key  # settings are part of the key


# --------------------------------------------------------------------------- sliders
def test_slider_round_trip_under_2_percent(model, rig, fitter):
    rng = np.random.default_rng(0)
    errors = []
    for _ in range(4):
        x, span = _random_values(rig, rng)
        fit = fitter.fit(model.shape(identity=x))
        est = np.array([fit.values[s.name] for s in rig.identity_sliders])
        for s in rig.identity_sliders:
            assert s.min <= fit.values[s.name] <= s.max
        errors.append(np.abs(est - x) / span)
        assert fit.residual_mean_mm < 0.05
    err = np.concatenate(errors)
    print(f"starter round trip: mean |error| {100 * err.mean():.3f}% of range, "
          f"max {100 * err.max():.2f}%")
    assert err.mean() < 0.02


def test_round_trip_survives_a_small_head_pose(model, rig, fitter):
    rng = np.random.default_rng(3)
    x, span = _random_values(rig, rng)
    a = np.radians(4.0)
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    face = model.shape(identity=x) @ rot.T + [0.002, -0.003, 0.001]
    fit = fitter.fit(face)
    est = np.array([fit.values[s.name] for s in rig.identity_sliders])
    assert (np.abs(est - x) / span).mean() < 0.02
    assert fit.residual_mean_mm < 0.2


def test_out_of_range_faces_clip_and_symmetric_pairs_tie(model, rig, fitter, cache):
    x = np.zeros(31)
    x[rig.identity_sliders.index(rig.slider("nose_width"))] = 6.0  # beyond the +3 sd range
    fit = fitter.fit(model.shape(identity=x))
    assert fit.values["nose_width"] == pytest.approx(3.0)
    spec = dataclasses.replace(rig.spec, symmetric_pairs=(("eye_size", "eye_spacing"),))
    tied_rig = dataclasses.replace(rig, spec=spec)
    tied = RigFitter(model, tied_rig, correspondence=fitter.correspondence,
                     settings=RigFitSettings(symmetric=True))
    x[:] = 0
    x[rig.identity_sliders.index(rig.slider("eye_size"))] = 1.0
    out = tied.fit(model.shape(identity=x)).values
    assert out["eye_size"] == pytest.approx(out["eye_spacing"])
    with pytest.raises(InvalidInputError, match="face vertices"):
        fitter.fit(np.zeros((10, 3)))
    with pytest.raises(InvalidInputError, match="built for another model or rig"):
        RigFitter(model.replace(mean_shape=model.mean_shape * 1.01), rig,
                  correspondence=fitter.correspondence)
    with pytest.raises(InvalidInputError, match="RigFitSettings.align"):
        RigFitSettings(align="affine")


# --------------------------------------------------------------------------- expressions
def test_expressions_by_name_and_by_least_squares(model, fitter):
    c = np.zeros(model.num_expression)
    names = list(model.expression_names)
    for n, v in (("eyeBlink_L", 0.8), ("jawOpen", 0.3), ("mouthSmile_R", 0.6)):
        c[names.index(n)] = v
    by_name = fitter.expressions(c)
    assert by_name.method == "names" and len(by_name.matched) == 53
    assert by_name.weights["jawOpen"] == pytest.approx(0.3)
    assert by_name.weights["mouthSmile_L"] == 0.0
    lsq = fitter.expressions(c, method="least_squares")
    assert lsq.method == "least_squares" and lsq.residual_mean_mm < 0.05
    for n, v in (("eyeBlink_L", 0.8), ("jawOpen", 0.3), ("mouthSmile_R", 0.6)):
        assert lsq.weights[n] == pytest.approx(v, abs=0.03)
    assert all(0.0 <= w <= 1.0 for w in lsq.weights.values())
    verts = model.shape(expression=c)
    from_verts = fitter.expressions(expression_vertices=verts,
                                    neutral_vertices=model.mean_shape)
    assert from_verts.method == "least_squares"
    assert from_verts.weights["jawOpen"] == pytest.approx(0.3, abs=0.03)


# --------------------------------------------------------------------------- texture
def test_texture_transfer_vertex_colours_and_uv_texture(model, rig, fitter):
    settings = BakeSettings(size=256, dilate=4)
    colors = np.clip(model.albedo_mean, 0, 1)
    direct = bake_texture(model, colors, settings).image.numpy()
    ref = np.round(direct * 255).astype(np.int16)
    via_rig = fitter.transfer_texture(vertex_colors=colors, settings=settings)
    assert via_rig.shape == (256, 256, 3) and via_rig.dtype == np.uint8
    # same UV layout (the starter rig is the starter): the same texture
    assert np.abs(via_rig.astype(np.int16) - ref).mean() < 1.0
    tex = np.round(bake_texture(model, colors, BakeSettings(size=512)).image.numpy() * 255
                   ).astype(np.uint8)
    resampled = fitter.transfer_texture(texture=tex, settings=settings)
    covered = bake_texture(model, colors, BakeSettings(size=256, dilate=0)).mask.numpy()
    assert np.abs(resampled.astype(np.int16) - ref)[covered].mean() < 4.0
    assert (resampled[~covered] > 0).any()  # the gutter is dilated
    with pytest.raises(InvalidInputError, match="vertex_colors or texture"):
        fitter.transfer_texture()


# --------------------------------------------------------------------------- materials
def test_materials_from_the_starter_texture(model):
    p = estimate_materials(model, model.albedo_mean,
                           settings=MaterialSettings(encoding="linear"))
    assert p.source == "texture" and 1 <= p.skin_type <= 6
    skin, lip, brow, iris = (srgb_to_lab(np.array(x)) for x in (p.skin_srgb, p.lip_srgb,
                                                                  p.eyebrow_srgb, p.iris_srgb))
    assert lip[1] > skin[1] + 5  # lips redder than skin
    assert brow[0] < skin[0] - 5 and iris[0] < skin[0] - 20  # brows and iris darker
    assert p.skin_hex.startswith("#") and len(p.skin_hex) == 7
    doc = p.to_json()
    assert doc["format"] == "facecraft.materials" and json.dumps(doc)
    darker = estimate_materials(
        model, np.clip(model.albedo(np.eye(9)[0] * 2.5), 0, 1),  # +skin_tone: darker
        settings=MaterialSettings(encoding="linear"))
    assert darker.skin_ita_deg < p.skin_ita_deg and darker.skin_type > p.skin_type


def _painted_face(size=400):
    """A synthetic photo painted inside the landmark regions, and its landmarks."""
    from facecraft.sdk.models.default_model import load_default_model

    m = load_default_model()
    lm3 = m.landmarks(m.mean_shape)
    lm = np.stack([size / 2 + lm3[:, 0] * 1800, size / 2 - lm3[:, 1] * 1800], 1)
    img = np.zeros((size, size, 3), np.uint8)
    img[:] = (205, 160, 135)  # skin
    poly = lambda ids: np.round(lm[list(ids)]).astype(np.int32)  # noqa: E731
    cv2.fillPoly(img, [poly(range(48, 60))], (170, 70, 80))
    cv2.fillPoly(img, [poly(range(60, 68))], (40, 20, 20))
    for ids in (range(17, 22), range(22, 27)):
        cv2.polylines(img, [poly(ids) + [0, 3]], False, (60, 40, 25), thickness=7)
    for ids in (range(36, 42), range(42, 48)):
        cv2.fillPoly(img, [poly(ids)], (235, 235, 230))
        c = lm[list(ids)].mean(0)
        cv2.circle(img, tuple(int(v) for v in c), 5, (60, 110, 190), -1)
        cv2.circle(img, tuple(int(v) for v in c), 2, (5, 5, 5), -1)
    return img, lm


def test_materials_from_a_painted_photo():
    img, lm = _painted_face()
    p = estimate_materials_from_photo(img, lm)
    assert p.source == "photo"
    assert p.skin_hex == "#cda087"
    assert np.allclose(np.array(p.lip_srgb) * 255, (170, 70, 80), atol=2)
    assert p.iris_category == "blue" and np.allclose(np.array(p.iris_srgb) * 255,
                                                     (60, 110, 190), atol=20)
    assert np.allclose(np.array(p.eyebrow_srgb) * 255, (60, 40, 25), atol=3)
    assert 0.3 < p.eyebrow_density <= 1.0
    with pytest.raises(InvalidInputError, match="landmarks"):
        estimate_materials_from_photo(img, lm[:5])


# --------------------------------------------------------------------------- outputs
def test_write_rig_outputs_and_external_checkers(model, rig, fitter, tmp_path):
    rng = np.random.default_rng(5)
    x, _ = _random_values(rig, rng)
    fit = fitter.fit(model.shape(identity=x))
    c = np.zeros(model.num_expression)
    c[list(model.expression_names).index("jawOpen")] = 0.4
    expr = fitter.expressions(c)
    tex = fitter.transfer_texture(vertex_colors=np.clip(model.albedo_mean, 0, 1),
                                  settings=BakeSettings(size=256, dilate=4))
    mats = estimate_materials(model, model.albedo_mean,
                              settings=MaterialSettings(encoding="linear"))
    out = write_rig_outputs(tmp_path / "out", rig, fit, expressions=expr, texture=tex,
                            materials=mats, stem="player")
    assert out.glb.name == "player_rig.glb" and out.texture.is_file()
    glb = read_glb(out.glb)
    assert glb.target_names == rig.target_names and glb.texture_png is not None
    # identity baked into the base mesh (the default): its weights are 0, the baked values
    # are in the extras, so an engine applying the weights does not apply identity twice
    baked = glb.extras["facecraft"]["baked_identity"]
    for s in rig.identity_sliders:
        assert glb.weights[rig.target_index(s.target)] == 0.0
        assert baked[s.target] == pytest.approx(fit.values[s.name], abs=1e-6)
    np.testing.assert_allclose(glb.positions, rig.shape(fit.values), atol=1e-6)
    assert glb.weights[rig.target_index("jawOpen")] == pytest.approx(0.4)
    doc = json.loads(out.sliders.read_text())
    assert doc == json.loads(json.dumps(sliders_json(rig, fit, expr)))
    assert doc["baked_identity"] is True
    assert doc["expression_method"] == "names" and doc["fit"]["residual_mean_mm"] < 0.05
    assert all(0 <= v <= 1 for v in doc["identity_normalized"].values())
    assert json.loads(out.materials.read_text())["skin_type"] == mats.skin_type
    # an engine applying the weights gets the fitted head
    posed = glb.positions + np.tensordot(glb.weights, glb.targets, axes=(0, 0))
    np.testing.assert_allclose(posed, rig.shape({**fit.values, **expr.weights}), atol=1e-6)

    # the old layout: the neutral head as the base, every fitted value a weight
    plain = write_rig_outputs(tmp_path / "plain", rig, fit, expressions=expr,
                              bake_identity=False)
    unbaked = read_glb(plain.glb)
    np.testing.assert_array_equal(unbaked.positions, rig.vertices)
    for s in rig.identity_sliders:
        assert unbaked.weights[rig.target_index(s.target)] == pytest.approx(
            fit.values[s.name], abs=1e-6)
    assert json.loads(plain.sliders.read_text())["baked_identity"] is False
    np.testing.assert_allclose(
        unbaked.positions + np.tensordot(unbaked.weights, unbaked.targets, axes=(0, 0)),
        posed, atol=1e-6)

    reports = validate_glbs([out.glb, plain.glb], tmp_path)
    assert reports[0]["numErrors"] == 0, reports[0]["messages"]
    assert reports[1]["numErrors"] == 0, reports[1]["messages"]
    assert reports[0]["info"]["hasMorphTargets"] and reports[0]["info"]["hasTextures"]
    print("glTF Validator:", {k: reports[0][k] for k in ("numErrors", "numWarnings")})


def test_readers_that_ignore_weights_see_the_fitted_face(model, rig, fitter, tmp_path):
    trimesh = pytest.importorskip("trimesh")
    x, _ = _random_values(rig, np.random.default_rng(11))
    fit = fitter.fit(model.shape(identity=x))
    out = write_rig_outputs(tmp_path, rig, fit, expressions={"jawOpen": 0.3})
    face = rig.shape(fit.values)  # identity only: expressions stay morph weights
    assert np.abs(face - rig.vertices).max() > 2e-3  # not the mean head
    loaded = trimesh.load(out.glb, process=False, force="mesh")
    assert len(loaded.vertices) == rig.num_vertices
    np.testing.assert_allclose(np.asarray(loaded.vertices), face, atol=1e-6)

    # UV-seam copies of a vertex: same position and the same (averaged) normal, in the base
    # and in every morph target, so no shading line where the UV islands meet
    glb = read_glb(out.glb)
    _, group, count = np.unique(rig.vertices, axis=0, return_inverse=True,
                                return_counts=True)
    group = group.reshape(-1)
    split = count[group] > 1
    assert split.sum() > 100  # the starter head has a seam at the back
    for arr in (glb.positions, glb.normals, *glb.target_normals[::10]):
        ref = np.zeros((len(count), 3), arr.dtype)
        ref[group] = arr
        np.testing.assert_array_equal(arr[split], ref[group][split])

    # sparse morph targets: a fraction of the dense file, read back exactly
    dense = tmp_path / "dense.glb"
    weights = rig.weights({**fit.values, "jawOpen": 0.3}, clip=True)
    write_glb(dense, rig.to_gltf(weights, bake_identity=True), sparse=False)
    assert out.glb.stat().st_size < 0.5 * dense.stat().st_size
    back = read_glb(dense)
    np.testing.assert_array_equal(glb.targets, back.targets)
    np.testing.assert_array_equal(glb.target_normals, back.target_normals)


def test_blender_imports_the_rig(model, rig, fitter, tmp_path):
    """Blender 3.4 with the documented import settings (BLENDER_IMPORT_SETTINGS: shading
    Smooth, Merge Vertices on): the fitted face as the basis, every slider a shape key
    (identity 0: baked; expressions at their weights), the texture, and no shading line at
    the UV seam."""
    x, _ = _random_values(rig, np.random.default_rng(7))
    fit = fitter.fit(model.shape(identity=x))
    tex = fitter.transfer_texture(vertex_colors=np.clip(model.albedo_mean, 0, 1),
                                  settings=BakeSettings(size=256, dilate=4))
    out = write_rig_outputs(tmp_path, rig, fit, expressions={"jawOpen": 0.5}, texture=tex,
                            target_normals=False)
    meshes = blender_import(out.glb, tmp_path)
    keys = dict(meshes[0]["shape_keys"])
    print("blender:", meshes[0]["name"], len(keys) - 1, "shape keys,", meshes[0]["images"],
          "corner normal spread", meshes[0]["corner_normal_spread"])
    assert set(rig.target_names) <= set(keys)
    assert keys["jawOpen"] == pytest.approx(0.5, abs=1e-4)
    baked = read_glb(out.glb).extras["facecraft"]["baked_identity"]
    for s in rig.identity_sliders:
        assert keys[s.target] == 0.0 and baked[s.target] == pytest.approx(fit.values[s.name])
    assert meshes[0]["images"]
    reach = meshes[0]["shape_key_reach"]  # the sparse morph targets, as Blender decoded them
    for k, name in enumerate(rig.target_names):
        assert reach[name] == pytest.approx(float(np.abs(rig.targets[k]).max()), abs=1e-6)
    face = rig.shape(fit.values)  # glTF (x, y, z) is Blender's (x, -z, y)
    blender_face = np.stack([face[:, 0], -face[:, 2], face[:, 1]], 1)
    np.testing.assert_allclose(meshes[0]["min"], blender_face.min(0), atol=1e-5)
    np.testing.assert_allclose(meshes[0]["max"], blender_face.max(0), atol=1e-5)
    # the UV seam's split copies are welded back: one vertex per position, smooth shading
    assert meshes[0]["vertices"] == len(np.unique(rig.vertices, axis=0))
    assert meshes[0]["corner_normal_spread"] < 1e-4


def test_previews(rig, fitter, model):
    tex = fitter.transfer_texture(vertex_colors=np.clip(model.albedo_mean, 0, 1),
                                  settings=BakeSettings(size=256, dilate=4))
    img = render_rig(rig, {"jaw_width": 2.0, "jawOpen": 0.5}, tex, size=128, yaw_deg=20)
    plain = render_rig(rig, size=128)
    assert img.shape == plain.shape == (128, 128, 3) and img.dtype == np.uint8
    drawn = (img != 255).any(-1)
    assert 0.2 < drawn.mean() < 0.95 and (img[drawn] != plain[drawn]).any()
    row = render_side_by_side([img, plain[:, :64]], height=100, labels=["a", "b"], gap=4)
    assert row.shape == (100, 100 + 4 + 50, 3)
    # the whole head (face_only=False) with a margin: nothing cut at the panel's edges
    whole = render_rig(rig, {"jawOpen": 0.5}, tex, size=128, face_only=False, fill=0.8)
    edge = np.r_[0:8, -8:0]
    assert (whole[edge] == 255).all() and (whole[:, edge] == 255).all()
    assert ((whole != 255).any(-1)).mean() > 0.2
    with pytest.raises(InvalidInputError, match="fill"):
        render_rig(rig, size=128, fill=0.0)


def test_panel_labels_are_drawn_once_with_an_outline():
    """Each label: white glyphs inside a black outline. (Drawing the string twice, thick black
    then thin white, put the white glyphs beside the black ones: OpenCV advances each glyph by
    its stroke thickness, so the copies drift apart along the line.)"""
    grey = np.full((120, 400, 3), 128, np.uint8)
    row = render_side_by_side([grey], height=120, labels=["rig starter (0.000 mm) wwwwmmmm"])
    g = row[..., 0].astype(int)
    white = g > 200
    bare = cv2.dilate((g == 128).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert white.sum() > 100 and (g < 30).sum() > white.sum()
    assert not (white & bare).any()  # every white glyph pixel sits in its outline
    narrow = render_side_by_side([grey[:, :60]], height=120, labels=["a long label " * 3])
    assert narrow.shape == (120, 60, 3)  # shrinks to fit, no error
