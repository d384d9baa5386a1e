"""The starter model's procedural head: design constants, the UV-grid layout, the surface and
the mesh topology (internal to :mod:`facecraft.sdk.models.starter`).

Every vertex is a ray from the origin (the head's centre) at an azimuth and an elevation; rows
follow guide curves (lid margins, lip lines, nose, brows...) laid out by :func:`_layout` and
:func:`_row_elevations`, and :func:`_positions` finds where each ray leaves the head surface.
Units are metres and radians; frame as :mod:`facecraft.sdk.models.morphable_model` (+Y up, face
towards +Z, ``_L`` = the subject's left, +X). All functions are vectorized NumPy and
deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import PchipInterpolator


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
