"""The gRPC client's options, errors and results (frozen dataclasses holding NumPy arrays), and
their conversion from the ``facecraft.v1`` messages; re-exported by :mod:`facecraft.sdk.client`.

Light on purpose: NumPy, grpc's generated messages and two light SDK records
(:class:`~facecraft.sdk.photo.detection.Face` as :data:`Detection`,
:class:`~facecraft.sdk.rigs.material_params.MaterialParams`); never torch, OpenCV or SciPy.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._proto import facecraft_pb2 as pb
from .errors import FaceCraftError, InvalidInputError
from .photo.detection import Face as Detection
from .rigs.material_params import MaterialParams

__all__ = [
    "RetryPolicy",
    "ReconstructOptions",
    "FaceCraftRpcError",
    "PhotoInfo",
    "PhotoLandmarks",
    "Detection",
    "Coefficients",
    "Pose",
    "Face",
    "Reconstruction",
    "BatchItem",
    "ModelInfo",
    "SliderInfo",
    "RigInfo",
    "SliderValue",
    "FittedRig",
]

#: gRPC status code number -> name (the client never imports grpc's enum for this).
_CODE_NAMES = {0: "OK", 1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT",
               4: "DEADLINE_EXCEEDED", 5: "NOT_FOUND", 6: "ALREADY_EXISTS",
               7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED", 9: "FAILED_PRECONDITION",
               10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED", 13: "INTERNAL",
               14: "UNAVAILABLE", 15: "DATA_LOSS", 16: "UNAUTHENTICATED"}


def _code_name(number: int) -> str:
    return _CODE_NAMES.get(number, str(number))


# --------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class RetryPolicy:
    """Retries of calls that fail with UNAVAILABLE (server down, restarting, network blip).

    Attributes:
        max_attempts: tries in all, >= 1 (1: no retry).
        initial_backoff_s: wait before the second try, seconds.
        max_backoff_s: the longest wait between tries, seconds.
        multiplier: growth of the wait per try.
        jitter: random fraction (+-) applied to each wait, in [0, 1).
    """

    max_attempts: int = 4
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 2.0
    multiplier: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise InvalidInputError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if not (self.initial_backoff_s >= 0 and self.max_backoff_s >= self.initial_backoff_s
                and self.multiplier >= 1 and 0 <= self.jitter < 1):
            raise InvalidInputError("need 0 <= initial_backoff_s <= max_backoff_s, "
                                    "multiplier >= 1 and jitter in [0, 1)")

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed try number ``attempt`` (1-based)."""
        base = min(self.max_backoff_s, self.initial_backoff_s * self.multiplier ** (attempt - 1))
        return base * (1.0 + self.jitter * (2.0 * random.random() - 1.0))


@dataclass(frozen=True)
class ReconstructOptions:
    """What a reconstruction computes and returns (the proto's ``ReconstructOptions``).

    Attributes:
        all_faces: every face of the photo (largest first) instead of the largest.
        texture: bake the fine albedo into a UV texture (``Face.texture_png``).
        texture_size: texture side in texels (256..2048; 1024 like ``facecraft create``); 0 =
            the server's default. Sent only with ``texture``.
        vertex_colors: fine albedo per vertex (``Face.vertex_colors``).
        omit_topology: skip triangles / UVs (get them once from ``model_info(True)``).
        camera_vertices: also the posed vertices in the camera frame.
    """

    all_faces: bool = False
    texture: bool = False
    texture_size: int = 1024
    vertex_colors: bool = False
    omit_topology: bool = False
    camera_vertices: bool = False

    def to_proto(self) -> pb.ReconstructOptions:
        return pb.ReconstructOptions(
            faces=pb.FACE_SELECTION_ALL if self.all_faces else pb.FACE_SELECTION_LARGEST,
            texture=self.texture, texture_size=self.texture_size if self.texture else 0,
            vertex_colors=self.vertex_colors, omit_topology=self.omit_topology,
            camera_vertices=self.camera_vertices)


class FaceCraftRpcError(FaceCraftError):
    """A call failed.

    Attributes:
        code: the gRPC status name, e.g. ``"INVALID_ARGUMENT"``, ``"FAILED_PRECONDITION"`` (no
            face), ``"RESOURCE_EXHAUSTED"``, ``"UNAUTHENTICATED"``, ``"UNAVAILABLE"``.
        details: the server's message.
        request_id: the call's id in the server's logs ("" if unknown).
    """

    def __init__(self, code: str, details: str, request_id: str = "") -> None:
        super().__init__(f"{code}: {details}" + (f" (request id {request_id})"
                                                 if request_id else ""))
        self.code = code
        self.details = details
        self.request_id = request_id


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class PhotoInfo:
    """The decoded photo: ``width`` x ``height`` px upright, ``format``, ``exif_orientation``
    applied (1..8), ``bit_depth``, ``had_alpha``, ``source``."""

    width: int
    height: int
    format: str
    exif_orientation: int
    bit_depth: int
    had_alpha: bool
    source: str


