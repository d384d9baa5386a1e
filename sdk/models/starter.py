"""FaceCraft's built-in starter morphable model, generated procedurally from code.

``facecraft create photo.jpg`` must work on a fresh machine with no downloaded model, and no
third-party model data may ship with FaceCraft, so the default model is *generated*: a head
surface on a UV grid with sculpted features, hand-designed anthropometric identity modes with
slider names, the 53 ARKit-style expression blendshapes under ICT-FaceKit's names, and a small
per-vertex albedo model. It is honestly a starter (and the default game-character rig); real
work imports ICT-FaceKit (:mod:`facecraft.sdk.models.importers.ict`).

Construction (deterministic, vectorized NumPy; no randomness, about 0.2 s):

* **Grid.** ``rows`` rings from the neck stump to near the crown, ``cols`` vertices per ring,
  plus one crown vertex. Each vertex is a ray from the origin (the head's centre) at an azimuth
  (0 = straight ahead, +90 deg = +X = the subject's left) and an elevation. Columns crowd in the
  face; rows follow *guide curves* (lid margins, lip lines, nose, brows...), so feature edges lie
  on grid lines and every vertex keeps its anatomical meaning under every mode.
* **Surface.** Each ray's length is where it leaves a loft of horizontal superellipse sections
  (profile and widths from anthropometry), plus radial relief for the nose, sockets, brow ridge,
  cheekbones, lips and chin; eyeballs (a globe and a cornea) show through the palpebral fissure
  between lids. The mouth is a closed slit with a shallow pocket, so ``jawOpen`` opens it.
* **UVs.** Per-corner: ``u`` = column / cols (seam at the back of the head), ``v`` = row / rows;
  the face, sampled densely, covers most of the layout.

Frame and units follow :mod:`facecraft.sdk.models.morphable_model`: metres, right-handed, +Y up, the
face looking down +Z, origin near the centre of the head. ``_L`` names are the subject's left
(+X). Identity coefficients are unit-variance: a coefficient of 1 is about one population
standard deviation of the named measurement. Approximate spreads used (adults, sexes pooled,
after Farkas' North-American norms and similar tables; all values are rounded and approximate):

======================  ==================================================  =========
slider                  measurement                                          1 sd
======================  ==================================================  =========
face_width              bizygomatic width (zy-zy), ~137 mm                   6 mm
face_length             nasion-gnathion (n-gn), ~117 mm                      6 mm
head_width              head breadth (eu-eu), ~150 mm                        5.5 mm
head_depth              head length (g-op), ~190 mm                          6.5 mm
forehead_height         trichion-nasion (tr-n), ~60 mm                       6 mm
forehead_slope          forehead inclination                                 4 deg
brow_ridge              glabella / brow-ridge prominence                     1.5 mm
cheekbone_height        malar prominence, vertical position                  3 mm
cheekbone_width         malar prominence, lateral/forward                    2.5 mm
cheek_fullness          buccal soft tissue                                   3 mm
jaw_width               bigonial width (go-go), ~100 mm                      5.5 mm
chin_length             stomion-gnathion (sto-gn), ~48 mm                    3.5 mm
chin_width              chin breadth                                         2.5 mm
chin_protrusion         pogonion projection                                  3 mm
eye_size                palpebral fissure length (en-ex), ~30 mm             1.5 mm
eye_spacing             intercanthal width (en-en), ~32 mm                   2.5 mm
eye_height              eye level within the face                            2.5 mm
eye_tilt                canthal tilt                                         3 deg
eye_depth               globe projection (exophthalmometry)                  2 mm
nose_length             nasion-subnasale (n-sn), ~52 mm                      3.5 mm
nose_width              alar width (al-al), ~33 mm                           2.5 mm
nose_bridge_height      dorsum projection                                    2 mm
nose_tip_projection     subnasale-pronasale (sn-prn), ~20 mm                 2 mm
nose_tip_height         tip rotation (vertical)                              2 mm
nostril_flare           alar flare                                           1.5 mm
mouth_width             cheilion-cheilion (ch-ch), ~51 mm                    3.5 mm
mouth_height            subnasale-stomion (sn-sto), ~22 mm                   2 mm
lip_fullness_upper      upper vermilion height (ls-sto), ~9 mm               1.5 mm
lip_fullness_lower      lower vermilion height (sto-li), ~10 mm              1.6 mm
lip_protrusion          lip projection                                       2 mm
ear_size                ear length (sa-sba), ~62 mm                          4 mm
======================  ==================================================  =========

Each identity mode is a smooth, localized, left-right symmetric displacement field, scaled at
build time so that its measurement on the mean face changes by the sd above per unit.
Expression modes are blendshape deltas at weight 1 (``expression_kind="blendshape"``).
Albedo modes are unit-variance per-vertex colour changes (linear RGB); see
:data:`ALBEDO_SLIDERS`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import PchipInterpolator

from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.models.morphable_model import MorphableModel, landmarks_from_vertices

__all__ = [
    "STARTER_VERSION",
    "StarterSettings",
    "IDENTITY_SLIDERS",
    "EXPRESSION_NAMES",
    "ALBEDO_SLIDERS",
    "build_starter_model",
]

#: Version of the generated data; bump it whenever the output of the default build changes.
STARTER_VERSION = "1.0"

#: Identity slider names in basis order, each with its sd (metres, or degrees for angles).
_IDENTITY_SD: dict[str, float] = {
    "face_width": 0.006, "face_length": 0.006, "head_width": 0.0055, "head_depth": 0.0065,
    "forehead_height": 0.006, "forehead_slope": 4.0, "brow_ridge": 0.0015,
    "cheekbone_height": 0.003, "cheekbone_width": 0.0025, "cheek_fullness": 0.003,
    "jaw_width": 0.0055, "chin_length": 0.0035, "chin_width": 0.0025, "chin_protrusion": 0.003,
    "eye_size": 0.0015, "eye_spacing": 0.0025, "eye_height": 0.0025, "eye_tilt": 3.0,
    "eye_depth": 0.002, "nose_length": 0.0035, "nose_width": 0.0025,
    "nose_bridge_height": 0.002, "nose_tip_projection": 0.002, "nose_tip_height": 0.002,
    "nostril_flare": 0.0015, "mouth_width": 0.0035, "mouth_height": 0.002,
    "lip_fullness_upper": 0.0015, "lip_fullness_lower": 0.0016, "lip_protrusion": 0.002,
    "ear_size": 0.004,
}
#: Human-readable identity slider names, in basis order (see the module docstring's table).
IDENTITY_SLIDERS: tuple[str, ...] = tuple(_IDENTITY_SD)

#: ICT-FaceKit's 53 ARKit-style expression names, in ICT's order (``_L`` = subject's left, +X).
EXPRESSION_NAMES: tuple[str, ...] = (
    "browDown_L", "browDown_R", "browInnerUp_L", "browInnerUp_R", "browOuterUp_L",
    "browOuterUp_R", "cheekPuff_L", "cheekPuff_R", "cheekSquint_L", "cheekSquint_R",
    "eyeBlink_L", "eyeBlink_R", "eyeLookDown_L", "eyeLookDown_R", "eyeLookIn_L", "eyeLookIn_R",
    "eyeLookOut_L", "eyeLookOut_R", "eyeLookUp_L", "eyeLookUp_R", "eyeSquint_L", "eyeSquint_R",
    "eyeWide_L", "eyeWide_R", "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose",
    "mouthDimple_L", "mouthDimple_R", "mouthFrown_L", "mouthFrown_R", "mouthFunnel", "mouthLeft",
    "mouthLowerDown_L", "mouthLowerDown_R", "mouthPress_L", "mouthPress_R", "mouthPucker",
    "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthSmile_L", "mouthSmile_R", "mouthStretch_L", "mouthStretch_R", "mouthUpperUp_L",
    "mouthUpperUp_R", "noseSneer_L", "noseSneer_R",
)

#: Albedo slider names in basis order; one unit is about one sd (linear RGB).
ALBEDO_SLIDERS: tuple[str, ...] = (
    "skin_tone", "skin_warmth", "skin_saturation", "cheek_redness", "lip_colour",
    "brow_darkness", "iris_colour", "beard_shadow", "eye_shadow",
)

_LICENCE = "Apache-2.0 (generated by FaceCraft; no third-party data)"


# ----------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class StarterSettings:
    """How to generate the starter model (the defaults make FaceCraft's default model).

    Attributes:
        rows: rings of vertices from the neck stump to near the crown (>= 48). More rows add
            detail between the feature guide curves; the guides themselves are fixed.
        cols: vertices per ring, even (>= 64); more than half of them lie within 55 deg of
            straight ahead.
            ``rows * cols + 1`` vertices in all (64 x 96: 6,145 vertices, 12,192 triangles).
        jaw_open_deg: rotation of the jaw about the jaw joint at ``jawOpen = 1``, degrees
            in (0, 40].
        gaze_deg: rotation of the iris at ``eyeLook* = 1``, degrees in (0, 45].
        name: the model's ``name``.
    """

    rows: int = 64
    cols: int = 96
    jaw_open_deg: float = 18.0
    gaze_deg: float = 25.0
    name: str = "facecraft-starter"

    def __post_init__(self) -> None:
        def bad(field_name: str, expected: str) -> InvalidInputError:
            return InvalidInputError(f"StarterSettings.{field_name} must be {expected}, "
                                     f"got {getattr(self, field_name)!r}")

        for field_name in ("rows", "cols"):
            val = getattr(self, field_name)
            if not isinstance(val, int) or isinstance(val, bool):
                raise TypeError(f"StarterSettings.{field_name} must be an int, got {val!r}")
        if not _MIN_ROWS <= self.rows <= 1024:
            raise bad("rows", f"in [{_MIN_ROWS}, 1024]")
        if not (_MIN_COLS <= self.cols <= 2048 and self.cols % 2 == 0):
            raise bad("cols", f"even and in [{_MIN_COLS}, 2048]")
        if not 0.0 < float(self.jaw_open_deg) <= 40.0:
            raise bad("jaw_open_deg", "in (0, 40] degrees")
        if not 0.0 < float(self.gaze_deg) <= 45.0:
            raise bad("gaze_deg", "in (0, 45] degrees")
        if not isinstance(self.name, str) or not self.name:
            raise bad("name", "a non-empty string")


# ----------------------------------------------------------------------------- small helpers
def _sstep(e0, e1, x):
    """Smoothstep from 0 at ``e0`` to 1 at ``e1`` (either order)."""
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _gauss(*u):
    return np.exp(-sum(np.square(x) for x in u))


def _smin(a, b, k):
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def _smax(a, b, k):
    return -_smin(-a, -b, k)


def _allocate(total: int, mins, weights) -> np.ndarray:
    """Split ``total`` intervals: each gets its minimum plus a share of the rest by weight."""
    mins = np.asarray(mins, np.int64)
    w = np.asarray(weights, np.float64)
    extra = total - int(mins.sum())
    share = extra * w / w.sum()
    base = np.floor(share).astype(np.int64)
    order = np.argsort(-(share - base), kind="stable")
    base[order[: extra - int(base.sum())]] += 1
    return mins + base


def _rotate(p, pivot, axis, angle):
    """Rotate points ``p`` (n, 3) about ``axis`` through ``pivot`` by per-point ``angle``."""
    k = np.asarray(axis, np.float64) / np.linalg.norm(axis)
    q = p - pivot
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    return pivot + q * c + np.cross(k, q) * s + k * (q @ k)[:, None] * (1 - c)


# ----------------------------------------------------------------------------- design constants
# Face-chart coordinates (a, b): where a vertex's ray crosses the plane z = _RF, in metres;
# close to true x, y on the front of the face.
_RF = 0.09
EYE_EN, EYE_EX, EYE_B = 0.0180, 0.0545, 0.0005  # chart canthi (|a|) and eye level (b)
EYE_AC, EYE_AW = (EYE_EN + EYE_EX) / 2, (EYE_EX - EYE_EN) / 2
EYE_HU, EYE_HL, EYE_TILT = 0.0058, 0.0042, 0.0014  # fissure half-heights, canthal tilt
EYE_GAP, EYE_RELAX, LID_T = 0.0008, 0.006, 0.0018  # lid margin width, band spread, thickness
EYE_R, EYE_RX = 0.0120, 0.0185  # globe radius; wider horizontally to carry the canthi
CORNEA_R, CORNEA_H, EYE_APEX_Z = 0.0078, 0.0022, 0.0855
IRIS_R, PUPIL_R = 0.0058, 0.0022
MOUTH_A, MOUTH_B, MOUTH_DROP = 0.0255, -0.0590, 0.0075  # chart corner |a|, stomion b, curve
LIP_HU, LIP_HL, MOUTH_G = 0.0095, 0.0085, 0.00015  # vermilion heights, slit half-width
MOUTH_RELAX_UP, MOUTH_RELAX_LO, MOUTH_DEPTH = 0.006, 0.007, 0.011
NOSE_BN, NOSE_BT, NOSE_BSN = 0.006, -0.021, -0.036  # chart nasion, tip, subnasale
ALA_A, ALA_B = 0.0135, -0.029
EAR_AZ, EAR_EL = math.radians(97.0), math.radians(-2.0)
JAW_PIVOT = np.array([0.0, -0.008, 0.004])
_NECK_CUT = 0.155  # depth of the neck stump below the origin, metres


def _eye_centre() -> np.ndarray:
    """Centre of the subject's left (+X) globe, metres."""
    apex = np.array([EYE_AC, EYE_B, _RF]) * EYE_APEX_Z / _RF
    return apex - np.array([0.0, 0.0, EYE_R + CORNEA_H])


def _eye_curves(a, lids):
    """Fissure geometry per column. ``lids`` (n, 3): upper-lid closure, upper-lid raise,
    lower-lid raise. Returns s (-1 inner .. 1 outer canthus), centre line b, lower and upper
    half-heights."""
    s = (np.abs(a) - EYE_AC) / EYE_AW
    sc = np.clip(s, -1, 1)
    env = np.clip(1 - s * s, 0, None)
    hu0 = EYE_HU * env ** 0.6 * (1 - 0.15 * sc)
    hl0 = EYE_HL * env ** 0.75 * (1 + 0.1 * sc)
    close, raise_u, raise_l = lids[..., 0], lids[..., 1], lids[..., 2]
    hl = hl0 * (1 - 0.35 * raise_l)
    hu = hu0 + 0.0025 * raise_u * env ** 0.6
    hu = hu - close * (hu + hl) * 0.97
    return s, EYE_B + EYE_TILT * sc, hl, hu


def _eye_fields(a, b, lids):
    """Per-vertex eye coordinates: s, t (-1 lower .. 1 upper lid margin) and the fissure mask."""
    s, bc, hl, hu = _eye_curves(a, lids)
    q = np.maximum(bc - hl - b, b - bc - hu)
    m = (1 - _sstep(0.0, EYE_GAP, q)) * (1 - _sstep(0.9, 1.0, np.abs(s)))
    t = (b - bc - 0.5 * (hu - hl)) / np.maximum(0.5 * (hu + hl), 1e-5)
    return s, t, m


def _eye_band(a, lids):
    """(7, n) chart b of the eye-band rows: lower lid skin, lower margin, 3 globe rows, upper
    margin, upper lid skin; squeezed at the canthi and relaxed away from the eye."""
    s, bc, hl, hu = _eye_curves(a, lids)
    hmin = 0.00015
    hl, hu = np.maximum(hl, hmin), np.maximum(hu, -hl + 2 * hmin)
    lo, up = bc - hl, bc + hu
    inner = np.stack([lo - EYE_GAP, lo, lo + 0.25 * (up - lo), lo + 0.5 * (up - lo),
                      lo + 0.75 * (up - lo), up, up + EYE_GAP])
    relaxed = bc + np.linspace(-EYE_RELAX, EYE_RELAX, 7)[:, None] * np.ones_like(a)
    r = _sstep(1.0, 1.8, np.abs(s))
    return inner * (1 - r) + relaxed * r


def _mouth_curves(a):
    """Mouth geometry per column: s (-1..1 corner to corner), envelope, stomion b, upper and
    lower vermilion heights."""
    s = a / MOUTH_A
    env = np.clip(1 - s * s, 0, None)
    sc = np.clip(s, -1.3, 1.3)
    bsto = MOUTH_B - MOUTH_DROP * sc * sc
    cupid = 0.0010 * _gauss((np.abs(a) - 0.0055) / 0.003) - 0.0008 * _gauss(a / 0.0025)
    return s, env, bsto, (LIP_HU + cupid) * env ** 0.45, LIP_HL * env ** 0.55


def _mouth_band(a):
    """(9, n) chart b of the mouth-band rows: lower vermilion border, lower lip, lower inner
    lip edge, 3 rows of the mouth pocket, upper inner lip edge, upper lip, upper vermilion
    border. The pocket rows coincide at rest and open with the jaw."""
    s, env, bsto, hu, hl = _mouth_curves(a)
    hu, hl = np.maximum(hu, 4 * MOUTH_G), np.maximum(hl, 4 * MOUTH_G)
    g = MOUTH_G
    inner = np.stack([bsto - hl, bsto - 0.5 * hl, bsto - g, bsto - 0.5 * g, bsto,
                      bsto + 0.5 * g, bsto + g, bsto + 0.5 * hu, bsto + hu])
    offs = np.array([-1, -0.75, -0.5, -0.25, 0, 0.25, 0.5, 0.75, 1]) * np.where(
        np.arange(9) < 4, MOUTH_RELAX_LO, MOUTH_RELAX_UP)
    relaxed = bsto + offs[:, None] * np.ones_like(a)
    r = _sstep(1.0, 1.7, np.abs(s))
    return inner * (1 - r) + relaxed * r


# ----------------------------------------------------------------------------- grid layout
_GUIDES = (  # name, min row intervals to the next guide, weight for the spare rows
    ("neck", 4, 3.0), ("menton", 3, 2.0), ("labiomental", 2, 0.6),
    ("m_lo_border", 1, 0), ("m_lo_mid", 1, 0), ("m_Li", 1, 0), ("m_Li2", 1, 0), ("m_M", 1, 0),
    ("m_Ui2", 1, 0), ("m_Ui", 1, 0), ("m_up_mid", 1, 0), ("m_up_border", 2, 0.8),
    ("subnasale", 2, 0.4), ("nose_tip", 4, 1.6),
    ("e_lo_skin", 1, 0), ("e_lo", 1, 0), ("e_b1", 1, 0), ("e_b2", 1, 0), ("e_b3", 1, 0),
    ("e_up", 1, 0), ("e_up_skin", 3, 1.2), ("brow", 3, 1.0), ("forehead", 2, 1.0),
    ("hairline", 3, 1.5), ("crown1", 3, 1.5), ("crown2", 0, 0),
)
_GUIDE_NAMES = tuple(g[0] for g in _GUIDES)
_FACE_B = {"menton": -0.108, "labiomental": -0.080, "subnasale": -0.038, "nose_tip": -0.022,
           "brow": 0.022, "forehead": 0.045, "hairline": 0.075}
# elevation (degrees) of each guide away from the face (|azimuth| > 80 deg); the neck's is
# replaced by a horizontal cut at y = -_NECK_CUT
_SIDE_EL = np.array([-74, -42, -30, -22, -20.5, -19, -18.5, -18, -17.5, -17, -15.5, -14, -10,
                     -6, -3, -1.5, 0, 1.5, 3, 4.5, 6, 13, 22, 33, 58, 86.0])
_COL_KNOTS = (  # name, chart |a| (metres) or azimuth (degrees), min col intervals, weight
    ("mid", 0.0, 4, 1.6), ("en", EYE_EN, 3, 0.9), ("ch", MOUTH_A, 2, 0.6),
    ("ac", EYE_AC, 4, 1.5), ("ex", EYE_EX, 5, 2.5), ("zy", 55.0, 5, 2.5),
    ("ear", 90.0, 6, 3.5), ("back", 180.0, 0, 0),
)
_MIN_ROWS = 48
_MIN_COLS = max(64, 2 * sum(k[2] for k in _COL_KNOTS))
assert sum(g[1] for g in _GUIDES) + 1 <= _MIN_ROWS


@dataclass(frozen=True)
class _Layout:
    rows: int
    cols: int
    az: np.ndarray  # (cols,) azimuth of each column, radians; cols // 2 is the midline
    row_of: dict[str, int]  # guide name -> row index
    col_of: dict[str, int]  # column knot name -> column offset from the midline


def _layout(rows: int, cols: int) -> _Layout:
    half = cols // 2
    counts = _allocate(half, [k[2] for k in _COL_KNOTS[:-1]], [k[3] for k in _COL_KNOTS[:-1]])
    cknots = np.concatenate([[0], np.cumsum(counts)])
    az_k = np.array([math.atan2(v, _RF) if v < 1 else math.radians(v)
                     for _, v, _, _ in _COL_KNOTS])
    az_half = PchipInterpolator(cknots, az_k)(np.arange(half + 1))
    az = np.concatenate([-az_half[half:0:-1], az_half[:half]])
    az[0] = -np.pi
    rcounts = _allocate(rows - 1, [g[1] for g in _GUIDES[:-1]], [g[2] for g in _GUIDES[:-1]])
    rknots = np.concatenate([[0], np.cumsum(rcounts)])
    return _Layout(rows, cols, az, dict(zip(_GUIDE_NAMES, rknots.tolist(), strict=True)),
                   {k[0]: int(c) for k, c in zip(_COL_KNOTS, cknots, strict=True)})


def _chart(az, el):
    azc = np.clip(az, -1.4, 1.4)
    return _RF * np.tan(azc), _RF * np.tan(np.clip(el, -1.4, 1.4)) / np.cos(azc)


def _row_elevations(lay: _Layout, lids: np.ndarray) -> np.ndarray:
    """(rows, cols) elevation of every ring vertex; ``lids`` (2, 3): right, left eye state."""
    az = lay.az
    a = _RF * np.tan(np.clip(az, -1.4, 1.4))
    face_b = {k: np.full_like(a, v) for k, v in _FACE_B.items()}
    face_b.update(zip(_GUIDE_NAMES[3:12], _mouth_band(a), strict=True))
    lid_col = np.where((a > 0)[:, None], lids[1][None], lids[0][None])
    face_b.update(zip(_GUIDE_NAMES[14:21], _eye_band(a, lid_col), strict=True))
    wf = 1 - _sstep(math.radians(35), math.radians(80), np.abs(az))
    cos_az = np.cos(np.clip(az, -1.4, 1.4))
    el = np.stack([
        wf * np.arctan(face_b[n] * cos_az / _RF) + (1 - wf) * math.radians(_SIDE_EL[k])
        if n in face_b else np.full_like(az, math.radians(_SIDE_EL[k]))
        for k, n in enumerate(_GUIDE_NAMES)])
    # the neck stump ends on a horizontal cut
    neck_r = np.interp(np.abs(az), [0.0, np.pi / 2, np.pi], [0.044, 0.053, 0.068])
    el[0] = -np.arctan2(_NECK_CUT, neck_r)
    el = np.maximum.accumulate(el + np.arange(len(el))[:, None] * 1e-7, axis=0)
    knots = np.array([lay.row_of[n] for n in _GUIDE_NAMES])
    return PchipInterpolator(knots, el, axis=0)(np.arange(lay.rows))


# ----------------------------------------------------------------------------- surface
# Horizontal sections of the head keyed by height y (metres): front z, back z, half-width, taper
# of the width towards the front, front superellipse exponent. An elliptic dome closes the top.
_LOFT_Y = np.array([-0.26, -0.15, -0.132, -0.122, -0.114, -0.106, -0.098, -0.088, -0.076,
                    -0.057, -0.040, -0.020, 0.0, 0.020, 0.040, 0.050])
_LOFT = np.array([
    [0.040, -0.068, 0.052, 0.10, 2.2],
    [0.042, -0.068, 0.053, 0.10, 2.2],
    [0.045, -0.068, 0.054, 0.15, 2.2],
    [0.052, -0.068, 0.056, 0.25, 2.3],
    [0.072, -0.068, 0.058, 0.45, 2.4],
    [0.089, -0.068, 0.060, 0.58, 2.5],
    [0.095, -0.068, 0.061, 0.55, 2.6],
    [0.097, -0.070, 0.062, 0.45, 2.7],
    [0.0995, -0.074, 0.064, 0.35, 2.8],
    [0.1015, -0.084, 0.066, 0.28, 2.8],
    [0.1005, -0.092, 0.068, 0.22, 2.7],
    [0.095, -0.097, 0.0685, 0.18, 2.5],
    [0.0905, -0.099, 0.071, 0.15, 2.4],
    [0.094, -0.100, 0.0745, 0.12, 2.3],
    [0.0935, -0.100, 0.076, 0.10, 2.3],
    [0.0935, -0.100, 0.076, 0.10, 2.3],
])
_LOFT_C = -0.005  # z of the widest point of every section
_DOME_Y0, _DOME_TOP, _DOME_M = 0.040, 0.114, 2.0
_LOFT_FN = PchipInterpolator(_LOFT_Y, _LOFT, axis=0)


def _loft_value(p):
    """Implicit base head: < 0 inside, > 0 outside (not a distance)."""
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    prm = _LOFT_FN(np.clip(y, _LOFT_Y[0], _DOME_Y0))
    zf, zb, w, taper, nf = (prm[..., k] for k in range(5))
    u = np.clip((y - _DOME_Y0) / (_DOME_TOP - _DOME_Y0), 0.0, 1.0)
    f = np.maximum(1.0 - u ** _DOME_M, 1e-8) ** (1.0 / _DOME_M)
    zeta = (z - _LOFT_C) / np.where(z > _LOFT_C, (zf - _LOFT_C) * f, (_LOFT_C - zb) * f)
    wz = w * f * (1.0 - taper * np.clip(zeta, 0.0, 1.0) ** 2)
    n = np.where(zeta > 0, nf, 2.2)
    val = (np.abs(x) / wz) ** n + np.abs(zeta) ** n - 1.0
    return np.where(y >= _DOME_TOP, 1.0, val)


def _raycast(dirs):
    """Distance from the origin to the base head along unit rays (n, 3), by bisection."""
    lo = np.full(len(dirs), 0.005)
    hi = np.full(len(dirs), 0.40)
    for _ in range(26):
        mid = 0.5 * (lo + hi)
        out = _loft_value(mid[:, None] * dirs) > 0
        hi = np.where(out, mid, hi)
        lo = np.where(out, lo, mid)
    return 0.5 * (lo + hi)


def _ray_ellipsoid(dirs, c, radii):
    """Far intersection of unit rays from the origin with an axis-aligned ellipsoid, -1 on a
    miss."""
    d = dirs / radii
    cc = np.asarray(c) / radii
    dd = np.einsum("ij,ij->i", d, d)
    dc = d @ cc
    disc = dc * dc - dd * (cc @ cc - 1.0)
    return np.where(disc > 0, (dc + np.sqrt(np.maximum(disc, 0.0))) / dd, -1.0)


def _lip_profile(t):
    return np.clip(1 - ((t - 0.45) / 0.65) ** 2, 0, None) ** 0.6


def _skin_relief(a, b, az):
    """Radial offset (metres) of the skin features over the base head, by chart coords."""
    aa = np.abs(a)
    r = -0.009 * _gauss((aa - EYE_AC) / 0.021, (b - 0.003) / np.where(b > 0.003, 0.017, 0.011))
    r += 0.0035 * _gauss((b - 0.022) / 0.009) * np.exp(-((aa / 0.055) ** 4))  # brow ridge
    r += 0.0015 * _gauss(aa / 0.012, (b - 0.016) / 0.01)  # glabella
    # nose: dorsum profile over a rounded cross-section, tip, alae with their crease
    pn, pt = 0.005, 0.025
    u = np.clip((NOSE_BN - b) / (NOSE_BN - NOSE_BT), 0, 1)
    prof = np.where(b > NOSE_BN, pn * _gauss((b - NOSE_BN) / 0.008), pn + (pt - pn) * u ** 1.3)
    under = pt * np.sqrt(np.clip(1 - ((NOSE_BT - b) / (NOSE_BT - NOSE_BSN)) ** 2, 0, 1))
    prof = np.where(b < NOSE_BT, under, prof)
    width = np.interp(-b, [-NOSE_BN, 0.0, -NOSE_BT, -NOSE_BSN], [0.005, 0.0055, 0.008, 0.0075])
    r += prof * _gauss(aa / width)
    ala = np.hypot((aa - ALA_A) / 0.005, (b - ALA_B) / 0.0055)
    r += 0.0065 * np.exp(-ala * ala) - 0.0015 * _gauss((ala - 1.3) / 0.35)
    # cheekbones, cheeks
    r += 0.004 * _gauss((aa - 0.050) / 0.016, (b + 0.016) / 0.011)
    r += 0.003 * _gauss((aa - 0.036) / 0.015, (b + 0.036) / 0.015)
    # lips, the mouth slit, philtrum, labiomental sulcus, chin
    _, env, bsto, hu, hl = _mouth_curves(a)
    tu = (b - bsto) / np.maximum(hu, 1e-4)
    tl = (bsto - b) / np.maximum(hl, 1e-4)
    r += np.where(b >= bsto, 0.0035 * _lip_profile(tu), 0.004 * _lip_profile(tl)) * env ** 0.35
    r -= MOUTH_DEPTH * env ** 0.5 * np.clip(1 - np.abs(b - bsto) / MOUTH_G, 0, None)
    r -= 0.0008 * _gauss(a / 0.0025, (b + 0.044) / 0.006)
    r -= 0.002 * _gauss(aa / 0.018, (b + 0.077) / 0.005)
    r += 0.002 * _gauss(aa / 0.015, (b + 0.092) / 0.01)
    return r * (1 - _sstep(math.radians(60), math.radians(85), np.abs(az)))


def _ear_relief(az, el):
    """Radial ear relief (metres) by azimuth and elevation."""
    p = (np.abs(az) - EAR_AZ) * 0.075
    q = (el - EAR_EL) * 0.075
    ct, st = math.cos(0.26), math.sin(0.26)  # ears lean back ~15 deg
    pr, qr = ct * p + st * q, -st * p + ct * q
    e = np.hypot(pr / 0.016, qr / 0.030)
    plate = 0.007 * (1 - _sstep(0.6, 1.1, e))
    rim = 0.003 * _gauss((e - 0.78) / 0.14)
    concha = 0.005 * _gauss((pr + 0.002) / 0.007, (qr + 0.004) / 0.010)
    return plate + rim - concha


def _surface_radius(dirs, az, el, lids):
    """Distance from the origin to the head surface along each ray (n,)."""
    a, b = _chart(az, el)
    r_skin = _raycast(dirs) + _skin_relief(a, b, az) + _ear_relief(az, el)
    state = np.where((a > 0)[:, None], lids[1][None], lids[0][None])
    _, _, m = _eye_fields(a, b, state)
    c = _eye_centre()
    r_eye = np.full_like(a, -1.0)
    for sign in (-1.0, 1.0):
        cs = c * np.array([sign, 1.0, 1.0])
        ball = _ray_ellipsoid(dirs, cs, np.array([EYE_RX, EYE_R, EYE_R]))
        corn = _ray_ellipsoid(dirs, cs + np.array([0, 0, EYE_R + CORNEA_H - CORNEA_R]),
                              np.full(3, CORNEA_R))
        both = np.where(corn > 0, _smax(ball, corn, 0.0008), ball)
        r_eye = np.where((a * sign > 0) & (ball > 0), both, r_eye)
    # lids lie on the globe outside the fissure and sink into the skin away from the eye
    se = (np.abs(a) - EYE_AC) / (EYE_AW * 1.04)
    te = (b - EYE_B) / np.where(b > EYE_B, 0.0125, 0.0095)
    env = 1 - _sstep(0.75, 1.1, np.hypot(se, te))
    r_lid = r_eye + LID_T * (1 - m) - 0.012 * (1 - env)
    return np.where(r_eye > 0, _smax(r_skin, r_lid, 0.004), r_skin)


def _grid_rays(lay: _Layout, lids: np.ndarray):
    """Unit ray, azimuth and elevation of every vertex (ring vertices row-major, then the
    crown vertex)."""
    el = _row_elevations(lay, lids)
    az = np.broadcast_to(lay.az, el.shape)
    dirs = np.stack([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)], -1)
    dirs = np.concatenate([dirs.reshape(-1, 3), [[0.0, 1.0, 0.0]]])
    return dirs, np.append(az.reshape(-1), 0.0), np.append(el.reshape(-1), np.pi / 2)


