"""Importer for FLAME (2017/2020/2023 ``generic_model.pkl`` / ``flame2023.pkl``), without chumpy.

File layout
-----------
FLAME ships as a Python 2 pickle (protocol 2) of a dict; ``pickle.load(f, encoding="latin1")`` is
how MPI's and DECA's loaders read it. Fields used (shapes for FLAME 2020/2023)::

    v_template (5023, 3)       float64, metres, +Y up, face towards +Z
    shapedirs  (5023, 3, 400)  chumpy ``Ch``: 300 identity ("shape") then 100 expression dirs
    f          (9976, 3)       uint32 triangles, 0-based, counter-clockwise from outside
    posedirs, J_regressor (scipy sparse), weights, kintree_table, J, bs_style, bs_type
                               (skinning and pose correctives: read, not imported)

Some arrays are ``chumpy.ch.Ch`` objects. chumpy is not needed: a restricted unpickler maps every
``chumpy.*`` class to a stand-in that keeps the pickled state, and a ``Ch``'s state is its
``__dict__`` minus caches, the wrapped array under ``"x"`` (chumpy's ``Ch.__getstate__`` and
``compute_r``). Only numpy, scipy.sparse, a few builtins and (for landmark files) torch tensor
rebuilding are otherwise allowed: a pickle naming any other global is refused, so loading a model
file cannot run arbitrary code.

FLAME's identity and expression directions are already scaled for unit-variance coefficients
(MPI's samplers draw ``betas ~ N(0, I)``), so they are stored as given (metres per unit), with
``expression_kind="pca"``. FLAME's pose-dependent parts (jaw, neck and eye rotations, linear blend
skinning) are not part of a linear model and are dropped: jaw opening is therefore not among the
expression modes.

Landmarks (``landmarks=PATH``, required), any of:

* DECA's ``landmark_embedding.npy`` (pickled dict): ``full_lmk_faces_idx`` (1, 68) and
  ``full_lmk_bary_coords`` (1, 68, 3) are used; without them, the frontal entry of
  ``dynamic_lmk_faces_idx``/``dynamic_lmk_bary_coords`` (79, 17[, 3]) gives the jaw and
  ``static_lmk_faces_idx``/``static_lmk_bary_coords`` (51[, 3]) iBUG points 18-68.
* a dict or ``.npz`` with 68 ``lmk_face_idx`` and ``lmk_b_coords`` (e.g.
  ``flame_static_embedding_68.pkl``). A 51-point static embedding alone has no jaw and is refused.

Face ids index FLAME's ``f``; barycentric weights follow ``f``'s corner order.

Albedo (``albedo=PATH``, optional): MPI's ``FLAME_texture.npz`` texture space: ``mean`` (H, W, 3)
and ``tex_dir`` (H, W, 3, K) in 8-bit units and BGR channel order (written for OpenCV; DECA divides
by 255 and swaps to RGB), ``vt`` (T, 2) UVs with the origin bottom-left and ``ft`` (F, 3) UV
triangles. The texture is sampled bilinearly at each vertex's UVs (averaged over a vertex's UV
seam copies) into a per-vertex RGB model in [0, 1]; ``tex_dir`` is already unit-variance. ``vt``
and ``ft`` become the model's UV layout.
"""

from __future__ import annotations

import builtins
import codecs
import collections
import copyreg
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ModelFormatError
from ...photo.landmarks import NUM_LANDMARKS
from ..mesh import vertex_adjacency
from ..morphable_model import MorphableModel
from ._common import (
    file_record,
    orient_outward,
    positive_int,
    require_file,
)

__all__ = ["import_flame", "load_flame_pickle", "read_flame_landmarks", "ChumpyStandIn"]

_NUM_SHAPE = 300  # FLAME 2017/2020/2023: shapedirs[..., :300] identity, [..., 300:] expression
LICENCE = (
    "FLAME, Max Planck Institute for Intelligent Systems (flame.is.tue.mpg.de). Licensed by "
    "registration: FLAME 2017/2020/2023 under the FLAME model licence "
    "(flame.is.tue.mpg.de/modellicense, non-commercial scientific research; no redistribution); "
    "the 'FLAME 2023 Open' release under CC-BY-4.0. The licence of the copy you imported applies "
    "to this model and to landmark and texture files from MPI or DECA."
)


