"""The regressor trainer's loss terms: synthetic batches with ground truth, and real photos.

:class:`RegressorTerms` decodes predicted coefficients with the face model's torch layer and
computes the supervised terms on a synthetic batch; :class:`PhotoTerms` computes Deng et al.'s
weakly-supervised terms on a :class:`~facecraft.training.photo_data.PhotoFaces` batch (see
:mod:`facecraft.training.train_regressor` for the terms and their weights).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.models.morphable_model import MorphableModel
from facecraft.sdk.render.cameras import PerspectiveCamera
from facecraft.sdk.render.renderer import render_mesh
from facecraft.training.losses import (
    LossWeights,
    coefficient_regularizer,
    deng_landmark_weights,
    identity_loss,
    landmark_loss,
    lighting_regularizer,
    photometric_loss,
    supervised_coeff_loss,
    vertex_loss,
)
from facecraft.training.regressor import Coeffs3DMM

__all__ = ["RegressorTerms", "PhotoTerms", "gt_coeffs"]


def gt_coeffs(batch: Mapping[str, torch.Tensor]) -> Coeffs3DMM:
    """The true coefficients of a synthetic batch (its dict of (B, ...) tensors)."""
    return Coeffs3DMM(identity=batch["identity"], expression=batch["expression"],
                      albedo=batch["albedo"], angles=batch["angles"],
                      lighting=batch["lighting"], translation=batch["translation"])


class RegressorTerms:
    """Decodes predictions and computes the loss terms (shared by training and validation)."""

    def __init__(self, model: MorphableModel, image_size: int, device: torch.device) -> None:
        self.layer = model.to_torch(device)
        self.camera = PerspectiveCamera.paper(image_size)
        self.image_size = image_size
        self.has_albedo = self.layer.albedo_mean is not None

    def landmarks2d(self, c: Coeffs3DMM, verts: torch.Tensor) -> torch.Tensor:
        world = c.pose().transform(verts)
        return self.camera.project(self.layer.landmarks(world))[..., :2]

    def render(self, c: Coeffs3DMM, verts: torch.Tensor, background: torch.Tensor | None = None):
        albedo = self.layer.albedo(c.albedo).clamp(0.0, 1.0)
        return render_mesh(verts, self.layer.triangles, albedo, camera=self.camera,
                           pose=c.pose(), sh=c.lighting, background=background)

    def __call__(self, pred: Coeffs3DMM, batch: Mapping[str, torch.Tensor],
                 weights: LossWeights) -> dict[str, torch.Tensor]:
        gt = gt_coeffs(batch)
        on = set(weights.active())
        terms: dict[str, torch.Tensor] = {}
        blocks = supervised_coeff_loss(pred, gt)
        if "supervised_coeffs" in on:
            terms["supervised_coeffs"] = sum(blocks.values())
        verts = self.layer(pred.identity, pred.expression)
        if "vertex" in on:
            with torch.no_grad():
                target = self.layer(gt.identity, gt.expression)
            terms["vertex"] = vertex_loss(verts, target)
        if "landmark" in on:
            terms["landmark"] = landmark_loss(self.landmarks2d(pred, verts), batch["landmarks2d"],
                                              image_size=self.image_size)
        if "photometric" in on:
            out = self.render(pred, verts)
            photo = batch["image"].permute(0, 2, 3, 1)
            terms["photometric"] = photometric_loss(out.image, photo,
                                                    out.mask & batch["skin_mask"])
        if "coefficient_reg" in on:
            terms["coefficient_reg"] = coefficient_regularizer(pred)
        if "lighting_reg" in on:
            terms["lighting_reg"] = lighting_regularizer(pred.lighting)
        return terms


class PhotoTerms:
    """The weakly-supervised terms on a :class:`PhotoFaces` batch (see the module docstring)."""

    def __init__(self, terms: RegressorTerms, recognizer: nn.Module | None) -> None:
        self.terms, self.recognizer = terms, recognizer

    def __call__(self, pred: Coeffs3DMM, batch: Mapping[str, torch.Tensor],
                 weights: LossWeights) -> dict[str, torch.Tensor]:
        on = set(weights.active())
        t = self.terms
        out: dict[str, torch.Tensor] = {}
        verts = t.layer(pred.identity, pred.expression)
        if "landmark" in on:
            w = deng_landmark_weights(dtype=verts.dtype, device=verts.device)
            out["landmark"] = landmark_loss(t.landmarks2d(pred, verts), batch["landmarks"],
                                            weights=w * batch["landmarks_valid"].to(w.dtype),
                                            image_size=t.image_size)
        if "photometric" in on or "identity" in on:
            photo = batch["image"].permute(0, 2, 3, 1)
            render = t.render(pred, verts, background=photo)
            if "photometric" in on:
                out["photometric"] = photometric_loss(render.image, photo,
                                                      render.mask & batch["skin_mask"][:, 0])
            if "identity" in on:
                if self.recognizer is None:
                    raise InvalidInputError("the photo identity term needs a recognizer")
                with torch.no_grad():
                    target = self.recognizer(batch["image"])
                feat = self.recognizer(render.image.permute(0, 3, 1, 2))
                out["identity"] = identity_loss(feat, target)
        if "coefficient_reg" in on:
            out["coefficient_reg"] = coefficient_regularizer(pred)
        if "lighting_reg" in on:
            out["lighting_reg"] = lighting_regularizer(pred.lighting)
        return out
