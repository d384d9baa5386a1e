"""The photo-to-face pipeline: model packages, ONNX Runtime sessions, the coefficient layout and
``facecraft create``.

Public names are re-exported lazily (PEP 562): importing this package loads nothing
heavy until a name is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import attach

_EXPORTS = {
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
    from .coeff_layout import (  # noqa: F401
        CoeffLayout,
    )
    from .package import (  # noqa: F401
        ModelPackage,
        load_package,
    )
    from .pipeline import (  # noqa: F401
        DetectedFace,
        FaceCraft,
        FaceResult,
        PipelineSettings,
    )
    from .runtime import (  # noqa: F401
        RuntimeSettings,
        select_providers,
    )
