"""Contact sheet of the MediaPipe front-end: mesh, iris and region masks over photos.

Usage: ``python examples/front_end_sheet.py [PHOTO ...] [-o sheet.png] [--cols 3] [--hair]``

For each photo two panels: the 468 mesh points (green), region outlines (yellow), iris centres
(cyan) and detection boxes (red); and the region masks tinted (skin, brows, eyes, iris, lips,
mouth interior, nose, and hair with ``--hair``). Each panel is zoomed on the largest face (whole
photo for groups). With no PHOTO it uses 12 varied shared photos (profiles, a group, grayscale,
a sideways photo, small and large faces) from ``../shared/assets/photos``; the grayscale and
sideways cases are made from colour, upright photos.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from facecraft.sdk.photo.hair import HairSegmenter
from facecraft.sdk.photo.image_io import read_image
from facecraft.sdk.photo.mediapipe_frontend import FrontEndSettings, MediaPipeFrontEnd
from facecraft.sdk.photo.mesh_regions import region_masks
from facecraft.sdk.photo.overlay import draw_landmarks, draw_regions

PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "assets" / "photos"
#: (photo, how to alter it) for the default sheet.
DEFAULT = [("london-faces/neutral/001_03.jpg", ""), ("canada-faces/003f.jpg", ""),
           ("multi-view-one-person/10078.jpg", ""), ("multi-view-one-person/5932.jpg", ""),
           ("misc/aflw-test.jpg", ""), ("misc/emma.jpg", ""),
           ("pascal-voc-groups/2008_004176.jpg", ""), ("expressions/test_image1.png", ""),
           ("webmorph-cc0/lisa/lisa2.jpg", "sideways"), ("webmorph-cc0/zoom/15cm.jpg", ""),
           ("misc/00437.png", "grayscale"), ("celeba-5pt/000007.jpg", "")]
PANEL = 320


def _label(img: np.ndarray, text: str) -> None:
    for colour, width in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(img, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, width,
                    cv2.LINE_AA)


def panels(fe: MediaPipeFrontEnd, hair: HairSegmenter | None, rgb: np.ndarray, name: str
           ) -> np.ndarray:
    """Two PANEL x PANEL panels side by side for one photo."""
    faces = fe.analyze(rgb)
    marks, tint = rgb.copy(), rgb.copy()
    for i, f in enumerate(faces):
        prob = hair.probability(rgb, f.face.box, f.mesh.roi.angle) if hair and i == 0 else None
        tint = draw_regions(tint, region_masks(f.points, rgb.shape[:2], iris=f.mesh.iris,
                                               hair=prob))
        marks = draw_landmarks(marks, f.points, f.mesh.iris, box=f.face.box)
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = 0, 0, w, h
    if len(faces) == 1:
        b = faces[0].face.box
        c, s = (b[:2] + b[2:]) / 2, 2.2 * max(b[2] - b[0], b[3] - b[1])
        x0, y0 = int(max(c[0] - s / 2, 0)), int(max(c[1] - s / 2, 0))
        x1, y1 = int(min(c[0] + s / 2, w)), int(min(c[1] + s / 2, h))
    pair = np.concatenate([cv2.resize(m[y0:y1, x0:x1], (PANEL, PANEL), interpolation=cv2.INTER_AREA)
                           for m in (marks, tint)], axis=1)
    src = faces[0].detector if faces else "no face"
    _label(pair, f"{name}: {len(faces)} face(s), {src}")
    return pair


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photos", nargs="*", type=Path)
    ap.add_argument("-o", "--out", type=Path, default=Path("front_end_sheet.png"))
    ap.add_argument("--cols", type=int, default=3)
    ap.add_argument("--hair", action="store_true", help="also run the hair model")
    args = ap.parse_args(argv)
    items = [(p, "") for p in args.photos] or [(PHOTOS / p, how) for p, how in DEFAULT]
    missing = [str(p) for p, _ in items if not p.is_file()]
    if missing:
        print(f"front_end_sheet: missing photos: {', '.join(missing[:3])}", file=sys.stderr)
        return 2
    fe = MediaPipeFrontEnd(FrontEndSettings(small_faces=True))
    hair = HairSegmenter(fe.models["hair"]) if args.hair else None
    tiles = []
    for path, how in items:
        rgb = read_image(path).to_uint8()
        if how == "grayscale":
            rgb = np.repeat(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
        elif how == "sideways":
            rgb = np.ascontiguousarray(np.rot90(rgb, 1))
        tiles.append(panels(fe, hair, rgb, path.name + (f" ({how})" if how else "")))
    blank = np.zeros_like(tiles[0])
    tiles += [blank] * (-len(tiles) % args.cols)
    sheet = np.concatenate([np.concatenate(tiles[i:i + args.cols], axis=1)
                            for i in range(0, len(tiles), args.cols)], axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out} ({len(items)} photos)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
