"""The FaceCraft pipeline and `facecraft create` on real photos, with a random-weights package.

The regressor is untrained (its faces are meaningless); these tests check the plumbing: shapes,
frames, finiteness, batch = single, files that other tools read back, errors per photo.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from facecraft.sdk.cli import EXIT_ERROR, main
from facecraft.sdk.errors import FaceCraftError, InvalidInputError, PhotoTooLargeError
from facecraft.sdk.models.mesh import read_obj
from facecraft.sdk.photo.detect import DetectorSettings, FaceDetector
from facecraft.sdk.photo.detection import Face
from facecraft.sdk.photo.image_io import ImageDecodeError
from facecraft.sdk.photo.ingest import NoFaceError
from facecraft.sdk.pipeline.create import render_overlay, write_face_outputs
from facecraft.sdk.pipeline.pipeline import FaceCoefficients, FaceCraft, PipelineSettings
from facecraft.sdk.render.mesh_io import read_png
from facecraft.sdk.render.texture import BakeSettings, bake_texture

from ...conftest import assets_or_skip

TEX = 256  # small textures keep the tests fast


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """The random-weights package (shared with tests/export through the session temp dir)."""
    from facecraft.export.build_default import build_random_package

    out = tmp_path_factory.getbasetemp() / "random.fcpkg"
    if not (out / "manifest.json").is_file():
        build_random_package(out)
    return out


@pytest.fixture(scope="module")
def craft(package):
    return FaceCraft(package, threads=1, settings=PipelineSettings(texture_size=TEX))


@pytest.fixture(scope="module")
def photos():
    folder = assets_or_skip("photos")
    return [folder / "celeba-5pt" / "000002.jpg", folder / "expressions" / "test_image1.png",
            folder / "misc" / "JianzhuGuo.jpg"]


def test_reconstruct_real_photos(craft, photos):
    fm = craft.face_model
    v = fm.num_vertices
    for path in photos:
        (r,) = craft.reconstruct(path)
        h, w = r.photo.size
        assert r.source == str(path) and r.face_index == 0
        for name, shape in (("vertices", (v, 3)), ("vertices_camera", (v, 3)),
                            ("neutral_vertices", (v, 3)), ("normals", (v, 3)),
                            ("coarse_albedo", (v, 3)), ("fine_albedo", (v, 3)),
                            ("shading", (v, 3)), ("photo_vertices", (v, 3)),
                            ("landmarks", (68, 2)), ("pose_deg", (3,)), ("rotation", (3, 3)),
                            ("translation", (3,))):
            a = getattr(r, name)
            assert a.shape == shape, name
            assert np.isfinite(a).all(), name
        assert r.triangles.shape == fm.triangles.shape and r.uvs.shape == fm.uvs.shape
        assert r.visibility.shape == (v,) and r.visibility.dtype == bool
        assert 0.1 < r.visibility.mean() < 0.9  # the front is seen, the back of the head is not
        assert (r.vertices_camera[:, 2] < 0).all()  # in front of the camera (looking down -Z)
        assert 0.0 <= r.fine_albedo.min() and r.fine_albedo.max() <= 1.0
        assert r.fine_source == "photo"
        lm = r.landmarks
        assert (lm[:, 0] > 0).all() and (lm[:, 0] < w).all(), path
        assert (lm[:, 1] > 0).all() and (lm[:, 1] < h).all(), path
        box = r.detection.box  # landmarks of the mesh land near the detected face
        centre = lm.mean(0)
        assert box[0] < centre[0] < box[2] and box[1] < centre[1] < box[3]
        assert r.texture.shape == (TEX, TEX, 3) and r.texture.dtype == np.uint8
        np.testing.assert_allclose(np.linalg.det(r.rotation), 1.0, atol=1e-5)
        c = r.coefficients
        assert c.identity.shape == (31,) and c.expression.shape == (53,)
        assert c.albedo.shape == (9,) and c.lighting.shape == (27,)
        np.testing.assert_allclose(np.degrees(c.angles), r.pose_deg, rtol=1e-5, atol=1e-4)


def test_batch_equals_single(craft, photos):
    batch = craft.reconstruct_batch(photos[:2])
    for path, got in zip(photos[:2], batch, strict=True):
        (one,) = craft.reconstruct(path)
        (b,) = got
        for name in ("identity", "expression", "albedo", "angles", "lighting", "translation"):
            np.testing.assert_allclose(getattr(b.coefficients, name),
                                       getattr(one.coefficients, name), atol=2e-5)
        np.testing.assert_allclose(b.vertices, one.vertices, atol=1e-5)
        np.testing.assert_allclose(b.landmarks, one.landmarks, atol=1e-2)
        assert (b.visibility != one.visibility).mean() < 0.01
        assert np.abs(b.texture.astype(int) - one.texture.astype(int)).mean() < 0.5


def test_inputs_of_every_kind_and_errors(craft, photos):
    data = photos[0].read_bytes()
    by_path = craft.reconstruct(photos[0])[0]
    by_bytes = craft.reconstruct(data, source="upload")[0]
    by_array = craft.reconstruct((by_path.photo.rgb * 255).round().astype(np.uint8))[0]
    assert by_bytes.source == "upload"
    np.testing.assert_allclose(by_bytes.vertices, by_path.vertices, atol=1e-6)
    np.testing.assert_allclose(by_array.vertices, by_path.vertices, atol=1e-4)
    with pytest.raises(ImageDecodeError):
        craft.reconstruct(b"not an image at all")
    nf = assets_or_skip("photos", "no-face", "grass.jpg")
    with pytest.raises(NoFaceError, match="no face found"):
        craft.reconstruct(nf)
    got = craft.reconstruct_batch([b"junk", photos[0], nf], errors="return")
    assert isinstance(got[0], ImageDecodeError) and isinstance(got[2], NoFaceError)
    assert isinstance(got[1], list) and len(got[1]) == 1
    with pytest.raises(InvalidInputError):
        craft.reconstruct(np.zeros((4, 4)))


def test_all_faces(craft):
    group = assets_or_skip("photos", "misc", "trump_hillary.jpg")
    faces = craft.reconstruct(group, all_faces=True)
    assert len(faces) >= 2 and [f.face_index for f in faces] == list(range(len(faces)))
    areas = [(f.detection.box[2] - f.detection.box[0]) * (f.detection.box[3] - f.detection.box[1])
             for f in faces]
    assert areas == sorted(areas, reverse=True)
    assert len(craft.reconstruct(group)) == 1


def test_written_files_read_back(craft, photos, tmp_path):
    (r,) = craft.reconstruct(photos[0])
    files = write_face_outputs(r, tmp_path, "face", package=craft.package)
    mesh = read_obj(files.obj)
    np.testing.assert_allclose(mesh.vertices, r.vertices, atol=1e-6)
    np.testing.assert_array_equal(mesh.triangles, r.triangles)
    np.testing.assert_allclose(mesh.uvs, r.uvs, atol=1e-6)
    np.testing.assert_array_equal(mesh.uv_triangles, r.uv_triangles)
    assert mesh.group_names == ("face",)
    assert "map_Kd face_texture.png" in files.mtl.read_text()
    lines = files.obj.read_text().splitlines()
    assert lines[1] == "mtllib face.mtl"
    first_face = next(i for i, ln in enumerate(lines) if ln.startswith("f "))
    assert lines[first_face - 1] == "usemtl face" and lines.count("usemtl face") == 1
    np.testing.assert_array_equal(read_png(files.texture), r.texture)
    neutral = read_obj(files.neutral_obj)
    np.testing.assert_allclose(neutral.vertices, r.neutral_vertices, atol=1e-6)
    record = json.loads(files.coefficients.read_text())
    assert record["format"] == "facecraft.coefficients"
    assert record["face_model"]["name"] == "starter" and record["package"]["name"] == "random"
    back = FaceCoefficients.from_dict(record)
    for name in FaceCoefficients.FIELDS:  # exact: float32 values survive JSON
        np.testing.assert_array_equal(getattr(back, name), getattr(r.coefficients, name))
    overlay = read_png(files.overlay)
    assert overlay.shape == (*r.photo.size, 3)
    changed = np.any(overlay != render_overlay(r.photo.rgb, r, alpha=0.0), axis=-1)
    x0, y0, x1, y1 = r.detection.box
    assert changed[int(y0):int(y1), int(x0):int(x1)].mean() > 0.2  # the face is drawn


def test_pipeline_bakes_with_the_one_baker(craft):
    fm = craft.face_model
    colors = np.random.default_rng(0).random((fm.num_vertices, 3)).astype(np.float32)
    ref = bake_texture(fm, colors, BakeSettings(size=256, dilate=0))
    baker = craft.bakers.baker(BakeSettings(size=256, dilate=craft.settings.texture_dilate))
    dilated = craft.bake(colors, 256)  # gutter texels near islands are filled
    assert craft.bakers.baker(256) is baker  # built once, reused
    mask = ref.mask.numpy()
    want = np.floor(np.clip(ref.image.numpy(), 0, 1) * 255 + 0.5)
    assert np.abs(dilated[mask] - want[mask]).max() <= 1
    np.testing.assert_array_equal(dilated, baker.bake_uint8(colors))
    assert dilated.shape == (256, 256, 3) and dilated[~mask].any()
    with pytest.raises(InvalidInputError, match=r"\[256, 2048\]"):
        craft.bake(colors, 4096 * 2)


class _FirstOnly:
    """A Detector (the protocol) of its own: MTCNN's faces, keeping only the best one, and
    counting its calls."""

    def __init__(self) -> None:
        self.inner = FaceDetector(DetectorSettings(threads=1, min_face_size=40))
        self.calls = 0

    def detect(self, rgb: np.ndarray) -> list[Face]:
        self.calls += 1
        return self.inner.detect(rgb)[:1]


def test_any_detector_plugs_in(package, photos):
    det = _FirstOnly()
    craft = FaceCraft(package, threads=1, settings=PipelineSettings(texture_size=0),
                      detector=det)
    assert craft.detector is det
    (r,) = craft.reconstruct(photos[0], all_faces=True)
    assert det.calls == 1 and isinstance(r.detection, Face)
    with pytest.raises(InvalidInputError, match="expected detector a Detector"):
        FaceCraft(package, detector=object())  # type: ignore[arg-type]


def test_front_ends_mediapipe_by_default_and_mtcnn(craft, package, photos, tmp_path):
    """The default front-end measures each face's mesh; MTCNN keeps its own 5 points."""
    from facecraft.sdk.photo.detect import FaceDetector
    from facecraft.sdk.photo.mediapipe_frontend import MediaPipeFrontEnd

    assert isinstance(craft.detector, MediaPipeFrontEnd)
    (r,) = craft.reconstruct(photos[0])
    pl = r.photo_landmarks
    assert pl is not None and pl.points.shape == (468, 3) and pl.mesh.presence > 0.5
    np.testing.assert_allclose(r.detection.landmarks5[0], pl.mesh.iris[0, 0, :2], atol=1e-4)
    record = r.coefficients_json()
    assert len(record["photo_landmarks"]["mesh468"]) == 468
    mt = FaceCraft(package, threads=1, settings=PipelineSettings(texture_size=0,
                                                                 front_end="mtcnn"))
    assert isinstance(mt.detector, FaceDetector)
    (m,) = mt.reconstruct(photos[0])
    assert m.photo_landmarks is None and "photo_landmarks" not in m.coefficients_json()
    # both place the eyes at the same spot (within 12% of their distance)
    iod = np.linalg.norm(r.detection.landmarks5[1] - r.detection.landmarks5[0])
    assert np.abs(m.detection.landmarks5[:2] - r.detection.landmarks5[:2]).max() < 0.12 * iod
    with pytest.raises(InvalidInputError, match="front_end"):
        PipelineSettings(front_end="dlib")


