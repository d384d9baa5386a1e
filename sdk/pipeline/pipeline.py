"""The photo-to-face pipeline: :class:`FaceCraft`.

Stages, each a method returning a named result (so benchmarks and callers can run them apart)::

    decode      bytes / path / array        -> DecodedImage              (image_io)
    detect      photo                       -> [DetectedFace]       (MediaPipe mesh or MTCNN, ORT)
    align       photo, detections           -> [AlignedFace] crops       (5-point similarity)
    regress     (N, S, S, 3) crops          -> (N, K) coefficients       (package regressor, ORT)
    geometry    coefficients                -> shape, pose, albedo, SH   (face model, torch)
    sample      geometry, sampling crops    -> visibility, photo colours (rasterizer depth test)
    texture     geometry, samples           -> fine per-vertex albedo    (refiner, or de-lighting)
    bake        fine albedo                 -> (T, T, 3) uint8 UV texture, seams dilated

:meth:`FaceCraft.reconstruct` runs them for one photo, :meth:`FaceCraft.reconstruct_batch` for
several (the regressor, shape, sampling and refiner stages then run once for all faces of all
photos). Sessions (detector, regressor, refiner) are created once in the object and reused;
nothing is process-wide. One object serves one thread at a time.

Frames and units (see :mod:`facecraft.sdk.render.cameras`): the regressor sees the aligned crop as
rendered by ``PerspectiveCamera.paper(S)``; vertices are metres, in the model frame (+Y up, face
looking down +Z), or posed and in the camera's view frame (camera at the origin looking down -Z,
+Y up). Photo positions are pixels, x right, y down, pixel centres at +0.5. Colours are RGB in
[0, 1] as stored in the photo (the model's albedo is compared to photo values directly, as in
training; no sRGB conversion).

Fine texture without a refiner
------------------------------
The photo's colour ``c`` at each visible vertex is divided by the regressed SH irradiance ``E``
(floored at :attr:`PipelineSettings.min_irradiance`) to undo the lighting, then blended with the
coarse 3DMM albedo ``a`` by a visibility weight ``w = visible * clamp(n_z, 0, 1)`` (``n_z``: the
posed normal's component towards the camera, so grazing vertices lean on the model)::

    fine = clip(w * c / max(E, min_irradiance) + (1 - w) * a, 0, 1)

Hidden vertices keep the coarse albedo. With a refiner in the package its first output replaces
this (decoded from its ``output_encoding``, clipped to [0, 1]); its inputs are filled by name
from :data:`facecraft.sdk.pipeline.package.REFINER_INPUTS` (``image_feature`` is the regressor's
``features`` output).
"""

from __future__ import annotations

import dataclasses
import math
import os
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import FaceCraftError, InvalidInputError, PhotoTooLargeError
from ..models.mesh import vertex_normals
from ..models.morphable_model import MorphableModel
from ..photo.align import AlignedFace, align_face
from ..photo.detect import DetectorSettings, FaceDetector
from ..photo.detection import Face
from ..photo.image_io import MAX_BYTES, DecodedImage, decode_image
from ..photo.ingest import NoFaceError
from ..photo.mediapipe_frontend import (
    FaceLandmarks,
    FrontEndSettings,
    MediaPipeFrontEnd,
)
from ..photo.protocols import Detector, MeshDetector
from ..render.cameras import PerspectiveCamera, Pose
from ..render.lighting import sh_irradiance
from ..render.rasterizer import RasterSettings, rasterize
from ..render.sampling import sample_image, vertex_visibility
from ..render.texture import (
    DEFAULT_TEXTURE_DILATE,
    DEFAULT_TEXTURE_SIZE,
    BakeSettings,
    UVBakerCache,
    check_texture_size,
)
from .coeff_layout import CoeffLayout
from .package import ModelPackage, load_package
from .runtime import OrtModel, RuntimeSettings

__all__ = [
    "PipelineSettings",
    "FaceCoefficients",
    "Geometry",
    "PhotoSamples",
    "FaceResult",
    "DetectedFace",
    "FRONT_ENDS",
    "FaceCraft",
    "ImageInput",
]

ImageInput = str | os.PathLike | bytes | bytearray | memoryview | np.ndarray | DecodedImage
COEFFICIENTS_FORMAT = "facecraft.coefficients"
#: The built-in photo front-ends: MediaPipe's detector + 468-point mesh + iris (Apache-2.0,
#: vendored ONNX; the default) and MTCNN (5 points).
FRONT_ENDS = ("mediapipe", "mtcnn")


