"""facecraft.sdk: face model, mesh, renderer, runtime and server.

The public surface of the face-model layer is re-exported here; import from
``facecraft.sdk``, not from the private files.
"""

from .default_model import load_default_model, resolve_model
from .errors import FaceCraftError, InvalidInputError, ModelFileError, ModelFormatError
from .importers import import_model, list_importers
from .mesh_graph import GraphLevel, MeshGraph, build_mesh_graph
from .model_file import load_model, read_model_info, save_model
from .morphable_model import MorphableModel, MorphableModelLayer
from .starter import build_starter_model

__all__ = [
    "FaceCraftError",
    "InvalidInputError",
    "ModelFileError",
    "ModelFormatError",
    "MorphableModel",
    "MorphableModelLayer",
    "MeshGraph",
    "GraphLevel",
    "build_mesh_graph",
    "build_starter_model",
    "import_model",
    "list_importers",
    "load_default_model",
    "resolve_model",
    "load_model",
    "read_model_info",
    "save_model",
]
