"""The GLB writer / reader: round trips, the binary layout the spec asks for, other exporters'
features (interleaving, sparse accessors, node transforms, several primitives), and the Khronos
glTF Validator on what we write."""

from __future__ import annotations

import base64
import json
import struct

import cv2
import numpy as np
import pytest

from facecraft.sdk.errors import InvalidInputError, ModelFormatError
from facecraft.sdk.rigs.gltf import GltfMesh, glb_bytes, read_glb, write_glb

from ...conftest import uv_sphere
from .._rig_fixtures import validate_glbs


def _png(h: int = 8, w: int = 8) -> bytes:
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (200, 120, 90)
    return cv2.imencode(".png", img)[1].tobytes()


def _mesh(targets: int = 3, *, texture: bool = True, target_normals: bool = True) -> GltfMesh:
    verts, tris = uv_sphere(rows=8, cols=12)
    rng = np.random.default_rng(0)
    v = len(verts)
    uvs = np.stack([0.5 + 0.5 * np.arctan2(verts[:, 0], verts[:, 2]) / np.pi,
                    0.5 + verts[:, 1] / 0.2], 1)
    return GltfMesh(
        positions=verts, triangles=tris, uvs=uvs,
        targets=rng.normal(0, 0.002, (targets, v, 3)),
        target_normals=rng.normal(0, 0.01, (targets, v, 3)) if target_normals else None,
        target_names=tuple(f"shape_{k}" for k in range(targets)),
        weights=np.linspace(-0.5, 1.0, targets), texture_png=_png() if texture else None,
        name="head")


def _parse(data: bytes) -> tuple[dict, bytes]:
    magic, version, total = struct.unpack_from("<III", data, 0)
    assert (magic, version, total) == (0x46546C67, 2, len(data))
    jlen, jtype = struct.unpack_from("<II", data, 12)
    assert jtype == 0x4E4F534A and jlen % 4 == 0
    blen, btype = struct.unpack_from("<II", data, 20 + jlen)
    assert btype == 0x004E4942 and blen % 4 == 0
    assert 28 + jlen + blen == len(data)
    return json.loads(data[20:20 + jlen]), data[28 + jlen:]


def test_round_trip_is_exact(tmp_path):
    mesh = _mesh()
    path = write_glb(tmp_path / "m.glb", mesh)
    back = read_glb(path)
    np.testing.assert_array_equal(back.positions, mesh.positions)
    np.testing.assert_array_equal(back.triangles, mesh.triangles)
    np.testing.assert_allclose(back.uvs, mesh.uvs, atol=1e-6)  # v -> 1 - v -> v
    np.testing.assert_array_equal(back.targets, mesh.targets)
    np.testing.assert_array_equal(back.target_normals, mesh.target_normals)
    np.testing.assert_array_equal(back.weights, mesh.weights.astype(np.float32))
    assert back.target_names == mesh.target_names
    assert back.texture_png == mesh.texture_png
    assert back.name == "head" and not back.transform_applied
    np.testing.assert_allclose(np.linalg.norm(back.normals, axis=1), 1.0, atol=1e-6)
    assert read_glb(path.read_bytes()).num_targets == 3  # bytes work too


def test_layout_alignment_targets_and_minmax():
    mesh = _mesh()
    gltf, binary = _parse(glb_bytes(mesh))
    views, accessors = gltf["bufferViews"], gltf["accessors"]
    assert gltf["buffers"] == [{"byteLength": len(binary)}]
    for view in views:
        assert view["byteOffset"] % 4 == 0
        assert view["byteOffset"] + view["byteLength"] <= len(binary)
    prim = gltf["meshes"][0]["primitives"][0]
    v = mesh.num_vertices
    for acc_id in prim["attributes"].values():
        acc = accessors[acc_id]
        assert acc["count"] == v and acc["componentType"] == 5126
        assert views[acc["bufferView"]]["target"] == 34962  # ARRAY_BUFFER
    idx = accessors[prim["indices"]]
    assert idx["count"] == 3 * len(mesh.triangles) and idx["type"] == "SCALAR"
    assert idx["componentType"] == 5123  # uint16 for < 65536 vertices
    assert views[idx["bufferView"]]["target"] == 34963  # ELEMENT_ARRAY_BUFFER
    pos = accessors[prim["attributes"]["POSITION"]]
    assert pos["min"] == [float(x) for x in mesh.positions.min(0)]
    assert pos["max"] == [float(x) for x in mesh.positions.max(0)]
    assert len(prim["targets"]) == 3
    for k, tgt in enumerate(prim["targets"]):
        acc = accessors[tgt["POSITION"]]
        assert acc["min"] == [float(x) for x in mesh.targets[k].min(0)]
        assert set(tgt) == {"POSITION", "NORMAL"}
    assert gltf["meshes"][0]["weights"] == [float(w) for w in mesh.weights]
    assert gltf["meshes"][0]["extras"]["targetNames"] == list(mesh.target_names)
    img = gltf["images"][0]
    assert img["mimeType"] == "image/png" and "target" not in views[img["bufferView"]]
    pbr = gltf["materials"][0]["pbrMetallicRoughness"]
    assert pbr["baseColorTexture"] == {"index": 0, "texCoord": 0}
    assert gltf["asset"]["version"] == "2.0" and gltf["scenes"][0]["nodes"] == [0]