@dataclass(frozen=True)
class PipelineSettings:
    """How :class:`FaceCraft` works.

    Attributes:
        all_faces: reconstruct every face (largest first) instead of the largest only.
        texture_size: side of the baked UV texture in texels, in [MIN_TEXTURE_SIZE,
            MAX_TEXTURE_SIZE] (:mod:`facecraft.sdk.render.texture`: 256 to 2048); 0 skips
            baking.
        texture_dilate: texels every UV island grows into the gutter (seam padding).
        max_bytes: largest photo file read, in bytes (a path input reads at most this + 1
            bytes, and only from a regular file).
        sample_size: side in pixels of the high-resolution aligned crop that photo colours are
            sampled from (the regressor's crop is small; the template scales with the size).
        visibility_size: side in pixels of the depth buffer deciding vertex visibility; None =
            the regressor's crop size (what training uses; cost grows with its square).
        depth_tolerance: metres a vertex may lie behind the depth buffer and still be visible.
        min_irradiance: floor of the SH irradiance when de-lighting photo colours.
        max_pixels: decoder limit (decompression bombs).
        front_end: the built-in photo front-end (:data:`FRONT_ENDS`): ``"mediapipe"``
            (BlazeFace, the 468-point mesh and iris; alignment from the mesh's eye centres, nose
            tip and mouth corners) or ``"mtcnn"`` (its 5 points).
        detector: MTCNN's settings, for ``front_end="mtcnn"`` (its ``threads`` is replaced by
            :class:`FaceCraft`'s). The default skips faces under 40 px (``min_face_size=40``):
            they give no usable texture, and the detector's largest pyramid levels (half its
            time) only serve them.
    """

    all_faces: bool = False
    texture_size: int = DEFAULT_TEXTURE_SIZE
    texture_dilate: int = DEFAULT_TEXTURE_DILATE
    sample_size: int = 512
    visibility_size: int | None = None
    depth_tolerance: float = 0.005
    min_irradiance: float = 0.1
    max_pixels: int = 40_000_000
    max_bytes: int = MAX_BYTES
    front_end: str = "mediapipe"
    detector: DetectorSettings = DetectorSettings(min_face_size=40)

    def __post_init__(self) -> None:
        if self.front_end not in FRONT_ENDS:
            raise InvalidInputError(f"front_end must be one of {FRONT_ENDS}, got "
                                    f"{self.front_end!r}")
        check_texture_size(self.texture_size, "texture_size", allow_zero=True)
        if not 0 <= self.texture_dilate <= 256:
            raise InvalidInputError(f"texture_dilate must be in [0, 256], got "
                                    f"{self.texture_dilate}")
        for name in ("sample_size", "visibility_size"):
            if name == "visibility_size" and self.visibility_size is None:
                continue
            if not 32 <= getattr(self, name) <= 4096:
                raise InvalidInputError(f"{name} must be in [32, 4096] px, got "
                                        f"{getattr(self, name)}")
        if isinstance(self.max_bytes, bool) or not isinstance(self.max_bytes, int) \
                or self.max_bytes < 1:
            raise InvalidInputError(f"max_bytes must be a positive integer, got "
                                    f"{self.max_bytes!r}")
        if not self.depth_tolerance > 0 or not self.min_irradiance > 0:
            raise InvalidInputError("depth_tolerance and min_irradiance must be > 0")


# --------------------------------------------------------------------------- stage outputs
@dataclass(frozen=True, eq=False)
class DetectedFace:
    """One face the front-end found.

    Attributes:
        face: the detection record (box, score, the 5 alignment points).
        landmarks: the MediaPipe mesh, iris and presence, or None with a plain detector.
    """

    face: Face
    landmarks: FaceLandmarks | None = None


