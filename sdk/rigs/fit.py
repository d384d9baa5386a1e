"""Fitting a rig to a reconstructed face: slider values, expression weights, texture, GLB.

:class:`RigFitter` holds everything that depends only on the (face model, rig) pair: the dense
correspondence (:mod:`facecraft.sdk.rigs.correspondence`, cached on disk), the per-vertex fit
weights and the factorised least-squares system. Each face then costs a few milliseconds:

**Slider fit** (:meth:`RigFitter.fit`). The reconstructed neutral face ``S`` (V_model, 3),
metres, model frame, is mapped onto the rig vertices. By default its *displacement from the
model's mean* is transferred (``transfer="delta"``)::

    Y = N_rig + s R B (S - S_mean)          (V_rig, 3): B = the correspondence's interpolation

so the sliders describe how the player differs from the model's average, added to the rig's
own average head (a rig whose neutral is not the model's mean is not "corrected" towards it).
``transfer="absolute"`` maps ``s R B S + t`` instead. Then the identity slider values ``x``
solve the bounded, Tikhonov-regularised least squares (``scipy.optimize.lsq_linear``)::

    min_x  sum_v w_v |N_v + D_v x - Y_v|^2 / sum_v w_v  +  lambda sum_k ((x_k - d_k) / h_k)^2
    s.t.   min_k <= x_k <= max_k

(millimetres; ``D`` the identity targets' deltas, ``d_k`` the slider's default, ``h_k`` half its
range), with ``w_v`` = ``face_weight`` on the rig's face and ``other_weight`` elsewhere (back of
head, neck), 0 where the correspondence residual exceeds ``max_distance_mm`` (parts the model
lacks). With ``symmetric=True`` the sidecar's symmetric pairs share one value. A residual head
pose is fitted jointly (``align``): a few Gauss-Newton rounds, each eliminating the linearised
rigid (or similarity) motion of the target exactly from the bounded solve and then applying
it, so a face that is slightly rotated or shifted still gives the same sliders.

**Expressions** (:meth:`RigFitter.expressions`): when the rig's expression sliders and the
model's expression modes share names (exactly, or as the same ARKit-52 shape) the model's
coefficients are copied; otherwise the model's expression displacement is transferred like the
identity and solved for by bounded least squares in each slider's range (usually [0, 1]).

**Texture** (:meth:`RigFitter.transfer_texture`): per-vertex colours (the fine texture) are
interpolated at the rig vertices and baked into the rig's UV layout
(:func:`facecraft.sdk.render.texture.bake_texture`); a UV texture in the model's layout is resampled
texel by texel through the correspondence (each rig texel's point on the model surface, its
model UV, a bilinear read), falling back to vertex colours on rig triangles that straddle a
model UV seam. Seams are dilated.

Writing the result (GLB with the fitted weights, slider values, materials) is
:mod:`facecraft.sdk.rigs.output`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidInputError
from ..models.morphable_model import MorphableModel
from .correspondence import (
    Correspondence,
    CorrespondenceSettings,
    load_or_build_correspondence,
    model_content_hash,
)
from .rig import Rig, SliderSpec, arkit_name

if TYPE_CHECKING:
    from ..render.texture import UVBakerCache

__all__ = [
    "RigFitSettings",
    "RigFit",
    "ExpressionFit",
    "RigFitter",
]

_ALIGN = ("rigid", "similarity", "none")
_TRANSFER = ("delta", "absolute")
_EXPRESSION_METHODS = ("auto", "names", "least_squares")


@dataclass(frozen=True)
class RigFitSettings:
    """How to fit a rig's sliders to a face.

    Attributes:
        regularization: lambda, the weight of the prior pulling each slider to its default,
            in mm^2 of mean squared vertex error per (half-range)^2, >= 0. The default is weak
            (a slider moving 1 mm on average costs 1000x more than its prior at full range).
        symmetric: tie the sidecar's symmetric pairs to one value.
        align: ``"rigid"``, ``"similarity"`` (also rescales the face: discards head size) or
            ``"none"``: how the face is re-aligned to the fitted rig between solves.
        align_iterations: Gauss-Newton rounds on the pose (each a bounded solve with the
            linearised pose eliminated, then the pose update), in [0, 10].
        transfer: ``"delta"`` (the face's displacement from the model mean, added to the rig's
            neutral) or ``"absolute"`` (the face's positions); see the module docstring.
        face_weight: weight of the rig's face vertices, > 0.
        other_weight: weight of the rig's other vertices (back of head, neck), >= 0.
        max_distance_mm: rig vertices whose correspondence residual exceeds this get weight
            0, millimetres, > 0.
    """

    regularization: float = 1e-3
    symmetric: bool = False
    align: str = "rigid"
    align_iterations: int = 3
    transfer: str = "delta"
    face_weight: float = 1.0
    other_weight: float = 0.05
    max_distance_mm: float = 5.0

    def __post_init__(self) -> None:
        def check(cond: bool, name: str, expected: str) -> None:
            if not cond:
                raise InvalidInputError(f"RigFitSettings.{name} must be {expected}, got "
                                        f"{getattr(self, name)!r}")

        check(float(self.regularization) >= 0, "regularization", ">= 0")
        check(self.align in _ALIGN, "align", f"one of {_ALIGN}")
        check(isinstance(self.align_iterations, int) and 0 <= self.align_iterations <= 10,
              "align_iterations", "an integer in [0, 10]")
        check(self.transfer in _TRANSFER, "transfer", f"one of {_TRANSFER}")
        check(float(self.face_weight) > 0, "face_weight", "> 0")
        check(float(self.other_weight) >= 0, "other_weight", ">= 0")
        check(float(self.max_distance_mm) > 0, "max_distance_mm", "> 0 mm")


@dataclass(frozen=True, eq=False)
class RigFit:
    """Identity slider values fitted to one face.

    Attributes:
        rig_name: the rig's name.
        values: identity slider name -> value, each within its slider's [min, max].
        vertices: (V_rig, 3) float32 the rig with those values (expressions at default),
            metres, rig frame.
        target: (V_rig, 3) float32 the face mapped onto the rig and aligned, what the fit aimed
            at, metres.
        weights: (V_rig,) float32 per-vertex weights of the fit.
        residual_mean_mm / residual_p95_mm: distance between ``vertices`` and ``target`` over
            the face vertices that took part (weight > 0), mean / 95th percentile, mm.
        residual_all_mean_mm: mean distance over every vertex with weight > 0, mm.
    """

    rig_name: str
    values: dict[str, float]
    vertices: np.ndarray
    target: np.ndarray
    weights: np.ndarray
    residual_mean_mm: float
    residual_p95_mm: float
    residual_all_mean_mm: float

    def report(self) -> dict[str, Any]:
        return {"rig": self.rig_name, "sliders": len(self.values),
                "residual_mean_mm": round(self.residual_mean_mm, 3),
                "residual_p95_mm": round(self.residual_p95_mm, 3),
                "residual_all_mean_mm": round(self.residual_all_mean_mm, 3)}


@dataclass(frozen=True)
class ExpressionFit:
    """Expression slider weights for one face.

    Attributes:
        weights: expression slider name -> value within its range (every expression slider).
        method: ``"names"`` (copied from the model's coefficients by name) or
            ``"least_squares"``.
        matched: (names only) the rig sliders that found a model mode.
        residual_mean_mm: (least squares only) mean distance between the rig's expression
            displacement and the transferred one over the face, mm; None for names.
    """

    weights: dict[str, float]
    method: str
    matched: tuple[str, ...] = ()
    residual_mean_mm: float | None = None


# --------------------------------------------------------------------------- the fitter
class RigFitter:
    """Fits faces of one face model to one rig; build once per pair, call per face.

    Args:
        model: the face model reconstructions come from.
        rig: the rig.
        correspondence: a precomputed correspondence of the pair, or None to load it from the
            cache (or build and cache it).
        settings: slider-fit settings.
        correspondence_settings: registration settings when it is built.
        cache_dir: correspondence cache root (default: FaceCraft's cache folder).
        use_cache: False never reads or writes the correspondence cache.
    """

    def __init__(self, model: MorphableModel, rig: Rig, *,
                 correspondence: Correspondence | None = None,
                 settings: RigFitSettings | None = None,
                 correspondence_settings: CorrespondenceSettings | None = None,
                 cache_dir: str | Path | None = None, use_cache: bool = True) -> None:
        self.model = model
        self.rig = rig
        self.settings = RigFitSettings() if settings is None else settings
        self._uv_bakers: UVBakerCache | None = None  # transfer_texture's, built on first use
        corr = correspondence if correspondence is not None else load_or_build_correspondence(
            model, rig, correspondence_settings, cache_dir=cache_dir, use_cache=use_cache)
        want = f"{model_content_hash(model)[:16]}-{rig.content_hash[:16]}-"
        if not corr.key.startswith(want) or corr.num_rig_vertices != rig.num_vertices:
            raise InvalidInputError(f"the correspondence ({corr.model_name} -> "
                                    f"{corr.rig_name}) was built for another model or rig "
                                    f"than {model.name!r} -> {rig.name!r}")
        self.correspondence = corr
        st = self.settings
        w = np.where(corr.face, st.face_weight, st.other_weight).astype(np.float64)
        w[corr.distance > st.max_distance_mm * 1e-3] = 0.0
        if not (w > 0).any():
            raise InvalidInputError("no rig vertex is close enough to the model surface to "
                                    f"fit (max_distance_mm={st.max_distance_mm}); check the "
                                    "rig's landmarks and units (metres)")
        self.vertex_weights = w
        self._rows = np.flatnonzero(w > 0)
        self._sqrt_w = np.sqrt(w[self._rows] / w[self._rows].sum())[:, None]
        self.identity_sliders = rig.identity_sliders
        self._id_system = _LinearSystem(rig, self.identity_sliders, self._rows, self._sqrt_w,
                                        st.regularization,
                                        rig.spec.symmetric_pairs if st.symmetric else ())

    # ------------------------------------------------------------------ sliders
    def map_face(self, face_vertices: np.ndarray) -> np.ndarray:
        """(V_model, 3) face, metres, model frame -> (V_rig, 3) rig-frame target (unaligned)."""
        s = np.asarray(face_vertices, np.float64)
        if s.shape != self.model.mean_shape.shape or not np.isfinite(s).all():
            raise InvalidInputError(f"expected face vertices {self.model.mean_shape.shape} of "
                                    f"model {self.model.name!r} (finite, metres), got {s.shape}")
        check_face_plausible(s, self.model.mean_shape, self.model.name)
        corr = self.correspondence
        if self.settings.transfer == "delta":
            return self.rig.vertices + corr.transfer_deltas(s - self.model.mean_shape)
        return corr.to_rig_frame(corr.apply(s))

    def fit(self, face_vertices: np.ndarray) -> RigFit:
        """Identity slider values for a reconstructed neutral face.

        Args:
            face_vertices: (V_model, 3) metres, model frame, neutral expression (e.g. a
                reconstruction's ``neutral_vertices``).

        Returns:
            :class:`RigFit`.
        """
        st = self.settings
        rig = self.rig
        system = self._id_system
        neutral = rig.vertices.astype(np.float64)
        y = self.map_face(face_vertices)
        if st.align != "none":
            # Gauss-Newton on (pose, sliders): the linearised pose change of the target is
            # eliminated exactly from each bounded solve, then applied
            rows, sw = self._rows, self._sqrt_w
            for _ in range(st.align_iterations):
                w = self.vertex_weights[rows]
                c = (w[:, None] * y[rows]).sum(0) / w.sum()
                q = y[rows] - c  # (n, 3)
                zero = np.zeros(len(q))
                cols = [np.stack([zero, -q[:, 2], q[:, 1]], 1),  # d/d omega_x of omega x q
                        np.stack([q[:, 2], zero, -q[:, 0]], 1),
                        np.stack([-q[:, 1], q[:, 0], zero], 1),
                        *np.broadcast_to(np.eye(3)[:, None], (3, len(q), 3))]
                if st.align == "similarity":
                    cols.append(q)
                jac = np.stack(cols, -1) * (1e3 * sw)[..., None]  # (n, 3, m) mm
                _, p = system.solve(y - neutral, -jac.reshape(-1, len(cols)))
                assert p is not None
                scale = 1.0 + (p[6] if st.align == "similarity" else 0.0)
                y = scale * (y - c) @ _rodrigues(p[:3]).T + c + p[3:6]
        x, _ = system.solve(y - neutral)
        fitted = neutral + system.displacement(x)
        err = np.linalg.norm(fitted - y, axis=1) * 1e3
        used = self.vertex_weights > 0
        face = used & self.correspondence.face
        face = face if face.any() else used
        return RigFit(
            rig_name=rig.name,
            values={sl.name: float(v)
                    for sl, v in zip(self.identity_sliders, x, strict=True)},
            vertices=fitted.astype(np.float32), target=y.astype(np.float32),
            weights=self.vertex_weights.astype(np.float32),
            residual_mean_mm=float(err[face].mean()),
            residual_p95_mm=float(np.percentile(err[face], 95)),
            residual_all_mean_mm=float(err[used].mean()))

    # ------------------------------------------------------------------ expressions
    def expressions(self, coefficients: np.ndarray | None = None, *,
                    expression_vertices: np.ndarray | None = None,
                    neutral_vertices: np.ndarray | None = None,
                    method: str = "auto") -> ExpressionFit:
        """Expression slider weights of the rig for a face's expression.

        Args:
            coefficients: (Ke,) the model's expression coefficients (fewer: the rest 0).
            expression_vertices: (V_model, 3) the face with its expression, metres, and
            neutral_vertices: (V_model, 3) the same face without it; used instead of
                ``coefficients`` (least squares only).
            method: ``"auto"`` (names when at least half of the rig's expression sliders find
                a model mode by name, else least squares), ``"names"`` or ``"least_squares"``.

        Returns:
            :class:`ExpressionFit` with every expression slider's weight.
        """
        if method not in _EXPRESSION_METHODS:
            raise InvalidInputError(f"method must be one of {_EXPRESSION_METHODS}, "
                                    f"got {method!r}")
        sliders = self.rig.expression_sliders
        model = self.model
        if coefficients is not None:
            c = np.zeros(model.num_expression)
            given = np.asarray(coefficients, np.float64).reshape(-1)
            if len(given) > model.num_expression or not np.isfinite(given).all():
                raise InvalidInputError(f"expected up to {model.num_expression} finite "
                                        f"expression coefficients, got {given.shape}")
            c[:len(given)] = given
        elif expression_vertices is None or neutral_vertices is None:
            raise InvalidInputError("give coefficients, or expression_vertices and "
                                    "neutral_vertices")
        else:
            c = None
        if not sliders:
            return ExpressionFit({}, "names")
        matches = _match_expressions(sliders, model.expression_names)
        use_names = c is not None and (
            method == "names" or (method == "auto" and len(matches) * 2 >= len(sliders)))
        if use_names:
            assert c is not None
            weights = {}
            for sl in sliders:
                ids = matches.get(sl.name)
                val = float(np.mean(c[ids])) if ids else sl.default
                weights[sl.name] = min(max(val, sl.min), sl.max)
            return ExpressionFit(weights, "names", tuple(s for s in weights if s in matches))
        if method == "names":
            raise InvalidInputError("method='names' needs coefficients")
        if c is not None:
            delta = np.tensordot(c, model.expression_basis, axes=(0, 0))
        else:
            ev = np.asarray(expression_vertices, np.float64)
            nv = np.asarray(neutral_vertices, np.float64)
            if ev.shape != model.mean_shape.shape or nv.shape != ev.shape:
                raise InvalidInputError(f"expected expression_vertices and neutral_vertices "
                                        f"{model.mean_shape.shape}, got {ev.shape} and "
                                        f"{nv.shape}")
            delta = ev - nv
        target = self.correspondence.transfer_deltas(delta)
        system = _LinearSystem(self.rig, sliders, self._rows, self._sqrt_w, 1e-4, ())
        x, _ = system.solve(target)
        err = np.linalg.norm(system.displacement(x) - target, axis=1) * 1e3
        face = (self.vertex_weights > 0) & self.correspondence.face
        return ExpressionFit({s.name: float(v) for s, v in zip(sliders, x, strict=True)},
                             "least_squares",
                             residual_mean_mm=float(err[face].mean() if face.any()
                                                    else err.mean()))

    # ------------------------------------------------------------------ texture
    def transfer_texture(self, *, vertex_colors: np.ndarray | None = None,
                         texture: np.ndarray | None = None, texture_tile: tuple[int, int] = (0, 0),
                         settings: Any = None) -> np.ndarray:
        """Bake the face's texture into the rig's UV layout.

        Args:
            vertex_colors: (V_model, 3) RGB in [0, 1] per model vertex (the fine texture).
            texture: (H, W, 3) uint8 or float [0, 1] texture in the model's UV layout (row 0 =
                top), used instead of / on top of ``vertex_colors``: texels read it directly;
                vertex colours (given, or sampled from it) fill seam-straddling triangles.
            texture_tile: the UDIM tile ``texture`` covers.
            settings: :class:`facecraft.sdk.render.texture.BakeSettings` (size, seam dilation).

        Returns:
            (S, S, 3) uint8 RGB texture in the rig's UV layout (row 0 = top), seams dilated.
        """
        from ..render.texture import (
            BakeSettings,
            UVBakerCache,
            UVLayout,
            sample_texture,
        )

        rig, model, corr = self.rig, self.model, self.correspondence
        if not len(rig.uvs):
            raise InvalidInputError(f"rig {rig.name!r} has no UV layout to bake a texture into")
        settings = BakeSettings() if settings is None else settings
        if self._uv_bakers is None:  # the rig layout's bakers, one per settings, built once
            self._uv_bakers = UVBakerCache(
                UVLayout(rig.triangles, rig.uvs, rig.triangles, rig.num_vertices))
        baker = self._uv_bakers.baker(settings)
        if texture is None:
            if vertex_colors is None:
                raise InvalidInputError("give vertex_colors or texture")
            vc = np.asarray(vertex_colors, np.float64)
            if vc.shape != (model.num_vertices, 3) or not np.isfinite(vc).all():
                raise InvalidInputError(f"expected vertex_colors ({model.num_vertices}, 3) in "
                                        f"[0, 1], got {vc.shape}")
            return baker.bake_uint8(np.clip(corr.apply(vc), 0, 1))
        tex = np.asarray(texture)
        if tex.ndim != 3 or tex.shape[2] < 3:
            raise InvalidInputError(f"expected texture (H, W, 3), got {tex.shape}")
        tex = tex[..., :3].astype(np.float32) / (255.0 if tex.dtype == np.uint8 else 1.0)
        if not len(model.uv_triangles):
            raise InvalidInputError(f"model {model.name!r} has no UV layout to read the "
                                    "texture through")
        # each rig vertex's model UV (interpolated over its model triangle's corners)
        corner_uv = model.uvs[model.uv_triangles[corr.triangles]].astype(np.float64)  # (Vr,3,2)
        src_uv = np.einsum("rk,rkc->rc", corr.bary, corner_uv)
        if vertex_colors is not None:
            vc = np.clip(corr.apply(np.asarray(vertex_colors, np.float64)), 0, 1)
        else:
            vc = sample_texture(tex, src_uv, tile=texture_tile).astype(np.float64)
        bake = baker.bake(np.concatenate([src_uv, vc], 1), dilate=False)
        img = bake.image.numpy()
        mask = bake.mask.numpy()
        tid = bake.triangle_id.numpy()
        # rig triangles whose corners' model UVs are far apart straddle a model UV seam
        tri_uv = src_uv[rig.triangles]  # (F, 3, 2)
        span = np.ptp(tri_uv, axis=1).max(1)
        rig_span = np.ptp(rig.uvs[rig.triangles], axis=1).max(1)
        seam = span > np.maximum(8.0 * np.median(span), 4.0 * rig_span)
        use_uv = mask & ~seam[np.maximum(tid, 0)]
        out = np.zeros((settings.size, settings.size, 3), np.float32)
        out[mask] = img[mask, 2:5]
        if use_uv.any():
            out[use_uv] = sample_texture(tex, img[use_uv, :2], tile=texture_tile)
        return _to_u8(baker.dilate(out))


#: A face's size (RMS distance of its vertices from their centroid) may be this many times
#: smaller or larger than the model's mean face; beyond, it is not a face in metres.
PLAUSIBLE_SCALE = 3.0
#: Each principal extent (singular value of the centred vertices) must be at least this fraction
#: of the mean face's: a flat, line-like or collapsed shape is degenerate.
MIN_EXTENT_FRACTION = 0.2


def check_face_plausible(vertices: np.ndarray, mean_shape: np.ndarray, model: str = "") -> None:
    """Refuse a face shape that cannot be a face of the model in metres.

    Args:
        vertices: (V, 3) float, finite, metres, model frame.
        mean_shape: (V, 3) the face model's mean shape (metres).
        model: the model's name, for the message.

    Raises:
        InvalidInputError: a collapsed or flat shape (all zero, constant, planar), or one whose
            size is more than :data:`PLAUSIBLE_SCALE` times off the model's mean face (e.g.
            millimetres, or values like 1e30).
    """
    def extents(v: np.ndarray) -> np.ndarray:  # RMS extent along each principal axis, m
        c = v - v.mean(0)
        m = max(float(np.abs(c).max()), 1e-300)  # scaled first: 1e30-sized input stays finite
        cov = (c / m).T @ (c / m) / len(c)
        return np.sqrt(np.clip(np.linalg.eigvalsh(cov), 0.0, None)) * m

    got = extents(np.asarray(vertices, np.float64))
    ref = extents(np.asarray(mean_shape, np.float64))
    size, ref_size = float(np.linalg.norm(got)), float(np.linalg.norm(ref))
    name = f" {model!r}" if model else ""
    if not (ref_size / PLAUSIBLE_SCALE <= size <= ref_size * PLAUSIBLE_SCALE):
        raise InvalidInputError(
            f"the face's size ({size:.3g} m RMS from its centre) is not plausible for the face "
            f"model{name} (its mean face: {ref_size:.3g} m); send neutral vertices in metres, "
            "as Reconstruct returns them")
    if (got < MIN_EXTENT_FRACTION * ref).any():
        raise InvalidInputError(
            f"the face shape is degenerate (principal extents {np.round(got, 4).tolist()} m, "
            f"the mean face's {np.round(ref, 4).tolist()} m: collapsed or flat); send the "
            "neutral vertices of a reconstruction")


def _to_u8(img: np.ndarray) -> np.ndarray:
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)


def _match_expressions(sliders: tuple[SliderSpec, ...], names: tuple[str, ...]
                       ) -> dict[str, list[int]]:
    """Rig expression slider -> model expression indices: same target or slider name, then the
    same name ignoring case, then the same ARKit-52 shape (a sided rig slider prefers the model
    mode of its side; an unsided ARKit shape averages the model's sided pair)."""
    exact = {n: i for i, n in enumerate(names)}
    lower = {n.lower(): i for i, n in enumerate(names)}
    by_arkit: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        a = arkit_name(n)
        if a:
            by_arkit.setdefault(a, []).append(i)
    out: dict[str, list[int]] = {}
    for s in sliders:
        for cand in (s.target, s.name):
            if cand in exact:
                out[s.name] = [exact[cand]]
                break
            if cand.lower() in lower:
                out[s.name] = [lower[cand.lower()]]
                break
        else:
            a = s.arkit or arkit_name(s.name) or arkit_name(s.target)
            if a and a in by_arkit:
                out[s.name] = by_arkit[a]
    return out


class _LinearSystem:
    """The bounded regularised least squares of a set of sliders (normal equations, K x K).

    Unknowns ``z`` (one per slider, or per tied symmetric pair; ``x = P z``). Optionally a few
    unbounded extra columns (the linearised head pose) are eliminated exactly first.
    """

    def __init__(self, rig: Rig, sliders: tuple[SliderSpec, ...], rows: np.ndarray,
                 sqrt_w: np.ndarray, regularization: float,
                 pairs: tuple[tuple[str, str], ...]) -> None:
        self.sliders = sliders
        k = len(sliders)
        self.deltas = rig.deltas(sliders).astype(np.float64)  # (K, V, 3)
        self.rows, self.sqrt_w = rows, sqrt_w
        lo = np.array([s.min for s in sliders])
        hi = np.array([s.max for s in sliders])
        self.x_lo, self.x_hi = lo, hi
        # tie symmetric pairs: x = P z
        group = list(range(k))
        index = {s.name: i for i, s in enumerate(sliders)}
        for a, b in pairs:
            if a in index and b in index:
                ga, gb = group[index[a]], group[index[b]]
                group = [ga if g == gb else g for g in group]
        uniq = sorted(set(group))
        self.p = np.zeros((k, len(uniq)))
        self.p[np.arange(k), [uniq.index(g) for g in group]] = 1.0
        self.lo = np.array([lo[self.p[:, j] > 0].max() for j in range(len(uniq))])
        self.hi = np.array([hi[self.p[:, j] > 0].min() for j in range(len(uniq))])
        if k == 0:
            return
        self.a = (self.deltas[:, rows] * 1e3 * sqrt_w[None]).reshape(k, -1).T @ self.p  # mm
        self.ata = self.a.T @ self.a
        half = (hi - lo) / 2.0
        default = np.array([s.default for s in sliders])
        reg = np.sqrt(regularization) * (np.diag(1.0 / half) @ self.p)  # (K, K')
        self.reg_ata = reg.T @ reg
        self.reg_atb = reg.T @ (np.sqrt(regularization) * default / half)

    def weighted(self, delta: np.ndarray) -> np.ndarray:
        """(V, 3) metres -> the weighted right-hand side (3n,) in mm."""
        return (delta[self.rows] * 1e3 * self.sqrt_w).reshape(-1)

    def solve(self, target_delta: np.ndarray, extra: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray | None]:
        """Slider values (K,) whose displacement best matches ``target_delta`` (V, 3) metres,
        within bounds; with ``extra`` (3n, m) weighted unbounded columns, also their
        coefficients (m,) (else None)."""
        from scipy.linalg import cho_factor, solve_triangular
        from scipy.optimize import lsq_linear

        if not len(self.sliders):
            return np.zeros(0), None
        b = self.weighted(target_delta)
        ata, atb = self.ata, self.a.T @ b
        if extra is not None:
            gtg = extra.T @ extra
            gta, gtb = extra.T @ self.a, extra.T @ b
            sol = np.linalg.solve(gtg, np.concatenate([gta, gtb[:, None]], 1))
            ata = ata - gta.T @ sol[:, :-1]
            atb = atb - gta.T @ sol[:, -1]
        h = ata + self.reg_ata
        h = h + np.eye(len(h)) * (1e-12 * np.trace(h) / len(h) + 1e-300)
        low, _ = cho_factor(h, lower=True)
        low = np.tril(low)
        rhs = solve_triangular(low, atb + self.reg_atb, lower=True)
        flat = self.lo >= self.hi  # a tied pair whose ranges meet in one point
        res = lsq_linear(low.T, rhs, bounds=(np.where(flat, self.lo - 1e-9, self.lo),
                                             np.where(flat, self.hi + 1e-9, self.hi)),
                         method="bvls", tol=1e-12)
        z = res.x
        coef = None if extra is None else np.linalg.solve(gtg, gtb - gta @ z)
        return np.clip(self.p @ z, self.x_lo, self.x_hi), coef

    def displacement(self, x: np.ndarray) -> np.ndarray:
        """(V, 3) float64 displacement of slider values ``x`` (K,)."""
        return np.tensordot(x, self.deltas, axes=(0, 0)) if len(x) else 0.0


def _rodrigues(omega: np.ndarray) -> np.ndarray:
    theta = float(np.linalg.norm(omega))
    if theta < 1e-12:
        return np.eye(3)
    k = omega / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx
