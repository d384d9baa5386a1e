"""ONNX export: checked graphs, dynamic batch, parity with torch (< 1e-4) recorded and enforced."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from facecraft.export.onnx_export import (
    ExportedModel,
    ExportParityError,
    ExportSettings,
    export_graph_net,
    export_regressor_onnx,
    regressor_parity_crops,
)
from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.pipeline.package import file_sha256, load_package
from facecraft.training.regressor import load_regressor

from .conftest import PHOTOS


class PerVertex(nn.Module):
    """A tiny per-vertex net: (B, V, 7) -> (B, V, 3), plus a pooled (B, 4) second output."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(7, 3)
        self.pool = nn.Linear(7, 4)

    def forward(self, x: torch.Tensor):
        return torch.sigmoid(self.lin(x)), self.pool(x).mean(dim=1)


def test_graph_net_export_is_checked_dynamic_and_verified(tmp_path):
    x = torch.rand(2, 50, 7, generator=torch.Generator().manual_seed(0))
    extra = [{"vertex_input": torch.rand(b, 50, 7)} for b in (1, 5)]
    out = export_graph_net(PerVertex(), {"vertex_input": x}, tmp_path / "net.onnx",
                           output_names=("fine_albedo", "pooled"), parity_inputs=extra,
                           parity_description="random per-vertex inputs")
    assert isinstance(out, ExportedModel)
    assert out.sha256 == file_sha256(out.path) and out.size_bytes == out.path.stat().st_size
    assert out.opset == 17
    assert [t.to_dict() for t in out.inputs] == [
        {"name": "vertex_input", "shape": ["batch", 50, 7], "dtype": "float32"}]
    assert [(t.name, t.shape) for t in out.outputs] == [("fine_albedo", ("batch", 50, 3)),
                                                        ("pooled", ("batch", 4))]
    assert out.parity_max_abs_diff < 1e-6 and out.num_parity_inputs == 6
    entry = out.manifest_entry("refiner.onnx")
    assert entry["parity"]["max_abs_diff"] == out.parity_max_abs_diff
    assert entry["parity"]["inputs"] == "random per-vertex inputs"
    assert entry["exporter"]["mode"] == "torchscript" and entry["exporter"]["torch"]
    sess = ort.InferenceSession(str(out.path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"vertex_input": np.ones((3, 50, 7), np.float32)})
    assert got[0].shape == (3, 50, 3)  # any batch runs


def test_dynamo_exporter(tmp_path):
    x = torch.rand(2, 20, 7)
    out = export_graph_net(PerVertex(), {"vertex_input": x}, tmp_path / "d.onnx",
                           output_names=("a", "b"),
                           settings=ExportSettings(opset=18, exporter="dynamo"))
    assert out.opset == 18 and out.parity_max_abs_diff < 1e-6
    assert out.inputs[0].shape[0] == "batch"


class _TraceCounter(nn.Module):
    """Returns x * (number of calls so far): the trace freezes one count, eager moves on, so
    ONNX Runtime and torch disagree - a stand-in for an op that exports inexactly."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x * float(self.calls)


def test_parity_failure_raises_and_removes_the_file(tmp_path):
    path = tmp_path / "bad.onnx"
    with pytest.raises(ExportParityError, match="differs from torch"):
        export_graph_net(_TraceCounter(), {"x": torch.ones(1, 4)}, path, output_names=("y",))
    assert not path.exists()


def test_settings_and_argument_checks(tmp_path):
    with pytest.raises(InvalidInputError, match="opset >= 18"):
        ExportSettings(opset=17, exporter="dynamo")
    with pytest.raises(InvalidInputError, match="opset"):
        ExportSettings(opset=5)
    with pytest.raises(InvalidInputError, match="output_names"):
        export_graph_net(PerVertex(), {"vertex_input": torch.rand(1, 5, 7)},
                         tmp_path / "x.onnx", output_names=("only_one",))
    with pytest.raises(InvalidInputError, match="CoeffRegressor"):
        export_regressor_onnx(PerVertex(), tmp_path / "r.onnx")


def test_regressor_parity_recorded_in_manifest(package):
    pkg = load_package(package[0])
    reg = pkg.regressor
    parity = reg.meta["parity"]
    assert parity["max_abs_diff"] < 1e-4 and parity["tolerance"] == 1e-4
    if PHOTOS.is_dir():
        assert "aligned crops of real photos" in parity["inputs"]
        assert parity["num_inputs"] == 4
    assert reg.opset == 17 and reg.batch_dynamic
    assert [t.name for t in reg.outputs] == ["coeffs", "features"]
    assert reg.outputs[0].shape == ("batch", pkg.coeff_layout.size)


def test_regressor_onnx_matches_torch_on_new_inputs(package):
    """Independent of the export's own check: fresh crops, batched and one by one."""
    pkg_path, ckpt = package
    pkg = load_package(pkg_path)
    model = load_regressor(ckpt)
    s = pkg.input_spec.crop_size
    crops, _ = regressor_parity_crops(s, count=3, seed=7)  # rendered synthetic faces
    sess = ort.InferenceSession(str(pkg.regressor.path), providers=["CPUExecutionProvider"])
    coeffs, feats = sess.run(["coeffs", "features"], {"images": crops.numpy()})
    with torch.inference_mode():
        ref = model.forward_vector(crops).numpy()
        ref_f = model.forward_features(crops).numpy()
    assert np.abs(coeffs - ref).max() < 1e-4
    assert np.abs(feats - ref_f).max() < 1e-4
    single = sess.run(["coeffs"], {"images": crops[1:2].numpy()})[0]
    assert np.abs(single - coeffs[1:2]).max() < 1e-4
    assert np.abs(ref).max() > 1e-3  # the check is not vacuous: outputs are not all zero


def test_parity_crops_fall_back_to_synthetic_faces(tmp_path):
    crops, what = regressor_parity_crops(64, photos=[tmp_path], count=2)  # an empty folder
    assert crops.shape == (2, 3, 64, 64) and crops.dtype == torch.float32
    assert "synthetic faces" in what
    assert 0.0 <= float(crops.min()) and float(crops.max()) <= 1.0