def _local_mesh() -> GltfMesh:
    """Morph targets as rigs have them: one local (a few vertices move), one all zero, one
    dense; NORMAL deltas likewise."""
    mesh = _mesh()
    v = mesh.num_vertices
    targets = mesh.targets.copy()
    targets[0, 10:] = 0.0  # local
    targets[1] = 0.0  # a slider that moves nothing
    normals = mesh.target_normals.copy()
    normals[0, 12:] = 0.0
    normals[1] = 0.0
    assert v > 20
    return GltfMesh(positions=mesh.positions, triangles=mesh.triangles, uvs=mesh.uvs,
                    targets=targets, target_normals=normals, target_names=mesh.target_names,
                    weights=mesh.weights, name="local")


def test_mostly_zero_targets_are_stored_sparse_and_read_back_exactly(tmp_path):
    mesh = _local_mesh()
    data = glb_bytes(mesh)
    gltf, _ = _parse(data)
    acc = gltf["accessors"]
    views = gltf["bufferViews"]
    local, zero, dense = (t["POSITION"] for t in gltf["meshes"][0]["primitives"][0]["targets"])
    assert "bufferView" not in acc[local] and acc[local]["sparse"]["count"] == 10
    assert acc[local]["count"] == mesh.num_vertices
    assert acc[local]["min"] == [float(x) for x in mesh.targets[0].min(0)]  # zeros included
    for part in ("indices", "values"):  # the spec: no target, no byteStride on these views
        view = views[acc[local]["sparse"][part]["bufferView"]]
        assert "target" not in view and "byteStride" not in view
    assert acc[local]["sparse"]["indices"]["componentType"] == 5123
    assert "bufferView" not in acc[zero] and "sparse" not in acc[zero]  # implicit zeros
    assert "sparse" not in acc[dense] and "bufferView" in acc[dense]
    back = read_glb(data)
    np.testing.assert_array_equal(back.targets, mesh.targets)
    np.testing.assert_array_equal(back.target_normals, mesh.target_normals)
    np.testing.assert_array_equal(back.positions, mesh.positions)
    plain = glb_bytes(mesh, sparse=False)
    assert "sparse" not in plain.decode("latin-1")
    assert len(data) < len(plain)
    np.testing.assert_array_equal(read_glb(plain).targets, mesh.targets)


def test_big_meshes_use_uint32_indices_and_meshes_without_targets_work():
    n = 70_000
    verts = np.zeros((n, 3), np.float32)
    verts[:, 0] = np.arange(n) * 1e-4
    verts[1::2, 1] = 1e-3
    tris = np.stack([np.arange(n - 2), np.arange(1, n - 1), np.arange(2, n)], 1)
    gltf, _ = _parse(glb_bytes(GltfMesh(positions=verts, triangles=tris)))
    prim = gltf["meshes"][0]["primitives"][0]
    assert gltf["accessors"][prim["indices"]]["componentType"] == 5125
    assert "targets" not in prim and "weights" not in gltf["meshes"][0]
    assert "TEXCOORD_0" not in prim["attributes"] and "images" not in gltf


def test_bad_input_names_the_array():
    verts, tris = uv_sphere(rows=4, cols=6)
    with pytest.raises(InvalidInputError, match="targets"):
        GltfMesh(positions=verts, triangles=tris, targets=np.zeros((2, 5, 3)))
    with pytest.raises(InvalidInputError, match="target_names"):
        GltfMesh(positions=verts, triangles=tris, targets=np.zeros((2, len(verts), 3)),
                 target_names=("a",))
    with pytest.raises(InvalidInputError, match="PNG"):
        GltfMesh(positions=verts, triangles=tris, texture_png=b"JFIF....")
    with pytest.raises(InvalidInputError, match="triangles index"):
        GltfMesh(positions=verts, triangles=tris + 100)
    with pytest.raises(ModelFormatError, match="GLB version"):
        read_glb(b"glTF" + struct.pack("<II", 1, 20) + b"\0" * 8)


