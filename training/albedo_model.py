"""An albedo model for face models without one (ICT-FaceKit, Surrey, FLAME), from photos.

``facecraft train albedo`` builds a mean + PCA per-vertex albedo from the de-lit textures of a
folder of photos prepared by ``facecraft train prepare``:

1. pose: a weak-perspective fit of the model's mean-shape landmarks to the face's 68 landmarks
   (:func:`facecraft.sdk.render.pose_fit.fit_weak_perspective`; 5-point faces are skipped);
2. per-vertex photo colour at the visible projected vertices (rasterized visibility);
3. lighting: a closed-form SH fit (:func:`facecraft.sdk.render.lighting.fit_sh`) of the colours
against
   the current albedo estimate (a uniform grey at first), then the de-lit colour
   ``colour / irradiance``; a few alternations refine both;
4. hidden vertices take their mirror vertex's colour where that one is visible;
5. PCA over faces (each vertex weighted by how many faces saw it; unseen entries take the
   weighted mean): mean albedo and ``components`` modes scaled to one standard deviation per
   unit coefficient, as the model's ``albedo(coeffs)`` expects.

The de-lit textures keep the shape's mean geometry and the photos' white balance; the model is a
coarse albedo prior (the texture GCNs add the detail), and its provenance says so.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.models.morphable_model import MorphableModel
from facecraft.sdk.render.cameras import Pose
from facecraft.sdk.render.lighting import fit_sh, sh_irradiance
from facecraft.sdk.render.pose_fit import fit_weak_perspective
from facecraft.sdk.render.renderer import render_mesh
from facecraft.sdk.render.sampling import sample_vertex_colors

from .texture_stage import mirror_vertex_ids

__all__ = ["AlbedoBuildSettings", "AlbedoBuildResult", "build_albedo_model"]


@dataclass(frozen=True)
class AlbedoBuildSettings:
    """How :func:`build_albedo_model` works.

    Attributes:
        components: PCA modes kept (fewer when there are fewer faces).
        grey: the uniform starting albedo of the first lighting fit (linear RGB).
        iterations: lighting fit / de-lighting alternations (>= 1).
        ridge: Tikhonov weight of the SH fits.
        min_faces: refuse to build from fewer usable faces.
        min_irradiance: de-lit colours divide by at least this (avoids blow-ups in shadow).
    """

    components: int = 10
    grey: float = 0.6
    iterations: int = 3
    ridge: float = 1e-3
    min_faces: int = 4
    min_irradiance: float = 0.2

    def __post_init__(self) -> None:
        for name in ("components", "iterations", "min_faces"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InvalidInputError(f"expected {name} an int >= 1, got {v!r}")
        for name in ("grey", "ridge", "min_irradiance"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise InvalidInputError(f"expected {name} a number >= 0, got {v!r}")


@dataclass(frozen=True)
class AlbedoBuildResult:
    """What :func:`build_albedo_model` returns.

    Attributes:
        model: the face model with ``albedo_mean`` / ``albedo_basis`` set.
        faces_used: faces that contributed. faces_skipped: faces without 68 landmarks.
        coverage: fraction of vertices seen in at least one face.
        explained_variance: (K,) fraction of the (weighted) variance each mode explains.
        delit: (N, V, 3) float32 the de-lit per-vertex textures (unseen vertices NaN).
    """

    model: MorphableModel
    faces_used: int
    faces_skipped: int
    coverage: float
    explained_variance: np.ndarray
    delit: np.ndarray


def _delit_face(model: MorphableModel, image: torch.Tensor, lm: np.ndarray,
                settings: AlbedoBuildSettings, mirror: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """(V, 3) de-lit colours and (V,) weights of one face crop ((3, S, S) float in [0, 1])."""
    size = image.shape[-1]
    fit = fit_weak_perspective(model.landmarks(model.mean_shape), lm, (size, size))
    verts = torch.from_numpy(model.mean_shape)[None]
    tri = torch.from_numpy(model.triangles.astype(np.int64))
    grey = torch.full_like(verts, settings.grey)
    pose: Pose = fit.pose
    out = render_mesh(verts, tri, grey, camera=fit.camera, pose=pose)
    sampled = sample_vertex_colors(image[None], out.screen_verts, out.visibility)
    colours, vis = sampled[..., :3], sampled[..., 3]
    weight = vis * out.normals[..., 2].clamp(min=0)  # grazing vertices count less
    albedo = grey
    for _ in range(settings.iterations):
        sh = fit_sh(colours, albedo, out.normals, weight, ridge=settings.ridge)
        irr = sh_irradiance(out.normals, sh).clamp(min=settings.min_irradiance)
        delit = (colours / irr).clamp(0.0, 1.0)
        # keep the scale of the grey start: the SH absorbs the albedo's overall brightness
        albedo = torch.where(vis[..., None] > 0, delit, albedo)
    delit_np = delit[0].numpy()
    w = weight[0].numpy()
    hidden = w <= 0
    take = hidden & (w[mirror] > 0)
    delit_np[take] = delit_np[mirror[take]]
    w = np.where(take, w[mirror] * 0.5, w)
    return delit_np.astype(np.float32), w.astype(np.float32)


def build_albedo_model(model: MorphableModel, photo_data: str | Path,
                       settings: AlbedoBuildSettings = AlbedoBuildSettings(), *,
                       progress: bool = False) -> AlbedoBuildResult:
    """Build a PCA albedo for ``model`` from a prepared photo folder (module docstring).

    Args:
        model: any face model (an existing albedo is replaced).
        photo_data: a folder written by ``facecraft train prepare`` (68-point landmarks).
        settings: see :class:`AlbedoBuildSettings`.
        progress: a tqdm bar.

    Raises:
        InvalidInputError: fewer than ``settings.min_faces`` usable faces.
    """
    from .photo_data import PhotoFaces

    ds = PhotoFaces(photo_data)
    mirror = mirror_vertex_ids(model.mean_shape)
    textures, weights, skipped = [], [], 0
    ids = range(len(ds))
    if progress:
        from tqdm import tqdm

        ids = tqdm(ids, desc="de-light faces", unit="face")
    with torch.no_grad():
        for i in ids:
            item = ds[i]
            valid = item["landmarks_valid"].numpy()
            if valid.sum() < 68:
                skipped += 1
                continue
            t, w = _delit_face(model, item["image"].float(), item["landmarks"].numpy(),
                               settings, mirror)
            textures.append(t)
            weights.append(w)
    if len(textures) < settings.min_faces:
        raise InvalidInputError(f"{photo_data} gave {len(textures)} faces with 68 landmarks; "
                                f"an albedo model needs at least {settings.min_faces}")
    x = np.stack(textures).astype(np.float64)  # (N, V, 3)
    w = np.stack(weights).astype(np.float64)  # (N, V)
    wsum = w.sum(0)
    seen = wsum > 0
    mean = np.where(seen[:, None], (x * w[..., None]).sum(0) / np.maximum(wsum, 1e-12)[:, None],
                    np.nan)
    fill = np.nanmean(mean[seen], axis=0) if seen.any() else np.full(3, settings.grey)
    mean[~seen] = fill
    filled = np.where(w[..., None] > 0, x, mean[None])
    centred = (filled - mean[None]) * np.sqrt(w / np.maximum(w.max(0, keepdims=True), 1e-12)
                                              )[..., None]
    n = len(textures)
    k = min(settings.components, n - 1)
    _, s, vt = np.linalg.svd(centred.reshape(n, -1), full_matrices=False)
    std = s[:k] / math.sqrt(max(n - 1, 1))
    basis = (vt[:k] * std[:, None]).reshape(k, -1, 3)
    var = s ** 2
    explained = var[:k] / max(var.sum(), 1e-12)
    names = tuple(f"albedo_pc{j:02d}" for j in range(k))
    provenance = dict(model.provenance)
    provenance["albedo"] = (f"facecraft train albedo: PCA of {n} de-lit photo textures "
                            f"({Path(photo_data).name}), weak-perspective landmark pose, SH "
                            "lighting fit; a coarse prior")
    new = dataclasses.replace(model, albedo_mean=np.clip(mean, 0, 1).astype(np.float32),
                              albedo_basis=basis.astype(np.float32), albedo_names=names,
                              provenance=provenance)
    delit = np.where(w[..., None] > 0, x, np.nan).astype(np.float32)
    return AlbedoBuildResult(model=new, faces_used=n, faces_skipped=skipped,
                             coverage=float(seen.mean()),
                             explained_variance=explained.astype(np.float64), delit=delit)
