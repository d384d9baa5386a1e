"""Writing model packages (the folder format read by :mod:`facecraft.sdk.pipeline.package`).

* :func:`export_regressor` builds a whole package from a regressor checkpoint: the ONNX graph
  (checked, verified against torch), the face-model reference, the manifest.
* :func:`add_model` exports another network (the texture refiner, a decoder) into an existing
  package with one call and re-validates it.

Packages are written into a staging folder next to the target and renamed into place only after
:func:`facecraft.sdk.pipeline.package.load_package` accepts them, so a failed export never leaves a
half-written package behind (and never destroys the previous one).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from facecraft.sdk.atomic_file import write_atomic
from facecraft.sdk.errors import FaceCraftError, InvalidInputError, ModelFileError
from facecraft.sdk.models.morphable_model import MorphableModel
from facecraft.sdk.pipeline.package import (
    MANIFEST_NAME,
    MODEL_ROLES,
    PACKAGE_FORMAT,
    PACKAGE_FORMAT_VERSION,
    ModelPackage,
    file_sha256,
    load_package,
    read_manifest,
    topology_sha256,
)

from .onnx_export import (
    ExportedModel,
    ExportSettings,
    export_graph_net,
    export_regressor_onnx,
    regressor_parity_crops,
)

__all__ = ["export_regressor", "add_model", "face_model_reference", "package_versions"]

_FACE_MODEL_FILE = "face_model.fcm"


def package_versions() -> dict[str, str]:
    """Versions recorded in a manifest: facecraft, torch, onnx, onnxruntime, numpy, python."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("facecraft", "torch", "onnx", "onnxruntime", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    out["torch"] = torch.__version__
    out["python"] = platform.python_version()
    return out


def face_model_reference(spec: str | Path, cache_dir: str | Path | None = None
                         ) -> tuple[dict[str, Any], MorphableModel, Path | None]:
    """Resolve a face model for a manifest.

    Args:
        spec: ``"starter"`` (built in) or a ``.fcm`` path (copied into the package).
        cache_dir: the built-in model's cache folder.

    Returns:
        ``(reference, model, file_to_copy)``: the manifest's ``face_model`` object (its
        ``file`` is ``None`` for the built-in), the loaded model, and the source file to copy
        into the package (None for the built-in).
    """
    from facecraft.sdk.models.default_model import (
        DEFAULT_MODEL_NAME,
        default_model_path,
        load_default_model,
    )
    from facecraft.sdk.models.model_file import load_model, read_model_info

    if str(spec) == DEFAULT_MODEL_NAME:
        model = load_default_model(cache_dir)
        content = read_model_info(default_model_path(cache_dir)).content_sha256
        name, rel, src = DEFAULT_MODEL_NAME, None, None
    else:
        src = Path(spec)
        model = load_model(src)
        content = read_model_info(src).content_sha256
        name, rel = model.name, _FACE_MODEL_FILE
    ref = {"name": name, "file": rel, "content_sha256": content,
           "topology_sha256": topology_sha256(model), "num_vertices": model.num_vertices,
           "num_triangles": int(len(model.triangles)), "num_identity": model.num_identity,
           "num_expression": model.num_expression, "num_albedo": model.num_albedo}
    return ref, model, src


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat().replace(
        "+00:00", "Z")


