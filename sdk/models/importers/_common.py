"""Small helpers shared by the importers: files, units, winding, truncation, provenance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ModelFormatError

__all__ = [
    "UNIT_SCALE",
    "require_file",
    "unit_scale",
    "check_extent",
    "orient_outward",
    "truncate",
    "basis_from_columns",
    "file_record",
    "positive_int",
]

#: Length units a source may use, in metres.
UNIT_SCALE: dict[str, float] = {"um": 1e-6, "mm": 1e-3, "cm": 1e-2, "dm": 1e-1, "m": 1.0}


def require_file(path: str | Path, what: str) -> Path:
    """``Path(path)`` if it is a readable file, else a ModelFormatError naming ``what``."""
    p = Path(path).expanduser()
    if not p.is_file():
        state = "is a folder, not a file" if p.is_dir() else "does not exist"
        raise ModelFormatError(f"{what} {p} {state}")
    return p


def unit_scale(units: str, option: str = "units") -> float:
    """Metres per source unit for a unit name in :data:`UNIT_SCALE`."""
    try:
        return UNIT_SCALE[units]
    except KeyError:
        raise ModelFormatError(
            f"{option}={units!r} is not a known length unit; use one of {sorted(UNIT_SCALE)}"
        ) from None


def check_extent(mean_m: np.ndarray, path: Path, units: str, hint: str = "") -> None:
    """Refuse a mean shape whose size is not that of a face or head once in metres.

    A face mask is about 0.15-0.3 m across and a head about 0.3 m, so a bounding-box diagonal
    outside [0.05, 1.5] m means the units are wrong.
    """
    diag = float(np.linalg.norm(mean_m.max(0) - mean_m.min(0)))
    if not 0.05 <= diag <= 1.5:
        raise ModelFormatError(
            f"{path}: read as {units}, the mean shape is {diag:.3g} m across, which is not a "
            f"face; the file is in other units{hint}")


def orient_outward(verts: np.ndarray, tris: np.ndarray) -> tuple[np.ndarray, bool]:
    """Wind triangles counter-clockwise seen from outside.

    Uses the sign of ``sum(n_f . (c_f - c))`` (face normals ``n_f`` times their offset from the
    vertex centroid ``c``): positive for outward normals on a closed head and on a face mask,
    which bulges away from its centroid.

    Returns:
        ``(triangles, flipped)``: int32 (F, 3), corners 1 and 2 swapped when ``flipped``.
    """
    v = np.asarray(verts, np.float64)
    t = np.asarray(tris, np.int64)
    a, b, c = v[t[:, 0]], v[t[:, 1]], v[t[:, 2]]
    n = np.cross(b - a, c - a)
    score = float(((a + b + c) / 3 - v.mean(0)).ravel() @ n.ravel())
    if score < 0:
        return t[:, [0, 2, 1]].astype(np.int32), True
    return t.astype(np.int32), False


def truncate(basis: np.ndarray, limit: int | None) -> np.ndarray:
    """The first ``limit`` modes of a (K, V, 3) basis (all when None)."""
    return basis if limit is None else basis[:limit]


def basis_from_columns(cols: np.ndarray, num_vertices: int, scale: np.ndarray | float,
                       limit: int | None = None) -> np.ndarray:
    """(3V, K) interleaved-xyz columns times per-mode ``scale`` -> (K', V, 3) float32."""
    k = cols.shape[1] if limit is None else min(limit, cols.shape[1])
    s = np.broadcast_to(np.asarray(scale, np.float64).reshape(-1), (cols.shape[1],))[:k]
    out = np.asarray(cols[:, :k], np.float32).T * s[:, None].astype(np.float32)
    return np.ascontiguousarray(out.reshape(k, num_vertices, 3))


def file_record(path: Path | None) -> dict[str, Any] | None:
    """``{"name", "bytes"}`` for provenance: no folder (model files travel, and a local path says
    nothing elsewhere) and no hash (source models run to 500 MB)."""
    if path is None:
        return None
    return {"name": path.name, "bytes": path.stat().st_size}


def positive_int(value: Any, option: str) -> int | None:
    """Validate a ``max_*`` option: None or an int >= 0 (strings of digits accepted)."""
    if value is None:
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ModelFormatError(f"{option} must be a whole number, got {value!r}") from None
    if n < 0 or (isinstance(value, float) and value != n):
        raise ModelFormatError(f"{option} must be a whole number >= 0, got {value!r}")
    return n
