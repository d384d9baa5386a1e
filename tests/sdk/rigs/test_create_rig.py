"""``facecraft create --rig`` and :class:`FaceRigger` on a real photo, with the random-weights
package (its faces are meaningless; these tests check the wiring: the files, that the GLB's
weights are the sliders JSON's values, the texture and materials, the registry and errors)."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest

from facecraft.sdk.cli import EXIT_ERROR, main
from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.pipeline.pipeline import FaceCraft, PipelineSettings
from facecraft.sdk.render.mesh_io import read_png
from facecraft.sdk.rigs.create import FaceRigger, RigCreateSettings
from facecraft.sdk.rigs.gltf import read_glb
from facecraft.sdk.rigs.rig import rig_from_model, save_rig, starter_rig

from ...conftest import assets_or_skip
from .._grpc_fixtures import random_package_path
from .._rig_fixtures import validate_glbs

TEX = 256
RIG_FILES = ("_rig.glb", "_sliders.json", "_rig_texture.png", "_materials.json")


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    return random_package_path(tmp_path_factory)


@pytest.fixture(scope="module")
def photo():
    return assets_or_skip("photos", "celeba-5pt", "000002.jpg")


@pytest.fixture(scope="module")
def craft(package):
    return FaceCraft(package, threads=1, settings=PipelineSettings(texture_size=TEX))


@pytest.fixture(scope="module")
def result(craft, photo):
    return craft.reconstruct(photo)[0]


@pytest.fixture(scope="module")
def rig():
    return starter_rig()


@pytest.fixture(scope="module")
def rigger(craft, rig, tmp_path_factory):
    return FaceRigger(craft.face_model, rig, settings=RigCreateSettings(texture_size=TEX),
                      cache_dir=tmp_path_factory.mktemp("corr"))


@pytest.fixture(scope="module")
def created(package, photo, tmp_path_factory):
    """``facecraft create PHOTO --rig starter`` run once through the CLI's main()."""
    out = tmp_path_factory.mktemp("create-rig")
    code = main(["create", str(photo), "-o", str(out), "--package", str(package),
                 "--texture-size", str(TEX), "--threads", "1", "--rig", "starter",
                 "--no-overlay", "-q"])
    assert code == 0
    return out


def _check_glb_matches_sliders(glb_path, sliders_path, rig):
    glb = read_glb(glb_path)
    doc = json.loads(sliders_path.read_text())
    assert doc["format"] == "facecraft.rig_sliders" and doc["rig"] == rig.name
    assert doc["rig_sha256"] == rig.content_hash
    assert glb.target_names == rig.target_names
    assert set(doc["identity"]) == {s.name for s in rig.identity_sliders}
    assert set(doc["expression"]) == {s.name for s in rig.expression_sliders}
    # create bakes the identity into the base mesh: its weights are 0, its values in the
    # GLB's extras (rig value = baked + weight), the base positions are the fitted face
    assert doc["baked_identity"] is True
    baked = glb.extras["facecraft"]["baked_identity"]
    np.testing.assert_allclose(glb.positions, rig.shape(doc["identity"]), atol=2e-6)
    for kind in ("identity", "expression"):
        for name, value in doc[kind].items():
            sl = rig.slider(name)
            w = float(glb.weights[rig.target_index(sl.target)])
            if kind == "identity":
                assert w == 0.0, name
                w = baked[sl.target]
            assert w == pytest.approx(value, abs=1e-5), name
            assert sl.min - 1e-6 <= w <= sl.max + 1e-6, name
            assert doc[f"{kind}_normalized"][name] == pytest.approx(
                (value - sl.min) / sl.range, abs=1e-5)
    assert np.isfinite(doc["fit"]["residual_mean_mm"])
    return glb, doc


