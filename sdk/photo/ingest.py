"""Photo ingestion: bytes -> decoded photo -> faces -> aligned crops with landmarks and masks.

One call, :func:`ingest_photo`, runs the stages of :mod:`image_io`, a
:class:`~facecraft.sdk.photo.protocols.Detector` (MTCNN's :mod:`detect`, or any other), an optional
68-point :class:`~facecraft.sdk.photo.protocols.Landmarker`, :mod:`align` and :mod:`face_mask`,
and returns named results. Nothing is
written anywhere; photos stay in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InvalidInputError, NoFaceError
from .align import CROP_SIZE, AlignedFace, align_face, five_from_68
from .face_mask import skin_mask_from_landmarks
from .image_io import (
    MAX_BYTES,
    MAX_PIXELS,
    MEMORY_BUDGET,
    MIN_SIDE,
    DecodedImage,
    decode_image,
)
from .mesh_regions import region_masks
from .protocols import Detector, Landmarker, MeshDetector

if TYPE_CHECKING:
    from .mediapipe_frontend import FaceLandmarks

__all__ = ["IngestSettings", "IngestedFace", "IngestedPhoto", "ingest_photo", "NoFaceError"]


@dataclass(frozen=True)
class IngestSettings:
    """How :func:`ingest_photo` works.

    Attributes:
        crop_size: side of the aligned crop in pixels (the regressor's input, 224).
        all_faces: every face (largest first) instead of only the largest.
        max_pixels: decompression-bomb limit passed to the decoder (declared pixels).
        require_face: raise :class:`NoFaceError` when no face is found.
        max_bytes: largest accepted photo file, bytes.
        memory_budget: most bytes the decode may allocate (see
            :func:`~facecraft.sdk.photo.image_io.decode_image`).
        max_side: longest side the photo is decoded at, pixels (a JPEG is read reduced in the
            DCT domain); None keeps the full size. Boxes, landmarks and crops are then in the
            decoded photo's pixels (``photo.scale`` maps file pixels to them).
    """

    crop_size: int = CROP_SIZE
    all_faces: bool = False
    max_pixels: int = MAX_PIXELS
    require_face: bool = True
    max_bytes: int = MAX_BYTES
    memory_budget: int = MEMORY_BUDGET
    max_side: int | None = None

    def __post_init__(self) -> None:
        if not 32 <= self.crop_size <= 2048:
            raise InvalidInputError(f"crop_size must be in [32, 2048] px, got {self.crop_size}")
        if self.max_side is not None and not (isinstance(self.max_side, int)
                                              and self.max_side >= MIN_SIDE):
            raise InvalidInputError(f"max_side must be None or an int >= {MIN_SIDE} px, got "
                                    f"{self.max_side!r}")


@dataclass(frozen=True)
class IngestedFace:
    """One face of a photo.

    Attributes:
        box: (4,) x0, y0, x1, y1 in photo pixels.
        score: detector confidence in [0, 1].
        landmarks5: (5, 2) photo pixels (subject's right eye, left eye, nose tip, right and
            left mouth corners).
        landmarks68: (68, 2) photo pixels in iBUG order, or None without a 68-point landmarker.
        aligned: the crop, its transform and its 5 points.
        crop_landmarks68: (68, 2) in crop pixels, or None.
        skin_mask: (S, S) bool skin mask in the crop, or None without 68 landmarks.
        mesh: the MediaPipe front-end's 468 points, iris and presence (photo pixels) when the
            detector is a :class:`~facecraft.sdk.photo.protocols.MeshDetector`; the skin mask
            then comes from the mesh's regions (never from a 68-point landmarker).
    """

    box: np.ndarray
    score: float
    landmarks5: np.ndarray
    landmarks68: np.ndarray | None
    aligned: AlignedFace
    crop_landmarks68: np.ndarray | None = None
    skin_mask: np.ndarray | None = None
    mesh: FaceLandmarks | None = None


@dataclass(frozen=True)
class IngestedPhoto:
    """A decoded photo and its faces (largest first)."""

    photo: DecodedImage
    faces: tuple[IngestedFace, ...] = field(default_factory=tuple)


def ingest_photo(data: bytes, detector: Detector, *, landmarker: Landmarker | None = None,
                 settings: IngestSettings = IngestSettings(),
                 source: str = "<bytes>") -> IngestedPhoto:
    """Decode a photo, find faces, and align each one.

    Args:
        data: the encoded photo (JPEG, PNG, WebP, BMP, TIFF, binary PGM/PPM).
        detector: any :class:`~facecraft.sdk.photo.protocols.Detector`, e.g.
            :class:`facecraft.sdk.photo.detect.FaceDetector` (MTCNN).
        landmarker: optional 68-point :class:`~facecraft.sdk.photo.protocols.Landmarker`
            (``num_points == 68``), e.g. :class:`~facecraft.sdk.photo.landmarker.Dlib68Landmarker`;
            with one, each face also gets 68 landmarks, 5 points derived from them, and a skin
            mask.
        settings: see :class:`IngestSettings`.
        source: a name for error messages.

    Raises:
        ImageTooLargeError: over a size limit (a :class:`~facecraft.sdk.errors.PhotoTooLargeError`).
        ImageDecodeError: not a readable photo. NoFaceError: no face (``require_face``).
        InvalidInputError: a landmarker whose ``num_points`` is not 68.
    """
    if landmarker is not None and landmarker.num_points != 68:
        raise InvalidInputError(f"ingest_photo needs a 68-point landmarker, got one with "
                                f"num_points={landmarker.num_points}")
    photo = decode_image(data, max_pixels=settings.max_pixels, max_bytes=settings.max_bytes,
                         memory_budget=settings.memory_budget, max_side=settings.max_side,
                         source=source)
    rgb8 = photo.to_uint8()
    if isinstance(detector, MeshDetector):
        pairs = [(m.face, m) for m in detector.analyze(rgb8)]
    else:
        pairs = [(f, None) for f in detector.detect(rgb8)]
    pairs.sort(key=lambda p: -p[0].area)
    found = [f for f, _ in pairs]
    if not found and settings.require_face:
        raise NoFaceError(f"no face found in {source} ({photo.size[1]}x{photo.size[0]} px); "
                          "send a photo with a clearly visible face")
    if not settings.all_faces:
        pairs = pairs[:1]
    faces = []
    size = (settings.crop_size,) * 2
    for f, mesh in pairs:
        lm68 = None
        five = np.asarray(f.landmarks5, np.float64)
        if landmarker is not None:
            lm68 = np.asarray(landmarker.landmarks(rgb8, f.box), np.float64)
            if mesh is None:  # the mesh's five points are the better ones
                five = five_from_68(lm68)
        aligned = align_face(photo.rgb, five, settings.crop_size)
        crop68 = None if lm68 is None else aligned.to_crop(lm68)
        if mesh is not None:
            mask = region_masks(mesh.points, size, iris=mesh.mesh.iris,
                                matrix=aligned.matrix)["skin"]
        else:
            mask = None if crop68 is None else skin_mask_from_landmarks(crop68, size)
        faces.append(IngestedFace(box=np.asarray(f.box, np.float64), score=float(f.score),
                                  landmarks5=five, landmarks68=lm68, aligned=aligned,
                                  crop_landmarks68=crop68, skin_mask=mask, mesh=mesh))
    return IngestedPhoto(photo=photo, faces=tuple(faces))