@dataclass(frozen=True, eq=False)
class Coefficients:
    """3DMM coefficients (float32): identity (Ki,), expression (Ke,), albedo (Ka,), angles (3,)
    radians, lighting (27,) SH, translation (3,) metres."""

    identity: np.ndarray
    expression: np.ndarray
    albedo: np.ndarray
    angles: np.ndarray
    lighting: np.ndarray
    translation: np.ndarray


@dataclass(frozen=True, eq=False)
class Pose:
    """``p_world = rotation @ p_model + translation``; ``angles`` (3,) radians (pitch, yaw,
    roll), ``rotation`` (3, 3), ``translation`` (3,) metres."""

    angles: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray


@dataclass(frozen=True, eq=False)
class Face:
    """One reconstructed face (arrays float32 unless noted; see the proto for frames).

    Attributes:
        face_index: 0 for the largest face.
        detection: box, score (the confidence) and 5 landmarks.
        vertices: (V, 3) metres, model frame (identity + expression).
        normals: (V, 3) unit normals.
        triangles: (F, 3) int32, CCW from outside; None with ``omit_topology``.
        uvs: (U, 2) origin bottom-left; None with ``omit_topology``.
        uv_triangles: (F, 3) int32 indices into ``uvs``; None with ``omit_topology``.
        neutral_vertices: (V, 3) metres, expression zero.
        coefficients: :class:`Coefficients`. pose: :class:`Pose`.
        landmarks: (68, 2) photo pixels.
        texture_png: PNG bytes (None unless asked); :meth:`texture` decodes it.
        vertex_colors: (V, 3) RGB in [0, 1] (None unless asked).
        albedo_source: ``"refiner"`` or ``"photo"``.
        vertices_camera: (V, 3) metres, camera view frame (None unless asked).
        photo_landmarks: the server front-end's 468-point mesh, iris and region outlines in
            photo pixels, or None (an MTCNN server).
    """

    face_index: int
    detection: Detection
    vertices: np.ndarray
    normals: np.ndarray
    triangles: np.ndarray | None
    uvs: np.ndarray | None
    uv_triangles: np.ndarray | None
    neutral_vertices: np.ndarray
    coefficients: Coefficients
    pose: Pose
    landmarks: np.ndarray
    texture_png: bytes | None
    vertex_colors: np.ndarray | None
    albedo_source: str
    vertices_camera: np.ndarray | None
    photo_landmarks: PhotoLandmarks | None = None

    def texture(self) -> np.ndarray | None:
        """The texture as a (T, T, 3) uint8 RGB array (row 0 = v 1), or None."""
        return _decode_png(self.texture_png)


@dataclass(frozen=True, eq=False)
class PhotoLandmarks:
    """What the server's MediaPipe front-end measured on the photo (photo pixels, x right,
    y down).

    Attributes:
        mesh: (468, 3) float32; z is relative depth on the x scale (smaller = nearer).
        presence: face-presence probability in [0, 1].
        iris: (2, 5, 2) float32 (subject's right eye, then left; centre then 4 rim points), or
            None.
        regions: name -> list of (K, 2) float32 closed polygons (face_oval, lips_outer,
            lips_inner, eyes, brows, nose, iris).
        detector: which detector found the face (``"short"``, ``"full+tiles"``, ...).
    """

    mesh: np.ndarray
    presence: float
    iris: np.ndarray | None
    regions: dict[str, list[np.ndarray]]
    detector: str


def _photo_landmarks(m: pb.PhotoLandmarks) -> PhotoLandmarks:
    regions: dict[str, list[np.ndarray]] = {}
    for r in m.regions:
        regions.setdefault(r.name, []).append(_f32(r.points, 2))
    iris = _f32(m.iris, 2).reshape(2, 5, 2) if len(m.iris) else None
    return PhotoLandmarks(_f32(m.mesh, 3), float(m.presence), iris, regions, m.detector)


