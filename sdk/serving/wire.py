"""Conversions between the runtime's dataclasses and the ``facecraft.v1`` messages (server side).

Small functions, one per message, used by :mod:`facecraft.sdk.serving.server`; the frames, units and
array layouts are the proto's (``proto/facecraft/v1/facecraft.proto``), which are the pipeline's
own (:mod:`facecraft.sdk.pipeline.pipeline`), so nothing here transforms coordinates: arrays are
flattened row-major and copied into packed repeated fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import numpy as np
from google.protobuf.internal.containers import RepeatedScalarFieldContainer

from .._proto import facecraft_pb2 as pb
from ..errors import InvalidInputError
from ..photo.detection import Face
from ..photo.image_io import DecodedImage
from ..photo.mediapipe_frontend import FaceLandmarks
from ..photo.mesh_regions import region_polygons
from ..pipeline.pipeline import FaceCraft, FaceResult
from ..render.cameras import PerspectiveCamera
from ..render.texture import (  # the one texture-size range (re-exported)
    MAX_TEXTURE_SIZE,
    MIN_TEXTURE_SIZE,
    BakeSettings,
)
from ..rigs.create import RiggedFace
from ..rigs.material_params import MaterialParams
from ..rigs.rig import Rig

__all__ = ["MIN_TEXTURE_SIZE", "MAX_TEXTURE_SIZE", "CallOptions", "call_options", "photo_info",
           "face_message", "detection", "encode_png", "model_info", "facecraft_version", "rig_info",
           "rig_texture_size", "face_shape", "fit_rig_response", "material_parameters"]


_UNITS = {"identity": "unit variance", "expression": "blendshape weight or unit variance",
          "albedo": "unit variance", "angles": "radians (pitch, yaw, roll)",
          "lighting": "SH offsets, channel-major", "translation": "metres"}


@dataclass(frozen=True)
class CallOptions:
    """A request's validated :class:`ReconstructOptions`.

    Attributes:
        all_faces: every face (largest first) instead of the largest only.
        texture_size: side of the PNG texture in texels; 0 = no texture.
        vertex_colors: send the fine albedo per vertex.
        topology: send triangles, UVs and UV triangles.
        camera_vertices: send the posed vertices in the camera's view frame.
    """

    all_faces: bool = False
    texture_size: int = 0
    vertex_colors: bool = False
    topology: bool = True
    camera_vertices: bool = False


def call_options(msg: pb.ReconstructOptions, default_texture_size: int) -> CallOptions:
    """Validate a request's options.

    Raises:
        InvalidInputError: an unknown ``faces`` value or a texture size out of range.
    """
    if msg.faces not in pb.FaceSelection.values():
        raise InvalidInputError(f"options.faces = {msg.faces} is not a FaceSelection value; use "
                                "FACE_SELECTION_LARGEST (1) or FACE_SELECTION_ALL (2)")
    size = 0
    if msg.texture:
        size = msg.texture_size or default_texture_size
        if not MIN_TEXTURE_SIZE <= size <= MAX_TEXTURE_SIZE:
            raise InvalidInputError(f"options.texture_size = {size} texels is out of range; use "
                                    f"0 (the server's default, {default_texture_size}) or "
                                    f"{MIN_TEXTURE_SIZE}..{MAX_TEXTURE_SIZE}")
    elif msg.texture_size:
        raise InvalidInputError(f"options.texture_size = {msg.texture_size} without "
                                "options.texture = true; set texture to get a PNG texture")
    return CallOptions(all_faces=msg.faces == pb.FACE_SELECTION_ALL, texture_size=size,
                       vertex_colors=msg.vertex_colors, topology=not msg.omit_topology,
                       camera_vertices=msg.camera_vertices)


def _floats(field: RepeatedScalarFieldContainer[float], a: np.ndarray) -> None:
    field.extend(np.asarray(a, np.float32).ravel().tolist())


def _ints(field: RepeatedScalarFieldContainer[int], a: np.ndarray) -> None:
    field.extend(np.asarray(a, np.int64).ravel().tolist())


def photo_info(photo: DecodedImage, source: str) -> pb.PhotoInfo:
    """The decoded photo's description (upright size, format, orientation, depth, alpha)."""
    h, w = photo.size
    return pb.PhotoInfo(width=w, height=h, format=photo.format,
                        exif_orientation=photo.orientation, bit_depth=photo.bit_depth,
                        had_alpha=photo.alpha is not None, source=source)


