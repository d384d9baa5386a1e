"""A Triton Inference Server model repository from a model package.

``write_triton_repository(pkg, out)`` writes, per package model::

    out/<package>_<role>/config.pbtxt
    out/<package>_<role>/1/model.onnx

served by Triton's ONNX Runtime backend (``platform: "onnxruntime_onnx"``) with dynamic batching
for graphs exported with a dynamic batch (``max_batch_size`` then excludes the batch dimension
from ``dims``, as Triton expects). The face model and the pre- and post-processing stay with the
FaceCraft runtime; Triton serves the networks only.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.pipeline.package import ModelEntry, ModelPackage, TensorSpec, load_package

__all__ = ["write_triton_repository", "triton_config"]

_TYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "int64": "TYPE_INT64",
          "int32": "TYPE_INT32", "uint8": "TYPE_UINT8", "bool": "TYPE_BOOL"}


def _tensor(t: TensorSpec, batched: bool) -> str:
    dims = list(t.shape[1:] if batched else t.shape)
    if t.dtype not in _TYPES:
        raise InvalidInputError(f"tensor {t.name!r} has dtype {t.dtype}, which the Triton "
                                "export does not map")
    shown = ", ".join(str(d) if isinstance(d, int) else "-1" for d in dims)
    return (f'  {{\n    name: "{t.name}"\n    data_type: {_TYPES[t.dtype]}\n'
            f"    dims: [ {shown} ]\n  }}")


def triton_config(name: str, entry: ModelEntry, *, max_batch_size: int = 8,
                  kind: str = "KIND_CPU", instances: int = 1) -> str:
    """The ``config.pbtxt`` text for one package model.

    Args:
        name: the Triton model name.
        entry: the package model.
        max_batch_size: Triton's batch limit for dynamic-batch graphs (fixed-batch graphs get 0).
        kind: ``"KIND_CPU"`` or ``"KIND_GPU"``.
        instances: model instances per device.
    """
    if kind not in ("KIND_CPU", "KIND_GPU"):
        raise InvalidInputError(f"kind must be KIND_CPU or KIND_GPU, got {kind!r}")
    batched = entry.batch_dynamic and max_batch_size > 0
    lines = [f'name: "{name}"', 'platform: "onnxruntime_onnx"',
             f"max_batch_size: {max_batch_size if batched else 0}",
             "input [\n" + ",\n".join(_tensor(t, batched) for t in entry.inputs) + "\n]",
             "output [\n" + ",\n".join(_tensor(t, batched) for t in entry.outputs) + "\n]"]
    if batched:
        lines.append("dynamic_batching { }")
    lines.append(f"instance_group [\n  {{\n    count: {instances}\n    kind: {kind}\n  }}\n]")
    return "\n".join(lines) + "\n"


def write_triton_repository(package: str | Path | ModelPackage, out: str | Path, *,
                            max_batch_size: int = 8, kind: str = "KIND_CPU") -> list[Path]:
    """Write a Triton model repository for every model of a package.

    Args:
        package: the package folder or a loaded package.
        out: the repository folder (created; existing model folders of the same names are
            replaced).
        max_batch_size: see :func:`triton_config`.
        kind: ``"KIND_CPU"`` or ``"KIND_GPU"``.

    Returns:
        The ``config.pbtxt`` paths written.
    """
    pkg = package if isinstance(package, ModelPackage) else load_package(package)
    root = Path(out)
    written = []
    for role, entry in pkg.models.items():
        name = f"{pkg.name}_{role}"
        folder = root / name
        if folder.exists():
            shutil.rmtree(folder)
        (folder / "1").mkdir(parents=True)
        shutil.copyfile(entry.path, folder / "1" / "model.onnx")
        cfg = folder / "config.pbtxt"
        cfg.write_text(triton_config(name, entry, max_batch_size=max_batch_size, kind=kind))
        written.append(cfg)
    return written
