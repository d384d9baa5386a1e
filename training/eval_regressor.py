"""Evaluate a coefficient-regressor checkpoint: ``facecraft eval regressor``.

One call, :func:`evaluate`, measures a checkpoint written by
:func:`~facecraft.training.regressor.save_regressor` in three ways and returns one frozen
:class:`RegressorReport` (:meth:`RegressorReport.format_table` prints it, :func:`write_report`
writes ``report.json`` and ``contact_sheet.png``):

**Held-out synthetic faces** (:class:`~facecraft.training.synthetic.SyntheticFaces` of the
checkpoint's face model, seed :attr:`RegressorEvalSettings.seed`, by default
:data:`DEFAULT_EVAL_SEED`, disjoint from the trainer's defaults 0 and 1,000,003):

* per-vertex shape error in millimetres, NoW-style (Sanyal et al. 2019): the predicted
  model-frame shape is aligned to the true one by the similarity transform (rotation,
  translation, uniform scale; Umeyama) that best maps its 7 landmarks
  :data:`NOW_LANDMARKS` (the four eye corners, the nose tip, the two mouth corners) onto the
  true ones, then the distance of every vertex of the model's ``"face"`` region (all vertices
  without one) is measured. Correspondence is exact on synthetic faces, so there is no
  scan-to-mesh search. Mean, median and 90th percentile over all vertices of all faces.
* the trainer's dense metric for comparison: mean distance after rigid Procrustes over the
  whole face region (:func:`~facecraft.training.train_regressor.procrustes_align`).
* coefficient errors: RMSE of the identity, expression, albedo and lighting coefficients (a
  checkpoint with fewer modes than the model counts the missing ones as zero), the geodesic
  rotation error and the mean absolute pitch / yaw / roll error in degrees, the translation
  error in millimetres, and the 68-landmark NME on the image (outer-eye-corner distance).

Every synthetic metric is also reported for the **mean face**: all-zero coefficients at the
regressor's translation offset (what an untrained regressor outputs), so the table shows
whether the network beats the trivial answer.

**Annotated photos** (the layout of ``../shared/assets/landmarks68.json``; see
:mod:`facecraft.sdk.photo.landmark_eval`): every photo goes through the SDK's
:func:`~facecraft.sdk.photo.ingest.ingest_photo` (MTCNN detection, 5-point alignment to the
regressor's crop size); each annotated face is matched to the largest detection whose box holds
its landmarks' centre. The regressor runs on the crop, the model's 68 landmarks are projected
with the paper camera and mapped back into the photo, and the NME is reported normalised by
``sqrt(w * h)`` of the annotation's bounding box (3DDFA's convention) and by the outer-eye-corner
distance (300-W's), ``gt_manual`` and ``model_pred`` annotations apart.

**Photometric**: the predicted face (albedo under the predicted SH lighting) is rendered over
the crop; PSNR (dB) and SSIM between the render and the crop are measured inside the rendered
skin mask: the projection mask times :func:`~facecraft.sdk.photo.face_mask.skin_mask_from_landmarks`
of the annotation mapped into the crop. Models without albedo get NaN.

Nothing here changes process-wide state; the work runs under :func:`torch.inference_mode`.
"""

from __future__ import annotations

import dataclasses
import json
import math
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

from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.models.default_model import load_default_model, resolve_model
from facecraft.sdk.models.morphable_model import MorphableModel, MorphableModelLayer
from facecraft.sdk.photo.face_mask import skin_mask_from_landmarks
from facecraft.sdk.photo.ingest import IngestSettings, ingest_photo
from facecraft.sdk.photo.landmark_eval import inter_ocular_nme
from facecraft.sdk.render.cameras import PerspectiveCamera, euler_to_matrix
from facecraft.sdk.render.renderer import render_mesh
from facecraft.training.losses import psnr, ssim
from facecraft.training.regressor import CoeffRegressor, Coeffs3DMM, load_regressor
from facecraft.training.regressor_metrics import EYE_OUTER, procrustes_align
from facecraft.training.regressor_report import (
    ErrorStats,
    PhotoFaceResult,
    PhotoLandmarkMetrics,
    PhotometricMetrics,
    RegressorReport,
    SyntheticMetrics,
    nan_mean,
    write_report,
)
from facecraft.training.synthetic import SyntheticFaces, SyntheticSettings

