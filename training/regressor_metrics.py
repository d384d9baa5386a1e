"""Accuracy of a coefficient regressor on synthetic faces with exact ground truth.

:func:`evaluate_regressor` is the trainer's validation (``metrics.json``'s ``val``);
:func:`procrustes_align` is its rigid alignment, also used by
:mod:`facecraft.training.eval_regressor`.
"""

from __future__ import annotations

import numpy as np
import torch

from facecraft.sdk.errors import InvalidInputError
from facecraft.training.regressor import CoeffRegressor
from facecraft.training.regressor_terms import RegressorTerms
from facecraft.training.synthetic import SyntheticFaces

__all__ = ["procrustes_align", "evaluate_regressor", "EYE_OUTER"]

#: iBUG-68 outer eye corners (0-based), the NME normaliser.
EYE_OUTER = (36, 45)


def procrustes_align(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Rigidly align ``source`` onto ``target`` (rotation and translation, no scale; Kabsch).

    Args:
        source: (B, N, 3) float points.
        target: (B, N, 3) float points, same order.

    Returns:
        (B, N, 3): ``source`` rotated and translated to minimise the squared distances.
    """
    if source.ndim != 3 or source.shape[-1] != 3 or source.shape != target.shape:
        raise InvalidInputError(f"expected source and target (B, N, 3) of one shape, got "
                                f"{tuple(source.shape)} and {tuple(target.shape)}")
    s64, t64 = source.double(), target.double()
    mu_s, mu_t = s64.mean(1, keepdim=True), t64.mean(1, keepdim=True)
    cov = (s64 - mu_s).transpose(1, 2) @ (t64 - mu_t)  # (B, 3, 3)
    u, _, vt = torch.linalg.svd(cov)
    d = torch.sign(torch.linalg.det(vt.transpose(1, 2) @ u.transpose(1, 2)))
    fix = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    rot = vt.transpose(1, 2) @ fix @ u.transpose(1, 2)  # maps centred source to target
    out = (s64 - mu_s) @ rot.transpose(1, 2) + mu_t
    return out.to(source.dtype)


@torch.no_grad()
def evaluate_regressor(regressor: CoeffRegressor, faces: SyntheticFaces, *,
                       batch_size: int = 16) -> dict[str, float]:
    """Accuracy of ``regressor`` on every sample of ``faces`` (eval mode inside the call).

    Returns:
        ``vertex_error_mm``: mean per-vertex distance between the predicted and true
        model-frame shapes after rigid Procrustes alignment, over the model's ``"face"``
        region (all vertices without one), millimetres; ``mean_face_vertex_error_mm``: the
        same for the mean face (the untrained baseline); ``landmark_nme``: mean 68-landmark
        error over the true outer-eye-corner distance; ``landmark_error_px``: the mean error
        in pixels; ``angle_error_deg``: mean absolute pitch / yaw / roll error; ``count``.
    """
    was_training = regressor.training
    regressor.eval()
    dev = next(regressor.parameters()).device
    terms = RegressorTerms(faces.model, faces.settings.image_size, dev)
    face_ids = faces.model.regions.get("face")
    ids = (torch.from_numpy(np.asarray(face_ids, np.int64)).to(dev)
           if face_ids is not None and len(face_ids) else None)
    sums = {"vertex_error_mm": 0.0, "mean_face_vertex_error_mm": 0.0, "landmark_nme": 0.0,
            "landmark_error_px": 0.0, "angle_error_deg": 0.0}
    n = 0
    try:
        for start in range(0, faces.length, batch_size):
            batch = faces.render_batch(range(start, min(faces.length, start + batch_size)))
            batch = batch.to(dev)
            pred = regressor(batch.image)
            verts = terms.layer(pred.identity, pred.expression)
            target = terms.layer(batch.identity, batch.expression)
            mean = terms.layer.mean_shape.reshape(1, -1, 3).expand_as(target)
            if ids is not None:
                verts, target, mean = verts[:, ids], target[:, ids], mean[:, ids]
            for key, src in (("vertex_error_mm", verts), ("mean_face_vertex_error_mm", mean)):
                err = (procrustes_align(src, target) - target).norm(dim=-1).mean(1)
                sums[key] += float(err.sum()) * 1000.0
            lm = terms.landmarks2d(pred, terms.layer(pred.identity, pred.expression))
            gt_lm = batch.landmarks2d
            dist = (lm - gt_lm).norm(dim=-1).mean(1)
            iod = (gt_lm[:, EYE_OUTER[0]] - gt_lm[:, EYE_OUTER[1]]).norm(dim=-1)
            sums["landmark_nme"] += float((dist / iod.clamp(min=1e-6)).sum())
            sums["landmark_error_px"] += float(dist.sum())
            sums["angle_error_deg"] += float(
                torch.rad2deg((pred.angles - batch.angles).abs()).mean(1).sum())
            n += len(batch)
    finally:
        regressor.train(was_training)
    return {**{k: v / max(n, 1) for k, v in sums.items()}, "count": n}
