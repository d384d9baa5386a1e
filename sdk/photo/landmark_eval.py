"""Landmark accuracy on annotated photos: NME per landmarker, ground truth and model-prediction
annotations reported apart.

The annotation file is the layout of ``../shared/assets/landmarks68.json``::

    {"images": {"photos/x.png": {"faces": [{"kind": "gt_manual" | "model_pred",
                                            "lm68_xy": [[x, y] * 68]}, ...]}, ...}}

with paths relative to the file's folder. Each annotated face is matched to the detection whose
box holds its landmarks' centre (the largest such box); a face with no matching detection counts
as missed. NME is the mean point-to-point error divided by the inter-ocular distance (outer eye
corners, iBUG 36 and 45: the 300-W convention); box NME divides it by ``sqrt(w * h)`` of the
annotation's bounding box instead. The 5-point detector landmarks are compared with the 5 points
derived from the 68 annotations (eye centres, nose tip, mouth corners). End-to-end methods (the
MediaPipe front-end: its own detection, then 468 points read as 68 through
:data:`~facecraft.sdk.photo.landmarks.IBUG68_FROM_MESH468`) are matched the same way.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import FaceCraftError
from .align import five_from_68
from .detection import Face
from .image_io import read_image
from .protocols import Detector, Landmarker

__all__ = ["LandmarkEvalRow", "FaceLandmarks68", "evaluate_landmarks", "inter_ocular_nme",
           "box_nme", "format_eval_table"]

#: An end-to-end 68-point method: photo -> [(box (4,), landmarks (68, 2))] per face found.
FaceLandmarks68 = Callable[[np.ndarray], list[tuple[np.ndarray, np.ndarray]]]


@dataclass(frozen=True)
class LandmarkEvalRow:
    """One (method, annotation kind) cell of the report.

    Attributes:
        method: e.g. ``"mtcnn-5pt"``, ``"dlib-68pt"``.
        kind: ``"gt_manual"`` or ``"model_pred"``.
        faces: annotated faces of this kind.
        matched: faces a detection was matched to.
        nme: mean inter-ocular NME over the matched faces (NaN when none).
        nme_box: mean box-normalised NME (error / sqrt(w h) of the annotation's box).
    """

    method: str
    kind: str
    faces: int
    matched: int
    nme: float
    nme_box: float = float("nan")


def inter_ocular_nme(pred: np.ndarray, gt: np.ndarray, gt68: np.ndarray) -> float:
    """Mean Euclidean error of ``pred`` vs ``gt`` (N, 2) over the outer-eye-corner distance of
    the 68-point annotation ``gt68``."""
    iod = float(np.linalg.norm(gt68[45] - gt68[36]))
    if iod <= 0:
        raise FaceCraftError("annotation has coincident eye corners")
    return float(np.linalg.norm(np.asarray(pred) - np.asarray(gt), axis=1).mean() / iod)


def box_nme(pred: np.ndarray, gt: np.ndarray, gt68: np.ndarray | None = None) -> float:
    """Mean Euclidean error of ``pred`` vs ``gt`` (N, 2) over ``sqrt(w * h)`` of the bounding
    box of ``gt68`` (default: of ``gt``)."""
    gt = np.asarray(gt, np.float64)
    ref = gt if gt68 is None else np.asarray(gt68, np.float64)
    wh = ref.max(0) - ref.min(0)
    norm = float(np.sqrt(max(wh[0] * wh[1], 1e-12)))
    return float(np.linalg.norm(np.asarray(pred) - gt, axis=1).mean() / norm)


def _match_box(boxes: Sequence[np.ndarray], centre: np.ndarray) -> int | None:
    inside = [i for i, b in enumerate(boxes) if b[0] <= centre[0] <= b[2]
              and b[1] <= centre[1] <= b[3]]
    if not inside:
        return None
    return max(inside, key=lambda i: (boxes[i][2] - boxes[i][0]) * (boxes[i][3] - boxes[i][1]))


def _match(faces: Sequence[Face], centre: np.ndarray) -> Face | None:
    inside = [f for f in faces if f.box[0] <= centre[0] <= f.box[2]
              and f.box[1] <= centre[1] <= f.box[3]]
    if not inside:
        return None
    return max(inside, key=lambda f: f.area)


def evaluate_landmarks(annotations: str | Path, detector: Detector,
                       landmarkers: Mapping[str, Landmarker] | None = None,
                       progress: bool = False,
                       end_to_end: Mapping[str, FaceLandmarks68] | None = None
                       ) -> list[LandmarkEvalRow]:
    """Evaluate the detector's 5 points and each 68-point landmarker on an annotation file.

    Args:
        annotations: the JSON file (see the module docstring).
        detector: any :class:`~facecraft.sdk.photo.protocols.Detector` (its faces' ``box`` and
            ``landmarks5`` are used).
        landmarkers: name -> 68-point :class:`~facecraft.sdk.photo.protocols.Landmarker`.
        progress: show a progress bar over images.
        end_to_end: name -> a method with its own detection (:data:`FaceLandmarks68`).
    """
    from tqdm.auto import tqdm

    path = Path(annotations)
    try:
        images = json.loads(path.read_text())["images"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise FaceCraftError(f"{path}: not a landmark annotation file ({e})") from None
    errors: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    methods = ["mtcnn-5pt", *(landmarkers or {}), *(end_to_end or {})]
    for rel, entry in tqdm(images.items(), desc="images", disable=not progress):
        annotated = [f for f in entry.get("faces", []) if "lm68_xy" in f]
        if not annotated:
            continue
        photo = read_image(path.parent / rel)  # a large JPEG may be read reduced (scale)
        rgb = photo.to_uint8()
        found = detector.detect(rgb)
        whole = {name: fn(rgb) for name, fn in (end_to_end or {}).items()}
        for face in annotated:
            gt = np.asarray(face["lm68_xy"], np.float64) * photo.scale
            kind = face.get("kind", "unknown")
            counts[kind] += 1
            for name, result in whole.items():
                i = _match_box([b for b, _ in result], gt.mean(0))
                if i is not None:
                    pred = result[i][1]
                    errors[(name, kind)].append((inter_ocular_nme(pred, gt, gt),
                                                 box_nme(pred, gt)))
            det = _match(found, gt.mean(0))
            if det is None:
                continue
            five = five_from_68(gt)
            errors[("mtcnn-5pt", kind)].append(
                (inter_ocular_nme(det.landmarks5, five, gt), box_nme(det.landmarks5, five, gt)))
            for name, lmk in (landmarkers or {}).items():
                pred = lmk.landmarks(rgb, det.box)
                errors[(name, kind)].append((inter_ocular_nme(pred, gt, gt), box_nme(pred, gt)))
    rows = []
    for m in methods:
        for kind in sorted(counts):
            e = np.asarray(errors.get((m, kind), []), np.float64).reshape(-1, 2)
            mean = e.mean(0) if len(e) else np.full(2, np.nan)
            rows.append(LandmarkEvalRow(m, kind, counts[kind], len(e), float(mean[0]),
                                        float(mean[1])))
    return rows


def format_eval_table(rows: list[LandmarkEvalRow]) -> str:
    """The report as a Markdown table (box and inter-ocular NME)."""
    lines = ["| method | annotations | faces | matched | NME (box) | NME (inter-ocular) |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.method} | {r.kind} | {r.faces} | {r.matched} | {r.nme_box:.4f} | "
                     f"{r.nme:.4f} |")
    return "\n".join(lines)
