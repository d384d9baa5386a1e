"""The material parameters record (NumPy-free, standard library only), so that the gRPC client
can return it without loading the estimator (:mod:`facecraft.sdk.rigs.materials`, which
re-exports it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["MaterialParams"]


@dataclass(frozen=True)
class MaterialParams:
    """Material parameters an engine maps to its presets (None where not measurable).

    Attributes:
        skin_hex: skin colour ``"#rrggbb"`` (sRGB). skin_srgb: (3,) sRGB in [0, 1].
        skin_lab: (3,) CIELAB (D65): L* in [0, 100], a*, b*.
        skin_ita_deg: Individual Typology Angle, degrees (higher = lighter).
        skin_type: Fitzpatrick-like type 1 (very light) .. 6 (dark), from the ITA.
        skin_category: the ITA category's name.
        iris_hex / iris_srgb: iris colour. iris_lightness: its L*.
        iris_category: ``"blue"``, ``"grey"``, ``"green"``, ``"hazel"``, ``"brown"`` or
            ``"dark_brown"``.
        eyebrow_hex / eyebrow_srgb: brow hair colour (the band's median where no hair is
            found). eyebrow_density: fraction of the brow band that is hair, in [0, 1].
        lip_hex / lip_srgb: lip colour.
        source: ``"texture"`` or ``"photo"``.
        samples: how many vertices / pixels each estimate used.
    """

    skin_hex: str | None
    skin_srgb: tuple[float, float, float] | None
    skin_lab: tuple[float, float, float] | None
    skin_ita_deg: float | None
    skin_type: int | None
    skin_category: str | None
    iris_hex: str | None
    iris_srgb: tuple[float, float, float] | None
    iris_lightness: float | None
    iris_category: str | None
    eyebrow_hex: str | None
    eyebrow_srgb: tuple[float, float, float] | None
    eyebrow_density: float | None
    lip_hex: str | None
    lip_srgb: tuple[float, float, float] | None
    source: str
    samples: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (``format: facecraft.materials``)."""
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = [round(float(x), 4) for x in v]
            elif isinstance(v, float):
                d[k] = round(v, 4)
        return {"format": "facecraft.materials", "version": 1, **d}
