"""The texture nets' front end and generator loss: what the frozen regressor gives them.

:func:`texture_stage` runs the frozen regressor and the renderer on a batch of aligned crops
(:class:`TextureStage`); :func:`generator_terms` computes the generator's loss terms for a fine
albedo; :func:`split_holdout` and :func:`stack_photos` pick the training and held-out faces of a
prepared photo folder. Shared by :mod:`facecraft.training.train_texture` and
:mod:`facecraft.training.eval_texture`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from facecraft.sdk.render.cameras import PerspectiveCamera
from facecraft.sdk.render.renderer import RenderOutput, render_mesh
from facecraft.sdk.render.sampling import sample_vertex_colors

from .losses import (
    LossWeights,
    albedo_variance,
    identity_loss,
    photometric_loss,
    symmetry_loss,
    texture_vertex_loss,
    wgan_generator_loss,
)
from .regressor import CoeffRegressor, Coeffs3DMM

__all__ = ["TextureStage", "texture_stage", "render_over_photo", "generator_terms",
           "mirror_vertex_ids", "split_holdout", "stack_photos"]


def mirror_vertex_ids(mean_shape: np.ndarray) -> np.ndarray:
    """(V,) int64: for each vertex the vertex nearest its mirror image across x = 0.

    Args:
        mean_shape: (V, 3) float, metres, the model frame (x to the face's left/right, the
            sagittal plane at x = 0).
    """
    from scipy.spatial import cKDTree

    pts = np.asarray(mean_shape, np.float64)
    mirrored = pts * np.array([-1.0, 1.0, 1.0])
    _, idx = cKDTree(pts).query(mirrored)
    return idx.astype(np.int64)


def split_holdout(n: int, holdout_every: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train_ids, held_ids)`` of ``n`` faces: every ``holdout_every``-th (index % n == n - 1)
    is held out; ``holdout_every`` <= 1 holds none out."""
    idx = np.arange(n)
    if holdout_every <= 1:
        return idx, idx[:0]
    held = idx % holdout_every == holdout_every - 1
    return idx[~held], idx[held]


def stack_photos(ds, ids: Sequence[int], device: torch.device) -> dict[str, torch.Tensor]:
    """The ``image`` (B, 3, S, S) and ``skin_mask`` of faces ``ids`` of a photo set, stacked on
    ``device``."""
    items = [ds[int(i)] for i in ids]
    return {k: torch.stack([it[k] for it in items]).to(device)
            for k in ("image", "skin_mask")}


@dataclass(frozen=True)
class TextureStage:
    """Everything the frozen regressor and the renderer give the texture nets for a batch.

    Attributes:
        coeffs: the regressor's coefficients.
        feature: (B, F) float, the decoder's input (backbone feature [+ identity embedding]).
        backbone_feature: (B, Fb) float, the regressor backbone's pooled feature alone.
        identity: (B, D) float, the recognizer's embedding of the photo (None without one):
            the target of L_id.
        verts: (B, V, 3) float, metres, the model-frame shape.
        coarse: (B, V, 3) float in [0, 1], the coarse 3DMM albedo T.
        refiner_input: (B, V, 7) float: coarse albedo, photo colour at the projected vertex
            (0 where hidden), visibility (0/1).
        coarse_render: the coarse albedo rendered with the predicted pose and lighting.
        photo: (B, H, W, 3) float, the crops channels-last.
        face_mask: (B, H, W) bool, projection mask x skin mask.
    """

    coeffs: Coeffs3DMM
    feature: torch.Tensor
    backbone_feature: torch.Tensor
    identity: torch.Tensor | None
    verts: torch.Tensor
    coarse: torch.Tensor
    refiner_input: torch.Tensor
    coarse_render: RenderOutput
    photo: torch.Tensor
    face_mask: torch.Tensor