def _positions(lay: _Layout, lids: np.ndarray) -> np.ndarray:
    """(V, 3) vertex positions for the given eyelid states (float64, metres)."""
    dirs, az, el = _grid_rays(lay, lids)
    return dirs * _surface_radius(dirs, az, el, lids)[:, None]


# ----------------------------------------------------------------------------- topology
def _topology(rows: int, cols: int):
    """Triangles (counter-clockwise from outside), per-corner UVs and their indices."""
    idx = np.arange(rows * cols).reshape(rows, cols)
    nxt = np.roll(idx, -1, axis=1)
    a, b, c, d = idx[:-1], nxt[:-1], nxt[1:], idx[1:]  # lower-left, -right, upper-right, -left
    left_side = (np.arange(cols) >= cols // 2)[None, :, None]  # mirror-symmetric diagonals
    t1 = np.where(left_side, np.stack([a, b, c], -1), np.stack([a, b, d], -1))
    t2 = np.where(left_side, np.stack([a, c, d], -1), np.stack([b, c, d], -1))
    pole = rows * cols
    top = np.stack([idx[-1], nxt[-1], np.full(cols, pole)], -1)
    tris = np.concatenate([np.stack([t1, t2], axis=2).reshape(-1, 3), top])
    u, v = np.meshgrid(np.arange(cols + 1) / cols, np.arange(rows) / rows)
    uvs = np.concatenate([np.stack([u, v], -1).reshape(-1, 2),
                          np.stack([(np.arange(cols) + 0.5) / cols, np.ones(cols)], -1)])
    ui = np.arange(rows * (cols + 1)).reshape(rows, cols + 1)
    ua, ub, uc, ud = ui[:-1, :-1], ui[:-1, 1:], ui[1:, 1:], ui[1:, :-1]
    ut1 = np.where(left_side, np.stack([ua, ub, uc], -1), np.stack([ua, ub, ud], -1))
    ut2 = np.where(left_side, np.stack([ua, uc, ud], -1), np.stack([ub, uc, ud], -1))
    utop = np.stack([ui[-1, :-1], ui[-1, 1:], rows * (cols + 1) + np.arange(cols)], -1)
    uv_tris = np.concatenate([np.stack([ut1, ut2], axis=2).reshape(-1, 3), utop])
    return tris.astype(np.int32), uvs.astype(np.float32), uv_tris.astype(np.int32)


def _mirror_index(rows: int, cols: int) -> np.ndarray:
    """(V,) index of each vertex's mirror image across x = 0."""
    ring = (np.arange(rows)[:, None] * cols + (cols - np.arange(cols))[None] % cols).reshape(-1)
    return np.append(ring, rows * cols)


def _mirror(field: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """Mirror a (..., V, 3) field across x = 0."""
    return field[..., mirror, :] * np.array([-1.0, 1.0, 1.0])


# ----------------------------------------------------------------------------- features
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
    from facecraft.sdk.photo.landmarks import IBUG68_FLIP

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


# ----------------------------------------------------------------------------- albedo
_SKIN = np.array([0.52, 0.32, 0.24])


def _albedo(f: _Features) -> tuple[np.ndarray, np.ndarray]:
    """Mean albedo (V, 3) and the unit-variance basis (len(ALBEDO_SLIDERS), V, 3), linear RGB."""
    aa, b, one = np.abs(f.a), f.b, np.ones((len(f.a), 1))
    cheeks = (_gauss((aa - 0.040) / 0.018, (b + 0.026) / 0.018)
              + 0.6 * _gauss(aa / 0.008, (b + 0.022) / 0.008))[:, None]
    col = _SKIN * one + cheeks * np.array([0.04, -0.012, -0.01])
    lip = np.maximum(f.lip_u, f.lip_l)[:, None]
    col = col * (1 - lip) + lip * np.array([0.44, 0.16, 0.14])
    nostril = _gauss((aa - 0.0055) / 0.003, (b + 0.031) / 0.003)[:, None] * f.front[:, None]
    col = col * (1 - 0.8 * nostril) + 0.8 * nostril * np.array([0.08, 0.04, 0.03])
    brow = 0.85 * f.brow[:, None]
    col = col * (1 - brow) + brow * np.array([0.10, 0.065, 0.05])
    slit = f.slit[:, None]
    col = col * (1 - slit) + slit * np.array([0.10, 0.02, 0.02])
    eye = (f.eye_m > 0.5)[:, None] * 1.0
    sclera = np.array([0.70, 0.66, 0.62]) * one
    iris = f.iris[:, None]
    pupil = f.pupil[:, None]
    eye_col = sclera * (1 - iris) + iris * np.array([0.08, 0.05, 0.035])
    eye_col = eye_col * (1 - pupil) + pupil * np.array([0.01, 0.01, 0.012])
    mean = col * (1 - eye) + eye * eye_col
    skinlike = (1 - eye) * (1 - slit)
    beard = (_gauss(aa / 0.045, (b + 0.085) / 0.03) + 0.8 * _gauss(aa / 0.025, (b + 0.049) / 0.006)
             )[:, None] * (1 - lip) * f.front[:, None] * skinlike
    lids = _gauss((aa - EYE_AC) / 0.02, (b - 0.004) / 0.012)[:, None] * (1 - eye) * f.front[:, None]
    grey = mean.mean(axis=1, keepdims=True)
    basis = np.stack([
        -0.22 * mean * skinlike,  # skin_tone: lighter (-) / darker (+)
        mean * np.array([0.07, 0.02, -0.12]) * skinlike,  # skin_warmth
        0.25 * (mean - grey) * skinlike,  # skin_saturation
        cheeks * mean * np.array([0.08, -0.035, -0.04]),  # cheek_redness
        lip * np.array([0.06, -0.025, -0.02]),  # lip_colour
        brow * np.array([-0.028, -0.018, -0.014]) / 0.85,  # brow_darkness (darker: +)
        iris * (1 - pupil) * np.array([-0.015, 0.004, 0.011]),  # iris_colour (brown - / blue +)
        beard * np.array([-0.05, -0.045, -0.035]),  # beard_shadow
        lids * np.array([-0.03, -0.028, -0.018]),  # eye_shadow
    ])
    return mean, basis


# ----------------------------------------------------------------------------- identity
_Measure = Callable[[np.ndarray], float]  # vertices (V, 3) -> a measurement (metres or degrees)

def _identity_basis(lay: _Layout, f: _Features, lm: np.ndarray,
                    mirror: np.ndarray) -> np.ndarray:
    """(len(IDENTITY_SLIDERS), V, 3) unit-variance identity modes (see the module docstring)."""
    p = f.pos
    x, y, z = p.T
    aa, b, ff = np.abs(f.a), f.b, f.front
    sg = np.sign(x)
    front = _sstep(-0.03, 0.04, z)
    fs = _sstep(0.0, 0.06, z)
    ce = _eye_centre()
    c_eye = np.where((x >= 0)[:, None], ce, ce * np.array([-1.0, 1.0, 1.0]))
    de = np.linalg.norm(p - c_eye, axis=1)
    w_eye, w_eye_b = _gauss(de / 0.019), _gauss(de / 0.024)
    zero = np.zeros_like(x)

    def vec(dx=zero, dy=zero, dz=zero):
        return np.stack([dx + zero, dy + zero, dz + zero], -1)

    def chart(a0, b0, ra, rb):
        return _gauss((aa - a0) / ra, (b - b0) / rb) * ff

    mid = np.flatnonzero(np.abs(x) < 1e-9)  # midline vertices
    zyg = np.flatnonzero((z > 0.015) & (np.abs(y + 0.003) < 0.012) & (np.abs(f.az) < 1.45))
    top = np.flatnonzero(y > 0.01)
    back = mid[(y[mid] > -0.03) & (y[mid] < 0.07) & (z[mid] < 0)]
    tr = lay.row_of["hairline"] * lay.cols + lay.cols // 2
    glab = lay.row_of["brow"] * lay.cols + lay.cols // 2
    pog = mid[np.argmax(np.where((y[mid] < -0.085) & (y[mid] > -0.105), z[mid], -1))]
    left = x > 0
    ala = np.flatnonzero(left)[np.argmin(np.hypot(f.a[left] - ALA_A - 0.003, b[left] - ALA_B))]
    cheek = np.flatnonzero(left)[np.argmin(np.hypot(f.a[left] - 0.05, b[left] + 0.016))]
    pupil = np.flatnonzero(left)[np.argmin(np.hypot(f.a[left] - EYE_AC, b[left] - EYE_B)
                                           + 1e9 * (f.eye_m[left] < 0.5))]
    ear_dir = np.array([math.sin(EAR_AZ) * math.cos(EAR_EL), math.sin(EAR_EL),
                        math.cos(EAR_AZ) * math.cos(EAR_EL)])
    ear = np.argmax((p / np.linalg.norm(p, axis=1, keepdims=True)) @ ear_dir)
    c_ear = np.where((x >= 0)[:, None], p[ear], p[ear] * np.array([-1.0, 1.0, 1.0]))
    deg = 180.0 / math.pi

    def lip_w(row_side, t, h):
        return row_side * np.where(t <= 1, np.clip(t, 0, 1), np.exp(-(((t - 1) * h) / 0.005) ** 2))

    _, _, _, hu, hl = _mouth_curves(f.a)
    mrow = lay.row_of["m_M"]
    env = np.clip(1 - f.mouth_s ** 2, 0, None) * ff
    wu = lip_w(f.row > mrow, f.mouth_db / np.maximum(hu, 1e-4), hu) * env
    wl = lip_w(f.row < mrow, -f.mouth_db / np.maximum(hl, 1e-4), hl) * env

    spec: dict[str, tuple[np.ndarray, _Measure | None]] = {
        "face_width": (vec(dx=x * (0.35 + 0.65 * front) * _gauss((y + 0.03) / 0.06)),
                       lambda v: 2 * np.abs(v[zyg, 0]).max()),
        "face_length": (vec(dy=-np.clip((0.005 - y) / 0.113, 0, 1) * (0.4 + 0.6 * front)),
                        lambda v: v[lm[27], 1] - v[lm[8], 1]),
        "head_width": (vec(dx=x * _sstep(-0.02, 0.04, y)), lambda v: 2 * np.abs(v[top, 0]).max()),
        "head_depth": (vec(dz=np.minimum(z, 0) * _sstep(-0.12, -0.05, y)),
                       lambda v: -v[back, 2].min()),
        "forehead_height": (vec(dy=np.clip((y - 0.022) / 0.05, 0, 1)),
                            lambda v: v[tr, 1] - v[lm[27], 1]),
        "forehead_slope": (vec(dz=-np.clip(y - 0.022, 0, 0.09) * _sstep(0.0, 0.05, z)),
                           lambda v: deg * math.atan2(v[glab, 2] - v[tr, 2],
                                                      v[tr, 1] - v[glab, 1])),
        "brow_ridge": (vec(dz=_gauss((b - 0.021) / 0.008) * np.exp(-(aa / 0.05) ** 4) * ff), None),
        "cheekbone_height": (vec(dy=chart(0.050, -0.016, 0.02, 0.016)), lambda v: v[cheek, 1]),
        "cheekbone_width": (vec(0.8 * sg, 0, 0.6) * chart(0.052, -0.014, 0.018, 0.014)[:, None],
                            None),
        "cheek_fullness": (vec(0.6 * sg, 0, 0.8) * chart(0.040, -0.048, 0.018, 0.02)[:, None],
                           None),
        "jaw_width": (vec(dx=sg * _gauss((np.abs(x) - 0.05) / 0.03, (y + 0.075) / 0.03,
                                         (z - 0.01) / 0.045)),
                      lambda v: v[lm[12], 0] - v[lm[4], 0]),
        "chin_length": (vec(dy=-_sstep(-0.07, -0.098, y) * _gauss(x / 0.045)
                            * _sstep(-0.02, 0.03, z) * (1 - _sstep(-0.125, -0.16, y))),
                        lambda v: v[lm[57], 1] - v[lm[8], 1]),
        "chin_width": (vec(dx=x * _gauss(x / 0.035, (y + 0.098) / 0.02) * _sstep(0.03, 0.07, z)),
                       lambda v: v[lm[9], 0] - v[lm[7], 0]),
        "chin_protrusion": (vec(dz=_gauss(x / 0.025, (y + 0.097) / 0.016)
                                * _sstep(0.04, 0.08, z)), lambda v: v[pog, 2]),
        "eye_size": ((p - c_eye) * w_eye[:, None], lambda v: np.linalg.norm(v[lm[39]] - v[lm[36]])),
        "eye_spacing": (vec(dx=sg * w_eye_b), lambda v: v[lm[42], 0] - v[lm[39], 0]),
        "eye_height": (vec(dy=w_eye_b), lambda v: v[lm[36:48], 1].mean()),
        "eye_tilt": (vec(-sg * (y - ce[1]), np.abs(x) - ce[0]) * w_eye[:, None],
                     lambda v: deg * math.atan2(v[lm[45], 1] - v[lm[42], 1],
                                                v[lm[45], 0] - v[lm[42], 0])),
        "eye_depth": (vec(dz=w_eye), lambda v: v[pupil, 2]),
        "nose_length": (vec(dy=-np.clip((0.006 - y) / 0.05, 0, 1) * _gauss(x / 0.022)
                            * (1 - _sstep(-0.046, -0.064, y)) * fs),
                        lambda v: v[lm[27], 1] - v[lm[33], 1]),
        "nose_width": (vec(dx=x * chart(0.012, -0.030, 0.012, 0.012)),
                       lambda v: 2 * v[ala, 0]),
        "nose_bridge_height": (vec(dz=_gauss(x / 0.008, (y + 0.006) / 0.013) * fs),
                               lambda v: v[lm[28], 2]),
        "nose_tip_projection": (vec(dz=chart(0.0, -0.023, 0.010, 0.008)),
                                lambda v: v[lm[30], 2] - v[lm[33], 2]),
        "nose_tip_height": (vec(dy=chart(0.0, -0.024, 0.010, 0.008)), lambda v: v[lm[30], 1]),
        "nostril_flare": (vec(sg, 0, 0.3) * chart(ALA_A + 0.002, ALA_B, 0.006, 0.006)[:, None],
                          None),
        "mouth_width": (vec(dx=x * np.exp(-(x / 0.035) ** 4) * _gauss((y + 0.066) / 0.016)
                            * _sstep(0.03, 0.08, z)),
                        lambda v: v[lm[54], 0] - v[lm[48], 0]),
        "mouth_height": (vec(dy=np.exp(-(x / 0.04) ** 4) * _gauss((y + 0.066) / 0.022)
                             * _sstep(0.03, 0.08, z)),
                         lambda v: 0.5 * (v[lm[62], 1] + v[lm[66], 1])),
        "lip_fullness_upper": (vec(0, wu, 0.4 * wu), lambda v: v[lm[51], 1] - v[lm[62], 1]),
        "lip_fullness_lower": (vec(0, -wl, 0.4 * wl), lambda v: v[lm[66], 1] - v[lm[57], 1]),
        "lip_protrusion": (vec(dz=_gauss(x / 0.03, (y + 0.066) / 0.014) * fs),
                           lambda v: 0.5 * (v[lm[51], 2] + v[lm[57], 2])),
        "ear_size": ((p - c_ear) * _gauss(np.linalg.norm(p - c_ear, axis=1) / 0.03)[:, None]
                     / 0.062, None),
    }
    assert tuple(spec) == IDENTITY_SLIDERS
    modes = []
    for name, (field, measure) in spec.items():
        sd = _IDENTITY_SD[name]
        field = 0.5 * (field + _mirror(field, mirror))
        if name == "ear_size":
            scale = sd  # the field is a relative scaling of a 62 mm ear
        elif measure is None:
            scale = sd / np.linalg.norm(field, axis=1).max()
        else:
            probe = 1e-3 / np.linalg.norm(field, axis=1).max()
            scale = probe * sd / (measure(p + probe * field) - measure(p))
        modes.append(field * scale)
    return np.stack(modes)


# ----------------------------------------------------------------------------- expressions
def _expression_basis(lay: _Layout, settings: StarterSettings, f: _Features,
                      mirror: np.ndarray) -> np.ndarray:
    """(53, V, 3) blendshape deltas in :data:`EXPRESSION_NAMES` order; ``_R`` modes are the
    mirror images of the ``_L`` ones."""
    p = f.pos
    x, y, z = p.T
    a, b, db, ff = f.a, f.b, f.mouth_db, f.front
    zero = np.zeros_like(x)
    neutral = _positions(lay, np.zeros((2, 3)))

    def vec(dx=0.0, dy=0.0, dz=0.0):
        return np.stack([dx + zero, dy + zero, dz + zero], -1)

    def g(w, dx=0.0, dy=0.0, dz=0.0):
        return w[:, None] * vec(dx, dy, dz)

    def chart(a0, b0, ra, rb):  # a weight on the subject's left side of the face chart
        return _gauss((a - a0) / ra, (b - b0) / rb) * ff

    def lids(close=0.0, raise_u=0.0, raise_l=0.0):  # left eyelids moved by the generator
        state = np.zeros((2, 3))
        state[1] = close, raise_u, raise_l
        return _positions(lay, state) - neutral

    # eyes: the globe's visible vertices turn about its centre; lids follow the gaze a little
    ce = _eye_centre()
    w_globe = f.eye_m * np.clip(1 - f.eye_t ** 2, 0, None) * np.clip(1 - f.eye_s ** 2, 0, None)
    w_globe = w_globe * (x > 0)
    gaze = math.radians(settings.gaze_deg)

    def look(axis, lid_delta):
        moved = p + lid_delta
        return _rotate(moved, ce, axis, gaze * w_globe) - p

    # jaw: rotation about the jaw joints of everything below the mouth line
    w_jaw = f.lower * _sstep(-0.17, -0.125, y) * _sstep(-0.05, 0.01, z)
    jaw_open = _rotate(p, JAW_PIVOT, (1, 0, 0), math.radians(settings.jaw_open_deg) * w_jaw) - p
    w_lipclose = (f.lower * _sstep(-0.02, -0.006, db)
                  * (1 - _sstep(0.9, 1.4, np.abs(f.mouth_s))) * ff)
    corner_b = MOUTH_B - MOUTH_DROP
    corner = chart(MOUTH_A, corner_b, 0.013, 0.012)
    corner_wide = chart(MOUTH_A, corner_b, 0.016, 0.015)
    cheek = chart(0.036, -0.040, 0.018, 0.018)
    mouth = _gauss(a / 0.032, db / 0.014) * ff
    lip_left = _gauss((a - 0.012) / 0.015, db / 0.012) * ff
    upper = (1 - f.lower) * ff
    above_lid = _sstep(0.004, 0.016, b)
    brow_all = chart(0.030, 0.024, 0.026, 0.014) * above_lid
    left = {
        "browDown": (g(brow_all, -0.002, -0.005, 0.0015)
                     + g(chart(0.012, 0.022, 0.012, 0.012) * above_lid, -0.0025, -0.002, 0.0015)),
        "browInnerUp": g(chart(0.014, 0.024, 0.013, 0.018) * above_lid, 0.0003, 0.0065, 0.0005),
        "browOuterUp": g(chart(0.045, 0.026, 0.016, 0.018) * above_lid, 0.001, 0.0075, -0.0015),
        "cheekPuff": 0.011 * chart(0.036, -0.055, 0.02, 0.022)[:, None] * f.normals,
        "cheekSquint": g(chart(0.047, -0.016, 0.018, 0.013), -0.0005, 0.0045, 0.0015),
        "eyeBlink": lids(close=1.0),
        "eyeLookDown": look((1, 0, 0), lids(close=0.3)),
        "eyeLookIn": look((0, -1, 0), 0.0),
        "eyeLookOut": look((0, 1, 0), 0.0),
        "eyeLookUp": look((-1, 0, 0), lids(raise_u=0.5)),
        "eyeSquint": (lids(raise_l=1.0)
                      + g(chart(EYE_AC, -0.012, 0.016, 0.008) * (1 - f.eye_m), 0, 0.0015, 0.0005)),
        "eyeWide": lids(raise_u=1.0),
        "mouthDimple": g(corner, 0.001, 0.002, -0.005),
        "mouthFrown": g(corner_wide, 0.0015, -0.005, -0.0015),
        "mouthLowerDown": g(f.lower * lip_left, 0.0005, -0.0045, -0.001),
        "mouthPress": (g(upper * lip_left, 0, -0.0012, -0.0008)
                       + g(f.lower * lip_left, 0, 0.0018, -0.0008)),
        "mouthSmile": g(corner_wide, 0.007, 0.010, -0.005) + g(cheek, 0.001, 0.004, 0.0025),
        "mouthStretch": (g(corner_wide, 0.006, -0.0025, -0.004)
                         + g(f.lower * lip_left, 0, -0.0015, 0)),
        "mouthUpperUp": (g(upper * _gauss((a - 0.012) / 0.014, (db - 0.004) / 0.012) * ff,
                           0.0008, 0.0045, -0.0015)
                         + g(chart(0.020, -0.035, 0.010, 0.012), 0, 0.002, 0)),
        "noseSneer": g(chart(0.016, -0.022, 0.010, 0.014), -0.0008, 0.0055, 0.0005),
    }
    centre = {
        "jawForward": g(w_jaw, dz=0.008),
        "jawLeft": g(w_jaw, dx=0.008),
        "jawOpen": jaw_open,
        "mouthClose": -jaw_open * w_lipclose[:, None],
        "mouthFunnel": (g(mouth, dz=0.007) + mouth[:, None] * vec(dx=-0.22 * x)
                        + g(upper * _gauss(a / 0.015, db / 0.01) * ff, dy=0.0025)
                        + g(f.lower * _gauss(a / 0.015, db / 0.01) * ff, dy=-0.003)),
        "mouthLeft": g(_gauss(a / 0.035, db / 0.02) * ff, dx=0.009),
        "mouthPucker": g(mouth, dz=0.008) + mouth[:, None] * vec(dx=-0.35 * x),
        "mouthRollLower": g(f.lip_l, 0, 0.0015, -0.006),
        "mouthRollUpper": g(f.lip_u, 0, -0.0015, -0.005),
        "mouthShrugLower": g(f.lower * _gauss(a / 0.035, (db + 0.012) / 0.02) * ff, 0, 0.005,
                             0.0015),
        "mouthShrugUpper": g(upper * _gauss(a / 0.03, (db - 0.006) / 0.012) * ff, 0, 0.003,
                             0.0015),
    }
    out = []
    for name in EXPRESSION_NAMES:
        base, side = (name[:-2], name[-1]) if name[-2:] in ("_L", "_R") else (name, "")
        if side == "L":
            out.append(left[base] * _sstep(-0.01, 0.01, x)[:, None])
        elif side == "R":
            out.append(_mirror(out[-1], mirror))
        elif name in ("jawRight", "mouthRight"):
            out.append(_mirror(out[EXPRESSION_NAMES.index(name.replace("Right", "Left"))],
                               mirror))
        else:
            d = centre[name]
            out.append(d if name in ("jawLeft", "mouthLeft") else 0.5 * (d + _mirror(d, mirror)))
    return np.stack(out)


# ----------------------------------------------------------------------------- build
def build_starter_model(settings: StarterSettings = StarterSettings()) -> MorphableModel:
    """Generate FaceCraft's starter morphable model.

    Args:
        settings: grid resolution and rig amounts (:class:`StarterSettings`).

    Returns:
        A :class:`MorphableModel` (``graph=None``): ``rows * cols + 1`` vertices in metres
        (+Y up, face towards +Z), identity modes named :data:`IDENTITY_SLIDERS` (unit-variance),
        the 53 blendshapes :data:`EXPRESSION_NAMES`, albedo modes :data:`ALBEDO_SLIDERS`,
        iBUG-68 landmarks, regions (``face``, ``skin``, ``eye_left``, ``eye_right``,
        ``mouth_interior``, ``lips``, ``brows``, ``nose``, ``back_of_head``) and a UV layout.
        The same settings always give byte-identical arrays.
    """
    if not isinstance(settings, StarterSettings):
        raise TypeError(f"settings must be a StarterSettings, got {type(settings).__name__}")
    from facecraft.sdk.models.mesh import vertex_normals_np

    lay = _layout(settings.rows, settings.cols)
    mirror = _mirror_index(settings.rows, settings.cols)
    raw = _positions(lay, np.zeros((2, 3)))
    mean = 0.5 * (raw + _mirror(raw, mirror))
    tris, uvs, uv_tris = _topology(settings.rows, settings.cols)
    f = _features(lay, mean, vertex_normals_np(mean, tris).astype(np.float64))
    lm = _landmark_vertices(lay, f, mirror)
    lm_faces, lm_bary = landmarks_from_vertices(lm, tris)
    albedo_mean, albedo_basis = _albedo(f)
    return MorphableModel(
        name=settings.name,
        mean_shape=mean,
        identity_basis=_identity_basis(lay, f, lm, mirror),
        identity_names=IDENTITY_SLIDERS,
        expression_basis=_expression_basis(lay, settings, f, mirror),
        expression_names=EXPRESSION_NAMES,
        triangles=tris,
        uvs=uvs,
        uv_triangles=uv_tris,
        landmark_faces=lm_faces,
        landmark_bary=lm_bary,
        regions=_regions(lay, f),
        albedo_mean=albedo_mean,
        albedo_basis=albedo_basis,
        albedo_names=ALBEDO_SLIDERS,
        expression_kind="blendshape",
        provenance={"source": "facecraft procedural starter", "version": STARTER_VERSION,
                    "settings": dataclasses.asdict(settings)},
        licence=_LICENCE,
    )
