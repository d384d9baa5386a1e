"""Shared fixtures: where ../shared/assets lives, the unpacked ICT model, a tiny synthetic model."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest

from facecraft.sdk.models.morphable_model import MorphableModel, landmarks_from_vertices

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO.parent / "shared" / "assets"


def assets_or_skip(*parts: str) -> Path:
    """A path under ../shared/assets, or skip the test when it is absent."""
    p = ASSETS.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"../shared/assets/{'/'.join(parts)} not present (a user's own clone has "
                    "no shared assets; CI always has them)")
    return p


@pytest.fixture(scope="session")
def ict_dir(tmp_path_factory) -> Path:
    """ICT-FaceKit's FaceXModel folder, unpacked once per session into a temp cache."""
    tarball = assets_or_skip("face-models", "ict-facekit", "FaceXModel.tar.xz")
    out = tmp_path_factory.mktemp("ict")
    with tarfile.open(tarball) as tf:
        tf.extractall(out, filter="data")
    return out / "FaceXModel"


def uv_sphere(rows: int = 12, cols: int = 16, radius: float = 0.1):
    """A closed UV sphere: (V, 3) float32 vertices and (F, 3) int32 CCW-outward triangles."""
    theta = np.linspace(0, np.pi, rows + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, cols, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(t) * np.sin(p), np.cos(t), np.sin(t) * np.cos(p)], -1).reshape(-1, 3)
    verts = np.concatenate([[[0, 1, 0]], ring, [[0, -1, 0]]]) * radius
    n_ring = rows - 1
    idx = 1 + np.arange(n_ring * cols).reshape(n_ring, cols)
    nxt = np.roll(idx, -1, axis=1)
    a, b, c, d = idx[:-1], nxt[:-1], nxt[1:], idx[1:]
    quads = np.concatenate([np.stack([a, d, c], -1).reshape(-1, 3),
                            np.stack([a, c, b], -1).reshape(-1, 3)])
    top = np.stack([np.zeros(cols, int), idx[0], nxt[0]], -1)
    bottom_id = len(verts) - 1
    bottom = np.stack([np.full(cols, bottom_id), nxt[-1], idx[-1]], -1)
    tris = np.concatenate([top, quads, bottom]).astype(np.int32)
    return verts.astype(np.float32), tris


def make_tiny_model(seed: int = 0, n_id: int = 5, n_exp: int = 4, n_alb: int = 3,
                    albedo: bool = True) -> MorphableModel:
    """A small random morphable model on a UV sphere (for fast unit tests)."""
    rng = np.random.default_rng(seed)
    verts, tris = uv_sphere()
    v = len(verts)
    lm_faces, lm_bary = landmarks_from_vertices(rng.choice(v, 68, replace=True), tris)
    uvs = rng.random((v, 2)).astype(np.float32)
    return MorphableModel(
        name="tiny",
        mean_shape=verts,
        identity_basis=rng.normal(0, 0.002, (n_id, v, 3)),
        identity_names=tuple(f"id{k}" for k in range(n_id)),
        expression_basis=rng.normal(0, 0.002, (n_exp, v, 3)),
        expression_names=tuple(f"exp{k}" for k in range(n_exp)),
        triangles=tris,
        uvs=uvs,
        uv_triangles=tris,
        landmark_faces=lm_faces,
        landmark_bary=lm_bary,
        regions={"face": np.arange(v // 2), "skin": np.arange(v // 4)},
        albedo_mean=np.full((v, 3), 0.5) if albedo else None,
        albedo_basis=rng.normal(0, 0.05, (n_alb, v, 3)) if albedo else None,
        albedo_names=tuple(f"alb{k}" for k in range(n_alb)) if albedo else (),
        provenance={"source": "test"},
        licence="test data",
    )


@pytest.fixture
def tiny_model() -> MorphableModel:
    return make_tiny_model()


@pytest.fixture
def tiny_model_factory():
    """make_tiny_model itself, for tests that need variants."""
    return make_tiny_model
