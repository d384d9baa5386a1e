"""A dependency-free glTF 2.0 binary (GLB) writer and reader for one morphable mesh.

What it writes (one scene, one node, one mesh, one triangle primitive)::

    POSITION (float32 VEC3, with min/max), NORMAL (float32 VEC3, unit), TEXCOORD_0 (float32
    VEC2), indices (uint16 or uint32), morph targets (POSITION deltas with min/max, optional
    NORMAL deltas), mesh.weights (the default morph weights), mesh.extras.targetNames (the
    convention Blender, three.js, Babylon.js and glTFast read target names from), and an
    embedded PNG base-colour texture with a pbrMetallicRoughness material.

Morph-target deltas are mostly zero (a nose slider moves the nose): each target's POSITION and
NORMAL accessor is written sparse (``accessor.sparse`` over implicit zeros, no ``bufferView``:
uint16/uint32 indices of the vertices whose delta is not exactly zero, then their float32
values) whenever that is smaller than the dense array. Lossless; glTF 2.0 readers must
support it (checked: the Khronos glTF Validator, Blender 3.4's importer, :func:`read_glb`).

Every bufferView starts on a 4-byte boundary and carries its ``target`` (ARRAY_BUFFER for vertex
attributes, ELEMENT_ARRAY_BUFFER for indices, none for the image); the JSON chunk is padded
with spaces and the BIN chunk with zeros to 4 bytes, as the specification asks.

Frames and units: glTF's are metres, right-handed, +Y up, the asset's front facing +Z. That is
FaceCraft's model frame (:mod:`facecraft.sdk.models.morphable_model`: +Y up, the face looking down
+Z, +X the subject's left), so positions are written unchanged. Texture coordinates: FaceCraft
uses OBJ's convention (origin bottom-left, ``v`` up); glTF's origin is the image's top-left, so
the file stores ``(u, 1 - v)`` and the reader converts back. Both directions use the same
image (row 0 = top).

The reader takes what the writer writes and the common subset of other exporters' files
(Blender, three.js, Maya's glTF plug-ins): several triangle primitives of one mesh are merged
into one vertex list; interleaved (``byteStride``), normalized-integer and sparse accessors are
decoded; the transform of the node that instances the mesh (and its parents) is applied to
positions, normals and morph deltas. ``.gltf`` files with embedded (``data:``) or
neighbouring buffers are read too.
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError, ModelFormatError

__all__ = ["GltfMesh", "glb_bytes", "write_glb", "read_glb"]

_MAGIC = 0x46546C67  # b"glTF"
_JSON = 0x4E4F534A  # b"JSON"
_BIN = 0x004E4942  # b"BIN\0"
_ARRAY_BUFFER = 34962
_ELEMENT_ARRAY_BUFFER = 34963
_FLOAT, _U8, _U16, _U32 = 5126, 5121, 5123, 5125
_COMPONENTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_DTYPES = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32,
           5126: np.float32}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True, eq=False)
class GltfMesh:
    """One triangle mesh with morph targets and an optional base-colour texture.

    Attributes:
        positions: (V, 3) float32, metres, glTF frame (+Y up, front +Z, right-handed).
        triangles: (F, 3) int64 vertex indices, counter-clockwise seen from outside.
        normals: (V, 3) float32 unit normals, or ``None`` (the writer then computes them).
        uvs: (V, 2) float32 texture coordinates, origin bottom-left (OBJ convention), or
            ``None`` (the writer then leaves out the texture too).
        targets: (T, V, 3) float32 morph-target POSITION deltas, metres (T may be 0).
        target_normals: (T, V, 3) float32 NORMAL deltas, or ``None``.
        target_names: T names (``mesh.extras.targetNames``).
        weights: (T,) float32 default morph weights (``mesh.weights``).
        texture_png: PNG bytes of the base-colour texture, or ``None``.
        name: the mesh's (and node's) name.
        base_color: RGBA base-colour factor of the material, each in [0, 1].
        metallic: metallic factor in [0, 1]. roughness: roughness factor in [0, 1].
        extras: JSON-able ``extras`` of the mesh, besides ``targetNames``.
        transform_applied: (reader only) whether a non-identity node transform was applied.
    """

    positions: np.ndarray
    triangles: np.ndarray
    normals: np.ndarray | None = None
    uvs: np.ndarray | None = None
    targets: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 3), np.float32))
    target_normals: np.ndarray | None = None
    target_names: tuple[str, ...] = ()
    weights: np.ndarray | None = None
    texture_png: bytes | None = None
    name: str = "mesh"
    base_color: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    metallic: float = 0.0
    roughness: float = 0.6
    extras: dict[str, Any] = field(default_factory=dict)
    transform_applied: bool = False

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        pos = np.ascontiguousarray(self.positions, np.float32)
        v = len(pos)
        if pos.ndim != 2 or pos.shape[1] != 3 or v == 0:
            raise InvalidInputError(f"expected positions (V>0, 3), got {pos.shape}")
        tri = np.ascontiguousarray(self.triangles, np.int64)
        if tri.ndim != 2 or tri.shape[1] != 3 or not len(tri):
            raise InvalidInputError(f"expected triangles (F>0, 3), got {tri.shape}")
        if tri.min() < 0 or tri.max() >= v:
            raise InvalidInputError(f"triangles index vertices outside [0, {v})")
        set_(self, "positions", pos)
        set_(self, "triangles", tri)
        for name, cols in (("normals", 3), ("uvs", 2)):
            a = getattr(self, name)
            if a is not None:
                a = np.ascontiguousarray(a, np.float32)
                if a.shape != (v, cols):
                    raise InvalidInputError(f"expected {name} ({v}, {cols}), got {a.shape}")
                set_(self, name, a)
        tg = np.asarray(self.targets, np.float32)
        if tg.size == 0:
            tg = np.zeros((0, v, 3), np.float32)
        if tg.ndim != 3 or tg.shape[1:] != (v, 3):
            raise InvalidInputError(f"expected targets (T, {v}, 3), got {tg.shape}")
        set_(self, "targets", np.ascontiguousarray(tg))
        t = len(tg)
        if self.target_normals is not None:
            tn = np.ascontiguousarray(self.target_normals, np.float32)
            if tn.shape != tg.shape:
                raise InvalidInputError(f"expected target_normals {tg.shape}, got {tn.shape}")
            set_(self, "target_normals", tn)
        names = tuple(str(n) for n in self.target_names) or tuple(f"target_{k}"
                                                                   for k in range(t))
        if len(names) != t:
            raise InvalidInputError(f"{len(names)} target_names for {t} targets")
        set_(self, "target_names", names)
        w = np.zeros(t, np.float32) if self.weights is None else np.asarray(self.weights,
                                                                              np.float32)
        if w.shape != (t,):
            raise InvalidInputError(f"expected weights ({t},), got {w.shape}")
        set_(self, "weights", w)
        for name in ("positions", "normals", "uvs", "targets", "target_normals", "weights"):
            a = getattr(self, name)
            if a is not None and not np.isfinite(a).all():
                raise InvalidInputError(f"{name} contains NaN or infinite values")
        if self.texture_png is not None:
            png = bytes(self.texture_png)
            if not png.startswith(_PNG_SIGNATURE):
                raise InvalidInputError("texture_png is not PNG data (bad signature)")
            set_(self, "texture_png", png)

    @property
    def num_vertices(self) -> int:
        return len(self.positions)

    @property
    def num_targets(self) -> int:
        return len(self.targets)


# --------------------------------------------------------------------------- writing
class _BinBuilder:
    """Accumulates 4-byte-aligned bufferViews and accessors."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.offset = 0
        self.views: list[dict[str, Any]] = []
        self.accessors: list[dict[str, Any]] = []

    def view(self, data: bytes, target: int | None) -> int:
        view: dict[str, Any] = {"buffer": 0, "byteOffset": self.offset, "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        self.views.append(view)
        pad = (-len(data)) % 4
        self.chunks.append(data + b"\0" * pad)
        self.offset += len(data) + pad
        return len(self.views) - 1

    def accessor(self, a: np.ndarray, kind: str, *, target: int | None = _ARRAY_BUFFER,
                 minmax: bool = False) -> int:
        comp = {np.dtype(np.float32): _FLOAT, np.dtype(np.uint16): _U16,
                np.dtype(np.uint32): _U32}[a.dtype]
        a = np.ascontiguousarray(a)
        acc: dict[str, Any] = {
            "bufferView": self.view(a.astype(a.dtype.newbyteorder("<")).tobytes(), target),
            "componentType": comp,
            "count": int(a.shape[0]),
            "type": kind,
        }
        if minmax:
            flat = a.reshape(len(a), -1)
            acc["min"] = [float(x) for x in flat.min(0)]
            acc["max"] = [float(x) for x in flat.max(0)]
        self.accessors.append(acc)
        return len(self.accessors) - 1

    def sparse_accessor(self, a: np.ndarray, kind: str) -> int:
        """A float32 (N, C) accessor stored sparse (glTF ``accessor.sparse`` over implicit
        zeros: no ``bufferView``) when that is smaller than dense storage, else dense; both
        carry min/max (of all N rows, the implicit zeros included)."""
        a = np.ascontiguousarray(a, np.float32)
        n, c = a.shape
        rows = np.flatnonzero((a != 0).any(axis=1))
        idx_type, idx_comp = (np.uint16, _U16) if n <= 65535 else (np.uint32, _U32)
        if len(rows) * (np.dtype(idx_type).itemsize + 4 * c) >= n * 4 * c:
            return self.accessor(a, kind, minmax=True)
        acc: dict[str, Any] = {"componentType": _FLOAT, "count": int(n), "type": kind,
                               "min": [float(x) for x in a.min(0)],
                               "max": [float(x) for x in a.max(0)]}
        if len(rows):  # none: every value is an implicit zero
            le = np.dtype(idx_type).newbyteorder("<")
            acc["sparse"] = {
                "count": int(len(rows)),
                "indices": {"bufferView": self.view(rows.astype(le).tobytes(), None),
                            "componentType": idx_comp},
                "values": {"bufferView": self.view(a[rows].astype("<f4").tobytes(), None)},
            }
        self.accessors.append(acc)
        return len(self.accessors) - 1

    def data(self) -> bytes:
        return b"".join(self.chunks)


def _unit_normals(mesh: GltfMesh) -> np.ndarray:
    from ..models.mesh import vertex_normals_np

    n = mesh.normals if mesh.normals is not None else vertex_normals_np(mesh.positions,
                                                                         mesh.triangles)
    n = np.asarray(n, np.float64)
    length = np.linalg.norm(n, axis=1, keepdims=True)
    n = np.where(length > 1e-12, n / np.maximum(length, 1e-12), [0.0, 0.0, 1.0])
    return n.astype(np.float32)


def glb_bytes(mesh: GltfMesh, *, generator: str = "FaceCraft", sparse: bool = True) -> bytes:
    """Serialize a :class:`GltfMesh` as a GLB 2.0 file's bytes (see the module docstring).

    Args:
        mesh: the mesh; normals are computed (area-weighted) when ``mesh.normals`` is None.
        generator: ``asset.generator``.
        sparse: store each morph target's POSITION / NORMAL deltas as a sparse accessor
            (indices and values of the vertices whose delta is not exactly zero) when that is
            smaller than dense storage; lossless. False: always dense.

    Returns:
        The GLB bytes.
    """
    if not isinstance(mesh, GltfMesh):
        raise InvalidInputError(f"expected a GltfMesh, got {type(mesh).__name__}")
    b = _BinBuilder()
    attrs = {"POSITION": b.accessor(mesh.positions, "VEC3", minmax=True),
             "NORMAL": b.accessor(_unit_normals(mesh), "VEC3")}
    if mesh.uvs is not None:
        gl_uv = np.stack([mesh.uvs[:, 0], 1.0 - mesh.uvs[:, 1]], 1).astype(np.float32)
        attrs["TEXCOORD_0"] = b.accessor(gl_uv, "VEC2")
    idx_type = np.uint16 if mesh.num_vertices <= 65535 else np.uint32
    indices = b.accessor(mesh.triangles.reshape(-1).astype(idx_type), "SCALAR",
                         target=_ELEMENT_ARRAY_BUFFER)
    primitive: dict[str, Any] = {"attributes": attrs, "indices": indices, "mode": 4}
    if mesh.num_targets:
        targets = []
        for k in range(mesh.num_targets):
            tgt = {"POSITION": (b.sparse_accessor(mesh.targets[k], "VEC3") if sparse
                                else b.accessor(mesh.targets[k], "VEC3", minmax=True))}
            if mesh.target_normals is not None:
                tgt["NORMAL"] = (b.sparse_accessor(mesh.target_normals[k], "VEC3") if sparse
                                 else b.accessor(mesh.target_normals[k], "VEC3"))
            targets.append(tgt)
        primitive["targets"] = targets
    gltf: dict[str, Any] = {
        "asset": {"version": "2.0", "generator": generator},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"name": mesh.name, "mesh": 0}],
    }
    gmesh: dict[str, Any] = {"name": mesh.name, "primitives": [primitive]}
    extras = dict(mesh.extras)
    if mesh.num_targets:
        gmesh["weights"] = [float(w) for w in mesh.weights]
        extras["targetNames"] = list(mesh.target_names)
    if extras:
        gmesh["extras"] = extras
    material: dict[str, Any] = {
        "name": f"{mesh.name}_material",
        "pbrMetallicRoughness": {"baseColorFactor": [float(c) for c in mesh.base_color],
                                 "metallicFactor": float(mesh.metallic),
                                 "roughnessFactor": float(mesh.roughness)},
    }
    if mesh.texture_png is not None and mesh.uvs is not None:
        image_view = b.view(mesh.texture_png, None)
        gltf["images"] = [{"name": f"{mesh.name}_basecolor", "mimeType": "image/png",
                           "bufferView": image_view}]
        gltf["samplers"] = [{"magFilter": 9729, "minFilter": 9987, "wrapS": 33071,
                             "wrapT": 33071}]
        gltf["textures"] = [{"sampler": 0, "source": 0}]
        material["pbrMetallicRoughness"]["baseColorTexture"] = {"index": 0, "texCoord": 0}
    gltf["materials"] = [material]
    primitive["material"] = 0
    gltf["meshes"] = [gmesh]
    gltf["accessors"] = b.accessors
    gltf["bufferViews"] = b.views
    binary = b.data()
    gltf["buffers"] = [{"byteLength": len(binary)}]
    js = json.dumps(gltf, separators=(",", ":"), allow_nan=False).encode("utf-8")
    js += b" " * ((-len(js)) % 4)
    total = 12 + 8 + len(js) + 8 + len(binary)
    return b"".join([
        struct.pack("<III", _MAGIC, 2, total),
        struct.pack("<II", len(js), _JSON), js,
        struct.pack("<II", len(binary), _BIN), binary,
    ])


