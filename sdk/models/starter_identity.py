"""The starter model's identity modes: hand-designed, localized, symmetric displacement fields
scaled to one population sd of their named measurement (the table is in
:mod:`facecraft.sdk.models.starter`'s docstring)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .starter_features import _Features
from .starter_geometry import (
    ALA_A,
    ALA_B,
    EAR_AZ,
    EAR_EL,
    EYE_AC,
    EYE_B,
    _eye_centre,
    _gauss,
    _Layout,
    _mirror,
    _mouth_curves,
    _sstep,
)

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
