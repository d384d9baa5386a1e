"""Per-vertex feature coordinates of the starter's mean face, its iBUG-68 landmarks and its
regions (internal to :mod:`facecraft.sdk.models.starter`).

:class:`_Features` carries the chart coordinates and soft masks (eyes, mouth, lips, brows, iris)
that the identity modes, expressions and albedo are built from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .starter_geometry import (
    _RF,
    ALA_A,
    EYE_AC,
    EYE_AW,
    EYE_B,
    IRIS_R,
    NOSE_BN,
    NOSE_BSN,
    PUPIL_R,
    _chart,
    _eye_fields,
    _grid_rays,
    _Layout,
    _mouth_curves,
    _sstep,
)


@dataclass(frozen=True)
class _Features:
    """Per-vertex coordinates on the mean face that the modes, landmarks and colours use."""

    pos: np.ndarray  # (V, 3) mean shape, metres
    normals: np.ndarray  # (V, 3) unit normals of the mean shape
    az: np.ndarray  # (V,) azimuth, radians
    a: np.ndarray  # (V,) face-chart coordinates, metres
    b: np.ndarray
    row: np.ndarray  # (V,) ring index; ``rows`` for the crown vertex
    front: np.ndarray  # (V,) 1 on the face front where chart coordinates are meaningful
    eye_s: np.ndarray  # (V,) -1 inner .. 1 outer canthus
    eye_t: np.ndarray  # (V,) -1 lower .. 1 upper lid margin
    eye_m: np.ndarray  # (V,) 1 inside the palpebral fissure
    mouth_s: np.ndarray  # (V,) -1 .. 1 from the right to the left mouth corner
    mouth_db: np.ndarray  # (V,) chart b above the mouth line, metres
    lower: np.ndarray  # (V,) 1 on the jaw side of the mouth line, 0 above, 0.5 in the slit
    lip_u: np.ndarray  # (V,) upper vermilion weight
    lip_l: np.ndarray  # (V,) lower vermilion weight
    slit: np.ndarray  # (V,) mouth slit (pocket) weight
    brow: np.ndarray  # (V,) eyebrow weight
    iris: np.ndarray  # (V,) iris weight (pupil included)
    pupil: np.ndarray  # (V,) pupil weight


def _features(lay: _Layout, pos: np.ndarray, normals: np.ndarray) -> _Features:
    _, az, el = _grid_rays(lay, np.zeros((2, 3)))
    a, b = _chart(az, el)
    aa = np.abs(a)
    row = np.append(np.repeat(np.arange(lay.rows), lay.cols), lay.rows)
    front = (1 - _sstep(math.radians(50), math.radians(75), np.abs(az))) * (pos[:, 2] > 0)
    s, t, m = _eye_fields(a, b, np.zeros((len(a), 3)))
    ms, _, bsto, hu, hl = _mouth_curves(a)
    db = b - bsto
    mrow = lay.row_of["m_M"]
    in_mouth = 1 - _sstep(0.85, 1.0, np.abs(ms))
    hard = np.clip(0.5 - 0.25 * (row - mrow), 0.0, 1.0)
    # below a line from the mouth corners back to the jaw joints; a hard step in the mouth
    y, z = pos[:, 1], pos[:, 2]
    height = y + 0.015 + 0.053 * np.clip(z, 0.0, 0.1) / 0.09
    k = (1 - _sstep(0.85, 1.25, np.abs(ms))) * front
    lower = k * hard + (1 - k) * _sstep(0.012, -0.014, height)
    lip_u = (row > mrow + 1) * (1 - _sstep(1.0, 1.3, db / np.maximum(hu, 1e-4))) * in_mouth
    lip_l = (row < mrow - 1) * (1 - _sstep(1.0, 1.3, -db / np.maximum(hl, 1e-4))) * in_mouth
    brow_b, thick = _brow_curve(aa)
    brow = ((1 - _sstep(0.4, 1.4, np.abs(b - brow_b) / thick)) * _sstep(0.008, 0.014, aa)
            * (1 - _sstep(0.054, 0.064, aa)) * front)
    rho = np.hypot(aa - EYE_AC, b - EYE_B - 0.0005)
    eye = (m > 0.5) * front
    return _Features(
        pos=pos, normals=normals, az=az, a=a, b=b, row=row, front=front,
        eye_s=s, eye_t=t, eye_m=m * front, mouth_s=ms * front, mouth_db=db * front,
        lower=lower, lip_u=lip_u * front, lip_l=lip_l * front,
        slit=(np.abs(row - mrow) <= 1) * in_mouth * front, brow=brow,
        iris=eye * (1 - _sstep(IRIS_R - 0.002, IRIS_R + 0.001, rho)),
        pupil=eye * (1 - _sstep(PUPIL_R - 0.0008, PUPIL_R + 0.0004, rho)),
    )


def _col(lay: _Layout, aa_target: float) -> int:
    """The subject's-right column whose chart |a| is nearest ``aa_target``."""
    half = lay.cols // 2
    ks = np.arange(half)
    aa = _RF * np.tan(np.minimum(np.abs(lay.az[half - ks]), 1.4))
    return int(half - ks[np.argmin(np.abs(aa - aa_target))])


