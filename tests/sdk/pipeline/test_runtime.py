"""ONNX Runtime sessions: provider order and overrides, session options, engine-cache keys."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.pipeline.package import ModelEntry, TensorSpec
from facecraft.sdk.pipeline.runtime import (
    DEFAULT_PROVIDER_ORDER,
    PROVIDER_NAMES,
    EngineCacheKey,
    OrtModel,
    RuntimeSettings,
    engine_cache_key,
    provider_options,
    select_providers,
    tensorrt_version,
)

TRT, CUDA, CPU = (PROVIDER_NAMES[k] for k in ("tensorrt", "cuda", "cpu"))
ALL = (TRT, CUDA, CPU)
SHA = "ab" * 32


def _entry(path: Path = Path("regressor.onnx"), *, dynamic: bool = True) -> ModelEntry:
    batch = "batch" if dynamic else 1
    return ModelEntry(role="regressor", path=path, sha256=SHA, opset=17,
                      inputs=(TensorSpec("images", (batch, 3, 128, 128)),),
                      outputs=(TensorSpec("coeffs", (batch, 126)),),
                      parity_max_abs_diff=0.0, meta={})


def _tiny_onnx(path: Path) -> Path:
    """y = 2 x + 1 over a dynamic batch, built with onnx.helper (no torch export)."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    graph = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["t"]),
                               helper.make_node("Add", ["t", "one"], ["y"])],
                              "tiny", [x], [y], initializer=[two, one])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


# ------------------------------------------------------------------------------- providers
def test_default_order_filters_by_availability():
    assert DEFAULT_PROVIDER_ORDER == ("tensorrt", "cuda", "cpu")
    assert select_providers(None, [CPU]).providers == (CPU,)
    assert select_providers(None, [CPU]).unavailable == ()  # defaults are skipped silently
    assert select_providers(None, [CPU, CUDA, TRT]).providers == (TRT, CUDA, CPU)
    assert select_providers(None, [CPU, CUDA]).providers == (CUDA, CPU)


def test_overrides_keep_order_and_fall_back_to_cpu():
    sel = select_providers(["cuda"], [CPU])
    assert sel.providers == (CPU,) and sel.unavailable == (CUDA,)
    assert sel.primary == CPU
    assert select_providers(["cpu", "cuda"], ALL).providers == (CPU, CUDA)
    assert select_providers(["cuda"], ALL).providers == (CUDA, CPU)  # CPU always appended
    assert select_providers("tensorrt", ALL).providers == (TRT, CPU)
    # full ONNX Runtime names, any case, duplicates ignored
    assert select_providers([CUDA, "CUDA", "cpu"], ALL).providers == (CUDA, CPU)
    assert select_providers(["cudaexecutionprovider"], ALL).providers == (CUDA, CPU)


def test_unknown_provider_is_rejected():
    with pytest.raises(InvalidInputError, match="unknown execution provider 'opencl'"):
        select_providers(["opencl"], ALL)
    with pytest.raises(InvalidInputError, match="tensorrt"):
        RuntimeSettings(providers=("rocm",))
    with pytest.raises(InvalidInputError, match="sequence of names"):
        RuntimeSettings(providers="cuda")


def test_runtime_settings_validate():
    assert RuntimeSettings(providers=("cuda", "cpu")).providers == (CUDA, CPU)
    for bad in ({"threads": 0}, {"inter_op_threads": 0}, {"max_batch": 0},
                {"graph_optimization": "max"}, {"device_id": -1}):
        with pytest.raises(InvalidInputError):
            RuntimeSettings(**bad)