def _interleaved_gltf() -> dict:
    """A hand-made .gltf like other exporters write: two primitives, interleaved POSITION +
    NORMAL, a sparse morph target, normalized uint16 UVs, a node transform, data: URIs."""
    pos = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    nrm = np.tile(np.array([0, 0, 1], np.float32), (3, 1))
    inter = np.concatenate([pos, nrm], 1).astype(np.float32).tobytes()  # stride 24
    uv = np.array([[0, 0], [65535, 0], [0, 65535]], np.uint16).tobytes()  # 12 bytes
    idx = np.array([0, 1, 2, 0], np.uint16).tobytes()  # 3 indices + pad
    sp_idx = np.array([2, 0], np.uint16).tobytes()
    sp_val = np.array([[0, 0, 0.5]], np.float32).tobytes()
    buf = inter + uv + idx + sp_idx + sp_val
    views = [
        {"buffer": 0, "byteOffset": 0, "byteLength": 72, "byteStride": 24, "target": 34962},
        {"buffer": 0, "byteOffset": 72, "byteLength": 12, "target": 34962},
        {"buffer": 0, "byteOffset": 84, "byteLength": 6, "target": 34963},
        {"buffer": 0, "byteOffset": 92, "byteLength": 2},
        {"buffer": 0, "byteOffset": 96, "byteLength": 12},
    ]
    acc = [
        {"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3",
         "min": [0, 0, 0], "max": [1, 1, 0]},
        {"bufferView": 0, "byteOffset": 12, "componentType": 5126, "count": 3, "type": "VEC3"},
        {"bufferView": 1, "componentType": 5123, "normalized": True, "count": 3,
         "type": "VEC2"},
        {"bufferView": 2, "componentType": 5123, "count": 3, "type": "SCALAR"},
        {"componentType": 5126, "count": 3, "type": "VEC3", "min": [0, 0, 0],
         "max": [0, 0, 0.5],
         "sparse": {"count": 1, "indices": {"bufferView": 3, "componentType": 5123},
                    "values": {"bufferView": 4}}},
    ]
    prim = {"attributes": {"POSITION": 0, "NORMAL": 1, "TEXCOORD_0": 2}, "indices": 3,
            "targets": [{"POSITION": 4}]}
    return {
        "asset": {"version": "2.0"},
        "scenes": [{"nodes": [0]}],
        "nodes": [{"children": [1], "translation": [0, 0, 1]},
                  {"mesh": 0, "scale": [2, 2, 2]}],
        "meshes": [{"primitives": [prim, dict(prim)], "weights": [0.25],
                    "extras": {"targetNames": ["raise"]}}],
        "accessors": acc, "bufferViews": views,
        "buffers": [{"byteLength": len(buf), "uri": "data:application/octet-stream;base64,"
                     + base64.b64encode(buf).decode()}],
    }


def test_reads_other_exporters_features(tmp_path):
    path = tmp_path / "other.gltf"
    path.write_text(json.dumps(_interleaved_gltf()))
    m = read_glb(path)
    assert m.num_vertices == 6 and m.triangles.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert m.transform_applied  # parent translation, child scale
    np.testing.assert_allclose(m.positions[:3], [[0, 0, 1], [2, 0, 1], [0, 2, 1]])
    np.testing.assert_allclose(m.normals[:3], [[0, 0, 1]] * 3)
    np.testing.assert_allclose(m.targets[0, :3], [[0, 0, 0], [0, 0, 0], [0, 0, 1]])
    np.testing.assert_allclose(m.uvs[:3], [[0, 1], [1, 1], [0, 0]])  # OBJ convention
    assert m.target_names == ("raise",) and m.weights.tolist() == [0.25]


def test_reader_errors_name_the_problem(tmp_path):
    doc = _interleaved_gltf()
    doc["meshes"][0]["extras"]["targetNames"] = ["a", "b"]
    (tmp_path / "a.gltf").write_text(json.dumps(doc))
    with pytest.raises(ModelFormatError, match="targetNames lists 2 names for 1"):
        read_glb(tmp_path / "a.gltf")
    doc = _interleaved_gltf()
    doc["meshes"][0]["primitives"][1] = dict(doc["meshes"][0]["primitives"][1], mode=1)
    (tmp_path / "b.gltf").write_text(json.dumps(doc))
    with pytest.raises(ModelFormatError, match=r"primitives\[1\] has mode 1"):
        read_glb(tmp_path / "b.gltf")
    with pytest.raises(ModelFormatError, match="not found|cannot read"):
        read_glb(tmp_path / "missing.glb")


def test_khronos_validator_reports_no_errors(tmp_path):
    paths = [write_glb(tmp_path / "full.glb", _mesh()),
             write_glb(tmp_path / "plain.glb", _mesh(0, texture=False)),
             write_glb(tmp_path / "no_normal_deltas.glb", _mesh(2, target_normals=False)),
             write_glb(tmp_path / "sparse.glb", _local_mesh())]
    reports = validate_glbs(paths, tmp_path)
    for rep in reports:
        assert rep["numErrors"] == 0, rep["messages"]
        assert rep["numWarnings"] == 0, rep["messages"]
    assert reports[0]["info"]["hasMorphTargets"] and reports[0]["info"]["hasTextures"]
