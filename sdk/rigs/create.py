"""Reconstructed faces onto a character rig: what ``facecraft create --rig`` and the gRPC
``FitRig`` call do for each face.

A :class:`FaceRigger` is built once per (face model, rig) pair: it holds the
:class:`~facecraft.sdk.rigs.fit.RigFitter`, whose dense correspondence is built once and cached on
disk (:mod:`facecraft.sdk.rigs.correspondence`). Each face then becomes a :class:`RiggedFace`:

* identity slider values fitted to the face's neutral shape (:meth:`RigFitter.fit`);
* expression slider weights from its expression coefficients (:meth:`RigFitter.expressions`);
* its fine texture (per-vertex colours) baked into the rig's UV layout
  (:meth:`RigFitter.transfer_texture`), when colours are given and the rig has UVs;
* material parameters (skin tone, iris, eyebrow and lip colours) read from the same colours on
  the face model (:func:`facecraft.sdk.rigs.materials.estimate_materials`).

:meth:`RiggedFace.write` writes ``NAME_rig.glb`` (the rig with the fitted weights set and the
texture embedded), ``NAME_sliders.json``, ``NAME_rig_texture.png`` and ``NAME_materials.json``
(:func:`facecraft.sdk.rigs.output.write_rig_outputs`); :meth:`RiggedFace.glb_bytes` gives the GLB
without a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..models.morphable_model import MorphableModel
from .correspondence import Correspondence
from .fit import ExpressionFit, RigFit, RigFitSettings, RigFitter
from .materials import MaterialParams, MaterialSettings, estimate_materials
from .output import RigOutputs, sliders_json, write_rig_outputs
from .rig import Rig

__all__ = ["RigCreateSettings", "RiggedFace", "FaceRigger"]

from ..render.texture import DEFAULT_TEXTURE_SIZE  # noqa: E402 (the one range)
from ..render.texture import MAX_TEXTURE_SIZE as _MAX_TEXTURE  # noqa: E402
from ..render.texture import MIN_TEXTURE_SIZE as _MIN_TEXTURE  # noqa: E402


@dataclass(frozen=True)
class RigCreateSettings:
    """How faces are fitted to a rig and what is produced.

    Attributes:
        texture_size: side of the texture baked into the rig's UV layout, texels, 0 (no
            texture) or in [256, 2048].
        texture_dilate: texels each UV island grows into the gutter (seam padding), in
            [0, texture_size].
        fit: slider-fit settings (:class:`~facecraft.sdk.rigs.fit.RigFitSettings`).
        materials: material-estimation settings; the pipeline's fine albedo holds photo
            (sRGB) values, the default.
        target_normals: GLBs also carry the morph targets' NORMAL deltas (lighting follows the
            sliders in engines that read them; about doubles the file).
    """

    texture_size: int = DEFAULT_TEXTURE_SIZE
    texture_dilate: int = 16
    fit: RigFitSettings = RigFitSettings()
    materials: MaterialSettings = MaterialSettings()
    target_normals: bool = True

    def __post_init__(self) -> None:
        _check_texture_size(self.texture_size, "RigCreateSettings.texture_size")
        if not (isinstance(self.texture_dilate, int)
                and 0 <= self.texture_dilate <= max(self.texture_size, 0)):
            raise InvalidInputError(f"RigCreateSettings.texture_dilate must be an integer in "
                                    f"[0, texture_size={self.texture_size}], got "
                                    f"{self.texture_dilate!r}")
        if not isinstance(self.fit, RigFitSettings):
            raise InvalidInputError(f"RigCreateSettings.fit must be a RigFitSettings, got "
                                    f"{type(self.fit).__name__}")
        if not isinstance(self.materials, MaterialSettings):
            raise InvalidInputError(f"RigCreateSettings.materials must be a MaterialSettings, "
                                    f"got {type(self.materials).__name__}")


def _check_texture_size(size: Any, what: str) -> None:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not (
            size == 0 or _MIN_TEXTURE <= size <= _MAX_TEXTURE):
        raise InvalidInputError(f"{what} must be 0 (no texture) or an integer in "
                                f"[{_MIN_TEXTURE}, {_MAX_TEXTURE}] texels, got {size!r}")


@dataclass(frozen=True, eq=False)
class RiggedFace:
    """One face fitted to a rig.

    Attributes:
        rig: the rig.
        fit: identity slider values and the fit's residual (:class:`RigFit`).
        expressions: expression slider weights (:class:`ExpressionFit`).
        texture: (S, S, 3) uint8 RGB in the rig's UV layout (row 0 = top, seams dilated), or
            None (no colours given, no texture asked for, or a rig without UVs).
        materials: material parameters, or None when no colours were given.
    """

    rig: Rig
    fit: RigFit
    expressions: ExpressionFit
    texture: np.ndarray | None
    materials: MaterialParams | None

    @property
    def values(self) -> dict[str, float]:
        """Every fitted slider: identity values, then expression weights (name -> value)."""
        return {**self.fit.values, **self.expressions.weights}

    def weights(self) -> np.ndarray:
        """(T,) float32 morph weights of the rig's targets (what the GLB stores)."""
        return self.rig.weights(self.values, clip=True)

    def sliders_json(self) -> dict[str, Any]:
        """The ``NAME_sliders.json`` document (:func:`facecraft.sdk.rigs.output.sliders_json`)."""
        return sliders_json(self.rig, self.fit, self.expressions)

    def texture_png(self) -> bytes | None:
        """The texture as PNG bytes, or None."""
        from .output import _png_bytes

        return _png_bytes(self.texture)

    def glb_bytes(self, *, target_normals: bool = True, bake_identity: bool = False) -> bytes:
        """The rig as GLB bytes with the fitted values and the texture (the rig's own when
        there is none). By default every fitted value is a morph weight (gRPC ``FitRig``'s
        documented contract); ``bake_identity=True`` gives ``NAME_rig.glb``'s layout, the
        identity baked into the base mesh (see :mod:`facecraft.sdk.rigs.output`)."""
        from .gltf import glb_bytes

        return glb_bytes(self.rig.to_gltf(self.weights(), texture_png=self.texture_png(),
                                          target_normals=target_normals,
                                          bake_identity=bake_identity))

    def write(self, out_dir: str | Path, stem: str, *, target_normals: bool = True,
              bake_identity: bool = True) -> RigOutputs:
        """Write ``STEM_rig.glb``, ``STEM_sliders.json``, ``STEM_rig_texture.png`` (with a
        texture) and ``STEM_materials.json`` (with materials) into ``out_dir`` (created)."""
        return write_rig_outputs(out_dir, self.rig, self.fit, expressions=self.expressions,
                                 texture=self.texture, materials=self.materials, stem=stem,
                                 target_normals=target_normals, bake_identity=bake_identity)


