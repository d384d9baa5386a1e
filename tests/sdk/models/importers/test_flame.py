"""FLAME importer on synthetic files in FLAME's published layout (FLAME is licensed by
registration, so not among the test assets).

The model file is written the way the real one was: a Python 2, protocol-2 pickle whose byte
strings are ``BINSTRING`` opcodes, numpy globals under ``numpy.core.multiarray``, and
``shapedirs`` a ``chumpy.ch.Ch`` object pickled with chumpy's state (its ``__dict__`` without
caches, the array under ``"x"``). chumpy is not installed: a stand-in class named
``chumpy.ch.Ch`` is written by name.
"""

from __future__ import annotations

import json
import pickle
import struct

import numpy as np
import pytest
import scipy.sparse
import torch

from facecraft.sdk.errors import ModelFormatError
from facecraft.sdk.models.importers.flame import import_flame, load_flame_pickle

RNG = np.random.default_rng(1)
N_SHAPE, N_EXPR = 300, 12


class Ch:
    """Pickles like chumpy's ``Ch``: NEWOBJ of ``chumpy.ch.Ch`` then BUILD with its state."""

    def __init__(self, x):
        self.x = x

    def __getstate__(self):
        return {"x": self.x, "_dirty_vars": set(), "_itr": None, "_depends_on_deps": {},
                "_make_dense": False, "_make_sparse": False}


Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"


