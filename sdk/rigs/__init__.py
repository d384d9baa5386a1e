"""Character rigs: GLB + sidecar rigs, the registry, dense correspondence, slider fitting,
materials, output files and previews.

Public names are re-exported lazily (PEP 562): importing this package loads nothing
heavy until a name is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import attach

_EXPORTS = {
    "GltfMesh": "gltf",
    "read_glb": "gltf",
    "write_glb": "gltf",
    "Rig": "rig",
    "load_rig": "rig",
    "starter_rig": "rig",
    "FaceRigger": "create",
    "RiggedFace": "create",
    "RigFit": "fit",
    "RigFitter": "fit",
    "MaterialParams": "materials",
    "estimate_materials": "materials",
    "import_rig": "registry",
    "list_rigs": "registry",
    "resolve_rig": "registry",
}

__getattr__, __dir__, __all__ = attach(__name__, _EXPORTS)

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from .create import (  # noqa: F401
        FaceRigger,
        RiggedFace,
    )
    from .fit import (  # noqa: F401
        RigFit,
        RigFitter,
    )
    from .gltf import (  # noqa: F401
        GltfMesh,
        read_glb,
        write_glb,
    )
    from .materials import (  # noqa: F401
        MaterialParams,
        estimate_materials,
    )
    from .registry import (  # noqa: F401
        import_rig,
        list_rigs,
        resolve_rig,
    )
    from .rig import (  # noqa: F401
        Rig,
        load_rig,
        starter_rig,
    )
