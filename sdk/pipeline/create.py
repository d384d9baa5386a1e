"""Writing reconstructions to disk, and the ``facecraft create`` command's work.

Per face, :func:`write_face_outputs` writes into one folder::

    NAME.obj            the mesh (model frame, metres) with UVs and normals, ``mtllib NAME.mtl``
    NAME.mtl            one material whose ``map_Kd`` is NAME_texture.png
    NAME_texture.png    the baked UV texture (fine albedo, seams dilated)
    NAME_neutral.obj    the same face with a neutral expression (same UVs and material)
    NAME_coeffs.json    coefficients, pose, detection, landmarks (FaceResult.coefficients_json)
    NAME_overlay.png    the lit reconstruction drawn over the photo

With a rig (``facecraft create --rig RIG``, a :class:`~facecraft.sdk.rigs.create.FaceRigger`),
also (:meth:`facecraft.sdk.rigs.create.RiggedFace.write`)::

    NAME_rig.glb            the rig with the fitted slider and expression weights set and the
                            texture baked into its UV layout embedded
    NAME_sliders.json       slider values (in range and normalised to [0, 1]), fit residual (mm)
    NAME_rig_texture.png    that texture
    NAME_materials.json     skin tone, iris, eyebrow and lip colours (material parameters)

``NAME`` is the photo's file stem, with ``_face2``, ``_face3``, ... for further faces of one photo.
Every file is written atomically (a temporary file, then a rename).

:func:`create_faces` runs a :class:`~facecraft.sdk.pipeline.pipeline.FaceCraft` over many photos in
batches, writes each face, and carries on past photos that fail (no face, not an image),
reporting them in the returned :class:`CreateReport`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..atomic_file import write_atomic
from ..errors import FaceCraftError, InvalidInputError
from ..render.mesh_io import write_obj, write_png
from ..render.rasterizer import RasterSettings, interpolate, rasterize
from ..rigs.output import RigOutputs

if TYPE_CHECKING:
    from ..rigs.create import FaceRigger
    from .package import ModelPackage
    from .pipeline import FaceCraft, FaceResult

__all__ = ["CreatedFiles", "CreateReport", "write_face_outputs", "render_overlay",
           "create_faces"]

_MATERIAL = "face"


@dataclass(frozen=True)
class CreatedFiles:
    """The files written for one face."""

    obj: Path
    mtl: Path
    texture: Path | None
    neutral_obj: Path
    coefficients: Path
    overlay: Path | None
    rig: RigOutputs | None = None


@dataclass(frozen=True)
class CreateReport:
    """What :func:`create_faces` did.

    Attributes:
        written: photo path -> the files of each of its faces.
        failed: photo path -> the error message.
    """

    written: dict[str, list[CreatedFiles]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def num_faces(self) -> int:
        return sum(len(v) for v in self.written.values())


def render_overlay(photo_rgb: np.ndarray, result: FaceResult, *, alpha: float = 1.0
                   ) -> np.ndarray:
    """Draw a reconstruction over its photo: fine albedo times SH shading, Gouraud-interpolated.

    Only the face's bounding rectangle is rasterized (back faces culled), so large photos cost
    no more than small ones.

    Args:
        photo_rgb: (H, W, 3) float RGB in [0, 1] (e.g. ``result.photo.rgb``).
        result: a :class:`~facecraft.sdk.pipeline.pipeline.FaceResult` of this photo.
        alpha: opacity of the face over the photo, in [0, 1].

    Returns:
        (H, W, 3) uint8 RGB.
    """
    img = np.clip(np.asarray(photo_rgb, np.float32), 0.0, 1.0).copy()
    h, w = img.shape[:2]
    pv = result.photo_vertices
    x0 = int(max(np.floor(pv[:, 0].min()), 0))
    y0 = int(max(np.floor(pv[:, 1].min()), 0))
    x1 = int(min(np.ceil(pv[:, 0].max()), w))
    y1 = int(min(np.ceil(pv[:, 1].max()), h))
    if x1 > x0 and y1 > y0:
        screen = torch.from_numpy(pv - np.array([x0, y0, 0], np.float32))[None]
        tri = torch.from_numpy(result.triangles.astype(np.int64))
        frags = rasterize(screen, tri, RasterSettings((y1 - y0, x1 - x0), cull_backfaces=True))
        lit = torch.from_numpy(np.clip(result.fine_albedo * result.shading, 0.0, 1.0))
        face = interpolate(lit[None], frags, tri)[0].numpy()
        mask = frags.mask[0].numpy()[..., None] * float(alpha)
        region = img[y0:y1, x0:x1]
        img[y0:y1, x0:x1] = mask * face + (1.0 - mask) * region
    return np.rint(img * 255.0).astype(np.uint8)


def write_face_outputs(result: FaceResult, out_dir: str | Path, name: str, *,
                       package: ModelPackage | None = None, overlay: bool = True,
                       rigger: FaceRigger | None = None) -> CreatedFiles:
    """Write one face's files (see the module docstring).

    Args:
        result: a :class:`~facecraft.sdk.pipeline.pipeline.FaceResult`.
        out_dir: the folder (created if missing).
        name: the file-name stem.
        package: the :class:`~facecraft.sdk.pipeline.package.ModelPackage` used (recorded in the
        JSON).
        overlay: also render ``NAME_overlay.png``.
        rigger: a :class:`~facecraft.sdk.rigs.create.FaceRigger` of the result's face model:
            also fit its rig and write the rig files.
    """
    out = _output_dir(out_dir)
    obj, mtl = out / f"{name}.obj", out / f"{name}.mtl"
    tex = out / f"{name}_texture.png" if result.texture is not None else None
    if tex is not None:
        write_png(tex, result.texture)
        write_atomic(mtl, f"# FaceCraft material\nnewmtl {_MATERIAL}\nKa 0 0 0\nKd 1 1 1\n"
                          f"Ks 0 0 0\nNs 1\nd 1\nillum 1\nmap_Kd {tex.name}\n")
    else:
        write_atomic(mtl, f"# FaceCraft material\nnewmtl {_MATERIAL}\nKd 0.8 0.8 0.8\n")
    from ..models.mesh import vertex_normals_np

    neutral = out / f"{name}_neutral.obj"
    for path, verts, normals in (
            (obj, result.vertices, result.normals),
            (neutral, result.neutral_vertices,
             vertex_normals_np(result.neutral_vertices, result.triangles))):
        write_obj(path, verts, result.triangles, uvs=result.uvs,
                  uv_triangles=result.uv_triangles, normals=normals, mtllib=mtl.name,
                  material_name=_MATERIAL)
    coeffs = out / f"{name}_coeffs.json"
    record = result.coefficients_json(package)  # one key per line, arrays on one line each
    write_atomic(coeffs, "{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}"
                                             for k, v in record.items()) + "\n}\n")
    ov = None
    if overlay:
        ov = out / f"{name}_overlay.png"
        write_png(ov, render_overlay(result.photo.rgb, result))
    rig = None
    if rigger is not None:
        rig = rigger.fit_result(result).write(out, name,
                                              target_normals=rigger.settings.target_normals)
    return CreatedFiles(obj=obj, mtl=mtl, texture=tex, neutral_obj=neutral,
                        coefficients=coeffs, overlay=ov, rig=rig)


def _output_dir(out_dir: str | Path) -> Path:
    """The output folder, created if missing.

    Raises:
        FaceCraftError: it exists as something else, or cannot be created.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FaceCraftError(f"{out} exists and is not a folder; give a folder for the output "
                             "files")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FaceCraftError(f"cannot create the output folder {out}: {e.strerror or e}"
                             ) from None
    return out