# ---------------------------------------------------------------------------- engine cache
def test_engine_cache_key_depends_on_everything_that_invalidates_an_engine(tmp_path):
    base = dict(model_sha256=SHA, tensorrt_version="10.3.0", device="NVIDIA H100 80GB HBM3",
                precision="fp16")
    key = EngineCacheKey(**base)
    names = {EngineCacheKey(**{**base, k: v}).folder_name for k, v in (
        ("model_sha256", "cd" * 32), ("tensorrt_version", "10.4.0"),
        ("device", "NVIDIA A100-SXM4-40GB"), ("precision", "fp32"))}
    assert key.folder_name not in names and len(names) == 4
    assert EngineCacheKey(**base).folder_name == key.folder_name  # deterministic
    name = key.folder_name
    assert name.startswith(SHA[:16] + "-trt10.3.0-nvidia-h100-80gb-hbm3-fp16-")
    assert all(c.isalnum() or c in "-." for c in name)
    assert key.path(tmp_path) == tmp_path / name
    with pytest.raises(InvalidInputError, match="SHA-256"):
        EngineCacheKey(**{**base, "model_sha256": "not a hash"})
    with pytest.raises(InvalidInputError, match="precision"):
        EngineCacheKey(**{**base, "precision": "int8"})


def test_engine_cache_key_on_this_machine():
    if tensorrt_version() is not None:
        pytest.skip("TensorRT is installed here; the key then carries its version")
    key = engine_cache_key(SHA, fp16=True)
    assert key.tensorrt_version == "none" and key.precision == "fp16"
    assert engine_cache_key(SHA).precision == "fp32"
    assert engine_cache_key(SHA, trt_version="8.6.1", device="GPU X").folder_name.startswith(
        SHA[:16] + "-trt8.6.1-gpu-x-fp32")


def test_tensorrt_provider_options_point_at_the_keyed_cache(tmp_path):
    settings = RuntimeSettings(tensorrt_fp16=True, engine_cache_dir=str(tmp_path), max_batch=4,
                               device_id=0)
    opts = provider_options("tensorrt", settings, entry=_entry())
    folder = engine_cache_key(SHA, fp16=True).path(tmp_path)
    assert opts["trt_engine_cache_enable"] is True
    assert opts["trt_engine_cache_path"] == str(folder)
    assert opts["trt_timing_cache_path"] == str(folder)
    assert opts["trt_fp16_enable"] is True and opts["device_id"] == 0
    assert opts["trt_profile_min_shapes"] == "images:1x3x128x128"
    assert opts["trt_profile_opt_shapes"] == "images:1x3x128x128"
    assert opts["trt_profile_max_shapes"] == "images:4x3x128x128"
    fixed = provider_options("tensorrt", settings, entry=_entry(dynamic=False))
    assert "trt_profile_min_shapes" not in fixed  # a fixed batch needs no profile
    assert provider_options("cuda", RuntimeSettings(device_id=1)) == {"device_id": 1}
    assert provider_options("cpu") == {}


# -------------------------------------------------------------------------------- sessions
def test_cpu_session_runs_and_records_options(tmp_path):
    path = _tiny_onnx(tmp_path / "tiny.onnx")
    model = OrtModel(path, RuntimeSettings(threads=1, graph_optimization="basic"))
    assert model.providers == (CPU,)
    assert model.input_names == ("x",) and model.output_names == ("y",)
    opts = model.session.get_session_options()
    assert opts.intra_op_num_threads == 1 and opts.inter_op_num_threads == 1
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(model.run({"x": x})["y"], 2 * x + 1)
    with pytest.raises(InvalidInputError, match="missing inputs"):
        model.run({})


def test_requesting_a_gpu_provider_falls_back_to_cpu(tmp_path):
    path = _tiny_onnx(tmp_path / "tiny.onnx")
    model = OrtModel(path, RuntimeSettings(providers=("tensorrt", "cuda"), threads=1),
                     available=[CPU])
    assert model.selection.unavailable == (TRT, CUDA)
    assert model.providers == (CPU,)
    np.testing.assert_array_equal(model.run({"x": np.ones((1, 4), np.float32)})["y"],
                                  np.full((1, 4), 3.0, np.float32))
