"""Importers for the Basel Face Model: BFM 2009, Deep3DFaceRecon's cropped BFM, BFM 2017/2019.

Layouts and units (what each importer reads)
--------------------------------------------
**BFM 2009** (``01_MorphableModel.mat``, MATLAB v5; v7.3/HDF5 copies are read too), V = 53,490::

    shapeMU (3V, 1)  mean shape, xyz interleaved per vertex, micrometres
    shapePC (3V, K)  orthonormal principal components (K = 199)
    shapeEV (K, 1)   their *standard deviations* (not variances, despite the name)
    texMU (3V, 1), texPC (3V, K), texEV (K, 1)   colour, RGB in [0, 255], same conventions
    tl (F, 3)        triangles, 1-based, wound clockwise seen from outside

Sources: the BFM 2009 Matlab code (``coef2object``: ``mu + pc * (coef .* ev)``; ``object2coef``
calls EV "their standard deviation"), eos's ``convert-bfm2009-to-eos.py`` (squares EV into
variances; swaps triangle corners because BFM's winding is the wrong way round; divides colour by
255), Deep3DFaceRecon's ``util/load_mats.py`` (``idBase = shapePC * shapeEV / 1e5``, "unify the
scale to decimeter", i.e. the source is in micrometres), and the BFM maintainers (issue
unibas-gravis/basel-face-model-viewer#20: "BFM 2009 micrometer, BFM 2017 and 2019 millimeter").

Optional expression basis of Guo et al. (github.com/Juyong/3DFace), used by Deep3DFaceRecon and
3DDFA, as ``Exp_Pca.bin``: int32 K (= 79), float32 mean (3n), float32 PCs (K x 3n, one mode per
row, xyz interleaved), on n = 53,215 of the BFM vertices; ``std_exp.txt`` holds the K standard
deviations (Deep3DFaceRecon: ``exBase = expPC * expEV``) and ``BFM_exp_idx.mat`` the 1-based
BFM vertex of each (``trimIndex``). Units are the BFM's micrometres. The stored expression mean
is *not* added to the mean shape (Deep3DFaceRecon drops it too; 3DDFA adds it). Vertices outside
``trimIndex`` (ears, neck) get zero expression deltas.

**BFM front** (Deep3DFaceRecon's ``BFM_model_front.mat``, 35,709 vertices cropped from the BFM)::

    meanshape (1, 3V)    decimetres (BFM / 1e5), not centred (Deep3DFaceRecon centres at load)
    idBase (3V, 80)      shapePC * shapeEV / 1e5: already scaled for unit-variance coefficients
    exBase (3V, 64)      expPC * std / 1e5: likewise
    meantex (1, 3V)      RGB in [0, 255];  texBase (3V, 80) texPC * texEV, same range
    tri (F, 3)           1-based triangles
    keypoints (1, 68)    1-based vertex ids of the 68 iBUG landmarks
    skinmask (1, V)      1 on the skin used by the reflectance loss -> region "skin"
    frontmask2_idx (N, 1) 1-based vertices of the photometric-loss region -> region "photometric"
    point_buf, tri_mask2 (not needed)

**BFM 2017 / 2019** (statismo HDF5: ``model2017-1_bfm_nomouth.h5``, ``model2019_fullHead.h5``)::

    shape/model/mean (3V,), pcaBasis (3V, K) orthonormal, pcaVariance (K,) variances
    shape/representer/cells (3, F) 0-based triangles
    color/model/{mean, pcaBasis, pcaVariance}       RGB in [0, 1]      (optional)
    expression/model/{mean, pcaBasis, pcaVariance}  deformations       (optional)

in millimetres. A face is ``mean + basis * sqrt(variance) * c`` for shape and expression, summed
(the expression mean is a deformation added to the shape mean), as in eos's
``convert-bfm2017-to-eos.py`` and MPI's ``BFM_to_FLAME``.

Conventions of the result: metres, unit-variance coefficients (bases times the standard deviation),
albedo RGB in [0, 1] as stored (BFM colours are not converted from sRGB: the model is linear in
the stored values), triangles counter-clockwise seen from outside (checked on the mean shape and
re-wound when needed; ``provenance["triangles_flipped"]``), the source's origin and axes (+Y up,
face towards +Z). Landmarks: BFM front has its own ``keypoints``; the others need an eos iBUG
mapping (``landmarks=PATH``), completed to 68 as :mod:`facecraft.sdk.models.importers._landmarks`
documents.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InvalidInputError, ModelFormatError
from ..morphable_model import MorphableModel, landmarks_from_vertices
from ._common import (
    basis_from_columns,
    check_extent,
    file_record,
    orient_outward,
    positive_int,
    require_file,
    unit_scale,
)
from ._landmarks import (
    complete_ibug68,
    find_contours_file,
    read_eos_contours,
    read_eos_mapping,
)

__all__ = ["import_bfm2009", "import_bfm_front", "import_bfm2017", "read_exp_pca_bin"]

_BFM_LICENCE = (
    "Basel Face Model {year}, University of Basel (Graphics and Vision Research Group). "
    "Licensed by registration at faces.dmi.unibas.ch/bfm: the licence agreement accepted at "
    "download governs use of this model and of models derived from it (it restricts use to "
    "research and forbids redistributing the model data)."
)
_GUO_LICENCE = (
    " Expression basis (Exp_Pca.bin) from Guo et al., 'CNN-based Real-time Dense Face "
    "Reconstruction' (github.com/Juyong/3DFace), built on FaceWarehouse, which is itself licensed "
    "by registration for non-commercial research."
)
_D3D_NOTE = (
    " Cropped and rescaled by Deep3DFaceRecon (Deng et al. 2019, MIT-licensed code) into "
    "BFM_model_front.mat."
)


# --------------------------------------------------------------------------- file reading
def _load_mat(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    """Variables of a .mat file (v5 via scipy, v7.3 via h5py, transposed back to MATLAB order)."""
    import scipy.io

    try:
        data = scipy.io.loadmat(str(path), variable_names=names)
        return {k: v for k, v in data.items() if not k.startswith("__")}
    except NotImplementedError:  # MATLAB v7.3 = HDF5
        pass
    except (ValueError, TypeError, OSError) as e:
        raise ModelFormatError(f"{path} is not a readable MATLAB .mat file: {e}") from None
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return {k: np.asarray(f[k][()]).T for k in names if k in f}
    except OSError as e:
        raise ModelFormatError(f"{path} is not a readable MATLAB .mat file: {e}") from None


def _need(data: dict[str, np.ndarray], key: str, path: Path) -> np.ndarray:
    if key not in data:
        raise ModelFormatError(
            f"{path} has no '{key}' (found: {sorted(data) or 'nothing'}); is it the right file?")
    arr = np.asarray(data[key])
    if arr.dtype.kind not in "fiu":
        raise ModelFormatError(f"{path}: '{key}' is not numeric ({arr.dtype})")
    return arr


def _columns(arr: np.ndarray, rows: int, key: str, path: Path) -> np.ndarray:
    if arr.ndim != 2 or arr.shape[0] != rows:
        raise ModelFormatError(
            f"{path}: '{key}' must be ({rows}, K) (3 x {rows // 3} vertices, one column per mode), "
            f"got {arr.shape}: the bases are for different meshes")
    return arr


def _vector(arr: np.ndarray, size: int | None, key: str, path: Path) -> np.ndarray:
    flat = np.asarray(arr).reshape(-1)
    if size is not None and flat.size != size:
        raise ModelFormatError(f"{path}: '{key}' has {flat.size} values, expected {size}")
    return flat


def _triangles(arr: np.ndarray, num_vertices: int, base: int, key: str, path: Path) -> np.ndarray:
    t = np.asarray(arr)
    if t.ndim != 2 or 3 not in t.shape:
        raise ModelFormatError(f"{path}: '{key}' must be (F, 3) triangles, got {t.shape}")
    if t.shape[1] != 3:
        t = t.T
    t = np.rint(t).astype(np.int64) - base
    if t.size == 0 or t.min() < 0 or t.max() >= num_vertices:
        raise ModelFormatError(
            f"{path}: '{key}' indexes vertices outside 1..{num_vertices} ({base}-based expected)")
    return t


def read_exp_pca_bin(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read Guo et al.'s ``Exp_Pca.bin``.

    Returns:
        ``(mean, pcs)``: (3n,) float32 and (K, 3n) float32 (one mode per row, xyz interleaved),
        in the BFM's micrometres; n is inferred from the file size.
    """
    p = require_file(path, "expression basis (Exp_Pca.bin)")
    raw = p.read_bytes()
    if len(raw) < 4:
        raise ModelFormatError(f"{p} is too short to be Exp_Pca.bin")
    k = int(np.frombuffer(raw[:4], "<i4")[0])
    body = len(raw) - 4
    if k <= 0 or body % (12 * (k + 1)):
        raise ModelFormatError(
            f"{p}: header says {k} modes but {body} data bytes is not 4 x 3n x (1 + {k}); "
            "expected int32 K, float32 mean (3n), float32 PCs (K x 3n)")
    n3 = body // (4 * (k + 1))
    data = np.frombuffer(raw, "<f4", offset=4)
    return data[:n3], data[n3:].reshape(k, n3)


