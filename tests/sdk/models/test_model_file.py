from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from facecraft.sdk.errors import ModelFileError
from facecraft.sdk.models.model_file import SCHEMA_VERSION, load_model, read_model_info, save_model


def _assert_models_equal(a, b):
    for f in ("mean_shape", "identity_basis", "expression_basis", "triangles", "uvs",
              "uv_triangles", "landmark_faces", "landmark_bary", "albedo_mean", "albedo_basis"):
        x, y = getattr(a, f), getattr(b, f)
        if x is None:
            assert y is None, f
        else:
            assert x.dtype == y.dtype and np.array_equal(x, y), f
    for f in ("name", "identity_names", "expression_names", "albedo_names", "expression_kind",
              "provenance", "licence"):
        assert getattr(a, f) == getattr(b, f), f
    assert a.regions.keys() == b.regions.keys()
    for k in a.regions:
        np.testing.assert_array_equal(a.regions[k], b.regions[k])


def test_round_trip_exact(tiny_model, tmp_path):
    p = tmp_path / "m.fcm"
    digest = save_model(tiny_model, p)
    back = load_model(p)
    _assert_models_equal(tiny_model, back)
    info = read_model_info(p)
    assert info.content_sha256 == digest and info.schema_version == SCHEMA_VERSION
    assert info.arrays["shape/identity"] == ("float32", tiny_model.identity_basis.shape)
    # same content, same hash
    assert save_model(back, tmp_path / "again.fcm") == digest


def test_round_trip_without_albedo(tiny_model_factory, tmp_path):
    m = tiny_model_factory(albedo=False)
    save_model(m, tmp_path / "m.fcm")
    back = load_model(tmp_path / "m.fcm")
    _assert_models_equal(m, back)
    assert not back.has_albedo


def test_hash_detects_corruption(tiny_model, tmp_path):
    p = tmp_path / "m.fcm"
    save_model(tiny_model, p)
    raw = bytearray(p.read_bytes())
    n = struct.unpack("<Q", raw[:8])[0]
    start = json.loads(raw[8:8 + n])["shape/identity"]["data_offsets"][0]
    raw[8 + n + start + 5] ^= 0xFF  # flip bits inside the identity basis
    p.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="hash mismatch"):
        load_model(p)
    load_model(p, verify=False)  # readable when asked not to verify


def _rewrite_header(path, **changes):
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    header["__metadata__"].update(changes)
    new = json.dumps(header).encode()
    new += b" " * (-len(new) % 8)
    path.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n:])


def test_newer_schema_and_foreign_files_refused(tiny_model, tmp_path):
    p = tmp_path / "m.fcm"
    save_model(tiny_model, p)
    _rewrite_header(p, schema_version=str(SCHEMA_VERSION + 1))
    with pytest.raises(ModelFileError, match="newer"):
        load_model(p)
    _rewrite_header(p, format="something.else")
    with pytest.raises(ModelFileError, match="not a FaceCraft model file"):
        load_model(p)
    junk = tmp_path / "junk.fcm"
    junk.write_bytes(b"\x00" * 3 + b"not safetensors")
    with pytest.raises(ModelFileError):
        load_model(junk)
    with pytest.raises(ModelFileError, match="no such"):
        load_model(tmp_path / "missing.fcm")


def test_failed_write_leaves_nothing(tiny_model, tmp_path, monkeypatch):
    import safetensors.numpy

    def half_write(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError(28, "No space left on device")

    target = tmp_path / "out" / "m.fcm"
    save_model(tiny_model, target)
    before = target.read_bytes()
    monkeypatch.setattr(safetensors.numpy, "save_file", half_write)
    with pytest.raises(ModelFileError, match="No space left"):
        save_model(tiny_model.replace(name="other"), target)
    assert target.read_bytes() == before  # the old file is untouched
    assert [p.name for p in target.parent.iterdir()] == ["m.fcm"]  # no temp file left
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ModelFileError, match="cannot write"):
        save_model(tiny_model, blocker / "m.fcm")
