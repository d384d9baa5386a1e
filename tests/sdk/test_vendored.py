"""Vendored third-party model data: files match their provenance, and `models info` shows it."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

from facecraft.sdk.vendored import vendored_components


def test_every_vendored_file_matches_its_recorded_sha256():
    comps = vendored_components()
    assert {c.folder.name for c in comps} == {"mediapipe", "mediapipe-mesh"}
    for c in comps:
        assert c.licence == "Apache-2.0" and "mediapipe" in c.repository
        assert "Apache License" in (c.folder / "LICENSE").read_text()
        assert c.notice.strip()
        for name, sha in c.files.items():
            assert hashlib.sha256((c.folder / name).read_bytes()).hexdigest() == sha, name


def test_models_info_lists_licences_provenance_and_notices():
    r = subprocess.run([sys.executable, "-m", "facecraft.sdk.cli", "models", "info", "starter"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "bundled: mediapipe/ (Apache-2.0)" in r.stdout
    assert "canonical_face_model.obj  sha256 8bac80443397" in r.stdout
    assert "Copyright The MediaPipe Authors" in r.stdout
    j = subprocess.run([sys.executable, "-m", "facecraft.sdk.cli", "models", "info", "starter",
                        "--json"], capture_output=True, text=True, timeout=120)
    bundled = json.loads(j.stdout)["bundled"]
    assert [b["folder"] for b in bundled] == ["mediapipe", "mediapipe-mesh"]
    assert bundled[0]["commit"] == "33d683c67100ef3db37d9752fcf65d30bea440c4"
