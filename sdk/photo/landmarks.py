"""The 68-point landmark convention (iBUG 300-W / Multi-PIE order), used everywhere in FaceCraft.

Indices are 0-based. Groups follow the iBUG mark-up:

====================  =========  ==========================================
group                 indices    notes
====================  =========  ==========================================
jaw (contour)         0-16       from the subject's right ear to the left
right eyebrow         17-21      subject's right, outer to inner
left eyebrow          22-26      inner to outer
nose bridge           27-30      top to tip
nose base             31-35      subject's right to left
right eye             36-41      outer corner first, clockwise in the image
left eye              42-47      inner corner first
outer lip             48-59      right mouth corner first
inner lip             60-67      right inner corner first
====================  =========  ==========================================

"Right" means the subject's right, which is on the image's left in a frontal photo.
"""

from __future__ import annotations

__all__ = ["NUM_LANDMARKS", "LANDMARK_GROUPS", "IBUG68_FLIP", "IBUG68_FROM_MESH468"]

NUM_LANDMARKS = 68

LANDMARK_GROUPS: dict[str, range] = {
    "jaw": range(0, 17),
    "right_eyebrow": range(17, 22),
    "left_eyebrow": range(22, 27),
    "nose_bridge": range(27, 31),
    "nose_base": range(31, 36),
    "right_eye": range(36, 42),
    "left_eye": range(42, 48),
    "outer_lip": range(48, 60),
    "inner_lip": range(60, 68),
}

#: Index of each landmark's mirror partner (left <-> right); self for points on the midline.
IBUG68_FLIP: tuple[int, ...] = (
    16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,
    26, 25, 24, 23, 22, 21, 20, 19, 18, 17,
    27, 28, 29, 30,
    35, 34, 33, 32, 31,
    45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,
    54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55,
    64, 63, 62, 61, 60, 67, 66, 65,
)


#: The 468-point face mesh's vertex for each iBUG landmark (a fixed mapping, for evaluating the
#: mesh against 68-point annotations). Derived once from ICT-FaceKit's neutral head and its 68
#: landmark vertices: MediaPipe's canonical mesh aligned to it (similarity, then a thin-plate
#: warp on 14 unambiguous pairs: eye and mouth corners, nose tip, subnasale, lip centres, chin,
#: nasion), each landmark then taking the nearest mesh vertex of its own outline (jaw -> face oval
#: in the frontal plane, brows, eyes and lips -> their loops; the lower inner lip from the lower
#: half of the inner loop, as ICT's neutral mouth is closed).
IBUG68_FROM_MESH468: tuple[int, ...] = (
    127, 234, 93, 132, 172, 150, 149, 148, 152, 377, 378, 379, 397, 361, 323, 454, 356,
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    168, 197, 195, 4,
    98, 97, 2, 326, 327,
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
    61, 39, 37, 0, 267, 269, 291, 321, 314, 17, 84, 91,
    78, 81, 13, 311, 308, 402, 14, 178,
)
