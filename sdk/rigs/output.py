"""Writing a fitted rig: the GLB with the fitted face and the baked texture, slider values
and material parameters as JSON.

:func:`write_rig_glb` writes the rig (:class:`facecraft.sdk.rigs.rig.Rig`) with the texture baked
into the rig's UV layout as its base colour. By default the fitted identity is baked into the
base mesh (:data:`facecraft.sdk.rigs.rig.BAKED_IDENTITY`): the GLB's vertex positions are the
player's head, so readers that ignore morph weights (trimesh, many asset pipelines) show it too;
every slider stays a morph target, identity targets with weight 0 (their fitted values are in
``mesh.extras.facecraft.baked_identity``, so an engine that applies weights never applies identity
twice: rig value = baked value + GLB weight) and expressions with their fitted weights. With
``bake_identity=False`` the base is the rig's neutral head and every fitted value is a weight.
:func:`write_rig_outputs` adds ``STEM_sliders.json`` (:func:`sliders_json`: every value in its
slider's own range and normalised to [0, 1], plus the fit's residual and
``"baked_identity": true|false``), the texture PNG and ``STEM_materials.json``
(:class:`facecraft.sdk.rigs.materials.MaterialParams`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from .fit import ExpressionFit, RigFit
from .rig import BAKED_IDENTITY, Rig

__all__ = ["SLIDERS_FORMAT", "RigOutputs", "sliders_json", "write_rig_glb",
           "write_rig_outputs"]

SLIDERS_FORMAT = "facecraft.rig_sliders"


def sliders_json(rig: Rig, fit: RigFit | None = None,
                 expressions: ExpressionFit | Mapping[str, float] | None = None, *,
                 bake_identity: bool = True) -> dict[str, Any]:
    """The slider-values document: identity and expression values, each also normalised to
    [0, 1] of its range (for engines whose sliders run 0..1 or 0..100), the fit report, and
    ``baked_identity``: whether the GLB written beside it has the identity values baked into
    its base mesh (then its identity weights are 0; see the module docstring)."""
    ident = dict(fit.values) if fit is not None else {}
    if isinstance(expressions, ExpressionFit):
        expr, method = dict(expressions.weights), expressions.method
    else:
        expr, method = dict(expressions or {}), None
    doc: dict[str, Any] = {"format": SLIDERS_FORMAT, "version": 1, "rig": rig.name,
                           "rig_sha256": rig.content_hash,
                           BAKED_IDENTITY: bool(bake_identity)}
    for key, values in (("identity", ident), ("expression", expr)):
        doc[key] = {k: round(float(v), 6) for k, v in values.items()}
        doc[f"{key}_normalized"] = {
            k: round((float(v) - rig.slider(k).min) / rig.slider(k).range, 6)
            for k, v in values.items()}
    if fit is not None:
        doc["fit"] = fit.report()
    if method is not None:
        doc["expression_method"] = method
    return doc


def _png_bytes(texture: Any) -> bytes | None:
    if texture is None:
        return None
    if isinstance(texture, (bytes, bytearray)):
        return bytes(texture)
    import cv2

    from ..render.mesh_io import _image_for_png

    ok, buf = cv2.imencode(".png", _image_for_png(texture, 8))
    if not ok:
        raise InvalidInputError("could not encode the texture as PNG")
    return buf.tobytes()


def write_rig_glb(rig: Rig, fit: RigFit | None, expressions: ExpressionFit | Mapping[str, float]
                  | None, texture: Any, path: str | Path, *,
                  target_normals: bool = True, bake_identity: bool = True) -> Path:
    """Write the rig as GLB with the fitted face (see the module docstring).

    Args:
        rig: the rig.
        fit: identity slider values (None: defaults).
        expressions: expression weights (an :class:`ExpressionFit` or name -> value; None:
            defaults).
        texture: PNG bytes, an (H, W, 3) uint8 / float [0, 1] image in the rig's UV layout, or
            None (the rig's own texture, if any).
        path: the ``.glb`` to write.
        target_normals: also write NORMAL deltas of the morph targets.
        bake_identity: the fitted identity in the base mesh (identity weights 0), else in the
            weights.

    Returns:
        ``path``.
    """
    from .gltf import write_glb

    values: dict[str, float] = dict(fit.values) if fit is not None else {}
    if isinstance(expressions, ExpressionFit):
        values.update(expressions.weights)
    elif expressions:
        values.update({k: float(v) for k, v in expressions.items()})
    weights = rig.weights(values, clip=True)
    return write_glb(path, rig.to_gltf(weights, texture_png=_png_bytes(texture),
                                       target_normals=target_normals,
                                       bake_identity=bake_identity))


@dataclass(frozen=True)
class RigOutputs:
    """Files :func:`write_rig_outputs` wrote (None where nothing was given)."""

    glb: Path
    sliders: Path
    texture: Path | None
    materials: Path | None


def write_rig_outputs(out_dir: str | Path, rig: Rig, fit: RigFit | None, *,
                      expressions: ExpressionFit | Mapping[str, float] | None = None,
                      texture: Any = None, materials: Any = None, stem: str = "face",
                      target_normals: bool = True, bake_identity: bool = True) -> RigOutputs:
    """Write a fitted rig: ``STEM_rig.glb``, ``STEM_sliders.json``, ``STEM_rig_texture.png``
    (when a texture is given) and ``STEM_materials.json`` (when materials are given).

    Args:
        out_dir: the folder (created).
        rig, fit, expressions, texture: as :func:`write_rig_glb`.
        materials: a :class:`facecraft.sdk.rigs.materials.MaterialParams` (or anything with
            ``to_json()``, or a dict).
        stem: file-name prefix.
        target_normals, bake_identity: as :func:`write_rig_glb`.
    """
    from ..render.mesh_io import _atomic_write

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png = _png_bytes(texture)
    glb = write_rig_glb(rig, fit, expressions, png, out / f"{stem}_rig.glb",
                        target_normals=target_normals, bake_identity=bake_identity)
    sliders = out / f"{stem}_sliders.json"
    doc = sliders_json(rig, fit, expressions, bake_identity=bake_identity)
    _atomic_write(sliders, (json.dumps(doc, indent=1) + "\n").encode())
    tex_path = None
    if png is not None:
        tex_path = out / f"{stem}_rig_texture.png"
        _atomic_write(tex_path, png)
    mat_path = None
    if materials is not None:
        doc = materials.to_json() if hasattr(materials, "to_json") else dict(materials)
        mat_path = out / f"{stem}_materials.json"
        _atomic_write(mat_path, (json.dumps(doc, indent=1) + "\n").encode())
    return RigOutputs(glb=glb, sliders=sliders, texture=tex_path, materials=mat_path)
