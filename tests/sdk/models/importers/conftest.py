"""Synthetic face meshes and eos landmark files shared by the importer tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

#: ../shared/assets relative to the project root (tests/sdk/importers/conftest.py -> parents[4]).
ASSETS = Path(__file__).resolve().parents[4].parent / "shared" / "assets"


def face_grid(nx: int = 29, ny: int = 39) -> tuple[np.ndarray, np.ndarray]:
    """A face-like bowl in millimetres: x in [-70, 70], y in [-95, 95], bulging towards +Z.

    Returns (V, 3) float64 vertices and (F, 3) int64 triangles, counter-clockwise from +Z.
    """
    x, y = np.meshgrid(np.linspace(-70, 70, nx), np.linspace(-95, 95, ny), indexing="ij")
    r = 120.0
    z = np.sqrt(r**2 - x**2 - 0.5 * y**2) - r
    verts = np.stack([x, y, z], -1).reshape(-1, 3)
    idx = np.arange(nx * ny).reshape(nx, ny)
    a, b = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel()
    c, d = idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    tris = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    return verts, tris


#: Rough frontal positions (mm) of the 68 iBUG points on :func:`face_grid`.
def ibug_layout() -> np.ndarray:
    pts = np.zeros((68, 2))
    t = np.linspace(0, np.pi, 17)
    pts[0:17] = np.stack([-62 * np.cos(t), 34 - 114 * np.sin(t)], 1)
    pts[17:22] = np.stack([np.linspace(-58, -14, 5), [48, 56, 58, 57, 52]], 1)
    pts[22:27] = pts[17:22][::-1] * [-1, 1]
    pts[27:31] = np.stack([[0, 0, 0, 0], [36, 22, 10, -2]], 1)
    pts[31:36] = np.stack([np.linspace(-12, 12, 5), [-13, -16, -17, -16, -13]], 1)
    eye = np.array([[-46, 35], [-38, 40], [-27, 40], [-19, 33], [-27, 30], [-38, 30]])
    pts[36:42] = eye
    pts[42:48] = eye[[3, 2, 1, 0, 5, 4]] * [-1, 1]
    pts[48:60] = np.stack([24 * np.cos(np.linspace(np.pi, -np.pi, 13)[:12]),
                           -36 + 8 * np.sin(np.linspace(np.pi, -np.pi, 13)[:12])], 1)
    pts[60:68] = np.stack([20 * np.cos(np.linspace(np.pi, -np.pi, 9)[:8]),
                           -36 + 3 * np.sin(np.linspace(np.pi, -np.pi, 9)[:8])], 1)
    return pts


def nearest_vertices(verts: np.ndarray, xy: np.ndarray) -> np.ndarray:
    d = ((verts[None, :, :2] - xy[:, None]) ** 2).sum(-1)
    return d.argmin(1)


def write_mapping(path: Path, mapping: dict[int, int]) -> Path:
    """An eos-style TOML mapping; ``mapping`` is 0-based iBUG -> vertex."""
    lines = ["# test mapping", "[landmark_mappings]"]
    lines += [f"{k + 1} = {v}  # point {k + 1}" for k, v in sorted(mapping.items())]
    lines += ["", "[contour_landmarks]", "right = [1, 2]", "left = [16, 17]", ""]
    path.write_text("\n".join(lines))
    return path


def write_contours(path: Path, verts: np.ndarray) -> Path:
    """eos model_contours.json: the grid's side columns from temple to jaw, top first."""
    right = [int(i) for i in np.argsort(-verts[:, 1]) if verts[i, 0] == verts[:, 0].min()
             and -80 < verts[i, 1] < 60]
    left = [int(i) for i in np.argsort(-verts[:, 1]) if verts[i, 0] == verts[:, 0].max()
            and -80 < verts[i, 1] < 60]
    path.write_text(json.dumps({"model_contour": {"right_contour": right,
                                                  "left_contour": left}}))
    return path


@pytest.fixture
def helpers():
    """The helpers above (test modules cannot import conftest under --import-mode=importlib)."""
    from types import SimpleNamespace

    return SimpleNamespace(face_grid=face_grid, ibug_layout=ibug_layout,
                           nearest_vertices=nearest_vertices, write_mapping=write_mapping,
                           write_contours=write_contours, assets=ASSETS)
