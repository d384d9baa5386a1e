"""Model packages: the folder the runtime loads (``NAME.fcpkg/``), read and validated.

A package holds everything :class:`facecraft.sdk.pipeline.pipeline.FaceCraft` needs besides code:
the
ONNX graphs, a reference to the face model they decode with, and a ``manifest.json`` describing
both. :mod:`facecraft.export` writes packages; this module only reads them, and refuses anything
inconsistent with a :class:`~facecraft.sdk.errors.ModelFileError` that names the problem.

Layout (format ``facecraft.model_package``, version 1)::

    NAME.fcpkg/
        manifest.json
        regressor.onnx          # required
        refiner.onnx            # optional, likewise "combiner" / "decoder"
        face_model.fcm          # only when the face model is not the built-in starter

``manifest.json``:

================  ==========================================================================
key               value
================  ==========================================================================
``format``        ``"facecraft.model_package"``
``format_version``  1 (a newer version is refused: upgrade FaceCraft)
``package``       ``{"name", "version", "description"}``
``created``       ISO 8601 UTC time of writing
``face_model``    ``{"name", "file", "content_sha256", "topology_sha256", "num_vertices",
                  "num_triangles", "num_identity", "num_expression", "num_albedo"}``; ``file``
                  is ``null`` for the built-in ``"starter"`` (resolved with
                  :func:`facecraft.sdk.models.default_model.resolve_model`), else a path relative to
                  the package
``models``        role -> entry (below); ``"regressor"`` is required
``training``      the training config and checkpoint metadata (JSON, informational)
``versions``      ``facecraft``, ``torch``, ``onnx``, ``onnxruntime``, ``python`` at export
================  ==========================================================================

A model entry: ``file`` (relative path), ``sha256`` (of the file), ``size_bytes``, ``opset``,
``inputs`` / ``outputs`` (lists of ``{"name", "shape", "dtype"}``; symbolic dimensions are
strings such as ``"batch"``), ``parity`` (``{"max_abs_diff", "tolerance", "inputs",
"num_inputs"}``: the largest absolute difference between ONNX Runtime and the torch original on
the recorded inputs), ``exporter`` (``{"name", "mode", "torch", "onnx"}``). The regressor entry
adds ``input_spec`` (crop size, mean, std, colour order; the normalisation runs inside the graph,
which takes RGB in [0, 1]), ``coeff_layout`` (identity / expression / albedo sizes; the vector
order is identity | expression | albedo | angles (3) | lighting (27) | translation (3)) and
``translation_offset``. A refiner entry's inputs are named from :data:`REFINER_INPUTS` (the
runtime fills them by name) and its first output is the (B, V, 3) fine albedo, encoded as its
``output_encoding`` says (:data:`REFINER_ENCODINGS`; default ``"albedo"``). The regressor's
outputs are ``coeffs`` (the layout's vector) and optionally ``features`` (pooled backbone
features, which a refiner graph holding the texture decoder takes as ``image_feature``).

Validation (:func:`load_package`): the format and version, every listed file present inside the
folder and matching its SHA-256, the regressor's input and output shapes against its input spec
and layout, the face model's sizes and topology against the manifest, the layout against the
face model (no more modes than it has), and per-vertex refiner shapes against its vertex count.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ..errors import InvalidInputError, ModelFileError
from ..models.morphable_model import MorphableModel
from .coeff_layout import CoeffLayout

__all__ = [
    "PACKAGE_FORMAT",
    "PACKAGE_FORMAT_VERSION",
    "MANIFEST_NAME",
    "MODEL_ROLES",
    "REFINER_INPUTS",
    "REFINER_ENCODINGS",
    "TensorSpec",
    "ModelEntry",
    "FaceModelRef",
    "InputNormalisation",
    "ModelPackage",
    "default_package_path",
    "read_manifest",
    "load_package",
    "file_sha256",
    "topology_sha256",
]

#: ``format`` value of a package manifest.
PACKAGE_FORMAT = "facecraft.model_package"
#: Newest manifest version this FaceCraft reads (and the one :mod:`facecraft.export` writes).
PACKAGE_FORMAT_VERSION = 1
#: The manifest's file name inside a package folder.
MANIFEST_NAME = "manifest.json"
#: Roles a package may hold; only ``"regressor"`` is required.
MODEL_ROLES = ("regressor", "refiner", "combiner", "decoder")
#: Refiner inputs the runtime can provide, by ONNX input name (B photos, V vertices).
REFINER_INPUTS: dict[str, str] = {
    "coarse_albedo": "(B, V, 3) float32 linear RGB in [0, 1]: the 3DMM albedo",
    "photo_colors": "(B, V, 3) float32 photo RGB in [0, 1] at the projected vertices, 0 where "
                    "not visible",
    "visibility": "(B, V, 1) float32: 1 where the camera sees the vertex, else 0",
    "delit_colors": "(B, V, 3) float32 photo colours divided by the SH irradiance, 0 where not "
                    "visible",
    "normals": "(B, V, 3) float32 unit vertex normals, world frame",
    "vertex_input": "(B, V, 7) float32: coarse_albedo | photo_colors | visibility",
    "image_feature": "(B, F) float32: the regressor's pooled backbone features (its 'features' "
                     "output), the texture decoder's input",
}
#: How a refiner's first output encodes colour: ``"albedo"`` RGB in [0, 1], or ``"signed"``
#: ``2 c - 1`` (the texture nets' convention); the manifest entry's ``output_encoding``.
REFINER_ENCODINGS = ("albedo", "signed")
_COEFF_ORDER = ("identity", "expression", "albedo", "angles", "lighting", "translation")
_BUILTIN_FACE_MODELS = ("starter",)


def default_package_path() -> Path:
    """Where the built-in package ships: ``facecraft/sdk/data/default.fcpkg`` (package data)."""
    return Path(__file__).resolve().parents[1] / "data" / "default.fcpkg"


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def topology_sha256(model: MorphableModel) -> str:
    """SHA-256 over a face model's integer topology: triangles, UV triangles, landmark faces.

    Integer arrays only, so a model regenerated on another machine (float round-off in its
    bases) keeps the same topology hash; the content hash covers the floats.
    """
    h = hashlib.sha256()
    for name, a in (("triangles", model.triangles), ("uv_triangles", model.uv_triangles),
                    ("landmark_faces", model.landmark_faces)):
        a = np.ascontiguousarray(a, np.int32)
        h.update(f"\0{name}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- small specs
@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output as the manifest records it.

    Attributes:
        name: the ONNX name.
        shape: dimensions; ints are fixed, strings symbolic (``"batch"``).
        dtype: element type name, e.g. ``"float32"``.
    """

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, d: Any, where: str) -> TensorSpec:
        if not isinstance(d, Mapping) or not isinstance(d.get("name"), str) \
                or not isinstance(d.get("shape"), list):
            raise ModelFileError(f"{where}: expected {{'name': str, 'shape': list, 'dtype': str}}, "
                                 f"got {d!r}")
        shape = tuple(d["shape"])
        if not all((isinstance(s, int) and not isinstance(s, bool) and s >= 0)
                   or isinstance(s, str) for s in shape):
            raise ModelFileError(f"{where}: shape entries must be ints >= 0 or names, got "
                                 f"{list(shape)}")
        return cls(name=d["name"], shape=shape, dtype=str(d.get("dtype", "float32")))


