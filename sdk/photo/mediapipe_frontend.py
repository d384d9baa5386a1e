"""The MediaPipe photo front-end: every face of a photo with 468 3D landmarks, iris and presence.

``detect`` (the :class:`~facecraft.sdk.photo.protocols.Detector` seam) and ``landmarks`` (the
:class:`~facecraft.sdk.photo.protocols.Landmarker` seam, 468 points) make it a drop-in for MTCNN
and dlib; :meth:`MediaPipeFrontEnd.analyze` returns everything it knows about each face.

How a photo is searched (:class:`FrontEndSettings`):

1. BlazeFace short range on the whole photo (``small_faces``: short and full range, and full
   range on overlapping tiles, merged by weighted NMS; for group photos and faces down to
   ~40 px).
2. Only if that finds nothing: the full-range model, the photo with a wide border (faces that
   fill the frame), full range on tiles, and the photo turned by 90, 270 and 180 degrees
   (sideways or upside-down photos without EXIF). The first fallback that finds a face wins.
3. Each candidate gets the mesh (ROI from the box and eye keypoints, then re-placed from the
   mesh itself); candidates whose face-presence probability is low are dropped, as are meshes
   that duplicate a better one.
4. Iris and eye contours for the faces kept.

The detection record's five points come from the mesh (iris centres where computed, the nose
tip, the mouth corners), which places the alignment crop far more precisely than BlazeFace's own
keypoints (those have no mouth corners).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..errors import InvalidInputError
from .blazeface import FULL_RANGE, SHORT_RANGE, BlazeFace, weighted_nms
from .detection import Face
from .face_mesh import (
    FaceMeshModel,
    FaceMeshResult,
    IrisModel,
    MeshSettings,
    RotatedRect,
    roi_from_box,
)
from .mediapipe_models import MediaPipeModels

__all__ = ["FrontEndSettings", "FaceLandmarks", "MediaPipeFrontEnd", "five_from_mesh",
           "NOSE_TIP", "MOUTH_CORNERS"]

#: Mesh index of the nose tip (the canonical mesh's most protruding point).
NOSE_TIP = 4
#: Mesh indices of the subject's right and left mouth corner.
MOUTH_CORNERS = (61, 291)
_EYE_CORNERS = ((33, 133), (362, 263))


@dataclass(frozen=True)
class FrontEndSettings:
    """How :class:`MediaPipeFrontEnd` searches a photo.

    Attributes:
        detectors: BlazeFace models run on every photo, of ``"short"`` and ``"full"``.
        fallbacks: what to try, in order, when they find nothing: ``"full"`` (the full-range
            model), ``"border"`` (a 50% border), ``"tiles"`` (full range on overlapping tiles),
            ``"rotate"`` (90, 270, 180 degrees).
        small_faces: run both models and the tiles on every photo (group photos; costs a few
            more detector runs).
        tile: tile side in photo pixels for the full-range model (a 40 px face is then 16 input
            pixels).
        min_presence: drop faces whose mesh presence probability is below this.
        refine_roi: run the mesh a second time on its own ROI (2x mesh time; measured on the
            London/Canada validation people it leaves the mean template error unchanged, 2.52%
            vs 2.50% of the outer-eye distance, so it is off by default).
        iris: compute iris and eye contours.
        max_faces: at most this many faces per photo (the largest).
        threads: ONNX Runtime threads per model.
    """

    detectors: tuple[str, ...] = ("short",)
    fallbacks: tuple[str, ...] = ("full", "border", "tiles", "rotate")
    small_faces: bool = False
    tile: int = 480
    min_presence: float = 0.5
    refine_roi: bool = False
    iris: bool = True
    max_faces: int = 32
    threads: int = 2

    def __post_init__(self) -> None:
        if not self.detectors or not set(self.detectors) <= {"short", "full"}:
            raise InvalidInputError(f"detectors must be a non-empty subset of ('short', "
                                    f"'full'), got {self.detectors!r}")
        if not set(self.fallbacks) <= {"full", "border", "tiles", "rotate"}:
            raise InvalidInputError(f"fallbacks must be of ('full', 'border', 'tiles', "
                                    f"'rotate'), got {self.fallbacks!r}")
        if not 96 <= int(self.tile) <= 4096:
            raise InvalidInputError(f"tile must be in [96, 4096] px, got {self.tile}")
        if not 0.0 <= self.min_presence <= 1.0:
            raise InvalidInputError(f"min_presence must be in [0, 1], got {self.min_presence}")
        if int(self.max_faces) < 1 or int(self.threads) < 1:
            raise InvalidInputError("max_faces and threads must be >= 1")


@dataclass(frozen=True, eq=False)
class FaceLandmarks:
    """One face as the front-end sees it.

    Attributes:
        face: the detection record (box from the detector, five points from the mesh).
        mesh: 468 points, presence, ROI, iris and eye contours.
        detector: which BlazeFace model found it (``"short"``/``"full"``), and the fallback used
            if any (``"full+tiles"``, ``"short+rotate90"``, ...).
    """

    face: Face
    mesh: FaceMeshResult
    detector: str

    @property
    def points(self) -> np.ndarray:
        """(468, 3) float32 photo pixels."""
        return self.mesh.points


def five_from_mesh(points: np.ndarray, iris: np.ndarray | None = None) -> np.ndarray:
    """(468, >=2) mesh points -> (5, 2) float64 alignment points: eye centres (iris centres
    when given, else the eye-corner midpoints), nose tip, mouth corners."""
    xy = np.asarray(points, np.float64)[:, :2]
    if iris is not None:
        eyes = np.asarray(iris, np.float64)[:, 0, :2]
    else:
        eyes = np.stack([xy[list(c)].mean(0) for c in _EYE_CORNERS])
    return np.concatenate([eyes, xy[[NOSE_TIP, *MOUTH_CORNERS]]])


@dataclass
class _Candidates:
    boxes: list[np.ndarray] = field(default_factory=list)
    keypoints: list[np.ndarray] = field(default_factory=list)
    scores: list[np.ndarray] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def add(self, boxes: np.ndarray, kps: np.ndarray, scores: np.ndarray, source: str) -> None:
        self.boxes.append(boxes)
        self.keypoints.append(kps)
        self.scores.append(scores)
        self.sources += [source] * len(scores)

    def __len__(self) -> int:
        return len(self.sources)


def _rotate(rgb: np.ndarray, quarter_turns: int) -> tuple[np.ndarray, np.ndarray]:
    """The photo turned by ``quarter_turns`` x 90 degrees clockwise, and the (2, 3) affine that
    maps its pixel coordinates back to the original photo's."""
    h, w = rgb.shape[:2]
    k = quarter_turns % 4
    turned = np.ascontiguousarray(np.rot90(rgb, -k))
    back = {0: [[1, 0, 0], [0, 1, 0]],
            1: [[0, 1, 0], [-1, 0, h]],      # clockwise: (x', y') = (h - y, x)
            2: [[-1, 0, w], [0, -1, h]],
            3: [[0, -1, w], [1, 0, 0]]}[k]
    return turned, np.asarray(back, np.float64)


