"""BFM importers on small synthetic files written in the published layouts.

The Basel Face Model is licensed by registration and not among the test assets, so each test
writes a small model (a face-like bowl of ~1,100 vertices) in the exact layout of the real file
(MATLAB v5 / v7.3 .mat, statismo .h5, Exp_Pca.bin) and checks that the importer gives back what
was written after the documented unit and scaling conversions.
"""

from __future__ import annotations

import json
import struct

import h5py
import numpy as np
import pytest
import scipy.io

from facecraft.sdk.errors import ModelFormatError
from facecraft.sdk.models.importers.bfm import import_bfm2009, import_bfm2017, import_bfm_front

RNG = np.random.default_rng(0)


def _full_mapping(helpers, verts, tmp_path, name="ibug_to_test.txt"):
    ids = helpers.nearest_vertices(verts, helpers.ibug_layout())
    mapping = {k: int(v) for k, v in enumerate(ids)}
    return helpers.write_mapping(tmp_path / name, mapping), ids


def _write_bfm2009(path, verts_mm, tris, k=5, kt=4, **override):
    v = len(verts_mm)
    pc = np.linalg.qr(RNG.normal(size=(3 * v, k)))[0].astype(np.float32)
    tpc = np.linalg.qr(RNG.normal(size=(3 * v, kt)))[0].astype(np.float32)
    data = {
        "shapeMU": (verts_mm.reshape(-1, 1) * 1000).astype(np.float32),  # micrometres
        "shapePC": pc,
        "shapeEV": np.linspace(9e4, 1e4, k).reshape(-1, 1).astype(np.float32),  # std devs
        "texMU": RNG.uniform(60, 200, (3 * v, 1)).astype(np.float32),
        "texPC": tpc,
        "texEV": np.linspace(800, 100, kt).reshape(-1, 1).astype(np.float32),
        "tl": (tris[:, [0, 2, 1]] + 1).astype(np.float64),  # 1-based, clockwise like the BFM
    }
    data.update(override)
    data = {key: val for key, val in data.items() if val is not None}
    scipy.io.savemat(path, data, format="5")
    return data