@dataclass(frozen=True)
class InputNormalisation:
    """What the regressor graph expects of its input (the manifest's ``input_spec``).

    Attributes:
        crop_size: side of the square aligned crop in pixels.
        mean: per-channel mean subtracted from RGB in [0, 1] (inside the graph).
        std: per-channel divisor applied after the mean (inside the graph).
        colour_order: ``"RGB"``.

    The graph takes (B, 3, crop_size, crop_size) float32 RGB in [0, 1]; mean and std are
    recorded for other runtimes and are already applied by the graph.
    """

    crop_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    colour_order: str = "RGB"


@dataclass(frozen=True)
class ModelEntry:
    """One ONNX graph of a package.

    Attributes:
        role: ``"regressor"``, ``"refiner"``, ``"combiner"`` or ``"decoder"``.
        path: absolute path of the ``.onnx`` file.
        sha256: its recorded (and verified) SHA-256.
        opset: the default-domain opset it was exported with.
        inputs: graph inputs, in order.
        outputs: graph outputs, in order.
        parity_max_abs_diff: max |ONNX Runtime - torch| measured at export (None if absent).
        meta: the whole manifest entry (role-specific fields included).
    """

    role: str
    path: Path
    sha256: str
    opset: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    parity_max_abs_diff: float | None
    meta: dict[str, Any]

    @property
    def batch_dynamic(self) -> bool:
        """Whether the first input's batch dimension is symbolic."""
        return bool(self.inputs) and isinstance(self.inputs[0].shape[0], str)