def write_glb(path: str | Path, mesh: GltfMesh, *, generator: str = "FaceCraft",
              sparse: bool = True) -> Path:
    """Write :func:`glb_bytes` to ``path`` atomically; returns the path."""
    from ..render.mesh_io import _atomic_write

    path = Path(path)
    _atomic_write(path, glb_bytes(mesh, generator=generator, sparse=sparse))
    return path


# --------------------------------------------------------------------------- reading
class _Doc:
    """A parsed glTF document with its buffers, decoding accessors on request."""

    def __init__(self, gltf: dict[str, Any], buffers: list[bytes], source: str) -> None:
        self.gltf = gltf
        self.buffers = buffers
        self.source = source

    def fail(self, what: str) -> ModelFormatError:
        return ModelFormatError(f"{self.source}: {what}")

    def item(self, kind: str, index: Any) -> dict[str, Any]:
        items = self.gltf.get(kind) or []
        if not isinstance(index, int) or not 0 <= index < len(items):
            raise self.fail(f"{kind}[{index}] does not exist")
        return items[index]

    def view_bytes(self, index: int) -> tuple[bytes, int | None]:
        view = self.item("bufferViews", index)
        buf = view.get("buffer", 0)
        if not 0 <= buf < len(self.buffers):
            raise self.fail(f"bufferViews[{index}] names buffer {buf}, which is missing")
        start = int(view.get("byteOffset", 0))
        length = int(view["byteLength"])
        data = self.buffers[buf]
        if start + length > len(data):
            raise self.fail(f"bufferViews[{index}] runs past the end of buffer {buf}")
        return data[start:start + length], view.get("byteStride")

    def _read(self, view: int | None, offset: int, count: int, comp: int, ncomp: int,
              stride: int | None = None) -> np.ndarray:
        dtype = np.dtype(_DTYPES[comp]).newbyteorder("<")
        if view is None:
            return np.zeros((count, ncomp), dtype)
        data, view_stride = self.view_bytes(view)
        stride = stride or view_stride or dtype.itemsize * ncomp
        if count == 0:
            return np.zeros((0, ncomp), dtype)
        need = offset + stride * (count - 1) + dtype.itemsize * ncomp
        if need > len(data):
            raise self.fail(f"an accessor on bufferViews[{view}] runs past its end")
        if stride == dtype.itemsize * ncomp:
            return np.frombuffer(data, dtype, count * ncomp, offset).reshape(count, ncomp)
        raw = np.frombuffer(data, np.uint8, need - offset, offset)
        rows = np.lib.stride_tricks.as_strided(raw, (count, dtype.itemsize * ncomp),
                                               (stride, 1))
        return np.ascontiguousarray(rows).view(dtype).reshape(count, ncomp)

    def accessor(self, index: int) -> np.ndarray:
        """Decode accessor ``index`` to float64 (normalized ints scaled) or int64, (N, C)."""
        acc = self.item("accessors", index)
        try:
            comp = int(acc["componentType"])
            ncomp = _COMPONENTS[acc["type"]]
            count = int(acc["count"])
        except (KeyError, TypeError, ValueError):
            raise self.fail(f"accessors[{index}] lacks componentType, type or count") from None
        if comp not in _DTYPES:
            raise self.fail(f"accessors[{index}] has unknown componentType {comp}")
        a = self._read(acc.get("bufferView"), int(acc.get("byteOffset", 0)), count, comp,
                       ncomp).copy()
        sparse = acc.get("sparse")
        if sparse:
            n = int(sparse["count"])
            ind, val = sparse["indices"], sparse["values"]
            ids = self._read(ind["bufferView"], int(ind.get("byteOffset", 0)), n,
                             int(ind["componentType"]), 1)[:, 0].astype(np.int64)
            vals = self._read(val["bufferView"], int(val.get("byteOffset", 0)), n, comp, ncomp)
            if n and (ids.min() < 0 or ids.max() >= count):
                raise self.fail(f"accessors[{index}].sparse indexes outside [0, {count})")
            a[ids] = vals
        if comp == _FLOAT:
            return a.astype(np.float64)
        if acc.get("normalized"):
            info = np.iinfo(_DTYPES[comp])
            return np.maximum(a.astype(np.float64) / info.max, -1.0)
        return a.astype(np.int64)