@dataclass(frozen=True)
class Reconstruction:
    """A photo's result: the call's ``request_id``, the ``photo`` and its ``faces`` (largest
    first, at least one)."""

    request_id: str
    photo: PhotoInfo
    faces: tuple[Face, ...]


@dataclass(frozen=True)
class BatchItem:
    """One photo of a batch: its ``index`` and ``id``, ``code`` (``"OK"`` or the status name),
    ``message``, and ``result`` when OK."""

    index: int
    id: str
    code: str
    message: str
    result: Reconstruction | None

    @property
    def ok(self) -> bool:
        return self.code == "OK"


@dataclass(frozen=True, eq=False)
class ModelInfo:
    """What the server runs (the proto's ``ModelInfo``).

    Attributes:
        server_version: facecraft's version on the server.
        package: ``{"name", "version", "description"}``.
        face_model: name, sizes, hashes, ``identity_names`` / ``expression_names`` /
            ``albedo_names`` (tuples), ``expression_kind``.
        coefficient_layout: block name -> ``(offset, size, unit)``, in vector order.
        camera: ``{"camera_distance", "focal_px", "crop_size"}``.
        providers: ONNX Runtime providers in use.
        limits: ``max_message_bytes``, ``max_pixels``, ``max_batch``, texture sizes, ``workers``.
        capabilities: e.g. ``("reconstruct", "reconstruct_batch", ...)``.
        mean_vertices, triangles, uvs, uv_triangles: the face model's topology and mean shape
            ((V, 3) float32, (F, 3) int32, (U, 2) float32, (F, 3) int32) when requested.
    """

    server_version: str
    package: dict[str, str]
    face_model: dict[str, Any]
    coefficient_layout: dict[str, tuple[int, int, str]]
    camera: dict[str, float]
    providers: tuple[str, ...]
    limits: dict[str, int]
    capabilities: tuple[str, ...]
    mean_vertices: np.ndarray | None = None
    triangles: np.ndarray | None = None
    uvs: np.ndarray | None = None
    uv_triangles: np.ndarray | None = None


@dataclass(frozen=True)
class SliderInfo:
    """One slider of a rig: ``name``, ``kind`` (``"identity"`` or ``"expression"``), range
    ``min``..``max`` and ``default`` (morph weights), UI ``group`` and ``label``, ``arkit``
    (the ARKit-52 shape, or ""), ``unit``."""

    name: str
    kind: str
    min: float
    max: float
    default: float
    group: str
    label: str
    arkit: str
    unit: str


@dataclass(frozen=True)
class RigInfo:
    """A rig the server can fit (the proto's ``RigInfo``).

    Attributes:
        name: what :meth:`FaceCraftClient.fit_rig` takes. builtin: True for ``"starter"``.
        num_vertices, num_triangles: the rig mesh's size.
        num_identity_sliders, num_expression_sliders: its sliders by kind.
        has_uvs: it has a UV layout (a texture can be baked).
        content_sha256: hash of its geometry, morph targets and landmarks.
        sliders: every slider (empty unless asked for; always after ``register_rig``).
    """

    name: str
    builtin: bool
    num_vertices: int
    num_triangles: int
    num_identity_sliders: int
    num_expression_sliders: int
    has_uvs: bool
    content_sha256: str
    sliders: tuple[SliderInfo, ...] = ()


@dataclass(frozen=True)
class SliderValue:
    """A fitted slider: ``value`` (the morph weight) within ``min``..``max``, and
    ``normalized`` = (value - min) / (max - min) in [0, 1]."""

    name: str
    value: float
    min: float
    max: float
    normalized: float


