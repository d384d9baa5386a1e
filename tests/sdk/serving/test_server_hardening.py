# ruff: noqa: F811 - pytest fixtures imported from _grpc_fixtures
"""Issue 15's serving defects, each on a real server over loopback: health under load, hostile
rig input (degenerate shapes, deep JSON, odd and huge names), rig quotas and registration
modes, malformed health requests, calls cut by shutdown, deadlines between pipeline stages,
and the light client import."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from facecraft.sdk._proto import facecraft_pb2 as pb
from facecraft.sdk._proto import facecraft_pb2_grpc as pb_grpc
from facecraft.sdk.client import FaceCraftClient, FaceCraftRpcError, RetryPolicy
from facecraft.sdk.errors import PhotoTooLargeError
from facecraft.sdk.photo.detection import Face as Detected
from facecraft.sdk.serving.server import ServerSettings, status_for

from .._grpc_fixtures import (  # noqa: F401 - fixtures
    one_torch_thread,
    package_path,
    photos,
    pipelines,
    running_server,
)
from .test_server import _GatedCraft, _in_thread, _wait_until

NO_RETRY = RetryPolicy(max_attempts=1)


def _code(fn, *args, **kw) -> tuple[str, str]:
    try:
        fn(*args, **kw)
    except FaceCraftRpcError as e:
        return e.code, e.details
    return "OK", ""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The starter rig saved as ``studio``: ``(glb, sidecar)`` paths."""
    import dataclasses

    from facecraft.sdk.rigs.rig import save_rig, starter_rig

    out = tmp_path_factory.mktemp("export") / "studio.glb"
    return save_rig(dataclasses.replace(starter_rig(), name="studio"), out,
                    target_normals=False)


# --------------------------------------------------------------------------- 1: health
def test_health_answers_serving_within_1s_under_64_clients(pipelines, photos):
    jpeg = photos["000002"]
    with running_server(pipelines, max_queue=8) as (_, target):
        stop = threading.Event()

        def load() -> None:
            with FaceCraftClient(target, retry=NO_RETRY, timeout_s=20) as c:
                while not stop.is_set():
                    _code(c.reconstruct, jpeg)

        workers = [threading.Thread(target=load) for _ in range(64)]
        for t in workers:
            t.start()
        answers = []
        try:
            time.sleep(0.5)
            with grpc.insecure_channel(target) as ch:
                stub = health_pb2_grpc.HealthStub(ch)
                end = time.monotonic() + 2.5
                while time.monotonic() < end:
                    t0 = time.monotonic()
                    try:
                        r = stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                        answers.append((health_pb2.HealthCheckResponse.ServingStatus.Name(
                            r.status), time.monotonic() - t0))
                    except grpc.RpcError as e:
                        answers.append((e.code().name, time.monotonic() - t0))
                    time.sleep(0.05)
        finally:
            stop.set()
            for t in workers:
                t.join(30)
    assert len(answers) >= 10
    bad = [a for a in answers if a[0] != "SERVING" or a[1] > 1.0]
    assert not bad, f"{len(bad)} of {len(answers)} probes: {bad[:5]}"


# --------------------------------------------------------------------------- 2, 3, 5, 6: rigs
@pytest.fixture(scope="module")
def rig_server(pipelines, tmp_path_factory):
    with running_server(pipelines, rigs_dir=tmp_path_factory.mktemp("rigs")) as srv:
        yield srv


def test_fit_rig_refuses_implausible_shapes(rig_server):
    srv, target = rig_server
    mean = srv.rigs.model.mean_shape.astype(np.float64)
    shapes = {"all zero": np.zeros_like(mean), "constant": np.full_like(mean, 0.25),
              "1e30 scaled": mean * 1e30, "millimetres": mean * 1e3,
              "flat": mean * np.array([1.0, 1.0, 0.0])}
    with grpc.insecure_channel(target) as ch:
        stub = pb_grpc.FaceCraftStub(ch)
        for name, v in shapes.items():
            req = pb.FitRigRequest(rig="starter", omit_texture=True, reconstruction=pb.FaceShape(
                neutral_vertices=v.astype(np.float32).ravel().tolist()))
            with pytest.raises(grpc.RpcError) as e:
                stub.FitRig(req, timeout=30)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, e.value.details())
            assert "plausible" in e.value.details() or "degenerate" in e.value.details(), name
        ok = stub.FitRig(pb.FitRigRequest(rig="starter", omit_texture=True,
                                          reconstruction=pb.FaceShape(
                                              neutral_vertices=mean.ravel().tolist())),
                         timeout=30)
        assert ok.residual_mean_mm < 50
    assert srv.metrics.requests("FitRig", "INTERNAL") == 0


