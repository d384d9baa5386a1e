"""MediaPipe .tflite -> ONNX (facecraft.export.tflite): the vendored files against
PROVENANCE.json (no assets needed), the converter on a tiny synthetic graph, and parity of every
vendored model with the original run by ai-edge-litert (skipped where ../shared/assets or
ai-edge-litert are absent)."""

from __future__ import annotations

import hashlib
import importlib.util
import json

import numpy as np
import onnxruntime as ort
import pytest

from facecraft.export.tflite import mediapipe as mp
from facecraft.export.tflite.convert import ConvertSettings, tflite_to_onnx
from facecraft.export.tflite.reader import TFLiteGraph, TFLiteOperator, TFLiteTensor

from ..conftest import ASSETS

MP_ASSETS = ASSETS / "models" / "mediapipe"
PHOTO = ASSETS / "photos" / "london-faces" / "neutral" / "001_03.jpg"
PROV = json.loads((mp.VENDORED_DIR / "PROVENANCE.json").read_text())
NAMES = [m.name for m in mp.MEDIAPIPE_MODELS]


def _session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _tflite_or_skip(name: str):
    if importlib.util.find_spec("ai_edge_litert") is None:
        pytest.skip("ai-edge-litert is not installed (pip install ai-edge-litert)")
    path = MP_ASSETS / f"{name}.tflite"
    if not path.is_file():
        pytest.skip(f"{path} not present (a user's own clone has no ../shared/assets)")
    return path


def test_vendored_files_match_provenance():
    assert mp.check_vendored() == []
    assert PROV["source"]["commit"] == mp.SOURCE_COMMIT
    assert set(PROV["models"]) == set(NAMES)
    for spec in mp.MEDIAPIPE_MODELS:
        rec = PROV["models"][spec.name]
        assert rec["tflite"]["sha256"] == spec.sha256
        assert rec["tflite"]["source_path"] == spec.source_path
        assert rec["bytes"] < 4_000_000, f"{rec['file']} is too large to vendor"
        for kind, cmp in rec["parity"].items():
            assert cmp["passed"], (spec.name, kind)
    assert "Apache License" in (mp.VENDORED_DIR / "LICENSE").read_text()


def test_check_vendored_reports_a_changed_file(tmp_path):
    for f in mp.VENDORED_DIR.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    p = tmp_path / "iris_landmark.onnx"
    p.write_bytes(p.read_bytes() + b"\0")
    (problem,) = mp.check_vendored(tmp_path)
    assert "iris_landmark" in problem


@pytest.mark.parametrize("name", NAMES)
def test_vendored_model_io_and_dynamic_batch(name):
    """The vendored file loads in onnxruntime alone, has the recorded NHWC I/O, and a batch of
    two gives each item's batch-of-one result."""
    rec = PROV["models"][name]
    s = _session(mp.VENDORED_DIR / rec["file"])
    (inp,) = s.get_inputs()
    assert inp.name == rec["input"]["name"]
    assert inp.shape == rec["input"]["shape"]
    assert [o.name for o in s.get_outputs()] == list(rec["outputs"])
    shape = [2, *rec["input"]["shape"][1:]]
    lo, hi = rec["input"]["range"]
    x = np.random.default_rng(1).uniform(lo, hi, shape).astype(np.float32)
    both = s.run(None, {inp.name: x})
    one = s.run(None, {inp.name: x[1:]})
    for o, b, a in zip(s.get_outputs(), both, one, strict=True):
        assert list(b.shape[1:]) == rec["outputs"][o.name]["shape"][1:]
        np.testing.assert_allclose(b[1:], a, rtol=0, atol=mp.tolerance(a))


@pytest.mark.parametrize("name", NAMES)
def test_vendored_model_matches_tflite(name):
    """Each output within tolerance of ai-edge-litert on a random and a real-photo input."""
    src = _tflite_or_skip(name)
    spec = mp.model_by_name(name)
    shape = (1, *PROV["models"][name]["input"]["shape"][1:])
    feeds = mp.parity_inputs(spec, shape, seed=3, photo=PHOTO if PHOTO.is_file() else None)
    onnx_path = mp.VENDORED_DIR / PROV["models"][name]["file"]
    for kind, x in feeds.items():
        cmp = mp.compare_outputs(spec, mp.run_tflite(src, x), mp.run_onnx(onnx_path, x))
        assert cmp["passed"], (kind, cmp)