@torch.no_grad()
def texture_stage(regressor: CoeffRegressor, layer, camera: PerspectiveCamera,
                  images: torch.Tensor, skin: torch.Tensor, *,
                  recognizer: nn.Module | None = None,
                  identity_feature: bool = False) -> TextureStage:
    """Run the frozen front end on a batch of aligned crops.

    Args:
        regressor: the frozen regressor (eval mode).
        layer: the face model's :class:`~facecraft.sdk.models.morphable_model.MorphableModelLayer`.
        camera: the crop's camera (``PerspectiveCamera.paper(S)``).
        images: (B, 3, S, S) float RGB in [0, 1].
        skin: (B, 1, S, S) or (B, S, S) float/bool skin mask.
        recognizer: the identity network: its embedding of the photo is kept (the L_id target)
            and joins the feature when ``identity_feature``.
    """
    coeffs, backbone_feature = regressor.forward_with_features(images)
    identity = recognizer(images) if recognizer is not None else None
    feature = backbone_feature
    if identity_feature and identity is not None:
        feature = torch.cat([backbone_feature, identity], dim=1)
    verts = layer(coeffs.identity, coeffs.expression)
    coarse = layer.albedo(coeffs.albedo).clamp(0.0, 1.0)
    photo = images.permute(0, 2, 3, 1)
    out = render_mesh(verts, layer.triangles, coarse, camera=camera, pose=coeffs.pose(),
                      sh=coeffs.lighting)
    sampled = sample_vertex_colors(images, out.screen_verts, out.visibility)
    refiner_input = torch.cat([coarse, sampled], dim=-1)
    skin = skin.reshape(out.mask.shape) > 0.5
    return TextureStage(coeffs=coeffs, feature=feature, backbone_feature=backbone_feature,
                        identity=identity, verts=verts, coarse=coarse,
                        refiner_input=refiner_input, coarse_render=out, photo=photo,
                        face_mask=out.mask & skin)


def render_over_photo(stage: TextureStage, layer, camera, albedo: torch.Tensor) -> RenderOutput:
    """Render ``albedo`` (B, V, 3) with the stage's shape, pose and lighting over its photo."""
    return render_mesh(stage.verts, layer.triangles, albedo, camera=camera,
                       pose=stage.coeffs.pose(), sh=stage.coeffs.lighting,
                       background=stage.photo)


def generator_terms(stage: TextureStage, fine: torch.Tensor, layer, camera,
                    weights: LossWeights, *, recognizer: nn.Module | None = None,
                    critic: nn.Module | None = None, mirror: torch.Tensor | None = None,
                    skin_ids: torch.Tensor | None = None, render: RenderOutput | None = None
                    ) -> tuple[dict[str, torch.Tensor], RenderOutput]:
    """The generator's unweighted loss terms for the fine albedo ``fine``.

    Args:
        stage: the batch's :class:`TextureStage`.
        fine: (B, V, 3) float in [0, 1], the fine albedo T'.
        layer, camera: the face model layer and the crop camera.
        weights: only terms with a non-zero weight are computed.
        recognizer: for ``identity``. critic: for ``adversarial``.
        mirror: (V,) int64 mirror ids for ``symmetry``. skin_ids: skin vertex ids for
            ``albedo_variance``.
        render: ``fine`` already rendered over the photo (:func:`render_over_photo`), to reuse.

    Returns:
        ``(terms, render)``: the terms and the fine render composited over the photo.
    """
    on = set(weights.active())
    out = render if render is not None else render_over_photo(stage, layer, camera, fine)
    terms: dict[str, torch.Tensor] = {}
    if "photometric" in on:
        terms["photometric"] = photometric_loss(out.image, stage.photo, stage.face_mask)
    over = out.image.permute(0, 3, 1, 2)
    if "identity" in on and recognizer is not None:
        target = stage.identity
        if target is None:
            with torch.no_grad():
                target = recognizer(stage.photo.permute(0, 3, 1, 2))
        terms["identity"] = identity_loss(recognizer(over), target)
    if "adversarial" in on and critic is not None:
        terms["adversarial"] = wgan_generator_loss(critic(over))
    if "texture_vertex" in on:
        lit_coarse = stage.coarse_render.vertex_colors
        terms["texture_vertex"] = (texture_vertex_loss(stage.coarse, fine)
                                   + texture_vertex_loss(lit_coarse, out.vertex_colors))
    if "symmetry" in on and mirror is not None:
        terms["symmetry"] = symmetry_loss(fine, mirror)
    if "albedo_variance" in on and skin_ids is not None:
        terms["albedo_variance"] = albedo_variance(fine, skin_ids)
    return terms, out