def _load_document(source: str | Path | bytes) -> _Doc:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name, folder = bytes(source), "<bytes>", None
    else:
        path = Path(source)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ModelFormatError(f"cannot read {path}: {e.strerror or e}") from None
        name, folder = str(path), path.parent
    if data[:4] == b"glTF":
        if len(data) < 20:
            raise ModelFormatError(f"{name}: truncated GLB header")
        _, version, total = struct.unpack_from("<III", data, 0)
        if version != 2:
            raise ModelFormatError(f"{name}: GLB version {version}, expected 2")
        if total > len(data):
            raise ModelFormatError(f"{name}: GLB says {total} bytes, the file has {len(data)}")
        pos, js, binary = 12, None, None
        while pos + 8 <= total:
            length, kind = struct.unpack_from("<II", data, pos)
            chunk = data[pos + 8:pos + 8 + length]
            if len(chunk) != length:
                raise ModelFormatError(f"{name}: truncated GLB chunk")
            if kind == _JSON and js is None:
                js = chunk
            elif kind == _BIN and binary is None:
                binary = chunk
            pos += 8 + length
        if js is None:
            raise ModelFormatError(f"{name}: GLB without a JSON chunk")
    else:
        js, binary = data, None
    try:
        gltf = json.loads(js.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFormatError(f"{name}: not a glTF file ({e})") from None
    if not isinstance(gltf, dict) or str(gltf.get("asset", {}).get("version", "")) < "2":
        raise ModelFormatError(f"{name}: not a glTF 2.0 document (asset.version)")
    buffers = []
    for i, buf in enumerate(gltf.get("buffers") or []):
        uri = buf.get("uri")
        if uri is None:
            if binary is None:
                raise ModelFormatError(f"{name}: buffers[{i}] has no uri and there is no BIN")
            buffers.append(binary)
        elif uri.startswith("data:"):
            buffers.append(base64.b64decode(uri.split(",", 1)[1]))
        elif folder is not None and (folder / uri).is_file():
            buffers.append((folder / uri).read_bytes())
        else:
            raise ModelFormatError(f"{name}: buffers[{i}].uri {uri!r} cannot be read")
    return _Doc(gltf, buffers, name)


def _node_matrix(node: dict[str, Any]) -> np.ndarray:
    if "matrix" in node:
        return np.asarray(node["matrix"], np.float64).reshape(4, 4).T  # column-major
    t = np.asarray(node.get("translation", [0, 0, 0]), np.float64)
    x, y, z, w = np.asarray(node.get("rotation", [0, 0, 0, 1]), np.float64)
    s = np.asarray(node.get("scale", [1, 1, 1]), np.float64)
    rot = np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])
    m = np.eye(4)
    m[:3, :3] = rot * s
    m[:3, 3] = t
    return m


