"""The TensorRT path with TensorRT absent: clear errors, cache keys, and the build sequence run
against a stand-in ``tensorrt`` module that records the documented API calls.

The engine build itself needs TensorRT and a CUDA GPU, neither installable here (the wheels come
from NVIDIA's index); it is skipped for that reason.
"""

from __future__ import annotations

import json
import sys
import types

import pytest

from facecraft.export.tensorrt import (
    TensorRTSettings,
    TensorRTUnavailableError,
    build_engine,
    build_package_engines,
    engine_path,
    require_tensorrt,
    tensorrt_available,
)
from facecraft.sdk.errors import FaceCraftError, InvalidInputError
from facecraft.sdk.pipeline.package import load_package
from facecraft.sdk.pipeline.runtime import engine_cache_key


def test_missing_tensorrt_is_a_clear_error(package, tmp_path):
    if tensorrt_available():
        pytest.skip("TensorRT is installed here")
    with pytest.raises(TensorRTUnavailableError, match="NVIDIA's index") as e:
        require_tensorrt()
    assert isinstance(e.value, FaceCraftError)
    with pytest.raises(TensorRTUnavailableError):  # refused before the package is even read
        build_package_engines(tmp_path / "does-not-exist.fcpkg")


def test_settings_validate():
    with pytest.raises(InvalidInputError, match="opt_batch"):
        TensorRTSettings(opt_batch=16, max_batch=8)
    with pytest.raises(InvalidInputError, match="max_batch"):
        TensorRTSettings(max_batch=0)


def test_engine_path_uses_the_runtime_cache_key(package, tmp_path):
    entry = load_package(package[0]).regressor
    s = TensorRTSettings(fp16=True, cache_dir=str(tmp_path))
    p = engine_path(entry, s, trt_version="10.3.0", device="NVIDIA H100 80GB HBM3")
    key = engine_cache_key(entry.sha256, fp16=True, trt_version="10.3.0",
                           device="NVIDIA H100 80GB HBM3")
    assert p == tmp_path / key.folder_name / "regressor.engine"
    assert p != engine_path(entry, TensorRTSettings(cache_dir=str(tmp_path)),
                            trt_version="10.3.0", device="NVIDIA H100 80GB HBM3")  # fp32


# --------------------------------------------------------------- a stand-in tensorrt module
class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple] = []


def _fake_tensorrt(rec: _Recorder, *, parse_ok: bool = True) -> types.ModuleType:
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.3.0"

    class Logger:
        WARNING = 2

        def __init__(self, level):
            rec.calls.append(("Logger", level))

    class _Tensor:
        name = "images"
        shape = (-1, 3, 128, 128)

    class Network:
        num_inputs = 1

        def get_input(self, i):
            return _Tensor()

    class Parser:
        num_errors = 1

        def __init__(self, network, logger):
            pass

        def parse(self, data):
            rec.calls.append(("parse", len(data)))
            return parse_ok

        def get_error(self, i):
            return "unsupported op Foo"

    class Profile:
        def set_shape(self, name, lo, opt, hi):
            rec.calls.append(("set_shape", name, tuple(lo), tuple(opt), tuple(hi)))

    class Config:
        def set_memory_pool_limit(self, pool, size):
            rec.calls.append(("workspace", pool, size))

        def set_flag(self, flag):
            rec.calls.append(("flag", flag))

        def add_optimization_profile(self, p):
            rec.calls.append(("add_profile",))

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            rec.calls.append(("create_network", flags))
            return Network()

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            rec.calls.append(("build",))
            return b"ENGINE-BYTES"

    trt.Logger, trt.Builder, trt.OnnxParser = Logger, Builder, Parser
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    trt.BuilderFlag = types.SimpleNamespace(FP16="FP16")
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(EXPLICIT_BATCH=0)
    return trt


def test_build_sequence_against_the_documented_api(package, tmp_path, monkeypatch):
    rec = _Recorder()
    monkeypatch.setitem(sys.modules, "tensorrt", _fake_tensorrt(rec))
    entry = load_package(package[0]).regressor
    settings = TensorRTSettings(fp16=True, max_batch=8, opt_batch=2, cache_dir=str(tmp_path))
    built = build_engine(entry, settings)
    assert not built.reused and built.path.read_bytes() == b"ENGINE-BYTES"
    assert built.path.parent.name == built.key.folder_name
    assert built.key.tensorrt_version == "10.3.0" and built.key.precision == "fp16"
    names = [c[0] for c in rec.calls]
    assert names == ["Logger", "create_network", "parse", "workspace", "flag", "set_shape",
                     "add_profile", "build"]
    assert ("create_network", 0) in rec.calls  # explicit batch is implicit from TensorRT 10
    assert ("flag", "FP16") in rec.calls
    assert ("set_shape", "images", (1, 3, 128, 128), (2, 3, 128, 128), (8, 3, 128, 128)) \
        in rec.calls
    meta = json.loads(built.path.with_name("regressor.engine.json").read_text())
    assert meta["onnx_sha256"] == entry.sha256 and meta["tensorrt_version"] == "10.3.0"
    assert meta["profile"] == {"min_batch": 1, "opt_batch": 2, "max_batch": 8}
    assert "cuda_version" in meta and meta["precision"] == "fp16"

    rec.calls.clear()  # same key and profile: reused, nothing rebuilt
    again = build_engine(entry, settings)
    assert again.reused and again.path == built.path and rec.calls == []
    rebuilt = build_engine(entry, TensorRTSettings(fp16=True, max_batch=8, opt_batch=2,
                                                   cache_dir=str(tmp_path), force=True))
    assert not rebuilt.reused and ("build",) in rec.calls


def test_parser_errors_are_reported(package, tmp_path, monkeypatch):
    rec = _Recorder()
    monkeypatch.setitem(sys.modules, "tensorrt", _fake_tensorrt(rec, parse_ok=False))
    entry = load_package(package[0]).regressor
    with pytest.raises(FaceCraftError, match="ONNX parser failed: unsupported op Foo"):
        build_engine(entry, TensorRTSettings(cache_dir=str(tmp_path)))
    assert not list(tmp_path.rglob("*.engine"))


def test_real_engine_build(package, tmp_path):
    if not tensorrt_available():
        pytest.skip("TensorRT is not installable here (its wheels come from NVIDIA's index, "
                    "which this machine cannot reach) and needs a CUDA GPU")
    builds = build_package_engines(package[0], TensorRTSettings(cache_dir=str(tmp_path)))
    assert builds and all(b.path.stat().st_size > 0 for b in builds)