def test_bfm2009_round_trip(helpers, tmp_path):
    verts, tris = helpers.face_grid()
    src = _write_bfm2009(tmp_path / "01_MorphableModel.mat", verts, tris)
    lm_path, ids = _full_mapping(helpers, verts, tmp_path)
    m = import_bfm2009(tmp_path / "01_MorphableModel.mat", landmarks=lm_path)
    v = len(verts)

    np.testing.assert_allclose(m.mean_shape, src["shapeMU"].reshape(v, 3) * 1e-6, rtol=1e-6)
    want = (src["shapePC"] * src["shapeEV"].reshape(1, -1)).T.reshape(-1, v, 3) * 1e-6
    np.testing.assert_allclose(m.identity_basis, want, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(m.albedo_mean, src["texMU"].reshape(v, 3) / 255, rtol=1e-6)
    want_tex = (src["texPC"] * src["texEV"].reshape(1, -1)).T.reshape(-1, v, 3) / 255
    np.testing.assert_allclose(m.albedo_basis, want_tex, rtol=1e-5, atol=1e-9)
    # BFM 2009 winds clockwise; the importer re-winds to counter-clockwise.
    np.testing.assert_array_equal(m.triangles, tris)
    assert m.provenance["triangles_flipped"] is True
    assert m.num_expression == 0 and m.expression_kind == "pca"
    np.testing.assert_array_equal(m.landmark_vertices(), ids)
    # decode: zero coefficients give the mean; one unit adds one standard deviation
    np.testing.assert_allclose(m.shape(np.zeros(5)), m.mean_shape)
    c = np.array([0.0, 1.0, 0, 0, 0])
    np.testing.assert_allclose(m.shape(c), m.mean_shape + m.identity_basis[1], atol=1e-7)
    assert m.provenance["units"] == {"source": "um", "to_metres": 1e-6}
    assert "registration" in m.licence and "Basel" in m.licence
    assert m.regions["face"].size == v
    json.dumps(m.provenance)  # JSON-able, as the .fcm writer needs


def test_bfm2009_truncation_and_string_options(helpers, tmp_path):
    verts, tris = helpers.face_grid()
    _write_bfm2009(tmp_path / "m.mat", verts, tris)
    lm_path, _ = _full_mapping(helpers, verts, tmp_path)
    m = import_bfm2009(tmp_path / "m.mat", landmarks=lm_path, max_identity="2", max_albedo=1)
    assert (m.num_identity, m.num_albedo) == (2, 1)


def _write_guo(folder, v, k=3, drop=(0, 1, 2, 3, 4)):
    keep = np.setdiff1d(np.arange(v), drop)  # the expression model skips some BFM vertices
    n = len(keep)
    mu = RNG.normal(size=3 * n).astype(np.float32)
    pcs = np.linalg.qr(RNG.normal(size=(3 * n, k)))[0].T.astype(np.float32)  # (K, 3n)
    with open(folder / "Exp_Pca.bin", "wb") as f:
        f.write(struct.pack("<i", k))
        f.write(mu.tobytes())
        f.write(pcs.tobytes())
    std = np.linspace(5e4, 1e4, k)
    np.savetxt(folder / "std_exp.txt", std)
    scipy.io.savemat(folder / "BFM_exp_idx.mat", {"trimIndex": (keep + 1).reshape(-1, 1)
                                                  .astype(np.float64)})
    return keep, pcs, std


def test_bfm2009_with_guo_expressions(helpers, tmp_path):
    verts, tris = helpers.face_grid()
    _write_bfm2009(tmp_path / "01_MorphableModel.mat", verts, tris)
    keep, pcs, std = _write_guo(tmp_path, len(verts))
    lm_path, _ = _full_mapping(helpers, verts, tmp_path)
    m = import_bfm2009(tmp_path / "01_MorphableModel.mat", landmarks=lm_path,
                       expressions=tmp_path / "Exp_Pca.bin")
    assert m.num_expression == 3 and m.expression_kind == "pca"
    want = pcs.reshape(3, -1, 3) * std[:, None, None] * 1e-6
    np.testing.assert_allclose(m.expression_basis[:, keep], want, rtol=1e-5, atol=1e-12)
    assert not m.expression_basis[:, :5].any()  # vertices outside trimIndex do not move
    np.testing.assert_allclose(m.shape(expression=np.zeros(3)), m.mean_shape)
    assert "FaceWarehouse" in m.licence
    assert set(m.provenance["files"]) >= {"expression", "expression_std", "expression_index"}


def test_bfm2009_guo_mismatch(helpers, tmp_path):
    verts, tris = helpers.face_grid()
    _write_bfm2009(tmp_path / "m.mat", verts, tris)
    _write_guo(tmp_path, len(verts))
    scipy.io.savemat(tmp_path / "BFM_exp_idx.mat", {"trimIndex": np.arange(1, 11.0)})
    lm_path, _ = _full_mapping(helpers, verts, tmp_path)
    with pytest.raises(ModelFormatError, match="trimIndex.*mismatched"):
        import_bfm2009(tmp_path / "m.mat", landmarks=lm_path, expressions=tmp_path / "Exp_Pca.bin")
    (tmp_path / "Exp_Pca.bin").write_bytes(struct.pack("<i", 3) + b"\0" * 10)
    with pytest.raises(ModelFormatError, match="Exp_Pca.bin.*3 modes"):
        import_bfm2009(tmp_path / "m.mat", landmarks=lm_path, expressions=tmp_path / "Exp_Pca.bin")


def test_bfm2009_partial_eos_mapping_is_completed(helpers, tmp_path):
    """Like eos's ibug_to_bfm2009.txt: 18 points, the jaw from a contour file found by name."""
    verts, tris = helpers.face_grid()
    _write_bfm2009(tmp_path / "m.mat", verts, tris)
    ids = helpers.nearest_vertices(verts, helpers.ibug_layout())
    eos_points = [17, 19, 21, 22, 24, 26, 30, 33, 36, 39, 42, 45, 48, 51, 54, 57, 62, 66]
    lm_path = helpers.write_mapping(tmp_path / "ibug_to_testbfm.txt",
                                    {k: int(ids[k]) for k in eos_points})
    helpers.write_contours(tmp_path / "testbfm_model_contours.json", verts)
    m = import_bfm2009(tmp_path / "m.mat", landmarks=lm_path)
    rep = m.provenance["landmarks"]
    assert rep["mapped"] == eos_points
    assert sorted(rep["mapped"] + rep["contour"] + rep["rule"] + rep["interpolated"]) == list(
        range(68))
    assert 8 in rep["contour"] and {60, 64, 27} <= set(rep["rule"])
    assert m.provenance["files"]["contours"]["name"] == "testbfm_model_contours.json"
    np.testing.assert_array_equal(m.landmark_vertices()[eos_points], ids[eos_points])
    lm = m.landmarks(m.mean_shape) * 1000
    assert np.all(np.abs(lm[:, 0]) <= 70.01) and np.all(np.abs(lm[:, 1]) <= 95.01)
    # the inner mouth corners sit on the outer ones; the jaw runs right -> chin -> left
    np.testing.assert_allclose(lm[60], lm[48])
    assert lm[0, 0] < lm[8, 0] < lm[16, 0] and lm[8, 1] < lm[0, 1]
    # without the contour file the jaw cannot be built: a clear error says what to pass
    (tmp_path / "testbfm_model_contours.json").unlink()
    with pytest.raises(ModelFormatError, match="contours=PATH"):
        import_bfm2009(tmp_path / "m.mat", landmarks=lm_path)


def test_bfm2009_v73_mat_is_read(helpers, tmp_path):
    """MATLAB v7.3 files are HDF5 with a 512-byte header and transposed datasets."""
    verts, tris = helpers.face_grid()
    src = _write_bfm2009(tmp_path / "v5.mat", verts, tris)
    path = tmp_path / "v73.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        for key, val in src.items():
            f[key] = np.asarray(val).T
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 ."
    with open(path, "r+b") as f:
        f.write(header.ljust(116) + b"\0" * 8 + b"\x00\x02" + b"IM")
    lm_path, _ = _full_mapping(helpers, verts, tmp_path)
    m = import_bfm2009(path, landmarks=lm_path)
    np.testing.assert_allclose(m.mean_shape, src["shapeMU"].reshape(-1, 3) * 1e-6, rtol=1e-6)


def test_bfm2009_errors(helpers, tmp_path):
    verts, tris = helpers.face_grid()
    lm_path, _ = _full_mapping(helpers, verts, tmp_path)
    with pytest.raises(ModelFormatError, match="does not exist"):
        import_bfm2009(tmp_path / "nope.mat", landmarks=lm_path)
    _write_bfm2009(tmp_path / "a.mat", verts, tris, shapeEV=None)
    with pytest.raises(ModelFormatError, match=r"a\.mat has no 'shapeEV'"):
        import_bfm2009(tmp_path / "a.mat", landmarks=lm_path)
    _write_bfm2009(tmp_path / "b.mat", verts, tris,
                   texMU=np.ones((3 * (len(verts) - 1), 1), np.float32))
    with pytest.raises(ModelFormatError, match="'texMU'.*mismatched bases"):
        import_bfm2009(tmp_path / "b.mat", landmarks=lm_path)
    _write_bfm2009(tmp_path / "c.mat", verts, tris, shapePC=np.ones((30, 5), np.float32))
    with pytest.raises(ModelFormatError, match="'shapePC' must be"):
        import_bfm2009(tmp_path / "c.mat", landmarks=lm_path)
    _write_bfm2009(tmp_path / "d.mat", verts, tris)
    with pytest.raises(ModelFormatError, match="landmarks=PATH"):
        import_bfm2009(tmp_path / "d.mat")
    with pytest.raises(ModelFormatError, match="not a face"):
        import_bfm2009(tmp_path / "d.mat", landmarks=lm_path, units="mm")
    with pytest.raises(ModelFormatError, match="known length unit"):
        import_bfm2009(tmp_path / "d.mat", landmarks=lm_path, units="furlong")
    bad_map = helpers.write_mapping(tmp_path / "bad.txt", {0: len(verts) + 5})
    with pytest.raises(ModelFormatError, match="another model"):
        import_bfm2009(tmp_path / "d.mat", landmarks=bad_map)
    (tmp_path / "bad_key.txt").write_text("[landmark_mappings]\n99 = 3\n")
    with pytest.raises(ModelFormatError, match="bad_key.txt: entry '99'"):
        import_bfm2009(tmp_path / "d.mat", landmarks=tmp_path / "bad_key.txt")
    (tmp_path / "junk.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(ModelFormatError, match="junk.mat"):
        import_bfm2009(tmp_path / "junk.mat", landmarks=lm_path)


def _write_front(path, verts_mm, tris, ids, **override):
    v = len(verts_mm)
    skin = np.zeros((1, v))
    skin[0, ::3] = 1
    data = {
        "meanshape": (verts_mm.reshape(1, -1) / 100).astype(np.float32),  # mm -> dm
        "idBase": RNG.normal(scale=1e-2, size=(3 * v, 4)).astype(np.float32),
        "exBase": RNG.normal(scale=1e-2, size=(3 * v, 3)),  # float64, as Deep3DFaceRecon saves
        "meantex": RNG.uniform(50, 200, (1, 3 * v)).astype(np.float32),
        "texBase": RNG.normal(scale=5, size=(3 * v, 2)).astype(np.float32),
        "tri": (tris + 1).astype(np.float64),
        "keypoints": (ids + 1).reshape(1, -1).astype(np.float64),
        "skinmask": skin,
        "frontmask2_idx": (np.arange(10, 200) + 1).reshape(-1, 1).astype(np.float64),
        "point_buf": np.ones((v, 8)),
        "tri_mask2": (tris[:5] + 1).astype(np.float64),
    }
    data.update(override)
    scipy.io.savemat(path, {k: val for k, val in data.items() if val is not None})
    return data


def test_bfm_front_round_trip(helpers, tmp_path):
    verts, tris = helpers.face_grid()
    ids = helpers.nearest_vertices(verts, helpers.ibug_layout())
    src = _write_front(tmp_path / "BFM_model_front.mat", verts, tris, ids)
    m = import_bfm_front(tmp_path / "BFM_model_front.mat")
    v = len(verts)
    np.testing.assert_allclose(m.mean_shape, verts * 1e-3, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(m.identity_basis, src["idBase"].T.reshape(4, v, 3) * 0.1,
                               rtol=1e-5)
    np.testing.assert_allclose(m.expression_basis, src["exBase"].T.reshape(3, v, 3) * 0.1,
                               rtol=1e-5)
    np.testing.assert_allclose(m.albedo_mean, src["meantex"].reshape(v, 3) / 255, rtol=1e-6)
    np.testing.assert_allclose(m.albedo_basis, src["texBase"].T.reshape(2, v, 3) / 255,
                               rtol=1e-5)
    np.testing.assert_array_equal(m.triangles, tris)
    assert m.provenance["triangles_flipped"] is False
    np.testing.assert_array_equal(m.landmark_vertices(), ids)
    np.testing.assert_array_equal(m.regions["skin"], np.arange(0, v, 3))
    np.testing.assert_array_equal(m.regions["photometric"], np.arange(10, 200))
    assert m.expression_kind == "pca" and m.name == "bfm-front"
    np.testing.assert_allclose(m.shape(np.zeros(4), np.zeros(3)), m.mean_shape)
    json.dumps(m.provenance)


def test_bfm_front_errors(helpers, tmp_path):
    verts, tris = helpers.face_grid()
    ids = helpers.nearest_vertices(verts, helpers.ibug_layout())
    _write_front(tmp_path / "a.mat", verts, tris, ids, keypoints=None)
    with pytest.raises(ModelFormatError, match="landmarks=PATH"):
        import_bfm_front(tmp_path / "a.mat")
    lm_path, _ = _full_mapping(helpers, verts, tmp_path)
    assert import_bfm_front(tmp_path / "a.mat", landmarks=lm_path).num_identity == 4
    _write_front(tmp_path / "b.mat", verts, tris, ids,
                 exBase=np.zeros((3 * len(verts) - 3, 3)))
    with pytest.raises(ModelFormatError, match="'exBase' must be.*different meshes"):
        import_bfm_front(tmp_path / "b.mat")
    _write_front(tmp_path / "c.mat", verts, tris, ids, keypoints=np.arange(1, 60.0))
    with pytest.raises(ModelFormatError, match="'keypoints' has 59 values"):
        import_bfm_front(tmp_path / "c.mat")


def _write_h5(path, verts_mm, tris, k=4, ke=3, kc=2, expression=True, color=True, ev=None):
    v = len(verts_mm)
    out = {}
    with h5py.File(path, "w") as f:
        def group(name, mean, k_modes, rows=3 * v):
            basis = np.linalg.qr(RNG.normal(size=(rows, k_modes)))[0].astype(np.float32)
            var = np.linspace(400, 50, k_modes).astype(np.float32)
            f[f"{name}/model/mean"] = mean.astype(np.float32)
            f[f"{name}/model/pcaBasis"] = basis
            f[f"{name}/model/pcaVariance"] = var
            f[f"{name}/model/noiseVariance"] = np.float32(0.1)
            out[name] = (mean, basis, var)

        group("shape", verts_mm.reshape(-1), k)
        f["shape/representer/points"] = verts_mm.T.astype(np.float32)
        f["shape/representer/cells"] = tris.T.astype(np.uint32)
        if expression:
            group("expression", RNG.normal(scale=0.5, size=3 * (ev or v)), ke, 3 * (ev or v))
        if color:
            group("color", RNG.uniform(0.2, 0.8, 3 * v), kc)
    return out


def test_bfm2017_round_trip(helpers, tmp_path):
    verts, tris = helpers.face_grid()
    src = _write_h5(tmp_path / "model2017-1_bfm_nomouth.h5", verts, tris)
    lm_path, ids = _full_mapping(helpers, verts, tmp_path)
    m = import_bfm2017(tmp_path / "model2017-1_bfm_nomouth.h5", landmarks=lm_path)
    v = len(verts)
    mean_mm = src["shape"][0] + src["expression"][0]
    np.testing.assert_allclose(m.mean_shape, mean_mm.reshape(v, 3) * 1e-3, rtol=1e-5,
                               atol=1e-8)
    for got, (_, basis, var) in ((m.identity_basis, src["shape"]),
                                 (m.expression_basis, src["expression"])):
        want = (basis * np.sqrt(var)).T.reshape(-1, v, 3) * 1e-3
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-10)
    _, cb, cv = src["color"]
    np.testing.assert_allclose(m.albedo_mean, src["color"][0].reshape(v, 3), rtol=1e-6)
    np.testing.assert_allclose(m.albedo_basis, (cb * np.sqrt(cv)).T.reshape(-1, v, 3),
                               rtol=1e-5, atol=1e-8)
    np.testing.assert_array_equal(m.triangles, tris)
    np.testing.assert_array_equal(m.landmark_vertices(), ids)
    assert m.name == "bfm2017" and m.expression_kind == "pca"
    np.testing.assert_allclose(m.shape(np.zeros(4), np.zeros(3)), m.mean_shape)


def test_bfm2019_without_colour_or_expression(helpers, tmp_path):
    verts, tris = helpers.face_grid()
    _write_h5(tmp_path / "model2019_face12.h5", verts, tris, expression=False, color=False)
    lm_path, _ = _full_mapping(helpers, verts, tmp_path)
    m = import_bfm2017(tmp_path / "model2019_face12.h5", landmarks=lm_path, max_identity=2)
    assert m.name == "bfm2019" and m.albedo_mean is None and m.num_expression == 0
    assert m.num_identity == 2


def test_bfm2017_errors(helpers, tmp_path):
    verts, tris = helpers.face_grid()
    lm_path, _ = _full_mapping(helpers, verts, tmp_path)
    _write_h5(tmp_path / "a.h5", verts, tris, ev=len(verts) - 2)
    with pytest.raises(ModelFormatError, match="expression/model/mean.*mismatched bases"):
        import_bfm2017(tmp_path / "a.h5", landmarks=lm_path)
    _write_h5(tmp_path / "b.h5", verts, tris)
    with h5py.File(tmp_path / "b.h5", "a") as f:
        del f["shape/model/pcaVariance"]
    with pytest.raises(ModelFormatError, match="no dataset 'shape/model/pcaVariance'"):
        import_bfm2017(tmp_path / "b.h5", landmarks=lm_path)
    (tmp_path / "c.h5").write_bytes(b"\x89HDF junk")
    with pytest.raises(ModelFormatError, match="not an HDF5 file"):
        import_bfm2017(tmp_path / "c.h5", landmarks=lm_path)