def test_a_photo_read_reduced_reports_file_pixels(craft, photos, tmp_path):
    """A large JPEG is decoded at a reduced size (the memory budget); the coefficients record
    still gives its positions in the file's pixels."""
    import cv2

    small = cv2.imread(str(photos[0]))
    k = 5000 / max(small.shape[:2])
    big = cv2.resize(small, None, fx=k, fy=k, interpolation=cv2.INTER_CUBIC)
    path = tmp_path / "big.jpg"
    cv2.imwrite(str(path), big, [cv2.IMWRITE_JPEG_QUALITY, 85])
    (r_big,) = craft.reconstruct(path)
    assert r_big.photo.scale < 1  # read reduced
    (r_small,) = craft.reconstruct(photos[0])
    a = np.asarray(r_big.coefficients_json()["landmarks"])
    b = np.asarray(r_small.coefficients_json()["landmarks"]) * k
    iod = np.linalg.norm(b[45] - b[36])
    assert np.abs(a - b).mean() < 0.05 * iod


def test_photo_files_are_read_with_a_bound(package, photos, tmp_path):
    import os
    import time

    craft = FaceCraft(package, threads=1,
                      settings=PipelineSettings(texture_size=0, max_bytes=64 * 1024))
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    t0 = time.perf_counter()
    for special in ("/dev/zero", fifo, tmp_path):
        with pytest.raises(FaceCraftError, match="not a regular file"):
            craft.reconstruct(special)
    assert time.perf_counter() - t0 < 5  # nothing endless read, no FIFO waited on
    big = tmp_path / "big.jpg"
    big.write_bytes(photos[0].read_bytes() + b"\0" * (64 * 1024))
    with pytest.raises(PhotoTooLargeError, match="above the 65536 bytes limit"):
        craft.reconstruct(big)
    with pytest.raises(InvalidInputError, match="max_bytes"):
        PipelineSettings(max_bytes=0)


