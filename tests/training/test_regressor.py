"""Backbones and the coefficient regressor: shapes, layout, zero head, checkpoints, gradients."""

from __future__ import annotations

import io
import json

import pytest
import torch

from facecraft.sdk.errors import InvalidInputError, ModelFileError
from facecraft.sdk.render.cameras import Pose
from facecraft.training.backbones import get_backbone, list_backbones
from facecraft.training.regressor import (
    CoeffLayout,
    CoeffRegressor,
    Coeffs3DMM,
    InputSpec,
    coeff_regressor,
    load_regressor,
    read_regressor_meta,
    save_regressor,
)

SIZE = 64
SMALL = {"resnet18": {"width": 8}, "resnet34": {"width": 8}, "resnet50": {"width": 4},
         "mobilenet_v2": {"width_mult": 0.25}}
OUT = {"resnet18": 64, "resnet34": 64, "resnet50": 128, "mobilenet_v2": 1280}
LAYOUT = CoeffLayout(num_identity=5, num_expression=4, num_albedo=3)
SPEC = InputSpec(crop_size=SIZE)


def _small(**kw) -> CoeffRegressor:
    torch.manual_seed(0)
    return coeff_regressor(layout=LAYOUT, backbone="resnet18", input_spec=SPEC, width=8, **kw)


def _images(b: int = 2) -> torch.Tensor:
    return torch.rand(b, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


# ----------------------------------------------------------------------------- backbones
def test_registry_lists_all_builders():
    assert list_backbones() == sorted(SMALL)
    with pytest.raises(InvalidInputError, match="unknown backbone 'vgg'"):
        get_backbone("vgg")
    with pytest.raises(InvalidInputError, match="does not accept"):
        get_backbone("resnet18", width_mult=2.0)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_backbone_output_shape(name):
    net = get_backbone(name, **SMALL[name]).eval()
    assert net.out_features == OUT[name]
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        y = net(x)
        torch.testing.assert_close(net.features(x), y)
    assert y.shape == (2, OUT[name])
    assert torch.isfinite(y).all()


def test_backbone_rejects_bad_input():
    net = get_backbone("resnet18", width=8)
    with pytest.raises(InvalidInputError, match=r"\(B, 3, H, W\)"):
        net(torch.zeros(2, 1, SIZE, SIZE))


def test_full_size_out_features():
    assert get_backbone("resnet18").out_features == 512
    assert get_backbone("resnet50").out_features == 2048
    assert get_backbone("mobilenet_v2").out_features == 1280
    assert get_backbone("mobilenet_v2", width_mult=1.4).out_features == 1792


# -------------------------------------------------------------------------------- layout
def test_layout_slices_cover_vector():
    lay = CoeffLayout(num_identity=80, num_expression=64, num_albedo=80)
    assert lay.size == 257
    covered = torch.zeros(lay.size, dtype=torch.int64)
    for s in lay.slices().values():
        covered[s] += 1
    assert (covered == 1).all()
    assert list(lay.slices()) == ["identity", "expression", "albedo", "angles", "lighting",
                                  "translation"]
    assert lay.slices()["translation"] == slice(254, 257)


def test_layout_json_round_trip_and_from_model(tiny_model):
    assert CoeffLayout.from_dict(json.loads(json.dumps(LAYOUT.to_dict()))) == LAYOUT
    lay = CoeffLayout.from_model(tiny_model)
    assert (lay.num_identity, lay.num_expression, lay.num_albedo) == (
        tiny_model.num_identity, tiny_model.num_expression, tiny_model.num_albedo)
    assert CoeffLayout.from_model(tiny_model, max_identity=2).num_identity == 2
    with pytest.raises(InvalidInputError, match="unknown CoeffLayout keys"):
        CoeffLayout.from_dict({**LAYOUT.to_dict(), "num_shape": 3})
    with pytest.raises(InvalidInputError, match="num_albedo"):
        CoeffLayout(num_identity=1, num_expression=1, num_albedo=-1)
    assert InputSpec.from_dict(json.loads(json.dumps(SPEC.to_dict()))) == SPEC


# ---------------------------------------------------------------------------- regressor
def test_zero_head_gives_zero_coefficients():
    model = _small(translation_offset=(0.0, 0.0, 0.5)).eval()
    with torch.no_grad():
        c = model(_images())
    assert isinstance(c, Coeffs3DMM)
    assert c.identity.shape == (2, 5) and c.albedo.shape == (2, 3) and c.lighting.shape == (2, 27)
    for name in ("identity", "expression", "albedo", "angles", "lighting"):
        assert (getattr(c, name) == 0).all(), name
    torch.testing.assert_close(c.translation, torch.tensor([[0.0, 0.0, 0.5]] * 2))
    pose = c.pose()
    assert isinstance(pose, Pose)
    torch.testing.assert_close(pose.rotation, torch.eye(3).expand(2, 3, 3))
    assert model.forward_features(_images()).shape == (2, 64)


def test_regressor_rejects_wrong_crop():
    with pytest.raises(InvalidInputError, match="align the photo"):
        _small()(torch.rand(1, 3, 32, 32))


def test_coeffs_vector_round_trip():
    v = torch.randn(3, LAYOUT.size)
    c = Coeffs3DMM.from_vector(v, LAYOUT)
    assert c.layout == LAYOUT and c.batch_size == 3
    torch.testing.assert_close(c.to_vector(), v)
    torch.testing.assert_close(c.angles, v[:, 12:15])
    with pytest.raises(InvalidInputError, match=f"\\(B, {LAYOUT.size}\\)"):
        Coeffs3DMM.from_vector(torch.randn(3, LAYOUT.size + 1), LAYOUT)


def test_gradients_reach_backbone():
    model = _small().train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    target = torch.ones(2, LAYOUT.size)
    # Step 1: the head is zero (as in Deng et al.), so only the head gets a gradient.
    (model(_images()).to_vector() - target).square().sum().backward()
    assert model.head.weight.grad.abs().sum() > 0
    opt.step()
    opt.zero_grad()
    # Step 2: the head has moved, so the gradient reaches every backbone parameter.
    (model(_images()).to_vector() - target).square().sum().backward()
    grads = {n: p.grad for n, p in model.named_parameters() if n.startswith("backbone.")}
    assert all(g is not None for g in grads.values())
    assert grads["backbone.conv1.weight"].abs().sum() > 0
    assert sum(float(g.abs().sum()) for g in grads.values()) > 0


# ---------------------------------------------------------------------------- checkpoints
def test_save_load_round_trip(tmp_path):
    model = _small(translation_offset=(0.01, -0.02, 0.1))
    torch.nn.init.normal_(model.head.weight, std=0.01)
    model(_images())  # update BatchNorm running stats so they differ from the init
    model.eval()
    path = tmp_path / "sub" / "reg.safetensors"
    save_regressor(model, path, extra_meta={"face_model_sha256": "ab" * 32})
    assert [p.name for p in path.parent.iterdir()] == ["reg.safetensors"]  # no temp files left

    meta = read_regressor_meta(path)
    assert meta["layout"] == LAYOUT.to_dict()
    assert meta["input_spec"]["crop_size"] == SIZE
    assert meta["backbone"] == {"name": "resnet18", "kwargs": {"width": 8}}
    assert meta["extra"] == {"face_model_sha256": "ab" * 32}
    assert meta["facecraft_version"]

    loaded = load_regressor(path)
    assert isinstance(loaded, CoeffRegressor) and not loaded.training
    assert loaded.layout == LAYOUT and loaded.input_spec == SPEC
    assert loaded.translation_offset == (0.01, -0.02, 0.1)
    assert loaded.extra_meta["face_model_sha256"] == "ab" * 32
    x = _images(3)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).to_vector(), model(x).to_vector(), rtol=0, atol=0)


