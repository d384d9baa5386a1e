"""What :func:`facecraft.training.eval_regressor.evaluate` reports, and writing it.

Frozen result records (:class:`ErrorStats`, :class:`SyntheticMetrics`,
:class:`PhotoLandmarkMetrics`, :class:`PhotometricMetrics`, :class:`PhotoFaceResult`) make up a
:class:`RegressorReport`, which prints as a table (:meth:`RegressorReport.format_table`) and is
written as ``report.json`` and ``contact_sheet.png`` by :func:`write_report`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facecraft.sdk.errors import InvalidInputError

__all__ = ["ErrorStats", "SyntheticMetrics", "PhotoLandmarkMetrics", "PhotometricMetrics",
           "PhotoFaceResult", "RegressorReport", "write_report", "nan_mean"]


def nan_mean(values: Sequence[float]) -> float:
    """The mean of the finite entries of ``values``; NaN when there are none."""
    a = np.asarray(values, np.float64)
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else math.nan


@dataclass(frozen=True)
class ErrorStats:
    """Summary of a pooled error distribution (NaN when empty).

    Attributes:
        mean: arithmetic mean. median: 50th percentile. p90: 90th percentile.
    """

    mean: float
    median: float
    p90: float

    @classmethod
    def of(cls, values: np.ndarray) -> ErrorStats:
        """The statistics of the finite entries of ``values`` (any shape)."""
        a = np.asarray(values, np.float64).reshape(-1)
        a = a[np.isfinite(a)]
        if not a.size:
            return cls(math.nan, math.nan, math.nan)
        return cls(float(a.mean()), float(np.median(a)), float(np.percentile(a, 90)))


@dataclass(frozen=True)
class SyntheticMetrics:
    """Accuracy of one predictor (the regressor, or the mean face) on the held-out faces.

    Attributes:
        count: faces evaluated.
        vertex_error_mm: NoW-style per-vertex error (7-landmark similarity alignment, face
            region), millimetres, pooled over all vertices of all faces.
        rigid_vertex_error_mm: mean per-vertex error after dense rigid Procrustes over the face
            region (the trainer's validation metric), millimetres.
        identity_rmse, expression_rmse, albedo_rmse, lighting_rmse: root-mean-square
            coefficient errors (unit-variance bases; lighting in SH units), mean over faces;
            NaN for a block the model lacks.
        rotation_error_deg: geodesic angle between the predicted and true rotations, degrees.
        angle_mae_deg: mean absolute pitch / yaw / roll error, degrees.
        translation_error_mm: Euclidean translation error, millimetres.
        landmark_nme: 68-landmark image error over the true outer-eye-corner distance.
    """

    count: int
    vertex_error_mm: ErrorStats
    rigid_vertex_error_mm: float
    identity_rmse: float
    expression_rmse: float
    albedo_rmse: float
    lighting_rmse: float
    rotation_error_deg: float
    angle_mae_deg: float
    translation_error_mm: float
    landmark_nme: float


@dataclass(frozen=True)
class PhotoLandmarkMetrics:
    """Landmark accuracy on annotated photos of one annotation kind.

    Attributes:
        kind: ``"gt_manual"`` or ``"model_pred"`` (or what the file says).
        faces: annotated faces of this kind.
        matched: faces a detection was matched to (the others are missed, not scored).
        nme_box: mean NME over ``sqrt(w * h)`` of the annotation's box (3DDFA).
        nme_iod: mean NME over the outer-eye-corner distance (300-W).
    """

    kind: str
    faces: int
    matched: int
    nme_box: float
    nme_iod: float


@dataclass(frozen=True)
class PhotometricMetrics:
    """Render-over-crop agreement inside the rendered skin mask.

    Attributes:
        faces: faces with a non-empty mask (those averaged).
        psnr_db: mean PSNR, decibels (colours in [0, 1]).
        ssim: mean SSIM in [-1, 1].
    """

    faces: int
    psnr_db: float
    ssim: float


@dataclass(frozen=True)
class PhotoFaceResult:
    """One annotated photo face.

    Attributes:
        image: the photo's path as the annotation file gives it.
        kind: the annotation kind.
        matched: a detection was matched to it.
        nme_box, nme_iod: see :class:`PhotoLandmarkMetrics` (NaN when unmatched).
        psnr_db, ssim: see :class:`PhotometricMetrics` (NaN when unmatched or masked out).
    """

    image: str
    kind: str
    matched: bool
    nme_box: float = math.nan
    nme_iod: float = math.nan
    psnr_db: float = math.nan
    ssim: float = math.nan


def _jsonable(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    return x


@dataclass(frozen=True, eq=False)
class RegressorReport:
    """Everything :func:`~facecraft.training.eval_regressor.evaluate` measured.

    Attributes:
        checkpoint: the checkpoint's path (``""`` for an in-memory regressor).
        face_model: the face model's name.
        backbone: the regressor's backbone name.
        crop_size: the regressor's input size, pixels.
        step: the training step the checkpoint records, or None.
        seed: the held-out synthetic faces' seed.
        synthetic: the regressor on the held-out faces, or None (no synthetic faces asked for).
        mean_face: the mean-face baseline on the same faces, or None.
        annotations: the annotation file, or None.
        photos: photos evaluated.
        landmarks: one row per annotation kind (sorted), empty without photos.
        photometric: the photometric metrics, or None without photos.
        faces: per annotated face results, in file order.
        contact_sheet: (H, W, 3) uint8 RGB grid of *crop | render over crop | landmarks*
            (green: annotation, red: prediction), or None.
        elapsed_s: wall-clock seconds of the evaluation.
    """

    checkpoint: str
    face_model: str
    backbone: str
    crop_size: int
    step: int | None
    seed: int
    synthetic: SyntheticMetrics | None
    mean_face: SyntheticMetrics | None
    annotations: str | None
    photos: int
    landmarks: tuple[PhotoLandmarkMetrics, ...]
    photometric: PhotometricMetrics | None
    faces: tuple[PhotoFaceResult, ...]
    contact_sheet: np.ndarray | None
    elapsed_s: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (non-finite numbers as None; the contact sheet left out)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.name != "contact_sheet"}
        for k in ("synthetic", "mean_face", "photometric"):
            d[k] = dataclasses.asdict(d[k]) if d[k] is not None else None
        d["landmarks"] = [dataclasses.asdict(r) for r in self.landmarks]
        d["faces"] = [dataclasses.asdict(r) for r in self.faces]
        return _jsonable(d)

    def format_table(self) -> str:
        """The report as plain text: a header, the synthetic table, the photo tables."""
        step = f", step {self.step}" if self.step is not None else ""
        lines = [f"regressor {self.checkpoint or '<in memory>'} ({self.backbone}, "
                 f"{self.crop_size} px, face model {self.face_model}{step})"]
        if self.synthetic is not None and self.mean_face is not None:
            s, m = self.synthetic, self.mean_face
            lines += ["", f"held-out synthetic faces: {s.count} (seed {self.seed})",
                      f"{'metric':<32} {'regressor':>10} {'mean face':>10}",
                      "-" * 54]
            rows = [("vertex error mean (mm, NoW)", s.vertex_error_mm.mean,
                     m.vertex_error_mm.mean),
                    ("vertex error median (mm, NoW)", s.vertex_error_mm.median,
                     m.vertex_error_mm.median),
                    ("vertex error p90 (mm, NoW)", s.vertex_error_mm.p90, m.vertex_error_mm.p90),
                    ("vertex error (mm, dense rigid)", s.rigid_vertex_error_mm,
                     m.rigid_vertex_error_mm)]
            rows += [(label, getattr(s, key), getattr(m, key)) for label, key in (
                ("identity RMSE", "identity_rmse"), ("expression RMSE", "expression_rmse"),
                ("albedo RMSE", "albedo_rmse"), ("lighting RMSE", "lighting_rmse"),
                ("rotation error (deg)", "rotation_error_deg"),
                ("pitch/yaw/roll MAE (deg)", "angle_mae_deg"),
                ("translation error (mm)", "translation_error_mm"),
                ("landmark NME (inter-ocular)", "landmark_nme"))]
            lines += [f"{label:<32} {a:>10.4g} {b:>10.4g}" for label, a, b in rows]
        if self.annotations is not None:
            lines += ["", f"annotated photos: {self.photos} ({self.annotations})",
                      f"{'annotations':<12} {'faces':>5} {'matched':>7} {'NME (box)':>10} "
                      f"{'NME (IOD)':>10}", "-" * 48]
            lines += [f"{r.kind:<12} {r.faces:>5} {r.matched:>7} {r.nme_box:>10.4f} "
                      f"{r.nme_iod:>10.4f}" for r in self.landmarks]
            p = self.photometric
            if p is not None:
                lines.append(f"photometric (skin mask, {p.faces} faces): PSNR {p.psnr_db:.2f} dB, "
                             f"SSIM {p.ssim:.4f}")
        return "\n".join(lines)


def write_report(report: RegressorReport, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write ``report.json`` (and ``contact_sheet.png`` when the report has one) to ``out_dir``.

    Returns:
        The files written.

    Raises:
        InvalidInputError: a file cannot be written.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        path = out / "report.json"
        path.write_text(json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n",
                        encoding="utf-8")
    except OSError as e:
        raise InvalidInputError(f"cannot write the report to {out}: {e.strerror or e}") from None
    written = [path]
    if report.contact_sheet is not None:
        sheet = out / "contact_sheet.png"
        if not cv2.imwrite(str(sheet), np.ascontiguousarray(report.contact_sheet[..., ::-1])):
            raise InvalidInputError(f"cannot write {sheet}")
        written.append(sheet)
    return written
