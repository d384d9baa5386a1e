"""The detection record: one face found in a photo, shared by every detector, the pipeline, the
gRPC wire conversion and the client.

Light on purpose (NumPy only), so that :mod:`facecraft.sdk.client` can return the same record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Face", "largest_face"]


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face.

    Attributes:
        box: (4,) float ``(x0, y0, x1, y1)`` photo pixels (x right, y down, pixel centres at
            +0.5), clipped to the image.
        score: detector confidence in [0, 1] (MTCNN: O-Net face probability).
        landmarks5: (5, 2) float photo pixels, in :mod:`facecraft.sdk.photo.align` order: the
            subject's right eye (the IMAGE-LEFT eye in a frontal photo), left eye, nose tip,
            right mouth corner, left mouth corner.
    """

    box: np.ndarray
    score: float
    landmarks5: np.ndarray

    @property
    def area(self) -> float:
        """Box area in square pixels."""
        return float(max(self.box[2] - self.box[0], 0.0) * max(self.box[3] - self.box[1], 0.0))


def largest_face(faces: Sequence[Face]) -> Face | None:
    """The face with the largest box area, or ``None`` for an empty sequence."""
    return max(faces, key=lambda f: f.area) if faces else None