class ChumpyStandIn:
    """What a ``chumpy.*`` object unpickles to: its class name and pickled state, nothing else."""

    chumpy_class = "chumpy.ch.Ch"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__["_args"] = args

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):
            state = state[1]  # (dict_state, slot_state) form
        self.__dict__.update(state if isinstance(state, dict) else {"_state": state})

    def to_array(self) -> np.ndarray:
        """The wrapped array (a plain ``Ch``'s ``x``)."""
        x = self.__dict__.get("x")
        if x is None:
            raise TypeError(f"a {self.chumpy_class} expression, not a plain chumpy array")
        return np.asarray(x.to_array() if isinstance(x, ChumpyStandIn) else x)


_STAND_INS: dict[str, type] = {}
_BUILTINS = {"set", "frozenset", "object", "list", "dict", "tuple", "int", "float", "complex",
             "bytearray", "bytes", "str", "slice", "range", "bool"}
_SPARSE = {"csc_matrix", "csr_matrix", "coo_matrix", "lil_matrix", "dok_matrix", "dia_matrix",
           "bsr_matrix"}


def _multiarray() -> Any:
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray  # type: ignore[no-redef]
    return multiarray


def _torch_storage_from_bytes(data: bytes) -> Any:
    import torch

    return torch.load(io.BytesIO(data), weights_only=True)


class _SafeUnpickler(pickle.Unpickler):
    """Allows numpy/scipy.sparse/builtins/torch-tensor globals; maps chumpy to stand-ins."""

    def find_class(self, module: str, name: str) -> Any:
        if module.split(".")[0] == "chumpy":
            key = f"{module}.{name}"
            if key not in _STAND_INS:
                _STAND_INS[key] = type(name, (ChumpyStandIn,), {"chumpy_class": key})
            return _STAND_INS[key]
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name in (
                "_reconstruct", "scalar"):
            return getattr(_multiarray(), name)
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if module.startswith("scipy.sparse") and name in _SPARSE:
            import scipy.sparse

            return getattr(scipy.sparse, name)
        if module in ("copy_reg", "copyreg") and name == "_reconstructor":
            return copyreg._reconstructor
        if module in ("__builtin__", "builtins") and name in _BUILTINS:
            return getattr(builtins, name)
        if (module, name) == ("_codecs", "encode"):
            return codecs.encode
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            import torch._utils

            return getattr(torch._utils, name)
        if (module, name) == ("torch.storage", "_load_from_bytes"):
            return _torch_storage_from_bytes
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def _unpickle(stream: Any, path: Path, what: str) -> Any:
    try:
        return _SafeUnpickler(stream, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError,
            TypeError, ValueError, KeyError, RuntimeError) as e:
        raise ModelFormatError(f"{path} is not a readable {what} pickle: {e}") from None


def load_flame_pickle(path: str | Path) -> dict[str, Any]:
    """Unpickle a FLAME model file safely, without chumpy (chumpy objects -> stand-ins)."""
    p = require_file(path, "FLAME model file")
    with p.open("rb") as f:
        obj = _unpickle(f, p, "FLAME model")
    if not isinstance(obj, dict):
        raise ModelFormatError(f"{p} holds a {type(obj).__name__}, not FLAME's dict of arrays")
    return obj


def _array(data: dict[str, Any], key: str, path: Path) -> np.ndarray:
    if key not in data:
        raise ModelFormatError(
            f"{path} has no '{key}' (found: {sorted(map(str, data))}); is it a FLAME model?")
    obj = data[key]
    try:
        if isinstance(obj, ChumpyStandIn):
            return obj.to_array()
        if hasattr(obj, "toarray"):  # scipy.sparse
            return np.asarray(obj.toarray())
        if hasattr(obj, "detach"):  # torch tensor
            return obj.detach().cpu().numpy()
        arr = np.asarray(obj)
    except TypeError as e:
        raise ModelFormatError(
            f"{path}: '{key}' is {e}; re-save the file with plain arrays") from None
    if arr.dtype.kind not in "fiub":
        raise ModelFormatError(f"{path}: '{key}' is not numeric ({arr.dtype})")
    return arr


# --------------------------------------------------------------------------- landmarks
def _load_any(path: Path) -> Any:
    """A .npy (pickled dict allowed, read safely), .npz or .pkl landmark file."""
    suffix = path.suffix.lower()
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (ValueError, OSError) as e:
            raise ModelFormatError(f"{path} is not a readable .npz: {e}") from None
    if suffix == ".npy":
        with path.open("rb") as f:
            try:
                version = np.lib.format.read_magic(f)
                shape, _, dtype = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0(f))
            except ValueError as e:
                raise ModelFormatError(f"{path} is not a .npy file: {e}") from None
            if not dtype.hasobject:
                f.seek(0)
                return np.lib.format.read_array(f, allow_pickle=False)
            arr = _unpickle(f, path, "landmark embedding")
        return arr.item() if isinstance(arr, np.ndarray) and arr.shape == () else arr
    with path.open("rb") as f:
        return _unpickle(f, path, "landmark embedding")