@pytest.mark.parametrize("name", ["face_detection_short_range", "iris_landmark"])
def test_conversion_reproduces_the_vendored_file(name):
    """The committed converter rebuilds the vendored bytes exactly (sha256)."""
    pytest.importorskip("tflite", reason="the converter needs the `tflite` package")
    src = MP_ASSETS / f"{name}.tflite"
    if not src.is_file():
        pytest.skip(f"{src} not present (a user's own clone has no ../shared/assets)")
    spec = mp.model_by_name(name)
    doc = f"{name}: {spec.input_note}. Converted from {spec.source_path} ({spec.sha256[:12]})."
    data = tflite_to_onnx(src, ConvertSettings(graph_name=name, doc_string=doc))
    assert hashlib.sha256(data.SerializeToString()).hexdigest() == PROV["models"][name]["sha256"]


# -- the converter on a synthetic graph (no assets, no tflite package) ---------------------------
def _argmax_graph() -> TFLiteGraph:
    """input (1, 4, 6, 2) -> MaxPoolingWithArgmax2D 2x2/2 -> MaxUnpooling2D -> (1, 4, 6, 2)."""
    pool = np.array([1, 2, 2, 2, 2, 0, 0, 0], "<i4").tobytes()  # SAME, stride 2, filter 2
    t = (TFLiteTensor(0, "x", (1, 4, 6, 2), np.dtype(np.float32)),
         TFLiteTensor(1, "pooled", (1, 2, 3, 2), np.dtype(np.float32)),
         TFLiteTensor(2, "indices", (1, 2, 3, 2), np.dtype(np.float32)),
         TFLiteTensor(3, "y", (1, 4, 6, 2), np.dtype(np.float32)))
    ops = (TFLiteOperator("MaxPoolingWithArgmax2D", (0,), (1, 2), {}, True, pool),
           TFLiteOperator("MaxUnpooling2D", (1, 2), (3,), {}, True, pool))
    return TFLiteGraph(t, ops, (0,), (1, 3), 3)


def test_argmax_pool_and_unpool_keep_only_each_windows_maximum():
    s = ort.InferenceSession(tflite_to_onnx(_argmax_graph(), ConvertSettings()).SerializeToString(),
                             providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).permutation(48).reshape(1, 4, 6, 2).astype(np.float32)
    pooled, y = s.run(None, {"x": x})
    win = x.reshape(1, 2, 2, 3, 2, 2).max(axis=(2, 4))  # (1, h, w, C)
    np.testing.assert_array_equal(pooled, win)
    expect = np.where(x == np.repeat(np.repeat(win, 2, 1), 2, 2), x, 0)
    np.testing.assert_array_equal(y, expect)


def test_argmax_ties_go_to_the_first_position_in_column_major_window_order():
    s = ort.InferenceSession(tflite_to_onnx(_argmax_graph(), ConvertSettings()).SerializeToString(),
                             providers=["CPUExecutionProvider"])
    x = np.zeros((1, 4, 6, 2), np.float32)
    x[0, 0, 1, :] = x[0, 1, 0, :] = 5.0  # window (0, 0): (y=0, x=1) and (y=1, x=0) tie
    _, y = s.run(None, {"x": x})
    assert y[0, 1, 0, 0] == 5.0 and y[0, 0, 1, 0] == 0.0  # x outer, y inner: (1, 0) first


def test_unsupported_operator_is_named():
    g = _argmax_graph()
    bad = TFLiteGraph(g.tensors, (TFLiteOperator("Landmarks2TransformMatrix", (0,), (3,), {}),),
                      g.inputs, (3,), 3)
    with pytest.raises(NotImplementedError, match="Landmarks2TransformMatrix"):
        tflite_to_onnx(bad)


def test_cli_registers_the_mediapipe_command(tmp_path):
    import argparse

    from facecraft.export.cli import register

    parser = argparse.ArgumentParser(prog="facecraft")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["export", "mediapipe", "--assets", str(tmp_path), "--models",
                              "iris_landmark", "--latency-runs", "0"])
    assert args.models == ["iris_landmark"] and args.output.name == "mediapipe"
    with pytest.raises(FileNotFoundError, match="LICENSE"):
        args.handler(args)
