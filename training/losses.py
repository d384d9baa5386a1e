"""Training losses and evaluation metrics: Deng et al. 2019's self-supervised terms, the paper's
texture terms (L_pix, L_vert, identity, symmetry, WGAN-GP) and PSNR / SSIM.

Plain functions do the work; :class:`LossWeights` (frozen, validated) holds every weight in one
place and :func:`combine` turns a dict of unweighted terms into the total::

    terms = {"photometric": photometric_loss(out.image, photo, out.mask & skin),
             "landmark": landmark_loss(pred_lm, gt_lm, image_size=224),
             "coefficient_reg": coefficient_regularizer(coeffs),
             "lighting_reg": lighting_regularizer(coeffs.lighting)}
    total, log = combine(terms, LossWeights())

Conventions: images are channels-last ``(B, H, W, 3)`` float linear RGB in [0, 1], as
:class:`facecraft.sdk.render.renderer.RenderOutput` returns them; masks are ``(B, H, W)`` bool or
float
weights in [0, 1]. Every loss returns a 0-d tensor that is differentiable w.r.t. its float inputs,
and an empty mask gives exactly 0 (still attached to the graph, zero gradient), never NaN.
Euclidean norms use a "safe" square root whose gradient at 0 is 0, so a loss at its optimum is
exactly 0 and its gradient is finite. The metrics (:func:`psnr`, :func:`ssim`) return one value
per image and NaN for an image whose mask is empty (use ``torch.nanmean`` to average).

Default weights are Deep3DFaceRecon_pytorch's (``models/facerecon_model.py``: ``w_color 1.92``,
``w_lm 1.6e-3``, ``w_feat 0.2``, ``w_reg 3e-4`` with ``w_id 1.0, w_exp 0.8, w_tex 1.7e-2``,
``w_gamma 10``, ``w_reflc 5``); :meth:`LossWeights.paper_gcn` gives the paper's texture recipe
(see ``shared/reference/METHOD.md``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from facecraft.sdk.errors import InvalidInputError
from facecraft.training.regressor import Coeffs3DMM

__all__ = [
    "LossWeights",
    "combine",
    "photometric_loss",
    "landmark_loss",
    "deng_landmark_weights",
    "coefficient_regularizer",
    "lighting_regularizer",
    "albedo_variance",
    "supervised_coeff_loss",
    "vertex_loss",
    "texture_vertex_loss",
    "symmetry_loss",
    "identity_loss",
    "wgan_gp_gradient_penalty",
    "wgan_critic_loss",
    "wgan_generator_loss",
    "psnr",
    "ssim",
    "DENG_LANDMARK_PIXEL_WEIGHT",
]

#: Deng et al.'s landmark weight, for squared distances in pixels of a 224 px crop.
DENG_LANDMARK_PIXEL_WEIGHT = 1.6e-3
_DENG_CROP = 224.0


# ---------------------------------------------------------------------------------- helpers
def _tensor(x: object, name: str, shape: str, ndim: int | None = None,
            last: int | None = None) -> torch.Tensor:
    """Check ``x`` is a floating tensor with ``ndim`` dims and last dim ``last``."""
    if not isinstance(x, torch.Tensor):
        raise InvalidInputError(f"expected {name} a torch.Tensor {shape}, got {type(x).__name__}")
    if (ndim is not None and x.ndim != ndim) or (last is not None and x.shape[-1] != last):
        raise InvalidInputError(f"expected {name} {shape}, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise InvalidInputError(f"expected {name} a floating-point tensor, got {x.dtype}")
    return x


def _same_shape(a: torch.Tensor, a_name: str, b: torch.Tensor, b_name: str) -> None:
    if a.shape != b.shape:
        raise InvalidInputError(f"{a_name} {tuple(a.shape)} and {b_name} {tuple(b.shape)} must "
                                "have the same shape")


def _mask(mask: object, name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """A bool or float mask of exactly ``shape``, as weights in ``like``'s dtype."""
    if not isinstance(mask, torch.Tensor):
        raise InvalidInputError(f"expected {name} a bool or float torch.Tensor {shape}, got "
                                f"{type(mask).__name__}")
    if tuple(mask.shape) != tuple(shape):
        raise InvalidInputError(f"expected {name} {tuple(shape)} to match the inputs, got "
                                f"{tuple(mask.shape)}")
    if mask.dtype != torch.bool and not mask.is_floating_point():
        raise InvalidInputError(f"expected {name} bool or float weights in [0, 1], got "
                                f"{mask.dtype}")
    return mask.to(dtype=like.dtype, device=like.device)