@dataclass(frozen=True)
class FaceModelRef:
    """The manifest's face-model reference.

    Attributes:
        name: ``"starter"`` (built in) or the model's name.
        file: absolute path of the package's ``.fcm`` file, or None for the built-in model.
        content_sha256: the model file's content hash at export.
        topology_sha256: :func:`topology_sha256` at export.
        num_vertices, num_triangles, num_identity, num_expression, num_albedo: its sizes.
    """

    name: str
    file: Path | None
    content_sha256: str
    topology_sha256: str
    num_vertices: int
    num_triangles: int
    num_identity: int
    num_expression: int
    num_albedo: int

    @property
    def is_builtin(self) -> bool:
        return self.file is None


@dataclass(frozen=True, eq=False)
class ModelPackage:
    """A loaded, validated model package.

    Attributes:
        path: the package folder.
        manifest: the parsed ``manifest.json``.
        name: package name. version: package version string.
        face_model_ref: the manifest's face-model reference.
        face_model: the face model itself, loaded and checked against the reference.
        models: role -> :class:`ModelEntry`.
        input_spec: the regressor's :class:`InputNormalisation`.
        coeff_layout: the regressor's :class:`CoeffLayout`.
        translation_offset: (3,) metres already added to the translation block by the graph.
    """

    path: Path
    manifest: dict[str, Any]
    name: str
    version: str
    face_model_ref: FaceModelRef
    face_model: MorphableModel
    models: dict[str, ModelEntry]
    input_spec: InputNormalisation
    coeff_layout: CoeffLayout
    translation_offset: tuple[float, float, float]

    @property
    def regressor(self) -> ModelEntry:
        return self.models["regressor"]

    @property
    def refiner(self) -> ModelEntry | None:
        return self.models.get("refiner")

    def summary(self) -> dict[str, Any]:
        """A JSON-able overview (name, version, face model, models with their parity)."""
        return {
            "path": str(self.path), "name": self.name, "version": self.version,
            "face_model": self.face_model_ref.name,
            "crop_size": self.input_spec.crop_size,
            "coeff_layout": self.coeff_layout.sizes,
            "models": {r: {"file": e.path.name, "opset": e.opset,
                           "parity_max_abs_diff": e.parity_max_abs_diff}
                       for r, e in self.models.items()},
        }


