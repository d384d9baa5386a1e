"""The shipped default package: it validates, matches the committed checkpoints, and the main
job (`facecraft create`) runs on it, with no --package, on real photos."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from facecraft.sdk.cli import main
from facecraft.sdk.models.mesh import read_obj
from facecraft.sdk.pipeline.package import default_package_path, load_package
from tests.conftest import REPO, assets_or_skip


@pytest.fixture(scope="module")
def package():
    return load_package(None)


def test_default_package_is_shipped_and_valid(package):
    assert package.path.resolve() == default_package_path().resolve()
    for role in ("regressor", "refiner"):
        entry = getattr(package, role)
        assert entry is not None, role
        assert entry.parity_max_abs_diff is not None and entry.parity_max_abs_diff < 1e-4, role


def test_shipped_face_model_is_the_codes_starter(tmp_path):
    """The package was exported with the starter model this code builds (no hash-mismatch
    warning on every `facecraft create` / `facecraft serve`): built fresh, in an empty cache."""
    import warnings

    from facecraft.sdk.models.default_model import default_model_path, load_default_model
    from facecraft.sdk.models.model_file import read_model_info

    load_default_model(tmp_path)
    built = read_model_info(default_model_path(tmp_path)).content_sha256
    manifest = json.loads((default_package_path() / "manifest.json").read_text())
    assert manifest["face_model"]["content_sha256"] == built
    refiner_meta = manifest["models"]["refiner"]["checkpoint"]["meta"]
    assert refiner_meta["face_model_sha256"] == built
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the hash-mismatch RuntimeWarning would raise
        load_package(None, cache_dir=tmp_path)


def test_regressor_onnx_matches_the_committed_checkpoint(package):
    import onnxruntime as ort

    from facecraft.training.regressor import load_regressor

    reg = load_regressor(REPO / "models" / "regressor_starter.safetensors").eval()
    s = reg.input_spec.crop_size
    x = torch.rand(2, 3, s, s, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ref = reg.forward_vector(x).numpy()
    sess = ort.InferenceSession(str(package.regressor.path),
                                providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    got = sess.run(None, {name: x.numpy()})[0]
    assert np.abs(got - ref).max() < 1e-4


def test_create_on_real_photos_with_the_default_package(tmp_path, capsys):
    photos = [assets_or_skip("photos", "eos-300w", "image_0010.png"),
              assets_or_skip("photos", "celeba-5pt", "000002.jpg")]
    out = tmp_path / "out"
    assert main(["create", *map(str, photos), "-o", str(out), "--texture-size", "256",
                 "-q"]) == 0
    for photo in photos:
        stem = photo.stem
        for suffix in (".obj", ".mtl", "_texture.png", "_neutral.obj", "_coeffs.json",
                       "_overlay.png"):
            assert (out / f"{stem}{suffix}").is_file(), stem + suffix
        mesh = read_obj(out / f"{stem}.obj")
        assert np.isfinite(mesh.vertices).all() and len(mesh.vertices) > 1000
        coeffs = json.loads((out / f"{stem}_coeffs.json").read_text())
        assert coeffs  # every block written