def encode_png(texture: np.ndarray) -> bytes:
    """(T, T, 3) uint8 RGB -> PNG bytes."""
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(texture[..., ::-1]))
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _mesh(vertices: np.ndarray, normals: np.ndarray | None, triangles: np.ndarray | None,
          uvs: np.ndarray | None, uv_triangles: np.ndarray | None) -> pb.Mesh:
    m = pb.Mesh(num_vertices=len(vertices))
    _floats(m.vertices, vertices)
    if normals is not None:
        _floats(m.normals, normals)
    if triangles is not None:
        _ints(m.triangles, triangles)
        _floats(m.uvs, uvs)
        _ints(m.uv_triangles, uv_triangles)
    return m


def detection(det: Face) -> pb.Detection:
    """A detected :class:`~facecraft.sdk.photo.detection.Face` as a :class:`Detection`
    message."""
    x0, y0, x1, y1 = (float(v) for v in det.box)
    msg = pb.Detection(x0=x0, y0=y0, x1=x1, y1=y1, score=float(det.score))
    _floats(msg.landmarks5, det.landmarks5)
    return msg


def photo_landmarks(found: FaceLandmarks) -> pb.PhotoLandmarks:
    """The front-end's mesh, iris and region outlines as a :class:`PhotoLandmarks` message."""
    m = found.mesh
    msg = pb.PhotoLandmarks(presence=float(m.presence), detector=found.detector)
    _floats(msg.mesh, m.points)
    iris = None if m.iris is None else m.iris[..., :2]
    if iris is not None:
        _floats(msg.iris, iris)
    for name, polys in region_polygons(m.points, iris).items():
        for poly in polys:
            _floats(msg.regions.add(name=name).points, poly)
    return msg


def face_message(craft: FaceCraft, face: FaceResult, opts: CallOptions) -> pb.Face:
    """One reconstructed face as a :class:`Face` message (bakes the texture when asked)."""
    msg = pb.Face(
        face_index=face.face_index,
        detection=detection(face.detection),
        mesh=_mesh(face.vertices, face.normals,
                   face.triangles if opts.topology else None, face.uvs, face.uv_triangles),
        albedo_source=(pb.ALBEDO_SOURCE_REFINER if face.fine_source == "refiner"
                       else pb.ALBEDO_SOURCE_PHOTO),
    )
    _floats(msg.neutral_vertices, face.neutral_vertices)
    c = face.coefficients
    for name in ("identity", "expression", "albedo", "angles", "lighting", "translation"):
        _floats(getattr(msg.coefficients, name), getattr(c, name))
    pitch, yaw, roll = (float(a) for a in c.angles)
    msg.pose.pitch, msg.pose.yaw, msg.pose.roll = pitch, yaw, roll
    _floats(msg.pose.rotation, face.rotation)
    _floats(msg.pose.translation, face.translation)
    _floats(msg.landmarks, face.landmarks)
    if opts.texture_size:
        tex = face.texture
        if tex is None or tex.shape[0] != opts.texture_size:
            size = opts.texture_size  # the face model's baker for this size, built once
            bake = BakeSettings(size=size, dilate=min(craft.settings.texture_dilate, size))
            tex = craft.bakers.baker(bake).bake_uint8(face.fine_albedo)
        msg.texture.png = encode_png(tex)
        msg.texture.size = int(tex.shape[0])
    if opts.vertex_colors:
        _floats(msg.vertex_colors, face.fine_albedo)
    if opts.camera_vertices:
        _floats(msg.vertices_camera, face.vertices_camera)
    if face.photo_landmarks is not None:
        msg.photo_landmarks.CopyFrom(photo_landmarks(face.photo_landmarks))
    return msg


