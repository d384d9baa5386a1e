# ruff: noqa: F811 - pytest fixtures imported from sdk/_grpc_fixtures
"""The gRPC examples run against a live server: the Python script (photo in, files out) and
the Node.js client (when node and examples/node/node_modules are present)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from facecraft.sdk.client import FaceCraftClient

from .conftest import REPO
from .sdk._grpc_fixtures import (  # noqa: F401 - fixtures
    one_torch_thread,
    package_path,
    photos,
    pipelines,
    running_server,
)

NODE_DIR = REPO / "examples" / "node"


@pytest.fixture(scope="module")
def server(pipelines):
    with running_server(pipelines) as (srv, target):
        yield srv, target


@pytest.fixture
def photo_files(photos, tmp_path) -> list[Path]:
    out = []
    for name in ("000002", "000006"):
        p = tmp_path / f"{name}.jpg"
        p.write_bytes(photos[name])
        out.append(p)
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not a photo")
    return out + [junk]


def test_python_example_writes_files_through_the_server(server, photo_files, tmp_path):
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(REPO / "examples" / "grpc_client.py"),
                        *map(str, photo_files), "-o", str(out), "--server", server[1],
                        "--texture-size", "256"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr  # the junk photo failed, the others did not
    assert "junk.jpg: INVALID_ARGUMENT" in r.stderr and "Traceback" not in r.stderr
    for stem in ("000002", "000006"):
        for suffix in (".obj", ".mtl", "_texture.png", "_neutral.obj", "_coeffs.json"):
            assert (out / f"{stem}{suffix}").stat().st_size > 0, stem + suffix
        rec = json.loads((out / f"{stem}_coeffs.json").read_text())
        assert len(rec["landmarks"]) == 68 and len(rec["angles"]) == 3
    obj = (out / "000002.obj").read_text()
    assert "mtllib 000002.mtl" in obj and "\nvt " in obj and "\nf " in obj
    r = subprocess.run([sys.executable, str(REPO / "examples" / "grpc_client.py"),
                        str(photo_files[0]), "-o", str(out), "--server", "127.0.0.1:1",
                        "--timeout", "3"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "UNAVAILABLE" in r.stderr


def test_python_example_fits_a_rig_registered_from_a_local_glb(server, photo_files, tmp_path):
    import dataclasses

    from facecraft.sdk.rigs.gltf import read_glb
    from facecraft.sdk.rigs.rig import save_rig, starter_rig

    glb, _ = save_rig(dataclasses.replace(starter_rig(), name="studio"), tmp_path / "studio.glb",
                      target_normals=False)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(REPO / "examples" / "grpc_client.py"),
                        str(photo_files[0]), "-o", str(out), "--server", server[1],
                        "--texture-size", "256", "--rig", str(glb)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "registered rig 'studio'" in r.stdout
    for suffix in ("_rig.glb", "_sliders.json", "_rig_texture.png", "_materials.json"):
        assert (out / f"000002{suffix}").stat().st_size > 0, suffix
    doc = json.loads((out / "000002_sliders.json").read_text())
    mesh = read_glb(out / "000002_rig.glb")
    weights = dict(zip(mesh.target_names, mesh.weights.tolist(), strict=True))
    for name, value in {**doc["identity"], **doc["expression"]}.items():
        assert abs(weights[name] - value) < 1e-5, name  # the starter's sliders are its targets
    r = subprocess.run([sys.executable, str(REPO / "examples" / "grpc_client.py"),
                        str(photo_files[0]), "-o", str(out), "--server", server[1],
                        "--texture-size", "256", "--rig", "no-such-rig"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "NOT_FOUND" in r.stderr and "Traceback" not in r.stderr


def _node_or_skip() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    if not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir():
        pytest.skip("examples/node/node_modules is missing: run `npm install` in examples/node "
                    "(needs the npm registry)")
    return node


def test_node_client_against_a_live_server(server, photo_files, tmp_path):
    node = _node_or_skip()
    out = tmp_path / "node-out"
    env = {k: v for k, v in os.environ.items() if k != "FACECRAFT_TOKEN"}
    r = subprocess.run([node, str(NODE_DIR / "client.js"), *map(str, photo_files),
                        "--server", server[1], "--out", str(out), "--texture-size", "256",
                        "--json"], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 1, r.stderr  # the junk photo
    summary = json.loads(r.stdout)
    with FaceCraftClient(server[1]) as c:
        info = c.model_info()
        ref = c.reconstruct(photo_files[0]).faces[0]
    assert summary["model"]["vertices"] == info.face_model["num_vertices"]
    assert summary["model"]["layout"] == [[k, v[1]] for k, v in
                                          info.coefficient_layout.items()]
    ok, other, junk = summary["faces"]
    assert ok["code"] == "OK" and ok["request_id"] == "node-000002"
    assert ok["vertices"] == ok["num_vertices"] == info.face_model["num_vertices"]
    assert ok["landmarks"] == 68 and ok["texture_size"] == 256
    assert ok["identity0"] == pytest.approx(float(ref.coefficients.identity[0]), abs=1e-5)
    assert ok["score"] == pytest.approx(ref.detection.score, abs=1e-5)
    assert other["code"] == "OK"
    assert junk["code"] == "INVALID_ARGUMENT" and "not an image" in junk["message"]
    assert [(b["index"], b["code"]) for b in summary["batch"]] == [(0, 0), (1, 0), (2, 3)]
    assert (out / "000002_texture.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    obj = (out / "000002.obj").read_text()
    assert obj.count("\nv ") == info.face_model["num_vertices"]
