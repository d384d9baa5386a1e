"""The seams where a face detector or a landmarker plugs into the front-end (typed protocols).

:class:`~facecraft.sdk.photo.detect.FaceDetector` (MTCNN) implements :class:`Detector` and
:class:`~facecraft.sdk.photo.landmarker.Dlib68Landmarker` implements :class:`Landmarker`;
:func:`~facecraft.sdk.photo.ingest.ingest_photo` and the pipeline take any object that does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from .detection import Face

if TYPE_CHECKING:
    from .mediapipe_frontend import FaceLandmarks

__all__ = ["Detector", "Landmarker", "MeshDetector"]


@runtime_checkable
class Detector(Protocol):
    """Finds faces in an RGB photo."""

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """All faces in *rgb*.

        Args:
            rgb: (H, W, 3) RGB photo, uint8 or float in [0, 1].

        Returns:
            The faces found, best first; empty when there is none.
        """
        ...


@runtime_checkable
class Landmarker(Protocol):
    """Places a fixed set of landmarks on a detected face."""

    #: How many points :meth:`landmarks` returns (68 for the iBUG convention).
    num_points: int

    def landmarks(self, rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
        """Landmarks of the face in *box*.

        Args:
            rgb: (H, W, 3) RGB photo, uint8 or float in [0, 1].
            box: (4,) ``(x0, y0, x1, y1)`` photo pixels, a detector's box.

        Returns:
            (num_points, 2) float64 photo pixels.
        """
        ...


@runtime_checkable
class MeshDetector(Detector, Protocol):
    """A detector that also measures each face's 468-point mesh (the MediaPipe front-end);
    the pipeline then keeps the mesh, iris and presence with each face."""

    def analyze(self, rgb: np.ndarray) -> list[FaceLandmarks]:
        """Every face with its mesh, largest first (empty when there is none)."""
        ...