@dataclass(frozen=True, eq=False)
class FittedRig:
    """A face fitted to a rig (the proto's ``FitRigResponse``).

    Attributes:
        request_id: the call's id. rig: the rig's name.
        identity: every identity slider's value, in the sidecar's order.
        expression: every expression slider's weight, likewise.
        expression_method: ``"names"`` or ``"least_squares"``.
        residual_mean_mm, residual_p95_mm: distance between the fitted rig and the face over
            the rig's face, mm (mean, 95th percentile).
        texture_png: the fine texture in the rig's UV layout (PNG), or None;
            :meth:`texture` decodes it.
        materials: skin, iris, eyebrow and lip colours, or None (no vertex colours).
        glb: the fitted rig as GLB (when asked for), or None.
        photo: the decoded photo, detection: the face fitted (when fitted from a photo).
    """

    request_id: str
    rig: str
    identity: tuple[SliderValue, ...]
    expression: tuple[SliderValue, ...]
    expression_method: str
    residual_mean_mm: float
    residual_p95_mm: float
    texture_png: bytes | None
    materials: MaterialParams | None
    glb: bytes | None
    photo: PhotoInfo | None
    detection: Detection | None

    @property
    def values(self) -> dict[str, float]:
        """Slider name -> value, identity then expression (what a game's sliders take)."""
        return {s.name: s.value for s in (*self.identity, *self.expression)}

    def texture(self) -> np.ndarray | None:
        """The texture as a (T, T, 3) uint8 RGB array (row 0 = top), or None."""
        return _decode_png(self.texture_png)

    def to_json(self) -> dict[str, Any]:
        """The slider values as the ``NAME_sliders.json`` document ``facecraft create --rig``
        writes (:func:`facecraft.sdk.rigs.output.sliders_json`, without the rig's hash)."""
        doc: dict[str, Any] = {"format": "facecraft.rig_sliders", "version": 1,
                               "rig": self.rig}
        for key, values in (("identity", self.identity), ("expression", self.expression)):
            doc[key] = {s.name: round(float(s.value), 6) for s in values}
            doc[f"{key}_normalized"] = {s.name: round(float(s.normalized), 6) for s in values}
        doc["fit"] = {"rig": self.rig, "sliders": len(self.identity),
                      "residual_mean_mm": round(float(self.residual_mean_mm), 3),
                      "residual_p95_mm": round(float(self.residual_p95_mm), 3)}
        doc["expression_method"] = self.expression_method
        return doc


def _decode_png(data: bytes | None) -> np.ndarray | None:
    if data is None:
        return None
    import cv2

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(img[..., ::-1])


def _f32(values: Iterable[float], cols: int | None = None) -> np.ndarray:
    a = np.array(values, np.float32)
    return a.reshape(-1, cols) if cols else a


def _i32(values: Iterable[int]) -> np.ndarray:
    return np.array(values, np.int32).reshape(-1, 3)


def _detection(d: pb.Detection) -> Detection:
    return Detection(box=np.array([d.x0, d.y0, d.x1, d.y1], np.float32), score=float(d.score),
                     landmarks5=_f32(d.landmarks5, 2))


def _face(m: pb.Face) -> Face:
    d = m.detection
    c = m.coefficients
    has_topo = len(m.mesh.triangles) > 0
    return Face(
        face_index=m.face_index,
        detection=_detection(d),
        vertices=_f32(m.mesh.vertices, 3), normals=_f32(m.mesh.normals, 3),
        triangles=_i32(m.mesh.triangles) if has_topo else None,
        uvs=_f32(m.mesh.uvs, 2) if has_topo else None,
        uv_triangles=_i32(m.mesh.uv_triangles) if has_topo else None,
        neutral_vertices=_f32(m.neutral_vertices, 3),
        coefficients=Coefficients(**{k: _f32(getattr(c, k)) for k in (
            "identity", "expression", "albedo", "angles", "lighting", "translation")}),
        pose=Pose(angles=np.array([m.pose.pitch, m.pose.yaw, m.pose.roll], np.float32),
                  rotation=_f32(m.pose.rotation, 3), translation=_f32(m.pose.translation)),
        landmarks=_f32(m.landmarks, 2),
        texture_png=m.texture.png if m.HasField("texture") else None,
        vertex_colors=_f32(m.vertex_colors, 3) if len(m.vertex_colors) else None,
        albedo_source={pb.ALBEDO_SOURCE_REFINER: "refiner",
                       pb.ALBEDO_SOURCE_PHOTO: "photo"}.get(m.albedo_source, "unspecified"),
        vertices_camera=_f32(m.vertices_camera, 3) if len(m.vertices_camera) else None,
        photo_landmarks=(_photo_landmarks(m.photo_landmarks) if m.HasField("photo_landmarks")
                         else None),
    )


def _reconstruction(m: pb.ReconstructResponse) -> Reconstruction:
    p = m.photo
    return Reconstruction(
        request_id=m.request_id,
        photo=PhotoInfo(width=p.width, height=p.height, format=p.format,
                        exif_orientation=p.exif_orientation, bit_depth=p.bit_depth,
                        had_alpha=p.had_alpha, source=p.source),
        faces=tuple(_face(f) for f in m.faces))


def _batch_item(m: pb.ReconstructBatchItem) -> BatchItem:
    ok = m.status.code == 0
    return BatchItem(index=m.index, id=m.id, code=_code_name(m.status.code),
                     message=m.status.message,
                     result=_reconstruction(m.result) if ok and m.HasField("result") else None)


