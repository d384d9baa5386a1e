"""The importer registry: kinds, option checking and conversion, lazy loading."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import scipy.io

import facecraft.sdk.models.importers as importers
from facecraft.sdk.errors import ModelFormatError
from facecraft.sdk.models.importers import IMPORTERS, import_model, list_importers


def test_kinds():
    assert list_importers() == ["bfm-front", "bfm2009", "bfm2017", "flame", "ict-facekit",
                                "surrey"]
    for kind, info in IMPORTERS.items():
        assert ":" in info.target and info.description and info.licence, kind
        if kind != "ict-facekit":
            assert {"max_identity", "max_expression", "max_albedo"} <= set(info.options)
    assert IMPORTERS["ict-facekit"].target == ".ict:import_ict_facekit"
    assert IMPORTERS["ict-facekit"].options == {"face_only": "bool", "progress": "bool"}
    assert all("progress" in info.options for info in IMPORTERS.values())  # the CLI passes it


def test_unknown_kind_lists_the_known_ones(tmp_path):
    with pytest.raises(ModelFormatError) as e:
        import_model("basel", tmp_path)
    for kind in list_importers():
        assert kind in str(e.value)


def test_unknown_option(tmp_path):
    with pytest.raises(ModelFormatError, match=r"flame importer has no option\(s\) \['colour'\]"
                                               r".*albedo, landmarks, max_albedo"):
        import_model("flame", tmp_path / "x.pkl", colour="y")


def test_bad_option_values(tmp_path):
    with pytest.raises(ModelFormatError, match="max_identity='lots'.*whole number"):
        import_model("bfm2009", tmp_path / "x.mat", max_identity="lots")
    with pytest.raises(ModelFormatError, match="face_only='maybe'.*true or false"):
        import_model("ict-facekit", tmp_path, face_only="maybe")


def test_string_options_are_converted(helpers, tmp_path):
    verts, tris = helpers.face_grid()
    v = len(verts)
    mapping = dict(enumerate(map(int, helpers.nearest_vertices(verts, helpers.ibug_layout()))))
    helpers.write_mapping(tmp_path / "map.txt", mapping)
    scipy.io.savemat(tmp_path / "front.mat", {
        "meanshape": (verts.reshape(1, -1) / 100).astype(np.float32),
        "idBase": np.ones((3 * v, 3), np.float32) * 1e-3,
        "exBase": np.ones((3 * v, 2)) * 1e-3,
        "meantex": np.full((1, 3 * v), 128.0, np.float32),
        "texBase": np.ones((3 * v, 2), np.float32),
        "tri": (tris + 1).astype(np.float64),
    })
    m = import_model("bfm-front", str(tmp_path / "front.mat"), landmarks=str(tmp_path / "map.txt"),
                     max_identity="1", max_expression="0", units="dm")
    assert (m.num_identity, m.num_expression, m.num_albedo) == (1, 0, 2)
    assert m.provenance["files"]["landmarks"]["name"] == "map.txt"


def test_missing_file_through_registry(tmp_path):
    with pytest.raises(ModelFormatError, match="does not exist"):
        import_model("surrey", tmp_path / "sfm_shape_1.bin")


def test_ict_is_registered_lazily(tmp_path):
    """ict.py is written separately: the registry must work with or without it."""
    if importlib.util.find_spec("facecraft.sdk.models.importers.ict") is None:
        with pytest.raises(ModelFormatError, match="not available"):
            import_model("ict-facekit", tmp_path)
    else:
        assert callable(IMPORTERS["ict-facekit"].load())


def test_lazy_reexports():
    assert importers.import_surrey.__module__ == "facecraft.sdk.models.importers.surrey"
    assert importers.import_flame.__name__ == "import_flame"
    with pytest.raises(AttributeError):
        importers.import_nothing  # noqa: B018