@dataclass(frozen=True)
class FaceCoefficients:
    """One face's 3DMM coefficients (float32 NumPy).

    Attributes:
        identity: (Ki,) unit-variance identity coefficients.
        expression: (Ke,) expression coefficients (blendshape weights or PCA, per the model).
        albedo: (Ka,) unit-variance albedo coefficients.
        angles: (3,) ``(pitch, yaw, roll)`` radians, ``R = Rz(roll) Ry(yaw) Rx(pitch)``.
        lighting: (27,) channel-major SH offsets from the ambient init.
        translation: (3,) metres, world frame (``p_world = R p_model + t``).
    """

    identity: np.ndarray
    expression: np.ndarray
    albedo: np.ndarray
    angles: np.ndarray
    lighting: np.ndarray
    translation: np.ndarray

    FIELDS = ("identity", "expression", "albedo", "angles", "lighting", "translation")

    def to_dict(self) -> dict[str, list[float]]:
        """Field name -> list of floats (exact: float32 values survive JSON)."""
        return {f: [float(x) for x in getattr(self, f)] for f in self.FIELDS}

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> FaceCoefficients:
        """Inverse of :meth:`to_dict` (extra keys, e.g. of a coefficients JSON, are ignored)."""
        try:
            return cls(**{f: np.asarray(d[f], np.float32).reshape(-1)  # type: ignore[arg-type]
                          for f in cls.FIELDS})
        except KeyError as e:
            raise InvalidInputError(f"coefficients lack the {e} field") from None


@dataclass(frozen=True, eq=False)
class Geometry:
    """The decoded faces of a batch (N faces; torch, CPU).

    Attributes:
        vertices: (N, V, 3) metres, model frame, identity + expression.
        neutral: (N, V, 3) metres, model frame, identity only.
        world: (N, V, 3) metres, posed (``R p + t``), world frame.
        normals: (N, V, 3) unit normals of ``world``.
        albedo: (N, V, 3) coarse albedo, linear RGB clipped to [0, 1].
        irradiance: (N, V, 3) SH irradiance at each posed vertex.
        crop_screen: (N, V, 3) crop pixels (x, y) of the regressor's crop and depth in metres.
        landmarks_crop: (N, 68, 2) crop pixels.
        pose: the head poses.
    """

    vertices: torch.Tensor
    neutral: torch.Tensor
    world: torch.Tensor
    normals: torch.Tensor
    albedo: torch.Tensor
    irradiance: torch.Tensor
    crop_screen: torch.Tensor
    landmarks_crop: torch.Tensor
    pose: Pose


@dataclass(frozen=True, eq=False)
class PhotoSamples:
    """Photo colours at the projected vertices (N faces).

    Attributes:
        visibility: (N, V) bool, facing the camera and not occluded.
        colors: (N, V, 3) photo RGB in [0, 1] at each vertex (bilinear), 0 where not visible.
    """

    visibility: torch.Tensor
    colors: torch.Tensor


