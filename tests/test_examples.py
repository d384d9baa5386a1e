"""The example scripts run and write what they promise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2

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
