"""The example scripts run and write what they promise."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from .conftest import REPO, assets_or_skip


def test_render_fitted_face_writes_png(tmp_path: Path):
    assets_or_skip("photos", "eos-300w", "image_0010.png")
    out = tmp_path / "fitted.png"
    r = subprocess.run([sys.executable, str(REPO / "examples" / "render_fitted_face.py"),
                        "-o", str(out), "--size", "160"], capture_output=True, text=True,
                       timeout=300, env={"FACECRAFT_CACHE": str(tmp_path / "cache"),
                                         "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    img = cv2.imread(str(out))
    assert img.shape == (160, 480, 3)
    # the middle panel differs from the photo where the face is drawn, the right one is black
    # outside the face
    photo, over, alone = img[:, :160], img[:, 160:320], img[:, 320:]
    assert (abs(photo.astype(int) - over).sum(-1) > 30).mean() > 0.3
    assert (alone.sum(-1) == 0).mean() > 0.05


def test_render_fitted_face_reads_the_shared_annotations_file(tmp_path: Path):
    """PHOTO and the shared landmarks68.json (many photos, looked up by path) work together."""
    photo = assets_or_skip("photos", "eos-300w", "image_0010.png")
    ann = assets_or_skip("landmarks68.json")
    out = tmp_path / "fitted.png"
    r = subprocess.run([sys.executable, str(REPO / "examples" / "render_fitted_face.py"),
                        str(photo), str(ann), "-o", str(out), "--size", "128"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert cv2.imread(str(out)).shape == (128, 384, 3)
    other = tmp_path / "elsewhere.png"
    other.write_bytes(photo.read_bytes())  # a photo the file does not annotate
    r = subprocess.run([sys.executable, str(REPO / "examples" / "render_fitted_face.py"),
                        str(other), str(ann), "-o", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "no landmarks for" in r.stderr
    assert "Traceback" not in r.stderr


def test_render_fitted_face_bad_input(tmp_path: Path):
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"not an image")
    lm = tmp_path / "lm.json"
    lm.write_text("[[0, 0]]")
    r = subprocess.run([sys.executable, str(REPO / "examples" / "render_fitted_face.py"),
                        str(bad), str(lm), "-o", str(tmp_path / "o.png")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "not a readable image" in r.stderr
    assert "Traceback" not in r.stderr


def test_rig_side_by_side_writes_photo_reconstruction_and_rigs(tmp_path_factory, tmp_path: Path):
    from facecraft.sdk.rigs.rig import save_rig, starter_rig

    from .sdk._grpc_fixtures import random_package_path

    assets_or_skip("photos", "eos-300w", "image_0010.png")
    package = random_package_path(tmp_path_factory)  # the default package may not be built
    glb, _ = save_rig(dataclasses.replace(starter_rig(), name="studio"), tmp_path / "studio.glb",
                      target_normals=False)
    out = tmp_path / "side.png"
    r = subprocess.run([sys.executable, str(REPO / "examples" / "rig_side_by_side.py"),
                        "-o", str(out), "--package", str(package), "--height", "160",
                        "--texture-size", "256", "--rig", str(glb)],
                       capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    assert "starter: 31 sliders" in r.stdout and "studio: " in r.stdout
    img = cv2.imread(str(out))[..., ::-1]
    # photo | reconstruction | starter | studio: square 160 px panels with 8 px white gaps
    assert img.shape == (160, 4 * 160 + 3 * 8, 3)
    photo, over, starter, studio = (img[:, k * 168:k * 168 + 160].astype(int) for k in range(4))
    assert (np.abs(photo - over).sum(-1) > 30).mean() > 0.2  # the face is drawn over the photo
    for panel in (starter, studio):
        drawn = (panel < 250).any(-1)
        assert 0.2 < drawn.mean() < 0.98 and panel[drawn].std() > 5  # a textured head
        assert not drawn[-8:].any() and not drawn[:, :8].any() and not drawn[:, -8:].any()
    np.testing.assert_array_equal(starter[40:], studio[40:])  # same rig, same fit (no labels)


def test_rig_side_by_side_reports_bad_input(tmp_path: Path):
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"not an image")
    r = subprocess.run([sys.executable, str(REPO / "examples" / "rig_side_by_side.py"),
                        str(bad), "--rig", "no-such-rig", "--rigs-dir", str(tmp_path),
                        "-o", str(tmp_path / "o.png")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "no rig 'no-such-rig'" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "o.png").exists()
