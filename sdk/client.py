"""Python clients of the FaceCraft gRPC service: :class:`FaceCraftClient` (blocking) and
:class:`AsyncFaceCraftClient` (asyncio, ``grpc.aio``).

Both own their channel (use them as context managers), set a deadline on every call
(``timeout_s``), retry UNAVAILABLE with exponential backoff (:class:`RetryPolicy`; a stream is
retried only before its first item), and return typed, frozen results holding NumPy arrays
(:class:`Reconstruction`, :class:`Face`, :class:`BatchItem`, :class:`ModelInfo`). Failures
raise :class:`FaceCraftRpcError` (a :class:`~facecraft.sdk.errors.FaceCraftError`) with the
status name, the server's message and the request id; callers never import grpc.

Frames and units are the proto's (``proto/facecraft/v1/facecraft.proto``): metres, model frame
right-handed with +Y up and the face looking down +Z, triangles counter-clockwise from outside,
UV origin bottom-left, colours in the photo's (sRGB) encoding.

Example::

    from facecraft.sdk.client import FaceCraftClient, ReconstructOptions

    with FaceCraftClient("127.0.0.1:50051") as client:
        rec = client.reconstruct("photo.jpg", ReconstructOptions(texture=True))
        face = rec.faces[0]
        face.vertices      # (V, 3) float32 metres
        face.texture_png   # PNG bytes
        fitted = client.fit_rig("starter", photo="photo.jpg")  # a character rig's sliders
        fitted.values      # slider name -> value (identity and expression)
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from facecraft.sdk._proto import facecraft_pb2 as pb
from facecraft.sdk._proto import facecraft_pb2_grpc as pb_grpc
from facecraft.sdk.errors import FaceCraftError, InvalidInputError
from facecraft.sdk.rigs.materials import MaterialParams

__all__ = [
    "RetryPolicy",
    "ReconstructOptions",
    "FaceCraftRpcError",
    "PhotoInfo",
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
    "FaceCraftClient",
    "AsyncFaceCraftClient",
]

PhotoInput = str | os.PathLike | bytes | bytearray | memoryview


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
        texture_size: texture side in texels (256..2048); 0 = the server's default.
        vertex_colors: fine albedo per vertex (``Face.vertex_colors``).
        omit_topology: skip triangles / UVs (get them once from ``model_info(True)``).
        camera_vertices: also the posed vertices in the camera frame.
    """

    all_faces: bool = False
    texture: bool = False
    texture_size: int = 0
    vertex_colors: bool = False
    omit_topology: bool = False
    camera_vertices: bool = False

    def to_proto(self) -> pb.ReconstructOptions:
        return pb.ReconstructOptions(
            faces=pb.FACE_SELECTION_ALL if self.all_faces else pb.FACE_SELECTION_LARGEST,
            texture=self.texture, texture_size=self.texture_size,
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
class Detection:
    """``box`` (4,) float32 ``(x0, y0, x1, y1)`` photo px; ``score`` in [0, 1];
    ``landmarks5`` (5, 2) float32 photo px."""

    box: np.ndarray
    score: float
    landmarks5: np.ndarray


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

    def texture(self) -> np.ndarray | None:
        """The texture as a (T, T, 3) uint8 RGB array (row 0 = v 1), or None."""
        return _decode_png(self.texture_png)


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


def _f32(values: Any, cols: int | None = None) -> np.ndarray:
    a = np.array(values, np.float32)
    return a.reshape(-1, cols) if cols else a


def _i32(values: Any) -> np.ndarray:
    return np.array(values, np.int32).reshape(-1, 3)


def _face(m: pb.Face) -> Face:
    d = m.detection
    c = m.coefficients
    has_topo = len(m.mesh.triangles) > 0
    return Face(
        face_index=m.face_index,
        detection=Detection(box=np.array([d.x0, d.y0, d.x1, d.y1], np.float32), score=d.score,
                            landmarks5=_f32(d.landmarks5, 2)),
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
    )


def _reconstruction(m: pb.ReconstructResponse) -> Reconstruction:
    p = m.photo
    return Reconstruction(
        request_id=m.request_id,
        photo=PhotoInfo(width=p.width, height=p.height, format=p.format,
                        exif_orientation=p.exif_orientation, bit_depth=p.bit_depth,
                        had_alpha=p.had_alpha, source=p.source),
        faces=tuple(_face(f) for f in m.faces))


def _code_name(number: int) -> str:
    for c in grpc.StatusCode:
        if c.value[0] == number:
            return c.name
    return str(number)


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
    def values(field: Any) -> tuple[SliderValue, ...]:
        return tuple(SliderValue(name=s.name, value=s.value, min=s.min, max=s.max,
                                 normalized=s.normalized) for s in field)

    d = m.detection
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
        detection=Detection(box=np.array([d.x0, d.y0, d.x1, d.y1], np.float32),
                            score=d.score, landmarks5=_f32(d.landmarks5, 2))
        if m.HasField("detection") else None)


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