__all__ = [
    "NOW_LANDMARKS",
    "DEFAULT_EVAL_SEED",
    "RegressorEvalSettings",
    "ErrorStats",
    "SyntheticMetrics",
    "PhotoLandmarkMetrics",
    "PhotometricMetrics",
    "PhotoFaceResult",
    "RegressorReport",
    "evaluate",
    "write_report",
    "fit_similarity",
    "now_vertex_errors",
    "coefficient_errors",
    "rotation_error_deg",
    "box_nme",
]

#: iBUG-68 indices of NoW's 7 alignment landmarks: outer and inner eye corners (36, 39, 42,
#: 45), nose tip (30), mouth corners (48, 54).
NOW_LANDMARKS = (36, 39, 42, 45, 30, 48, 54)
#: Seed of the held-out synthetic faces; the trainer's defaults are ``seed=0`` and
#: ``val_seed=1_000_003`` (snapshots ``val_seed + 1``).
DEFAULT_EVAL_SEED = 4_000_037
_GREY = 0.7  # albedo of models without one (for the contact sheet only)


# ------------------------------------------------------------------------------ settings
@dataclass(frozen=True)
class RegressorEvalSettings:
    """How :func:`evaluate` runs. Change fields with ``dataclasses.replace``.

    Attributes:
        seed: seed of the held-out synthetic faces; keep it away from the training seeds.
        synthetic: :class:`~facecraft.training.synthetic.SyntheticSettings` overrides (its
            field names; ``image_size`` is always the checkpoint's crop size).
        batch_size: synthetic faces per forward pass.
        max_photos: evaluate at most this many annotated photos (in file order); 0 = all.
        contact_sheet_faces: photo faces drawn on the contact sheet, at most; 0 = no sheet.
        tile_size: side of each contact-sheet tile, pixels.
        detector_threads: ONNX Runtime threads of the MTCNN face detector.
        model: the face model, ``"starter"`` or a ``.fcm`` path; ``None`` = the one the
            checkpoint records (``extra["face_model"]``; the built-in starter when absent).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    """

    seed: int = DEFAULT_EVAL_SEED
    synthetic: Mapping[str, Any] = field(default_factory=dict)
    batch_size: int = 16
    max_photos: int = 0
    contact_sheet_faces: int = 24
    tile_size: int = 128
    detector_threads: int = 2
    model: str | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name, lo in (("seed", 0), ("batch_size", 1), ("max_photos", 0),
                         ("contact_sheet_faces", 0), ("tile_size", 32),
                         ("detector_threads", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise InvalidInputError(f"expected {name} an int >= {lo}, got {v!r}")
        if not isinstance(self.synthetic, Mapping):
            raise InvalidInputError(f"expected synthetic a dict of SyntheticSettings fields, got "
                                    f"{type(self.synthetic).__name__}")
        object.__setattr__(self, "synthetic", dict(self.synthetic))
        self.synthetic_settings(64)  # validates the overrides
        if self.model is not None and (not isinstance(self.model, str) or not self.model):
            raise InvalidInputError(f"expected model None, 'starter' or a .fcm path, got "
                                    f"{self.model!r}")
        if not (self.device == "cpu" or self.device == "cuda" or self.device.startswith("cuda:")):
            raise InvalidInputError(f"expected device 'cpu', 'cuda' or 'cuda:N', got "
                                    f"{self.device!r}")

    def synthetic_settings(self, image_size: int) -> SyntheticSettings:
        """The held-out faces' :class:`SyntheticSettings` at ``image_size`` pixels."""
        names = {f.name for f in dataclasses.fields(SyntheticSettings)}
        unknown = sorted(set(self.synthetic) - names - {"image_size"})
        if unknown:
            raise InvalidInputError(f"unknown synthetic settings {unknown}; expected names from "
                                    f"{sorted(names)}")
        try:
            return SyntheticSettings.from_json({**self.synthetic, "image_size": image_size})
        except TypeError as e:
            raise InvalidInputError(f"bad synthetic settings: {e}") from None


# ------------------------------------------------------------------------------- metrics
def fit_similarity(source: torch.Tensor, target: torch.Tensor, *, scale: bool = True
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The similarity ``x -> s R x + t`` that best maps ``source`` onto ``target`` (Umeyama,
    least squares, no reflection).

    Args:
        source: (B, N, 3) float points, N >= 3 not collinear.
        target: (B, N, 3) float points, same order.
        scale: fit the uniform scale ``s``; ``False`` fixes it to 1 (rigid).

    Returns:
        ``(s, R, t)``: (B,) scale, (B, 3, 3) rotation, (B, 3) translation, float64.
    """
    if source.ndim != 3 or source.shape[-1] != 3 or source.shape != target.shape:
        raise InvalidInputError(f"expected source and target (B, N, 3) of one shape, got "
                                f"{tuple(source.shape)} and {tuple(target.shape)}")
    s64, t64 = source.double(), target.double()
    mu_s, mu_t = s64.mean(1), t64.mean(1)
    xs, xt = s64 - mu_s[:, None], t64 - mu_t[:, None]
    cov = xt.transpose(1, 2) @ xs / source.shape[1]  # (B, 3, 3), target x source
    u, sig, vt = torch.linalg.svd(cov)
    d = torch.sign(torch.linalg.det(u) * torch.linalg.det(vt))
    d = torch.where(d == 0, torch.ones_like(d), d)
    fix = torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1)
    rot = u @ torch.diag_embed(fix) @ vt
    if scale:
        var = (xs ** 2).sum((1, 2)) / source.shape[1]
        s = (sig * fix).sum(-1) / var.clamp(min=1e-30)
    else:
        s = torch.ones_like(d)
    t = mu_t - s[:, None] * (rot @ mu_s[..., None])[..., 0]
    return s, rot, t


def now_vertex_errors(pred_verts: torch.Tensor, true_verts: torch.Tensor,
                      pred_anchors: torch.Tensor, true_anchors: torch.Tensor, *,
                      region: torch.Tensor | None = None, scale: bool = True) -> torch.Tensor:
    """Per-vertex distances after NoW's landmark alignment.

    ``pred_verts`` is moved by :func:`fit_similarity` of ``pred_anchors`` onto ``true_anchors``,
    then each vertex's distance to its counterpart in ``true_verts`` is measured.

    Args:
        pred_verts: (B, V, 3) float, metres, model frame.
        true_verts: (B, V, 3) float, metres, same topology.
        pred_anchors: (B, K, 3) the prediction's alignment landmarks (e.g. the 68 landmarks at
            :data:`NOW_LANDMARKS`), metres.
        true_anchors: (B, K, 3) the truth's, same order.
        region: (M,) int64 vertex ids to measure, or None for every vertex.
        scale: fit a uniform scale too (NoW does).

    Returns:
        (B, M) float32 distances, metres.
    """
    if pred_verts.shape != true_verts.shape or pred_verts.ndim != 3:
        raise InvalidInputError(f"expected pred_verts and true_verts (B, V, 3) of one shape, got "
                                f"{tuple(pred_verts.shape)} and {tuple(true_verts.shape)}")
    s, rot, t = fit_similarity(pred_anchors, true_anchors, scale=scale)
    if region is not None:
        pred_verts, true_verts = pred_verts[:, region], true_verts[:, region]
    moved = s[:, None, None] * (pred_verts.double() @ rot.transpose(1, 2)) + t[:, None]
    return (moved - true_verts.double()).norm(dim=-1).float()


def rotation_error_deg(angles_a: torch.Tensor, angles_b: torch.Tensor) -> torch.Tensor:
    """Geodesic angle between two batches of rotations given as Euler angles.

    Args:
        angles_a, angles_b: (B, 3) float ``(pitch, yaw, roll)`` radians
            (:func:`facecraft.sdk.render.cameras.euler_to_matrix`).

    Returns:
        (B,) float degrees in [0, 180].
    """
    rel = euler_to_matrix(angles_a.double()).transpose(1, 2) @ euler_to_matrix(angles_b.double())
    skew = torch.stack([rel[:, 2, 1] - rel[:, 1, 2], rel[:, 0, 2] - rel[:, 2, 0],
                        rel[:, 1, 0] - rel[:, 0, 1]], -1)
    cos = (rel.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2
    return torch.rad2deg(torch.atan2(skew.norm(dim=-1) / 2, cos)).to(angles_a.dtype)


def _rmse(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    if true.shape[1] == 0:
        return torch.full((true.shape[0],), math.nan, dtype=true.dtype, device=true.device)
    if pred.shape[1] > true.shape[1]:
        raise InvalidInputError(f"the prediction has {pred.shape[1]} coefficients where the "
                                f"truth has {true.shape[1]}")
    full = torch.zeros_like(true)
    full[:, :pred.shape[1]] = pred
    return ((full - true) ** 2).mean(1).sqrt()


def coefficient_errors(pred: Coeffs3DMM, true: Coeffs3DMM) -> dict[str, torch.Tensor]:
    """Per-face coefficient and pose errors.

    A prediction with fewer identity / expression / albedo modes than the truth counts the
    missing trailing modes as zero.

    Returns:
        (B,) float tensors: ``identity_rmse``, ``expression_rmse``, ``albedo_rmse`` (NaN when
        the truth has no albedo modes), ``lighting_rmse``, ``rotation_error_deg`` (geodesic),
        ``angle_mae_deg`` (mean absolute pitch / yaw / roll error, degrees) and
        ``translation_error_mm``.
    """
    return {
        "identity_rmse": _rmse(pred.identity, true.identity),
        "expression_rmse": _rmse(pred.expression, true.expression),
        "albedo_rmse": _rmse(pred.albedo, true.albedo),
        "lighting_rmse": _rmse(pred.lighting, true.lighting),
        "rotation_error_deg": rotation_error_deg(pred.angles, true.angles),
        "angle_mae_deg": torch.rad2deg((pred.angles - true.angles).abs()).mean(1),
        "translation_error_mm": (pred.translation - true.translation).norm(dim=-1) * 1000.0,
    }


def box_nme(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean point error over ``sqrt(w * h)`` of the bounding box of ``true`` (3DDFA's NME).

    Args:
        pred: (N, 2) pixels. true: (N, 2) pixels, same order.
    """
    p, g = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    if p.shape != g.shape or p.ndim != 2 or p.shape[1] != 2:
        raise InvalidInputError(f"expected pred and true (N, 2) of one shape, got {p.shape} and "
                                f"{g.shape}")
    w, h = g.max(0) - g.min(0)
    if w <= 0 or h <= 0:
        raise InvalidInputError("the annotation's bounding box is empty")
    return float(np.linalg.norm(p - g, axis=1).mean() / math.sqrt(w * h))


# ---------------------------------------------------------------------------- evaluation
def _pad(c: torch.Tensor, n: int) -> torch.Tensor:
    return c if c.shape[1] == n else torch.cat([c, c.new_zeros(c.shape[0], n - c.shape[1])], 1)


def _full(c: Coeffs3DMM, model: MorphableModel) -> Coeffs3DMM:
    """``c`` with identity / expression / albedo padded with zeros to the model's mode counts."""
    return dataclasses.replace(c, identity=_pad(c.identity, model.num_identity),
                               expression=_pad(c.expression, model.num_expression),
                               albedo=_pad(c.albedo, model.num_albedo))


def _mean_face(regressor: CoeffRegressor, model: MorphableModel, b: int,
               like: torch.Tensor) -> Coeffs3DMM:
    z = like.new_zeros
    offset = torch.tensor(regressor.translation_offset, dtype=like.dtype, device=like.device)
    return Coeffs3DMM(identity=z(b, model.num_identity), expression=z(b, model.num_expression),
                      albedo=z(b, model.num_albedo), angles=z(b, 3), lighting=z(b, 27),
                      translation=offset.expand(b, 3).clone())


class _Scene:
    """The face model's torch layer and the paper camera at the regressor's crop size."""

    def __init__(self, model: MorphableModel, crop_size: int, device: torch.device) -> None:
        self.model = model
        self.layer: MorphableModelLayer = model.to_torch(device)
        self.camera = PerspectiveCamera.paper(crop_size)
        face = model.regions.get("face")
        self.region = (torch.from_numpy(np.asarray(face, np.int64)).to(device)
                       if face is not None and len(face) else None)
        self.anchors = torch.tensor(NOW_LANDMARKS, dtype=torch.int64, device=device)

    def verts(self, c: Coeffs3DMM) -> torch.Tensor:
        return self.layer(c.identity, c.expression)

    def landmarks2d(self, c: Coeffs3DMM, verts: torch.Tensor) -> torch.Tensor:
        """(B, 68, 2) crop pixels."""
        return self.camera.project(self.layer.landmarks(c.pose().transform(verts)))[..., :2]

    def render(self, c: Coeffs3DMM, verts: torch.Tensor, background: torch.Tensor):
        if self.layer.albedo_mean is not None:
            albedo = self.layer.albedo(c.albedo).clamp(0.0, 1.0)
        else:
            albedo = torch.full_like(verts, _GREY)
        return render_mesh(verts, self.layer.triangles, albedo, camera=self.camera,
                           pose=c.pose(), sh=c.lighting, background=background)


def _synthetic_terms(scene: _Scene, c: Coeffs3DMM, truth: Coeffs3DMM,
                     true_verts: torch.Tensor, true_lm2d: torch.Tensor
                     ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Per-face metrics (B,) and the pooled per-vertex NoW distances (B, M) in metres."""
    verts = scene.verts(c)
    lm_pred = scene.layer.landmarks(verts)[:, scene.anchors]
    lm_true = scene.layer.landmarks(true_verts)[:, scene.anchors]
    dist = now_vertex_errors(verts, true_verts, lm_pred, lm_true, region=scene.region)
    src, dst = ((verts[:, scene.region], true_verts[:, scene.region])
                if scene.region is not None else (verts, true_verts))
    rigid = (procrustes_align(src, dst) - dst).norm(dim=-1).mean(1) * 1000.0
    lm2d = scene.landmarks2d(c, verts)
    iod = (true_lm2d[:, EYE_OUTER[0]] - true_lm2d[:, EYE_OUTER[1]]).norm(dim=-1)
    nme = (lm2d - true_lm2d).norm(dim=-1).mean(1) / iod.clamp(min=1e-6)
    terms = {**coefficient_errors(c, truth), "rigid_vertex_error_mm": rigid,
             "landmark_nme": nme}
    return terms, dist


def _summarise(count: int, terms: dict[str, list[torch.Tensor]],
               dists: list[torch.Tensor]) -> SyntheticMetrics:
    means = {k: nan_mean(torch.cat(v).double().cpu().numpy()) for k, v in terms.items()}
    pooled = torch.cat([d.reshape(-1) for d in dists]).cpu().numpy() * 1000.0
    return SyntheticMetrics(count=count, vertex_error_mm=ErrorStats.of(pooled), **means)


def _eval_synthetic(regressor: CoeffRegressor, scene: _Scene, count: int,
                    settings: RegressorEvalSettings, device: torch.device, progress: bool
                    ) -> tuple[SyntheticMetrics, SyntheticMetrics]:
    size = regressor.input_spec.crop_size
    faces = SyntheticFaces(scene.model, settings.synthetic_settings(size), length=count,
                           seed=settings.seed, device=device)
    acc: dict[str, tuple[dict[str, list[torch.Tensor]], list[torch.Tensor]]] = {
        "regressor": ({}, []), "mean_face": ({}, [])}
    bar = _bar(count, "synthetic faces", progress)
    for start in range(0, count, settings.batch_size):
        batch = faces.render_batch(range(start, min(count, start + settings.batch_size)))
        truth = Coeffs3DMM(identity=batch.identity, expression=batch.expression,
                           albedo=batch.albedo, angles=batch.angles, lighting=batch.lighting,
                           translation=batch.translation)
        true_verts = scene.layer(truth.identity, truth.expression)
        pred = _full(regressor(batch.image), scene.model)
        base = _mean_face(regressor, scene.model, len(batch), batch.angles)
        for name, c in (("regressor", pred), ("mean_face", base)):
            terms, dist = _synthetic_terms(scene, c, truth, true_verts, batch.landmarks2d)
            for k, v in terms.items():
                acc[name][0].setdefault(k, []).append(v)
            acc[name][1].append(dist)
        bar(len(batch))
    bar(None)
    return (_summarise(count, *acc["regressor"]), _summarise(count, *acc["mean_face"]))


def _match(faces: Sequence[Any], centre: np.ndarray) -> Any:
    """The largest detection whose box holds ``centre`` (as :mod:`facecraft.sdk.photo.landmark_eval`
    matches), or None."""
    inside = [f for f in faces if f.box[0] <= centre[0] <= f.box[2]
              and f.box[1] <= centre[1] <= f.box[3]]
    return max(inside, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]),
               default=None)


def _to_u8(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(rgb, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def _tiles(crop: np.ndarray, over: np.ndarray, true_crop: np.ndarray, pred_crop: np.ndarray,
           label: str, size: int) -> np.ndarray:
    """(size, 3 size, 3) uint8: crop | render over crop | crop with landmarks."""
    s = crop.shape[0]

    def up(img: np.ndarray) -> np.ndarray:
        return cv2.resize(_to_u8(img), (size, size), interpolation=cv2.INTER_LINEAR)

    marks = up(crop)
    k = size / s
    radius = max(1, size // 100)
    for pts, colour in ((true_crop, (0, 200, 0)), (pred_crop, (230, 30, 30))):
        for x, y in np.asarray(pts, np.float64) * k:
            if np.isfinite(x) and np.isfinite(y):
                cv2.circle(marks, (int(round(x - 0.5)), int(round(y - 0.5))), radius, colour, -1,
                           cv2.LINE_AA)
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, size / 400
    (tw, th), base = cv2.getTextSize(label, font, scale, 1)
    cv2.rectangle(marks, (0, size - th - base - 4), (tw + 5, size), (0, 0, 0), -1)
    cv2.putText(marks, label, (3, size - base - 2), font, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([up(crop), up(over), marks], axis=1)


def _contact_sheet(cells: list[np.ndarray]) -> np.ndarray | None:
    """Cells (T, 3T, 3) in a grid of about square shape, 2 px white gaps."""
    if not cells:
        return None
    cols = max(1, min(len(cells), math.ceil(math.sqrt(len(cells) / 3))))
    rows = math.ceil(len(cells) / cols)
    h, w = cells[0].shape[:2]
    gap = 2
    sheet = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap, 3), 255, np.uint8)
    for i, cell in enumerate(cells):
        r, c = divmod(i, cols)
        sheet[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = cell
    return sheet


def _read_annotations(path: Path) -> dict[str, Any]:
    try:
        images = json.loads(path.read_text(encoding="utf-8"))["images"]
        if not isinstance(images, dict):
            raise TypeError("'images' is not an object")
    except FileNotFoundError:
        raise InvalidInputError(f"annotation file {path} does not exist") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InvalidInputError(f"{path}: not a landmark annotation file ({e}); expected the "
                                "layout of landmarks68.json") from None
    return images


def _eval_photos(regressor: CoeffRegressor, scene: _Scene, annotations: Path, root: Path,
                 settings: RegressorEvalSettings, detector: Any, device: torch.device,
                 progress: bool) -> tuple[int, list[PhotoFaceResult], list[np.ndarray]]:
    images = _read_annotations(annotations)
    todo = [(rel, [f for f in entry.get("faces", []) if "lm68_xy" in f])
            for rel, entry in images.items()]
    todo = [(rel, faces) for rel, faces in todo if faces]
    if settings.max_photos:
        todo = todo[:settings.max_photos]
    size = regressor.input_spec.crop_size
    ingest = IngestSettings(crop_size=size, all_faces=True, require_face=False)
    results: list[PhotoFaceResult] = []
    cells: list[np.ndarray] = []
    bar = _bar(len(todo), "photos", progress)
    for rel, annotated in todo:
        path = root / rel
        try:
            data = path.read_bytes()
        except OSError as e:
            raise InvalidInputError(f"cannot read photo {path} listed in {annotations}: "
                                    f"{e.strerror or e}") from None
        found = ingest_photo(data, detector, settings=ingest, source=str(path)).faces
        matched = []
        for face in annotated:
            gt = np.asarray(face["lm68_xy"], np.float64)
            if gt.shape != (68, 2):
                raise InvalidInputError(f"{annotations}: {rel} has a face with {gt.shape} "
                                        "landmarks; expected (68, 2)")
            kind = str(face.get("kind", "unknown"))
            det = _match(found, gt.mean(0))
            if det is None:
                results.append(PhotoFaceResult(image=rel, kind=kind, matched=False))
            else:
                matched.append((kind, gt, det))
        if matched:
            crops = np.stack([d.aligned.image[..., :3] for _, _, d in matched]).astype(np.float32)
            x = torch.from_numpy(crops).to(device)  # (n, S, S, 3)
            pred = _full(regressor(x.permute(0, 3, 1, 2).contiguous()), scene.model)
            verts = scene.verts(pred)
            lm_crop = scene.landmarks2d(pred, verts).double().cpu().numpy()
            out = scene.render(pred, verts, background=x)
            over = out.image.clamp(0.0, 1.0)
            true_crop = [d.aligned.to_crop(gt) for _, gt, d in matched]
            skin = np.stack([skin_mask_from_landmarks(t, (size, size)) for t in true_crop])
            mask = out.mask & torch.from_numpy(skin).to(device)
            has_albedo = scene.layer.albedo_mean is not None
            p = psnr(over, x, mask).cpu().numpy() if has_albedo else [math.nan] * len(matched)
            q = ssim(over, x, mask).cpu().numpy() if has_albedo else [math.nan] * len(matched)
            over_np = over.cpu().numpy()
            for i, (kind, gt, det) in enumerate(matched):
                lm_photo = det.aligned.to_photo(lm_crop[i])
                r = PhotoFaceResult(image=rel, kind=kind, matched=True,
                                    nme_box=box_nme(lm_photo, gt),
                                    nme_iod=inter_ocular_nme(lm_photo, gt, gt),
                                    psnr_db=float(p[i]), ssim=float(q[i]))
                results.append(r)
                if len(cells) < settings.contact_sheet_faces:
                    cells.append(_tiles(crops[i], over_np[i], true_crop[i], lm_crop[i],
                                        f"{kind} nme {r.nme_box:.3f}", settings.tile_size))
        bar(1)
    bar(None)
    return len(todo), results, cells


def _photo_rows(results: Sequence[PhotoFaceResult]
                ) -> tuple[tuple[PhotoLandmarkMetrics, ...], PhotometricMetrics]:
    rows = []
    for kind in sorted({r.kind for r in results}):
        rs = [r for r in results if r.kind == kind]
        ok = [r for r in rs if r.matched]
        rows.append(PhotoLandmarkMetrics(kind=kind, faces=len(rs), matched=len(ok),
                                         nme_box=nan_mean([r.nme_box for r in ok]),
                                         nme_iod=nan_mean([r.nme_iod for r in ok])))
    lit = [r for r in results if r.matched and math.isfinite(r.psnr_db)
           and math.isfinite(r.ssim)]
    photometric = PhotometricMetrics(faces=len(lit), psnr_db=nan_mean([r.psnr_db for r in lit]),
                                     ssim=nan_mean([r.ssim for r in lit]))
    return tuple(rows), photometric


def _bar(total: int, desc: str, enabled: bool):
    """A callable ``step(n)`` (``step(None)`` closes) drawing a tqdm bar on stderr."""
    if not enabled or total <= 0:
        return lambda n: None
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, file=sys.stderr, dynamic_ncols=True)
    return lambda n: bar.close() if n is None else bar.update(n)


def _face_model(regressor: CoeffRegressor, where: str, settings: RegressorEvalSettings,
                model: MorphableModel | None) -> MorphableModel:
    recorded = regressor.extra_meta.get("face_model")
    if model is None:
        if settings.model is not None:
            model = resolve_model(settings.model)
        else:
            model = load_default_model()
            if recorded is not None and recorded != model.name:
                raise InvalidInputError(f"{where} was trained on face model {recorded!r}, not the "
                                        f"built-in {model.name!r}; pass that model's .fcm file "
                                        "(--model PATH)")
    elif not isinstance(model, MorphableModel):
        raise InvalidInputError(f"expected model a MorphableModel, got {type(model).__name__}")
    if recorded is not None and recorded != model.name:
        raise InvalidInputError(f"{where} was trained on face model {recorded!r}, but the model "
                                f"given is {model.name!r}")
    lay = regressor.layout
    if (lay.num_identity > model.num_identity or lay.num_expression > model.num_expression
            or lay.num_albedo > model.num_albedo):
        raise InvalidInputError(f"{where} regresses {lay} but face model {model.name!r} has "
                                f"{model.num_identity} identity, {model.num_expression} "
                                f"expression and {model.num_albedo} albedo modes")
    return model


def evaluate(checkpoint: str | os.PathLike[str] | CoeffRegressor, *, synthetic_count: int = 100,
             annotations: str | os.PathLike[str] | None = None,
             photo_root: str | os.PathLike[str] | None = None,
             settings: RegressorEvalSettings = RegressorEvalSettings(),
             model: MorphableModel | None = None, detector: Any = None,
             progress: bool = False) -> RegressorReport:
    """Evaluate a regressor on held-out synthetic faces and annotated photos.

    Args:
        checkpoint: a ``.safetensors`` checkpoint, or a regressor already loaded (its mode is
            restored afterwards).
        synthetic_count: held-out synthetic faces; 0 skips them.
        annotations: a 68-point annotation file (layout of ``landmarks68.json``), or None to
            skip the photos.
        photo_root: the folder the annotation paths are relative to; None = the file's folder.
        settings: see :class:`RegressorEvalSettings`.
        model: the face model (overrides ``settings.model`` and the checkpoint's record).
        detector: anything with ``detect(rgb_uint8) -> faces`` (``box``, ``landmarks5``);
            None builds :class:`facecraft.sdk.photo.detect.FaceDetector` when photos are evaluated.
        progress: tqdm bars on stderr.

    Returns:
        :class:`RegressorReport` (the contact sheet holds up to
        ``settings.contact_sheet_faces`` photo faces).

    Raises:
        InvalidInputError: a missing checkpoint or annotation file, a face model that does not
            fit the checkpoint, nothing to evaluate, bad settings.
        ModelFileError: an unreadable checkpoint or face model.
    """
    t0 = time.perf_counter()
    if not isinstance(settings, RegressorEvalSettings):
        raise InvalidInputError(f"expected settings a RegressorEvalSettings, got "
                                f"{type(settings).__name__}")
    if isinstance(synthetic_count, bool) or not isinstance(synthetic_count, int) \
            or synthetic_count < 0:
        raise InvalidInputError(f"expected synthetic_count an int >= 0, got {synthetic_count!r}")
    if not synthetic_count and annotations is None:
        raise InvalidInputError("nothing to evaluate: ask for synthetic faces (--synthetic N) "
                                "or give an annotation file (--annotations)")
    if settings.device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidInputError(f"device {settings.device!r} asked for, but CUDA is not "
                                "available; use device 'cpu'")
    device = torch.device(settings.device)
    if isinstance(checkpoint, CoeffRegressor):
        regressor, where = checkpoint, "the regressor"
    else:
        path = Path(checkpoint)
        if not path.is_file():
            raise InvalidInputError(f"regressor checkpoint {path} does not exist (train one with "
                                    "`facecraft train regressor`)")
        regressor, where = load_regressor(path), str(path)
    face_model = _face_model(regressor, where, settings, model)
    ann_path = Path(annotations) if annotations is not None else None
    if ann_path is not None and not ann_path.is_file():
        raise InvalidInputError(f"annotation file {ann_path} does not exist")
    if ann_path is not None and detector is None:
        from facecraft.sdk.photo.detect import DetectorSettings, FaceDetector

        detector = FaceDetector(DetectorSettings(threads=settings.detector_threads))

    was_training = regressor.training
    regressor.eval()
    try:
        original = next(regressor.parameters()).device
        regressor.to(device)
        with torch.inference_mode():
            scene = _Scene(face_model, regressor.input_spec.crop_size, device)
            synth = base = None
            if synthetic_count:
                synth, base = _eval_synthetic(regressor, scene, synthetic_count, settings,
                                              device, progress)
            photos, results, cells = 0, [], []
            if ann_path is not None:
                root = Path(photo_root) if photo_root is not None else ann_path.parent
                photos, results, cells = _eval_photos(regressor, scene, ann_path, root,
                                                      settings, detector, device, progress)
    finally:
        regressor.to(original)
        regressor.train(was_training)
    rows, photometric = _photo_rows(results) if ann_path is not None else ((), None)
    step = regressor.extra_meta.get("step")
    return RegressorReport(
        checkpoint="" if isinstance(checkpoint, CoeffRegressor) else str(checkpoint),
        face_model=face_model.name, backbone=str(regressor.backbone_name),
        crop_size=regressor.input_spec.crop_size,
        step=int(step) if isinstance(step, int) else None, seed=settings.seed,
        synthetic=synth, mean_face=base,
        annotations=str(ann_path) if ann_path is not None else None, photos=photos,
        landmarks=rows, photometric=photometric, faces=tuple(results),
        contact_sheet=_contact_sheet(cells), elapsed_s=time.perf_counter() - t0)