def read_flame_landmarks(path: str | Path, num_faces: int) -> tuple[np.ndarray, np.ndarray, str]:
    """The 68 iBUG landmarks of a FLAME landmark embedding (see the module docstring).

    Returns:
        ``(faces, bary, layout)``: (68,) int32 indices into FLAME's ``f``, (68, 3) float32, and
        the name of the layout that was read.
    """
    p = require_file(path, "FLAME landmark embedding (landmarks=PATH)")
    data = _load_any(p)
    if not isinstance(data, dict):
        raise ModelFormatError(f"{p} holds a {type(data).__name__}, not a landmark embedding dict")

    def get(key: str) -> np.ndarray:
        return _array(data, key, p)

    if "full_lmk_faces_idx" in data and "full_lmk_bary_coords" in data:
        faces, bary, layout = get("full_lmk_faces_idx"), get("full_lmk_bary_coords"), "full_lmk"
    elif all(k in data for k in ("static_lmk_faces_idx", "static_lmk_bary_coords",
                                 "dynamic_lmk_faces_idx", "dynamic_lmk_bary_coords")):
        dyn_f, dyn_b = get("dynamic_lmk_faces_idx"), get("dynamic_lmk_bary_coords")
        if dyn_f.ndim != 2 or dyn_b.ndim != 3 or dyn_f.shape[1] != 17:
            raise ModelFormatError(
                f"{p}: dynamic_lmk_* must be (angles, 17[, 3]), got {dyn_f.shape}, {dyn_b.shape}")
        faces = np.concatenate([dyn_f[0], get("static_lmk_faces_idx").reshape(-1)])
        bary = np.concatenate([dyn_b[0], get("static_lmk_bary_coords").reshape(-1, 3)])
        layout = "dynamic[frontal]+static"
    elif "lmk_face_idx" in data and "lmk_b_coords" in data:
        faces, bary, layout = get("lmk_face_idx"), get("lmk_b_coords"), "lmk_face_idx"
    else:
        raise ModelFormatError(
            f"{p} has none of full_lmk_faces_idx/full_lmk_bary_coords, static_lmk_*+dynamic_lmk_*"
            f" or lmk_face_idx/lmk_b_coords (found: {sorted(map(str, data))})")
    faces = np.asarray(faces).reshape(-1)
    bary = np.asarray(bary, np.float64).reshape(-1, 3) if np.size(bary) % 3 == 0 else bary
    if faces.size != NUM_LANDMARKS or np.shape(bary) != (NUM_LANDMARKS, 3):
        extra = (" (a 51-point static embedding has no jaw: use DECA's landmark_embedding.npy)"
                 if faces.size == 51 else "")
        raise ModelFormatError(
            f"{p} ({layout}) defines {faces.size} landmarks with barycentrics "
            f"{np.shape(bary)}; 68 iBUG landmarks are needed{extra}")
    faces = faces.astype(np.int64)
    if faces.min() < 0 or faces.max() >= num_faces:
        raise ModelFormatError(
            f"{p}: landmark triangles must be in [0, {num_faces}) (FLAME's f), got "
            f"{faces.min()}..{faces.max()}: the embedding is for another mesh")
    if not np.all(np.isfinite(bary)) or np.abs(bary.sum(1) - 1).max() > 1e-3:
        raise ModelFormatError(f"{p}: landmark barycentric weights must each sum to 1")
    return faces.astype(np.int32), bary.astype(np.float32), layout


