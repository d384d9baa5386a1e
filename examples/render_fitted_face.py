"""Render a face model fitted to a photo, with SH lighting estimated from the photo.

    python examples/render_fitted_face.py PHOTO LANDMARKS.json -o fitted.png [--model starter]

LANDMARKS.json holds 68 iBUG points in the photo's pixels: a plain ``[[x, y], ...]`` list,
``{"lm68_xy": [...]}``, or an annotations file such as ``../shared/assets/landmarks68.json``
(the photo is looked up by its path relative to that file, or its name). With no arguments
it uses the 300-W photo and its manual landmarks from
``../shared/assets`` (when present). Writes one PNG: the photo crop | the lit model composited
over it | the lit model alone. The pose comes from a weak-perspective landmark fit, the lighting
from a least-squares SH fit of the model's albedo to the photo's colours at visible vertices:
no learned network is involved (`facecraft create` runs the learned pipeline).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from facecraft.sdk.errors import FaceCraftError
from facecraft.sdk.models.default_model import resolve_model
from facecraft.sdk.render.lighting import fit_sh
from facecraft.sdk.render.mesh_io import write_png
from facecraft.sdk.render.pose_fit import fit_weak_perspective
from facecraft.sdk.render.renderer import render_mesh
from facecraft.sdk.render.sampling import sample_vertex_colors

ASSETS = Path(__file__).resolve().parents[1].parent / "shared" / "assets"
DEFAULT_PHOTO = "photos/eos-300w/image_0010.png"


def _annotation_key(images: dict, path: Path, photo: Path) -> str:
    """The key of ``photo`` in an annotations file's ``images`` (paths relative to the file)."""
    want = photo.resolve()
    for key in images:
        if (path.parent / key).resolve() == want:
            return key
    by_name = [key for key in images if Path(key).name == photo.name]
    if len(by_name) == 1:
        return by_name[0]
    raise FaceCraftError(f"{path}: no landmarks for {photo} (it annotates "
                         f"{len(images)} photos, e.g. {next(iter(images), 'none')!r})")


def load_landmarks(path: Path, photo: Path) -> np.ndarray:
    """68 (x, y) landmarks of ``photo`` from ``path``: a plain list, ``{"lm68_xy": [...]}``, or
    an annotations file (``{"images": {relative path: {"faces": [...]}}}``, e.g.
    ../shared/assets/landmarks68.json; its largest face)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise FaceCraftError(f"{path}: not a readable landmarks JSON ({e})") from None
    if isinstance(data, dict) and isinstance(data.get("images"), dict):
        faces = data["images"][_annotation_key(data["images"], path, photo)].get("faces") or []
        if not faces:
            raise FaceCraftError(f"{path}: no faces annotated for {photo}")
        data = max(faces, key=lambda f: np.ptp(np.asarray(f["lm68_xy"], float), 0).max())
    if isinstance(data, dict):
        data = data.get("lm68_xy")
    try:
        lm = np.asarray(data, np.float64)
    except (TypeError, ValueError):
        lm = np.zeros(0)
    if lm.shape != (68, 2):
        raise FaceCraftError(f"{path}: expected 68 (x, y) landmarks, got shape {lm.shape}")
    return lm


def crop_face(img: np.ndarray, lm: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A square crop around the landmarks (1.6x their extent), resized to size x size."""
    c = (lm.min(0) + lm.max(0)) / 2
    side = (lm.max(0) - lm.min(0)).max() * 1.6
    s = size / side
    warp = np.array([[s, 0, -(c[0] - side / 2) * s], [0, s, -(c[1] - side / 2) * s]])
    crop = cv2.warpAffine(img, warp, (size, size), flags=cv2.INTER_AREA)
    return crop, lm * s + warp[:, 2]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photo", nargs="?", type=Path, help="the photo (default: a 300-W sample)")
    ap.add_argument("landmarks", nargs="?", type=Path, help="68-point landmarks JSON")
    ap.add_argument("-o", "--output", type=Path, default=Path("fitted.png"))
    ap.add_argument("--model", default="starter", help=".fcm file or `starter` (default)")
    ap.add_argument("--size", type=int, default=320, help="crop size in pixels")
    args = ap.parse_args(argv)
    try:
        if args.photo is None:
            args.photo, args.landmarks = ASSETS / DEFAULT_PHOTO, ASSETS / "landmarks68.json"
            if not args.photo.is_file():
                raise FaceCraftError("no PHOTO given and ../shared/assets is not present")
        if args.landmarks is None:
            raise FaceCraftError("give LANDMARKS.json with the photo")
        img = cv2.imread(str(args.photo), cv2.IMREAD_COLOR)
        if img is None:
            raise FaceCraftError(f"{args.photo}: not a readable image")
        crop, lm = crop_face(img[:, :, ::-1], load_landmarks(args.landmarks, args.photo), args.size)
        model = resolve_model(args.model)
        if not model.has_albedo:
            raise FaceCraftError(f"model {model.name!r} has no albedo model to light")
        fit = fit_weak_perspective(model.landmarks(model.mean_shape), lm, crop.shape[:2])
        verts = torch.from_numpy(model.mean_shape)[None]
        tri = torch.from_numpy(model.triangles).long()
        albedo = torch.from_numpy(model.albedo_mean)[None]
        photo = torch.from_numpy(crop.astype(np.float32) / 255)
        with torch.inference_mode():
            first = render_mesh(verts, tri, albedo, camera=fit.camera, pose=fit.pose)
            sampled = sample_vertex_colors(photo.permute(2, 0, 1)[None], first.screen_verts,
                                           first.visibility)
            skin = torch.zeros(model.num_vertices)
            skin[torch.from_numpy(model.regions.get("skin", np.arange(model.num_vertices)))
                 .long()] = 1.0
            sh = fit_sh(sampled[..., :3], albedo, first.normals,
                        weights=sampled[..., 3] * skin[None], ridge=1e-3)
            lit = render_mesh(verts, tri, albedo, camera=fit.camera, pose=fit.pose, sh=sh)
        over = torch.where(lit.mask[0, ..., None], lit.image[0], photo).clamp(0, 1)
        alone = lit.image[0].clamp(0, 1)
        panel = torch.cat([photo, over, alone], dim=1).numpy()
        write_png(args.output, panel)
        print(f"wrote {args.output} (landmark fit RMS {fit.residual_px:.1f} px)")
        return 0
    except FaceCraftError as e:
        print(f"render_fitted_face: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