# --------------------------------------------------------------------------- landmarks
def _landmarks_from_mapping(mean: np.ndarray, tris: np.ndarray, landmarks: str | Path,
                            contours: str | Path | None):
    lpath = require_file(landmarks, "landmark mapping (landmarks=PATH, an eos ibug_to_*.txt)")
    cpath = (require_file(contours, "contour file (contours=PATH)") if contours is not None
             else find_contours_file(lpath))
    mapped = read_eos_mapping(lpath, len(mean))
    cont = read_eos_contours(cpath, len(mean)) if cpath is not None else None
    faces, bary, report = complete_ibug68(mean, tris, mapped, contours=cont,
                                          source=f"landmark mapping {lpath}")
    return faces, bary, report, {"landmarks": file_record(lpath), "contours": file_record(cpath)}


def _require_landmarks(landmarks: Any, path: Path, example: str) -> None:
    if landmarks is None:
        raise ModelFormatError(
            f"{path} has no landmark definition and the model needs all 68 iBUG landmarks: pass "
            f"landmarks=PATH, an eos mapping file such as {example} (its jaw contour file "
            "*_model_contours.json is picked up from the same folder)")


def _names(prefix: str, n: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i:03d}" for i in range(n))


def _provenance(source: str, importer: str, files: dict, options: dict, units: str,
                scale: float, **extra: Any) -> dict[str, Any]:
    return {"source": source, "importer": f"facecraft.sdk.models.importers.bfm.{importer}",
            "files": files, "options": options, "units": {"source": units, "to_metres": scale},
            **extra}


