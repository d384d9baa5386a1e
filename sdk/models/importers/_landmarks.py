"""iBUG-68 landmarks for importers: eos mapping files, contours, and filling the gaps.

Third-party models rarely define all 68 iBUG points. eos's mapping files (``ibug_to_sfm.txt``,
``ibug_to_bfm2009.txt``, ``ibug_to_bfm2017-1_bfm_nomouth.txt``) map only the points that have a
fixed vertex; the jaw line is left to a *contour* file (``*_model_contours.json``) because eos
picks it per pose. :class:`~facecraft.sdk.models.morphable_model.MorphableModel` needs all 68 as
fixed
(triangle, barycentric) pairs, so :func:`complete_ibug68` fills the rest from the mean shape, in
this order (indices are 0-based, as in :mod:`facecraft.sdk.photo.landmarks`):

1. **mapped**: the vertex the mapping names (one-hot barycentric).
2. **contour** (jaw 0-7 and 9-16): each side's contour candidates, ordered top to bottom and
   ended at the chin, are cut at the height of the outer eye corners (where iBUG point 0 sits)
   and sampled at equal arc length; each sample is moved to the nearest surface point. This is
   the frontal-pose contour; eos re-picks it per pose, a fixed model cannot. An unmapped chin (8)
   is the lowest midline point whose surface faces the camera within 60 degrees.
3. **rule**: points with a simple proportional rule, placed in the frontal view and dropped onto
   the surface by a ray along -Z (nearest surface point if the ray misses): nose-bridge top 27
   (above the inner eye corners), subnasale 33 (55 % from the nose tip 30 to the upper lip 51),
   nostril wings 31/35 (beside 33, 0.32 intercanthal widths out), inner mouth corners 60/64 (the
   outer corners 48/54: they coincide on a closed neutral mouth), eyelids 37, 38, 40, 41, 43, 44,
   46, 47 (fractions of the eye width from the corners) and eyebrow points that are not between
   two known points of their brow (offsets from the eye corners in eye widths). The proportions
   were measured on the Surrey model's mean face (where eos maps these points) and rounded; on
   it they reproduce the mapped points within 1.5 mm, on other faces expect a few millimetres.
4. **interpolated**: gaps between two known points of one group (a brow, the nose bridge or
   base, an eye, a lip contour) are filled at equal steps on the straight line between them,
   then dropped onto the surface as in 3.

Anything still missing raises :class:`ModelFormatError`. The rules assume the source frame:
+Y up, the face looking down +Z (true for BFM, FLAME and the SFM).
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np

from ...errors import InvalidInputError, ModelFormatError
from ...photo.landmarks import NUM_LANDMARKS
from ..morphable_model import landmarks_from_vertices

__all__ = [
    "read_eos_mapping",
    "read_eos_contours",
    "find_contours_file",
    "complete_ibug68",
    "closest_surface_points",
]

_JAW = list(range(0, 17))
_POLYLINES = [list(range(17, 22)), list(range(22, 27)), list(range(27, 31)), list(range(31, 36))]
_LOOPS = [list(range(36, 42)), list(range(42, 48)), list(range(48, 60)), list(range(60, 68))]
_BROWS = {17: (36, 39), 18: (36, 39), 19: (36, 39), 20: (36, 39), 21: (36, 39),
          26: (45, 42), 25: (45, 42), 24: (45, 42), 23: (45, 42), 22: (45, 42)}
# (t, h): along the eye from its outer corner (t, eye widths) and up from the corner line (h).
_BROW_TH = {17: (-0.45, 0.40), 18: (-0.20, 0.66), 19: (0.22, 0.80), 20: (0.65, 0.80),
            21: (1.18, 0.73)}
_BROW_TH.update({26: _BROW_TH[17], 25: _BROW_TH[18], 24: _BROW_TH[19], 23: _BROW_TH[20],
                 22: _BROW_TH[21]})
_LIDS = {37: (36, 39, 0.35, 0.17), 38: (36, 39, 0.70, 0.22), 40: (36, 39, 0.65, -0.14),
         41: (36, 39, 0.40, -0.11), 44: (45, 42, 0.35, 0.17), 43: (45, 42, 0.70, 0.22),
         47: (45, 42, 0.65, -0.14), 46: (45, 42, 0.40, -0.11)}


# --------------------------------------------------------------------------- file readers
def read_eos_mapping(path: str | Path, num_vertices: int) -> dict[int, int]:
    """Read an eos landmark mapping file (TOML, ``[landmark_mappings]``, ``N = vertex``).

    Args:
        path: e.g. ``ibug_to_sfm.txt``; keys are 1-based iBUG numbers, values 0-based vertex ids.
        num_vertices: V of the model, to check the ids.

    Returns:
        0-based iBUG index -> vertex id, for the points the file maps.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ModelFormatError(f"cannot read landmark mapping {path}: {e.strerror or e}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ModelFormatError(
            f"landmark mapping {path} is not an eos mapping (TOML): {e}") from None
    table = data.get("landmark_mappings")
    if not isinstance(table, dict) or not table:
        raise ModelFormatError(f"landmark mapping {path} has no [landmark_mappings] table")
    out: dict[int, int] = {}
    for key, value in table.items():
        if not (key.isdigit() and 1 <= int(key) <= NUM_LANDMARKS) or not isinstance(value, int):
            raise ModelFormatError(
                f"landmark mapping {path}: entry {key!r} = {value!r} is not "
                f"'<iBUG number 1-{NUM_LANDMARKS}> = <vertex id>'")
        if not 0 <= value < num_vertices:
            raise ModelFormatError(
                f"landmark mapping {path}: iBUG point {key} -> vertex {value}, but the model has "
                f"{num_vertices} vertices (is the mapping for another model?)")
        out[int(key) - 1] = value
    return out


