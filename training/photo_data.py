"""Real-photo training data: detect, align and annotate photos once, then read them fast.

:func:`prepare_photos` walks folders of photos (JPEG, PNG, WebP, BMP, TIFF; recursive), runs the
SDK's ingestion (:func:`facecraft.sdk.photo.ingest.ingest_photo`: decode, MTCNN detection, dlib's 68
points when installed, 5-point alignment to the regressor's crop) and computes a skin mask per
face. Everything is cached in one folder::

    OUT/faces.safetensors   images (N, S, S, 3) uint8 RGB, landmarks68 (N, 68, 2) float32 crop
                            pixels, has_landmarks68 (N,) uint8, landmarks5 (N, 5, 2) float32 crop
                            pixels, skin_masks (N, S, S) uint8, boxes (N, 4) float32 photo
                            pixels, scores (N,) float32, matrices (N, 2, 3) float64 (photo ->
                            crop pixels), source_index (N,) int64
    OUT/manifest.json       sources, one item per face (source, box, score, landmark and mask
                            kind), skipped photos with a reason each, the settings, a summary

:class:`PhotoFaces` is the torch ``Dataset`` over such a folder, optionally resized (e.g. to
the 128 px of the starter training config). The photometric, landmark and identity losses of
:mod:`facecraft.training.train_regressor` train on it.

Coordinates: x right, y down, pixel centres at +0.5 (:mod:`facecraft.sdk.photo.align`). The crop is
aligned to :data:`facecraft.sdk.photo.align.CROP_TEMPLATE_224`, which is where the renderer's camera
(:meth:`facecraft.sdk.render.cameras.PerspectiveCamera.paper`) sees the mean face, so a render of
the
predicted coefficients lands on the crop.

Licence: dlib's 68-point model was trained on iBUG 300-W (non-commercial); prepared data is for
training and evaluation only, like the model itself (:mod:`facecraft.sdk.photo.landmarker`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from facecraft.sdk.errors import FaceCraftError, InvalidInputError
from facecraft.sdk.models.tensor_file import open_tensor_file, write_tensor_file
from facecraft.sdk.photo.detect import DetectorSettings, FaceDetector
from facecraft.sdk.photo.face_mask import refine_skin_mask, skin_mask_from_landmarks
from facecraft.sdk.photo.image_io import ImageDecodeError
from facecraft.sdk.photo.ingest import IngestedFace, IngestSettings, ingest_photo
from facecraft.sdk.photo.landmarker import Dlib68Landmarker
from facecraft.sdk.photo.mediapipe_frontend import FrontEndSettings, MediaPipeFrontEnd

__all__ = [
    "PrepareSettings",
    "PrepareSummary",
    "prepare_photos",
    "PhotoFaces",
    "PHOTO_EXTENSIONS",
    "SKIP_REASONS",
    "PHOTO_FACES_FORMAT",
]

#: File name endings :func:`prepare_photos` picks up when it walks a folder (case-insensitive).
PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")

#: Why a photo gives no face: the file cannot be read, is not a decodable photo, holds no face,
#: holds only faces under ``min_face_size``, or another FaceCraft error (the detail says which).
SKIP_REASONS = ("unreadable", "undecodable", "no_face", "face_too_small", "failed")

#: The ``format`` header of the tensor file and manifest.
PHOTO_FACES_FORMAT = "facecraft-photo-faces"
_SCHEMA_VERSION = 1
_TENSOR_FILE = "faces.safetensors"
_MANIFEST = "manifest.json"
_RESIZE_CHUNK = 64


# --------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class PrepareSettings:
    """How :func:`prepare_photos` turns photos into training faces.

    Attributes:
        crop_size: side of the aligned crop, pixels (the regressor's 224; :class:`PhotoFaces`
            can resize it later).
        min_face_size: faces whose detector box is smaller (mean of its width and height, photo
            pixels) are dropped; a photo left without faces is skipped as ``face_too_small``.
        max_faces: faces kept per photo, largest first (1: the largest face only).
        landmarks68: run dlib's 68-point landmarker when it is installed (``pip install -e
            '.[landmarks68]'``); without it, or when False, faces get the detector's 5 points
            only (recorded per face as ``landmark_kind``) and an ellipse skin mask.
        skin_forehead: forehead band height of the landmark skin mask, as a fraction of the
            brow-to-nose-tip distance
            (:func:`~facecraft.sdk.photo.face_mask.skin_mask_from_landmarks`).
        skin_feature_margin: margin cut around eyes, brows and mouth, fraction of face width.
        refine_skin: drop mask pixels far from the median skin colour (hair, glasses, hands;
            :func:`~facecraft.sdk.photo.face_mask.refine_skin_mask`).
        refine_sigma: the colour test's threshold in robust standard deviations.
        max_pixels: decompression-bomb limit passed to the decoder.
        front_end: ``"mediapipe"`` (BlazeFace + the 468-point mesh: alignment from the mesh,
            the skin mask from its regions, so no 68-point landmarker is needed for masks) or
            ``"mtcnn"`` (5 points; the mask from dlib's 68 points, else an ellipse).
        detector: :class:`~facecraft.sdk.photo.detect.DetectorSettings` of the MTCNN detector.
    """

    crop_size: int = 224
    min_face_size: float = 64.0
    max_faces: int = 1
    landmarks68: bool = True
    skin_forehead: float = 0.6
    skin_feature_margin: float = 0.04
    refine_skin: bool = True
    refine_sigma: float = 3.0
    front_end: str = "mediapipe"
    max_pixels: int = 40_000_000
    detector: DetectorSettings = field(default_factory=DetectorSettings)

    def __post_init__(self) -> None:
        if isinstance(self.crop_size, bool) or not isinstance(self.crop_size, int) \
                or not 32 <= self.crop_size <= 2048:
            raise InvalidInputError(f"expected crop_size an int in [32, 2048] px, got "
                                    f"{self.crop_size!r}")
        if isinstance(self.max_faces, bool) or not isinstance(self.max_faces, int) \
                or self.max_faces < 1:
            raise InvalidInputError(f"expected max_faces an int >= 1, got {self.max_faces!r}")
        if self.front_end not in ("mediapipe", "mtcnn"):
            raise InvalidInputError(f"expected front_end 'mediapipe' or 'mtcnn', got "
                                    f"{self.front_end!r}")
        for name in ("min_face_size", "skin_forehead", "skin_feature_margin", "refine_sigma"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v) \
                    or v < 0:
                raise InvalidInputError(f"expected {name} a finite number >= 0, got {v!r}")
        if self.refine_sigma <= 0:
            raise InvalidInputError(f"expected refine_sigma > 0, got {self.refine_sigma}")
        if not isinstance(self.detector, DetectorSettings):
            raise InvalidInputError(f"expected detector a DetectorSettings, got "
                                    f"{type(self.detector).__name__}")

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (recorded in the manifest)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class PrepareSummary:
    """What :func:`prepare_photos` did.

    Attributes:
        out_dir: the prepared folder.
        photos: photo files examined.
        photos_with_faces: photos that gave at least one face.
        faces: face crops written (rows of the tensor file).
        skipped: reason (one of :data:`SKIP_REASONS`) -> number of photos skipped for it;
            reasons with no photo are absent.
        landmarker: ``"dlib68"`` or ``"none"`` (5 points only).
        crop_size: crop side, pixels.
        elapsed_s: wall-clock seconds.
    """

    out_dir: Path
    photos: int
    photos_with_faces: int
    faces: int
    skipped: Mapping[str, int]
    landmarker: str
    crop_size: int
    elapsed_s: float

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict."""
        d = dataclasses.asdict(self)
        d["out_dir"] = str(self.out_dir)
        d["skipped"] = dict(self.skipped)
        return d


# ------------------------------------------------------------------------------------ helpers
def _collect(src: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Photo files of ``src`` (files as given, folders walked recursively), duplicates removed.

    Raises:
        InvalidInputError: a path does not exist, or nothing was given.
    """
    items = [src] if isinstance(src, str | os.PathLike) else list(src)
    if not items:
        raise InvalidInputError("expected at least one photo file or folder, got none")
    out: list[Path] = []
    seen: set[Path] = set()
    for item in items:
        p = Path(item)
        if not p.exists():
            raise InvalidInputError(f"{p} does not exist; pass photo files or folders of photos")
        files = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower()
                       in PHOTO_EXTENSIONS) if p.is_dir() else [p]
        for f in files:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                out.append(f)
    return out


def _face_side(face: IngestedFace) -> float:
    """Mean of the detector box's width and height, photo pixels."""
    x0, y0, x1, y1 = face.box
    return 0.5 * float((x1 - x0) + (y1 - y0))


def _ellipse(mask: np.ndarray, centre: np.ndarray, axes: tuple[float, float], angle: float,
             value: int) -> None:
    c = np.round((centre - 0.5) * 16).astype(int)  # 4 fractional bits (OpenCV's shift=4)
    a = np.round(np.asarray(axes) * 16).astype(int)
    cv2.ellipse(mask, (int(c[0]), int(c[1])), (int(a[0]), int(a[1])), angle, 0, 360, value, -1,
                cv2.LINE_8, 4)


def _ellipse_mask(lm5: np.ndarray, size: int) -> np.ndarray:
    """(S, S) bool face oval from 5 crop points, for faces without 68 landmarks.

    The oval is centred between the eyes and the mouth, 0.9 eye distances wide (semi-axis) and
    1.1 eye-to-mouth distances high, along the eye line; discs of 0.3 eye distances around the
    eyes and an oval over the mouth (its corners plus 20 %) are cut out.
    """
    eyes, mouth = lm5[0:2].mean(0), lm5[3:5].mean(0)
    eye_vec = lm5[1] - lm5[0]
    eye_dist = float(np.linalg.norm(eye_vec))
    angle = float(np.degrees(np.arctan2(eye_vec[1], eye_vec[0])))
    mask = np.zeros((size, size), np.uint8)
    _ellipse(mask, 0.5 * (eyes + mouth), (0.9 * eye_dist, 1.1 * float(np.linalg.norm(
        mouth - eyes))), angle, 1)
    for eye in lm5[0:2]:
        _ellipse(mask, eye, (0.3 * eye_dist, 0.3 * eye_dist), angle, 0)
    half_mouth = 0.6 * float(np.linalg.norm(lm5[4] - lm5[3]))
    _ellipse(mask, mouth, (half_mouth, 0.5 * half_mouth), angle, 0)
    return mask > 0


def _skin_mask(face: IngestedFace, crop: np.ndarray, s: PrepareSettings) -> tuple[np.ndarray, str]:
    """The face's (S, S) bool skin mask in the crop and its kind."""
    if face.mesh is not None and face.skin_mask is not None:
        mask, kind = face.skin_mask.astype(bool), "mesh468"
    elif face.crop_landmarks68 is not None:
        mask = skin_mask_from_landmarks(face.crop_landmarks68, (s.crop_size, s.crop_size),
                                        forehead=s.skin_forehead,
                                        feature_margin=s.skin_feature_margin)
        kind = "landmarks68"
    else:
        mask, kind = _ellipse_mask(face.aligned.landmarks5, s.crop_size), "ellipse5"
    if s.refine_skin:
        mask = refine_skin_mask(crop, mask, max_sigma=s.refine_sigma)
    return mask, kind


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise FaceCraftError(f"cannot write {path}: {e.strerror or e}") from None


# ---------------------------------------------------------------------------------- prepare
def _add_face(rows: dict[str, list[np.ndarray]], items: list[dict[str, Any]], f: Any,
              crop: np.ndarray, mask: np.ndarray, mask_kind: str, src_id: int,
              rank: int) -> None:
    """Append one aligned face (``crop`` (S, S, 3) float in [0, 1], ``mask`` (S, S)) to the
    tensor rows and its manifest item."""
    has68 = f.crop_landmarks68 is not None
    rows["images"].append(np.rint(crop * 255.0).astype(np.uint8))
    rows["landmarks68"].append(np.asarray(f.crop_landmarks68, np.float32) if has68
                               else np.zeros((68, 2), np.float32))
    rows["has_landmarks68"].append(np.uint8(has68))
    rows["landmarks5"].append(np.asarray(f.aligned.landmarks5, np.float32))
    rows["skin_masks"].append(mask.astype(np.uint8))
    rows["boxes"].append(np.asarray(f.box, np.float32))
    rows["scores"].append(np.float32(f.score))
    rows["matrices"].append(np.asarray(f.aligned.matrix, np.float64))
    rows["source_index"].append(np.int64(src_id))
    items.append({"index": len(items), "source": src_id, "face": rank,
                  "box": [round(float(v), 2) for v in f.box],
                  "score": round(float(f.score), 4),
                  "landmark_kind": ("dlib68" if has68 else
                                    "mesh468" if f.mesh is not None else "mtcnn5"),
                  "mask_kind": mask_kind, "skin_fraction": round(float(mask.mean()), 4)})


def _stack_rows(rows: dict[str, list[np.ndarray]], size: int) -> dict[str, np.ndarray]:
    """The tensor file's arrays: each row list stacked (empty arrays of the right shape when
    no face was kept)."""
    empty = {"images": (0, size, size, 3), "landmarks68": (0, 68, 2), "has_landmarks68": (0,),
             "landmarks5": (0, 5, 2), "skin_masks": (0, size, size), "boxes": (0, 4),
             "scores": (0,), "matrices": (0, 2, 3), "source_index": (0,)}
    dtypes = {"images": np.uint8, "landmarks68": np.float32, "has_landmarks68": np.uint8,
              "landmarks5": np.float32, "skin_masks": np.uint8, "boxes": np.float32,
              "scores": np.float32, "matrices": np.float64, "source_index": np.int64}
    return {k: (np.ascontiguousarray(np.stack(v).astype(dtypes[k])) if v
                else np.zeros(empty[k], dtypes[k])) for k, v in rows.items()}


def prepare_photos(src: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                   out_dir: str | os.PathLike[str], settings: PrepareSettings = PrepareSettings(),
                   *, progress: bool = True) -> PrepareSummary:
    """Detect, align and annotate every face of some photos and cache them in ``out_dir``.

    Args:
        src: a photo file, a folder (walked recursively for :data:`PHOTO_EXTENSIONS`), or a
            list of them.
        out_dir: the folder to write ``faces.safetensors`` and ``manifest.json`` to (created;
            files of an earlier run are replaced).
        settings: see :class:`PrepareSettings`.
        progress: a tqdm bar over the photos on stderr.

    Returns:
        :class:`PrepareSummary` (also stored in the manifest as ``summary``).

    Raises:
        InvalidInputError: a path of ``src`` does not exist, or it holds no photo file.
        DetectorUnavailableError: the MTCNN detector is not installed.
        ModelFileError: the output cannot be written.

    A photo that cannot be used is not an error: it is listed under ``skipped`` in the
    manifest with its reason (:data:`SKIP_REASONS`) and a detail message.
    """
    if not isinstance(settings, PrepareSettings):
        raise InvalidInputError(f"expected settings a PrepareSettings, got "
                                f"{type(settings).__name__}")
    t0 = time.perf_counter()
    files = _collect(src)
    if not files:
        raise InvalidInputError(f"no photos ({', '.join(PHOTO_EXTENSIONS)}) found in {src}")
    out = Path(out_dir)
    detector = (MediaPipeFrontEnd(FrontEndSettings(small_faces=True,
                                                   threads=settings.detector.threads))
                if settings.front_end == "mediapipe" else FaceDetector(settings.detector))
    landmarker = Dlib68Landmarker() if settings.landmarks68 and Dlib68Landmarker.available() \
        else None
    kind68 = "dlib68" if landmarker is not None else "none"
    ingest = IngestSettings(crop_size=settings.crop_size, all_faces=True,
                            max_pixels=settings.max_pixels, require_face=False)
    size = settings.crop_size
    rows: dict[str, list[np.ndarray]] = {k: [] for k in (
        "images", "landmarks68", "has_landmarks68", "landmarks5", "skin_masks", "boxes", "scores",
        "matrices", "source_index")}
    sources: list[str] = []
    items: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []

    from tqdm.auto import tqdm

    for path in tqdm(files, desc="prepare photos", unit="photo", disable=not progress,
                     file=sys.stderr, dynamic_ncols=True):
        name = str(path.resolve())

        def skip(reason: str, detail: str, name: str = name) -> None:
            skipped.append({"source": name, "reason": reason, "detail": detail})

        try:
            data = path.read_bytes()
        except OSError as e:
            skip("unreadable", f"cannot read {path}: {e.strerror or e}")
            continue
        try:
            photo = ingest_photo(data, detector, landmarker=landmarker, settings=ingest,
                                 source=str(path))
        except ImageDecodeError as e:
            skip("undecodable", str(e))
            continue
        except FaceCraftError as e:
            skip("failed", str(e))
            continue
        if not photo.faces:
            skip("no_face", "the detector found no face")
            continue
        keep = [f for f in photo.faces if _face_side(f) >= settings.min_face_size]
        keep = keep[:settings.max_faces]
        if not keep:
            skip("face_too_small", f"the largest face is {_face_side(photo.faces[0]):.0f} px, "
                                   f"below min_face_size {settings.min_face_size:g} px")
            continue
        try:
            crops = [np.clip(f.aligned.image, 0.0, 1.0) for f in keep]
            masks = [_skin_mask(f, c, settings) for f, c in zip(keep, crops, strict=True)]
        except FaceCraftError as e:
            skip("failed", str(e))
            continue
        src_id = len(sources)
        sources.append(name)
        for rank, (f, crop, (mask, mask_kind)) in enumerate(zip(keep, crops, masks,
                                                                strict=True)):
            _add_face(rows, items, f, crop, mask, mask_kind, src_id, rank)

    tensors = _stack_rows(rows, size)
    counts: dict[str, int] = {}
    for s in skipped:
        counts[s["reason"]] = counts.get(s["reason"], 0) + 1
    summary = PrepareSummary(out_dir=out, photos=len(files), photos_with_faces=len(sources),
                             faces=len(items), skipped={r: counts[r] for r in SKIP_REASONS
                                                        if r in counts},
                             landmarker=kind68, crop_size=size,
                             elapsed_s=time.perf_counter() - t0)
    header = {"format": PHOTO_FACES_FORMAT, "schema_version": str(_SCHEMA_VERSION),
              "crop_size": str(size), "count": str(len(items))}
    write_tensor_file(tensors, out / _TENSOR_FILE, header)
    _write_json(out / _MANIFEST, {
        "format": PHOTO_FACES_FORMAT, "schema_version": _SCHEMA_VERSION, "crop_size": size,
        "tensor_file": _TENSOR_FILE, "landmarker": kind68, "settings": settings.to_json(),
        "summary": summary.to_json(), "sources": sources, "items": items, "skipped": skipped})
    return summary


# ---------------------------------------------------------------------------------- dataset
def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, H, W) float -> (N, C, size, size), bilinear with antialiasing when shrinking."""
    if x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=size < x.shape[-1])


class PhotoFaces(torch.utils.data.Dataset):
    """The faces of a folder written by :func:`prepare_photos`, as a torch ``Dataset``.

    Everything is loaded into memory (uint8 images and masks, resized once here), so items and
    batches are cheap and the dataset pickles into DataLoader workers.

    Args:
        folder: the prepared folder (``manifest.json`` and ``faces.safetensors``).
        image_size: side of the returned images, pixels; ``None`` keeps the crop size. Images
            are resized bilinearly (antialiased when shrinking), masks likewise and then
            thresholded at 0.5, landmarks scaled by ``image_size / crop_size`` (exact for the
            pixel-centre convention).

    Raises:
        InvalidInputError: ``folder`` is not a prepared folder, or ``image_size`` is bad.
        ModelFileError: the tensor file is unreadable or of another format / newer schema.

    Item ``i`` is a dict:

    * ``image``: (3, s, s) float32 RGB in [0, 1] (sRGB-encoded, as decoded);
    * ``landmarks``: (68, 2) float32 pixels of the returned image, iBUG order; zeros where
      not valid;
    * ``landmarks_valid``: (68,) bool, all False for a face with only the detector's 5 points;
    * ``landmarks5``: (5, 2) float32 pixels (eye centres, nose tip, mouth corners; always);
    * ``skin_mask``: (1, s, s) bool;
    * ``source``: int64 index into :attr:`sources`; ``index``: int64, ``i``.
    """

    def __init__(self, folder: str | os.PathLike[str], *, image_size: int | None = None) -> None:
        self.folder = Path(folder)
        manifest_path = self.folder / _MANIFEST
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InvalidInputError(f"{self.folder} is not a prepared photo folder (no "
                                    f"{_MANIFEST}); make one with `facecraft train prepare`"
                                    ) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InvalidInputError(f"cannot read {manifest_path}: {e}") from None
        if not isinstance(manifest, dict) or manifest.get("format") != PHOTO_FACES_FORMAT:
            raise InvalidInputError(f"{manifest_path} is not a {PHOTO_FACES_FORMAT} manifest")
        header, handle = open_tensor_file(self.folder / manifest.get("tensor_file", _TENSOR_FILE),
                                          fmt=PHOTO_FACES_FORMAT, schema_version=_SCHEMA_VERSION,
                                          what="prepared photo-face file", framework="pt")
        self.crop_size = int(header["crop_size"])
        size = self.crop_size if image_size is None else image_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 16:
            raise InvalidInputError(f"expected image_size an int >= 16 px, got {image_size!r}")
        self.image_size = size
        t = {k: handle.get_tensor(k) for k in handle.keys()}
        n = int(t["images"].shape[0])
        if n != len(manifest.get("items", ())) or any(int(v.shape[0]) != n for v in t.values()):
            raise InvalidInputError(f"{self.folder}: tensor file and manifest disagree on the "
                                    "number of faces; prepare the folder again")
        self.sources: tuple[str, ...] = tuple(manifest.get("sources", ()))
        self.items: tuple[dict[str, Any], ...] = tuple(manifest["items"])
        self.skipped: tuple[dict[str, str], ...] = tuple(manifest.get("skipped", ()))
        self.landmarker: str = str(manifest.get("landmarker", "none"))
        scale = size / self.crop_size
        images, masks = [], []
        for i in range(0, n, _RESIZE_CHUNK):  # chunks bound the float copy's memory
            img = t["images"][i:i + _RESIZE_CHUNK].permute(0, 3, 1, 2).float()
            images.append(_resize(img, size).round().clamp(0, 255).to(torch.uint8))
            m = t["skin_masks"][i:i + _RESIZE_CHUNK, None].float()
            masks.append(_resize(m, size) > 0.5)
        self._images = torch.cat(images) if images else torch.zeros(0, 3, size, size,
                                                                    dtype=torch.uint8)
        self._masks = torch.cat(masks) if masks else torch.zeros(0, 1, size, size,
                                                                 dtype=torch.bool)
        valid = t["has_landmarks68"].bool()
        self._valid = valid[:, None].expand(n, 68).contiguous()
        self._lm68 = torch.where(valid[:, None, None], t["landmarks68"].float() * scale,
                                 torch.zeros(()))
        self._lm5 = t["landmarks5"].float() * scale
        self._source = t["source_index"].long()

    def __len__(self) -> int:
        return int(self._images.shape[0])

    def batch(self, indices: Sequence[int] | torch.Tensor) -> dict[str, torch.Tensor]:
        """Items ``indices`` stacked: every value of :meth:`__getitem__` with a leading (B,)."""
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        n = len(self)
        if idx.numel() and (int(idx.min()) < -n or int(idx.max()) >= n):
            raise IndexError(f"indices out of range for {n} faces")
        idx = idx % max(n, 1)
        return {"image": self._images[idx].float() / 255.0, "landmarks": self._lm68[idx],
                "landmarks_valid": self._valid[idx], "landmarks5": self._lm5[idx],
                "skin_mask": self._masks[idx], "source": self._source[idx], "index": idx}

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.batch([int(i)]).items()}