# --------------------------------------------------------------------------- BFM 2009
def import_bfm2009(path: str | Path, *, landmarks: str | Path | None = None,
                   contours: str | Path | None = None, expressions: str | Path | None = None,
                   expressions_std: str | Path | None = None,
                   expressions_index: str | Path | None = None, units: str = "um",
                   max_identity: int | None = None, max_expression: int | None = None,
                   max_albedo: int | None = None, progress: bool = False) -> MorphableModel:
    """Import the Basel Face Model 2009 (``01_MorphableModel.mat``).

    Args:
        path: ``01_MorphableModel.mat`` (layout in the module docstring).
        landmarks: eos iBUG mapping (required), e.g. ``ibug_to_bfm2009.txt``.
        contours: eos contour file; default ``bfm2009_model_contours.json`` beside the mapping.
        expressions: Guo et al.'s ``Exp_Pca.bin`` (optional); with it ``std_exp.txt`` and
            ``BFM_exp_idx.mat`` are read from the same folder unless given below.
        expressions_std: the K standard deviations (text), default ``std_exp.txt``.
        expressions_index: ``.mat`` with ``trimIndex`` (1-based BFM vertex per expression
            vertex), default ``BFM_exp_idx.mat``.
        units: length unit of the file, default ``"um"`` (micrometres).
        max_identity, max_expression, max_albedo: keep at most this many modes.
        progress: accepted for the registry's uniform call; loading shows no progress bar.

    Returns:
        53,490 vertices in metres; identity and albedo unit-variance; expression PCA
        (unit-variance) when ``expressions`` is given, else no expression modes.
    """
    p = require_file(path, "BFM 2009 model (01_MorphableModel.mat)")
    lims = {k: positive_int(v, k) for k, v in (("max_identity", max_identity),
                                               ("max_expression", max_expression),
                                               ("max_albedo", max_albedo))}
    scale = unit_scale(units)
    _require_landmarks(landmarks, p, "ibug_to_bfm2009.txt")
    d = _load_mat(p, ["shapeMU", "shapePC", "shapeEV", "texMU", "texPC", "texEV", "tl"])
    mu = _need(d, "shapeMU", p).reshape(-1).astype(np.float64)
    if mu.size == 0 or mu.size % 3:
        raise ModelFormatError(f"{p}: 'shapeMU' has {mu.size} values, not 3 x V")
    v = mu.size // 3
    pc = _columns(_need(d, "shapePC", p), 3 * v, "shapePC", p)
    ev = _vector(_need(d, "shapeEV", p), pc.shape[1], "shapeEV", p)
    tmu = _vector(_need(d, "texMU", p), None, "texMU", p)
    if tmu.size != 3 * v:
        raise ModelFormatError(
            f"{p}: 'texMU' has {tmu.size // 3} vertices but 'shapeMU' has {v}: mismatched bases")
    tpc = _columns(_need(d, "texPC", p), 3 * v, "texPC", p)
    tev = _vector(_need(d, "texEV", p), tpc.shape[1], "texEV", p)
    tris = _triangles(_need(d, "tl", p), v, 1, "tl", p)

    mean = mu.reshape(v, 3)
    tris, flipped = orient_outward(mean, tris)
    identity = basis_from_columns(pc, v, ev * scale, lims["max_identity"])
    albedo_basis = basis_from_columns(tpc, v, tev / 255.0, lims["max_albedo"])
    files: dict[str, Any] = {"model": file_record(p)}
    expr = np.zeros((0, v, 3), np.float32)
    licence = _BFM_LICENCE.format(year="2009")
    if expressions is not None:
        expr, efiles = _guo_expression(expressions, expressions_std, expressions_index, v,
                                       scale, lims["max_expression"])
        files.update(efiles)
        licence += _GUO_LICENCE
    faces, bary, report, lfiles = _landmarks_from_mapping(mean, tris, landmarks, contours)
    files.update(lfiles)
    mean_m = (mean * scale).astype(np.float32)
    check_extent(mean_m, p, units, " (pass units=, e.g. units='mm')")
    return MorphableModel(
        name="bfm2009",
        mean_shape=mean_m,
        identity_basis=identity,
        identity_names=_names("shape", len(identity)),
        expression_basis=expr,
        expression_names=_names("expression", len(expr)),
        triangles=tris,
        uvs=np.zeros((0, 2), np.float32),
        uv_triangles=np.zeros((0, 3), np.int32),
        landmark_faces=faces,
        landmark_bary=bary,
        regions={"face": np.arange(v)},
        albedo_mean=(tmu.reshape(v, 3) / 255.0).astype(np.float32),
        albedo_basis=albedo_basis,
        albedo_names=_names("albedo", len(albedo_basis)),
        expression_kind="pca",
        provenance=_provenance(
            "Basel Face Model 2009", "import_bfm2009", files,
            {**lims, "units": units, "expressions": expressions is not None}, units, scale,
            coefficients="shapePC/texPC x EV (EV are standard deviations): unit variance; "
                         "expression PCs x std_exp: unit variance; expression mean not added",
            albedo="texMU / 255, RGB as stored (no sRGB conversion)",
            triangles_flipped=flipped,
            landmarks={"indexing": "0-based iBUG-68", **report},
            origin="source origin kept"),
        licence=licence,
    )