@dataclass(frozen=True, eq=False)
class FaceResult:
    """Everything reconstructed for one face.

    Attributes:
        source: the photo's name (path, or a label for bytes / arrays).
        face_index: 0 for the largest face of the photo, 1 for the next, ...
        photo: the decoded photo (shared by the faces of one photo).
        detection: box, score, 5 landmarks in photo pixels.
        alignment: the regressor's crop and its photo -> crop similarity (``matrix`` (2, 3)).
        coefficients: :class:`FaceCoefficients`.
        vertices: (V, 3) float32 metres, model frame (identity + expression).
        vertices_camera: (V, 3) float32 metres, posed, camera view frame (camera at the origin
            looking down -Z, +Y up; visible points have z < 0).
        neutral_vertices: (V, 3) float32 metres, model frame, expression zero.
        normals: (V, 3) float32 unit normals of ``vertices`` (model frame).
        triangles: (F, 3) int32, CCW from outside (shared with the face model).
        uvs: (U, 2) float32 UVs, origin bottom-left. uv_triangles: (F, 3) int32.
        coarse_albedo: (V, 3) float32 linear RGB in [0, 1] from the albedo coefficients.
        fine_albedo: (V, 3) float32 RGB in [0, 1] (refiner or de-lit photo, see the module doc).
        fine_source: ``"refiner"`` or ``"photo"``.
        visibility: (V,) bool, vertices the photo shows.
        shading: (V, 3) float32 SH irradiance (lit colour = albedo * shading).
        photo_vertices: (V, 3) float32 photo pixels (x right, y down) and depth in metres.
        landmarks: (68, 2) float32 iBUG landmarks in photo pixels (projected from the mesh).
        pose_deg: (3,) float32 ``(pitch, yaw, roll)`` degrees.
        rotation: (3, 3) float32 model -> world rotation. translation: (3,) float32 metres.
        texture: (T, T, 3) uint8 UV texture (row 0 = v 1), seams dilated; None if not baked.
        photo_landmarks: what the MediaPipe front-end measured on the photo (468-point mesh,
            iris, presence), or None with another detector.
    """

    source: str
    face_index: int
    photo: DecodedImage
    detection: Face
    alignment: AlignedFace
    coefficients: FaceCoefficients
    vertices: np.ndarray
    vertices_camera: np.ndarray
    neutral_vertices: np.ndarray
    normals: np.ndarray
    triangles: np.ndarray
    uvs: np.ndarray
    uv_triangles: np.ndarray
    coarse_albedo: np.ndarray
    fine_albedo: np.ndarray
    fine_source: str
    visibility: np.ndarray
    shading: np.ndarray
    photo_vertices: np.ndarray
    landmarks: np.ndarray
    pose_deg: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    texture: np.ndarray | None
    photo_landmarks: FaceLandmarks | None = None

    def coefficients_json(self, package: ModelPackage | None = None) -> dict[str, object]:
        """A JSON-able record: coefficients, units, pose, detection, landmarks, provenance.

        :meth:`FaceCoefficients.from_dict` reads the coefficients back from it. Photo positions
        are pixels of the photo FILE: a photo the decoder read reduced (``photo.scale`` < 1, a
        large JPEG within the memory budget) has them scaled back.
        """
        back = 1.0 / float(getattr(self.photo, "scale", 1.0) or 1.0)  # decoded -> file pixels
        out: dict[str, object] = {
            "format": COEFFICIENTS_FORMAT, "version": 1, "source": self.source,
            "face_index": self.face_index,
            **self.coefficients.to_dict(),
            "units": {"angles": "radians (pitch, yaw, roll), R = Rz(roll) Ry(yaw) Rx(pitch)",
                      "translation": "metres, world frame, p_world = R p_model + t",
                      "lighting": "27 SH coefficients, channel-major, offsets from the ambient "
                                  "init", "landmarks": "photo pixels, x right, y down"},
            "pose_deg": [float(x) for x in self.pose_deg],
            "detection": {"box": [float(x) * back for x in self.detection.box],
                          "score": float(self.detection.score)},
            "landmarks": [[float(x) * back, float(y) * back] for x, y in self.landmarks],
            "fine_texture": self.fine_source,
        }
        if self.photo_landmarks is not None:
            m = self.photo_landmarks.mesh
            out["photo_landmarks"] = {
                "detector": self.photo_landmarks.detector, "presence": float(m.presence),
                "mesh468": np.round(m.points.astype(np.float64) * back, 2).tolist(),
                "iris": None if m.iris is None else np.round(
                    m.iris[..., :2].astype(np.float64) * back, 2).tolist(),
                "units": "photo pixels (x right, y down); mesh z: relative depth, x scale"}
        if package is not None:
            ref = package.face_model_ref
            out["face_model"] = {"name": ref.name, "content_sha256": ref.content_sha256}
            out["package"] = {"name": package.name, "version": package.version}
        return out


