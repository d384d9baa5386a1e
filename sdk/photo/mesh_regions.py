"""Face regions from the 468-point mesh and the iris points: polygons and masks.

The outline loops follow the mesh's own contour lists (MediaPipe ``face_mesh_connections``,
Apache-2.0; see ``facecraft/sdk/data/mediapipe/NOTICE``), written here as ordered closed loops;
the nose is the convex hull of the nose's mesh points. "Right" and "left" are the subject's
(the subject's right eye is on the image's left in a frontal photo).

Masks are filled polygons (``cv2.fillPoly``, no per-pixel Python), in photo pixels or, through a
(2, 3) affine such as the aligned crop's, in any other frame:

==================  ==========================================================================
``face_oval``       inside the face outline (forehead to chin, cheek to cheek)
``skin``            face oval less eyes, brows, lips, mouth interior, nostril area and hair
``brows``           both eyebrows
``eyes``            both eye openings (between the lids)
``iris``            both irises (a disc through the 4 rim points), within the eye openings
``lips``            the lips (outer lip line less the mouth opening)
``mouth_interior``  the mouth opening (inner lip line)
``nose``            the nose (convex hull of its mesh points)
``hair``            the hair segmentation above ``hair_threshold``, when one is given
==================  ==========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import InvalidInputError

__all__ = ["REGION_LOOPS", "NOSE_POINTS", "REGION_NAMES", "RegionMasks", "region_polygons",
           "region_masks"]

#: Closed outline loops, as mesh indices in order.
REGION_LOOPS: dict[str, tuple[int, ...]] = {
    "face_oval": (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378,
                  400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21,
                  54, 103, 67, 109),
    "lips_outer": (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84,
                   181, 91, 146),
    "lips_inner": (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87,
                   178, 88, 95),
    "right_eye": (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7),
    "left_eye": (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249),
    "right_brow": (70, 63, 105, 66, 107, 55, 65, 52, 53, 46),
    "left_brow": (300, 293, 334, 296, 336, 285, 295, 282, 283, 276),
}

#: Mesh points of the nose (bridge, tip, wings, columella); the region is their convex hull.
NOSE_POINTS: tuple[int, ...] = (168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 98, 97, 326, 327, 294,
                                278, 279, 358, 429, 420, 456, 351, 122, 188, 114, 217, 198, 209,
                                49, 48, 64, 129, 102)

#: Mask names, in :class:`RegionMasks` order.
REGION_NAMES = ("face_oval", "skin", "brows", "eyes", "iris", "lips", "mouth_interior", "nose",
                "hair")


@dataclass(frozen=True, eq=False)
class RegionMasks:
    """Boolean masks of one face.

    Attributes:
        masks: name (:data:`REGION_NAMES`) -> (H, W) bool; ``hair`` only when a hair probability
            map was given.
    """

    masks: dict[str, np.ndarray]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.masks[name]


def _iris_discs(iris: np.ndarray) -> list[np.ndarray]:
    """(2, 5, >=2) iris points -> two 32-gon polygons through the rim."""
    out = []
    t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    for eye in np.asarray(iris, np.float64):
        c = eye[0, :2]
        r = float(np.linalg.norm(eye[1:5, :2] - c, axis=1).mean())
        out.append(c + r * np.stack([np.cos(t), np.sin(t)], axis=1))
    return out


def region_polygons(points: np.ndarray, iris: np.ndarray | None = None
                    ) -> dict[str, list[np.ndarray]]:
    """Region outlines in the points' own frame.

    Args:
        points: (468, >=2) mesh points (photo pixels or any 2D frame).
        iris: optional (2, 5, >=2) iris points in the same frame.

    Returns:
        name -> list of (K, 2) float64 closed polygons: ``face_oval``, ``lips_outer``,
        ``lips_inner``, ``eyes``, ``brows``, ``nose``, and ``iris`` when given.
    """
    xy = np.asarray(points, np.float64)
    if xy.ndim != 2 or xy.shape[0] != 468 or xy.shape[1] < 2:
        raise InvalidInputError(f"expected (468, 2|3) mesh points, got {xy.shape}")
    xy = xy[:, :2]
    loop = {k: xy[list(v)] for k, v in REGION_LOOPS.items()}
    hull = cv2.convexHull(xy[list(NOSE_POINTS)].astype(np.float32))[:, 0].astype(np.float64)
    polys = {"face_oval": [loop["face_oval"]], "lips_outer": [loop["lips_outer"]],
             "lips_inner": [loop["lips_inner"]], "eyes": [loop["right_eye"], loop["left_eye"]],
             "brows": [loop["right_brow"], loop["left_brow"]], "nose": [hull]}
    if iris is not None:
        polys["iris"] = _iris_discs(iris)
    return polys


def _fill(shape: tuple[int, int], polys: list[np.ndarray]) -> np.ndarray:
    img = np.zeros(shape, np.uint8)
    # 4 fractional bits: sub-pixel polygon vertices
    cv2.fillPoly(img, [np.round(p * 16).astype(np.int32) for p in polys], 1, cv2.LINE_8, 4)
    return img.astype(bool)


def region_masks(points: np.ndarray, shape: tuple[int, int], *, iris: np.ndarray | None = None,
                 hair: np.ndarray | None = None, matrix: np.ndarray | None = None,
                 hair_threshold: float = 0.5) -> RegionMasks:
    """Masks of a face's regions.

    Args:
        points: (468, >=2) mesh points, photo pixels.
        shape: ``(H, W)`` of the masks.
        iris: (2, 5, >=2) iris points, photo pixels (no ``iris`` mask without them).
        hair: (H, W) hair probability in the masks' frame (no ``hair`` mask without it).
        matrix: (2, 3) affine from photo pixels to the masks' frame (e.g. the aligned crop's);
            None = photo pixels.
        hair_threshold: probability above which a pixel is hair.

    Returns:
        :class:`RegionMasks`.
    """
    h, w = int(shape[0]), int(shape[1])
    xy = np.asarray(points, np.float64)[:, :2]
    ir = None if iris is None else np.asarray(iris, np.float64)[..., :2]
    if matrix is not None:
        m = np.asarray(matrix, np.float64)
        xy = xy @ m[:, :2].T + m[:, 2]
        ir = None if ir is None else ir @ m[:, :2].T + m[:, 2]
    polys = region_polygons(xy, ir)
    fill = {k: _fill((h, w), v) for k, v in polys.items()}
    masks = {"face_oval": fill["face_oval"], "brows": fill["brows"], "eyes": fill["eyes"],
             "mouth_interior": fill["lips_inner"],
             "lips": fill["lips_outer"] & ~fill["lips_inner"], "nose": fill["nose"]}
    if "iris" in fill:
        masks["iris"] = fill["iris"] & fill["eyes"]
    if hair is not None:
        hair = np.asarray(hair)
        if hair.shape != (h, w):
            raise InvalidInputError(f"hair map is {hair.shape}, masks are {(h, w)}")
        masks["hair"] = hair > hair_threshold
    skin = fill["face_oval"] & ~fill["eyes"] & ~fill["brows"] & ~fill["lips_outer"]
    if "hair" in masks:
        skin &= ~masks["hair"]
    masks["skin"] = skin
    return RegionMasks({k: masks[k] for k in REGION_NAMES if k in masks})