def _guo_expression(expression: str | Path, std: str | Path | None, index: str | Path | None,
                    v: int, scale: float, limit: int | None) -> tuple[np.ndarray, dict]:
    epath = require_file(expression, "expression basis (expressions=PATH, Exp_Pca.bin)")
    spath = require_file(std if std is not None else epath.with_name("std_exp.txt"),
                         "expression standard deviations (expressions_std=PATH, std_exp.txt)")
    ipath = require_file(index if index is not None else epath.with_name("BFM_exp_idx.mat"),
                         "expression vertex index (expressions_index=PATH, BFM_exp_idx.mat)")
    _, pcs = read_exp_pca_bin(epath)
    k, n3 = pcs.shape
    try:
        sd = np.loadtxt(spath, dtype=np.float64).reshape(-1)
    except ValueError as e:
        raise ModelFormatError(f"{spath}: not a list of numbers: {e}") from None
    if sd.size != k:
        raise ModelFormatError(
            f"{spath} has {sd.size} standard deviations for {k} modes in {epath}")
    trim = _vector(_need(_load_mat(ipath, ["trimIndex"]), "trimIndex", ipath), None,
                   "trimIndex", ipath)
    trim = np.rint(trim).astype(np.int64) - 1
    if trim.size * 3 != n3:
        raise ModelFormatError(
            f"{ipath}: 'trimIndex' lists {trim.size} vertices but {epath} has {n3 // 3}: "
            "mismatched files")
    if trim.min() < 0 or trim.max() >= v or np.unique(trim).size != trim.size:
        raise ModelFormatError(
            f"{ipath}: 'trimIndex' must be distinct 1-based vertex ids of the {v}-vertex BFM")
    k_keep = k if limit is None else min(k, limit)
    out = np.zeros((k_keep, v, 3), np.float32)
    out[:, trim, :] = (pcs[:k_keep].reshape(k_keep, -1, 3)
                       * (sd[:k_keep] * scale)[:, None, None]).astype(np.float32)
    return out, {"expression": file_record(epath), "expression_std": file_record(spath),
                 "expression_index": file_record(ipath)}


