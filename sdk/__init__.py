"""facecraft.sdk: FaceCraft's runtime SDK, one wing (subpackage) per concern.

``photo`` (decode, detect, align, landmarks, masks), ``models`` (morphable models, model
files, importers), ``render`` (cameras, lighting, rasterizer, baking, mesh I/O),
``pipeline`` (packages, runtime, ``facecraft create``), ``rigs`` and ``serving``; the
light gRPC client is :mod:`facecraft.sdk.client`. The public names of every wing are
re-exported here; import them from ``facecraft.sdk``.

They are re-exported lazily (PEP 562): importing this package loads nothing
heavy until a name is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import attach

_EXPORTS = {
    "MeshDetector": "photo.protocols",
    "MediaPipeFrontEnd": "photo.mediapipe_frontend",
    "FrontEndSettings": "photo.mediapipe_frontend",
    "FaceLandmarks": "photo.mediapipe_frontend",
    "RegionMasks": "photo.mesh_regions",
    "region_masks": "photo.mesh_regions",
    "region_polygons": "photo.mesh_regions",
    "HairSegmenter": "photo.hair",
    "IBUG68_FROM_MESH468": "photo.landmarks",
    "DetectedFace": "pipeline.pipeline",
    "MeshLandmarks": "models.mesh_landmarks",
    "load_or_build_mesh_landmarks": "models.mesh_landmarks",
    "AlignedFace": "photo.align",
    "align_face": "photo.align",
    "five_from_68": "photo.align",
    "PerspectiveCamera": "render.cameras",
    "Pose": "render.cameras",
    "WeakPerspectiveCamera": "render.cameras",
    "CoeffLayout": "pipeline.coeff_layout",
    "load_default_model": "models.default_model",
    "resolve_model": "models.default_model",
    "DetectorSettings": "photo.detect",
    "DetectorUnavailableError": "photo.detect",
    "Face": "photo.detection",
    "FaceDetector": "photo.detect",
    "Detector": "photo.protocols",
    "Landmarker": "photo.protocols",
    "largest_face": "photo.detection",
    "FaceCraftError": "errors",
    "InvalidInputError": "errors",
    "ModelFileError": "errors",
    "ModelFormatError": "errors",
    "refine_skin_mask": "photo.face_mask",
    "skin_mask_from_landmarks": "photo.face_mask",
    "GltfMesh": "rigs.gltf",
    "read_glb": "rigs.gltf",
    "write_glb": "rigs.gltf",
    "DecodedImage": "photo.image_io",
    "ImageDecodeError": "photo.image_io",
    "ImageTooLargeError": "photo.image_io",
    "decode_image": "photo.image_io",
    "read_image": "photo.image_io",
    "import_model": "models.importers",
    "list_importers": "models.importers",
    "IngestedFace": "photo.ingest",
    "IngestedPhoto": "photo.ingest",
    "IngestSettings": "photo.ingest",
    "NoFaceError": "errors",
    "PhotoTooLargeError": "errors",
    "ingest_photo": "photo.ingest",
    "Dlib68Landmarker": "photo.landmarker",
    "nme": "photo.landmarker",
    "fit_sh": "render.lighting",
    "shade_sh": "render.lighting",
    "GraphLevel": "models.mesh_graph",
    "MeshGraph": "models.mesh_graph",
    "build_mesh_graph": "models.mesh_graph",
    "read_ply": "render.mesh_io",
    "read_png": "render.mesh_io",
    "write_obj": "render.mesh_io",
    "write_ply": "render.mesh_io",
    "write_png": "render.mesh_io",
    "load_model": "models.model_file",
    "read_model_info": "models.model_file",
    "save_model": "models.model_file",
    "MorphableModel": "models.morphable_model",
    "MorphableModelLayer": "models.morphable_model",
    "ModelPackage": "pipeline.package",
    "load_package": "pipeline.package",
    "FaceCraft": "pipeline.pipeline",
    "FaceResult": "pipeline.pipeline",
    "PipelineSettings": "pipeline.pipeline",
    "PoseFit": "render.pose_fit",
    "fit_weak_perspective": "render.pose_fit",
    "Fragments": "render.rasterizer",
    "RasterSettings": "render.rasterizer",
    "interpolate": "render.rasterizer",
    "rasterize": "render.rasterizer",
    "MeshRenderer": "render.renderer",
    "RenderOutput": "render.renderer",
    "RenderSettings": "render.renderer",
    "composite": "render.renderer",
    "render_mesh": "render.renderer",
    "Rig": "rigs.rig",
    "load_rig": "rigs.rig",
    "starter_rig": "rigs.rig",
    "FaceRigger": "rigs.create",
    "RiggedFace": "rigs.create",
    "RigFit": "rigs.fit",
    "RigFitter": "rigs.fit",
    "MaterialParams": "rigs.materials",
    "estimate_materials": "rigs.materials",
    "import_rig": "rigs.registry",
    "list_rigs": "rigs.registry",
    "resolve_rig": "rigs.registry",
    "RuntimeSettings": "pipeline.runtime",
    "select_providers": "pipeline.runtime",
    "region_mask": "render.sampling",
    "sample_image": "render.sampling",
    "sample_vertex_colors": "render.sampling",
    "vertex_visibility": "render.sampling",
    "build_starter_model": "models.starter",
    "BakeSettings": "render.texture",
    "TextureBake": "render.texture",
    "UVBaker": "render.texture",
    "UVBakerCache": "render.texture",
    "bake_texture": "render.texture",
    "dilate_texture": "render.texture",
    "sample_texture": "render.texture",
}
_SUBMODULES = ("photo", "models", "render", "pipeline", "rigs", "serving")

__getattr__, __dir__, __all__ = attach(__name__, _EXPORTS, _SUBMODULES)

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from .errors import (  # noqa: F401
        FaceCraftError,
        InvalidInputError,
        ModelFileError,
        ModelFormatError,
        NoFaceError,
        PhotoTooLargeError,
    )
    from .models.default_model import (  # noqa: F401
        load_default_model,
        resolve_model,
    )
    from .models.importers import (  # noqa: F401
        import_model,
        list_importers,
    )
    from .models.mesh_graph import (  # noqa: F401
        GraphLevel,
        MeshGraph,
        build_mesh_graph,
    )
    from .models.mesh_landmarks import (  # noqa: F401
        MeshLandmarks,
        load_or_build_mesh_landmarks,
    )
    from .models.model_file import (  # noqa: F401
        load_model,
        read_model_info,
        save_model,
    )
    from .models.morphable_model import (  # noqa: F401
        MorphableModel,
        MorphableModelLayer,
    )
    from .models.starter import (  # noqa: F401
        build_starter_model,
    )
    from .photo.align import (  # noqa: F401
        AlignedFace,
        align_face,
        five_from_68,
    )
    from .photo.detect import (  # noqa: F401
        DetectorSettings,
        DetectorUnavailableError,
        FaceDetector,
    )
    from .photo.detection import (  # noqa: F401
        Face,
        largest_face,
    )
    from .photo.face_mask import (  # noqa: F401
        refine_skin_mask,
        skin_mask_from_landmarks,
    )
    from .photo.hair import (  # noqa: F401
        HairSegmenter,
    )
    from .photo.image_io import (  # noqa: F401
        DecodedImage,
        ImageDecodeError,
        ImageTooLargeError,
        decode_image,
        read_image,
    )
    from .photo.ingest import (  # noqa: F401
        IngestedFace,
        IngestedPhoto,
        IngestSettings,
        ingest_photo,
    )
    from .photo.landmarker import (  # noqa: F401
        Dlib68Landmarker,
        nme,
    )
    from .photo.landmarks import (  # noqa: F401
        IBUG68_FROM_MESH468,
    )
    from .photo.mediapipe_frontend import (  # noqa: F401
        FaceLandmarks,
        FrontEndSettings,
        MediaPipeFrontEnd,
    )
    from .photo.mesh_regions import (  # noqa: F401
        RegionMasks,
        region_masks,
        region_polygons,
    )
    from .photo.protocols import (  # noqa: F401
        Detector,
        Landmarker,
        MeshDetector,
    )
    from .pipeline.coeff_layout import (  # noqa: F401
        CoeffLayout,
    )
    from .pipeline.package import (  # noqa: F401
        ModelPackage,
        load_package,
    )
    from .pipeline.pipeline import (  # noqa: F401
        DetectedFace,
        FaceCraft,
        FaceResult,
        PipelineSettings,
    )
    from .pipeline.runtime import (  # noqa: F401
        RuntimeSettings,
        select_providers,
    )
    from .render.cameras import (  # noqa: F401
        PerspectiveCamera,
        Pose,
        WeakPerspectiveCamera,
    )
    from .render.lighting import (  # noqa: F401
        fit_sh,
        shade_sh,
    )
    from .render.mesh_io import (  # noqa: F401
        read_ply,
        read_png,
        write_obj,
        write_ply,
        write_png,
    )
    from .render.pose_fit import (  # noqa: F401
        PoseFit,
        fit_weak_perspective,
    )
    from .render.rasterizer import (  # noqa: F401
        Fragments,
        RasterSettings,
        interpolate,
        rasterize,
    )
    from .render.renderer import (  # noqa: F401
        MeshRenderer,
        RenderOutput,
        RenderSettings,
        composite,
        render_mesh,
    )
    from .render.sampling import (  # noqa: F401
        region_mask,
        sample_image,
        sample_vertex_colors,
        vertex_visibility,
    )
    from .render.texture import (  # noqa: F401
        BakeSettings,
        TextureBake,
        UVBaker,
        UVBakerCache,
        bake_texture,
        dilate_texture,
        sample_texture,
    )
    from .rigs.create import (  # noqa: F401
        FaceRigger,
        RiggedFace,
    )
    from .rigs.fit import (  # noqa: F401
        RigFit,
        RigFitter,
    )
    from .rigs.gltf import (  # noqa: F401
        GltfMesh,
        read_glb,
        write_glb,
    )
    from .rigs.materials import (  # noqa: F401
        MaterialParams,
        estimate_materials,
    )
    from .rigs.registry import (  # noqa: F401
        import_rig,
        list_rigs,
        resolve_rig,
    )
    from .rigs.rig import (  # noqa: F401
        Rig,
        load_rig,
        starter_rig,
    )