# --------------------------------------------------------------------------- albedo
def _bilinear(img: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Sample (H, W, ...) at UVs (N, 2), origin bottom-left, pixel centres at half-integers."""
    h, w = img.shape[:2]
    x = np.clip(uv[:, 0] * w - 0.5, 0, w - 1)
    y = np.clip((1.0 - uv[:, 1]) * h - 0.5, 0, h - 1)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    shape = (-1,) + (1,) * (img.ndim - 2)
    fx, fy = (x - x0).reshape(shape), (y - y0).reshape(shape)
    return ((img[y0, x0] * (1 - fx) + img[y0, x1] * fx) * (1 - fy)
            + (img[y1, x0] * (1 - fx) + img[y1, x1] * fx) * fy)


def _albedo(path: Path, faces: np.ndarray, v: int, limit: int | None):
    try:
        z = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise ModelFormatError(f"albedo {path} is not a readable .npz: {e}") from None
    with z:
        missing = [k for k in ("mean", "tex_dir", "vt", "ft") if k not in z.files]
        if missing:
            raise ModelFormatError(
                f"albedo {path} has no {missing} (found: {z.files}); expected MPI's "
                "FLAME_texture.npz (mean, tex_dir, vt, ft)")
        mean, tex_dir = np.asarray(z["mean"]), np.asarray(z["tex_dir"])
        vt, ft = np.asarray(z["vt"], np.float64), np.asarray(z["ft"], np.int64)
    if mean.ndim != 3 or mean.shape[2] != 3 or tex_dir.shape[:3] != mean.shape or \
            tex_dir.ndim != 4:
        raise ModelFormatError(
            f"albedo {path}: 'mean' must be (H, W, 3) and 'tex_dir' (H, W, 3, K), got "
            f"{mean.shape} and {tex_dir.shape}")
    if vt.ndim != 2 or vt.shape[1] != 2 or ft.shape != faces.shape:
        raise ModelFormatError(
            f"albedo {path}: 'vt' must be (T, 2) and 'ft' match FLAME's f {faces.shape}, got "
            f"{vt.shape} and {ft.shape}")
    if ft.min() < 0 or ft.max() >= len(vt):
        raise ModelFormatError(f"albedo {path}: 'ft' indexes UVs outside [0, {len(vt)})")
    k = tex_dir.shape[3] if limit is None else min(limit, tex_dir.shape[3])
    pairs = np.unique(np.stack([faces.reshape(-1), ft.reshape(-1)], 1), axis=0)
    count = np.bincount(pairs[:, 0], minlength=v).astype(np.float64)
    if np.any(count == 0):
        raise ModelFormatError(f"albedo {path}: some FLAME vertices have no UV")
    m = np.zeros((v, 3))
    np.add.at(m, pairs[:, 0], _bilinear(mean.astype(np.float64), vt[pairs[:, 1]]))
    b = np.zeros((v, 3, k))
    np.add.at(b, pairs[:, 0], _bilinear(tex_dir[..., :k], vt[pairs[:, 1]]))
    m = m / count[:, None] / 255.0
    b = b / count[:, None, None] / 255.0
    rgb = [2, 1, 0]  # stored BGR
    return (m[:, rgb].astype(np.float32), np.ascontiguousarray(
        b[:, rgb].transpose(2, 0, 1)).astype(np.float32), vt.astype(np.float32),
        ft.astype(np.int32))


def _eyeballs(tris: np.ndarray, verts: np.ndarray) -> dict[str, np.ndarray]:
    """FLAME's eyeballs are separate mesh components: subject's left is +X."""
    from scipy.sparse.csgraph import connected_components

    n, label = connected_components(vertex_adjacency(tris, len(verts)), directed=False)
    if n < 3:
        return {}
    sizes = np.bincount(label)
    small = [c for c in np.argsort(sizes)[:-1] if sizes[c] < 0.2 * len(verts)]
    if len(small) != 2:
        return {}
    out = {}
    for c in small:
        ids = np.flatnonzero(label == c)
        out["eye_left" if verts[ids, 0].mean() > 0 else "eye_right"] = ids
    return out if len(out) == 2 else {}


# --------------------------------------------------------------------------- importer
def import_flame(path: str | Path, *, landmarks: str | Path | None = None,
                 albedo: str | Path | None = None, max_identity: int | None = None,
                 max_expression: int | None = None,
                 max_albedo: int | None = None, progress: bool = False) -> MorphableModel:
    """Import FLAME as a :class:`MorphableModel` (layouts in the module docstring).

    Args:
        path: ``generic_model.pkl`` (FLAME 2020), ``flame2023.pkl`` or another FLAME pickle.
        landmarks: FLAME landmark embedding with 68 iBUG points (required), e.g. DECA's
            ``landmark_embedding.npy``.
        albedo: MPI's ``FLAME_texture.npz`` (optional): per-vertex albedo and the UV layout.
        max_identity, max_expression, max_albedo: keep at most this many modes.
        progress: accepted for the registry's uniform call; loading shows no progress bar.

    Returns:
        5,023 vertices in metres; 300 identity and 100 expression (PCA) modes as stored by FLAME
        (unit variance); regions ``face`` (all vertices) and ``eye_left``/``eye_right``.
    """
    p = require_file(path, "FLAME model file")
    lim_id = positive_int(max_identity, "max_identity")
    lim_ex = positive_int(max_expression, "max_expression")
    lim_al = positive_int(max_albedo, "max_albedo")
    if landmarks is None:
        raise ModelFormatError(
            f"{p}: FLAME has no 68-point landmarks of its own: pass landmarks=PATH, a FLAME "
            "landmark embedding such as DECA's landmark_embedding.npy")
    data = load_flame_pickle(p)
    vt = _array(data, "v_template", p).astype(np.float64)
    if vt.ndim != 2 or vt.shape[1] != 3:
        raise ModelFormatError(f"{p}: 'v_template' must be (V, 3), got {vt.shape}")
    v = len(vt)
    sd = _array(data, "shapedirs", p)
    if sd.ndim != 3 or sd.shape[:2] != (v, 3) or sd.shape[2] <= _NUM_SHAPE:
        raise ModelFormatError(
            f"{p}: 'shapedirs' must be ({v}, 3, K) with K > {_NUM_SHAPE} ({_NUM_SHAPE} identity "
            f"then expression directions), got {sd.shape}: mismatched with 'v_template'")
    faces = _array(data, "f", p).astype(np.int64)
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.min() < 0 or faces.max() >= v:
        raise ModelFormatError(f"{p}: 'f' must be (F, 3) vertex ids in [0, {v})")
    tris, flipped = orient_outward(vt, faces)
    lm_faces, lm_bary, layout = read_flame_landmarks(landmarks, len(faces))
    if flipped:  # keep the embedding's corner order consistent with the re-wound triangles
        lm_bary = lm_bary[:, [0, 2, 1]]
    ident = np.ascontiguousarray(sd[:, :, :_NUM_SHAPE].transpose(2, 0, 1), np.float32)
    expr = np.ascontiguousarray(sd[:, :, _NUM_SHAPE:].transpose(2, 0, 1), np.float32)
    ident = ident if lim_id is None else ident[:lim_id]
    expr = expr if lim_ex is None else expr[:lim_ex]
    files: dict[str, Any] = {"model": file_record(p),
                             "landmarks": file_record(require_file(landmarks, "landmarks"))}
    albedo_mean = albedo_basis = None
    uvs = np.zeros((0, 2), np.float32)
    uv_tris = np.zeros((0, 3), np.int32)
    if albedo is not None:
        apath = require_file(albedo, "FLAME texture space (albedo=PATH, FLAME_texture.npz)")
        albedo_mean, albedo_basis, uvs, uv_tris = _albedo(apath, faces, v, lim_al)
        if flipped:
            uv_tris = uv_tris[:, [0, 2, 1]]
        files["albedo"] = file_record(apath)
    regions = {"face": np.arange(v), **_eyeballs(tris, vt)}
    ignored = sorted(k for k in map(str, data) if k not in ("v_template", "shapedirs", "f"))
    return MorphableModel(
        name="flame",
        mean_shape=vt.astype(np.float32),
        identity_basis=ident,
        identity_names=tuple(f"shape{i:03d}" for i in range(len(ident))),
        expression_basis=expr,
        expression_names=tuple(f"expression{i:03d}" for i in range(len(expr))),
        triangles=tris,
        uvs=uvs,
        uv_triangles=uv_tris,
        landmark_faces=lm_faces,
        landmark_bary=lm_bary,
        regions=regions,
        albedo_mean=albedo_mean,
        albedo_basis=albedo_basis,
        albedo_names=(() if albedo_basis is None
                      else tuple(f"albedo{i:03d}" for i in range(len(albedo_basis)))),
        expression_kind="pca",
        provenance={
            "source": "FLAME",
            "importer": "facecraft.sdk.models.importers.flame.import_flame",
            "files": files,
            "options": {"max_identity": lim_id, "max_expression": lim_ex, "max_albedo": lim_al,
                        "albedo": albedo is not None},
            "units": {"source": "m", "to_metres": 1.0},
            "coefficients": f"shapedirs[..., :{_NUM_SHAPE}] identity and [..., {_NUM_SHAPE}:] "
                            "expression, already unit variance: stored as given",
            "not_imported": ignored,
            "landmarks": {"layout": layout, "indexing": "0-based iBUG-68, faces index f"},
            "albedo": (None if albedo is None else
                       "FLAME_texture.npz sampled per vertex, BGR->RGB, / 255"),
            "triangles_flipped": flipped,
            "origin": "source origin kept",
        },
        licence=LICENCE,
    )