# --------------------------------------------------------------------------- BFM front
def import_bfm_front(path: str | Path, *, landmarks: str | Path | None = None,
                     contours: str | Path | None = None, units: str = "dm",
                     max_identity: int | None = None, max_expression: int | None = None,
                     max_albedo: int | None = None, progress: bool = False) -> MorphableModel:
    """Import Deep3DFaceRecon's cropped BFM (``BFM_model_front.mat``).

    Args:
        path: ``BFM_model_front.mat`` (layout in the module docstring).
        landmarks: optional eos mapping to use instead of the file's ``keypoints``.
        contours: eos contour file for that mapping.
        units: length unit of the file, default ``"dm"`` (the BFM's micrometres / 1e5).
        max_identity, max_expression, max_albedo: keep at most this many modes.
        progress: accepted for the registry's uniform call; loading shows no progress bar.

    Returns:
        35,709 vertices in metres (not re-centred), 80 identity, 64 expression (PCA) and 80
        albedo modes, all unit-variance; regions ``face``, ``skin`` and ``photometric``.
    """
    p = require_file(path, "BFM front model (BFM_model_front.mat)")
    lims = {k: positive_int(v, k) for k, v in (("max_identity", max_identity),
                                               ("max_expression", max_expression),
                                               ("max_albedo", max_albedo))}
    scale = unit_scale(units)
    d = _load_mat(p, ["meanshape", "idBase", "exBase", "meantex", "texBase", "tri", "keypoints",
                      "skinmask", "frontmask2_idx"])
    mu = _vector(_need(d, "meanshape", p), None, "meanshape", p).astype(np.float64)
    if mu.size == 0 or mu.size % 3:
        raise ModelFormatError(f"{p}: 'meanshape' has {mu.size} values, not 3 x V")
    v = mu.size // 3
    id_base = _columns(_need(d, "idBase", p), 3 * v, "idBase", p)
    ex_base = _columns(_need(d, "exBase", p), 3 * v, "exBase", p)
    tex_base = _columns(_need(d, "texBase", p), 3 * v, "texBase", p)
    tex_mu = _vector(_need(d, "meantex", p), 3 * v, "meantex", p)
    tris = _triangles(_need(d, "tri", p), v, 1, "tri", p)
    mean = mu.reshape(v, 3)
    tris, flipped = orient_outward(mean, tris)
    files: dict[str, Any] = {"model": file_record(p)}
    if landmarks is not None:
        faces, bary, report, lfiles = _landmarks_from_mapping(mean, tris, landmarks, contours)
        files.update(lfiles)
        lm_info = {"indexing": "0-based iBUG-68", **report}
    else:
        if "keypoints" not in d:
            _require_landmarks(None, p, "an ibug_to_*.txt for this mesh")
        kp = np.rint(_vector(_need(d, "keypoints", p), 68, "keypoints", p)).astype(np.int64) - 1
        if kp.min() < 0 or kp.max() >= v:
            raise ModelFormatError(f"{p}: 'keypoints' must be 1-based vertex ids in 1..{v}")
        try:
            faces, bary = landmarks_from_vertices(kp, tris)
        except InvalidInputError as e:  # a keypoint on no triangle
            raise ModelFormatError(f"{p}: 'keypoints': {e}") from None
        lm_info = {"indexing": "0-based iBUG-68", "mapped": list(range(68)),
                   "source": "keypoints (1-based vertex ids)"}
    regions: dict[str, np.ndarray] = {"face": np.arange(v)}
    if "skinmask" in d:
        mask = _vector(_need(d, "skinmask", p), v, "skinmask", p)
        regions["skin"] = np.flatnonzero(mask > 0)
    if "frontmask2_idx" in d:
        idx = np.rint(_vector(_need(d, "frontmask2_idx", p), None, "frontmask2_idx", p))
        idx = idx.astype(np.int64) - 1
        if idx.size and (idx.min() < 0 or idx.max() >= v):
            raise ModelFormatError(f"{p}: 'frontmask2_idx' must be 1-based vertex ids in 1..{v}")
        regions["photometric"] = idx
    identity = basis_from_columns(id_base, v, scale, lims["max_identity"])
    expr = basis_from_columns(ex_base, v, scale, lims["max_expression"])
    albedo_basis = basis_from_columns(tex_base, v, 1 / 255.0, lims["max_albedo"])
    mean_m = (mean * scale).astype(np.float32)
    check_extent(mean_m, p, units, " (pass units=, e.g. units='mm')")
    return MorphableModel(
        name="bfm-front",
        mean_shape=mean_m,
        identity_basis=identity,
        identity_names=_names("shape", len(identity)),
        expression_basis=expr,
        expression_names=_names("expression", len(expr)),
        triangles=tris,
        uvs=np.zeros((0, 2), np.float32),
        uv_triangles=np.zeros((0, 3), np.int32),
        landmark_faces=faces,
        landmark_bary=bary,
        regions=regions,
        albedo_mean=(tex_mu.reshape(v, 3) / 255.0).astype(np.float32),
        albedo_basis=albedo_basis,
        albedo_names=_names("albedo", len(albedo_basis)),
        expression_kind="pca",
        provenance=_provenance(
            "Basel Face Model 2009, Deep3DFaceRecon front crop", "import_bfm_front", files,
            {**lims, "units": units, "landmarks": landmarks is not None}, units, scale,
            coefficients="idBase/exBase/texBase already scaled by the standard deviations: "
                         "stored as given (unit variance)",
            albedo="meantex / 255, RGB as stored (no sRGB conversion)",
            triangles_flipped=flipped, landmarks=lm_info,
            origin="source origin kept (Deep3DFaceRecon re-centres at load; this does not)"),
        licence=_BFM_LICENCE.format(year="2009") + _GUO_LICENCE + _D3D_NOTE,
    )