# --------------------------------------------------------------------------- shared plumbing
def _photo_bytes(photo: PhotoInput) -> tuple[bytes, str]:
    if isinstance(photo, (bytes, bytearray, memoryview)):
        return bytes(photo), ""
    if isinstance(photo, (str, os.PathLike)):
        p = Path(photo)
        try:
            return p.read_bytes(), p.name
        except OSError as e:
            raise FaceCraftError(f"cannot read {p}: {e.strerror or e}") from None
    raise InvalidInputError(f"expected a photo as a path or bytes, got {type(photo).__name__}")


def _batch_request(photos: Iterable[PhotoInput | tuple[str, PhotoInput]],
                   options: ReconstructOptions) -> pb.ReconstructBatchRequest:
    req = pb.ReconstructBatchRequest(options=options.to_proto())
    for item in photos:
        pid, photo = item if isinstance(item, tuple) else (None, item)
        data, name = _photo_bytes(photo)
        req.photos.add(data=data, id=pid if pid is not None else name)
    return req


def _register_request(glb: bytes | str | os.PathLike, sidecar: Any, name: str | None,
                      overwrite: bool) -> pb.RegisterRigRequest:
    if isinstance(glb, (str, os.PathLike)):
        path = Path(glb)
        if sidecar is None:
            from facecraft.sdk.rigs.rig import sidecar_path

            sidecar = sidecar_path(path)
        try:
            glb = path.read_bytes()
        except OSError as e:
            raise FaceCraftError(f"cannot read {path}: {e.strerror or e}") from None
    elif not isinstance(glb, (bytes, bytearray, memoryview)):
        raise InvalidInputError(f"expected glb as a path or bytes, got {type(glb).__name__}")
    if sidecar is None:
        raise InvalidInputError("give the sidecar (a path, its JSON text or a dict) with GLB "
                                "bytes")
    if isinstance(sidecar, dict):
        text = json.dumps(sidecar)
    elif isinstance(sidecar, (bytes, bytearray)):
        text = bytes(sidecar).decode("utf-8")
    elif isinstance(sidecar, os.PathLike) or (isinstance(sidecar, str)
                                              and not sidecar.lstrip().startswith("{")):
        try:
            text = Path(sidecar).read_text(encoding="utf-8")
        except OSError as e:
            raise FaceCraftError(f"cannot read {sidecar}: {e.strerror or e}") from None
    else:
        text = str(sidecar)
    return pb.RegisterRigRequest(glb=bytes(glb), sidecar_json=text, name=name or "",
                                 overwrite=overwrite)