def read_eos_contours(path: str | Path, num_vertices: int) -> tuple[list[int], list[int]]:
    """Read an eos ``*_model_contours.json``: (right, left) contour candidate vertex ids."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        block = data["model_contour"]
        right = [int(v) for v in block["right_contour"]]
        left = [int(v) for v in block["left_contour"]]
    except OSError as e:
        raise ModelFormatError(f"cannot read contour file {path}: {e.strerror or e}") from None
    except (ValueError, KeyError, TypeError) as e:
        raise ModelFormatError(
            f"contour file {path} is not an eos model_contours.json "
            f"(model_contour.right_contour / left_contour): {e}") from None
    if len(right) < 2 or len(left) < 2:
        raise ModelFormatError(f"contour file {path}: each side needs at least 2 vertices")
    bad = [v for v in right + left if not 0 <= v < num_vertices]
    if bad:
        raise ModelFormatError(
            f"contour file {path}: vertex ids {bad[:5]} outside the model's {num_vertices}")
    return right, left


def find_contours_file(mapping_path: str | Path) -> Path | None:
    """eos's naming: ``ibug_to_X.txt`` sits beside ``X_model_contours.json``; None if absent."""
    p = Path(mapping_path)
    stem = p.stem[len("ibug_to_"):] if p.stem.startswith("ibug_to_") else p.stem
    cand = p.with_name(f"{stem}_model_contours.json")
    return cand if cand.is_file() else None