class MediaPipeFrontEnd:
    """BlazeFace + face mesh + iris, in ONNX Runtime (all Apache-2.0, vendored).

    One instance owns its sessions (no process-wide state) and serves one thread at a time.

    Args:
        settings: :class:`FrontEndSettings`.
        models: the sessions (default: the vendored files, ``settings.threads`` threads, CPU).
    """

    #: The :class:`~facecraft.sdk.photo.protocols.Landmarker` point count.
    num_points = 468

    def __init__(self, settings: FrontEndSettings = FrontEndSettings(),
                 models: MediaPipeModels | None = None) -> None:
        self.settings = settings
        self.models = models or MediaPipeModels(threads=settings.threads)
        specs = {"short": SHORT_RANGE, "full": FULL_RANGE}
        self.blazeface = {n: BlazeFace(self.models[n], specs[n]) for n in ("short", "full")}
        self.mesh_model = FaceMeshModel(self.models["mesh"],
                                   MeshSettings(settings.refine_roi, settings.min_presence))
        self.iris_model = IrisModel(self.models["iris"]) if settings.iris else None

    # -- detection ---------------------------------------------------------------------------

    def _search(self, rgb: np.ndarray, names: tuple[str, ...], tiles: bool) -> _Candidates:
        found = _Candidates()
        for name in names:
            r = self.blazeface[name].detect_window(rgb)
            found.add(r.boxes, r.keypoints, r.scores, name)
        if tiles:
            found_tiles = self._tiles(rgb)
            for b, k, s in zip(found_tiles.boxes, found_tiles.keypoints, found_tiles.scores,
                               strict=True):
                found.add(b, k, s, "full+tiles")
        return found

    def _tiles(self, rgb: np.ndarray) -> _Candidates:
        found = _Candidates()
        h, w = rgb.shape[:2]
        t = int(self.settings.tile)
        if max(h, w) <= t:
            return found
        step = t * 3 // 4
        for y0 in sorted({*range(0, max(h - t, 0) + 1, step), max(h - t, 0)}):
            for x0 in sorted({*range(0, max(w - t, 0) + 1, step), max(w - t, 0)}):
                r = self.blazeface["full"].detect_window(rgb, (x0, y0, min(x0 + t, w),
                                                            min(y0 + t, h)))
                found.add(r.boxes, r.keypoints, r.scores, "full+tiles")
        return found

    def _fallbacks(self, rgb: np.ndarray) -> Iterator[tuple[_Candidates, np.ndarray | None,
                                                             np.ndarray]]:
        """Each fallback that finds a candidate, in order: its candidates (in the coordinates of
        the image it ran on), the (2, 3) map back to the photo (None = identity), the image."""
        h, w = rgb.shape[:2]
        for fb in self.settings.fallbacks:
            if fb == "full" and "full" not in self.settings.detectors:
                yield self._search(rgb, ("full",), False), None, rgb
            elif fb == "border":
                pad = max(h, w) // 2
                padded = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
                found = self._search(padded, self.settings.detectors, False)
                found.sources = [f"{s}+border" for s in found.sources]
                yield found, np.array([[1.0, 0, -pad], [0, 1.0, -pad]]), padded
            elif fb == "tiles":
                yield self._tiles(rgb), None, rgb
            elif fb == "rotate":
                for k in (1, 3, 2):
                    turned, back = _rotate(rgb, k)
                    found = self._search(turned, self.settings.detectors, False)
                    found.sources = [f"{s}+rotate{90 * k}" for s in found.sources]
                    yield found, back, turned

    # -- the whole front-end -----------------------------------------------------------------

    def analyze(self, rgb: np.ndarray) -> list[FaceLandmarks]:
        """Every face of a photo, largest first.

        Args:
            rgb: (H, W, 3) uint8 RGB photo.

        Returns:
            The faces (empty when none is found).
        """
        rgb = _check(rgb)
        st = self.settings
        names = tuple(dict.fromkeys((*st.detectors, "full"))) if st.small_faces else st.detectors
        faces = self._meshes(rgb, self._search(rgb, names, st.small_faces), None, rgb)
        if not faces:
            for found, back, image in self._fallbacks(rgb):
                faces = self._meshes(rgb, found, back, image) if len(found) else []
                if faces:
                    break
        faces.sort(key=lambda f: -f.face.area)
        return faces

    def _meshes(self, rgb: np.ndarray, found: _Candidates, back: np.ndarray | None,
                image: np.ndarray) -> list[FaceLandmarks]:
        """Mesh and iris for each merged candidate that the mesh confirms as a face."""
        if not len(found):
            return []
        st = self.settings
        boxes = np.concatenate(found.boxes)
        kps = np.concatenate(found.keypoints)
        scores = np.concatenate(found.scores)
        mb, mk, ms, mi = weighted_nms(boxes, kps, scores)
        faces: list[FaceLandmarks] = []
        for b, k, s, i in zip(mb, mk, ms, mi, strict=True):
            if len(faces) >= st.max_faces:
                break
            mesh = self.mesh_model.landmarks(image, roi_from_box(b, k[0], k[1]))
            if mesh.presence < st.min_presence:
                continue
            if back is not None:
                mesh, b = _map_back(mesh, b, back)
            if any(_mesh_iou(mesh.points, f.points) > 0.5 for f in faces):
                continue
            iris = contours = None
            if self.iris_model is not None:
                iris, contours = self.iris_model.eyes(rgb, mesh.points)
            mesh = FaceMeshResult(mesh.points, mesh.presence, mesh.roi, iris, contours)
            record = Face(box=np.asarray(b, np.float64), score=float(s),
                          landmarks5=five_from_mesh(mesh.points, iris))
            faces.append(FaceLandmarks(record, mesh, found.sources[int(i)]))
        return faces

    # -- the typed seams ---------------------------------------------------------------------

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """:class:`~facecraft.sdk.photo.protocols.Detector`: the faces' records, largest first."""
        return [f.face for f in self.analyze(_as_uint8(rgb))]

    def landmarks(self, rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
        """:class:`~facecraft.sdk.photo.protocols.Landmarker`: (468, 2) float64 photo pixels of
        the face in *box* (any detector's box; upright ROI, then re-placed from the mesh)."""
        rgb = _check(_as_uint8(rgb))
        box = np.asarray(box, np.float64)
        if box.shape != (4,) or not np.isfinite(box).all() or box[2] <= box[0] or \
                box[3] <= box[1]:
            raise InvalidInputError(f"box must be a finite (x0, y0, x1, y1) with x1 > x0 and "
                                    f"y1 > y0, got {box}")
        y = (box[1] + box[3]) / 2
        mesh = self.mesh_model.landmarks(rgb, roi_from_box(box, np.array([box[0], y]),
                                                      np.array([box[2], y])))
        return mesh.points[:, :2].astype(np.float64)


def _check(rgb: np.ndarray) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or \
            rgb.dtype != np.uint8:
        raise InvalidInputError("expected an (H, W, 3) uint8 RGB photo, got "
                                f"{getattr(rgb, 'shape', type(rgb).__name__)}")
    if min(rgb.shape[:2]) < 8:
        raise InvalidInputError(f"photo too small: {rgb.shape[1]}x{rgb.shape[0]} px")
    return rgb


def _as_uint8(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.dtype == np.uint8:
        return rgb
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _map_back(mesh: FaceMeshResult, box: np.ndarray, back: np.ndarray
              ) -> tuple[FaceMeshResult, np.ndarray]:
    """A mesh found on a padded or turned copy of the photo, in the photo's pixels."""
    lin, t = back[:, :2], back[:, 2]
    pts = mesh.points.astype(np.float64)
    xy = pts[:, :2] @ lin.T + t
    corners = np.array([[box[0], box[1]], [box[2], box[3]]]) @ lin.T + t
    new_box = np.concatenate([corners.min(0), corners.max(0)])
    turn = float(np.arctan2(lin[1, 0], lin[0, 0]))
    roi = RotatedRect(mesh.roi.center @ lin.T + t, mesh.roi.size, mesh.roi.angle + turn)
    out = np.concatenate([xy, pts[:, 2:3]], axis=1).astype(np.float32)
    return FaceMeshResult(out, mesh.presence, roi), new_box


def _mesh_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two meshes' bounding boxes."""
    la, ha = a[:, :2].min(0), a[:, :2].max(0)
    lb, hb = b[:, :2].min(0), b[:, :2].max(0)
    inter = np.prod(np.clip(np.minimum(ha, hb) - np.maximum(la, lb), 0, None))
    union = np.prod(ha - la) + np.prod(hb - lb) - inter
    return float(inter / max(union, 1e-9))