# --------------------------------------------------------------------------- BFM 2017/2019
def _h5_pca(f: Any, group: str, path: Path, rows: int | None,
            required: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    keys = [f"{group}/model/mean", f"{group}/model/pcaBasis", f"{group}/model/pcaVariance"]
    present = [k in f for k in keys]
    if not any(present) and not required:
        return None
    for k, ok in zip(keys, present, strict=True):
        if not ok:
            raise ModelFormatError(f"{path} has no dataset '{k}'; is it a BFM 2017/2019 .h5?")
    mean = np.asarray(f[keys[0]][()], np.float64).reshape(-1)
    basis = np.asarray(f[keys[1]][()])
    var = np.asarray(f[keys[2]][()], np.float64).reshape(-1)
    n = mean.size if rows is None else rows
    if mean.size != n:
        raise ModelFormatError(
            f"{path}: '{keys[0]}' covers {mean.size // 3} vertices but the shape model has "
            f"{n // 3}: mismatched bases")
    if basis.ndim != 2 or basis.shape[0] != n:
        raise ModelFormatError(f"{path}: '{keys[1]}' must be ({n}, K), got {basis.shape}")
    if var.size != basis.shape[1]:
        raise ModelFormatError(
            f"{path}: '{keys[2]}' has {var.size} values for {basis.shape[1]} basis columns")
    if np.any(var < 0):
        raise ModelFormatError(f"{path}: '{keys[2]}' must be variances (>= 0)")
    return mean, basis, var


def import_bfm2017(path: str | Path, *, landmarks: str | Path | None = None,
                   contours: str | Path | None = None, units: str = "mm",
                   max_identity: int | None = None, max_expression: int | None = None,
                   max_albedo: int | None = None, progress: bool = False) -> MorphableModel:
    """Import the Basel Face Model 2017 or 2019 (statismo ``.h5``).

    Args:
        path: e.g. ``model2017-1_bfm_nomouth.h5``, ``model2019_fullHead.h5``.
        landmarks: eos iBUG mapping (required), e.g. ``ibug_to_bfm2017-1_bfm_nomouth.txt``;
            mappings are per mesh, so use one made for the file's mesh.
        contours: eos contour file; default ``<name>_model_contours.json`` beside the mapping.
        units: length unit of the file, default ``"mm"``.
        max_identity, max_expression, max_albedo: keep at most this many modes.
        progress: accepted for the registry's uniform call; loading shows no progress bar.

    Returns:
        The model in metres; shape, expression (PCA) and colour unit-variance; mean shape =
        shape mean + expression mean.
    """
    import h5py

    p = require_file(path, "BFM 2017/2019 model (.h5)")
    lims = {k: positive_int(v, k) for k, v in (("max_identity", max_identity),
                                               ("max_expression", max_expression),
                                               ("max_albedo", max_albedo))}
    scale = unit_scale(units)
    _require_landmarks(landmarks, p, "ibug_to_bfm2017-1_bfm_nomouth.txt")
    try:
        f = h5py.File(p, "r")
    except OSError as e:
        raise ModelFormatError(f"{p} is not an HDF5 file: {e}") from None
    with f:
        shape = _h5_pca(f, "shape", p, None, True)
        assert shape is not None
        mu, pc, var = shape
        if mu.size == 0 or mu.size % 3:
            raise ModelFormatError(f"{p}: 'shape/model/mean' has {mu.size} values, not 3 x V")
        v = mu.size // 3
        if "shape/representer/cells" not in f:
            raise ModelFormatError(f"{p} has no dataset 'shape/representer/cells' (triangles)")
        tris = _triangles(f["shape/representer/cells"][()], v, 0, "shape/representer/cells", p)
        expr_pca = _h5_pca(f, "expression", p, 3 * v, False)
        color = _h5_pca(f, "color", p, 3 * v, False)
    mean = mu.reshape(v, 3)
    if expr_pca is not None:
        mean = mean + expr_pca[0].reshape(v, 3)
    tris, flipped = orient_outward(mean, tris)
    identity = basis_from_columns(pc, v, np.sqrt(var) * scale, lims["max_identity"])
    expr = (basis_from_columns(expr_pca[1], v, np.sqrt(expr_pca[2]) * scale,
                               lims["max_expression"])
            if expr_pca is not None else np.zeros((0, v, 3), np.float32))
    albedo_mean = albedo_basis = None
    if color is not None:
        albedo_mean = color[0].reshape(v, 3).astype(np.float32)
        albedo_basis = basis_from_columns(color[1], v, np.sqrt(color[2]), lims["max_albedo"])
    faces, bary, report, lfiles = _landmarks_from_mapping(mean, tris, landmarks, contours)
    year = "2019" if "2019" in p.name else "2017"
    mean_m = (mean * scale).astype(np.float32)
    check_extent(mean_m, p, units, " (pass units=, e.g. units='um')")
    return MorphableModel(
        name=f"bfm{year}",
        mean_shape=mean_m,
        identity_basis=identity,
        identity_names=_names("shape", len(identity)),
        expression_basis=expr,
        expression_names=_names("expression", len(expr)),
        triangles=tris,
        uvs=np.zeros((0, 2), np.float32),
        uv_triangles=np.zeros((0, 3), np.int32),
        landmark_faces=faces,
        landmark_bary=bary,
        regions={"face": np.arange(v)},
        albedo_mean=albedo_mean,
        albedo_basis=albedo_basis,
        albedo_names=_names("albedo", 0 if albedo_basis is None else len(albedo_basis)),
        expression_kind="pca",
        provenance=_provenance(
            f"Basel Face Model {year}", "import_bfm2017", {"model": file_record(p), **lfiles},
            {**lims, "units": units}, units, scale,
            coefficients="pcaBasis x sqrt(pcaVariance): unit variance (shape, expression, "
                         "colour); expression mean added to the shape mean",
            albedo="color/model/mean, RGB in [0, 1] as stored",
            triangles_flipped=flipped,
            landmarks={"indexing": "0-based iBUG-68", **report},
            origin="source origin kept"),
        licence=_BFM_LICENCE.format(year=year),
    )
