"""Landmark accuracy on annotated photos: NME per landmarker, ground truth and model-prediction
annotations reported apart.

The annotation file is the layout of ``../shared/assets/landmarks68.json``::

    {"images": {"photos/x.png": {"faces": [{"kind": "gt_manual" | "model_pred",
                                            "lm68_xy": [[x, y] * 68]}, ...]}, ...}}

with paths relative to the file's folder. Each annotated face is matched to the detection whose
box holds its landmarks' centre (the largest such box); a face with no matching detection counts
as missed. NME is the mean point-to-point error divided by the inter-ocular distance (outer eye
corners, iBUG 36 and 45: the 300-W convention). The 5-point detector landmarks are compared with
the 5 points derived from the 68 annotations (eye centres, nose tip, mouth corners).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facecraft.sdk.errors import FaceCraftError
from facecraft.sdk.photo.align import five_from_68
from facecraft.sdk.photo.detection import Face
from facecraft.sdk.photo.image_io import read_image
from facecraft.sdk.photo.protocols import Detector, Landmarker

__all__ = ["LandmarkEvalRow", "evaluate_landmarks", "inter_ocular_nme", "format_eval_table"]


@dataclass(frozen=True)
class LandmarkEvalRow:
    """One (method, annotation kind) cell of the report.

    Attributes:
        method: e.g. ``"mtcnn-5pt"``, ``"dlib-68pt"``.
        kind: ``"gt_manual"`` or ``"model_pred"``.
        faces: annotated faces of this kind.
        matched: faces a detection was matched to.
        nme: mean NME over the matched faces (NaN when none).
    """

    method: str
    kind: str
    faces: int
    matched: int
    nme: float


def inter_ocular_nme(pred: np.ndarray, gt: np.ndarray, gt68: np.ndarray) -> float:
    """Mean Euclidean error of ``pred`` vs ``gt`` (N, 2) over the outer-eye-corner distance of
    the 68-point annotation ``gt68``."""
    iod = float(np.linalg.norm(gt68[45] - gt68[36]))
    if iod <= 0:
        raise FaceCraftError("annotation has coincident eye corners")
    return float(np.linalg.norm(np.asarray(pred) - np.asarray(gt), axis=1).mean() / iod)


def _match(faces: Sequence[Face], centre: np.ndarray) -> Face | None:
    inside = [f for f in faces if f.box[0] <= centre[0] <= f.box[2]
              and f.box[1] <= centre[1] <= f.box[3]]
    if not inside:
        return None
    return max(inside, key=lambda f: f.area)


def evaluate_landmarks(annotations: str | Path, detector: Detector,
                       landmarkers: Mapping[str, Landmarker] | None = None,
                       progress: bool = False) -> list[LandmarkEvalRow]:
    """Evaluate the detector's 5 points and each 68-point landmarker on an annotation file.

    Args:
        annotations: the JSON file (see the module docstring).
        detector: any :class:`~facecraft.sdk.photo.protocols.Detector` (its faces' ``box`` and
            ``landmarks5`` are used).
        landmarkers: name -> 68-point :class:`~facecraft.sdk.photo.protocols.Landmarker`.
        progress: show a progress bar over images.
    """
    from tqdm.auto import tqdm

    path = Path(annotations)
    try:
        images = json.loads(path.read_text())["images"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise FaceCraftError(f"{path}: not a landmark annotation file ({e})") from None
    errors: dict[tuple[str, str], list[float]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    methods = ["mtcnn-5pt", *(landmarkers or {})]
    for rel, entry in tqdm(images.items(), desc="images", disable=not progress):
        annotated = [f for f in entry.get("faces", []) if "lm68_xy" in f]
        if not annotated:
            continue
        photo = read_image(path.parent / rel)  # a large JPEG may be read reduced (scale)
        rgb = photo.to_uint8()
        found = detector.detect(rgb)
        for face in annotated:
            gt = np.asarray(face["lm68_xy"], np.float64) * photo.scale
            kind = face.get("kind", "unknown")
            counts[kind] += 1
            det = _match(found, gt.mean(0))
            if det is None:
                continue
            errors[("mtcnn-5pt", kind)].append(
                inter_ocular_nme(det.landmarks5, five_from_68(gt), gt))
            for name, lmk in (landmarkers or {}).items():
                errors[(name, kind)].append(
                    inter_ocular_nme(lmk.landmarks(rgb, det.box), gt, gt))
    rows = []
    for m in methods:
        for kind in sorted(counts):
            e = errors.get((m, kind), [])
            rows.append(LandmarkEvalRow(m, kind, counts[kind], len(e),
                                        float(np.mean(e)) if e else float("nan")))
    return rows


def format_eval_table(rows: list[LandmarkEvalRow]) -> str:
    """The report as an aligned text table."""
    head = f"{'method':<12} {'annotations':<12} {'faces':>5} {'matched':>7} {'NME (IOD)':>10}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.method:<12} {r.kind:<12} {r.faces:>5} {r.matched:>7} {r.nme:>10.4f}")
    return "\n".join(lines)
