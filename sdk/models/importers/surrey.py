"""Importer for the Surrey Face Model (SFM) and other models in eos's cereal binary format.

File layout
-----------
eos (github.com/patrikhuber/eos) saves ``eos::morphablemodel::MorphableModel`` with cereal's
``BinaryOutputArchive``: little-endian, no padding, sizes of containers as uint64, strings as a
uint64 length plus bytes, ``bool`` as one byte, and a uint32 class version written once, before
the first ``MorphableModel`` (the only versioned class). Checked against eos's headers
``MorphableModel.hpp`` (``serialize(archive, version)``), ``PcaModel.hpp``, ``Blendshape.hpp``,
``io/eigen_cerealisation.hpp``, ``cpp17/*_serialization.hpp``, and against the real
``sfm_shape_3448.bin`` (version 1, 2,784,392 bytes, parsed to the last byte)::

    MorphableModel  = uint32 version (1..4), then
        v1: shape PcaModel, colour PcaModel, texture_coordinates
        v2: shape, colour, optional<ExpressionModel>, texture_coordinates
        v3: shape, colour, optional<ExpressionModel>, optional<landmark_definitions>, texcoords
        v4: as v3, then texture_triangle_indices
    PcaModel        = mean (Eigen VectorXf), orthonormal_pca_basis (MatrixXf, one column per
                      mode), eigenvalues (VectorXf, the PCA variances), triangle_list
    Eigen matrix    = int32 rows, int32 cols, rows*cols float32 in column-major order
    triangle_list   = uint64 n, n x int32[3] (0-based vertex ids)
    texcoords       = uint64 n, n x float64[2] (u, v), v measured from the top (image rows)
    optional<T>     = bool nullopt, then T when nullopt is false
    ExpressionModel = variant<PcaModel, Blendshapes>: int32 index (0 or 1), then the value
    Blendshapes     = uint64 n, n x (string name, VectorXf deformation)
    landmark_definitions = uint64 n, n x (string name, int32 vertex id)

The expression file ``expression_blendshapes_3448.bin`` is a bare ``Blendshapes`` vector. Version 0
(the very old cv::Mat format) is refused, as eos itself does.

Conversions
-----------
* Units: the SFM is in millimetres (its mean spans about 150 x 190 x 110 mm and matches the
  ``sfm_reference.obj`` template in mm); positions, bases and blendshapes are scaled by 1e-3.
* Coefficients: eos stores the orthonormal basis and the eigenvalues (variances); the imported
  basis is ``basis * sqrt(eigenvalue)`` (eos's "rescaled" basis), so coefficients are
  unit-variance. Blendshapes are deltas for weights in [0, 1] (``expression_kind="blendshape"``);
  a PCA expression model is rescaled like the shape and its mean added to the mean shape.
* UVs: eos's v runs down the image; stored as ``1 - v`` (OBJ convention). Per-vertex UVs
  (versions 1-3) use the shape triangles as UV triangles.
* Colour model (absent in the public shape-only SFM): RGB in [0, 1], rescaled like the shape.
* Frame: the SFM is right-handed, +Y up, face towards +Z, origin near the nose tip (the mean's
  Z runs from about -104 mm to +3 mm); the origin is kept.

Landmarks: from eos's ``ibug_to_sfm.txt`` (50 of the 68 points; 61 and 65, the inner mouth
corners, and the jaw 1-8/10-17 are not mapped) plus ``sfm_model_contours.json`` for the jaw,
completed as :mod:`facecraft.sdk.models.importers._landmarks` documents (inner mouth corners = outer
corners; jaw sampled along the contour candidates).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import ModelFormatError
from ..morphable_model import MorphableModel
from ._common import (
    basis_from_columns,
    check_extent,
    file_record,
    orient_outward,
    positive_int,
    require_file,
)
from ._landmarks import (
    complete_ibug68,
    find_contours_file,
    read_eos_contours,
    read_eos_mapping,
)

__all__ = ["import_surrey", "read_eos_model", "read_eos_blendshapes", "EosModel", "EosPcaModel"]

_MM = 1e-3
LICENCE = (
    "Surrey Face Model (SFM), Centre for Vision, Speech and Signal Processing, University of "
    "Surrey. The low-resolution shape-only model (sfm_shape_3448) and its expression "
    "blendshapes ship in the eos repository (Apache-2.0 for eos's code and mapping files); the "
    "SFM itself is free for non-commercial use. The full-resolution SFM with colour is licensed "
    "by registration (cvssp.org/facemodel); check the terms of the copy you imported."
)


@dataclass(frozen=True)
class EosPcaModel:
    """An eos ``PcaModel`` as stored: mean (D,), orthonormal basis (D, K), variances (K,)."""

    mean: np.ndarray
    basis: np.ndarray
    eigenvalues: np.ndarray
    triangles: np.ndarray


@dataclass(frozen=True)
class EosModel:
    """An eos ``MorphableModel`` file, arrays in the file's units and conventions."""

    version: int
    shape: EosPcaModel
    color: EosPcaModel
    expression_pca: EosPcaModel | None = None
    blendshapes: list[tuple[str, np.ndarray]] | None = None
    landmark_definitions: dict[str, int] = field(default_factory=dict)
    texcoords: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    texture_triangles: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.int32))


class _Cereal:
    """Reads cereal binary-archive primitives, naming the field and offset on error."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.buf = path.read_bytes()
        except OSError as e:
            raise ModelFormatError(f"cannot read {path}: {e.strerror or e}") from None
        self.pos = 0

    def fail(self, what: str, why: str) -> ModelFormatError:
        return ModelFormatError(
            f"{self.path}: not an eos cereal file ({what} at byte {self.pos}: {why})")

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise self.fail(what, f"needs {n} bytes, {len(self.buf) - self.pos} left")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def scalar(self, fmt: str, what: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt), what))[0]

    def size(self, what: str, item_bytes: int) -> int:
        n = self.scalar("Q", what + " size")
        if n * item_bytes > len(self.buf) - self.pos:
            raise self.fail(what, f"size {n} runs past the end of the file")
        return n

    def string(self, what: str) -> str:
        raw = self.take(self.size(what, 1), what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(what, "not UTF-8 text") from None

    def boolean(self, what: str) -> bool:
        b = self.scalar("B", what)
        if b > 1:
            raise self.fail(what, f"bool byte {b}")
        return bool(b)

    def matrix(self, what: str) -> np.ndarray:
        rows, cols = self.scalar("i", what + " rows"), self.scalar("i", what + " cols")
        if rows < 0 or cols < 0:
            raise self.fail(what, f"negative shape ({rows}, {cols})")
        data = np.frombuffer(self.take(4 * rows * cols, what), "<f4")
        return data.reshape(cols, rows).T  # Eigen stores column-major

    def array_list(self, what: str, dtype: str, width: int) -> np.ndarray:
        item = np.dtype(dtype).itemsize * width
        n = self.size(what, item)
        return np.frombuffer(self.take(n * item, what), dtype).reshape(n, width)

    def pca(self, what: str) -> EosPcaModel:
        mean = self.matrix(what + ".mean").reshape(-1)
        basis = self.matrix(what + ".orthonormal_pca_basis")
        ev = self.matrix(what + ".eigenvalues").reshape(-1)
        tris = self.array_list(what + ".triangle_list", "<i4", 3)
        if mean.size and basis.shape[0] != mean.size and basis.size:
            raise self.fail(what, f"basis has {basis.shape[0]} rows for a mean of {mean.size}")
        if basis.shape[1] != ev.size:
            raise self.fail(what, f"{basis.shape[1]} basis columns for {ev.size} eigenvalues")
        return EosPcaModel(mean, basis, ev, tris)

    def blendshapes(self, what: str) -> list[tuple[str, np.ndarray]]:
        n = self.size(what, 9)
        return [(self.string(f"{what}[{i}].name"), self.matrix(f"{what}[{i}].deformation")
                 .reshape(-1)) for i in range(n)]

    def end(self) -> None:
        if self.pos != len(self.buf):
            raise self.fail("end of archive", f"{len(self.buf) - self.pos} bytes left over")


def read_eos_model(path: str | Path) -> EosModel:
    """Parse an eos ``MorphableModel`` cereal file (versions 1-4); arrays as stored."""
    r = _Cereal(require_file(path, "eos model file"))
    version = r.scalar("I", "MorphableModel class version")
    if version == 0 or version > 4:
        raise r.fail("MorphableModel class version",
                     f"version {version}; eos versions 1-4 are supported"
                     + (" (0 is eos's old cv::Mat format: convert with a recent eos)"
                        if version == 0 else ""))
    shape = r.pca("shape_model")
    color = r.pca("color_model")
    expr_pca, blend, defs = None, None, {}
    if version >= 2 and not r.boolean("expression_model.nullopt"):
        index = r.scalar("i", "expression_model variant index")
        if index == 0:
            expr_pca = r.pca("expression_model")
        elif index == 1:
            blend = r.blendshapes("expression_model")
        else:
            raise r.fail("expression_model", f"variant index {index} (0 = PCA, 1 = blendshapes)")
    if version >= 3 and not r.boolean("landmark_definitions.nullopt"):
        n = r.size("landmark_definitions", 12)
        for i in range(n):
            name = r.string(f"landmark_definitions[{i}].key")
            defs[name] = r.scalar("i", f"landmark_definitions[{i}].value")
    uv = r.array_list("texture_coordinates", "<f8", 2)
    tti = (r.array_list("texture_triangle_indices", "<i4", 3) if version >= 4
           else np.zeros((0, 3), np.int32))
    r.end()
    return EosModel(version, shape, color, expr_pca, blend, defs, uv, tti)


def read_eos_blendshapes(path: str | Path) -> list[tuple[str, np.ndarray]]:
    """Parse an eos blendshapes file: a cereal ``std::vector<Blendshape>``; (name, (3V,))."""
    r = _Cereal(require_file(path, "eos blendshapes file"))
    out = r.blendshapes("blendshapes")
    r.end()
    return out


def _resolve_model_path(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if p.is_dir():
        found = sorted(p.glob("sfm_shape_*.bin"))
        if len(found) != 1:
            raise ModelFormatError(
                f"{p} is a folder with {len(found)} sfm_shape_*.bin files; pass the model file")
        return found[0]
    return require_file(p, "Surrey model file")


def _expressions(eos: EosModel, mpath: Path, expressions: str | Path | bool | None, v: int,
                 lim_ex: int | None, files: dict[str, object], mean: np.ndarray
                 ) -> tuple[str, tuple[str, ...], np.ndarray, np.ndarray]:
    """The expression model :func:`import_surrey` asks for: ``(kind, names, basis (K, V, 3)
    millimetres -> metres applied, mean)`` (a PCA expression model may move the mean)."""
    expr_kind, expr_names, expr_basis = "blendshape", (), np.zeros((0, v, 3), np.float32)
    blend = None
    if expressions is None:
        if eos.expression_pca is None and eos.blendshapes is None:
            guess = mpath.with_name("expression_blendshapes_" + mpath.stem.rsplit("_", 1)[-1]
                                    + ".bin")
            if guess.is_file():
                blend, files["expressions"] = read_eos_blendshapes(guess), file_record(guess)
        else:
            blend = eos.blendshapes
    elif expressions is not False and str(expressions).lower() not in ("none", "false", ""):
        epath = require_file(expressions, "expression blendshapes file")
        blend, files["expressions"] = read_eos_blendshapes(epath), file_record(epath)
    if blend is not None:
        bad = [name for name, d in blend if d.size != 3 * v]
        if bad:
            raise ModelFormatError(
                f"expression blendshapes {bad} have a different vertex count than {mpath} "
                f"({v} vertices): the files belong to different models")
        blend = blend[:lim_ex] if lim_ex is not None else blend
        if blend:
            expr_names = tuple(name for name, _ in blend)
            expr_basis = (np.stack([d for _, d in blend]).reshape(-1, v, 3) * _MM
                          ).astype(np.float32)
    elif eos.expression_pca is not None and expressions is None:
        e = eos.expression_pca
        if e.basis.shape[0] != 3 * v or (e.mean.size not in (0, 3 * v)):
            raise ModelFormatError(f"{mpath}: expression PCA model is not over {v} vertices")
        expr_kind = "pca"
        expr_basis = basis_from_columns(e.basis, v, np.sqrt(e.eigenvalues) * _MM, lim_ex)
        expr_names = tuple(f"expression{i:03d}" for i in range(len(expr_basis)))
        if e.mean.size:
            mean = mean + e.mean.reshape(v, 3)
    return expr_kind, expr_names, expr_basis, mean


def _uv_layout(eos: EosModel, mpath: Path, v: int, triangles: np.ndarray, flipped: bool
               ) -> tuple[np.ndarray, np.ndarray]:
    """``(uvs (U, 2) origin bottom-left, uv_triangles (F, 3))`` of an eos model (empty when it
    has none)."""
    uvs = np.zeros((0, 2), np.float32)
    uv_tris = np.zeros((0, 3), np.int32)
    if len(eos.texcoords):
        uvs = np.column_stack([eos.texcoords[:, 0], 1.0 - eos.texcoords[:, 1]])
        if len(eos.texture_triangles):
            uv_tris = eos.texture_triangles[:, [0, 2, 1]] if flipped else eos.texture_triangles
        elif len(eos.texcoords) == v:
            uv_tris = triangles
        else:
            raise ModelFormatError(
                f"{mpath}: {len(eos.texcoords)} texture coordinates for {v} vertices and no "
                "texture triangles")
        if len(uv_tris) != len(triangles) or uv_tris.max() >= len(uvs):
            raise ModelFormatError(f"{mpath}: texture triangles do not match the mesh")
    return uvs, uv_tris


def import_surrey(path: str | Path, *, expressions: str | Path | bool | None = None,
                 landmarks: str | Path | None = None, contours: str | Path | None = None,
                 max_identity: int | None = None, max_expression: int | None = None,
                 max_albedo: int | None = None, progress: bool = False) -> MorphableModel:
    """Import the Surrey Face Model (or any eos cereal model) as a :class:`MorphableModel`.

    Args:
        path: the model file (``sfm_shape_3448.bin``) or the folder holding one
            ``sfm_shape_*.bin``.
        expressions: an eos blendshapes file. Default: the model's own expression model if it
            has one, else ``expression_blendshapes_<N>.bin`` beside ``sfm_shape_<N>.bin`` if it
            exists; ``False`` (or ``"none"``) imports no expressions.
        landmarks: eos iBUG mapping file; default ``ibug_to_sfm.txt`` beside the model.
        contours: eos ``*_model_contours.json`` for the jaw; default the file named after the
            mapping (``sfm_model_contours.json``) if it exists.
        max_identity, max_expression, max_albedo: keep at most this many modes.
        progress: accepted for the registry's uniform call; loading shows no progress bar.

    Returns:
        The model in metres with unit-variance identity (and colour) coefficients; expression
        blendshapes (weights in [0, 1]) or a unit-variance PCA expression model.

    Raises:
        ModelFormatError: a file is missing or not in the layout above, or bases disagree.
    """
    mpath = _resolve_model_path(path)
    lim_id = positive_int(max_identity, "max_identity")
    lim_ex = positive_int(max_expression, "max_expression")
    lim_al = positive_int(max_albedo, "max_albedo")
    eos = read_eos_model(mpath)
    s = eos.shape
    if s.mean.size == 0 or s.mean.size % 3:
        raise ModelFormatError(f"{mpath}: shape mean has {s.mean.size} values, not 3 x V")
    v = s.mean.size // 3
    if s.basis.shape[0] != 3 * v:
        raise ModelFormatError(f"{mpath}: shape basis has {s.basis.shape[0]} rows for {v} vertices")
    if not len(s.triangles) or s.triangles.min() < 0 or s.triangles.max() >= v:
        raise ModelFormatError(f"{mpath}: shape triangle_list is empty or indexes outside {v}")
    if np.any(s.eigenvalues < 0):
        raise ModelFormatError(f"{mpath}: shape eigenvalues must be variances (>= 0)")
    mean = s.mean.reshape(v, 3).astype(np.float64)
    identity = basis_from_columns(s.basis, v, np.sqrt(s.eigenvalues) * _MM, lim_id)

    files: dict[str, object] = {"model": file_record(mpath)}
    expr_kind, expr_names, expr_basis, mean = _expressions(eos, mpath, expressions, v, lim_ex,
                                                           files, mean)

    albedo_mean = albedo_basis = None
    albedo_names: tuple[str, ...] = ()
    c = eos.color
    if c.mean.size:
        if c.mean.size != 3 * v or c.basis.shape[0] not in (0, 3 * v):
            raise ModelFormatError(f"{mpath}: colour model is not over the shape's {v} vertices")
        albedo_mean = c.mean.reshape(v, 3)
        albedo_basis = (basis_from_columns(c.basis, v, np.sqrt(c.eigenvalues), lim_al)
                        if c.basis.size else np.zeros((0, v, 3), np.float32))
        albedo_names = tuple(f"albedo{i:03d}" for i in range(len(albedo_basis)))

    triangles, flipped = orient_outward(mean, s.triangles)
    uvs, uv_tris = _uv_layout(eos, mpath, v, triangles, flipped)

    lpath = require_file(landmarks if landmarks is not None
                         else mpath.with_name("ibug_to_sfm.txt"),
                         "landmark mapping (landmarks=PATH, eos ibug_to_*.txt)")
    cpath = (require_file(contours, "contour file") if contours is not None
             else find_contours_file(lpath))
    mapped = read_eos_mapping(lpath, v)
    cont = read_eos_contours(cpath, v) if cpath is not None else None
    lm_faces, lm_bary, report = complete_ibug68(mean, triangles, mapped, contours=cont,
                                                source=f"landmark mapping {lpath}")
    files["landmarks"] = file_record(lpath)
    files["contours"] = file_record(cpath)
    mean_m = (mean * _MM).astype(np.float32)
    check_extent(mean_m, mpath, "mm")
    provenance = {
        "source": "Surrey Face Model (eos cereal format)",
        "importer": "facecraft.sdk.models.importers.surrey.import_surrey",
        "files": files,
        "options": {"max_identity": lim_id, "max_expression": lim_ex, "max_albedo": lim_al},
        "eos_version": eos.version,
        "units": {"source": "mm", "to_metres": _MM},
        "coefficients": "identity: orthonormal basis x sqrt(eigenvalue) (unit variance); "
                        + ("expression: blendshape deltas, weights in [0, 1]"
                           if expr_kind == "blendshape" else "expression: PCA, unit variance"),
        "uv_origin": "bottom-left (eos v flipped)",
        "triangles_flipped": flipped,
        "landmarks": {"indexing": "0-based iBUG-68", **report},
        "eos_landmark_definitions": len(eos.landmark_definitions),
        "origin": "source origin kept (near the nose tip)",
    }
    return MorphableModel(
        name="surrey-sfm",
        mean_shape=mean_m,
        identity_basis=identity,
        identity_names=tuple(f"shape{i:03d}" for i in range(len(identity))),
        expression_basis=expr_basis,
        expression_names=expr_names,
        triangles=triangles,
        uvs=uvs,
        uv_triangles=uv_tris,
        landmark_faces=lm_faces,
        landmark_bary=lm_bary,
        regions={"face": np.arange(v)},
        albedo_mean=albedo_mean,
        albedo_basis=albedo_basis,
        albedo_names=albedo_names,
        expression_kind=expr_kind,
        provenance=provenance,
        licence=LICENCE,
    )
