"""facecraft.sdk: face model, mesh, renderer, runtime and server.

The public surface of the face-model layer is re-exported here; import from
``facecraft.sdk``, not from the private files.
"""

from .align import AlignedFace, align_face, five_from_68
from .cameras import PerspectiveCamera, Pose, WeakPerspectiveCamera
from .coeff_layout import CoeffLayout
from .default_model import load_default_model, resolve_model
from .detect import DetectorSettings, DetectorUnavailableError, Face, FaceDetector, largest_face
from .errors import FaceCraftError, InvalidInputError, ModelFileError, ModelFormatError
from .face_mask import refine_skin_mask, skin_mask_from_landmarks
from .gltf import GltfMesh, read_glb, write_glb
from .image_io import DecodedImage, ImageDecodeError, decode_image, read_image
from .importers import import_model, list_importers
from .ingest import IngestedFace, IngestedPhoto, IngestSettings, NoFaceError, ingest_photo
from .landmarker import Dlib68Landmarker, nme
from .lighting import fit_sh, shade_sh
from .mesh_graph import GraphLevel, MeshGraph, build_mesh_graph
from .mesh_io import read_ply, read_png, write_obj, write_ply, write_png
from .model_file import load_model, read_model_info, save_model
from .morphable_model import MorphableModel, MorphableModelLayer
from .package import ModelPackage, load_package
from .pipeline import FaceCraft, FaceResult, PipelineSettings
from .pose_fit import PoseFit, fit_weak_perspective
from .rasterizer import Fragments, RasterSettings, interpolate, rasterize
from .renderer import MeshRenderer, RenderOutput, RenderSettings, composite, render_mesh
from .rig import Rig, load_rig, starter_rig
from .rig_create import FaceRigger, RiggedFace
from .rig_fit import RigFit, RigFitter
from .rig_materials import MaterialParams, estimate_materials
from .rig_registry import import_rig, list_rigs, resolve_rig
from .runtime import RuntimeSettings, select_providers
from .sampling import region_mask, sample_image, sample_vertex_colors, vertex_visibility
from .starter import build_starter_model
from .texture import BakeSettings, TextureBake, bake_texture, dilate_texture, sample_texture

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
    "PerspectiveCamera",
    "WeakPerspectiveCamera",
    "Pose",
    "shade_sh",
    "fit_sh",
    "rasterize",
    "interpolate",
    "RasterSettings",
    "Fragments",
    "render_mesh",
    "composite",
    "MeshRenderer",
    "RenderSettings",
    "RenderOutput",
    "sample_image",
    "sample_vertex_colors",
    "vertex_visibility",
    "region_mask",
    "PoseFit",
    "fit_weak_perspective",
    "BakeSettings",
    "TextureBake",
    "bake_texture",
    "dilate_texture",
    "sample_texture",
    "write_obj",
    "write_ply",
    "write_png",
    "read_ply",
    "read_png",
    "DecodedImage",
    "ImageDecodeError",
    "decode_image",
    "read_image",
    "AlignedFace",
    "align_face",
    "five_from_68",
    "skin_mask_from_landmarks",
    "refine_skin_mask",
    "FaceDetector",
    "DetectorSettings",
    "DetectorUnavailableError",
    "Face",
    "largest_face",
    "Dlib68Landmarker",
    "nme",
    "ingest_photo",
    "IngestSettings",
    "IngestedFace",
    "IngestedPhoto",
    "NoFaceError",
    "CoeffLayout",
    "FaceCraft",
    "FaceResult",
    "PipelineSettings",
    "ModelPackage",
    "load_package",
    "RuntimeSettings",
    "select_providers",
    "GltfMesh",
    "read_glb",
    "write_glb",
    "Rig",
    "load_rig",
    "starter_rig",
    "FaceRigger",
    "RiggedFace",
    "RigFit",
    "RigFitter",
    "MaterialParams",
    "estimate_materials",
    "import_rig",
    "list_rigs",
    "resolve_rig",
]