def facecraft_version() -> str:
    """The installed facecraft distribution's version (``"unknown"`` when not installed)."""
    try:
        return version("facecraft")
    except PackageNotFoundError:
        return "unknown"


def model_info(craft: FaceCraft, *, limits: pb.Limits, include_topology: bool) -> pb.ModelInfo:
    """:class:`ModelInfo` for a pipeline (``limits`` comes from the server's settings)."""
    pkg = craft.package
    fm = craft.face_model
    ref = pkg.face_model_ref
    info = pb.ModelInfo(
        server_version=facecraft_version(),
        package=pb.PackageInfo(name=pkg.name, version=pkg.version,
                               description=str(pkg.manifest.get("package", {})
                                               .get("description", ""))),
        face_model=pb.FaceModelInfo(
            name=ref.name, num_vertices=fm.num_vertices, num_triangles=len(fm.triangles),
            num_uvs=len(fm.uvs), content_sha256=ref.content_sha256,
            topology_sha256=ref.topology_sha256, identity_names=list(fm.identity_names),
            expression_names=list(fm.expression_names), albedo_names=list(fm.albedo_names),
            expression_kind=fm.expression_kind),
        camera=pb.CameraInfo(camera_distance=PerspectiveCamera.paper(craft.crop_size)
                             .camera_distance,
                             focal_px=PerspectiveCamera.paper(craft.crop_size).focal_px[0],
                             crop_size=craft.crop_size),
        providers=list(craft.regressor.providers),
        limits=limits,
        capabilities=["reconstruct", "reconstruct_batch", "texture_png", "vertex_colors", "rig"]
        + (["refiner"] if craft.refiner is not None else []),
    )
    # The package's layout may use fewer modes than the face model has: names follow the layout.
    lay = craft.layout
    info.face_model.identity_names[:] = list(fm.identity_names[:lay.num_identity])
    info.face_model.expression_names[:] = list(fm.expression_names[:lay.num_expression])
    info.face_model.albedo_names[:] = list(fm.albedo_names[:lay.num_albedo])
    for name, sl in lay.slices().items():
        info.coefficient_layout.add(name=name, offset=sl.start, size=sl.stop - sl.start,
                                    unit=_UNITS.get(name, ""))
    if include_topology:
        info.face_model.topology.CopyFrom(_mesh(fm.mean_shape, None, fm.triangles, fm.uvs,
                                                fm.uv_triangles))
    return info


# --------------------------------------------------------------------------- rigs
def rig_info(rig: Rig, *, builtin: bool, sliders: bool) -> pb.RigInfo:
    """A rig's :class:`RigInfo` (its sliders when ``sliders``)."""
    info = pb.RigInfo(name=rig.name, builtin=builtin, num_vertices=rig.num_vertices,
                      num_triangles=len(rig.triangles),
                      num_identity_sliders=len(rig.identity_sliders),
                      num_expression_sliders=len(rig.expression_sliders),
                      has_uvs=bool(len(rig.uvs)), content_sha256=rig.content_hash)
    if sliders:
        for sl in rig.spec.sliders:
            info.sliders.add(name=sl.name, kind=sl.kind, min=sl.min, max=sl.max,
                             default_value=sl.default, group=sl.group, label=sl.label,
                             arkit=sl.arkit or "", unit=sl.unit)
    return info


def rig_texture_size(msg: pb.FitRigRequest, default_texture_size: int) -> int:
    """The texture side a FitRig request asks for (0: none).

    Raises:
        InvalidInputError: a size out of range, or a size with ``omit_texture``.
    """
    if msg.omit_texture:
        if msg.texture_size:
            raise InvalidInputError(f"texture_size = {msg.texture_size} with omit_texture; "
                                    "drop one of them")
        return 0
    size = msg.texture_size or default_texture_size
    if not MIN_TEXTURE_SIZE <= size <= MAX_TEXTURE_SIZE:
        raise InvalidInputError(f"texture_size = {size} texels is out of range; use 0 (the "
                                f"server's default, {default_texture_size}) or "
                                f"{MIN_TEXTURE_SIZE}..{MAX_TEXTURE_SIZE}")
    return size


