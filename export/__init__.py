"""facecraft.export: ONNX / TensorRT export and model packages (builds on facecraft.training).

Import from ``facecraft.export``, not from the private files. The package format itself (and
its reader) lives in :mod:`facecraft.sdk.pipeline.package`, since the runtime loads what this
writes.
"""

from .build_default import (
    build_default_package,
    build_random_package,
    load_refiner_checkpoint,
    write_random_regressor,
)
from .onnx_export import (
    ExportedModel,
    ExportParityError,
    ExportSettings,
    export_graph_net,
    export_regressor_onnx,
    regressor_parity_crops,
)
from .package import add_model, export_regressor, face_model_reference
from .tensorrt import (
    EngineBuild,
    TensorRTSettings,
    TensorRTUnavailableError,
    build_engine,
    build_package_engines,
    tensorrt_available,
)
from .triton import triton_config, write_triton_repository

__all__ = [
    "ExportSettings",
    "ExportedModel",
    "ExportParityError",
    "export_graph_net",
    "export_regressor_onnx",
    "regressor_parity_crops",
    "export_regressor",
    "add_model",
    "face_model_reference",
    "build_default_package",
    "build_random_package",
    "write_random_regressor",
    "load_refiner_checkpoint",
    "TensorRTSettings",
    "TensorRTUnavailableError",
    "EngineBuild",
    "build_engine",
    "build_package_engines",
    "tensorrt_available",
    "write_triton_repository",
    "triton_config",
]