# --------------------------------------------------------------------------- reading
def _need(cond: bool, where: Path, msg: str) -> None:
    if not cond:
        raise ModelFileError(f"{where}: {msg}")


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Read and check a package's ``manifest.json`` (format, version, required keys).

    Files and hashes are not checked; :func:`load_package` does that.

    Args:
        path: the package folder (or its ``manifest.json``).

    Raises:
        ModelFileError: no such folder or manifest, unreadable JSON, another format, a newer
            version, or a missing key.
    """
    folder = Path(path)
    if folder.name == MANIFEST_NAME:
        folder = folder.parent
    if not folder.is_dir():
        hint = (" (a package is a folder; unpack an archive first)" if folder.is_file() else "")
        raise ModelFileError(f"{folder}: no such model package folder{hint}")
    mpath = folder / MANIFEST_NAME
    if not mpath.is_file():
        raise ModelFileError(f"{folder}: not a model package (no {MANIFEST_NAME}); write one "
                             "with `facecraft export package`")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ModelFileError(f"{mpath}: unreadable manifest ({e})") from None
    _need(isinstance(manifest, dict), mpath, "the manifest must be a JSON object")
    fmt = manifest.get("format")
    _need(fmt == PACKAGE_FORMAT, mpath,
          f"format is {fmt!r}, expected {PACKAGE_FORMAT!r} (not a FaceCraft model package)")
    ver = manifest.get("format_version")
    _need(isinstance(ver, int) and not isinstance(ver, bool) and ver >= 1, mpath,
          f"format_version must be an int >= 1, got {ver!r}")
    _need(ver <= PACKAGE_FORMAT_VERSION, mpath,
          f"format_version {ver} was written by a newer FaceCraft (this one reads up to "
          f"{PACKAGE_FORMAT_VERSION}); upgrade facecraft")
    for key in ("package", "face_model", "models"):
        _need(isinstance(manifest.get(key), dict), mpath, f"missing or malformed {key!r}")
    return manifest


def _inside(folder: Path, rel: object, where: str) -> Path:
    """Resolve a manifest file reference, refusing absolute paths and escapes."""
    if not isinstance(rel, str) or not rel:
        raise ModelFileError(f"{where}: expected a relative file name, got {rel!r}")
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts:
        raise ModelFileError(f"{where}: file {rel!r} must be a path inside the package")
    return folder / Path(*p.parts)


def _entry(folder: Path, role: str, d: object, verify: bool) -> ModelEntry:
    where = f"{folder / MANIFEST_NAME} models.{role}"
    if not isinstance(d, Mapping):
        raise ModelFileError(f"{where}: expected an object, got {type(d).__name__}")
    for key in ("file", "sha256", "opset", "inputs", "outputs"):
        if key not in d:
            raise ModelFileError(f"{where}: missing {key!r}")
    path = _inside(folder, d["file"], where)
    if not path.is_file():
        raise ModelFileError(f"{folder}: {role} file {d['file']!r} is missing from the package")
    if verify:
        got = file_sha256(path)
        if got != d["sha256"]:
            raise ModelFileError(f"{path}: SHA-256 mismatch (manifest {str(d['sha256'])[:16]}..., "
                                 f"file {got[:16]}...): the file is corrupt or was replaced "
                                 "after export; re-export the package")
    ins = d["inputs"] if isinstance(d["inputs"], list) else None
    outs = d["outputs"] if isinstance(d["outputs"], list) else None
    if not ins or not outs:
        raise ModelFileError(f"{where}: inputs and outputs must be non-empty lists")
    parity = d.get("parity") or {}
    diff = parity.get("max_abs_diff") if isinstance(parity, Mapping) else None
    opset = d["opset"]
    if not isinstance(opset, int) or isinstance(opset, bool) or opset < 7:
        raise ModelFileError(f"{where}: opset must be an int >= 7, got {opset!r}")
    return ModelEntry(
        role=role, path=path, sha256=str(d["sha256"]), opset=opset,
        inputs=tuple(TensorSpec.from_dict(x, f"{where}.inputs") for x in ins),
        outputs=tuple(TensorSpec.from_dict(x, f"{where}.outputs") for x in outs),
        parity_max_abs_diff=None if diff is None else float(diff),
        meta=dict(d),
    )


def _regressor_specs(folder: Path, entry: ModelEntry
                     ) -> tuple[InputNormalisation, CoeffLayout, tuple[float, float, float]]:
    where = f"{folder / MANIFEST_NAME} models.regressor"
    d = entry.meta
    try:
        spec = d["input_spec"]
        norm = InputNormalisation(crop_size=int(spec["crop_size"]),
                                  mean=tuple(float(x) for x in spec["mean"]),
                                  std=tuple(float(x) for x in spec["std"]),
                                  colour_order=str(spec.get("colour_order", "RGB")))
        lay = d["coeff_layout"]
        layout = CoeffLayout(num_identity=int(lay["num_identity"]),
                                   num_expression=int(lay["num_expression"]),
                                   num_albedo=int(lay["num_albedo"]))
        offset = tuple(float(x) for x in d.get("translation_offset", (0.0, 0.0, 0.0)))
    except (KeyError, TypeError, ValueError, InvalidInputError) as e:
        raise ModelFileError(f"{where}: malformed input_spec / coeff_layout "
                             f"({type(e).__name__}: {e})") from None
    if len(norm.mean) != 3 or len(norm.std) != 3 or len(offset) != 3:
        raise ModelFileError(f"{where}: mean, std and translation_offset need 3 values each")
    if norm.colour_order != "RGB":
        raise ModelFileError(f"{where}: colour_order {norm.colour_order!r} is not supported "
                             "(only 'RGB')")
    x = entry.inputs[0]
    s = norm.crop_size
    _need(len(entry.inputs) == 1 and len(x.shape) == 4 and list(x.shape[1:]) == [3, s, s],
          folder, f"the regressor input must be one (batch, 3, {s}, {s}) tensor (the input "
                  f"spec's crop size), the manifest says {[i.to_dict() for i in entry.inputs]}")
    y = next((t for t in entry.outputs if t.name == "coeffs"), entry.outputs[0])
    _need(len(y.shape) == 2 and y.shape[1] == layout.size, folder,
          f"coefficient layout mismatch: the layout {layout.sizes} has {layout.size} values but "
          f"the regressor outputs {list(y.shape)}")
    return norm, layout, offset  # type: ignore[return-value]


def _face_model(folder: Path, d: Mapping[str, Any], cache_dir: str | Path | None
                ) -> tuple[FaceModelRef, MorphableModel]:
    from ..models.default_model import default_model_path, load_default_model
    from ..models.model_file import load_model, read_model_info

    where = f"{folder / MANIFEST_NAME} face_model"
    try:
        name = str(d["name"])
        ref_sizes = {k: int(d[k]) for k in ("num_vertices", "num_triangles", "num_identity",
                                            "num_expression", "num_albedo")}
        content, topo = str(d["content_sha256"]), str(d["topology_sha256"])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{where}: malformed ({type(e).__name__}: {e})") from None
    rel = d.get("file")
    if rel is None:
        if name not in _BUILTIN_FACE_MODELS:
            raise ModelFileError(f"{where}: {name!r} is not a built-in face model "
                                 f"({', '.join(_BUILTIN_FACE_MODELS)}) and no file is given")
        model = load_default_model(cache_dir)
        got_content = read_model_info(default_model_path(cache_dir)).content_sha256
        path = None
    else:
        path = _inside(folder, rel, where)
        if not path.is_file():
            raise ModelFileError(f"{folder}: face model file {rel!r} is missing from the package")
        model = load_model(path)  # verifies the file's own content hash
        got_content = read_model_info(path).content_sha256
    got_sizes = {"num_vertices": model.num_vertices, "num_triangles": int(len(model.triangles)),
                 "num_identity": model.num_identity, "num_expression": model.num_expression,
                 "num_albedo": model.num_albedo}
    if got_sizes != ref_sizes:
        raise ModelFileError(f"{where}: the face model {name!r} has sizes {got_sizes} but the "
                             f"package was exported for {ref_sizes}")
    if topology_sha256(model) != topo:
        raise ModelFileError(f"{where}: the face model {name!r} has another topology than the "
                             "package was exported for (triangles / UVs / landmarks differ)")
    if got_content != content:
        if path is not None:
            raise ModelFileError(f"{where}: content hash mismatch for {rel!r}: the package was "
                                 "exported with another version of this face model")
        # The built-in starter is regenerated from code on each machine; float round-off may
        # differ across platforms while sizes and topology (checked above) match exactly.
        warnings.warn(f"the built-in face model {name!r} differs from the one the package "
                      f"{folder.name} was exported with (content {got_content[:12]} vs "
                      f"{content[:12]}); sizes and topology match, results may differ slightly",
                      RuntimeWarning, stacklevel=3)
    return FaceModelRef(name=name, file=path, content_sha256=content, topology_sha256=topo,
                        **ref_sizes), model


def _check_per_vertex(folder: Path, entry: ModelEntry, nv: int) -> None:
    for t in entry.inputs + entry.outputs:
        if len(t.shape) == 3 and isinstance(t.shape[1], int) and t.shape[1] != nv:
            raise ModelFileError(f"{folder}: {entry.role} tensor {t.name!r} is for "
                                 f"{t.shape[1]} vertices, the face model has {nv}")


def load_package(path: str | Path | None = None, *, verify: bool = True,
                 cache_dir: str | Path | None = None) -> ModelPackage:
    """Load and validate a model package.

    Args:
        path: the ``.fcpkg`` folder; ``None`` for the built-in one (:func:`default_package_path`).
        verify: check every model file's SHA-256 (a few ms per MB).
        cache_dir: where the built-in starter face model is cached (see
            :func:`facecraft.sdk.models.default_model.default_cache_dir`).

    Returns:
        :class:`ModelPackage` with its face model loaded.

    Raises:
        ModelFileError: anything missing or inconsistent; the message names the file and field.
    """
    if path is None:
        path = default_package_path()
        if not (path / MANIFEST_NAME).is_file():
            raise ModelFileError(f"the built-in model package is not built ({path} has no "
                                 f"{MANIFEST_NAME}); build it with `facecraft export default "
                                 "--regressor CKPT`, or pass a package")
    folder = Path(path)
    manifest = read_manifest(folder)
    models_d = manifest["models"]
    unknown = sorted(set(models_d) - set(MODEL_ROLES))
    if unknown:
        raise ModelFileError(f"{folder}: unknown model roles {unknown}; known: "
                             f"{list(MODEL_ROLES)}")
    if "regressor" not in models_d:
        raise ModelFileError(f"{folder}: the package has no regressor (models: "
                             f"{sorted(models_d)})")
    models = {role: _entry(folder, role, models_d[role], verify) for role in MODEL_ROLES
              if role in models_d}
    norm, layout, offset = _regressor_specs(folder, models["regressor"])
    ref, face_model = _face_model(folder, manifest["face_model"], cache_dir)
    too_many = {k: (n, have) for k, n, have in (
        ("identity", layout.num_identity, face_model.num_identity),
        ("expression", layout.num_expression, face_model.num_expression),
        ("albedo", layout.num_albedo, face_model.num_albedo)) if n > have}
    if too_many:
        raise ModelFileError(f"{folder}: coefficient layout mismatch: the regressor predicts more "
                             f"modes than the face model {ref.name!r} has (block: (layout, model)) "
                             f"{too_many}")
    refiner = models.get("refiner")
    if refiner is not None:
        bad = [t.name for t in refiner.inputs if t.name not in REFINER_INPUTS]
        if bad:
            raise ModelFileError(f"{folder}: refiner inputs {bad} are not ones the runtime "
                                 f"provides; name them from {sorted(REFINER_INPUTS)}")
        out = refiner.outputs[0]
        if len(out.shape) != 3 or out.shape[2] != 3:
            raise ModelFileError(f"{folder}: the refiner's first output must be (batch, V, 3) "
                                 f"fine albedo, the manifest says {list(out.shape)}")
        enc = refiner.meta.get("output_encoding", "albedo")
        if enc not in REFINER_ENCODINGS:
            raise ModelFileError(f"{folder}: refiner output_encoding {enc!r} is not one of "
                                 f"{list(REFINER_ENCODINGS)}")
        reg_outs = {t.name: t for t in models["regressor"].outputs}
        feat_in = next((t for t in refiner.inputs if t.name == "image_feature"), None)
        if feat_in is not None:
            if "features" not in reg_outs:
                raise ModelFileError(f"{folder}: the refiner takes image_feature but the "
                                     f"regressor has no 'features' output (outputs "
                                     f"{sorted(reg_outs)}); re-export it")
            have, want = reg_outs["features"].shape[-1], feat_in.shape[-1]
            if isinstance(have, int) and isinstance(want, int) and have != want:
                raise ModelFileError(f"{folder}: the refiner takes {want} image features, the "
                                     f"regressor gives {have}: they were not trained together")
    for entry in models.values():
        if entry.role != "regressor":
            _check_per_vertex(folder, entry, face_model.num_vertices)
    pkg = manifest["package"]
    return ModelPackage(path=folder, manifest=manifest, name=str(pkg.get("name", folder.stem)),
                        version=str(pkg.get("version", "")), face_model_ref=ref,
                        face_model=face_model, models=models, input_spec=norm,
                        coeff_layout=layout, translation_offset=offset)
