"""Material parameters for a game character from a face's texture or photo.

Engines dress a head with presets (skin tone, eye colour, brows, lipstick...), so besides shape
the SDK returns a few colours and scalars they can map to their own presets
(:class:`MaterialParams`): skin tone (sRGB, CIELAB, the Individual Typology Angle and a
Fitzpatrick-like 1-6 type from it), iris colour (and a coarse category), eyebrow colour and
density, lip colour.

Where the colours come from:

* :func:`estimate_materials` reads per-vertex colours of a face model (the pipeline's fine
  texture). Regions are the model's own ``skin``, ``brows`` and ``lips`` when it has them,
  otherwise polygons of its 68 landmarks in a frontal view of the mesh (front-facing vertices
  only).
* :func:`estimate_materials_from_photo` reads photo pixels inside the same landmark polygons
  drawn with the photo's 68 landmarks.

Landmark regions (iBUG-68 indices): cheeks = the polygons (1-4, 48, 31, 40, 41, 36) and (15-12,
54, 35, 47, 46, 45) shrunk 20% towards their centres, the skin tone the median of the better-lit
cheek (shading darkens the far side of a turned or side-lit face); lips = outer lip 48-59 minus
inner lip 60-67; brows = a band around each brow polyline (17-21, 22-26), 0.12 inter-ocular
distances high; eyes = the lid polygons 36-41 and 42-47. Within the eye the iris is what is
neither sclera (within 20 L* of the eye's 90th percentile) nor pupil, lashes or lid shadow (the
darkest quarter of the rest). Within each brow band, hair is what is darker by
``hair_contrast`` L* than the forehead skin just above that brow (a band 0.14 inter-ocular
distances higher, so both sit in the same light; the cheek where the forehead is not seen); the
density is the fraction of the bands that is hair.

Colours: inputs are RGB in [0, 1] (or uint8), ``encoding="srgb"`` (photo values, what the
pipeline's fine texture holds) or ``"linear"``; outputs are sRGB (hex and floats) and CIELAB
(D65). Medians throughout, so a few stray pixels do not matter. ITA = atan2(L* - 50, b*) in
degrees; categories after Chardon et al. (1991): > 55 very light (1), 41-55 light (2), 28-41
intermediate (3), 10-28 tan (4), -30-10 brown (5), < -30 dark (6).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..models.morphable_model import MorphableModel
from .material_params import MaterialParams

__all__ = [
    "MaterialSettings",
    "MaterialParams",
    "estimate_materials",
    "estimate_materials_from_photo",
    "srgb_to_lab",
    "ita_degrees",
]

_ENCODINGS = ("srgb", "linear")
_CHEEKS = ((1, 2, 3, 4, 48, 31, 40, 41, 36), (15, 14, 13, 12, 54, 35, 47, 46, 45))
_BROWS = (range(17, 22), range(22, 27))
_EYES = (range(36, 42), range(42, 48))
_SKIN_TYPES = ((55.0, 1, "very light"), (41.0, 2, "light"), (28.0, 3, "intermediate"),
               (10.0, 4, "tan"), (-30.0, 5, "brown"), (-math.inf, 6, "dark"))


@dataclass(frozen=True)
class MaterialSettings:
    """How to estimate material parameters.

    Attributes:
        encoding: ``"srgb"`` (colours as stored in a photo) or ``"linear"``.
        hair_contrast: L* units a brow pixel must be darker than the skin to count as hair,
            > 0.
        min_samples: fewest pixels / vertices an estimate needs; fewer gives ``None``, >= 1.
    """

    encoding: str = "srgb"
    hair_contrast: float = 8.0
    min_samples: int = 3

    def __post_init__(self) -> None:
        if self.encoding not in _ENCODINGS:
            raise InvalidInputError(f"MaterialSettings.encoding must be one of {_ENCODINGS}, "
                                    f"got {self.encoding!r}")
        if not float(self.hair_contrast) > 0:
            raise InvalidInputError(f"MaterialSettings.hair_contrast must be > 0 L*, got "
                                    f"{self.hair_contrast!r}")
        if not (isinstance(self.min_samples, int) and self.min_samples >= 1):
            raise InvalidInputError(f"MaterialSettings.min_samples must be an integer >= 1, "
                                    f"got {self.min_samples!r}")


# --------------------------------------------------------------------------- colour
def _to_linear(srgb: np.ndarray) -> np.ndarray:
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def _to_srgb(linear: np.ndarray) -> np.ndarray:
    lin = np.clip(linear, 0.0, 1.0)
    return np.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055)


def srgb_to_lab(srgb: np.ndarray) -> np.ndarray:
    """(..., 3) sRGB in [0, 1] -> (..., 3) CIELAB (D65 white)."""
    lin = _to_linear(np.clip(np.asarray(srgb, np.float64), 0.0, 1.0))
    m = np.array([[0.4124564, 0.3575761, 0.1804375],
                  [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]),
                     200 * (f[..., 1] - f[..., 2])], -1)


def ita_degrees(lab: np.ndarray) -> float:
    """Individual Typology Angle of a CIELAB colour, degrees: atan2(L* - 50, b*)."""
    return float(math.degrees(math.atan2(float(lab[0]) - 50.0, float(lab[2]))))


def _hex(srgb: np.ndarray) -> str:
    r, g, b = (int(round(float(x) * 255)) for x in np.clip(srgb, 0, 1))
    return f"#{r:02x}{g:02x}{b:02x}"


def _iris_category(lab: np.ndarray) -> str:
    lightness, a, b = (float(x) for x in lab)
    if b < 0 or (a < 0 and b < 4):
        return "blue" if math.hypot(a, b) >= 6 else "grey"
    if a < -2:
        return "green"
    if lightness < 30:
        return "dark_brown"
    if lightness >= 45 and b > 2 * max(a, 1.0):
        return "hazel"
    return "brown"


# --------------------------------------------------------------------------- regions
def _inside(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(N,) bool: points (N, 2) inside the polygon (M, 2) (even-odd rule, vectorised)."""
    x, y = points[:, 0:1], points[:, 1:2]
    x0, y0 = polygon[:, 0][None], polygon[:, 1][None]
    x1, y1 = np.roll(polygon[:, 0], -1)[None], np.roll(polygon[:, 1], -1)[None]
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = ((y0 > y) != (y1 > y)) & (x < (x1 - x0) * (y - y0) / (y1 - y0) + x0)
    return (cross.sum(1) % 2) == 1