# --------------------------------------------------------------------------- the pipeline
def read_photo_file(path: str | os.PathLike[str], max_bytes: int) -> bytes:
    """A photo file's bytes, read with a bound: only a regular file, at most ``max_bytes``.

    Devices (``/dev/zero``), FIFOs, sockets and folders are refused before reading (they could
    be endless or block forever); at most ``max_bytes + 1`` bytes are read.

    Raises:
        FaceCraftError: the file cannot be opened or is not a regular file.
        PhotoTooLargeError: the file holds more than ``max_bytes`` bytes.
    """
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block
    except OSError as e:
        raise FaceCraftError(f"cannot read {p}: {e.strerror or e}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise FaceCraftError(f"cannot read {p}: not a regular file (a photo file is "
                             "expected, not a device, pipe or folder)")
    with os.fdopen(fd, "rb") as f:
        try:
            data = f.read(max_bytes + 1) if st.st_size <= max_bytes else b""
        except OSError as e:
            raise FaceCraftError(f"cannot read {p}: {e.strerror or e}") from None
    if st.st_size > max_bytes or len(data) > max_bytes:
        def amount(n: int) -> str:
            return f"{n / 2 ** 20:.1f} MiB" if n >= 2 ** 20 else f"{n} bytes"

        raise PhotoTooLargeError(f"{p}: the file is {amount(max(st.st_size, len(data)))}, "
                                 f"above the {amount(max_bytes)} limit; use a smaller photo")
    return data


def _to_photo(image: ImageInput, settings: PipelineSettings, source: str | None
              ) -> DecodedImage:
    max_pixels = settings.max_pixels
    if isinstance(image, DecodedImage):
        return image
    if isinstance(image, (str, os.PathLike)):
        data = read_photo_file(image, settings.max_bytes)
        return decode_image(data, max_pixels=max_pixels, max_bytes=settings.max_bytes,
                            source=source or str(image))
    if isinstance(image, (bytes, bytearray, memoryview)):
        return decode_image(image, max_pixels=max_pixels, max_bytes=settings.max_bytes,
                            source=source or "<bytes>")
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise InvalidInputError(f"expected an (H, W, 3) RGB array, got {image.shape}")
        if image.dtype == np.uint8:
            rgb = image.astype(np.float32) / 255.0
        elif image.dtype.kind == "f":
            rgb = np.clip(image, 0.0, 1.0).astype(np.float32)
        else:
            raise InvalidInputError(f"expected uint8 or float RGB, got {image.dtype}")
        return DecodedImage(rgb=np.ascontiguousarray(rgb), alpha=None, format="array",
                            orientation=1, bit_depth=8, source=source or "<array>")
    raise InvalidInputError(f"expected a path, bytes, an (H, W, 3) array or a DecodedImage, "
                            f"got {type(image).__name__}")


class FaceCraft:
    """Photo -> textured 3D face, with the models of one package.

    Args:
        package: a :class:`~facecraft.sdk.pipeline.package.ModelPackage`, a ``.fcpkg`` folder, or
        None
            for the built-in package.
        providers: ONNX Runtime provider order for the package's networks (short names
            ``"tensorrt"``, ``"cuda"``, ``"cpu"``); None = TensorRT > CUDA > CPU, as available.
        threads: intra-op threads of every session (detector included); None = ONNX Runtime's
            default for the networks, the detector's setting for the detector.
        settings: see :class:`PipelineSettings`.
        runtime: full session settings (overrides ``providers`` and ``threads``).
        cache_dir: where the built-in face model is cached.
        detector: any :class:`~facecraft.sdk.photo.protocols.Detector` (its faces' 5 points
            drive the alignment; a :class:`~facecraft.sdk.photo.protocols.MeshDetector` also
            gives each face its mesh); None = the ``settings.front_end``: the MediaPipe
            front-end, or MTCNN (:class:`~facecraft.sdk.photo.detect.FaceDetector`) with
            ``settings.detector``.

    Raises:
        ModelFileError: an invalid package. DetectorUnavailableError: no MTCNN weights.
    """

    def __init__(self, package: ModelPackage | str | Path | None = None, *,
                 providers: Sequence[str] | None = None, threads: int | None = None,
                 settings: PipelineSettings = PipelineSettings(),
                 runtime: RuntimeSettings | None = None,
                 cache_dir: str | Path | None = None,
                 detector: Detector | None = None) -> None:
        if not isinstance(settings, PipelineSettings):
            raise InvalidInputError(f"expected settings a PipelineSettings, got "
                                    f"{type(settings).__name__}")
        if detector is not None and not isinstance(detector, Detector):
            raise InvalidInputError(f"expected detector a Detector (with detect(rgb) -> "
                                    f"list[Face]), got {type(detector).__name__}")
        self.package = (package if isinstance(package, ModelPackage)
                        else load_package(package, cache_dir=cache_dir))
        self.settings = settings
        self.runtime = runtime or RuntimeSettings(
            providers=tuple(providers) if providers is not None else None, threads=threads)
        self.face_model: MorphableModel = self.package.face_model
        self.layout: CoeffLayout = self.package.coeff_layout
        self.crop_size = self.package.input_spec.crop_size
        self.regressor = OrtModel(self.package.regressor, self.runtime)
        refiner = self.package.refiner
        self.refiner = OrtModel(refiner, self.runtime) if refiner is not None else None
        if detector is None and settings.front_end == "mediapipe":
            detector = MediaPipeFrontEnd(FrontEndSettings(small_faces=settings.all_faces,
                                                          threads=threads or 2))
        elif detector is None:
            det = settings.detector
            if threads is not None:
                det = dataclasses.replace(det, threads=threads)
            detector = FaceDetector(det)
        self.detector: Detector = detector
        self._layer = self.face_model.to_torch()
        self._triangles = self._layer.triangles
        self._camera = PerspectiveCamera.paper(self.crop_size)
        #: UV bakers of the face model's layout, one per texture size, built on first use.
        self.bakers = UVBakerCache(self.face_model, dilate=settings.texture_dilate)

    def __repr__(self) -> str:
        return (f"FaceCraft(package={self.package.name!r} {self.package.version}, "
                f"providers={list(self.regressor.providers)}, "
                f"refiner={'yes' if self.refiner else 'no'})")

    # -- stages -----------------------------------------------------------------------------
    def decode(self, image: ImageInput, *, source: str | None = None) -> DecodedImage:
        """Decode a photo (path, encoded bytes, (H, W, 3) uint8 / float array, DecodedImage)."""
        return _to_photo(image, self.settings, source)

    def detect(self, photo: DecodedImage, *, all_faces: bool | None = None) -> list[Face]:
        """Faces of a photo, largest first (only the largest unless ``all_faces``).

        Raises:
            NoFaceError: no face found.
        """
        return [d.face for d in self.detect_faces(photo, all_faces=all_faces)]

    def detect_faces(self, photo: DecodedImage, *, all_faces: bool | None = None
                     ) -> list[DetectedFace]:
        """:meth:`detect` with each face's mesh where the detector measures one.

        Raises:
            NoFaceError: no face found.
        """
        rgb = photo.to_uint8()
        if isinstance(self.detector, MeshDetector):
            found = [DetectedFace(f.face, f) for f in self.detector.analyze(rgb)]
        else:
            found = [DetectedFace(f) for f in self.detector.detect(rgb)]
        if not found:
            h, w = photo.size
            raise NoFaceError(f"no face found in {photo.source} ({w}x{h} px); use a photo with "
                              "a clearly visible face")
        every = self.settings.all_faces if all_faces is None else all_faces
        return list(found if every else found[:1])

    def align(self, photo: DecodedImage, detections: Sequence[Face], size: int | None = None
              ) -> list[AlignedFace]:
        """Aligned crops (``size`` px, default the regressor's crop size) of each detection."""
        s = self.crop_size if size is None else size
        return [align_face(photo.rgb, d.landmarks5, s) for d in detections]

    def regress(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Run the regressor.

        Args:
            crops: (N, S, S, 3) float32 RGB in [0, 1], aligned crops.

        Returns:
            ``(coeffs, features)``: (N, K) float32 coefficient vectors (layout order) and the
            (N, F) pooled backbone features (None when the graph has no ``features`` output).
        """
        s = self.crop_size
        x = np.asarray(crops, np.float32)
        if x.ndim != 4 or x.shape[1:] != (s, s, 3):
            raise InvalidInputError(f"expected crops (N, {s}, {s}, 3), got {x.shape}")
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        name = self.regressor.input_names[0]
        if self.package.regressor.batch_dynamic or len(x) == 1:
            out = self.regressor.run({name: x})
        else:
            runs = [self.regressor.run({name: x[i:i + 1]}) for i in range(len(x))]
            out = {k: np.concatenate([r[k] for r in runs]) for k in runs[0]}
        coeffs = out.get("coeffs", out[self.regressor.output_names[0]])
        return coeffs, out.get("features")

    def geometry(self, vectors: np.ndarray) -> Geometry:
        """Decode coefficient vectors (N, K) into shape, pose, albedo and lighting."""
        blocks = {k: torch.from_numpy(np.ascontiguousarray(v, np.float32))
                  for k, v in self.layout.split(vectors).items()}
        lay = self._layer
        with torch.inference_mode():
            verts = lay(blocks["identity"], blocks["expression"])
            neutral = lay(blocks["identity"], None)
            n = verts.shape[0]
            if lay.albedo_mean is not None:
                albedo = lay.albedo(blocks["albedo"] if self.layout.num_albedo else None,
                                    batch=n).clamp(0.0, 1.0)
            else:
                albedo = torch.full_like(verts, 0.6)
            pose = Pose.from_euler(blocks["angles"], blocks["translation"])
            world = pose.transform(verts)
            normals = vertex_normals(world, self._triangles)
            irradiance = sh_irradiance(normals, blocks["lighting"])
            screen = self._camera.project(world)
            lms = self._camera.project(lay.landmarks(world))[..., :2]
        return Geometry(vertices=verts, neutral=neutral, world=world, normals=normals,
                        albedo=albedo, irradiance=irradiance, crop_screen=screen,
                        landmarks_crop=lms, pose=pose)

    def sample(self, geometry: Geometry, sample_crops: np.ndarray) -> PhotoSamples:
        """Vertex visibility (depth test) and photo colours at the projected vertices.

        Args:
            geometry: from :meth:`geometry`.
            sample_crops: (N, P, P, 3) float32 aligned crops at :attr:`PipelineSettings.
                sample_size` (same template as the regressor's crop, scaled).
        """
        st = self.settings
        size = st.visibility_size or self.crop_size
        with torch.inference_mode():
            cam = self._camera.scaled(size)
            screen = cam.project(geometry.world)
            frags = rasterize(screen, self._triangles,
                              RasterSettings((size, size), cull_backfaces=True))
            vis = vertex_visibility(screen, geometry.normals, frags,
                                    depth_tolerance=st.depth_tolerance)
            img = torch.from_numpy(np.ascontiguousarray(sample_crops, np.float32)).permute(
                0, 3, 1, 2)
            pts = geometry.crop_screen[..., :2] * (img.shape[-1] / self.crop_size)
            colors = sample_image(img, pts) * vis[..., None].to(torch.float32)
        return PhotoSamples(visibility=vis, colors=colors)

    def texture(self, geometry: Geometry, samples: PhotoSamples,
                features: np.ndarray | None = None) -> tuple[torch.Tensor, str]:
        """Fine per-vertex albedo (N, V, 3) in [0, 1] and its source (``"refiner"``/``"photo"``).

        Args:
            geometry: from :meth:`geometry`.
            samples: from :meth:`sample`.
            features: (N, F) regressor features, for a refiner that takes ``image_feature``.
        """
        st = self.settings
        with torch.inference_mode():
            delit = samples.colors / geometry.irradiance.clamp(min=st.min_irradiance)
            vis = samples.visibility.to(torch.float32)[..., None]
            if self.refiner is not None:
                feeds = {"coarse_albedo": geometry.albedo, "photo_colors": samples.colors,
                         "visibility": vis, "delit_colors": delit * vis,
                         "normals": geometry.normals}
                feeds["vertex_input"] = torch.cat([geometry.albedo, samples.colors, vis], -1)
                if features is not None:
                    feeds["image_feature"] = torch.from_numpy(features)
                missing = [k for k in self.refiner.input_names if k not in feeds]
                if missing:
                    raise FaceCraftError(f"the refiner needs {missing}, which this call "
                                         "cannot provide (pass the regressor's features)")
                arrays = {k: feeds[k].numpy().astype(np.float32)
                          for k in self.refiner.input_names}
                if self.package.refiner.batch_dynamic:
                    out = self.refiner.run(arrays)[self.refiner.output_names[0]]
                else:
                    out = np.concatenate([self.refiner.run({k: v[i:i + 1] for k, v in
                                                            arrays.items()})[
                        self.refiner.output_names[0]] for i in range(len(vis))])
                if self.package.refiner.meta.get("output_encoding", "albedo") == "signed":
                    out = (out + 1.0) * 0.5
                return torch.from_numpy(np.clip(out, 0.0, 1.0)), "refiner"
            w = vis * geometry.normals[..., 2:3].clamp(0.0, 1.0)
            fine = (w * delit + (1.0 - w) * geometry.albedo).clamp(0.0, 1.0)
        return fine, "photo"

    def bake(self, colors: np.ndarray, size: int | None = None) -> np.ndarray:
        """Bake (V, 3) per-vertex colours into a (T, T, 3) uint8 UV texture (seams dilated).

        The UV rasterization and dilation are computed on the first call for each size and
        reused (:attr:`bakers`, :class:`~facecraft.sdk.render.texture.UVBaker`).
        """
        t = check_texture_size(self.settings.texture_size if size is None else size)
        st = BakeSettings(size=t, dilate=min(self.settings.texture_dilate, t))
        return self.bakers.baker(st).bake_uint8(np.asarray(colors, np.float32))

    # -- whole pipeline ---------------------------------------------------------------------
    def reconstruct(self, image: ImageInput, *, all_faces: bool | None = None,
                    source: str | None = None,
                    check: Callable[[str], None] | None = None) -> list[FaceResult]:
        """Reconstruct the faces of one photo.

        Args:
            image: a path, encoded bytes, an (H, W, 3) RGB array (uint8, or float in [0, 1]) or
                a :class:`~facecraft.sdk.photo.image_io.DecodedImage`.
            all_faces: every face instead of the largest (default: the settings').
            source: a name for messages and results (default: the path or ``"<bytes>"``).
            check: called with the next stage's name (``"detecting"``, ``"regressing"``,
                ``"sampling"``, ``"texturing"``, ``"baking"``) before it starts; whatever it
                raises (e.g. a server's deadline error) propagates and stops the work.

        Returns:
            One :class:`FaceResult` per face, largest first.

        Raises:
            ImageDecodeError: not a readable photo. NoFaceError: no face in it.
        """
        out = self.reconstruct_batch([image], all_faces=all_faces,
                                     sources=None if source is None else [source],
                                     check=check)[0]
        assert isinstance(out, list)
        return out

    def reconstruct_batch(self, images: Sequence[ImageInput], *, all_faces: bool | None = None,
                          sources: Sequence[str] | None = None, errors: str = "raise",
                          check: Callable[[str], None] | None = None
                          ) -> list[list[FaceResult] | FaceCraftError]:
        """Reconstruct several photos; the networks run once over all their faces.

        Args:
            images: photos, as for :meth:`reconstruct`.
            all_faces: every face of each photo instead of the largest.
            sources: names for messages and results, one per image.
            errors: ``"raise"`` (the first photo that fails raises) or ``"return"`` (its
                :class:`~facecraft.sdk.errors.FaceCraftError` takes its place in the result,
                and the other photos are still reconstructed).
            check: as for :meth:`reconstruct` (its errors always propagate).

        Returns:
            Per photo, in order: its list of :class:`FaceResult` (largest face first), or its
            error with ``errors="return"``.
        """
        if errors not in ("raise", "return"):
            raise InvalidInputError(f"errors must be 'raise' or 'return', got {errors!r}")
        if sources is not None and len(sources) != len(images):
            raise InvalidInputError(f"{len(sources)} sources for {len(images)} images")
        st = self.settings
        faces: list[list[FaceResult]] = [[] for _ in images]
        failed: dict[int, FaceCraftError] = {}
        todo: list[tuple[int, DecodedImage, DetectedFace, AlignedFace, np.ndarray]] = []
        tick = check if check is not None else (lambda stage: None)
        for i, image in enumerate(images):
            tick("detecting")
            try:
                photo = self.decode(image, source=None if sources is None else sources[i])
                dets = self.detect_faces(photo, all_faces=all_faces)
                crops = self.align(photo, [d.face for d in dets])
                big = self.align(photo, [d.face for d in dets], st.sample_size)
            except FaceCraftError as e:
                if errors == "raise":
                    raise
                failed[i] = e
                continue
            for d, c, b in zip(dets, crops, big, strict=True):
                todo.append((i, photo, d, c, b.image))
        if not todo:
            return [failed.get(i, f) for i, f in enumerate(faces)]
        tick("regressing")
        vectors, features = self.regress(np.stack([t[3].image for t in todo]))
        geo = self.geometry(vectors)
        tick("sampling")
        samples = self.sample(geo, np.stack([t[4] for t in todo]))
        tick("texturing")
        fine, fine_source = self.texture(geo, samples, features)
        blocks = self.layout.split(vectors)
        fm = self.face_model
        with torch.inference_mode():
            view = self._camera.to_view(geo.world)
            model_normals = vertex_normals(geo.vertices, self._triangles)
            angles_deg = geo.pose.rotation.new_tensor(blocks["angles"]) * (180.0 / math.pi)
        if st.texture_size:
            tick("baking")
        for k, (i, photo, det, crop, _) in enumerate(todo):
            screen = geo.crop_screen[k].numpy()
            photo_xy = crop.to_photo(screen[:, :2])
            fine_k = fine[k].numpy().astype(np.float32)
            face = FaceResult(
                source=photo.source, face_index=len(faces[i]), photo=photo, detection=det.face,
                alignment=crop, photo_landmarks=det.landmarks,
                coefficients=FaceCoefficients(**{f: blocks[f][k].astype(np.float32).copy()
                                                 for f in FaceCoefficients.FIELDS}),
                vertices=geo.vertices[k].numpy(), vertices_camera=view[k].numpy(),
                neutral_vertices=geo.neutral[k].numpy(), normals=model_normals[k].numpy(),
                triangles=fm.triangles, uvs=fm.uvs, uv_triangles=fm.uv_triangles,
                coarse_albedo=geo.albedo[k].numpy(), fine_albedo=fine_k,
                fine_source=fine_source, visibility=samples.visibility[k].numpy(),
                shading=geo.irradiance[k].numpy(),
                photo_vertices=np.concatenate([photo_xy, screen[:, 2:3]], 1).astype(np.float32),
                landmarks=crop.to_photo(geo.landmarks_crop[k].numpy()).astype(np.float32),
                pose_deg=angles_deg[k].numpy().astype(np.float32),
                rotation=geo.pose.rotation[k].numpy(),
                translation=geo.pose.translation[k].numpy(),
                texture=self.bake(fine_k) if st.texture_size else None,
            )
            faces[i].append(face)
        return [failed.get(i, f) for i, f in enumerate(faces)]
