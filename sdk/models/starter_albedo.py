"""The starter model's albedo: a mean skin/lip/eye colouring and unit-variance colour modes
(internal to :mod:`facecraft.sdk.models.starter`; the slider names are public there)."""

from __future__ import annotations

import numpy as np

from .starter_features import _Features
from .starter_geometry import EYE_AC, _gauss

#: Albedo slider names in basis order; one unit is about one sd (linear RGB).
ALBEDO_SLIDERS: tuple[str, ...] = (
    "skin_tone", "skin_warmth", "skin_saturation", "cheek_redness", "lip_colour",
    "brow_darkness", "iris_colour", "beard_shadow", "eye_shadow",
)

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
