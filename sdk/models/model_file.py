"""The compiled FaceCraft model file (``.fcm``): one file holding a whole morphable model.

Schema, version 1
-----------------
A ``.fcm`` file is a `safetensors <https://github.com/huggingface/safetensors>`_ file (an 8-byte
header length, a JSON header, then raw little-endian arrays), so any safetensors reader can
open it and loading is a memory map plus a copy. Its header metadata (strings) holds:

====================  ===================================================================
key                   value
====================  ===================================================================
``format``            ``"facecraft.morphable_model"``
``schema_version``    ``"1"``
``content_sha256``    SHA-256 (hex) of the content: see :func:`content_hash`
``meta``              JSON: ``name``, ``identity_names``, ``expression_names``,
                      ``albedo_names``, ``expression_kind``, ``region_names``,
                      ``provenance``, ``licence``, ``graph`` (the graph's own meta or null),
                      ``units`` (``"metres"``), ``frame`` (axis convention)
====================  ===================================================================

Arrays (float32 unless noted; V vertices, F triangles, U UVs):

=========================  ===============  ==============================================
name                       shape            meaning
=========================  ===============  ==============================================
``shape/mean``             (V, 3)           mean shape, metres
``shape/identity``         (Ki, V, 3)       identity basis, metres per unit coefficient
``shape/expression``       (Ke, V, 3)       expression basis
``topology/triangles``     (F, 3) int32     CCW seen from outside
``topology/uvs``           (U, 2)           texture coordinates (may be (0, 2))
``topology/uv_triangles``  (F, 3) int32     UV index per corner (may be (0, 3))
``landmarks/faces``        (68,) int32      triangle of each iBUG-68 landmark
``landmarks/bary``         (68, 3)          barycentric coordinates in that triangle
``regions/<name>``         (n,) int32       vertex ids of each region
``albedo/mean``            (V, 3)           optional, linear RGB in [0, 1]
``albedo/basis``           (Ka, V, 3)       optional
``graph/...``              (various)        optional mesh graph, see ``mesh_graph``
=========================  ===============  ==============================================

A file of another ``format`` or a newer ``schema_version`` is refused with a clear error;
older schema versions will be migrated by named functions here, never silently.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelFileError
from .morphable_model import MorphableModel
from .tensor_file import open_tensor_file, write_tensor_file

__all__ = [
    "FORMAT",
    "SCHEMA_VERSION",
    "ModelFileInfo",
    "save_model",
    "load_model",
    "read_model_info",
    "content_hash",
    "model_hash",
]

FORMAT = "facecraft.morphable_model"
SCHEMA_VERSION = 1
_SAFETENSORS_DTYPES = {"F32": "float32", "F64": "float64", "F16": "float16", "I32": "int32",
                       "I64": "int64", "U8": "uint8", "I8": "int8", "BOOL": "bool"}
_FRAME = "right-handed, +Y up, face looking down +Z, +X on the subject's left"


@dataclass(frozen=True)
class ModelFileInfo:
    """What a ``.fcm`` header says, read without loading the arrays.

    Attributes:
        path: the file.
        schema_version: the file's schema version.
        content_sha256: the hash stored in the header.
        meta: the decoded ``meta`` JSON.
        arrays: name -> (dtype, shape) of every stored array.
        size_bytes: file size.
    """

    path: Path
    schema_version: int
    content_sha256: str
    meta: dict[str, Any]
    arrays: dict[str, tuple[str, tuple[int, ...]]]
    size_bytes: int


def content_hash(tensors: dict[str, np.ndarray], meta_json: str) -> str:
    """SHA-256 over the meta JSON and every array (name, dtype, shape, bytes) in name order.

    Independent of the file layout, so two files with equal content have equal hashes.
    """
    h = hashlib.sha256()
    h.update(meta_json.encode())
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        h.update(f"\0{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _to_tensors(model: MorphableModel) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    t: dict[str, np.ndarray] = {
        "shape/mean": model.mean_shape,
        "shape/identity": model.identity_basis,
        "shape/expression": model.expression_basis,
        "topology/triangles": model.triangles,
        "topology/uvs": model.uvs,
        "topology/uv_triangles": model.uv_triangles,
        "landmarks/faces": model.landmark_faces,
        "landmarks/bary": model.landmark_bary,
    }
    for name, ids in model.regions.items():
        t[f"regions/{name}"] = ids
    if model.albedo_mean is not None:
        t["albedo/mean"] = model.albedo_mean
        t["albedo/basis"] = (model.albedo_basis if model.albedo_basis is not None
                             else np.zeros((0, model.num_vertices, 3), np.float32))
    graph_meta = None
    if model.graph is not None:
        from .mesh_graph import graph_to_tensors

        g_tensors, graph_meta = graph_to_tensors(model.graph)
        t.update(g_tensors)
    meta = {
        "name": model.name,
        "identity_names": list(model.identity_names),
        "expression_names": list(model.expression_names),
        "albedo_names": list(model.albedo_names),
        "expression_kind": model.expression_kind,
        "region_names": sorted(model.regions),
        "provenance": model.provenance,
        "licence": model.licence,
        "graph": graph_meta,
        "units": "metres",
        "frame": _FRAME,
    }
    return {k: np.ascontiguousarray(v) for k, v in t.items()}, meta


def model_hash(model: MorphableModel) -> str:
    """The content hash (SHA-256 hex) :func:`save_model` would store for ``model``: identifies a
    face model in checkpoints and packages without writing it."""
    tensors, meta = _to_tensors(model)
    return content_hash(tensors, json.dumps(meta, sort_keys=True))


def save_model(model: MorphableModel, path: str | Path) -> str:
    """Write ``model`` to ``path`` atomically (a temporary file, then a rename).

    Returns:
        The content hash (SHA-256 hex) stored in the file.
    """
    path = Path(path)
    tensors, meta = _to_tensors(model)
    meta_json = json.dumps(meta, sort_keys=True)
    digest = content_hash(tensors, meta_json)
    header = {
        "format": FORMAT,
        "schema_version": str(SCHEMA_VERSION),
        "content_sha256": digest,
        "meta": meta_json,
    }
    write_tensor_file(tensors, path, header)
    return digest


def _open_header(path: Path) -> tuple[dict[str, str], Any]:
    return open_tensor_file(path, fmt=FORMAT, schema_version=SCHEMA_VERSION,
                            what="FaceCraft model file")


def read_model_info(path: str | Path) -> ModelFileInfo:
    """Read a ``.fcm`` file's header (names, shapes, provenance) without loading arrays."""
    path = Path(path)
    header, handle = _open_header(path)
    arrays = {}
    for name in handle.keys():
        sl = handle.get_slice(name)
        dtype = str(sl.get_dtype())
        arrays[name] = (_SAFETENSORS_DTYPES.get(dtype, dtype), tuple(sl.get_shape()))
    return ModelFileInfo(
        path=path,
        schema_version=int(header["schema_version"]),
        content_sha256=header.get("content_sha256", ""),
        meta=json.loads(header.get("meta", "{}")),
        arrays=arrays,
        size_bytes=path.stat().st_size,
    )


