"""The consented photo sets with 189-point templates, and the person-disjoint split.

The Face Research Lab London set (neutral ``NNN_03`` and smiling ``NNN_08`` photos of each
person) and Canada set (``NNNf/m``), both CC BY 4.0, and the CC0 WebMorph photos come with
Psychomorph/WebMorph templates (``.tem``: the point count, then ``x y`` per line in pixels, then
line definitions). Their point names are the FRL template's (webmorphR, ``tem_defs/FRL.csv``):
"left" there means the IMAGE's left, i.e. the subject's right.

:func:`split_of` assigns whole people to ``"train"`` or ``"val"`` from a hash of the person id,
so a person's neutral and smiling photos always fall on the same side, and the split does not
move when photos are added or removed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError

__all__ = ["TemplatePhoto", "read_tem", "split_of", "list_template_photos", "FRL_POINTS",
           "outer_eye_distance"]

#: Named FRL template points used for scoring (index -> name; "left" = image left).
FRL_POINTS: dict[int, str] = {
    0: "left pupil", 1: "right pupil",
    18: "outer corner of left eye", 22: "inner corner of left eye",
    23: "inner corner of right eye", 27: "outer corner of right eye",
    71: "outer end of left brow", 76: "inner end of left brow",
    77: "inner end of right brow", 82: "outer end of right brow",
    55: "subnasale (bottom centre of nose)",
    64: "bottom of left nostril", 69: "bottom of right nostril",
    87: "left mouth corner", 93: "right mouth corner",
    90: "centre of top of upper lip", 106: "centre of bottom of lower lip",
    129: "bottom centre of chin",
}

#: How often a person lands in validation: 1 in this many (by hash).
_VAL_EVERY = 4


@dataclass(frozen=True)
class TemplatePhoto:
    """One photo of a set.

    Attributes:
        path: the image file.
        person: person id, unique across sets (``"london/001"``, ``"canada/003f"``).
        expression: ``"neutral"`` or ``"smiling"``.
        template: the ``.tem`` file beside it, or None (smiling London photos have none).
    """

    path: Path
    person: str
    expression: str
    template: Path | None

    @property
    def split(self) -> str:
        return split_of(self.person)


def split_of(person: str) -> str:
    """``"val"`` or ``"train"`` for a person id, stable across runs and machines."""
    h = int.from_bytes(hashlib.sha256(person.encode()).digest()[:8], "big")
    return "val" if h % _VAL_EVERY == 0 else "train"


def read_tem(path: str | Path) -> np.ndarray:
    """(N, 2) float64 pixel points of a Psychomorph/WebMorph ``.tem`` file."""
    lines = Path(path).read_text().split("\n")
    try:
        n = int(lines[0].strip())
        pts = np.array([[float(v) for v in line.split()[:2]] for line in lines[1:1 + n]])
    except (ValueError, IndexError) as e:
        raise InvalidInputError(f"{path} is not a .tem template ({e})") from e
    if pts.shape != (n, 2):
        raise InvalidInputError(f"{path}: expected {n} points, got {pts.shape}")
    return pts


def outer_eye_distance(tem: np.ndarray) -> float:
    """The outer-eye-corner distance of a 189-point template (points 18 and 27), pixels."""
    return float(np.linalg.norm(tem[27] - tem[18]))


def list_template_photos(photos: str | Path) -> list[TemplatePhoto]:
    """The London, Canada and WebMorph CC0 photos under a ``photos/`` folder, sorted.

    Args:
        photos: the folder holding ``london-faces/``, ``canada-faces/``, ``webmorph-cc0/``.
    """
    root = Path(photos)
    out: list[TemplatePhoto] = []
    for expr in ("neutral", "smiling"):
        for p in sorted((root / "london-faces" / expr).glob("*.jpg")):
            tem = p.with_suffix(".tem")
            out.append(TemplatePhoto(p, f"london/{p.stem.split('_')[0]}", expr,
                                     tem if tem.is_file() else None))
    for p in sorted((root / "canada-faces").glob("*.jpg")):
        tem = p.with_suffix(".tem")
        out.append(TemplatePhoto(p, f"canada/{p.stem}", "neutral", tem if tem.is_file() else None))
    for p in sorted((root / "webmorph-cc0").glob("*/*.jpg")):
        tem = p.with_suffix(".tem")
        out.append(TemplatePhoto(p, f"webmorph/{p.parent.name}", "neutral",
                                 tem if tem.is_file() else None))
    return out
