"""FaceCraft's built-in starter morphable model, generated procedurally from code.

``facecraft create photo.jpg`` must work on a fresh machine with no downloaded model, and no
third-party model data may ship with FaceCraft, so the default model is *generated*: a head
surface on a UV grid with sculpted features, hand-designed anthropometric identity modes with
slider names, the 53 ARKit-style expression blendshapes under ICT-FaceKit's names, and a small
per-vertex albedo model. It is honestly a starter (and the default game-character rig); real
work imports ICT-FaceKit (:mod:`facecraft.sdk.models.importers.ict`).

Construction (deterministic, vectorized NumPy; no randomness, about 0.2 s):

* **Grid.** ``rows`` rings from the neck stump to near the crown, ``cols`` vertices per ring,
  plus one crown vertex. Each vertex is a ray from the origin (the head's centre) at an azimuth
  (0 = straight ahead, +90 deg = +X = the subject's left) and an elevation. Columns crowd in the
  face; rows follow *guide curves* (lid margins, lip lines, nose, brows...), so feature edges lie
  on grid lines and every vertex keeps its anatomical meaning under every mode.
* **Surface.** Each ray's length is where it leaves a loft of horizontal superellipse sections
  (profile and widths from anthropometry), plus radial relief for the nose, sockets, brow ridge,
  cheekbones, lips and chin; eyeballs (a globe and a cornea) show through the palpebral fissure
  between lids. The mouth is a closed slit with a shallow pocket, so ``jawOpen`` opens it.
* **UVs.** Per-corner: ``u`` = column / cols (seam at the back of the head), ``v`` = row / rows;
  the face, sampled densely, covers most of the layout.

Frame and units follow :mod:`facecraft.sdk.models.morphable_model`: metres, right-handed, +Y up, the
face looking down +Z, origin near the centre of the head. ``_L`` names are the subject's left
(+X). Identity coefficients are unit-variance: a coefficient of 1 is about one population
standard deviation of the named measurement. Approximate spreads used (adults, sexes pooled,
after Farkas' North-American norms and similar tables; all values are rounded and approximate):

======================  ==================================================  =========
slider                  measurement                                          1 sd
======================  ==================================================  =========
face_width              bizygomatic width (zy-zy), ~137 mm                   6 mm
face_length             nasion-gnathion (n-gn), ~117 mm                      6 mm
head_width              head breadth (eu-eu), ~150 mm                        5.5 mm
head_depth              head length (g-op), ~190 mm                          6.5 mm
forehead_height         trichion-nasion (tr-n), ~60 mm                       6 mm
forehead_slope          forehead inclination                                 4 deg
brow_ridge              glabella / brow-ridge prominence                     1.5 mm
cheekbone_height        malar prominence, vertical position                  3 mm
cheekbone_width         malar prominence, lateral/forward                    2.5 mm
cheek_fullness          buccal soft tissue                                   3 mm
jaw_width               bigonial width (go-go), ~100 mm                      5.5 mm
chin_length             stomion-gnathion (sto-gn), ~48 mm                    3.5 mm
chin_width              chin breadth                                         2.5 mm
chin_protrusion         pogonion projection                                  3 mm
eye_size                palpebral fissure length (en-ex), ~30 mm             1.5 mm
eye_spacing             intercanthal width (en-en), ~32 mm                   2.5 mm
eye_height              eye level within the face                            2.5 mm
eye_tilt                canthal tilt                                         3 deg
eye_depth               globe projection (exophthalmometry)                  2 mm
nose_length             nasion-subnasale (n-sn), ~52 mm                      3.5 mm
nose_width              alar width (al-al), ~33 mm                           2.5 mm
nose_bridge_height      dorsum projection                                    2 mm
nose_tip_projection     subnasale-pronasale (sn-prn), ~20 mm                 2 mm
nose_tip_height         tip rotation (vertical)                              2 mm
nostril_flare           alar flare                                           1.5 mm
mouth_width             cheilion-cheilion (ch-ch), ~51 mm                    3.5 mm
mouth_height            subnasale-stomion (sn-sto), ~22 mm                   2 mm
lip_fullness_upper      upper vermilion height (ls-sto), ~9 mm               1.5 mm
lip_fullness_lower      lower vermilion height (sto-li), ~10 mm              1.6 mm
lip_protrusion          lip projection                                       2 mm
ear_size                ear length (sa-sba), ~62 mm                          4 mm
======================  ==================================================  =========

Each identity mode is a smooth, localized, left-right symmetric displacement field, scaled at
build time so that its measurement on the mean face changes by the sd above per unit.
Expression modes are blendshape deltas at weight 1 (``expression_kind="blendshape"``).
Albedo modes are unit-variance per-vertex colour changes (linear RGB); see
:data:`ALBEDO_SLIDERS`.

Modules: :mod:`~facecraft.sdk.models.starter_geometry` (design constants, grid layout, surface,
topology), :mod:`~facecraft.sdk.models.starter_features` (feature coordinates, landmarks,
regions), :mod:`~facecraft.sdk.models.starter_identity`,
:mod:`~facecraft.sdk.models.starter_expressions` and :mod:`~facecraft.sdk.models.starter_albedo`
(the three bases); this module holds the settings and :func:`build_starter_model`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from .morphable_model import MorphableModel, landmarks_from_vertices
from .starter_albedo import ALBEDO_SLIDERS, _albedo
from .starter_expressions import EXPRESSION_NAMES, _expression_basis
from .starter_features import _features, _landmark_vertices, _regions
from .starter_geometry import (
    _MIN_COLS,
    _MIN_ROWS,
    _layout,
    _mirror,
    _mirror_index,
    _positions,
    _topology,
)
from .starter_identity import IDENTITY_SLIDERS, _identity_basis

__all__ = [
    "STARTER_VERSION",
    "StarterSettings",
    "IDENTITY_SLIDERS",
    "EXPRESSION_NAMES",
    "ALBEDO_SLIDERS",
    "build_starter_model",
]

#: Version of the generated data; bump it whenever the output of the default build changes.
STARTER_VERSION = "1.0"

_LICENCE = "Apache-2.0 (generated by FaceCraft; no third-party data)"


# ----------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class StarterSettings:
    """How to generate the starter model (the defaults make FaceCraft's default model).

    Attributes:
        rows: rings of vertices from the neck stump to near the crown (>= 48). More rows add
            detail between the feature guide curves; the guides themselves are fixed.
        cols: vertices per ring, even (>= 64); more than half of them lie within 55 deg of
            straight ahead.
            ``rows * cols + 1`` vertices in all (64 x 96: 6,145 vertices, 12,192 triangles).
        jaw_open_deg: rotation of the jaw about the jaw joint at ``jawOpen = 1``, degrees
            in (0, 40].
        gaze_deg: rotation of the iris at ``eyeLook* = 1``, degrees in (0, 45].
        name: the model's ``name``.
    """

    rows: int = 64
    cols: int = 96
    jaw_open_deg: float = 18.0
    gaze_deg: float = 25.0
    name: str = "facecraft-starter"

    def __post_init__(self) -> None:
        def bad(field_name: str, expected: str) -> InvalidInputError:
            return InvalidInputError(f"StarterSettings.{field_name} must be {expected}, "
                                     f"got {getattr(self, field_name)!r}")

        for field_name in ("rows", "cols"):
            val = getattr(self, field_name)
            if not isinstance(val, int) or isinstance(val, bool):
                raise TypeError(f"StarterSettings.{field_name} must be an int, got {val!r}")
        if not _MIN_ROWS <= self.rows <= 1024:
            raise bad("rows", f"in [{_MIN_ROWS}, 1024]")
        if not (_MIN_COLS <= self.cols <= 2048 and self.cols % 2 == 0):
            raise bad("cols", f"even and in [{_MIN_COLS}, 2048]")
        if not 0.0 < float(self.jaw_open_deg) <= 40.0:
            raise bad("jaw_open_deg", "in (0, 40] degrees")
        if not 0.0 < float(self.gaze_deg) <= 45.0:
            raise bad("gaze_deg", "in (0, 45] degrees")
        if not isinstance(self.name, str) or not self.name:
            raise bad("name", "a non-empty string")


# ----------------------------------------------------------------------------- build
def build_starter_model(settings: StarterSettings = StarterSettings()) -> MorphableModel:
    """Generate FaceCraft's starter morphable model.

    Args:
        settings: grid resolution and rig amounts (:class:`StarterSettings`).

    Returns:
        A :class:`MorphableModel` (``graph=None``): ``rows * cols + 1`` vertices in metres
        (+Y up, face towards +Z), identity modes named :data:`IDENTITY_SLIDERS` (unit-variance),
        the 53 blendshapes :data:`EXPRESSION_NAMES`, albedo modes :data:`ALBEDO_SLIDERS`,
        iBUG-68 landmarks, regions (``face``, ``skin``, ``eye_left``, ``eye_right``,
        ``mouth_interior``, ``lips``, ``brows``, ``nose``, ``back_of_head``) and a UV layout.
        The same settings always give byte-identical arrays.
    """
    if not isinstance(settings, StarterSettings):
        raise TypeError(f"settings must be a StarterSettings, got {type(settings).__name__}")
    from .mesh import vertex_normals_np

    lay = _layout(settings.rows, settings.cols)
    mirror = _mirror_index(settings.rows, settings.cols)
    raw = _positions(lay, np.zeros((2, 3)))
    mean = 0.5 * (raw + _mirror(raw, mirror))
    tris, uvs, uv_tris = _topology(settings.rows, settings.cols)
    f = _features(lay, mean, vertex_normals_np(mean, tris).astype(np.float64))
    lm = _landmark_vertices(lay, f, mirror)
    lm_faces, lm_bary = landmarks_from_vertices(lm, tris)
    albedo_mean, albedo_basis = _albedo(f)
    return MorphableModel(
        name=settings.name,
        mean_shape=mean,
        identity_basis=_identity_basis(lay, f, lm, mirror),
        identity_names=IDENTITY_SLIDERS,
        expression_basis=_expression_basis(lay, f, mirror, gaze_deg=settings.gaze_deg,
                                            jaw_open_deg=settings.jaw_open_deg),
        expression_names=EXPRESSION_NAMES,
        triangles=tris,
        uvs=uvs,
        uv_triangles=uv_tris,
        landmark_faces=lm_faces,
        landmark_bary=lm_bary,
        regions=_regions(lay, f),
        albedo_mean=albedo_mean,
        albedo_basis=albedo_basis,
        albedo_names=ALBEDO_SLIDERS,
        expression_kind="blendshape",
        provenance={"source": "facecraft procedural starter", "version": STARTER_VERSION,
                    "settings": dataclasses.asdict(settings)},
        licence=_LICENCE,
    )