def load_model(path: str | Path, *, verify: bool = True) -> MorphableModel:
    """Load a ``.fcm`` file.

    Args:
        path: the file.
        verify: recompute the content hash and refuse a file whose content does not match
            (a corrupt or hand-edited file). Costs ~0.1 s at ICT size.

    Raises:
        ModelFileError: not a model file, a newer schema, missing arrays, or a hash mismatch.
    """
    path = Path(path)
    header, handle = _open_header(path)
    tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    meta_json = header.get("meta", "")
    if verify and content_hash(tensors, meta_json) != header.get("content_sha256"):
        raise ModelFileError(f"{path}: content hash mismatch: the file is corrupt or was "
                             "modified after it was written")
    try:
        meta = json.loads(meta_json)
        graph = None
        if meta.get("graph") is not None:
            from .mesh_graph import graph_from_tensors

            graph = graph_from_tensors(
                {k: v for k, v in tensors.items() if k.startswith("graph/")}, meta["graph"])
        has_albedo = "albedo/mean" in tensors
        return MorphableModel(
            name=meta["name"],
            mean_shape=tensors["shape/mean"],
            identity_basis=tensors["shape/identity"],
            identity_names=tuple(meta["identity_names"]),
            expression_basis=tensors["shape/expression"],
            expression_names=tuple(meta["expression_names"]),
            triangles=tensors["topology/triangles"],
            uvs=tensors["topology/uvs"],
            uv_triangles=tensors["topology/uv_triangles"],
            landmark_faces=tensors["landmarks/faces"],
            landmark_bary=tensors["landmarks/bary"],
            regions={n: tensors[f"regions/{n}"] for n in meta["region_names"]},
            albedo_mean=tensors["albedo/mean"] if has_albedo else None,
            albedo_basis=tensors["albedo/basis"] if has_albedo else None,
            albedo_names=tuple(meta["albedo_names"]),
            expression_kind=meta["expression_kind"],
            provenance=meta["provenance"],
            licence=meta["licence"],
            graph=graph,
        )
    except KeyError as e:
        raise ModelFileError(f"{path}: missing {e} (a damaged or foreign file)") from None