def _rig_info(m: pb.RigInfo) -> RigInfo:
    return RigInfo(
        name=m.name, builtin=m.builtin, num_vertices=m.num_vertices,
        num_triangles=m.num_triangles, num_identity_sliders=m.num_identity_sliders,
        num_expression_sliders=m.num_expression_sliders, has_uvs=m.has_uvs,
        content_sha256=m.content_sha256,
        sliders=tuple(SliderInfo(name=s.name, kind=s.kind, min=s.min, max=s.max,
                                 default=s.default_value, group=s.group, label=s.label,
                                 arkit=s.arkit, unit=s.unit) for s in m.sliders))


def _materials(m: pb.MaterialParameters) -> MaterialParams:
    def color(key: str) -> tuple[float, float, float] | None:
        v = getattr(m, key if key.endswith("_lab") else f"{key}_srgb")
        return (float(v[0]), float(v[1]), float(v[2])) if len(v) == 3 else None

    def opt(key: str) -> float | None:
        return float(getattr(m, key)) if m.HasField(key) else None

    return MaterialParams(
        skin_hex=m.skin_hex or None, skin_srgb=color("skin"), skin_lab=color("skin_lab"),
        skin_ita_deg=opt("skin_ita_deg"), skin_type=m.skin_type or None,
        skin_category=m.skin_category or None, iris_hex=m.iris_hex or None,
        iris_srgb=color("iris"), iris_lightness=opt("iris_lightness"),
        iris_category=m.iris_category or None, eyebrow_hex=m.eyebrow_hex or None,
        eyebrow_srgb=color("eyebrow"), eyebrow_density=opt("eyebrow_density"),
        lip_hex=m.lip_hex or None, lip_srgb=color("lip"), source=m.source,
        samples=dict(m.samples))


def _fitted_rig(m: pb.FitRigResponse) -> FittedRig:
    def values(field: Iterable[pb.SliderValue]) -> tuple[SliderValue, ...]:
        return tuple(SliderValue(name=s.name, value=s.value, min=s.min, max=s.max,
                                 normalized=s.normalized) for s in field)

    return FittedRig(
        request_id=m.request_id, rig=m.rig, identity=values(m.identity),
        expression=values(m.expression), expression_method=m.expression_method,
        residual_mean_mm=m.residual_mean_mm, residual_p95_mm=m.residual_p95_mm,
        texture_png=m.texture.png if m.HasField("texture") else None,
        materials=_materials(m.materials) if m.HasField("materials") else None,
        glb=m.glb or None,
        photo=PhotoInfo(width=m.photo.width, height=m.photo.height, format=m.photo.format,
                        exif_orientation=m.photo.exif_orientation,
                        bit_depth=m.photo.bit_depth, had_alpha=m.photo.had_alpha,
                        source=m.photo.source) if m.HasField("photo") else None,
        detection=_detection(m.detection) if m.HasField("detection") else None)


def _model_info(m: pb.ModelInfo) -> ModelInfo:
    fm = m.face_model
    topo = fm.topology if fm.HasField("topology") else None
    return ModelInfo(
        server_version=m.server_version,
        package={"name": m.package.name, "version": m.package.version,
                 "description": m.package.description},
        face_model={"name": fm.name, "num_vertices": fm.num_vertices,
                    "num_triangles": fm.num_triangles, "num_uvs": fm.num_uvs,
                    "content_sha256": fm.content_sha256, "topology_sha256": fm.topology_sha256,
                    "identity_names": tuple(fm.identity_names),
                    "expression_names": tuple(fm.expression_names),
                    "albedo_names": tuple(fm.albedo_names),
                    "expression_kind": fm.expression_kind},
        coefficient_layout={b.name: (b.offset, b.size, b.unit) for b in m.coefficient_layout},
        camera={"camera_distance": m.camera.camera_distance, "focal_px": m.camera.focal_px,
                "crop_size": m.camera.crop_size},
        providers=tuple(m.providers),
        limits={k: getattr(m.limits, k) for k in (
            "max_message_bytes", "max_pixels", "max_batch", "min_texture_size",
            "max_texture_size", "default_texture_size", "workers")},
        capabilities=tuple(m.capabilities),
        mean_vertices=_f32(topo.vertices, 3) if topo is not None else None,
        triangles=_i32(topo.triangles) if topo is not None else None,
        uvs=_f32(topo.uvs, 2) if topo is not None else None,
        uv_triangles=_i32(topo.uv_triangles) if topo is not None else None,
    )