def face_shape(msg: pb.FaceShape, num_vertices: int
               ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``(neutral_vertices (V, 3), vertex_colors (V, 3) or None, expression (Ke,) or None)``
    of a :class:`FaceShape`, checked for size (values are checked by the fit).

    Raises:
        InvalidInputError: an array of the wrong length.
    """
    want = 3 * num_vertices
    if len(msg.neutral_vertices) != want:
        raise InvalidInputError(f"reconstruction.neutral_vertices holds "
                                f"{len(msg.neutral_vertices)} floats; this server's face model "
                                f"needs {want} ({num_vertices} vertices x 3): send "
                                "Face.neutral_vertices of a Reconstruct on this server")
    if len(msg.vertex_colors) not in (0, want):
        raise InvalidInputError(f"reconstruction.vertex_colors holds {len(msg.vertex_colors)} "
                                f"floats; send none or {want} (Face.vertex_colors; ask "
                                "Reconstruct for vertex_colors)")
    neutral = np.array(msg.neutral_vertices, np.float32).reshape(-1, 3)
    colors = (np.array(msg.vertex_colors, np.float32).reshape(-1, 3)
              if len(msg.vertex_colors) else None)
    expr = np.array(msg.expression, np.float32) if len(msg.expression) else None
    return neutral, colors, expr


def material_parameters(m: MaterialParams) -> pb.MaterialParameters:
    """:class:`MaterialParameters` of estimated materials (None fields stay unset)."""
    out = pb.MaterialParameters(source=m.source, samples=dict(m.samples))
    for key in ("skin", "iris", "eyebrow", "lip"):
        if getattr(m, f"{key}_hex") is not None:
            setattr(out, f"{key}_hex", getattr(m, f"{key}_hex"))
            _floats(getattr(out, f"{key}_srgb"), getattr(m, f"{key}_srgb"))
    if m.skin_lab is not None:
        _floats(out.skin_lab, m.skin_lab)
    for key in ("skin_ita_deg", "iris_lightness", "eyebrow_density"):
        if getattr(m, key) is not None:
            setattr(out, key, float(getattr(m, key)))
    out.skin_type = m.skin_type or 0
    out.skin_category = m.skin_category or ""
    out.iris_category = m.iris_category or ""
    return out


def fit_rig_response(rigged: RiggedFace, *, request_id: str, glb: bool,
                     target_normals: bool = True) -> pb.FitRigResponse:
    """A :class:`FitRigResponse` of a fitted face (the GLB when ``glb``)."""
    rig = rigged.rig
    resp = pb.FitRigResponse(request_id=request_id, rig=rig.name,
                             expression_method=rigged.expressions.method,
                             residual_mean_mm=rigged.fit.residual_mean_mm,
                             residual_p95_mm=rigged.fit.residual_p95_mm)
    for field, sliders, values in ((resp.identity, rig.identity_sliders, rigged.fit.values),
                                   (resp.expression, rig.expression_sliders,
                                    rigged.expressions.weights)):
        for sl in sliders:
            v = float(values.get(sl.name, sl.default))
            field.add(name=sl.name, value=v, min=sl.min, max=sl.max,
                      normalized=(v - sl.min) / sl.range if sl.range > 0 else 0.0)
    if rigged.texture is not None:
        resp.texture.png = encode_png(rigged.texture)
        resp.texture.size = int(rigged.texture.shape[0])
    if rigged.materials is not None:
        resp.materials.CopyFrom(material_parameters(rigged.materials))
    if glb:
        resp.glb = rigged.glb_bytes(target_normals=target_normals)
    return resp