def _write_json(path: Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def _install(staging: Path, out: Path, overwrite: bool) -> None:
    """Move a finished staging folder to ``out`` (replacing an old package if allowed)."""
    if out.exists():
        if not overwrite:
            raise InvalidInputError(f"{out} exists; pass overwrite=True (--force) to replace it")
        if not (out / MANIFEST_NAME).is_file() and any(out.iterdir()):
            raise InvalidInputError(f"{out} exists and is not a model package; refusing to "
                                    "replace it")
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        try:
            os.replace(staging, out)
        except BaseException:
            os.replace(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out)


def _training_section(checkpoint: Path | None, training_config: Any) -> dict[str, Any]:
    from facecraft.training.regressor import read_regressor_meta

    config = training_config
    if isinstance(config, (str, Path)):
        try:
            config = json.loads(Path(config).read_text())
        except (OSError, ValueError) as e:
            raise InvalidInputError(f"cannot read the training config {config}: {e}") from None
    out: dict[str, Any] = {"config": config}
    if checkpoint is not None:
        out["checkpoint"] = {"file": checkpoint.name, "sha256": file_sha256(checkpoint),
                             "meta": read_regressor_meta(checkpoint)}
    return out


def _default_training_config(checkpoint: Path) -> Path | None:
    """``RUN/config.json`` for a checkpoint at ``RUN/checkpoints/*.safetensors``."""
    cand = checkpoint.parent.parent / "config.json"
    return cand if checkpoint.parent.name == "checkpoints" and cand.is_file() else None


def export_regressor(checkpoint: str | Path | nn.Module, out_pkg: str | Path, *,
                     opset: int = 17, dynamic_batch: bool = True,
                     face_model: str | Path | None = None,
                     parity_photos: Sequence[str | Path] | None = None,
                     name: str | None = None, version: str = "0.1.0", description: str = "",
                     training_config: str | Path | Mapping[str, Any] | None = None,
                     exporter: str = "torchscript", overwrite: bool = True,
                     cache_dir: str | Path | None = None) -> ModelPackage:
    """Write a model package holding a regressor.

    Args:
        checkpoint: a regressor ``.safetensors`` checkpoint (or a
            :class:`~facecraft.training.regressor.CoeffRegressor`).
        out_pkg: the package folder to write (``NAME.fcpkg``).
        opset: ONNX opset.
        dynamic_batch: symbolic batch dimension.
        face_model: ``"starter"`` or a ``.fcm`` path; default: the training config's ``model``
            when known, else ``"starter"``.
        parity_photos: photo files / folders whose aligned faces verify the export (default:
            rendered synthetic faces).
        name: package name (default: the folder name without ``.fcpkg``).
        version: package version string.
        description: free text for the manifest.
        training_config: JSON file or dict; default ``RUN/config.json`` next to a checkpoint in
            ``RUN/checkpoints/``.
        exporter: ``"torchscript"`` or ``"dynamo"`` (opset >= 18).
        overwrite: replace an existing package at ``out_pkg``.
        cache_dir: the built-in face model's cache folder.

    Returns:
        The written package, loaded and validated.

    Raises:
        InvalidInputError: bad arguments, or the regressor's layout does not fit the face model.
        ModelFileError: an unreadable checkpoint or face model.
        ExportParityError: ONNX Runtime disagrees with torch beyond 1e-4.
    """
    from facecraft.training.regressor import CoeffLayout, CoeffRegressor, load_regressor

    settings = ExportSettings(opset=opset, dynamic_batch=dynamic_batch, exporter=exporter)
    ckpt_path = None
    if isinstance(checkpoint, CoeffRegressor):
        regressor = checkpoint
    else:
        ckpt_path = Path(checkpoint)
        regressor = load_regressor(ckpt_path)
        if training_config is None:
            training_config = _default_training_config(ckpt_path)
    training = _training_section(ckpt_path, training_config)
    if face_model is None:
        cfg = training.get("config")
        face_model = cfg.get("model", "starter") if isinstance(cfg, Mapping) else "starter"
    ref, model, fcm_src = face_model_reference(face_model, cache_dir)
    full = CoeffLayout.from_model(model)
    lay = regressor.layout
    if (lay.num_identity > full.num_identity or lay.num_expression > full.num_expression
            or lay.num_albedo > full.num_albedo):
        raise InvalidInputError(f"the regressor's layout {lay} does not fit the face model "
                                f"{ref['name']!r} ({full}); pass the model it was trained with")
    want = regressor.extra_meta.get("face_model_sha256")
    if want and want != ref["content_sha256"]:
        raise InvalidInputError(f"the checkpoint was trained with face model {want[:12]}..., "
                                f"not {ref['name']!r} ({ref['content_sha256'][:12]}...)")
    s = regressor.input_spec.crop_size
    crops, what = regressor_parity_crops(s, photos=parity_photos, face_model=model)

    out = Path(out_pkg)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.staging-"))
    staging.chmod(0o755)  # mkdtemp makes it private
    try:
        exported = export_regressor_onnx(regressor, staging / "regressor.onnx",
                                         settings=settings, parity_crops=crops,
                                         parity_description=what)
        entry = exported.manifest_entry("regressor.onnx")
        entry.update(
            input_spec={**regressor.input_spec.to_dict(), "value_range": [0.0, 1.0],
                        "normalised_in_graph": True},
            coeff_layout={**lay.to_dict(), "order": list(lay.sizes)},
            translation_offset=list(regressor.translation_offset),
            backbone={"name": regressor.backbone_name, "kwargs": regressor.backbone_kwargs},
        )
        if fcm_src is not None:
            shutil.copyfile(fcm_src, staging / _FACE_MODEL_FILE)
        manifest = {
            "format": PACKAGE_FORMAT,
            "format_version": PACKAGE_FORMAT_VERSION,
            "package": {"name": name or out.name.removesuffix(".fcpkg"), "version": version,
                        "description": description},
            "created": _now(),
            "face_model": ref,
            "models": {"regressor": entry},
            "training": training,
            "versions": package_versions(),
        }
        _write_json(staging / MANIFEST_NAME, manifest)
        load_package(staging, cache_dir=cache_dir)  # refuse to install what cannot be loaded
        _install(staging, out, overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return load_package(out, cache_dir=cache_dir)


def add_model(package: str | Path, role: str, module: nn.Module,
              example_inputs: Mapping[str, torch.Tensor], *, output_names: Sequence[str],
              parity_inputs: Sequence[Mapping[str, torch.Tensor]] | None = None,
              parity_description: str | None = None,
              settings: ExportSettings | None = None,
              extra: Mapping[str, Any] | None = None, method: str | None = None,
              cache_dir: str | Path | None = None) -> ModelPackage:
    """Export one more network into an existing package (e.g. the texture refiner).

    ``add_model(pkg, "refiner", net, {"vertex_input": x}, output_names=("fine_albedo",))``
    exports ``net`` (switched to its ``set_form("gather")`` form when it has one) as
    ``refiner.onnx``, verifies it against torch, records it in the manifest and validates the
    package. A failure leaves the package as it was.

    Args:
        package: the package folder.
        role: ``"refiner"``, ``"combiner"`` or ``"decoder"`` (an existing entry is replaced).
        module: the network.
        example_inputs: input name -> tensor; a refiner's names come from
            :data:`facecraft.sdk.pipeline.package.REFINER_INPUTS` (per-vertex tensors (B, V, C)).
        output_names: ONNX output names; a refiner's first output is the (B, V, 3) fine albedo.
        parity_inputs: input sets to verify on (default: ``example_inputs``).
        parity_description: what they are, for the manifest.
        settings: see :class:`~facecraft.export.onnx_export.ExportSettings` (default: its
            defaults).
        extra: more JSON-able fields for the manifest entry (e.g. the net's config).
        method: export this method instead of ``forward``.
        cache_dir: the built-in face model's cache folder.

    Returns:
        The updated package, validated.
    """
    if role not in MODEL_ROLES or role == "regressor":
        raise InvalidInputError(f"role must be one of {list(MODEL_ROLES[1:])}, got {role!r}; "
                                "re-export the regressor with export_regressor")
    folder = Path(package)
    manifest = read_manifest(folder)
    file = f"{role}.onnx"
    tmp = folder / f".{file}.tmp-{os.getpid()}"
    exported: ExportedModel | None = None
    old_manifest = (folder / MANIFEST_NAME).read_text(encoding="utf-8")
    backup = None
    try:
        exported = export_graph_net(module, example_inputs, tmp, output_names=output_names,
                                    settings=settings or ExportSettings(),
                                    parity_inputs=parity_inputs,
                                    parity_description=parity_description, method=method)
        target = folder / file
        if target.exists():
            backup = folder / f".{file}.old-{os.getpid()}"
            os.replace(target, backup)
        os.replace(tmp, target)
        entry = exported.manifest_entry(file)
        if extra:
            json.dumps(dict(extra))  # JSON-able or raise
            entry.update(dict(extra))
        manifest["models"][role] = entry
        manifest["versions"] = package_versions()
        _write_json(folder / MANIFEST_NAME, manifest)
        pkg = load_package(folder, cache_dir=cache_dir)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        (folder / MANIFEST_NAME).write_text(old_manifest, encoding="utf-8")
        if exported is not None:
            (folder / file).unlink(missing_ok=True)
        if backup is not None:
            os.replace(backup, folder / file)
        if isinstance(e, TypeError):
            raise InvalidInputError(f"extra must be JSON-able: {e}") from None
        if isinstance(e, ModelFileError):
            raise FaceCraftError(f"the {role} does not fit the package: {e}") from None
        raise
    if backup is not None:
        backup.unlink(missing_ok=True)
    return pkg
