"""Surrey Face Model importer: the real eos files from ../shared/assets, and synthetic cereal files.

The synthetic files are written by a small cereal binary-archive writer below (uint32 class
version, int32 rows/cols + column-major float32 for Eigen, uint64 sizes, 1-byte bools, int32
variant index), independent of the importer's reader.
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from facecraft.sdk.errors import ModelFormatError
from facecraft.sdk.models.importers.surrey import import_surrey, read_eos_model
from facecraft.sdk.models.mesh import read_obj
from facecraft.sdk.photo.landmarks import IBUG68_FLIP

RNG = np.random.default_rng(2)


# --------------------------------------------------------------------------- cereal writer
def _mat(a):
    a = np.asarray(a, np.float32)
    a = a.reshape(-1, 1) if a.ndim == 1 else a
    return struct.pack("<ii", *a.shape) + a.T.tobytes()  # Eigen: column-major


def _size(n):
    return struct.pack("<Q", n)


def _str(s):
    return _size(len(s.encode())) + s.encode()


def _tris(t):
    return _size(len(t)) + np.asarray(t, "<i4").tobytes()


def _pca(mean, basis, ev, tris):
    return _mat(mean) + _mat(basis) + _mat(ev) + _tris(tris)


def _empty_pca():
    return _pca(np.zeros(0), np.zeros((0, 0)), np.zeros(0), np.zeros((0, 3)))


def _blendshapes(items):
    return _size(len(items)) + b"".join(_str(n) + _mat(d) for n, d in items)


def _write_eos(path, version, shape, color=None, expression=None, landmark_defs=None,
               uv=None, tti=None):
    out = struct.pack("<I", version) + _pca(*shape) + (color or _empty_pca())
    if version >= 2:
        if expression is None:
            out += b"\x01"
        elif expression[0] == "pca":
            out += b"\x00" + struct.pack("<i", 0) + _pca(*expression[1])
        else:
            out += b"\x00" + struct.pack("<i", 1) + _blendshapes(expression[1])
    if version >= 3:
        if landmark_defs is None:
            out += b"\x01"
        else:
            out += b"\x00" + _size(len(landmark_defs)) + b"".join(
                _str(k) + struct.pack("<i", v) for k, v in landmark_defs.items())
    uv = np.zeros((0, 2)) if uv is None else uv
    out += _size(len(uv)) + np.asarray(uv, "<f8").tobytes()
    if version >= 4:
        out += _tris(np.zeros((0, 3)) if tti is None else tti)
    path.write_bytes(out)


def _synthetic(helpers, tmp_path, k=5):
    verts, tris = helpers.face_grid()
    v = len(verts)
    basis = np.linalg.qr(RNG.normal(size=(3 * v, k)))[0]
    ev = np.linspace(900, 100, k)
    ids = helpers.nearest_vertices(verts, helpers.ibug_layout())
    helpers.write_mapping(tmp_path / "ibug_to_sfm.txt", dict(enumerate(map(int, ids))))
    return verts, tris, basis, ev, ids


# --------------------------------------------------------------------------- synthetic files
def test_cereal_v1_round_trip(helpers, tmp_path):
    verts, tris, basis, ev, ids = _synthetic(helpers, tmp_path)
    v = len(verts)
    uv = RNG.uniform(size=(v, 2))
    _write_eos(tmp_path / "sfm_shape_9.bin", 1, (verts.reshape(-1), basis, ev, tris), uv=uv)
    blend = [("smile", RNG.normal(size=3 * v)), ("frown", RNG.normal(size=3 * v))]
    (tmp_path / "expression_blendshapes_9.bin").write_bytes(_blendshapes(blend))
    m = import_surrey(tmp_path)  # folder: finds sfm_shape_*.bin, blendshapes and mapping
    np.testing.assert_allclose(m.mean_shape, verts * 1e-3, rtol=1e-5, atol=1e-9)
    want = (basis * np.sqrt(ev)).T.reshape(-1, v, 3) * 1e-3
    np.testing.assert_allclose(m.identity_basis, want, rtol=1e-4, atol=1e-9)
    assert m.expression_names == ("smile", "frown") and m.expression_kind == "blendshape"
    np.testing.assert_allclose(m.expression_basis[1], blend[1][1].reshape(v, 3) * 1e-3,
                               rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(m.uvs[:, 0], uv[:, 0], rtol=1e-6)
    np.testing.assert_allclose(m.uvs[:, 1], 1 - uv[:, 1], rtol=1e-5, atol=1e-7)  # v flipped
    np.testing.assert_array_equal(m.uv_triangles, m.triangles)
    np.testing.assert_array_equal(m.triangles, tris)
    np.testing.assert_array_equal(m.landmark_vertices(), ids)
    np.testing.assert_allclose(m.shape(np.zeros(5), np.zeros(2)), m.mean_shape)
    assert m.albedo_mean is None and m.provenance["eos_version"] == 1
    json.dumps(m.provenance)


def test_cereal_v4_pca_expression_colour_and_uv_triangles(helpers, tmp_path):
    verts, tris, basis, ev, ids = _synthetic(helpers, tmp_path)
    v = len(verts)
    emean = RNG.normal(scale=0.3, size=3 * v)
    ebasis = np.linalg.qr(RNG.normal(size=(3 * v, 3)))[0]
    eev = np.array([4.0, 2.0, 1.0])
    cmean = RNG.uniform(0.2, 0.8, 3 * v)
    cbasis = np.linalg.qr(RNG.normal(size=(3 * v, 2)))[0]
    uv = RNG.uniform(size=(v + 10, 2))
    tti = RNG.integers(0, v + 10, size=tris.shape)
    _write_eos(tmp_path / "model.bin", 4, (verts.reshape(-1), basis, ev, tris),
               color=_pca(cmean, cbasis, np.array([0.04, 0.01]), tris),
               expression=("pca", (emean, ebasis, eev, tris)),
               landmark_defs={"center.nose.tip": 3, "eye.right.outer_corner": 7},
               uv=uv, tti=tti)
    eos = read_eos_model(tmp_path / "model.bin")
    assert eos.landmark_definitions == {"center.nose.tip": 3, "eye.right.outer_corner": 7}
    m = import_surrey(tmp_path / "model.bin", landmarks=tmp_path / "ibug_to_sfm.txt",
                      max_expression=2)
    np.testing.assert_allclose(m.mean_shape, (verts + emean.reshape(v, 3)) * 1e-3, rtol=1e-5,
                               atol=1e-9)
    assert m.expression_kind == "pca" and m.num_expression == 2
    np.testing.assert_allclose(m.expression_basis,
                               (ebasis * np.sqrt(eev)).T.reshape(3, v, 3)[:2] * 1e-3,
                               rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(m.albedo_mean, cmean.reshape(v, 3), rtol=1e-6)
    np.testing.assert_allclose(m.albedo_basis[1], cbasis[:, 1].reshape(v, 3) * 0.1, rtol=1e-4,
                               atol=1e-8)
    np.testing.assert_array_equal(m.uv_triangles, tti)
    assert len(m.uvs) == v + 10


def test_cereal_errors(helpers, tmp_path):
    verts, tris, basis, ev, _ = _synthetic(helpers, tmp_path)
    good = tmp_path / "good.bin"
    _write_eos(good, 1, (verts.reshape(-1), basis, ev, tris))
    raw = good.read_bytes()
    (tmp_path / "short.bin").write_bytes(raw[:-100])
    with pytest.raises(ModelFormatError, match="short.bin: not an eos cereal file"):
        import_surrey(tmp_path / "short.bin", landmarks=tmp_path / "ibug_to_sfm.txt")
    (tmp_path / "v0.bin").write_bytes(struct.pack("<I", 0) + raw[4:])
    with pytest.raises(ModelFormatError, match="old cv::Mat format"):
        read_eos_model(tmp_path / "v0.bin")
    (tmp_path / "blend.bin").write_bytes(_blendshapes([("x", np.zeros(30))]))
    with pytest.raises(ModelFormatError, match="different vertex count.*different models"):
        import_surrey(good, expressions=tmp_path / "blend.bin",
                      landmarks=tmp_path / "ibug_to_sfm.txt")
    with pytest.raises(ModelFormatError, match="landmark mapping.*does not exist"):
        import_surrey(good, landmarks=tmp_path / "missing.txt")
    _write_eos(tmp_path / "ev.bin", 1, (verts.reshape(-1), basis, ev[:-1], tris))
    with pytest.raises(ModelFormatError, match="5 basis columns for 4 eigenvalues"):
        read_eos_model(tmp_path / "ev.bin")
    with pytest.raises(ModelFormatError, match="does not exist"):
        import_surrey(tmp_path / "nothing.bin")


# --------------------------------------------------------------------------- the real SFM
@pytest.fixture(scope="module")
def sfm_dir():
    from pathlib import Path

    folder = (Path(__file__).resolve().parents[4].parent / "shared" / "assets" / "face-models"
              / "surrey-sfm-3448")
    if not (folder / "sfm_shape_3448.bin").is_file():
        pytest.skip(f"Surrey Face Model test asset not found at {folder} (../shared/assets is "
                    "read-only test data outside the repository)")
    return folder


@pytest.fixture(scope="module")
def sfm(sfm_dir):
    return import_surrey(sfm_dir / "sfm_shape_3448.bin")


def test_real_sfm_counts(sfm):
    assert sfm.num_vertices == 3448
    assert sfm.num_identity == 63
    assert sfm.num_expression == 6
    assert sfm.expression_names == ("anger", "disgust", "fear", "happiness", "sadness",
                                    "surprise")
    assert len(sfm.triangles) == 6736 and sfm.triangles.dtype == np.int32
    assert sfm.uvs.shape == (3448, 2) and sfm.uv_triangles.shape == (6736, 3)
    assert 0 <= sfm.uvs.min() and sfm.uvs.max() <= 1
    assert sfm.landmark_faces.shape == (68,)
    assert sfm.provenance["triangles_flipped"] is False  # eos stores counter-clockwise


def test_real_sfm_matches_reference_obj_in_metres(sfm, sfm_dir):
    """sfm_reference.obj is the (mm) template the model was built on: its 845 vertices are the
    model's first 845, a few mm from the mean."""
    ref = read_obj(sfm_dir / "sfm_reference.obj").vertices * 1e-3
    d = np.linalg.norm(sfm.mean_shape[: len(ref)] - ref, axis=1)
    assert len(ref) == 845
    assert d.mean() < 2.5e-3 and d.max() < 6e-3  # measured: 1.5 mm mean, 5.1 mm max
    extent = sfm.mean_shape.max(0) - sfm.mean_shape.min(0)
    assert np.all((0.1 < extent) & (extent < 0.2))  # a face in metres, not millimetres


def test_real_sfm_bases_are_rescaled_orthonormal(sfm, sfm_dir):
    eos = read_eos_model(sfm_dir / "sfm_shape_3448.bin")
    gram = np.einsum("kvd,lvd->kl", sfm.identity_basis.astype(np.float64),
                     sfm.identity_basis.astype(np.float64))
    np.testing.assert_allclose(np.diag(gram), eos.shape.eigenvalues * 1e-6, rtol=1e-4)
    off = gram - np.diag(np.diag(gram))
    assert np.abs(off).max() < 1e-6 * np.diag(gram).max()
    np.testing.assert_allclose(sfm.uvs[:, 1], 1 - eos.texcoords[:, 1], atol=1e-6)
    np.testing.assert_allclose(sfm.shape(np.zeros(63), np.zeros(6)), sfm.mean_shape)


def test_real_sfm_landmarks(sfm, sfm_dir):
    rep = sfm.provenance["landmarks"]
    # ibug_to_sfm.txt maps 50 points; 61 and 65 (1-based) and the jaw except the chin are not
    assert len(rep["mapped"]) == 50 and rep["rule"] == [60, 64]
    assert rep["contour"] == [k for k in range(17) if k != 8]
    mapping = {}
    for line in (sfm_dir / "ibug_to_sfm.txt").read_text().splitlines():
        head = line.split("#")[0]
        if "=" in head and head.split("=")[0].strip().isdigit():
            k, val = head.split("=")
            mapping[int(k) - 1] = int(val)
    np.testing.assert_array_equal(sfm.landmark_vertices()[sorted(mapping)],
                                  [mapping[k] for k in sorted(mapping)])
    lm = sfm.landmarks(sfm.mean_shape)
    # the face is symmetric: each landmark mirrors its partner within 3 mm
    mirrored = lm[list(IBUG68_FLIP)] * [-1, 1, 1]
    assert np.linalg.norm(lm - mirrored, axis=1).max() < 3e-3
    # jaw points lie on the contour candidates' side of the face, top to chin
    contours = json.loads((sfm_dir / "sfm_model_contours.json").read_text())["model_contour"]
    right = sfm.mean_shape[contours["right_contour"]]
    assert np.all(lm[0:8, 0] < 0) and np.all(lm[9:17, 0] > 0)
    assert np.all(np.diff(lm[0:8, 1]) < 0) and abs(lm[7, 1] - lm[8, 1]) < 3e-3
    assert lm[0, 0] >= right[:, 0].min() - 1e-3
    np.testing.assert_allclose(lm[0, 1], (lm[36, 1] + lm[45, 1]) / 2, atol=1e-3)
