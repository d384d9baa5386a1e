"""The photo front-end: decoding, face detection, alignment, landmarks and skin masks.

Public names are re-exported lazily (PEP 562): importing this package loads nothing
heavy until a name is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import attach

_EXPORTS = {
    "MeshDetector": "protocols",
    "MediaPipeFrontEnd": "mediapipe_frontend",
    "FrontEndSettings": "mediapipe_frontend",
    "FaceLandmarks": "mediapipe_frontend",
    "RegionMasks": "mesh_regions",
    "region_masks": "mesh_regions",
    "region_polygons": "mesh_regions",
    "HairSegmenter": "hair",
    "IBUG68_FROM_MESH468": "landmarks",
    "AlignedFace": "align",
    "align_face": "align",
    "five_from_68": "align",
    "DetectorSettings": "detect",
    "DetectorUnavailableError": "detect",
    "Face": "detection",
    "FaceDetector": "detect",
    "Detector": "protocols",
    "Landmarker": "protocols",
    "largest_face": "detection",
    "refine_skin_mask": "face_mask",
    "skin_mask_from_landmarks": "face_mask",
    "DecodedImage": "image_io",
    "ImageDecodeError": "image_io",
    "ImageTooLargeError": "image_io",
    "decode_image": "image_io",
    "read_image": "image_io",
    "IngestedFace": "ingest",
    "IngestedPhoto": "ingest",
    "IngestSettings": "ingest",
    "ingest_photo": "ingest",
    "Dlib68Landmarker": "landmarker",
    "nme": "landmarker",
}

__getattr__, __dir__, __all__ = attach(__name__, _EXPORTS)

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from .align import (  # noqa: F401
        AlignedFace,
        align_face,
        five_from_68,
    )
    from .detect import (  # noqa: F401
        DetectorSettings,
        DetectorUnavailableError,
        FaceDetector,
    )
    from .detection import (  # noqa: F401
        Face,
        largest_face,
    )
    from .face_mask import (  # noqa: F401
        refine_skin_mask,
        skin_mask_from_landmarks,
    )
    from .hair import (  # noqa: F401
        HairSegmenter,
    )
    from .image_io import (  # noqa: F401
        DecodedImage,
        ImageDecodeError,
        ImageTooLargeError,
        decode_image,
        read_image,
    )
    from .ingest import (  # noqa: F401
        IngestedFace,
        IngestedPhoto,
        IngestSettings,
        ingest_photo,
    )
    from .landmarker import (  # noqa: F401
        Dlib68Landmarker,
        nme,
    )
    from .landmarks import (  # noqa: F401
        IBUG68_FROM_MESH468,
    )
    from .mediapipe_frontend import (  # noqa: F401
        FaceLandmarks,
        FrontEndSettings,
        MediaPipeFrontEnd,
    )
    from .mesh_regions import (  # noqa: F401
        RegionMasks,
        region_masks,
        region_polygons,
    )
    from .protocols import (  # noqa: F401
        Detector,
        Landmarker,
        MeshDetector,
    )
