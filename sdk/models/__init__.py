"""Face models: the morphable model, ``.fcm`` model files, importers, the starter model, meshes and
the mesh graph.

Public names are re-exported lazily (PEP 562): importing this package loads nothing
heavy until a name is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import attach

_EXPORTS = {
    "MeshLandmarks": "mesh_landmarks",
    "load_or_build_mesh_landmarks": "mesh_landmarks",
    "load_default_model": "default_model",
    "resolve_model": "default_model",
    "import_model": "importers",
    "list_importers": "importers",
    "GraphLevel": "mesh_graph",
    "MeshGraph": "mesh_graph",
    "build_mesh_graph": "mesh_graph",
    "load_model": "model_file",
    "read_model_info": "model_file",
    "save_model": "model_file",
    "MorphableModel": "morphable_model",
    "MorphableModelLayer": "morphable_model",
    "build_starter_model": "starter",
}

__getattr__, __dir__, __all__ = attach(__name__, _EXPORTS)

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from .default_model import (  # noqa: F401
        load_default_model,
        resolve_model,
    )
    from .importers import (  # noqa: F401
        import_model,
        list_importers,
    )
    from .mesh_graph import (  # noqa: F401
        GraphLevel,
        MeshGraph,
        build_mesh_graph,
    )
    from .mesh_landmarks import (  # noqa: F401
        MeshLandmarks,
        load_or_build_mesh_landmarks,
    )
    from .model_file import (  # noqa: F401
        load_model,
        read_model_info,
        save_model,
    )
    from .morphable_model import (  # noqa: F401
        MorphableModel,
        MorphableModelLayer,
    )
    from .starter import (  # noqa: F401
        build_starter_model,
    )