def test_register_rig_refuses_deep_json_and_odd_names(rig_server, exported):
    srv, target = rig_server
    glb, side = exported[0].read_bytes(), exported[1].read_text()
    deep_in_extras = json.dumps({**json.loads(side), "extras": 0}).replace(
        '"extras": 0', '"extras": ' + "[" * 5000 + "]" * 5000)
    with FaceCraftClient(target, retry=NO_RETRY, timeout_s=30) as c:
        for text in ("[" * 100_000 + "]" * 100_000, deep_in_extras):
            code, details = _code(c.register_rig, glb, text, name="deep")
            assert code == "INVALID_ARGUMENT" and "nested" in details, details
        code, details = _code(c.register_rig, glb, side, name="x\n")
        assert code == "INVALID_ARGUMENT" and "name" in details
        long = "a" * 100_000
        code, details = _code(c.register_rig, glb, side, name=long)
        assert code == "INVALID_ARGUMENT" and len(details) < 1000
        code, details = _code(c.fit_rig, long, photo=b"x")
        assert code == "NOT_FOUND" and len(details) < 1000 and "100000 characters" in details
        code, _ = _code(c.fit_rig, "starter\n", photo=b"x")
        assert code == "NOT_FOUND"
    assert not [p.name for p in srv.rigs.folder.iterdir() if "\n" in p.name]
    for method in ("RegisterRig", "FitRig"):
        assert srv.metrics.requests(method, "INTERNAL") == 0


# --------------------------------------------------------------------------- 4: quotas
def test_rig_quotas_eviction_and_cache_bound(pipelines, exported, photos, tmp_path):
    glb, side = exported[0].read_bytes(), exported[1].read_text()
    size = len(glb) + len(side)
    with running_server(pipelines, rigs_dir=tmp_path, max_rigs=2, max_rig_bytes=size + 4096,
                        max_loaded_rigs=1, rig_cache_bytes=1) as (srv, target):
        with FaceCraftClient(target, retry=NO_RETRY, timeout_s=60) as c:
            assert c.register_rig(glb, side, name="a").name == "a"
            assert srv.rigs.loaded() == ["a"]  # one loaded at most
            assert c.register_rig(glb, side, name="b").name == "b"
            assert srv.rigs.loaded() == ["b"]
            code, details = _code(c.register_rig, glb, side, name="c")
            assert code == "RESOURCE_EXHAUSTED" and "2 registered rigs" in details
            assert c.register_rig(glb, side, name="a", overwrite=True).name == "a"
            code, details = _code(c.register_rig, glb + b"\0" * 8192, side, name="a",
                                  overwrite=True)
            assert code == "RESOURCE_EXHAUSTED" and "per rig" in details
            assert c.fit_rig("b", photo=photos["000002"], texture=False).identity
            assert srv.rigs.loaded() == ["b"]
        cache = [p for p in (srv.rigs.cache_dir).rglob("*") if p.is_file()]
        assert sum(p.stat().st_size for p in cache) <= 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.glb", "a.rig.json", "b.glb",
                                                          "b.rig.json"]


def test_registration_off_and_token_scoped(pipelines, exported):
    with running_server(pipelines, rig_registration="off") as (srv, target):
        with FaceCraftClient(target, retry=NO_RETRY, timeout_s=60) as c:
            code, details = _code(c.register_rig, exported[0])
            assert code == "PERMISSION_DENIED" and "off" in details
            assert [r.name for r in c.list_rigs()] == ["starter"]
    with running_server(pipelines, rig_registration="token", rig_token="r1g") as (_, target):
        with FaceCraftClient(target, retry=NO_RETRY, timeout_s=60) as c:
            code, details = _code(c.register_rig, exported[0])
            assert code == "PERMISSION_DENIED" and "token" in details
        with FaceCraftClient(target, retry=NO_RETRY, timeout_s=60, token="wrong") as c:
            assert _code(c.register_rig, exported[0])[0] == "PERMISSION_DENIED"
        with FaceCraftClient(target, retry=NO_RETRY, timeout_s=60, token="r1g") as c:
            assert c.register_rig(exported[0]).name == "studio"
    with pytest.raises(Exception, match="rig_token"):
        ServerSettings(rig_registration="token")


