"""examples/front_end_sheet.py writes its contact sheet."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2

from .conftest import REPO, assets_or_skip


def test_front_end_sheet_writes_two_panels_per_photo(tmp_path: Path):
    a = assets_or_skip("photos", "london-faces", "neutral", "001_03.jpg")
    b = assets_or_skip("photos", "no-face", "grass.jpg")
    out = tmp_path / "sheet.png"
    r = subprocess.run([sys.executable, str(REPO / "examples" / "front_end_sheet.py"), str(a),
                        str(b), "--cols", "2", "-o", str(out)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    img = cv2.imread(str(out))
    assert img.shape == (320, 4 * 320, 3)
    # the face photo's panels differ (marks vs tint); the no-face photo's two panels are equal
    face_marks, face_tint = img[:, :320], img[:, 320:640]
    assert (abs(face_marks.astype(int) - face_tint).sum(-1) > 40).mean() > 0.1
    grass_a, grass_b = img[30:, 640:960], img[30:, 960:]
    assert (abs(grass_a.astype(int) - grass_b).sum(-1) > 0).mean() < 0.01


def test_front_end_sheet_reports_missing_photos(tmp_path: Path):
    r = subprocess.run([sys.executable, str(REPO / "examples" / "front_end_sheet.py"),
                        str(tmp_path / "nope.jpg"), "-o", str(tmp_path / "s.png")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "missing photos" in r.stderr