class FaceRigger:
    """Fits faces of one face model to one rig; build once per pair, call per face.

    Thread-safe once built: a call reads the fitter and allocates its own results.

    Args:
        model: the face model the faces come from (e.g. ``FaceCraft.face_model``).
        rig: the rig (:func:`facecraft.sdk.rigs.registry.resolve_rig`).
        settings: see :class:`RigCreateSettings`.
        cache_dir: correspondence cache root (default: FaceCraft's cache folder).
        use_cache: False never reads or writes the correspondence cache.
        correspondence: the pair's correspondence when already at hand (e.g. another
            rigger's ``fitter.correspondence``); the cache is then not used.

    Raises:
        InvalidInputError: the rig cannot be registered to the model (no rig vertex near the
            model's surface after the landmark warp: check its landmarks and units).
    """

    def __init__(self, model: MorphableModel, rig: Rig, *,
                 settings: RigCreateSettings | None = None,
                 cache_dir: str | Path | None = None, use_cache: bool = True,
                 correspondence: Correspondence | None = None) -> None:
        self.settings = RigCreateSettings() if settings is None else settings
        if not isinstance(self.settings, RigCreateSettings):
            raise InvalidInputError(f"expected settings a RigCreateSettings, got "
                                    f"{type(settings).__name__}")
        self.model = model
        self.rig = rig
        self.fitter = RigFitter(model, rig, settings=self.settings.fit, cache_dir=cache_dir,
                                use_cache=use_cache, correspondence=correspondence)

    def __repr__(self) -> str:
        return f"FaceRigger(model={self.model.name!r}, rig={self.rig.name!r})"

    def fit_result(self, result: Any, *, texture_size: int | None = None) -> RiggedFace:
        """Fit a :class:`~facecraft.sdk.FaceResult`: its neutral shape, fine albedo,
        expression coefficients and visibility (see :meth:`fit`)."""
        return self.fit(result.neutral_vertices, vertex_colors=result.fine_albedo,
                        expression=result.coefficients.expression,
                        visibility=result.visibility, texture_size=texture_size)

    def fit(self, neutral_vertices: np.ndarray, *, vertex_colors: np.ndarray | None = None,
            expression: np.ndarray | None = None, visibility: np.ndarray | None = None,
            texture_size: int | None = None) -> RiggedFace:
        """Fit one face.

        Args:
            neutral_vertices: (V, 3) the face without expression, metres, model frame
                (``FaceResult.neutral_vertices``).
            vertex_colors: (V, 3) RGB in [0, 1], the fine albedo (``FaceResult.fine_albedo``);
                None: no texture and no materials.
            expression: (Ke,) the model's expression coefficients (fewer: the rest 0); None:
                a neutral expression.
            visibility: (V,) bool, vertices the photo showed (materials read only those); None:
                every front-facing vertex.
            texture_size: the texture's side for this call (default the settings'); 0: none.

        Returns:
            :class:`RiggedFace`.

        Raises:
            InvalidInputError: arrays of the wrong shape or with non-finite values.
        """
        st = self.settings
        size = st.texture_size if texture_size is None else texture_size
        _check_texture_size(size, "texture_size")
        v = self.model.num_vertices
        neutral = np.asarray(neutral_vertices, np.float64)
        if neutral.shape != (v, 3):
            raise InvalidInputError(f"expected neutral_vertices ({v}, 3) of model "
                                    f"{self.model.name!r}, got {neutral.shape}")
        fit = self.fitter.fit(neutral)
        coeffs = np.zeros(0) if expression is None else np.asarray(expression, np.float64)
        expressions = self.fitter.expressions(coeffs.reshape(-1))
        texture = materials = None
        if vertex_colors is not None:
            colors = np.asarray(vertex_colors)
            if colors.shape != (v, 3):
                raise InvalidInputError(f"expected vertex_colors ({v}, 3) RGB in [0, 1], got "
                                        f"{colors.shape}")
            if visibility is not None:
                visibility = np.asarray(visibility, bool).reshape(-1)
            materials = estimate_materials(self.model, colors, vertices=neutral,
                                           visibility=visibility, settings=st.materials)
            if size and len(self.rig.uvs):
                from ..render.texture import BakeSettings

                bake = BakeSettings(size=int(size), dilate=min(st.texture_dilate, int(size)))
                texture = self.fitter.transfer_texture(
                    vertex_colors=np.clip(colors.astype(np.float64), 0.0, 1.0), settings=bake)
        return RiggedFace(rig=self.rig, fit=fit, expressions=expressions, texture=texture,
                          materials=materials)