class _Py2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2 wrote it: byte strings as BINSTRING, Python 2 module names."""

    dispatch = pickle._Pickler.dispatch.copy()
    _RENAME = {"numpy._core.multiarray": "numpy.core.multiarray", "builtins": "__builtin__",
               "copyreg": "copy_reg", "scipy.sparse._csc": "scipy.sparse.csc"}

    def save_py2_str(self, obj):
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str

    def save_global(self, obj, name=None):
        name = name or obj.__qualname__
        module = getattr(obj, "__module__", None) or pickle.whichmodule(obj, name)
        module = self._RENAME.get(module, module)
        self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode())
        self.memoize(obj)


def _py2_dump(obj, path):
    with open(path, "wb") as f:
        _Py2Pickler(f, protocol=2).dump(obj)


def _sphere(level=2):
    """Unit icosphere (vertices, counter-clockwise triangles)."""
    t = (1 + 5**0.5) / 2
    v = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t),
         (0, 1, -t), (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    f = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4),
         (11, 10, 2), (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8),
         (3, 8, 9), (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    verts = [np.array(p, float) / np.linalg.norm(p) for p in v]
    for _ in range(level):
        cache, nf = {}, []
        for a, b, c in f:
            mids = []
            for i, j in ((a, b), (b, c), (c, a)):
                key = (min(i, j), max(i, j))
                if key not in cache:
                    m = verts[i] + verts[j]
                    verts.append(m / np.linalg.norm(m))
                    cache[key] = len(verts) - 1
                mids.append(cache[key])
            ab, bc, ca = mids
            nf += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        f = nf
    return np.array(verts), np.array(f)


def _head():
    """A 10 cm head sphere plus two 1.2 cm eyeballs (separate components), in metres."""
    hv, hf = _sphere(2)
    ev, ef = _sphere(1)
    verts = [hv * 0.1]
    faces = [hf]
    for x in (0.032, -0.032):  # subject's left eye first (+X)
        faces.append(ef + sum(len(v) for v in verts))
        verts.append(ev * 0.012 + [x, 0.03, 0.085])
    return np.concatenate(verts), np.concatenate(faces)


def _write_flame(path, verts, faces, **override):
    v = len(verts)
    j_reg = scipy.sparse.csc_matrix(RNG.uniform(size=(5, v)) * (RNG.uniform(size=(5, v)) > 0.9))
    data = {
        b"v_template": verts,
        b"shapedirs": Ch(RNG.normal(scale=1e-3, size=(v, 3, N_SHAPE + N_EXPR))),
        b"f": faces.astype(np.uint32),
        b"posedirs": RNG.normal(size=(v, 3, 36)),
        b"J_regressor": j_reg,
        b"weights": RNG.uniform(size=(v, 5)),
        b"kintree_table": np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], np.int64),
        b"J": np.zeros((5, 3)),
        b"bs_style": b"lbs",
        b"bs_type": b"lrotmin",
    }
    data.update({k.encode(): val for k, val in override.items()})
    _py2_dump({k: val for k, val in data.items() if val is not None}, path)
    return data


def _embedding(num_faces, n=68):
    faces = RNG.integers(0, num_faces, n)
    bary = RNG.uniform(0.1, 1, (n, 3))
    return faces, bary / bary.sum(1, keepdims=True)


def _write_deca_npy(path, faces, bary, with_full=True):
    d = {"static_lmk_faces_idx": faces[17:], "static_lmk_bary_coords": bary[17:],
         # DECA's file keeps the dynamic contour as torch tensors (79 yaw angles x 17 points)
         "dynamic_lmk_faces_idx": torch.from_numpy(np.tile(faces[:17], (79, 1))),
         "dynamic_lmk_bary_coords": torch.from_numpy(np.tile(bary[:17], (79, 1, 1)))}
    if with_full:
        d["full_lmk_faces_idx"] = faces[None]
        d["full_lmk_bary_coords"] = bary[None]
    np.save(path, d, allow_pickle=True)


@pytest.fixture
def flame_files(tmp_path):
    verts, faces = _head()
    src = _write_flame(tmp_path / "generic_model.pkl", verts, faces)
    lf, lb = _embedding(len(faces))
    _write_deca_npy(tmp_path / "landmark_embedding.npy", lf, lb)
    return tmp_path, verts, faces, src, lf, lb


def test_pickle_really_looks_like_python2_chumpy(flame_files):
    import pickletools

    folder = flame_files[0]
    ops = list(pickletools.genops((folder / "generic_model.pkl").read_bytes()))
    globs = {arg for op, arg, _ in ops if op.name == "GLOBAL"}
    assert {"chumpy.ch Ch", "numpy.core.multiarray _reconstruct", "scipy.sparse.csc csc_matrix",
            "__builtin__ set"} <= globs
    assert any(op.name in ("BINSTRING", "SHORT_BINSTRING") for op, _, _ in ops)
    data = load_flame_pickle(folder / "generic_model.pkl")
    assert type(data["shapedirs"]).__name__ == "Ch"
    assert data["shapedirs"].to_array().shape == (len(flame_files[1]), 3, N_SHAPE + N_EXPR)


def test_flame_round_trip(flame_files):
    folder, verts, faces, src, lf, lb = flame_files
    m = import_flame(folder / "generic_model.pkl", landmarks=folder / "landmark_embedding.npy")
    sd = src[b"shapedirs"].x
    np.testing.assert_allclose(m.mean_shape, verts, rtol=1e-6, atol=1e-9)  # metres already
    np.testing.assert_allclose(m.identity_basis, sd[:, :, :N_SHAPE].transpose(2, 0, 1),
                               rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(m.expression_basis, sd[:, :, N_SHAPE:].transpose(2, 0, 1),
                               rtol=1e-6, atol=1e-12)
    assert (m.num_identity, m.num_expression, m.expression_kind) == (N_SHAPE, N_EXPR, "pca")
    np.testing.assert_array_equal(m.triangles, faces)
    assert m.triangles.dtype == np.int32 and m.provenance["triangles_flipped"] is False
    np.testing.assert_array_equal(m.landmark_faces, lf)
    np.testing.assert_allclose(m.landmark_bary, lb, rtol=1e-6)
    np.testing.assert_allclose(m.shape(np.zeros(N_SHAPE), np.zeros(N_EXPR)), m.mean_shape)
    c = np.zeros(N_EXPR)
    c[3] = 2.0
    np.testing.assert_allclose(m.shape(expression=c), m.mean_shape + 2 * m.expression_basis[3],
                               atol=1e-7)
    assert m.regions["face"].size == len(verts)
    eye_l, eye_r = m.regions["eye_left"], m.regions["eye_right"]
    assert eye_l.size == eye_r.size == 42
    assert m.mean_shape[eye_l, 0].mean() > 0 > m.mean_shape[eye_r, 0].mean()
    assert "posedirs" in m.provenance["not_imported"]
    assert "registration" in m.licence and "FLAME" in m.licence
    assert m.albedo_mean is None and len(m.uvs) == 0
    json.dumps(m.provenance)


def test_flame_landmark_layouts(flame_files, tmp_path):
    folder, verts, faces, _, lf, lb = flame_files
    model = folder / "generic_model.pkl"
    # DECA-style without full_*: frontal dynamic contour + static 51
    _write_deca_npy(tmp_path / "dyn.npy", lf, lb, with_full=False)
    m = import_flame(model, landmarks=tmp_path / "dyn.npy", max_identity=10, max_expression=2)
    np.testing.assert_array_equal(m.landmark_faces, lf)
    assert m.provenance["landmarks"]["layout"] == "dynamic[frontal]+static"
    assert (m.num_identity, m.num_expression) == (10, 2)
    # a pickled dict with 68 lmk_face_idx / lmk_b_coords (Python 2 style) and an .npz
    _py2_dump({b"lmk_face_idx": lf, b"lmk_b_coords": lb}, tmp_path / "static68.pkl")
    np.testing.assert_array_equal(
        import_flame(model, landmarks=tmp_path / "static68.pkl").landmark_faces, lf)
    np.savez(tmp_path / "emb.npz", lmk_face_idx=lf, lmk_b_coords=lb)
    np.testing.assert_allclose(
        import_flame(model, landmarks=tmp_path / "emb.npz").landmark_bary, lb, rtol=1e-6)
    # FLAME_PyTorch's 51-point static embedding alone has no jaw
    _py2_dump({b"lmk_face_idx": lf[17:], b"lmk_b_coords": lb[17:]}, tmp_path / "s51.pkl")
    with pytest.raises(ModelFormatError, match="51 landmarks.*landmark_embedding.npy"):
        import_flame(model, landmarks=tmp_path / "s51.pkl")
    np.savez(tmp_path / "far.npz", lmk_face_idx=lf + len(faces), lmk_b_coords=lb)
    with pytest.raises(ModelFormatError, match="another mesh"):
        import_flame(model, landmarks=tmp_path / "far.npz")


def test_flame_albedo_texture_space(flame_files, tmp_path):
    folder, verts, faces, _, _, _ = flame_files
    h = w = 16
    mean = np.zeros((h, w, 3))
    mean[..., :] = [10.0, 20.0, 30.0]  # BGR, 8-bit units
    tex_dir = np.zeros((h, w, 3, 2))
    tex_dir[..., 0, 0] = 255.0  # mode 0: +1 in blue
    tex_dir[..., 1] = np.arange(w)[None, :, None]  # mode 1: a ramp along u in every channel
    vt = np.column_stack([np.linspace(0.1, 0.9, len(verts)), np.full(len(verts), 0.5)])
    np.savez(tmp_path / "FLAME_texture.npz", mean=mean, tex_dir=tex_dir, vt=vt, ft=faces)
    m = import_flame(folder / "generic_model.pkl", landmarks=folder / "landmark_embedding.npy",
                     albedo=tmp_path / "FLAME_texture.npz")
    np.testing.assert_allclose(m.albedo_mean, np.tile([30, 20, 10], (len(verts), 1)) / 255,
                               rtol=1e-6)
    np.testing.assert_allclose(m.albedo_basis[0], np.tile([0, 0, 1.0], (len(verts), 1)))
    np.testing.assert_allclose(m.albedo_basis[1, :, 0], (vt[:, 0] * w - 0.5) / 255, rtol=1e-5)
    np.testing.assert_allclose(m.uvs, vt, rtol=1e-6)
    np.testing.assert_array_equal(m.uv_triangles, faces)
    np.savez(tmp_path / "bfm_albedo.npz", MU=mean.reshape(-1), PC=tex_dir.reshape(-1, 2))
    with pytest.raises(ModelFormatError, match="FLAME_texture.npz"):
        import_flame(folder / "generic_model.pkl", landmarks=folder / "landmark_embedding.npy",
                     albedo=tmp_path / "bfm_albedo.npz")


def test_flame_errors(flame_files, tmp_path):
    folder, verts, faces, _, _, _ = flame_files
    lm = folder / "landmark_embedding.npy"
    with pytest.raises(ModelFormatError, match="does not exist"):
        import_flame(tmp_path / "missing.pkl", landmarks=lm)
    with pytest.raises(ModelFormatError, match="landmarks=PATH"):
        import_flame(folder / "generic_model.pkl")
    _write_flame(tmp_path / "a.pkl", verts, faces, shapedirs=None)
    with pytest.raises(ModelFormatError, match=r"a\.pkl has no 'shapedirs'"):
        import_flame(tmp_path / "a.pkl", landmarks=lm)
    _write_flame(tmp_path / "b.pkl", verts, faces,
                 shapedirs=Ch(np.zeros((len(verts) - 1, 3, 400))))
    with pytest.raises(ModelFormatError, match="'shapedirs' must be.*mismatched"):
        import_flame(tmp_path / "b.pkl", landmarks=lm)
    (tmp_path / "c.pkl").write_bytes(b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85R.")
    with pytest.raises(ModelFormatError, match="refusing to load global os.system"):
        import_flame(tmp_path / "c.pkl", landmarks=lm)
    (tmp_path / "d.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ModelFormatError, match="d.pkl"):
        import_flame(tmp_path / "d.pkl", landmarks=lm)