def _segment_distance(points: np.ndarray, polyline: np.ndarray) -> np.ndarray:
    """(N,) distance from points (N, 2) to a polyline (M, 2)."""
    a, b = polyline[:-1][None], polyline[1:][None]
    p = points[:, None]
    d = b - a
    t = np.clip(((p - a) * d).sum(-1) / np.maximum((d * d).sum(-1), 1e-12), 0, 1)
    return np.linalg.norm(p - (a + t[..., None] * d), axis=-1).min(1)


def _landmark_regions(points: np.ndarray, lm: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean masks over ``points`` (N, 2) from 68 landmarks (68, 2), image-like frame (y
    down). Keys: skin and skin_2 (the two cheeks), lips, brows, eyes."""
    iod = float(np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0)))
    cheeks = []
    for ids in _CHEEKS:
        poly = lm[list(ids)]
        c = poly.mean(0)
        cheeks.append(_inside(points, c + 0.8 * (poly - c)))
    lips = _inside(points, lm[48:60]) & ~_inside(points, lm[60:68])
    eyes = np.zeros(len(points), bool)
    for ids in _EYES:
        eyes |= _inside(points, lm[list(ids)])
    out = {"skin": cheeks[0], "skin_2": cheeks[1], "lips": lips, "eyes": eyes}
    brows = np.zeros(len(points), bool)
    for k, ids in enumerate(_BROWS):
        line = lm[list(ids)]
        # iBUG brow points run along the brow's upper edge: centre the band below them
        dist = _segment_distance(points, line + np.array([0.0, 0.03 * iod]))
        brows |= dist < 0.06 * iod
        out[f"brow_zone_{k}"] = dist < 0.15 * iod
        out[f"forehead_{k}"] = _segment_distance(
            points, line - np.array([0.0, 0.11 * iod])) < 0.04 * iod
    out["brows"] = brows & ~eyes
    return out


# --------------------------------------------------------------------------- estimation
def _estimate(colors: np.ndarray, masks: dict[str, np.ndarray], settings: MaterialSettings,
              source: str) -> MaterialParams:
    """``colors`` (N, 3) sRGB in [0, 1]; masks over the same N samples."""
    lab = srgb_to_lab(colors)
    n_min = settings.min_samples
    samples = {k: int(v.sum()) for k, v in masks.items()
               if k in ("skin", "lips", "brows", "eyes")}
    samples["skin"] += int(masks.get("skin_2", np.zeros(0, bool)).sum())
    out: dict[str, Any] = {}

    def median(mask: np.ndarray) -> np.ndarray | None:
        return np.median(colors[mask], axis=0) if mask.sum() >= n_min else None

    # the better-lit cheek: shading darkens the far side of a turned or side-lit face
    cheeks = [c for c in (median(masks["skin"]), median(masks.get("skin_2", masks["skin"])))
              if c is not None]
    skin = max(cheeks, key=lambda c: float(srgb_to_lab(c)[0])) if cheeks else None
    if skin is not None:
        skin_lab = srgb_to_lab(skin)
        ita = ita_degrees(skin_lab)
        _, typ, cat = next(t for t in _SKIN_TYPES if ita > t[0])
        out.update(skin_hex=_hex(skin), skin_srgb=_tuple(skin), skin_lab=_tuple(skin_lab),
                   skin_ita_deg=ita, skin_type=typ, skin_category=cat)
    else:
        out.update(skin_hex=None, skin_srgb=None, skin_lab=None, skin_ita_deg=None,
                   skin_type=None, skin_category=None)
    iris = None
    eye_l = lab[masks["eyes"], 0]
    if len(eye_l) >= n_min:
        # not sclera (well below the bright end), and not the darkest quarter of the rest
        # (pupil, lashes, lid shadow)
        sclera_l = float(np.percentile(eye_l, 90))
        dark = masks["eyes"] & (lab[:, 0] < sclera_l - 20.0)
        if dark.sum() >= n_min:
            floor = float(np.percentile(lab[dark, 0], 25))
            iris_mask = dark & (lab[:, 0] >= floor)
            iris = median(iris_mask)
            samples["iris"] = int(iris_mask.sum())
    if iris is not None:
        iris_lab = srgb_to_lab(iris)
        out.update(iris_hex=_hex(iris), iris_srgb=_tuple(iris),
                   iris_lightness=float(iris_lab[0]), iris_category=_iris_category(iris_lab))
    else:
        out.update(iris_hex=None, iris_srgb=None, iris_lightness=None, iris_category=None)
    brow_mask = masks["brows"]
    if brow_mask.sum() >= n_min:
        hair = np.zeros_like(brow_mask)
        for k in (0, 1):
            side = brow_mask & masks[f"brow_zone_{k}"]
            forehead = masks[f"forehead_{k}"] & ~brow_mask
            if forehead.sum() >= n_min:
                ref_l = float(np.median(lab[forehead, 0]))
            elif skin is not None:
                ref_l = float(srgb_to_lab(skin)[0])
            else:
                ref_l = float(np.percentile(lab[brow_mask, 0], 90))
            hair |= side & (lab[:, 0] < ref_l - settings.hair_contrast)
        samples["brow_hair"] = int(hair.sum())
        brow = median(hair) if hair.sum() >= n_min else median(brow_mask)
        out.update(eyebrow_hex=_hex(brow), eyebrow_srgb=_tuple(brow),
                   eyebrow_density=float(hair.sum() / brow_mask.sum()))
    else:
        out.update(eyebrow_hex=None, eyebrow_srgb=None, eyebrow_density=None)
    lip = median(masks["lips"])
    out.update(lip_hex=None if lip is None else _hex(lip),
               lip_srgb=None if lip is None else _tuple(lip))
    return MaterialParams(**out, source=source, samples=samples)


def _tuple(x: np.ndarray) -> tuple[float, float, float]:
    return (float(x[0]), float(x[1]), float(x[2]))


def _as_srgb(colors: Any, settings: MaterialSettings, what: str) -> np.ndarray:
    a = np.asarray(colors)
    if a.dtype == np.uint8:
        a = a.astype(np.float64) / 255.0
    a = np.asarray(a, np.float64)
    if a.shape[-1] < 3 or not np.isfinite(a).all():
        raise InvalidInputError(f"expected {what} with 3 finite RGB channels, got {a.shape}")
    a = np.clip(a[..., :3], 0.0, 1.0)
    return _to_srgb(a) if settings.encoding == "linear" else a


def estimate_materials(model: MorphableModel, vertex_colors: Any, *,
                       vertices: np.ndarray | None = None,
                       visibility: np.ndarray | None = None,
                       settings: MaterialSettings | None = None) -> MaterialParams:
    """Material parameters from a face model's per-vertex colours (its fine texture).

    Args:
        model: the face model (regions and landmarks).
        vertex_colors: (V, 3) RGB in [0, 1] (or uint8), encoded as ``settings.encoding``.
        vertices: (V, 3) the face's shape (metres, model frame) for the frontal view; default
            the model's mean shape.
        visibility: optional (V,) bool: only these vertices are read (those the photo showed).
        settings: see :class:`MaterialSettings`.

    Returns:
        :class:`MaterialParams` with ``source="texture"``.
    """
    from ..models.mesh import vertex_normals_np

    settings = MaterialSettings() if settings is None else settings
    v = model.num_vertices
    colors = _as_srgb(vertex_colors, settings, "vertex_colors")
    if colors.shape != (v, 3):
        raise InvalidInputError(f"expected vertex_colors ({v}, 3), got {colors.shape}")
    verts = model.mean_shape if vertices is None else np.asarray(vertices, np.float64)
    if verts.shape != (v, 3):
        raise InvalidInputError(f"expected vertices ({v}, 3), got {verts.shape}")
    front = vertex_normals_np(verts, model.triangles)[:, 2] > 0.2
    if visibility is not None:
        vis = np.asarray(visibility, bool).reshape(-1)
        if vis.shape != (v,):
            raise InvalidInputError(f"expected visibility ({v},), got {vis.shape}")
        front &= vis
    # frontal view, image-like axes (x, -y) so "down" is +y as in a photo
    pts = np.stack([verts[:, 0], -verts[:, 1]], 1)
    lm = model.landmarks(verts)
    masks = _landmark_regions(pts, np.stack([lm[:, 0], -lm[:, 1]], 1))
    for name in ("skin", "brows", "lips"):
        ids = model.regions.get(name)
        if ids is not None and len(ids):
            m = np.zeros(v, bool)
            m[ids] = True
            if name == "skin":  # the model's skin within each cheek polygon
                masks["skin"] &= m
                masks["skin_2"] &= m
            else:
                masks[name] = m
    masks = {k: m & front for k, m in masks.items()}
    return _estimate(colors, masks, settings, "texture")


def estimate_materials_from_photo(image: Any, landmarks: np.ndarray, *,
                                  settings: MaterialSettings | None = None) -> MaterialParams:
    """Material parameters from photo pixels inside the 68 landmarks' regions.

    Args:
        image: (H, W, 3) RGB photo, uint8 or float in [0, 1] (``settings.encoding``).
        landmarks: (68, 2) iBUG landmarks, pixels (x right, y down).
        settings: see :class:`MaterialSettings`.

    Returns:
        :class:`MaterialParams` with ``source="photo"``.
    """
    settings = MaterialSettings() if settings is None else settings
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] < 3:
        raise InvalidInputError(f"expected image (H, W, 3), got {img.shape}")
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (68, 2) or not np.isfinite(lm).all():
        raise InvalidInputError(f"expected landmarks (68, 2) in pixels, got {lm.shape}")
    h, w = img.shape[:2]
    pad = 0.3 * float(np.ptp(lm[:, 0]))
    x0, y0 = (max(int(v), 0) for v in lm.min(0) - pad)
    x1, y1 = int(min(lm[:, 0].max() + pad, w)), int(min(lm[:, 1].max() + pad, h))
    if x1 <= x0 or y1 <= y0:
        raise InvalidInputError("the landmarks lie outside the image")
    yy, xx = np.mgrid[y0:y1, x0:x1]
    pts = np.stack([xx.ravel() + 0.5, yy.ravel() + 0.5], 1).astype(np.float64)
    masks = _landmark_regions(pts, lm)
    colors = _as_srgb(img[y0:y1, x0:x1].reshape(-1, img.shape[2]), settings, "image")
    return _estimate(colors, masks, settings, "photo")