def _fit_request(rig: str, photo: PhotoInput | None, face: Face | None, texture: bool,
                 texture_size: int, include_glb: bool, source: str | None
                 ) -> pb.FitRigRequest:
    if (photo is None) == (face is None):
        raise InvalidInputError("give exactly one of photo (a path or bytes) and face (a Face "
                                "of an earlier reconstruct, with vertex_colors for a texture)")
    req = pb.FitRigRequest(rig=rig, omit_texture=not texture,
                           texture_size=texture_size if texture else 0,
                           include_glb=include_glb)
    if photo is not None:
        data, name = _photo_bytes(photo)
        req.photo = data
        req.source = source if source is not None else name
    else:
        assert face is not None
        shape = req.reconstruction
        shape.neutral_vertices.extend(np.asarray(face.neutral_vertices, np.float32).ravel()
                                      .tolist())
        if face.vertex_colors is not None:
            shape.vertex_colors.extend(np.asarray(face.vertex_colors, np.float32).ravel()
                                       .tolist())
        shape.expression.extend(np.asarray(face.coefficients.expression, np.float32).ravel()
                                .tolist())
        if source is not None:
            req.source = source
    return req


def _read_pem(value: bytes | str | os.PathLike | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return Path(value).read_bytes()


@dataclass(frozen=True)
class _Config:
    target: str
    token: str | None = field(default=None, repr=False)
    tls: bool = False
    root_certificates: bytes | None = None
    client_cert: bytes | None = None
    client_key: bytes | None = field(default=None, repr=False)
    timeout_s: float = 60.0
    retry: RetryPolicy = RetryPolicy()
    max_message_bytes: int = 64 * 2 ** 20

    def channel_options(self) -> list[tuple[str, Any]]:
        return [("grpc.max_receive_message_length", self.max_message_bytes),
                ("grpc.max_send_message_length", self.max_message_bytes)]

    def credentials(self) -> grpc.ChannelCredentials | None:
        if not (self.tls or self.root_certificates or self.client_cert):
            return None
        return grpc.ssl_channel_credentials(root_certificates=self.root_certificates,
                                            private_key=self.client_key,
                                            certificate_chain=self.client_cert)

    def metadata(self, request_id: str | None) -> list[tuple[str, str]]:
        md = []
        if self.token:
            md.append(("authorization", f"Bearer {self.token}"))
        if request_id:
            md.append(("x-request-id", request_id))
        return md


def _config(target: str, token: str | None, tls: bool, root_certificates, client_cert,
            client_key, timeout_s: float, retry: RetryPolicy, max_message_mb: float) -> _Config:
    if (client_cert is None) != (client_key is None):
        raise InvalidInputError("client_cert and client_key go together (mutual TLS)")
    if timeout_s <= 0:
        raise InvalidInputError(f"timeout_s must be > 0 seconds, got {timeout_s}")
    return _Config(target=target, token=token, tls=tls,
                   root_certificates=_read_pem(root_certificates),
                   client_cert=_read_pem(client_cert), client_key=_read_pem(client_key),
                   timeout_s=float(timeout_s), retry=retry,
                   max_message_bytes=int(max_message_mb * 2 ** 20))


def _rpc_error(e: grpc.RpcError) -> FaceCraftRpcError:
    code = e.code() if hasattr(e, "code") else None
    details = e.details() if hasattr(e, "details") else str(e)
    rid = ""
    try:
        for k, v in (e.trailing_metadata() or ()):
            if k == "x-request-id":
                rid = v
    except Exception:  # noqa: BLE001 - metadata is a nicety
        pass
    return FaceCraftRpcError(code.name if code is not None else "UNKNOWN", details or "", rid)


def _unavailable(e: grpc.RpcError) -> bool:
    return hasattr(e, "code") and e.code() == grpc.StatusCode.UNAVAILABLE


# --------------------------------------------------------------------------- sync client
class FaceCraftClient:
    """A blocking client of a FaceCraft server.

    Args:
        target: ``host:port`` of the server.
        token: bearer token, when the server requires one.
        tls: connect with TLS (the system's roots unless ``root_certificates``).
        root_certificates: PEM bytes or file of the CA that signed the server's certificate.
        client_cert, client_key: PEM bytes or files for mutual TLS.
        timeout_s: deadline of each call, seconds (per call overridable).
        retry: retries of UNAVAILABLE.
        max_message_mb: largest message sent or received, MiB (a textured answer can be a
            few MiB).
    """

    def __init__(self, target: str = "127.0.0.1:50051", *, token: str | None = None,
                 tls: bool = False, root_certificates: bytes | str | os.PathLike | None = None,
                 client_cert: bytes | str | os.PathLike | None = None,
                 client_key: bytes | str | os.PathLike | None = None, timeout_s: float = 60.0,
                 retry: RetryPolicy = RetryPolicy(), max_message_mb: float = 64.0) -> None:
        self._cfg = _config(target, token, tls, root_certificates, client_cert, client_key,
                            timeout_s, retry, max_message_mb)
        creds = self._cfg.credentials()
        opts = self._cfg.channel_options()
        self._channel = (grpc.secure_channel(target, creds, options=opts) if creds is not None
                         else grpc.insecure_channel(target, options=opts))
        self._stub = pb_grpc.FaceCraftStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    def __repr__(self) -> str:
        return f"FaceCraftClient({self._cfg.target!r})"

    def _call(self, fn: Any, request: Any, timeout_s: float | None, request_id: str | None
              ) -> Any:
        total = self._cfg.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + total
        pol = self._cfg.retry
        for attempt in range(1, pol.max_attempts + 1):
            remaining = deadline - time.monotonic()
            try:
                return fn(request, timeout=max(remaining, 0.001),
                          metadata=self._cfg.metadata(request_id))
            except grpc.RpcError as e:
                wait = pol.backoff(attempt)
                if not _unavailable(e) or attempt == pol.max_attempts or \
                        time.monotonic() + wait >= deadline:
                    raise _rpc_error(e) from None
                time.sleep(wait)
        raise AssertionError("unreachable")

    def reconstruct(self, photo: PhotoInput, options: ReconstructOptions = ReconstructOptions(),
                    *, source: str | None = None, timeout_s: float | None = None,
                    request_id: str | None = None) -> Reconstruction:
        """Reconstruct the face(s) of one photo (a path or the file's bytes).

        Raises:
            FaceCraftRpcError: ``FAILED_PRECONDITION`` (no face), ``INVALID_ARGUMENT`` (not a
                usable image, bad options), ``RESOURCE_EXHAUSTED`` (too large), ...
        """
        data, name = _photo_bytes(photo)
        req = pb.ReconstructRequest(photo=data, options=options.to_proto(),
                                    source=source if source is not None else name)
        return _reconstruction(self._call(self._stub.Reconstruct, req, timeout_s, request_id))

    def reconstruct_batch(self, photos: Iterable[PhotoInput | tuple[str, PhotoInput]],
                          options: ReconstructOptions = ReconstructOptions(), *,
                          timeout_s: float | None = None, request_id: str | None = None
                          ) -> Iterator[BatchItem]:
        """Reconstruct many photos (paths, bytes, or ``(id, photo)`` pairs); yields one
        :class:`BatchItem` per photo, in order, as the server finishes them."""
        req = _batch_request(photos, options)
        total = self._cfg.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + total
        pol = self._cfg.retry
        for attempt in range(1, pol.max_attempts + 1):
            got_any = False
            try:
                stream = self._stub.ReconstructBatch(
                    req, timeout=max(deadline - time.monotonic(), 0.001),
                    metadata=self._cfg.metadata(request_id))
                try:
                    for m in stream:
                        got_any = True
                        yield _batch_item(m)
                finally:
                    stream.cancel()  # no-op when finished; frees the call if we stop early
                return
            except grpc.RpcError as e:
                wait = pol.backoff(attempt)
                if got_any or not _unavailable(e) or attempt == pol.max_attempts or \
                        time.monotonic() + wait >= deadline:
                    raise _rpc_error(e) from None
                time.sleep(wait)

    def model_info(self, include_topology: bool = False, *, timeout_s: float | None = None
                   ) -> ModelInfo:
        """The server's package, face model, layout, camera, providers and limits."""
        req = pb.GetModelInfoRequest(include_topology=include_topology)
        return _model_info(self._call(self._stub.GetModelInfo, req, timeout_s, None))

    def register_rig(self, glb: bytes | str | os.PathLike, sidecar: Any = None, *,
                     name: str | None = None, overwrite: bool = False,
                     timeout_s: float | None = None) -> RigInfo:
        """Register a character rig on the server (validated there, against its face model).

        Args:
            glb: the rig's ``.glb`` (a path or its bytes).
            sidecar: its sidecar: a path, the JSON text, bytes or a dict (default with a GLB
                path: ``NAME.rig.json`` next to it).
            name: the name to register it under (default: the sidecar's).
            overwrite: replace a rig of that name.

        Raises:
            FaceCraftRpcError: ``INVALID_ARGUMENT`` (an invalid rig, with what is wrong),
                ``ALREADY_EXISTS`` (the name is taken), ...
        """
        req = _register_request(glb, sidecar, name, overwrite)
        return _rig_info(self._call(self._stub.RegisterRig, req, timeout_s, None))

    def list_rigs(self, include_sliders: bool = False, *, timeout_s: float | None = None
                  ) -> tuple[RigInfo, ...]:
        """The rigs the server fits: ``"starter"`` first, then the registered ones."""
        req = pb.ListRigsRequest(include_sliders=include_sliders)
        return tuple(_rig_info(r) for r in
                     self._call(self._stub.ListRigs, req, timeout_s, None).rigs)

    def fit_rig(self, rig: str, photo: PhotoInput | None = None, *, face: Face | None = None,
                texture: bool = True, texture_size: int = 0, include_glb: bool = False,
                source: str | None = None, timeout_s: float | None = None,
                request_id: str | None = None) -> FittedRig:
        """Fit a rig to a face: a photo's largest face, or a :class:`Face` of an earlier
        :meth:`reconstruct` (its neutral shape, expression and, when it was asked for with
        ``vertex_colors=True``, its colours for the texture and materials).

        Args:
            rig: ``"starter"`` or a registered rig's name.
            photo: a photo path or bytes; or
            face: a reconstructed face.
            texture: bake the texture into the rig's UV layout.
            texture_size: its side in texels (256..2048); 0 = the server's default.
            include_glb: also return the fitted rig as GLB bytes.

        Raises:
            FaceCraftRpcError: ``NOT_FOUND`` (no such rig), ``FAILED_PRECONDITION`` (no face
                in the photo), ``INVALID_ARGUMENT``, ...
        """
        req = _fit_request(rig, photo, face, texture, texture_size, include_glb, source)
        return _fitted_rig(self._call(self._stub.FitRig, req, timeout_s, request_id))

    def health(self, service: str = "", *, timeout_s: float = 5.0) -> str:
        """The health service's answer: ``"SERVING"``, ``"NOT_SERVING"``, ..."""
        resp = self._call(self._health.Check, health_pb2.HealthCheckRequest(service=service),
                          timeout_s, None)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> FaceCraftClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- asyncio client
class AsyncFaceCraftClient:
    """The asyncio twin of :class:`FaceCraftClient` (same arguments; ``grpc.aio``); use it as
    ``async with``. Create it inside the running event loop."""

    def __init__(self, target: str = "127.0.0.1:50051", *, token: str | None = None,
                 tls: bool = False, root_certificates: bytes | str | os.PathLike | None = None,
                 client_cert: bytes | str | os.PathLike | None = None,
                 client_key: bytes | str | os.PathLike | None = None, timeout_s: float = 60.0,
                 retry: RetryPolicy = RetryPolicy(), max_message_mb: float = 64.0) -> None:
        self._cfg = _config(target, token, tls, root_certificates, client_cert, client_key,
                            timeout_s, retry, max_message_mb)
        creds = self._cfg.credentials()
        opts = self._cfg.channel_options()
        self._channel = (grpc.aio.secure_channel(target, creds, options=opts)
                         if creds is not None else grpc.aio.insecure_channel(target, options=opts))
        self._stub = pb_grpc.FaceCraftStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    def __repr__(self) -> str:
        return f"AsyncFaceCraftClient({self._cfg.target!r})"

    async def _call(self, fn: Any, request: Any, timeout_s: float | None,
                    request_id: str | None) -> Any:
        total = self._cfg.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + total
        pol = self._cfg.retry
        for attempt in range(1, pol.max_attempts + 1):
            try:
                return await fn(request, timeout=max(deadline - time.monotonic(), 0.001),
                                metadata=self._cfg.metadata(request_id))
            except grpc.RpcError as e:
                wait = pol.backoff(attempt)
                if not _unavailable(e) or attempt == pol.max_attempts or \
                        time.monotonic() + wait >= deadline:
                    raise _rpc_error(e) from None
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def reconstruct(self, photo: PhotoInput,
                          options: ReconstructOptions = ReconstructOptions(), *,
                          source: str | None = None, timeout_s: float | None = None,
                          request_id: str | None = None) -> Reconstruction:
        """See :meth:`FaceCraftClient.reconstruct`."""
        data, name = _photo_bytes(photo)
        req = pb.ReconstructRequest(photo=data, options=options.to_proto(),
                                    source=source if source is not None else name)
        return _reconstruction(await self._call(self._stub.Reconstruct, req, timeout_s,
                                                request_id))

    async def reconstruct_batch(self, photos: Iterable[PhotoInput | tuple[str, PhotoInput]],
                                options: ReconstructOptions = ReconstructOptions(), *,
                                timeout_s: float | None = None, request_id: str | None = None
                                ) -> AsyncIterator[BatchItem]:
        """See :meth:`FaceCraftClient.reconstruct_batch` (an async iterator)."""
        req = _batch_request(photos, options)
        total = self._cfg.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + total
        pol = self._cfg.retry
        for attempt in range(1, pol.max_attempts + 1):
            got_any = False
            try:
                call = self._stub.ReconstructBatch(
                    req, timeout=max(deadline - time.monotonic(), 0.001),
                    metadata=self._cfg.metadata(request_id))
                async for m in call:
                    got_any = True
                    yield _batch_item(m)
                return
            except grpc.RpcError as e:
                wait = pol.backoff(attempt)
                if got_any or not _unavailable(e) or attempt == pol.max_attempts or \
                        time.monotonic() + wait >= deadline:
                    raise _rpc_error(e) from None
                await asyncio.sleep(wait)

    async def model_info(self, include_topology: bool = False, *,
                         timeout_s: float | None = None) -> ModelInfo:
        """See :meth:`FaceCraftClient.model_info`."""
        req = pb.GetModelInfoRequest(include_topology=include_topology)
        return _model_info(await self._call(self._stub.GetModelInfo, req, timeout_s, None))

    async def register_rig(self, glb: bytes | str | os.PathLike, sidecar: Any = None, *,
                           name: str | None = None, overwrite: bool = False,
                           timeout_s: float | None = None) -> RigInfo:
        """See :meth:`FaceCraftClient.register_rig`."""
        req = _register_request(glb, sidecar, name, overwrite)
        return _rig_info(await self._call(self._stub.RegisterRig, req, timeout_s, None))

    async def list_rigs(self, include_sliders: bool = False, *,
                        timeout_s: float | None = None) -> tuple[RigInfo, ...]:
        """See :meth:`FaceCraftClient.list_rigs`."""
        req = pb.ListRigsRequest(include_sliders=include_sliders)
        resp = await self._call(self._stub.ListRigs, req, timeout_s, None)
        return tuple(_rig_info(r) for r in resp.rigs)

    async def fit_rig(self, rig: str, photo: PhotoInput | None = None, *,
                      face: Face | None = None, texture: bool = True, texture_size: int = 0,
                      include_glb: bool = False, source: str | None = None,
                      timeout_s: float | None = None, request_id: str | None = None
                      ) -> FittedRig:
        """See :meth:`FaceCraftClient.fit_rig`."""
        req = _fit_request(rig, photo, face, texture, texture_size, include_glb, source)
        return _fitted_rig(await self._call(self._stub.FitRig, req, timeout_s, request_id))

    async def health(self, service: str = "", *, timeout_s: float = 5.0) -> str:
        """See :meth:`FaceCraftClient.health`."""
        resp = await self._call(self._health.Check,
                                health_pb2.HealthCheckRequest(service=service), timeout_s, None)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncFaceCraftClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
