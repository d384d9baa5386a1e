"""The photo-to-face pipeline: model packages, ONNX Runtime sessions, the coefficient layout and
``facecraft create``.

Public names are re-exported lazily (PEP 562): importing this package loads nothing
heavy until a name is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import attach

_EXPORTS = {
    "MeshFitter": "mesh_fit",
    "MeshFitSettings": "mesh_fit",
    "MeshFit": "mesh_fit",
    "DetectedFace": "pipeline",
    "CoeffLayout": "coeff_layout",
    "ModelPackage": "package",
    "load_package": "package",
    "FaceCraft": "pipeline",
    "FaceResult": "pipeline",
    "PipelineSettings": "pipeline",
    "RuntimeSettings": "runtime",
    "select_providers": "runtime",
}

__getattr__, __dir__, __all__ = attach(__name__, _EXPORTS)

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from facecraft.sdk.pipeline.coeff_layout import (  # noqa: F401
        CoeffLayout,
    )
    from facecraft.sdk.pipeline.mesh_fit import (  # noqa: F401
        MeshFit,
        MeshFitSettings,
        MeshFitter,
    )
    from facecraft.sdk.pipeline.package import (  # noqa: F401
        ModelPackage,
        load_package,
    )
    from facecraft.sdk.pipeline.pipeline import (  # noqa: F401
        DetectedFace,
        FaceCraft,
        FaceResult,
        PipelineSettings,
    )
    from facecraft.sdk.pipeline.runtime import (  # noqa: F401
        RuntimeSettings,
        select_providers,
    )
