"""The MediaPipe front-end: BlazeFace decoding, ROIs, mesh, iris, regions, hair, template eval."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.photo.blazeface import (
    FULL_RANGE,
    SHORT_RANGE,
    anchors,
    decode,
    letterbox,
    weighted_nms,
)
from facecraft.sdk.photo.face_mesh import RotatedRect, roi_from_points
from facecraft.sdk.photo.face_sets import (
    list_template_photos,
    outer_eye_distance,
    read_tem,
    split_of,
)
from facecraft.sdk.photo.mesh_regions import REGION_LOOPS, region_masks, region_polygons
from facecraft.sdk.photo.protocols import Detector, Landmarker

ASSETS = Path(__file__).resolve().parents[3].parent / "shared" / "assets"
PHOTOS = ASSETS / "photos"
needs_photos = pytest.mark.skipif(not PHOTOS.is_dir(),
                                  reason="../shared/assets/photos is absent (shared test photos)")


@pytest.fixture(scope="module")
def front_end():
    from facecraft.sdk.photo.mediapipe_frontend import MediaPipeFrontEnd

    return MediaPipeFrontEnd()


def _rgb(path: Path) -> np.ndarray:
    from facecraft.sdk.photo.image_io import read_image

    return read_image(path).to_uint8()


# -- BlazeFace decoding ----------------------------------------------------------------------


def test_anchor_layouts_match_the_models_outputs():
    a = anchors(SHORT_RANGE)
    assert a.shape == (896, 2) and SHORT_RANGE.num_anchors == 896
    np.testing.assert_allclose(a[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(a[1], a[0])  # two anchors per stride-8 cell
    np.testing.assert_allclose(a[512], [0.5 / 8, 0.5 / 8])
    np.testing.assert_allclose(a[512:518], np.repeat(a[512:513], 6, axis=0))
    assert anchors(FULL_RANGE).shape == (2304, 2)


def test_decode_places_box_and_keypoints_relative_to_the_anchor():
    a = anchors(SHORT_RANGE)
    raw = np.zeros((896, 16), np.float32)
    logits = np.full(896, -10.0, np.float32)
    k = 300
    raw[k, :4] = [12.8, -6.4, 32.0, 64.0]  # input pixels: +0.1, -0.05 in [0, 1]; w .25, h .5
    raw[k, 4:6] = [-12.8, 0.0]
    logits[k] = 3.0
    boxes, kps, scores = decode(raw, logits, SHORT_RANGE, a)
    assert boxes.shape == (1, 4) and kps.shape == (1, 6, 2)
    cx, cy = a[k] + [0.1, -0.05]
    np.testing.assert_allclose(boxes[0], [cx - 0.125, cy - 0.25, cx + 0.125, cy + 0.25],
                               atol=1e-6)
    np.testing.assert_allclose(kps[0, 0], a[k] + [-0.1, 0.0], atol=1e-6)
    assert scores[0] == pytest.approx(1 / (1 + np.exp(-3.0)))


def test_weighted_nms_merges_overlaps_by_score():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float64)
    kps = np.zeros((3, 6, 2))
    kps[1] += 1.0
    scores = np.array([0.9, 0.3, 0.8])
    b, k, s, best = weighted_nms(boxes, kps, scores)
    assert len(s) == 2 and list(best) == [0, 2]
    np.testing.assert_allclose(b[0], [0.25, 0, 10.25, 10])  # (0.9 * 0 + 0.3 * 1) / 1.2
    np.testing.assert_allclose(k[0], 0.25)
    assert s[0] == 0.9


def test_letterbox_maps_back_to_photo_pixels():
    rgb = np.full((100, 300, 3), 255, np.uint8)
    img, scale, offset = letterbox(rgb, 128)
    assert img.shape == (128, 128, 3) and scale == pytest.approx(300 / 128)
    rows = np.nonzero(img[:, 64, 0] > 0.9)[0]  # the photo's rows inside the letterbox
    top, bottom = rows[0], rows[-1] + 1
    np.testing.assert_allclose((np.array([0.0, top]) - offset) * scale, [0, 0], atol=1e-9)
    np.testing.assert_allclose((np.array([128.0, bottom]) - offset) * scale, [300, 100],
                               atol=scale)
    assert img[0, 0, 0] == -1.0  # padding


def test_rotated_rect_crop_frame():
    roi = RotatedRect(np.array([100.0, 50.0]), 40.0, np.pi / 2)
    m = roi.to_crop(80)
    centre = m @ [100, 50, 1]
    np.testing.assert_allclose(centre, [40, 40])
    # the region's x axis (photo +y here) maps to the crop's +x
    np.testing.assert_allclose(m @ [100, 60, 1] - centre, [20, 0], atol=1e-9)


def test_roi_from_points_is_upright_for_a_level_face():
    pts = np.zeros((468, 3))
    pts[:, 0] = np.linspace(0, 100, 468)
    pts[:, 1] = np.linspace(0, 50, 468)[::-1]
    pts[33, :2], pts[263, :2] = [10, 20], [90, 20]
    roi = roi_from_points(pts)
    assert roi.angle == pytest.approx(0.0)
    assert roi.size == pytest.approx(150.0)


# -- regions ---------------------------------------------------------------------------------


def _synthetic_mesh() -> tuple[np.ndarray, np.ndarray]:
    """The canonical-like layout: mesh points spread over a face-sized disc, loops on circles."""
    rng = np.random.default_rng(0)
    pts = np.c_[rng.uniform(80, 120, 468), rng.uniform(80, 120, 468)]
    t = lambda n: np.linspace(0, 2 * np.pi, n, endpoint=False)  # noqa: E731

    def ring(ids, c, r):
        pts[list(ids)] = np.c_[c[0] + r[0] * np.cos(t(len(ids))),
                               c[1] + r[1] * np.sin(t(len(ids)))]

    ring(REGION_LOOPS["face_oval"], (100, 100), (60, 80))
    ring(REGION_LOOPS["right_eye"], (75, 80), (12, 5))
    ring(REGION_LOOPS["left_eye"], (125, 80), (12, 5))
    ring(REGION_LOOPS["right_brow"], (75, 62), (14, 3))
    ring(REGION_LOOPS["left_brow"], (125, 62), (14, 3))
    ring(REGION_LOOPS["lips_outer"], (100, 140), (22, 10))
    ring(REGION_LOOPS["lips_inner"], (100, 140), (14, 3))
    iris = np.zeros((2, 5, 2))
    for e, cx in enumerate((75, 125)):
        iris[e, 0] = [cx, 80]
        iris[e, 1:] = [[cx + 4, 80], [cx, 76], [cx - 4, 80], [cx, 84]]
    return pts, iris


def test_region_masks_are_consistent():
    pts, iris = _synthetic_mesh()
    m = region_masks(pts, (200, 200), iris=iris)
    assert set(m.masks) == {"face_oval", "skin", "brows", "eyes", "iris", "lips",
                            "mouth_interior", "nose"}
    assert m["iris"].any() and not (m["iris"] & ~m["eyes"]).any()
    assert not (m["skin"] & (m["eyes"] | m["brows"] | m["lips"] | m["mouth_interior"])).any()
    assert not (m["lips"] & m["mouth_interior"]).any()
    assert m["skin"].sum() > 0.5 * m["face_oval"].sum()
    # area of the face oval ~ pi a b
    assert m["face_oval"].sum() == pytest.approx(np.pi * 60 * 80, rel=0.03)


def test_region_masks_through_a_crop_matrix_and_with_hair():
    pts, iris = _synthetic_mesh()
    m = np.array([[0.5, 0.0, 10.0], [0.0, 0.5, 5.0]])
    hair = np.zeros((110, 110), np.float32)
    hair[:30] = 0.9
    a = region_masks(pts, (110, 110), iris=iris, matrix=m, hair=hair)
    b = region_masks(pts * 0.5 + [10, 5], (110, 110), iris=iris * 0.5 + [10, 5], hair=hair)
    for k in a.masks:
        np.testing.assert_array_equal(a[k], b[k])
    assert not (a["skin"] & a["hair"]).any()
    with pytest.raises(InvalidInputError, match="hair map"):
        region_masks(pts, (100, 100), hair=hair)
    with pytest.raises(InvalidInputError, match="468"):
        region_polygons(pts[:100])


# -- sets and the split ----------------------------------------------------------------------


def test_split_is_by_person_and_stable():
    assert split_of("london/001") == split_of("london/001")
    people = [f"london/{i:03d}" for i in range(200)]
    frac = np.mean([split_of(p) == "val" for p in people])
    assert 0.15 < frac < 0.35


def test_read_tem_refuses_other_files(tmp_path):
    p = tmp_path / "x.tem"
    p.write_text("3\n1 2\n3 4\n")
    with pytest.raises(InvalidInputError, match="expected 3 points|not a .tem"):
        read_tem(p)
    p.write_text("2\n1 2\n3 4\n0\n")
    np.testing.assert_array_equal(read_tem(p), [[1, 2], [3, 4]])


@needs_photos
def test_listed_photos_keep_each_person_on_one_side():
    photos = list_template_photos(PHOTOS)
    by_person: dict[str, set[str]] = {}
    for p in photos:
        by_person.setdefault(p.person, set()).add(p.split)
    assert all(len(s) == 1 for s in by_person.values())
    assert sum(1 for s in by_person.values() if s == {"val"}) >= 15
    assert any(p.expression == "smiling" for p in photos)


# -- the real models on real photos ----------------------------------------------------------


def test_front_end_satisfies_the_typed_seams(front_end):
    assert isinstance(front_end, Detector) and isinstance(front_end, Landmarker)
    assert front_end.num_points == 468
    with pytest.raises(InvalidInputError, match="too small"):
        front_end.analyze(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(InvalidInputError, match="uint8 RGB"):
        front_end.analyze(np.zeros((64, 64), np.uint8))
    assert front_end.analyze(np.full((96, 128, 3), 127, np.uint8)) == []


@needs_photos
def test_mesh_and_iris_on_a_london_photo(front_end):
    path = PHOTOS / "london-faces" / "neutral" / "001_03.jpg"
    rgb = _rgb(path)
    faces = front_end.analyze(rgb)
    assert len(faces) == 1
    f = faces[0]
    assert f.points.shape == (468, 3) and f.mesh.presence > 0.9
    tem = read_tem(path.with_suffix(".tem"))
    iod = outer_eye_distance(tem)
    # pupils (FRL 0 = image-left = the subject's right) and eye corners
    assert np.linalg.norm(f.mesh.iris[0, 0, :2] - tem[0]) < 0.03 * iod
    assert np.linalg.norm(f.mesh.iris[1, 0, :2] - tem[1]) < 0.03 * iod
    assert np.linalg.norm(f.points[33, :2] - tem[18]) < 0.04 * iod
    assert np.linalg.norm(f.points[263, :2] - tem[27]) < 0.04 * iod
    five = f.face.landmarks5
    assert five[0, 0] < five[1, 0] and five[3, 0] < five[4, 0] and five[2, 1] < five[3, 1]
    # the Landmarker seam from another detector's box lands on the same face
    pts = front_end.landmarks(rgb, f.face.box)
    assert np.abs(pts - f.points[:, :2]).mean() < 0.02 * iod


@needs_photos
def test_rotated_and_grayscale_photos(front_end):
    rgb = _rgb(PHOTOS / "london-faces" / "neutral" / "001_03.jpg")
    ref = front_end.analyze(rgb)[0].points[:, :2]
    h = rgb.shape[0]
    turned = np.ascontiguousarray(np.rot90(rgb, -1))  # 90 degrees clockwise
    f = front_end.analyze(turned)
    assert len(f) == 1
    back = np.c_[f[0].points[:, 1], h - f[0].points[:, 0]]
    assert np.abs(back - ref).mean() < 6.0  # px, 1024 px photo
    gray = np.repeat(rgb.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    g = front_end.analyze(gray)
    assert len(g) == 1 and np.abs(g[0].points[:, :2] - ref).mean() < 6.0


@needs_photos
def test_a_face_that_fills_the_frame_is_found_through_the_border(front_end):
    rgb = _rgb(PHOTOS / "london-faces" / "neutral" / "001_03.jpg")
    x0, y0, x1, y1 = front_end.analyze(rgb)[0].face.box.astype(int)
    d = (x1 - x0) // 5  # cut 20% into the face box on every side
    tight = np.ascontiguousarray(rgb[y0 + d:y1 - d, x0 + d:x1 - d])
    (face,) = front_end.analyze(tight)
    assert face.detector == "short+border" and face.mesh.presence > 0.5
    # the mesh is where the full photo's mesh is, shifted by the crop
    full = front_end.analyze(rgb)[0].points[:, :2] - [x0 + d, y0 + d]
    assert np.median(np.abs(face.points[:, :2] - full)) < 0.03 * (x1 - x0)


@needs_photos
def test_no_face_and_group_photos():
    from facecraft.sdk.photo.mediapipe_frontend import FrontEndSettings, MediaPipeFrontEnd

    fe = MediaPipeFrontEnd(FrontEndSettings(small_faces=True))
    assert fe.analyze(_rgb(PHOTOS / "no-face" / "grass.jpg")) == []
    # emma.jpg: a frontal face and two turned far to the side
    assert len(fe.analyze(_rgb(PHOTOS / "misc" / "emma.jpg"))) == 3
    group = fe.analyze(_rgb(PHOTOS / "pascal-voc-groups" / "2008_004176.jpg"))
    assert len(group) >= 6
    assert min(f.face.box[2] - f.face.box[0] for f in group) < 45  # faces near 40 px


@needs_photos
def test_hair_probability_is_high_above_the_face(front_end):
    from facecraft.sdk.photo.hair import HairSegmenter

    rgb = _rgb(PHOTOS / "london-faces" / "neutral" / "001_03.jpg")
    face = front_end.analyze(rgb)[0]
    prob = HairSegmenter(front_end.models["hair"]).probability(rgb, face.face.box)
    assert prob.shape == rgb.shape[:2] and 0 <= prob.min() and prob.max() <= 1
    masks = region_masks(face.points, rgb.shape[:2], iris=face.mesh.iris, hair=prob)
    x, y = np.round(face.points[10, :2]).astype(int)  # top of the forehead
    assert prob[y - 150:y - 100, x - 40:x + 40].mean() > 0.5
    assert prob[masks["nose"]].mean() < 0.1