def _brow_curve(aa):
    """Chart b of the eyebrow's centre line and its half-thickness, by chart |a|."""
    return (np.interp(aa, [0.010, 0.022, 0.040, 0.058], [0.0175, 0.024, 0.029, 0.0245]),
            np.interp(aa, [0.010, 0.058], [0.0048, 0.0024]))


def _landmark_vertices(lay: _Layout, f: _Features, mirror: np.ndarray) -> np.ndarray:
    """(68,) vertex id of each iBUG-68 landmark; the subject's right (-X) side and the midline
    are placed, the left side is their mirror image."""
    from ..photo.landmarks import IBUG68_FLIP

    cols, half, rr = lay.cols, lay.cols // 2, lay.row_of
    vid = lambda row, col: row * cols + col  # noqa: E731
    col = np.append(np.tile(np.arange(cols), lay.rows), -1)
    right = (col > 0) & (col < half) & (f.front > 0.5)
    midline = col == half

    def near_chart(a0, b0, allowed):
        return int(np.argmin(np.where(allowed, np.hypot(f.a - a0, f.b - b0), np.inf)))

    lm = np.full(68, -1, np.int64)
    # jaw contour: from in front of the right ear down the ramus and along the jaw to the chin
    th = np.linspace(0.0, np.pi / 2, 9)
    contour = np.stack([-0.0735 * np.cos(th) ** 0.9, 0.004 - 0.112 * np.sin(th) ** 1.1,
                        0.025 + 0.067 * np.sin(th) ** 1.6], -1)
    unit = f.pos / np.linalg.norm(f.pos, axis=1, keepdims=True)
    for i, p in enumerate(contour):
        score = unit @ (p / np.linalg.norm(p))
        ok = midline if i == 8 else (col > 0) & (col < half)
        lm[i] = int(np.argmax(np.where(ok, score, -2.0)))
    for i, aa in zip(range(17, 22), (0.056, 0.046, 0.035, 0.024, 0.013), strict=True):
        lm[i] = near_chart(-aa, _brow_curve(aa)[0], right)
    tip_rows = np.arange(rr["subnasale"], rr["e_lo"])
    lm[30] = vid(tip_rows[np.argmax(f.pos[vid(tip_rows, half), 2])], half)
    for i, frac in ((27, 0.0), (28, 1 / 3), (29, 2 / 3)):
        lm[i] = near_chart(0.0, NOSE_BN + frac * (f.b[lm[30]] - NOSE_BN), midline)
    lm[31] = near_chart(-(ALA_A - 0.001), NOSE_BSN + 0.003, right)
    lm[32] = near_chart(-0.006, NOSE_BSN + 0.001, right)
    lm[33] = vid(rr["subnasale"], half)
    en, ex = half - lay.col_of["en"], half - lay.col_of["ex"]
    c_out, c_in = _col(lay, EYE_AC + EYE_AW / 3), _col(lay, EYE_AC - EYE_AW / 3)
    lm[36:42] = [vid(rr["e_b2"], ex), vid(rr["e_up"], c_out), vid(rr["e_up"], c_in),
                 vid(rr["e_b2"], en), vid(rr["e_lo"], c_in), vid(rr["e_lo"], c_out)]
    ch = half - lay.col_of["ch"]
    c16, c6, c9 = _col(lay, 0.0155), _col(lay, 0.0058), _col(lay, 0.009)
    lm[[48, 49, 50, 51]] = [vid(rr["m_M"], ch), vid(rr["m_up_border"], c16),
                            vid(rr["m_up_border"], c6), vid(rr["m_up_border"], half)]
    lm[[57, 58, 59]] = [vid(rr["m_lo_border"], half), vid(rr["m_lo_border"], c6),
                        vid(rr["m_lo_border"], c16)]
    lm[[60, 61, 62, 66, 67]] = [vid(rr["m_M"], ch + 1), vid(rr["m_Ui"], c9),
                                vid(rr["m_Ui"], half), vid(rr["m_Li"], half),
                                vid(rr["m_Li"], c9)]
    todo = lm < 0
    lm[todo] = mirror[lm[np.asarray(IBUG68_FLIP)[todo]]]
    return lm


def _regions(lay: _Layout, f: _Features) -> dict[str, np.ndarray]:
    aa, b = np.abs(f.a), f.b
    eyes = f.eye_m > 0.5
    lips = (f.lip_u > 0.5) | (f.lip_l > 0.5)
    slit = f.slit > 0.5
    brows = f.brow > 0.5
    width = np.interp(b, [-0.037, -0.030, -0.020, 0.0, 0.008], [0.011, 0.019, 0.014, 0.009, 0.008])
    nose = (aa < width) & (b > NOSE_BSN - 0.001) & (b < NOSE_BN + 0.003) & (f.front > 0.5)
    face = ((f.row >= lay.row_of["menton"] - 2) & (f.row <= lay.row_of["hairline"])
            & (np.abs(f.az) <= math.radians(80)))
    ids = lambda m: np.flatnonzero(m).astype(np.int32)  # noqa: E731
    return {
        "face": ids(face), "skin": ids(face & ~eyes & ~lips & ~slit & ~brows),
        "eye_left": ids(eyes & (f.pos[:, 0] > 0)), "eye_right": ids(eyes & (f.pos[:, 0] < 0)),
        "mouth_interior": ids(slit), "lips": ids(lips), "brows": ids(brows), "nose": ids(nose),
        "back_of_head": ids(~face),
    }