class _Refiner(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.lin = nn.Linear(7, 3)

    def forward(self, vertex_input: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.lin(vertex_input))  # signed colour, as the texture nets give


def test_refiner_from_the_package_is_used(package, photos, tmp_path):
    from facecraft.export.package import add_model

    pkg = tmp_path / "refined.fcpkg"
    shutil.copytree(package, pkg)
    net = _Refiner()
    v = 6145
    add_model(pkg, "refiner", net, {"vertex_input": torch.rand(1, v, 7)},
              output_names=("refiner_out",), extra={"output_encoding": "signed"})
    craft = FaceCraft(pkg, threads=1, settings=PipelineSettings(texture_size=0))
    (r,) = craft.reconstruct(photos[0])
    assert r.fine_source == "refiner" and r.texture is None
    # the refiner saw (coarse albedo, photo colours at visible vertices, visibility)
    assert r.fine_albedo.shape == (v, 3)
    # reproduce its input (coarse albedo, photo colours at visible vertices, visibility) from
    # the stages, then its output
    crop = craft.align(r.photo, [r.detection])[0].image
    big = craft.align(r.photo, [r.detection], craft.settings.sample_size)[0].image
    geo = craft.geometry(craft.regress(crop[None])[0])
    samples = craft.sample(geo, big[None])
    with torch.inference_mode():
        vis = samples.visibility[0].float()[:, None]
        x = torch.cat([geo.albedo[0], samples.colors[0], vis], 1)
        want = ((net(x[None])[0] + 1) / 2).clamp(0, 1).numpy()
    np.testing.assert_array_equal(samples.visibility[0].numpy(), r.visibility)
    np.testing.assert_allclose(r.fine_albedo, want, atol=1e-4)


def test_settings_validate():
    for bad in ({"texture_size": 100}, {"sample_size": 8}, {"min_irradiance": 0.0}):
        with pytest.raises(InvalidInputError):
            PipelineSettings(**bad)


# ----------------------------------------------------------------------------------- CLI
def test_cli_create_continues_past_a_photo_without_a_face(package, photos, tmp_path, capsys):
    nf = assets_or_skip("photos", "no-face", "grass.jpg")
    out = tmp_path / "out"
    code = main(["create", str(nf), str(photos[0]), "-o", str(out), "--package", str(package),
                 "--texture-size", str(TEX), "--threads", "1"])
    captured = capsys.readouterr()
    assert code == EXIT_ERROR
    errors = [ln for ln in captured.err.splitlines() if ln.startswith("facecraft: error:")]
    assert len(errors) == 1 and "no face found" in errors[0] and "grass.jpg" in errors[0]
    assert "1 photo(s) failed" in captured.out
    stem = photos[0].stem
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{stem}.obj", f"{stem}.mtl", f"{stem}_texture.png", f"{stem}_neutral.obj",
         f"{stem}_coeffs.json", f"{stem}_overlay.png"])
    assert read_obj(out / f"{stem}.obj").vertices.shape == (6145, 3)


def test_cli_create_success_and_usage_errors(package, photos, tmp_path, capsys):
    code = main(["create", str(photos[1]), "-o", str(tmp_path), "--package", str(package),
                 "--texture-size", str(TEX), "--no-overlay", "-q"])
    assert code == 0 and capsys.readouterr().out == ""
    assert not list(tmp_path.glob("*_overlay.png"))
    for argv in (["create", str(photos[1])], ["create", "-o", str(tmp_path)],
                 ["create", str(photos[1]), "-o", str(tmp_path), "--provider", "opencl"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
    code = main(["create", str(photos[1]), "-o", str(tmp_path), "--package",
                 str(tmp_path / "missing.fcpkg")])
    assert code == EXIT_ERROR and "no such model package" in capsys.readouterr().err


def test_missing_package_is_a_model_file_error(tmp_path):
    with pytest.raises(FaceCraftError, match="no such model package"):
        FaceCraft(tmp_path / "nope.fcpkg")