def test_strict_load_lists_renamed_key(tmp_path):
    from safetensors.torch import load_file, save_file

    path = tmp_path / "reg.safetensors"
    save_regressor(_small(), path)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        header = f.metadata()
    tensors = load_file(path)
    tensors["head.kernel"] = tensors.pop("head.weight")
    bad = tmp_path / "renamed.safetensors"
    save_file(tensors, bad, metadata=header)

    with pytest.raises(ModelFileError, match=r"missing keys \['head.weight'\].*"
                                             r"unexpected keys \['head.kernel'\]"):
        load_regressor(bad)
    model, missing, unexpected = load_regressor(bad, strict=False)
    assert missing == ["head.weight"] and unexpected == ["head.kernel"]
    assert isinstance(model, CoeffRegressor)


def test_load_rejects_foreign_files(tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(ModelFileError, match="no such"):
        load_regressor(tmp_path / "nope.safetensors")
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, other)
    with pytest.raises(ModelFileError, match="not a FaceCraft regressor"):
        load_regressor(other)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not safetensors at all")
    with pytest.raises(ModelFileError, match="not a safetensors file"):
        load_regressor(junk)


# ----------------------------------------------------------------------------------- ONNX
def test_onnx_export_smoke():
    reason = ("torch.onnx.export needs the onnx (and, for the dynamo exporter, onnxscript) "
              "packages, not installed here (only onnxruntime is)")
    pytest.importorskip("onnx", reason=reason)
    pytest.importorskip("onnxscript", reason=reason)
    import numpy as np
    import onnxruntime as ort

    model = _small().eval()
    torch.nn.init.normal_(model.head.weight, std=0.01)

    class _Vec(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m.forward_vector(x)

    buf = io.BytesIO()
    x = _images(1)
    torch.onnx.export(_Vec(model), (x,), buf, input_names=["images"], output_names=["coeffs"])
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {"images": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(got, model.forward_vector(x).numpy(), atol=1e-4)