def test_create_with_the_starter_rig_writes_the_rig_files(created, photo, rig):
    stem = photo.stem
    names = sorted(p.name for p in created.iterdir())
    assert names == sorted([f"{stem}.obj", f"{stem}.mtl", f"{stem}_texture.png",
                            f"{stem}_neutral.obj", f"{stem}_coeffs.json",
                            *(stem + s for s in RIG_FILES)])
    glb, doc = _check_glb_matches_sliders(created / f"{stem}_rig.glb",
                                          created / f"{stem}_sliders.json", rig)
    # the starter model's own faces land on the starter rig almost exactly
    assert doc["fit"]["residual_mean_mm"] < 0.5
    assert doc["expression_method"] == "names"
    tex = read_png(created / f"{stem}_rig_texture.png")
    assert tex.shape == (TEX, TEX, 3) and tex.dtype == np.uint8 and tex.std() > 1
    embedded = cv2.imdecode(np.frombuffer(glb.texture_png, np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(embedded[..., ::-1], tex)
    mats = json.loads((created / f"{stem}_materials.json").read_text())
    assert mats["format"] == "facecraft.materials" and mats["source"] == "texture"
    assert mats["skin_hex"].startswith("#") and len(mats["skin_srgb"]) == 3
    assert mats["skin_type"] in range(1, 7)


def test_create_matches_the_library_calls(created, photo, result, rigger):
    rigged = rigger.fit_result(result)
    doc = json.loads((created / f"{photo.stem}_sliders.json").read_text())
    for name, value in rigged.values.items():
        kind = "identity" if name in rigged.fit.values else "expression"
        assert doc[kind][name] == pytest.approx(value, abs=1e-5), name
    glb = read_glb(rigged.glb_bytes(target_normals=False))  # FitRig's layout: all weights
    np.testing.assert_allclose(glb.weights, rigged.weights(), atol=1e-7)
    np.testing.assert_array_equal(glb.positions, rigged.rig.vertices)
    assert glb.target_normals is None and glb.texture_png == rigged.texture_png()
    mats = json.loads((created / f"{photo.stem}_materials.json").read_text())
    assert mats == json.loads(json.dumps(rigged.materials.to_json()))


def test_created_rig_glb_passes_the_gltf_validator(created, photo, tmp_path):
    reports = validate_glbs([created / f"{photo.stem}_rig.glb"], tmp_path)
    assert reports[0]["numErrors"] == 0, reports[0]["messages"]
    assert reports[0]["info"]["hasMorphTargets"] and reports[0]["info"]["hasTextures"]


def test_create_with_a_registered_rig_and_a_glb_path(package, photo, rig, tmp_path, capsys):
    (tmp_path / "src").mkdir()
    glb, _ = save_rig(dataclasses.replace(rig, name="studio"), tmp_path / "src" / "studio.glb",
                      target_normals=False)
    reg = tmp_path / "registry"
    assert main(["rigs", "import", str(glb), "--dir", str(reg)]) == 0
    for spec, out in (("studio", tmp_path / "by-name"), (str(glb), tmp_path / "by-path")):
        code = main(["create", str(photo), "-o", str(out), "--package", str(package),
                     "--texture-size", str(TEX), "--threads", "1", "--rig", spec,
                     "--rigs-dir", str(reg), "--no-overlay"])
        assert code == 0
        assert "with rig 'studio'" in capsys.readouterr().out
        for suffix in RIG_FILES:
            assert (out / f"{photo.stem}{suffix}").stat().st_size > 0
    a = json.loads((tmp_path / "by-name" / f"{photo.stem}_sliders.json").read_text())
    b = json.loads((tmp_path / "by-path" / f"{photo.stem}_sliders.json").read_text())
    assert a["identity"] == b["identity"] and a["rig"] == "studio"


def test_create_with_an_unknown_rig_fails_before_writing(package, photo, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["create", str(photo), "-o", str(out), "--package", str(package),
                 "--rig", "no-such-rig", "--rigs-dir", str(tmp_path / "empty")])
    err = capsys.readouterr().err
    assert code == EXIT_ERROR and "no rig 'no-such-rig'" in err and "Traceback" not in err
    assert not out.exists()


def test_rigger_options_and_input_checks(craft, result, rigger, tmp_path):
    fm = craft.face_model
    bare = rigger.fit(result.neutral_vertices)  # no colours: no texture, no materials
    assert bare.texture is None and bare.materials is None
    assert all(v == 0 for v in bare.expressions.weights.values())  # neutral expression
    assert bare.fit.values == rigger.fit_result(result).fit.values
    assert rigger.fit_result(result, texture_size=0).texture is None
    files = bare.write(tmp_path, "bare", target_normals=False)
    assert files.texture is None and files.materials is None and files.glb.is_file()
    with pytest.raises(InvalidInputError, match="neutral_vertices"):
        rigger.fit(result.neutral_vertices[:10])
    with pytest.raises(InvalidInputError, match="vertex_colors"):
        rigger.fit(result.neutral_vertices, vertex_colors=result.fine_albedo[:, :2])
    with pytest.raises(InvalidInputError):
        rigger.fit(result.neutral_vertices, vertex_colors=np.full((fm.num_vertices, 3), np.nan))
    with pytest.raises(InvalidInputError, match="texture_size"):
        rigger.fit(result.neutral_vertices, texture_size=100)
    for bad in ({"texture_size": 4096}, {"texture_size": 512, "texture_dilate": -1}):
        with pytest.raises(InvalidInputError, match="RigCreateSettings"):
            RigCreateSettings(**bad)
    # a rig without UVs still gets sliders and materials, but no texture
    no_uv = rig_from_model(fm.replace(uvs=np.zeros((0, 2), np.float32),
                                      uv_triangles=np.zeros((0, 3), np.int32)),
                           name="no-uv", identity=5, expressions=["jawOpen"])
    got = FaceRigger(fm, no_uv, use_cache=False).fit_result(result)
    assert got.texture is None and got.materials is not None and len(got.fit.values) == 5