# --------------------------------------------------------------------------- 7: health bytes
def test_malformed_health_request_is_invalid_argument(rig_server):
    with grpc.insecure_channel(rig_server[1]) as ch:
        with pytest.raises(grpc.RpcError) as e:
            ch.unary_unary("/grpc.health.v1.Health/Check")(b"\x0a\xff\xff\xff\xff\x0f",
                                                            timeout=10)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
        ok = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert ok.status == health_pb2.HealthCheckResponse.SERVING


# --------------------------------------------------------------------------- 8: shutdown
def test_calls_cut_by_shutdown_count_as_cancelled(pipelines, photos):
    gated = _GatedCraft(pipelines[0])
    with running_server([gated], grace_s=0.3) as (srv, target):
        c = FaceCraftClient(target, retry=NO_RETRY, timeout_s=30)
        hold, _ = _in_thread(c.reconstruct, photos["000002"])
        assert gated.entered.wait(10)
        srv.stop()  # the grace period ends with the call still held
        gated.gate.set()
        hold.join(30)
        assert _wait_until(lambda: srv.metrics.requests("Reconstruct", "CANCELLED") == 1)
        assert srv.metrics.shutdown_cancelled("Reconstruct") == 1
        assert srv.metrics.requests("Reconstruct", "DEADLINE_EXCEEDED") == 0
        assert 'facecraft_rpc_shutdown_cancelled_total{method="Reconstruct"} 1' in \
            srv.metrics.render()
        c.close()


# --------------------------------------------------------------------------- 11: stages
class _SlowDetector:
    """A real detector that takes ``delay_s`` longer (a large photo's detection)."""

    def __init__(self, inner, delay_s: float) -> None:
        self._inner = inner
        self._delay = delay_s

    def detect(self, image: np.ndarray) -> list[Detected]:
        time.sleep(self._delay)
        return self._inner.detect(image)


def test_an_expired_call_stops_between_pipeline_stages(pipelines, photos):
    craft = pipelines[0]
    regressions = []
    real_regress = craft.regress
    craft.detector, real_detector = _SlowDetector(craft.detector, 0.8), craft.detector
    craft.regress = lambda crops: regressions.append(len(crops)) or real_regress(crops)
    try:
        with running_server([craft]) as (srv, target):
            with FaceCraftClient(target, retry=NO_RETRY) as c:
                assert _code(c.reconstruct, photos["000002"], timeout_s=0.3)[0] == \
                    "DEADLINE_EXCEEDED"
                assert _wait_until(lambda: srv.metrics.requests("Reconstruct",
                                                                "DEADLINE_EXCEEDED") == 1)
                assert regressions == []  # stopped after detection, before the regressor
                assert c.reconstruct(photos["000002"]).faces and regressions == [1]
    finally:
        craft.detector = real_detector
        del craft.regress


# --------------------------------------------------------------------------- house
def test_client_import_loads_neither_torch_nor_opencv_nor_scipy():
    code = ("import sys, facecraft.sdk.client; "
            "print(sorted(m for m in ('torch', 'cv2', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout.strip()
    assert out == "[]"


def test_errors_map_by_type_and_one_detection_record(rig_server, photos):
    assert status_for(PhotoTooLargeError("big"))[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert ServerSettings().max_pixels == 16_000_000
    with FaceCraftClient(rig_server[1], retry=NO_RETRY, timeout_s=30) as c:
        det = c.reconstruct(photos["000002"]).faces[0].detection
        fitted = c.fit_rig("starter", photo=photos["000002"], texture=False)
    assert isinstance(det, Detected) and isinstance(fitted.detection, Detected)
    assert det.landmarks5.shape == (5, 2) and det.area > 0
