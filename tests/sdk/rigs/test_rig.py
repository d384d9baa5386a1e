"""Rigs: the sidecar's validation (errors name the field), GLB + sidecar files, the starter
rig, the registry and ``facecraft rigs``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facecraft.sdk.cli import EXIT_ERROR, main
from facecraft.sdk.errors import InvalidInputError, ModelFormatError
from facecraft.sdk.models.starter import EXPRESSION_NAMES, IDENTITY_SLIDERS
from facecraft.sdk.rigs.registry import import_rig, list_rigs, resolve_rig
from facecraft.sdk.rigs.rig import (
    ARKIT_52,
    Rig,
    RigSpec,
    SliderSpec,
    arkit_name,
    load_rig,
    rig_from_model,
    save_rig,
    sidecar_path,
    starter_rig,
)

from ...conftest import make_tiny_model
from .._rig_fixtures import validate_glbs


@pytest.fixture(scope="module")
def tiny_rig() -> Rig:
    return rig_from_model(make_tiny_model(), name="tiny")


@pytest.fixture(scope="module")
def starter() -> Rig:
    return starter_rig()


def _sidecar(rig: Rig) -> dict:
    return rig.spec.to_json()


def _write(tmp_path, rig: Rig, sidecar: dict | None = None):
    glb, side = save_rig(rig, tmp_path / f"{rig.name}.glb", target_normals=False)
    if sidecar is not None:
        side.write_text(json.dumps(sidecar))
    return glb, side


def test_arkit_names():
    assert len(ARKIT_52) == 52 and len(set(ARKIT_52)) == 52
    assert arkit_name("eyeBlink_L") == "eyeBlinkLeft"
    assert arkit_name("EyeBlinkRight") == "eyeBlinkRight"
    assert arkit_name("mouthSmile.R") == "mouthSmileRight"
    assert arkit_name("browInnerUp_R") == "browInnerUp"  # unsided in ARKit
    assert arkit_name("jawOpen") == "jawOpen"
    assert arkit_name("nose_width") is None and arkit_name("PupilDilate_L") is None


def test_save_load_round_trip(tmp_path, tiny_rig):
    glb, side = _write(tmp_path, tiny_rig)
    assert side == sidecar_path(glb) and side.name == "tiny.rig.json"
    back = load_rig(glb)
    assert back.content_hash == tiny_rig.content_hash
    assert back.target_names == tiny_rig.target_names
    np.testing.assert_array_equal(back.landmark_faces, tiny_rig.landmark_faces)
    assert [s.to_json() for s in back.spec.sliders] == [s.to_json()
                                                         for s in tiny_rig.spec.sliders]
    values = {"id0": 1.5, "exp1": 0.25}
    np.testing.assert_allclose(back.shape(values), tiny_rig.shape(values), atol=1e-7)
    glb_n, _ = save_rig(tiny_rig, tmp_path / "with_normals.glb")  # NORMAL deltas too
    for rep in validate_glbs([glb, glb_n], tmp_path):
        assert rep["numErrors"] == 0, rep["messages"]


@pytest.mark.parametrize("edit, field", [
    (lambda d: d.pop("landmarks"), "landmarks is missing"),
    (lambda d: d.update(colour="red"), r"unknown field\(s\) \['colour'\]"),
    (lambda d: d["sliders"][1].pop("kind"), r"sliders\[1\]\.kind is missing"),
    (lambda d: d["sliders"][0].update(kind="shape"), r"sliders\[0\].*kind must be one of"),
    (lambda d: d["sliders"][0].update(min=4.0), r"sliders\[0\].*min \(4.0\) must be below"),
    (lambda d: d["sliders"][2].update(default=9), r"sliders\[2\].*default 9.0 is outside"),
    (lambda d: d["sliders"][0].update(target="nope"), r"sliders\[0\] \('id0'\) names morph "
                                                      "target 'nope'"),
    (lambda d: d["sliders"][3].update(name="id0"), r"sliders\[\]\.name repeats \['id0'\]"),
    (lambda d: d["sliders"][0].update(wat=1), r"sliders\[0\] has unknown field"),
    (lambda d: d.update(symmetric_pairs=[["id0", "ghost"]]),
     r"symmetric_pairs\[0\] names 'ghost'"),
    (lambda d: d.update(symmetric_pairs=[["id0", "exp0"]]), r"symmetric_pairs\[0\].*same kind"),
    (lambda d: d.update(landmarks={"vertices": [1, 2, 3]}), "68 vertex ids, got 3"),
    (lambda d: d.update(landmarks={"vertices": [10_000] * 68}),
     "landmarks.vertices index vertices outside"),
    (lambda d: d["landmarks"]["barycentrics"][5].__setitem__(0, 3.0),
     r"barycentrics\[5\].*sum to 1"),
    (lambda d: d.update(regions={"face": [0, 99999]}), "regions.face indexes vertices outside"),
    (lambda d: d.update(version=7), "version 7 is not supported"),
])
def test_sidecar_errors_name_the_field(tmp_path, tiny_rig, edit, field):
    data = _sidecar(tiny_rig)
    edit(data)
    glb, _ = _write(tmp_path, tiny_rig, data)
    with pytest.raises(ModelFormatError, match=field):
        load_rig(glb)


def test_landmarks_as_vertex_ids_and_missing_files(tmp_path, tiny_rig):
    data = _sidecar(tiny_rig)
    ids = tiny_rig.triangles[tiny_rig.landmark_faces, 0]
    data["landmarks"] = {"vertices": ids.tolist()}
    glb, _ = _write(tmp_path, tiny_rig, data)
    rig = load_rig(glb)
    np.testing.assert_allclose(rig.landmarks(), tiny_rig.vertices[ids], atol=1e-7)
    with pytest.raises(ModelFormatError, match="sidecar .*not found"):
        load_rig(glb, tmp_path / "other.rig.json")
    with pytest.raises(ModelFormatError, match="not readable JSON"):
        (tmp_path / "bad.json").write_text("{")
        load_rig(glb, tmp_path / "bad.json")


def test_weights_check_ranges(tiny_rig):
    w = tiny_rig.weights({"id1": -2.0})
    assert w[tiny_rig.target_index("id1")] == -2.0 and w.sum() == -2.0
    with pytest.raises(InvalidInputError, match=r"outside its range \[-3.0, 3.0\]"):
        tiny_rig.weights({"id1": 5.0})
    assert tiny_rig.weights({"id1": 5.0}, clip=True)[tiny_rig.target_index("id1")] == 3.0
    with pytest.raises(InvalidInputError, match="no slider 'nope'"):
        tiny_rig.weights({"nope": 1.0})


def test_starter_rig(starter):
    s = starter.summary()
    assert s["identity_sliders"] == len(IDENTITY_SLIDERS) == 31
    assert s["expression_sliders"] == len(EXPRESSION_NAMES) == 53
    assert s["arkit_expressions"] == 53 and s["unlisted_targets"] == 0
    sl = starter.slider("nose_width")
    assert (sl.min, sl.max, sl.default, sl.unit, sl.group, sl.label) == (
        -3.0, 3.0, 0.0, "sd", "nose", "Nose width")
    blink = starter.slider("eyeBlink_L")
    assert (blink.kind, blink.min, blink.max, blink.arkit) == ("expression", 0.0, 1.0,
                                                              "eyeBlinkLeft")
    assert ("eyeBlink_L", "eyeBlink_R") in starter.spec.symmetric_pairs
    assert {"face", "skin", "brows", "lips", "eye_left", "eye_right"} <= set(
        starter.spec.regions)
    # the rig is the starter model, split along UV seams: same shapes, same landmarks
    from facecraft.sdk.models.default_model import load_default_model

    model = load_default_model()
    np.testing.assert_allclose(starter.landmarks(), model.landmarks(model.mean_shape),
                               atol=1e-6)
    x = np.zeros(31)
    x[IDENTITY_SLIDERS.index("jaw_width")] = 2.0
    moved = starter.shape({"jaw_width": 2.0}) - starter.vertices
    assert np.abs(moved).max() == pytest.approx(
        np.abs(model.shape(identity=x) - model.mean_shape).max(), rel=1e-5)


def test_registry_and_cli(tmp_path, tiny_rig, capsys, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    glb, side = _write(src, tiny_rig)
    reg = tmp_path / "reg"
    rig = import_rig(glb, name="my_head", rigs_dir=reg)
    assert rig.name == "my_head" and (reg / "my_head.glb").is_file()
    assert json.loads((reg / "my_head.rig.json").read_text())["name"] == "my_head"
    with pytest.raises(InvalidInputError, match="already registered"):
        import_rig(glb, name="my_head", rigs_dir=reg)
    with pytest.raises(InvalidInputError, match="rig name"):
        import_rig(glb, name="../evil", rigs_dir=reg)
    assert [e.name for e in list_rigs(reg)] == ["starter", "my_head"]
    assert resolve_rig("my_head", reg).content_hash == tiny_rig.content_hash
    assert resolve_rig(glb).name == "tiny"
    with pytest.raises(ModelFormatError, match="registered: starter, my_head"):
        resolve_rig("ghost", reg)

    monkeypatch.setenv("FACECRAFT_RIGS", str(tmp_path / "env_reg"))
    assert main(["rigs", "import", str(glb), "--sidecar", str(side), "--name", "cli_head"]) == 0
    assert "registered rig 'cli_head'" in capsys.readouterr().out
    assert main(["rigs", "list"]) == 0
    out = capsys.readouterr().out
    assert "starter" in out and "cli_head" in out
    assert main(["rigs", "info", "cli_head", "--sliders"]) == 0
    out = capsys.readouterr().out
    assert "identity sliders:   5" in out and "id0" in out
    assert main(["rigs", "info", "cli_head", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["expression_sliders"] == 4 and len(info["sliders"]) == 9
    assert main(["rigs", "export", "cli_head", "-o", str(tmp_path / "out" / "x.glb")]) == 0
    assert load_rig(tmp_path / "out" / "x.glb").content_hash == tiny_rig.content_hash
    bad = tmp_path / "bad.rig.json"
    bad.write_text(json.dumps({**_sidecar(tiny_rig), "sliders": []}))
    assert main(["rigs", "import", str(glb), "--sidecar", str(bad)]) == EXIT_ERROR
    assert "sliders must be a non-empty list" in capsys.readouterr().err


def test_spec_needs_landmarks():
    with pytest.raises(InvalidInputError, match="either vertices or triangles"):
        RigSpec(name="x", sliders=(SliderSpec("a", "a", "identity", -1, 1),))


def test_content_hash_survives_a_glb_round_trip(tmp_path):
    """Sparse morph targets read their zero deltas back as +0.0; the hash ignores the sign of
    zero, so a saved and reloaded rig keeps its hash (registration, caches)."""
    import dataclasses

    from facecraft.sdk.rigs.rig import load_rig, save_rig, starter_rig

    rig = starter_rig()
    assert np.signbit(rig.targets[rig.targets == 0]).any()  # the case that matters
    glb, side = save_rig(dataclasses.replace(rig, name="copy"), tmp_path / "copy.glb",
                         target_normals=False)
    assert load_rig(glb, side).content_hash == rig.content_hash
