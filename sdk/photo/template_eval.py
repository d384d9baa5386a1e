"""Landmark accuracy on the 189-point templates of the London, Canada and WebMorph photos.

A landmarker's points rarely share a template's definitions one to one, so each named template
point (:data:`~facecraft.sdk.photo.face_sets.FRL_POINTS`) is scored against ONE fixed point of
the method, chosen on the *training* people (the method's point with the lowest mean error
there) and then scored on the *validation* people only (:func:`~facecraft.sdk.photo.face_sets.
split_of`). Errors are divided by the outer-eye-corner distance of the template (points 18/27).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .face_sets import (
    FRL_POINTS,
    TemplatePhoto,
    list_template_photos,
    outer_eye_distance,
    read_tem,
)
from .image_io import read_image

__all__ = ["PointMethod", "TemplateEvalRow", "evaluate_templates", "format_template_table"]

#: A landmarker under test: (H, W, 3) uint8 photo -> (K, 2) photo pixels, or None (no face).
PointMethod = Callable[[np.ndarray], np.ndarray | None]


@dataclass(frozen=True)
class TemplateEvalRow:
    """One method's score.

    Attributes:
        method: its name.
        people: validation people scored. photos: their photos scored; missed: photos where the
            method found no face (not in the mean).
        mean: mean error over the named points and photos, in outer-eye-distance units.
        per_point: template point index -> mean error.
        mapping: template point index -> the method's point index used for it.
    """

    method: str
    people: int
    photos: int
    missed: int
    mean: float
    per_point: dict[int, float] = field(default_factory=dict)
    mapping: dict[int, int] = field(default_factory=dict)


def _errors(pred: np.ndarray, tem: np.ndarray, names: Sequence[int]) -> np.ndarray:
    """(len(names), K) errors of every method point against every named template point."""
    d = np.linalg.norm(tem[list(names)][:, None, :] - pred[None, :, :2], axis=-1)
    return d / outer_eye_distance(tem)


def evaluate_templates(methods: dict[str, PointMethod | tuple[PointMethod, Sequence[int]]],
                       photos: str | Path, *,
                       points: Sequence[int] = tuple(FRL_POINTS),
                       progress: Callable[[str], None] | None = None) -> list[TemplateEvalRow]:
    """Score landmark methods on the template photos.

    Args:
        methods: name -> method (photo -> points or None), or ``(method, point indices)`` for a
            method that only has some of the named points (MTCNN's five).
        photos: the shared ``photos/`` folder (see :func:`list_template_photos`).
        points: template point indices to score.
        progress: called with a short line per photo.

    Returns:
        One row per method.
    """
    tems = {p.path: read_tem(p.template) for p in list_template_photos(photos) if p.template}
    # only the FRL 189-point template (the WebMorph CC0 photos use shorter ones)
    items: list[TemplatePhoto] = [p for p in list_template_photos(photos)
                                  if p.path in tems and len(tems[p.path]) == 189]
    rows = []
    for name, entry in methods.items():
        method, names = entry if isinstance(entry, tuple) else (entry, points)
        names = tuple(names)
        errs: dict[str, list[np.ndarray]] = {"train": [], "val": []}
        people: set[str] = set()
        missed = 0
        for p in items:
            pred = method(read_image(p.path).to_uint8())
            if progress:
                progress(f"{name}: {p.path.name}")
            if pred is None:
                missed += p.split == "val"
                continue
            errs[p.split].append(_errors(np.asarray(pred, np.float64), tems[p.path], names))
            if p.split == "val":
                people.add(p.person)
        train = np.stack(errs["train"])            # (P, N, K)
        mapping = train.mean(0).argmin(axis=1)     # (N,)
        val = np.stack(errs["val"])[:, np.arange(len(names)), mapping]  # (P, N)
        rows.append(TemplateEvalRow(
            name, len(people), len(val), missed, float(val.mean()),
            {int(k): float(v) for k, v in zip(names, val.mean(0), strict=True)},
            {int(k): int(v) for k, v in zip(names, mapping, strict=True)}))
    return rows


def format_template_table(rows: Sequence[TemplateEvalRow]) -> str:
    """A Markdown table: method, people, photos, missed, mean error (% of the outer-eye-corner
    distance), and the per-group errors."""
    groups = {"pupils": (0, 1), "eye corners": (18, 22, 23, 27), "brow ends": (71, 76, 77, 82),
              "nose": (55, 64, 69), "mouth": (87, 93, 90, 106), "chin": (129,)}
    head = ["method", "people", "photos", "missed", "mean %", *[f"{g} %" for g in groups]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    for r in rows:
        cells = [r.method, str(r.people), str(r.photos), str(r.missed), f"{100 * r.mean:.2f}"]
        for ids in groups.values():
            vals = [r.per_point[i] for i in ids if i in r.per_point]
            cells.append(f"{100 * np.mean(vals):.2f}" if vals else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