def _mesh_world_matrix(gltf: dict[str, Any], mesh_index: int) -> np.ndarray:
    nodes = gltf.get("nodes") or []
    parent = {c: i for i, n in enumerate(nodes) for c in n.get("children", [])}
    for i, node in enumerate(nodes):
        if node.get("mesh") == mesh_index:
            m, j = _node_matrix(node), parent.get(i)
            while j is not None:
                m = _node_matrix(nodes[j]) @ m
                j = parent.get(j)
            return m
    return np.eye(4)


def _texture_png(doc: _Doc, material_index: Any) -> bytes | None:
    if material_index is None:
        return None
    mat = doc.item("materials", material_index)
    tex = (mat.get("pbrMetallicRoughness") or {}).get("baseColorTexture")
    if not tex:
        return None
    source = doc.item("textures", tex["index"]).get("source")
    if source is None:
        return None
    image = doc.item("images", source)
    if "bufferView" in image:
        return doc.view_bytes(image["bufferView"])[0]
    uri = image.get("uri", "")
    if uri.startswith("data:"):
        return base64.b64decode(uri.split(",", 1)[1])
    folder = Path(doc.source).parent if doc.source != "<bytes>" else None
    if folder is not None and (folder / uri).is_file():
        return (folder / uri).read_bytes()
    return None