# --------------------------------------------------------------------------- geometry
def closest_surface_points(verts: np.ndarray, tris: np.ndarray,
                           points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest point on a triangle mesh for each query point.

    Args:
        verts: (V, 3) float; tris: (F, 3) int; points: (P, 3) float, same units.

    Returns:
        ``(faces, bary)``: (P,) int32 triangle ids and (P, 3) float32 barycentric coordinates.
    """
    v = np.asarray(verts, np.float64)
    t = np.asarray(tris, np.int64)
    cent = v[t].mean(axis=1)
    faces = np.zeros(len(points), np.int32)
    bary = np.zeros((len(points), 3), np.float32)
    for n, p in enumerate(np.asarray(points, np.float64)):
        d = ((cent - p) ** 2).sum(1)
        cand = np.argpartition(d, 511)[:512] if len(d) > 512 else np.arange(len(d))
        a, b, c = v[t[cand, 0]], v[t[cand, 1]], v[t[cand, 2]]
        w = _closest_on_triangles(p, a, b, c)
        q = w[:, :1] * a + w[:, 1:2] * b + w[:, 2:] * c
        best = int(np.argmin(((q - p) ** 2).sum(1)))
        faces[n] = cand[best]
        bary[n] = w[best]
    return faces, bary


def _closest_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray,
                          c: np.ndarray) -> np.ndarray:
    """(n, 3) barycentric coordinates of the point of each triangle nearest ``p``."""
    ab, ac, ap = b - a, c - a, p - a
    d00, d01, d11 = (ab * ab).sum(1), (ab * ac).sum(1), (ac * ac).sum(1)
    d20, d21 = (ap * ab).sum(1), (ap * ac).sum(1)
    den = d00 * d11 - d01 * d01
    ok = den > 1e-30
    safe = np.where(ok, den, 1.0)
    wv = (d11 * d20 - d01 * d21) / safe
    ww = (d00 * d21 - d01 * d20) / safe
    wu = 1.0 - wv - ww
    inside = ok & (wu >= 0) & (wv >= 0) & (ww >= 0)
    best_w = np.stack([wu, wv, ww], 1)
    best_d = np.where(inside, (((a + wv[:, None] * ab + ww[:, None] * ac) - p) ** 2).sum(1),
                      np.inf)
    for i, j in ((0, 1), (1, 2), (2, 0)):
        s0, s1 = (a, b, c)[i], (a, b, c)[j]
        e = s1 - s0
        ee = np.maximum((e * e).sum(1), 1e-30)
        s = np.clip(((p - s0) * e).sum(1) / ee, 0.0, 1.0)
        d = ((s0 + s[:, None] * e - p) ** 2).sum(1)
        better = d < best_d
        w = np.zeros_like(best_w)
        w[:, i], w[:, j] = 1.0 - s, s
        best_w = np.where(better[:, None], w, best_w)
        best_d = np.where(better, d, best_d)
    return best_w


def _frontal_hit(corners: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                 xy: np.ndarray) -> tuple[int, np.ndarray] | None:
    """Front-most (largest Z) surface point under ``xy`` looking down -Z, or None.

    ``corners`` is (F, 3, 3) triangle corner positions, ``lo``/``hi`` their (F, 2) XY bounds.
    """
    v = corners
    cand = np.flatnonzero(np.all((lo <= xy) & (xy <= hi), axis=1))
    if not cand.size:
        return None
    a, b, c = v[cand, 0], v[cand, 1], v[cand, 2]
    e1, e2, q = b[:, :2] - a[:, :2], c[:, :2] - a[:, :2], xy - a[:, :2]
    den = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    ok = np.abs(den) > 1e-30
    den = np.where(ok, den, 1.0)
    wv = (q[:, 0] * e2[:, 1] - q[:, 1] * e2[:, 0]) / den
    ww = (e1[:, 0] * q[:, 1] - e1[:, 1] * q[:, 0]) / den
    wu = 1.0 - wv - ww
    hit = ok & (wu >= -1e-9) & (wv >= -1e-9) & (ww >= -1e-9)
    if not hit.any():
        return None
    z = wu * a[:, 2] + wv * b[:, 2] + ww * c[:, 2]
    k = int(np.argmax(np.where(hit, z, -np.inf)))
    w = np.clip(np.array([wu[k], wv[k], ww[k]]), 0.0, None)
    return int(cand[k]), (w / w.sum()).astype(np.float32)


# --------------------------------------------------------------------------- completion
class _Landmarks:
    """Known landmarks as (face, bary) plus their 3D position on the mean shape."""

    def __init__(self, verts: np.ndarray, tris: np.ndarray) -> None:
        self.v = np.asarray(verts, np.float64)
        self.t = np.asarray(tris, np.int64)
        self.face: dict[int, int] = {}
        self.bary: dict[int, np.ndarray] = {}
        self.how: dict[int, str] = {}
        self.corners = self.v[self.t]
        self.lo, self.hi = self.corners[:, :, :2].min(1), self.corners[:, :, :2].max(1)

    def ray(self, xy: np.ndarray) -> tuple[int, np.ndarray] | None:
        return _frontal_hit(self.corners, self.lo, self.hi, xy)

    def pos(self, k: int) -> np.ndarray:
        return self.bary[k] @ self.v[self.t[self.face[k]]]

    def has(self, *ks: int) -> bool:
        return all(k in self.face for k in ks)

    def set(self, k: int, face: int, bary: np.ndarray, how: str) -> None:
        self.face[k], self.bary[k], self.how[k] = int(face), np.asarray(bary, np.float64), how

    def drop(self, k: int, estimate: np.ndarray, how: str) -> None:
        """Place landmark k on the surface under ``estimate`` (frontal ray, else nearest)."""
        hit = self.ray(estimate[:2])
        if hit is None:
            f, b = closest_surface_points(self.v, self.t, estimate[None])
            hit = (int(f[0]), b[0])
        self.set(k, hit[0], hit[1], how)

    def near(self, k: int, estimate: np.ndarray, how: str) -> None:
        f, b = closest_surface_points(self.v, self.t, estimate[None])
        self.set(k, f[0], b[0], how)


def _eye_frame(lm: _Landmarks, outer: int, inner: int):
    po, pi = lm.pos(outer), lm.pos(inner)
    w = float(np.linalg.norm(pi[:2] - po[:2]))
    ex = np.zeros(3)
    ex[:2] = (pi[:2] - po[:2]) / max(w, 1e-12)
    ey = np.array([-ex[1], ex[0], 0.0])
    if ey[1] < 0:
        ey = -ey
    return po, pi, w, ex, ey


def _chin(lm: _Landmarks, right: np.ndarray, left: np.ndarray) -> None:
    """Chin 8: the lowest midline point that still faces the camera.

    Rays along -Z at the midline (x of the two lowest contour candidates) walk down from the
    lower lip (57; else half a contour-gap above the candidates) in steps of 1/400 of the face
    width; the chin is the last hit whose surface normal is within 60 degrees of +Z, before the
    rays miss or jump back by more than 5 % of the face width (onto a neck). On the SFM this
    lands 2.5 mm from the chin vertex that eos maps.
    """
    width = float(np.linalg.norm(right[0] - left[0]))
    x0 = (right[-1, 0] + left[-1, 0]) / 2
    y_hi = (lm.pos(57)[1] if lm.has(57)
            else max(right[-1, 1], left[-1, 1]) + 0.5 * np.linalg.norm(right[-1] - left[-1]))
    y_lo = float(lm.v[:, 1].min())
    last = None
    for y in np.arange(y_hi, y_lo, -width / 400):
        hit = lm.ray(np.array([x0, y]))
        if hit is None:
            break
        a, b, c = lm.corners[hit[0]]
        n = np.cross(b - a, c - a)
        z = hit[1] @ lm.corners[hit[0], :, 2]
        if n[2] < 0.5 * np.linalg.norm(n) or (last is not None and last[2] - z > 0.05 * width):
            break
        last = (hit[0], hit[1], z)
    if last is None:
        lm.near(8, (right[-1] + left[-1]) / 2, "contour")
    else:
        lm.set(8, last[0], last[1], "contour")


def _contour_jaw(lm: _Landmarks, right: list[int], left: list[int]) -> None:
    v = lm.v
    sides = []
    for ids in (right, left):
        pts = v[ids]
        sides.append(pts if pts[0, 1] >= pts[-1, 1] else pts[::-1])  # top -> bottom
    if not lm.has(8):
        _chin(lm, sides[0], sides[1])
    chin = lm.pos(8)
    y0 = (lm.pos(36)[1] + lm.pos(45)[1]) / 2 if lm.has(36, 45) else None
    for pts, targets in ((sides[0], range(0, 8)), (sides[1], range(16, 8, -1))):
        line = np.vstack([pts, chin[None]])
        if y0 is not None and line[0, 1] > y0:  # cut at the eye-corner height
            below = np.flatnonzero(line[:, 1] <= y0)
            if below.size and below[0] > 0:
                i = below[0]
                p0, p1 = line[i - 1], line[i]
                s = (p0[1] - y0) / max(p0[1] - p1[1], 1e-12)
                line = np.vstack([p0 + s * (p1 - p0), line[i:]])
        seg = np.linalg.norm(np.diff(line, axis=0), axis=1)
        arc = np.concatenate([[0.0], np.cumsum(seg)])
        for n, k in enumerate(targets):
            if lm.has(k):
                continue
            s = arc[-1] * n / 8
            i = min(int(np.searchsorted(arc, s, side="right")) - 1, len(seg) - 1)
            u = (s - arc[i]) / max(seg[i], 1e-12)
            lm.near(k, line[i] + u * (line[i + 1] - line[i]), "contour")


def _rules(lm: _Landmarks) -> None:
    if not lm.has(27) and lm.has(39, 42):
        a, b = lm.pos(39), lm.pos(42)
        d = float(np.linalg.norm(b[:2] - a[:2]))
        lm.drop(27, (a + b) / 2 + np.array([0.0, 0.2 * d, 0.0]), "rule")
    if not lm.has(33) and lm.has(30, 51):
        lm.drop(33, lm.pos(30) + 0.55 * (lm.pos(51) - lm.pos(30)), "rule")
    if lm.has(30, 33, 39, 42) and not lm.has(31, 35):
        a, b = lm.pos(39), lm.pos(42)
        d = float(np.linalg.norm(b[:2] - a[:2]))
        ex = np.zeros(3)
        ex[:2] = (b[:2] - a[:2]) / max(d, 1e-12)
        base = lm.pos(33) + 0.24 * (lm.pos(30) - lm.pos(33))
        for k, sign in ((31, -1.0), (35, 1.0)):
            if not lm.has(k):
                lm.drop(k, base + sign * 0.32 * d * ex, "rule")
    for inner, outer in ((60, 48), (64, 54)):
        if not lm.has(inner) and lm.has(outer):
            lm.set(inner, lm.face[outer], lm.bary[outer], "rule")
    for k, (o, i, t, h) in _LIDS.items():
        if not lm.has(k) and lm.has(o, i):
            po, pi, w, ex, ey = _eye_frame(lm, o, i)
            lm.drop(k, po + t * (pi - po) * np.array([0, 0, 1.0]) + (t * ex + h * ey) * w, "rule")
    for brow in (list(range(17, 22)), list(range(22, 27))):
        known = [n for n, k in enumerate(brow) if lm.has(k)]
        for n, k in enumerate(brow):
            between = known and known[0] < n < known[-1]
            o, i = _BROWS[k]
            if lm.has(k) or between or not lm.has(o, i):
                continue
            po, pi, w, ex, ey = _eye_frame(lm, o, i)
            t, h = _BROW_TH[k]
            lm.drop(k, po + t * (pi - po) * np.array([0, 0, 1.0]) + (t * ex + h * ey) * w, "rule")


def _interpolate(lm: _Landmarks) -> None:
    groups = [(g, False) for g in _POLYLINES] + [(g, True) for g in _LOOPS]
    for group, loop in groups:
        known = [n for n, k in enumerate(group) if lm.has(k)]
        if len(known) < 2:
            continue
        pairs = list(zip(known[:-1], known[1:], strict=True))
        if loop:
            pairs.append((known[-1], known[0] + len(group)))
        for a, b in pairs:
            if b - a < 2:
                continue
            pa, pb = lm.pos(group[a]), lm.pos(group[b % len(group)])
            for n in range(a + 1, b):
                k = group[n % len(group)]
                if not lm.has(k):
                    lm.drop(k, pa + (n - a) / (b - a) * (pb - pa), "interpolated")


def complete_ibug68(verts: np.ndarray, triangles: np.ndarray, mapped: dict[int, int], *,
                    contours: tuple[list[int], list[int]] | None = None,
                    source: str = "the landmark mapping") -> tuple[np.ndarray, np.ndarray, dict]:
    """All 68 iBUG landmarks on a mesh from a partial vertex mapping (see the module docstring).

    Args:
        verts: (V, 3) mean shape, any unit, +Y up, face towards +Z.
        triangles: (F, 3) int.
        mapped: 0-based iBUG index -> vertex id.
        contours: (right, left) contour candidate vertex ids, or None.
        source: what to name in error messages.

    Returns:
        ``(faces, bary, report)``: (68,) int32, (68, 3) float32, and a JSON-able dict
        ``{"mapped": [...], "contour": [...], "rule": [...], "interpolated": [...]}`` of 0-based
        iBUG indices by how each was obtained.
    """
    lm = _Landmarks(verts, triangles)
    if mapped:
        keys = sorted(mapped)
        try:
            f, b = landmarks_from_vertices(np.array([mapped[k] for k in keys]), lm.t)
        except InvalidInputError as e:
            raise ModelFormatError(f"{source}: {e}") from None
        for k, fk, bk in zip(keys, f, b, strict=True):
            lm.set(k, fk, bk, "mapped")
    if contours is not None and not all(lm.has(k) for k in _JAW):
        _contour_jaw(lm, *contours)
    _rules(lm)
    for _ in range(3):
        _interpolate(lm)
    missing = [k for k in range(NUM_LANDMARKS) if not lm.has(k)]
    if missing:
        hint = (" (the jaw line needs a contour file: pass contours=PATH, an eos "
                "*_model_contours.json)" if set(missing) & set(_JAW) and contours is None else "")
        raise ModelFormatError(
            f"{source} leaves iBUG points {[k + 1 for k in missing]} (1-based) undefined and they "
            f"cannot be estimated{hint}; use a mapping that defines more points")
    faces = np.array([lm.face[k] for k in range(NUM_LANDMARKS)], np.int32)
    bary = np.array([lm.bary[k] for k in range(NUM_LANDMARKS)], np.float32)
    report = {how: sorted(k for k, h in lm.how.items() if h == how)
              for how in ("mapped", "contour", "rule", "interpolated")}
    return faces, bary, report
