"""A photo, its reconstruction and a character rig fitted to it, side by side in one PNG.

    python examples/rig_side_by_side.py [PHOTO] [-o rig_side_by_side.png] [--package PKG]
        [--rig NAME|RIG.glb] [--rigs-dir DIR] [--height 512] [--texture-size 1024] [--yaw 0]

Panels, left to right: the photo (cropped around the face) | the reconstruction drawn over it
(fine albedo times the estimated lighting) | the starter rig with the fitted identity sliders,
expression weights and the texture baked into its UV layout | with ``--rig``, that rig fitted the
same way (a registered name, or a GLB with its NAME.rig.json next to it). Each rig panel's label
gives its fit residual in mm. With no PHOTO it uses a photo from ``../shared/assets/photos``.
``--package`` picks the model package (default: the built-in one).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from facecraft.sdk.errors import FaceCraftError
from facecraft.sdk.pipeline.create import render_overlay
from facecraft.sdk.pipeline.pipeline import FaceCraft, PipelineSettings
from facecraft.sdk.render.mesh_io import write_png
from facecraft.sdk.rigs.create import FaceRigger, RigCreateSettings
from facecraft.sdk.rigs.preview import render_rig, render_side_by_side
from facecraft.sdk.rigs.registry import resolve_rig
from facecraft.sdk.rigs.rig import starter_rig

ASSETS = Path(__file__).resolve().parents[1].parent / "shared" / "assets"
DEFAULT_PHOTO = ASSETS / "photos" / "eos-300w" / "image_0010.png"


def face_crop(image: np.ndarray, box: np.ndarray, scale: float = 1.6) -> np.ndarray:
    """A square crop around a detection box (``scale`` x its longer side), white outside the
    image."""
    x0, y0, x1, y1 = (float(v) for v in box)
    side = scale * max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    n = max(int(round(side)), 16)
    warp = np.array([[1.0, 0.0, side / 2 - cx], [0.0, 1.0, side / 2 - cy]]) * (n / side)
    return cv2.warpAffine(image, warp, (n, n), flags=cv2.INTER_AREA,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(255, 255, 255))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photo", nargs="?", type=Path,
                    help="the photo (default: a sample from ../shared/assets/photos)")
    ap.add_argument("-o", "--output", type=Path, default=Path("rig_side_by_side.png"))
    ap.add_argument("--package", type=Path, help="a .fcpkg model package (default: built in)")
    ap.add_argument("--rig", help="also fit this rig: a registered name or a GLB path")
    ap.add_argument("--rigs-dir", type=Path, help="rig registry folder for --rig names")
    ap.add_argument("--height", type=int, default=512, help="panel height in pixels")
    ap.add_argument("--texture-size", type=int, default=1024,
                    help="rig texture side in texels (256-2048)")
    ap.add_argument("--yaw", type=float, default=0.0,
                    help="turn the rigs by this many degrees (positive: their left side)")
    ap.add_argument("--threads", type=int, default=1, help="inference threads")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)  # an example may configure its process
    try:
        photo = args.photo
        if photo is None:
            photo = DEFAULT_PHOTO
            if not photo.is_file():
                raise FaceCraftError("no PHOTO given and ../shared/assets is not present")
        rigs = [starter_rig()]
        if args.rig is not None:  # a bad rig fails before the networks load
            rigs.append(resolve_rig(args.rig, args.rigs_dir))
        craft = FaceCraft(args.package, threads=args.threads,
                          settings=PipelineSettings(texture_size=0))
        face = craft.reconstruct(photo)[0]
        box = face.detection.box
        rgb = np.rint(face.photo.rgb * 255.0).astype(np.uint8)
        panels = [face_crop(rgb, box), face_crop(render_overlay(face.photo.rgb, face), box)]
        labels = ["photo", "reconstruction"]
        settings = RigCreateSettings(texture_size=args.texture_size)
        for rig in rigs:
            rigged = FaceRigger(craft.face_model, rig, settings=settings).fit_result(face)
            # the whole head, with room above it for the label (the face-only framing cut
            # the skull and the chin off)
            panels.append(render_rig(rig, rigged.values, rigged.texture, size=args.height,
                                     yaw_deg=args.yaw, face_only=False, fill=0.8))
            res = rigged.fit.residual_mean_mm
            labels.append(f"rig {rig.name} ({res:.2f} mm)")
            print(f"{rig.name}: {len(rigged.fit.values)} sliders, mean residual {res:.3f} mm, "
                  f"p95 {rigged.fit.residual_p95_mm:.3f} mm, expressions by "
                  f"{rigged.expressions.method}")
        row = render_side_by_side(panels, height=args.height, labels=labels)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        write_png(args.output, row)
    except FaceCraftError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.output} ({row.shape[1]}x{row.shape[0]}): {' | '.join(labels)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