def read_glb(source: str | Path | bytes, *, mesh: int = 0) -> GltfMesh:
    """Read one mesh of a GLB (or ``.gltf``) file.

    Args:
        source: a path, or the file's bytes.
        mesh: which mesh (``meshes[mesh]``); its triangle primitives are merged.

    Returns:
        :class:`GltfMesh` with positions, triangles, normals (or None), UVs in OBJ convention
        (or None), morph targets and their names (``mesh.extras.targetNames``, else
        ``primitives[0].extras.targetNames``, else ``target_0``...), default weights
        (``mesh.weights``, else zeros), the base-colour texture's bytes (PNG or whatever the
        image holds; checked to be PNG only by :class:`GltfMesh` when it is) and material
        factors.

    Raises:
        ModelFormatError: not a readable glTF 2.0 file, no such mesh, non-triangle primitives,
            or primitives whose morph-target counts differ.
    """
    doc = _load_document(source)
    gmesh = doc.item("meshes", mesh)
    prims = gmesh.get("primitives") or []
    if not prims:
        raise doc.fail(f"meshes[{mesh}] has no primitives")
    positions, normals, uvs, tris, targets, tnormals = [], [], [], [], [], []
    n_targets = len(prims[0].get("targets") or [])
    offset = 0
    for p, prim in enumerate(prims):
        where = f"meshes[{mesh}].primitives[{p}]"
        if prim.get("mode", 4) != 4:
            raise doc.fail(f"{where} has mode {prim.get('mode')}; only triangles (4) are read")
        attrs = prim.get("attributes") or {}
        if "POSITION" not in attrs:
            raise doc.fail(f"{where} has no POSITION")
        pos = doc.accessor(attrs["POSITION"])
        v = len(pos)
        positions.append(pos)
        normals.append(doc.accessor(attrs["NORMAL"]) if "NORMAL" in attrs else None)
        uvs.append(doc.accessor(attrs["TEXCOORD_0"]) if "TEXCOORD_0" in attrs else None)
        idx = (doc.accessor(prim["indices"])[:, 0] if "indices" in prim
               else np.arange(v, dtype=np.int64))
        if len(idx) % 3:
            raise doc.fail(f"{where}: {len(idx)} indices is not a multiple of 3")
        if len(idx) and (idx.min() < 0 or idx.max() >= v):
            raise doc.fail(f"{where}: indices outside [0, {v})")
        tris.append(idx.reshape(-1, 3) + offset)
        prim_targets = prim.get("targets") or []
        if len(prim_targets) != n_targets:
            raise doc.fail(f"{where} has {len(prim_targets)} morph targets, primitives[0] has "
                           f"{n_targets}")
        targets.append([doc.accessor(t["POSITION"]) if "POSITION" in t else np.zeros((v, 3))
                        for t in prim_targets])
        tnormals.append([doc.accessor(t["NORMAL"]) if "NORMAL" in t else None
                         for t in prim_targets])
        offset += v
    pos = np.concatenate(positions)
    tgt = (np.stack([np.concatenate([t[k] for t in targets]) for k in range(n_targets)])
           if n_targets else np.zeros((0, len(pos), 3)))
    nrm = None
    if all(n is not None for n in normals):
        nrm = np.concatenate(normals)
    uv = None
    if any(u is not None for u in uvs):
        uv = np.concatenate([u if u is not None else np.zeros((len(p), 2))
                             for u, p in zip(uvs, positions, strict=True)])
        uv = np.stack([uv[:, 0], 1.0 - uv[:, 1]], 1)
    tn = None
    if n_targets and all(x is not None for t in tnormals for x in t):
        tn = np.stack([np.concatenate([t[k] for t in tnormals]) for k in range(n_targets)])
    world = _mesh_world_matrix(doc.gltf, mesh)
    applied = not np.allclose(world, np.eye(4))
    if applied:
        lin = world[:3, :3]
        pos = pos @ lin.T + world[:3, 3]
        tgt = tgt @ lin.T
        normal_mat = np.linalg.inv(lin).T
        if nrm is not None:
            nrm = nrm @ normal_mat.T
            nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
        if tn is not None:
            tn = tn @ normal_mat.T
        if np.linalg.det(lin) < 0:  # a mirroring transform flips the winding
            tris = [t[:, ::-1] for t in tris]
    extras = dict(gmesh.get("extras") or {})
    names = extras.pop("targetNames", None) or (prims[0].get("extras") or {}).get("targetNames")
    if names is not None and len(names) != n_targets:
        raise doc.fail(f"meshes[{mesh}].extras.targetNames lists {len(names)} names for "
                       f"{n_targets} morph targets")
    weights = gmesh.get("weights")
    if weights is not None and len(weights) != n_targets:
        raise doc.fail(f"meshes[{mesh}].weights has {len(weights)} entries for {n_targets} "
                       "morph targets")
    mat = doc.item("materials", prims[0]["material"]) if "material" in prims[0] else {}
    pbr = mat.get("pbrMetallicRoughness") or {}
    png = _texture_png(doc, prims[0].get("material"))
    if png is not None and not png.startswith(_PNG_SIGNATURE):
        png = None  # JPEG or other textures are not carried
    return GltfMesh(
        positions=pos,
        triangles=np.concatenate(tris),
        normals=nrm,
        uvs=uv,
        targets=tgt,
        target_normals=tn,
        target_names=tuple(names) if names is not None else (),
        weights=None if weights is None else np.asarray(weights, np.float32),
        texture_png=png,
        name=str(gmesh.get("name") or "mesh"),
        base_color=tuple(float(c) for c in pbr.get("baseColorFactor", (1, 1, 1, 1))),
        metallic=float(pbr.get("metallicFactor", 1.0)),
        roughness=float(pbr.get("roughnessFactor", 1.0)),
        extras=extras,
        transform_applied=applied,
    )