def _stems(photos: Sequence[Path]) -> list[str]:
    """File stems, made unique (``x``, ``x-2``, ...) when two photos share one."""
    seen: dict[str, int] = {}
    out = []
    for p in photos:
        stem = p.stem or "photo"
        n = seen.get(stem, 0) + 1
        seen[stem] = n
        out.append(stem if n == 1 else f"{stem}-{n}")
    return out


def create_faces(facecraft: FaceCraft, photos: Sequence[str | Path], out_dir: str | Path, *,
                 batch_size: int = 4, overlay: bool = True, progress: bool = False,
                 on_error: Callable[[str, str], None] | None = None,
                 rigger: FaceRigger | None = None) -> CreateReport:
    """Reconstruct photos and write every face's files, continuing past failures.

    Args:
        facecraft: a :class:`~facecraft.sdk.pipeline.pipeline.FaceCraft`.
        photos: photo files.
        out_dir: output folder.
        batch_size: photos per batch (the networks run once per batch).
        overlay: write overlay PNGs.
        progress: a tqdm progress bar on stderr.
        on_error: called with (photo, message) for each photo that fails, as it happens.
        rigger: a :class:`~facecraft.sdk.rigs.create.FaceRigger` built once for
            ``facecraft.face_model`` and a rig: every face is also fitted to the rig.

    Returns:
        :class:`CreateReport`.

    Raises:
        InvalidInputError: ``batch_size`` < 1.
        FaceCraftError: ``out_dir`` cannot be created or is not a folder.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    _output_dir(out_dir)
    paths = [Path(p) for p in photos]
    names = _stems(paths)
    written: dict[str, list[CreatedFiles]] = {}
    failed: dict[str, str] = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(paths), desc="create", unit="photo", file=sys.stderr,
                   dynamic_ncols=True)
    try:
        for start in range(0, len(paths), batch_size):
            chunk = paths[start:start + batch_size]
            got = facecraft.reconstruct_batch(chunk, errors="return")
            for path, stem, res in zip(chunk, names[start:start + batch_size], got,
                                       strict=True):
                if isinstance(res, FaceCraftError):
                    failed[str(path)] = str(res)
                    if on_error is not None:
                        on_error(str(path), str(res))
                    continue
                files = []
                for face in res:
                    name = stem if face.face_index == 0 else f"{stem}_face{face.face_index + 1}"
                    try:
                        files.append(write_face_outputs(face, out_dir, name,
                                                        package=facecraft.package,
                                                        overlay=overlay, rigger=rigger))
                    except FaceCraftError as e:
                        failed[str(path)] = str(e)
                        if on_error is not None:
                            on_error(str(path), str(e))
                        break
                written[str(path)] = files
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    return CreateReport(written=written, failed=failed)