def _vertex_mask(mask: torch.Tensor | None, b: int, v: int, like: torch.Tensor
                 ) -> torch.Tensor | None:
    """A (V,) or (B, V) vertex mask broadcast to (B, V) weights, or ``None``."""
    if mask is None:
        return None
    if isinstance(mask, torch.Tensor) and mask.ndim == 1:
        return _mask(mask, "mask", (v,), like).expand(b, v)
    return _mask(mask, "mask", (b, v), like)


def _safe_norm(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Euclidean norm along ``dim`` whose gradient at 0 is 0 (not NaN)."""
    sq = (x * x).sum(dim)
    pos = sq > 0
    return torch.where(pos, torch.where(pos, sq, torch.ones_like(sq)).sqrt(),
                       torch.zeros_like(sq))


def _safe_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den``, 0 where ``den`` is 0 (the numerator is then a sum of zeros)."""
    return num / torch.where(den > 0, den, torch.ones_like(den))


def _masked_mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``values`` (any shape), or its ``weights``-weighted mean (same shape); 0 if empty.
    """
    if weights is None:
        return values.mean() if values.numel() else values.sum()
    return _safe_div((values * weights).sum(), weights.sum())


# ----------------------------------------------------------------------------- weights
@dataclass(frozen=True)
class LossWeights:
    """The weight of each term :func:`combine` sums; 0 turns a term off (it is not even added).

    The defaults are Deep3DFaceRecon_pytorch's self-supervised regressor recipe; the texture
    terms default to 0. Change one per call with ``dataclasses.replace(w, symmetry=0.5)``.

    Attributes:
        photometric: :func:`photometric_loss` (Deng's ``w_color`` 1.92; the paper's L_pix).
        landmark: :func:`landmark_loss` with distances divided by the image size. Deng's 1.6e-3
            on 224 px pixel units is ``1.6e-3 * 224**2`` (about 80.28) here.
        identity: :func:`identity_loss`, 1 - cosine of face-recognition features (Deng's
            ``w_feat`` 0.2).
        coefficient_reg: :func:`coefficient_regularizer` (Deng's ``w_reg`` 3e-4).
        lighting_reg: :func:`lighting_regularizer`, the near-monochromatic light prior (Deng's
            ``w_gamma`` 10).
        albedo_variance: :func:`albedo_variance`, skin albedo variance (Deng's ``w_reflc`` 5;
            the paper's 0.01 skin-colour variance).
        supervised_coeffs: a supervised coefficient term, e.g. the sum of
            :func:`supervised_coeff_loss`'s blocks on synthetic data.
        vertex: :func:`vertex_loss`, metres.
        texture_vertex: :func:`texture_vertex_loss`, the paper's L_vert (GCN vs PCA texture).
        symmetry: :func:`symmetry_loss` (the official code's 0.5).
        adversarial: :func:`wgan_generator_loss` on the generator step (the paper's 1e-3).
        gradient_penalty: :func:`wgan_gp_gradient_penalty`'s weight on the *critic* step (the
            paper's 10): ``wgan_critic_loss(...) + w.gradient_penalty * gp``.
    """

    photometric: float = 1.92
    landmark: float = DENG_LANDMARK_PIXEL_WEIGHT * _DENG_CROP ** 2
    identity: float = 0.2
    coefficient_reg: float = 3e-4
    lighting_reg: float = 10.0
    albedo_variance: float = 5.0
    supervised_coeffs: float = 0.0
    vertex: float = 0.0
    texture_vertex: float = 0.0
    symmetry: float = 0.0
    adversarial: float = 0.0
    gradient_penalty: float = 0.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) \
                    or v < 0:
                raise InvalidInputError(f"expected LossWeights.{f.name} a finite number >= 0 "
                                        f"(0 turns the term off), got {v!r}")
            object.__setattr__(self, f.name, float(v))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The term names :func:`combine` accepts, in field order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    def active(self) -> tuple[str, ...]:
        """Names of the terms with a non-zero weight."""
        return tuple(n for n in self.names() if getattr(self, n) != 0)

    @classmethod
    def paper_gcn(cls, *, render_weight: float = 1.0,
                  reference_weight: float = 0.2) -> LossWeights:
        """The paper's texture (GCN) generator recipe, as its official code implements it.

        ``reference_weight * L_vert + render_weight * (proj + 0.2 identity + 0.5 symmetry
        + 0.01 skin variance) + 1e-3 adversarial``, critic gradient penalty 10. The official
        ``proj`` term is an L1 on image colours at visible vertices; it goes in the
        ``photometric`` slot. Its curriculum is ``render_weight = min(0.2 epoch, 1)``,
        ``reference_weight = max(1 - render_weight, 0.2)``. Regressor terms are off (the
        regressor is frozen).
        """
        r = render_weight
        return cls(photometric=r, landmark=0.0, identity=0.2 * r, coefficient_reg=0.0,
                   lighting_reg=0.0, albedo_variance=0.01 * r, texture_vertex=reference_weight,
                   symmetry=0.5 * r, adversarial=1e-3, gradient_penalty=10.0)


def combine(terms: dict[str, torch.Tensor], weights: LossWeights
            ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted sum of unweighted loss terms.

    Args:
        terms: term name (a :class:`LossWeights` field) -> 0-d tensor. Terms whose weight is 0
            are skipped (neither added nor logged, so a NaN there cannot leak into the total);
            a weighted term that is absent is simply not part of this step (e.g. the critic
            step versus the generator step).
        weights: the weights.

    Returns:
        ``(total, log)``: total is a 0-d tensor (zeros, without a graph, when every given term
        is switched off); ``log`` maps each added term's name to its *weighted* value and
        ``"total"`` to the total, all detached 0-d tensors (no device sync; call ``.item()``
        when logging).

    Raises:
        InvalidInputError: an unknown name (the message lists the valid ones), a non-scalar
            term, or no terms at all.
    """
    if not isinstance(weights, LossWeights):
        raise InvalidInputError(f"expected weights a LossWeights, got {type(weights).__name__}")
    if not terms:
        raise InvalidInputError("combine needs at least one term")
    valid = LossWeights.names()
    unknown = sorted(set(terms) - set(valid))
    if unknown:
        raise InvalidInputError(f"unknown loss terms {unknown}; expected names from {list(valid)}")
    total: torch.Tensor | None = None
    log: dict[str, torch.Tensor] = {}
    for name, value in terms.items():
        if not isinstance(value, torch.Tensor) or value.ndim != 0:
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise InvalidInputError(f"expected term {name!r} a 0-d tensor, got {got}; reduce it "
                                    "(e.g. .mean()) first")
        w = getattr(weights, name)
        if w == 0:
            continue
        weighted = w * value
        log[name] = weighted.detach()
        total = weighted if total is None else total + weighted
    if total is None:
        total = next(iter(terms.values())).detach().new_zeros(())
    log["total"] = total.detach()
    return total, log


# ------------------------------------------------------------------------------ image terms
def photometric_loss(render: torch.Tensor, photo: torch.Tensor, mask: torch.Tensor, *,
                     kind: str = "l21") -> torch.Tensor:
    """Masked per-pixel colour distance between a render and the photo (the paper's L_pix).

    ``"l21"`` is Deng et al.'s: the L2 norm of each pixel's RGB difference, averaged over the
    mask. ``"l1"`` uses each pixel's L1 norm (sum of absolute channel differences) instead.
    The mean pools every masked pixel of the batch (Deng's reduction), so each pixel weighs
    the same whatever its image.

    Args:
        render: (B, H, W, 3) float, linear RGB in [0, 1].
        photo: (B, H, W, 3) float, same range.
        mask: (B, H, W) bool, or float weights in [0, 1]: projection mask x skin mask.
        kind: ``"l21"`` or ``"l1"``.

    Returns:
        0-d tensor, colour units per masked pixel; 0 for an empty mask.
    """
    _tensor(render, "render", "(B, H, W, 3)", 4, 3)
    _tensor(photo, "photo", "(B, H, W, 3)", 4, 3)
    _same_shape(render, "render", photo, "photo")
    m = _mask(mask, "mask", tuple(render.shape[:3]), render)
    diff = render - photo
    if kind == "l21":
        per_pixel = _safe_norm(diff, -1)
    elif kind == "l1":
        per_pixel = diff.abs().sum(-1)
    else:
        raise InvalidInputError(f"expected kind 'l21' or 'l1', got {kind!r}")
    return _masked_mean(per_pixel, m)


def deng_landmark_weights(*, dtype: torch.dtype = torch.float32,
                          device: torch.device | str | None = None) -> torch.Tensor:
    """Deng et al.'s (68,) landmark weights: 20 on the nose (0-based 28-30) and the inner
    mouth (60-67), 1 elsewhere (their ``weight[28:31] = 20; weight[-8:] = 20``)."""
    w = torch.ones(68, dtype=dtype, device=device)
    w[28:31] = 20.0
    w[60:68] = 20.0
    return w


def landmark_loss(pred: torch.Tensor, target: torch.Tensor, *,
                  weights: torch.Tensor | None = None,
                  image_size: float = _DENG_CROP) -> torch.Tensor:
    """Weighted mean squared landmark distance, normalised by the image size.

    ``sum_{b, i} w_i |pred_bi - target_bi|^2 / (B N image_size^2)`` (Deng's reduction, made
    resolution-independent).

    Args:
        pred: (B, N, 2) float, pixels (x right, y down).
        target: (B, N, 2) float, pixels.
        weights: (N,) float per-landmark weights, or (B, N) (e.g. 0 for undetected points);
            ``None`` gives :func:`deng_landmark_weights` (needs N = 68).
        image_size: pixels; distances are divided by it (224 for the paper's crop).

    Returns:
        0-d tensor, squared image-size units.
    """
    _tensor(pred, "pred", "(B, N, 2)", 3, 2)
    _tensor(target, "target", "(B, N, 2)", 3, 2)
    _same_shape(pred, "pred", target, "target")
    b, n, _ = pred.shape
    if not (isinstance(image_size, int | float) and image_size > 0):
        raise InvalidInputError(f"expected image_size > 0 pixels, got {image_size!r}")
    if weights is None:
        if n != 68:
            raise InvalidInputError(f"default landmark weights need 68 points, got {n}; pass "
                                    "weights (N,)")
        w = deng_landmark_weights(dtype=pred.dtype, device=pred.device).expand(b, n)
    elif isinstance(weights, torch.Tensor) and weights.ndim == 1:
        w = _mask(weights, "weights", (n,), pred).expand(b, n)
    else:
        w = _mask(weights, "weights", (b, n), pred)
    sq = ((pred - target) ** 2).sum(-1)
    if b * n == 0:
        return sq.sum()
    return (sq * w).sum() / (b * n * float(image_size) ** 2)


def identity_loss(feat_a: torch.Tensor, feat_b: torch.Tensor) -> torch.Tensor:
    """``1 - cos(feat_a, feat_b)`` averaged over the batch (Deng's perceptual loss).

    Args:
        feat_a: (B, D) float face-recognition features (need not be normalised).
        feat_b: (B, D) float, e.g. of the render composited over the photo.

    Returns:
        0-d tensor in [0, 2]; 0 for an empty batch.
    """
    _tensor(feat_a, "feat_a", "(B, D)", 2)
    _tensor(feat_b, "feat_b", "(B, D)", 2)
    _same_shape(feat_a, "feat_a", feat_b, "feat_b")
    return _masked_mean(1 - F.cosine_similarity(feat_a, feat_b, dim=1, eps=1e-8), None)


# ------------------------------------------------------------------------- coefficient terms
def coefficient_regularizer(coeffs: Coeffs3DMM, *, w_identity: float = 1.0,
                            w_expression: float = 0.8, w_albedo: float = 1.7e-2) -> torch.Tensor:
    """Deng et al.'s coefficient prior: weighted squared norms, summed, averaged over the batch.

    ``(w_id |alpha|^2 + w_exp |beta|^2 + w_alb |delta|^2)`` per image, mean over images
    (Deep3DFaceRecon ``reg_loss``; the defaults are its ``w_id, w_exp, w_tex``).

    Args:
        coeffs: the regressor output (unit-variance identity, expression, albedo).
        w_identity, w_expression, w_albedo: block weights >= 0.

    Returns:
        0-d tensor, 0 at the mean face.
    """
    if not isinstance(coeffs, Coeffs3DMM):
        raise InvalidInputError(f"expected coeffs a Coeffs3DMM, got {type(coeffs).__name__}")
    total = coeffs.identity.new_zeros(())
    for w, t, name in ((w_identity, coeffs.identity, "w_identity"),
                       (w_expression, coeffs.expression, "w_expression"),
                       (w_albedo, coeffs.albedo, "w_albedo")):
        if w < 0:
            raise InvalidInputError(f"expected {name} >= 0, got {w}")
        total = total + w * (t * t).sum()
    return total / max(coeffs.batch_size, 1)


def lighting_regularizer(lighting: torch.Tensor) -> torch.Tensor:
    """Deng et al.'s near-monochromatic light prior: variance of each SH band across RGB.

    ``mean_{b, c, k} (gamma_bck - mean_c gamma_bck)^2`` on the (B, 3, 9) channel-major view.

    Args:
        lighting: (B, 27) float, channel-major SH (:mod:`facecraft.sdk.render.lighting`).

    Returns:
        0-d tensor, 0 for white light.
    """
    _tensor(lighting, "lighting", "(B, 27)", 2, 27)
    gamma = lighting.reshape(-1, 3, 9)
    return _masked_mean((gamma - gamma.mean(dim=1, keepdim=True)) ** 2, None)


def albedo_variance(albedo: torch.Tensor, skin: torch.Tensor) -> torch.Tensor:
    """Deng et al.'s reflectance loss: variance of the albedo over the skin vertices.

    Per image, ``sum_{v in skin} |a_v - mean_skin a|^2 / |skin|`` (squared RGB distance to the
    skin mean), averaged over the batch (Deep3DFaceRecon ``reflectance_loss``).

    Args:
        albedo: (B, V, 3) float, linear RGB.
        skin: (K,) int64 skin vertex ids, or a (V,) bool / float mask.

    Returns:
        0-d tensor; 0 for a uniform skin or an empty skin set.
    """
    _tensor(albedo, "albedo", "(B, V, 3)", 3, 3)
    b, v, _ = albedo.shape
    if isinstance(skin, torch.Tensor) and skin.dtype in (torch.int32, torch.int64):
        if skin.ndim != 1 or (skin.numel() and (skin.min() < 0 or skin.max() >= v)):
            raise InvalidInputError(f"expected skin ids (K,) in [0, {v}), got shape "
                                    f"{tuple(skin.shape)}")
        m = albedo.new_zeros(v).index_fill(0, skin.to(albedo.device), 1.0)
    else:
        m = _mask(skin, "skin", (v,), albedo)
    m = m[None, :, None]
    count = m.sum()
    mean = _safe_div((albedo * m).sum(dim=1, keepdim=True), count)
    return _safe_div((((albedo - mean) * m) ** 2).sum(), count * b)


def supervised_coeff_loss(pred: Coeffs3DMM, target: Coeffs3DMM) -> dict[str, torch.Tensor]:
    """Mean squared error per coefficient block (supervised training on synthetic faces).

    Args:
        pred: predicted coefficients.
        target: ground truth, same layout and batch.

    Returns:
        Block name (``identity, expression, albedo, angles, lighting, translation``) -> 0-d MSE
        in that block's units (angles radians^2, translation metres^2); an empty block (e.g.
        no albedo) gives 0. Sum the values for one ``supervised_coeffs`` term.
    """
    for name, c in (("pred", pred), ("target", target)):
        if not isinstance(c, Coeffs3DMM):
            raise InvalidInputError(f"expected {name} a Coeffs3DMM, got {type(c).__name__}")
    if pred.layout != target.layout or pred.batch_size != target.batch_size:
        raise InvalidInputError(f"pred {pred.layout} x {pred.batch_size} and target "
                                f"{target.layout} x {target.batch_size} must match")
    out = {}
    for f in ("identity", "expression", "albedo", "angles", "lighting", "translation"):
        out[f] = _masked_mean((getattr(pred, f) - getattr(target, f)) ** 2, None)
    return out


# ------------------------------------------------------------------------------ mesh terms
def vertex_loss(pred_verts: torch.Tensor, target: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean per-vertex Euclidean distance.

    Args:
        pred_verts: (B, V, 3) float, metres.
        target: (B, V, 3) float, metres, same frame.
        mask: optional (V,) or (B, V) bool / float vertex weights.

    Returns:
        0-d tensor, metres; 0 for an empty mask.
    """
    _tensor(pred_verts, "pred_verts", "(B, V, 3)", 3, 3)
    _tensor(target, "target", "(B, V, 3)", 3, 3)
    _same_shape(pred_verts, "pred_verts", target, "target")
    b, v, _ = pred_verts.shape
    return _masked_mean(_safe_norm(pred_verts - target, -1),
                        _vertex_mask(mask, b, v, pred_verts))


def texture_vertex_loss(coarse: torch.Tensor, fine: torch.Tensor,
                        mask: torch.Tensor | None = None) -> torch.Tensor:
    """The paper's L_vert: mean absolute difference between the coarse (PCA) texture T and the
    GCN texture T', over vertices and channels (the official code's L1).

    Args:
        coarse: (B, V, 3) float, per-vertex RGB (usually detached: the target).
        fine: (B, V, 3) float, per-vertex RGB.
        mask: optional (V,) or (B, V) bool / float vertex weights.

    Returns:
        0-d tensor, colour units; 0 for an empty mask.
    """
    _tensor(coarse, "coarse", "(B, V, 3)", 3, 3)
    _tensor(fine, "fine", "(B, V, 3)", 3, 3)
    _same_shape(coarse, "coarse", fine, "fine")
    b, v, _ = coarse.shape
    w = _vertex_mask(mask, b, v, fine)
    err = (fine - coarse).abs().mean(-1)
    return _masked_mean(err, w)


def symmetry_loss(colours: torch.Tensor, mirror_ids: torch.Tensor,
                  mask: torch.Tensor | None = None) -> torch.Tensor:
    """Left-right texture symmetry: mean absolute difference between each vertex's colour and
    its mirror vertex's (the official code's 0.5-weighted term).

    Args:
        colours: (B, V, 3) float per-vertex RGB (e.g. the GCN albedo).
        mirror_ids: (V,) int64, ``mirror_ids[v]`` is the vertex mirroring ``v`` across the
            sagittal plane (itself on the midline).
        mask: optional (V,) or (B, V) bool / float vertex weights.

    Returns:
        0-d tensor, colour units; 0 for a symmetric texture or an empty mask.
    """
    _tensor(colours, "colours", "(B, V, 3)", 3, 3)
    b, v, _ = colours.shape
    if not isinstance(mirror_ids, torch.Tensor) or mirror_ids.shape != (v,) \
            or mirror_ids.dtype not in (torch.int32, torch.int64):
        got = tuple(mirror_ids.shape) if isinstance(mirror_ids, torch.Tensor) else mirror_ids
        raise InvalidInputError(f"expected mirror_ids an int64 tensor ({v},), got {got}")
    if v and (mirror_ids.min() < 0 or mirror_ids.max() >= v):
        raise InvalidInputError(f"mirror_ids must lie in [0, {v})")
    mirrored = colours[:, mirror_ids.to(colours.device).long()]
    return _masked_mean((colours - mirrored).abs().mean(-1), _vertex_mask(mask, b, v, colours))


# ---------------------------------------------------------------------------- adversarial
def wgan_gp_gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, *,
                             generator: torch.Generator | None = None) -> torch.Tensor:
    """Gulrajani et al.'s gradient penalty ``mean_b (|grad_x critic(x_b)| - 1)^2``.

    ``x = alpha real + (1 - alpha) fake`` with one ``alpha ~ U[0, 1)`` per sample; ``real``
    and ``fake`` are detached (the penalty trains the critic only). The gradient is taken with
    ``create_graph=True`` so the penalty back-propagates into the critic's parameters.

    Args:
        critic: maps (B, ...) to (B,) or (B, 1, ...) scores (several outputs per sample are
            summed, so their gradients add up).
        real: (B, ...) float real samples (images or per-vertex colours).
        fake: (B, ...) float generated samples, same shape.
        generator: optional RNG for ``alpha``.

    Returns:
        0-d tensor; 0 for an empty batch.
    """
    _tensor(real, "real", "(B, ...)")
    _tensor(fake, "fake", "(B, ...)")
    _same_shape(real, "real", fake, "fake")
    if real.ndim < 1 or real.shape[0] == 0:
        raise InvalidInputError(f"expected real (B, ...) with B > 0, got {tuple(real.shape)}")
    shape = (real.shape[0],) + (1,) * (real.ndim - 1)
    rng_device = real.device if generator is None else generator.device
    alpha = torch.rand(shape, generator=generator, dtype=real.dtype,
                       device=rng_device).to(real.device)
    x = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    with torch.enable_grad():
        scores = critic(x)
        (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=True)
    norm = _safe_norm(grad.reshape(grad.shape[0], -1), 1)
    return ((norm - 1) ** 2).mean()


def wgan_critic_loss(critic_real: torch.Tensor, critic_fake: torch.Tensor) -> torch.Tensor:
    """The WGAN critic loss ``mean(critic(fake)) - mean(critic(real))`` (minimised).

    Args:
        critic_real: (B, ...) float scores of real samples.
        critic_fake: (B, ...) float scores of generated samples (detached from the generator).

    Returns:
        0-d tensor (a negative Wasserstein estimate; add the weighted gradient penalty).
    """
    _tensor(critic_real, "critic_real", "(B, ...)")
    _tensor(critic_fake, "critic_fake", "(B, ...)")
    return critic_fake.mean() - critic_real.mean()


def wgan_generator_loss(critic_fake: torch.Tensor) -> torch.Tensor:
    """The WGAN generator loss ``-mean(critic(fake))``.

    Args:
        critic_fake: (B, ...) float scores of generated samples (attached to the generator).

    Returns:
        0-d tensor.
    """
    _tensor(critic_fake, "critic_fake", "(B, ...)")
    return -critic_fake.mean()


# -------------------------------------------------------------------------------- metrics
def _images(a: torch.Tensor, b: torch.Tensor) -> None:
    _tensor(a, "a", "(B, H, W, C)", 4)
    _tensor(b, "b", "(B, H, W, C)", 4)
    _same_shape(a, "a", b, "b")


def psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None, *,
         data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, over the masked pixels and all channels.

    ``10 log10(data_range^2 / MSE)``: ``+inf`` for identical images (no cap; average with care,
    e.g. after ``clamp(max=...)``), NaN for an empty mask.

    Args:
        a: (B, H, W, C) float, e.g. the render in [0, data_range].
        b: (B, H, W, C) float, e.g. the photo.
        mask: (B, H, W) bool / float weights, or ``None`` for every pixel.
        data_range: the value range (1 for [0, 1] images, 255 for uint8 scales).

    Returns:
        (B,) float, decibels.
    """
    _images(a, b)
    sq = ((a - b) ** 2).mean(-1)  # (B, H, W), mean over channels
    if mask is None:
        mse = sq.flatten(1).mean(1)
    else:
        m = _mask(mask, "mask", tuple(a.shape[:3]), a).flatten(1)
        den = m.sum(1)
        mse = (sq.flatten(1) * m).sum(1) / den  # 0/0 = NaN for an empty mask
        mse = torch.where(den > 0, mse, torch.full_like(mse, math.nan))
    return 10 * torch.log10(data_range ** 2 / mse)


def _gaussian_window(size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    x = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def ssim(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None, *,
         data_range: float = 1.0, window_size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity per image (Wang et al. 2004), averaged over channels.

    Local statistics use a ``window_size`` Gaussian window (``sigma`` pixels) without padding
    (the "valid" map, as in Wang's reference code), ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``
    with ``L = data_range``. The SSIM map covers the pixels at least ``window_size // 2`` from
    the border; it is averaged over those pixels, weighted by ``mask`` when given.

    Args:
        a: (B, H, W, C) float, H and W >= ``window_size``.
        b: (B, H, W, C) float.
        mask: (B, H, W) bool / float weights, or ``None``.
        data_range: the value range L.
        window_size: odd window side, pixels.
        sigma: Gaussian standard deviation, pixels.

    Returns:
        (B,) float in [-1, 1], 1 for identical images; NaN where the mask (inside the border)
        is empty.
    """
    _images(a, b)
    if window_size < 1 or window_size % 2 == 0:
        raise InvalidInputError(f"expected an odd window_size >= 1, got {window_size}")
    bsz, h, w, c = a.shape
    if h < window_size or w < window_size:
        raise InvalidInputError(f"ssim needs images of at least {window_size} x {window_size} "
                                f"pixels, got {h} x {w}")
    g = _gaussian_window(window_size, sigma, a)
    kx = g.view(1, 1, 1, -1).expand(c, 1, 1, window_size)
    ky = g.view(1, 1, -1, 1).expand(c, 1, window_size, 1)

    def blur(x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> valid (B, C, H', W')
        return F.conv2d(F.conv2d(x, kx, groups=c), ky, groups=c)

    x, y = a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2)
    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x * mu_x
    syy = blur(y * y) - mu_y * mu_y
    sxy = blur(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    smap = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1)
                                                        * (sxx + syy + c2))
    smap = smap.mean(1).flatten(1)  # (B, H' W'), mean over channels
    if mask is None:
        return smap.mean(1)
    r = window_size // 2
    m = _mask(mask, "mask", (bsz, h, w), a)[:, r:h - r, r:w - r].flatten(1)
    den = m.sum(1)
    out = (smap * m).sum(1) / torch.where(den > 0, den, torch.ones_like(den))
    return torch.where(den > 0, out, torch.full_like(out, math.nan))
