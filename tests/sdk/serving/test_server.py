# ruff: noqa: F811 - pytest fixtures imported from _grpc_fixtures
"""The gRPC server over a real pipeline, called through the real clients on loopback port 0.

Every method (sync and asyncio clients), health and reflection, bad and hostile input (a fuzz of
a few hundred requests, then a good one), many concurrent clients, limits, deadlines, a busy
pool, graceful shutdown with a call in flight, metrics, the bearer token, TLS and mutual TLS.
"""

from __future__ import annotations

import asyncio
import random
import struct
import threading
import time
import urllib.request
import zlib

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from facecraft.sdk._proto import facecraft_pb2 as pb
from facecraft.sdk._proto import facecraft_pb2_grpc as pb_grpc
from facecraft.sdk.client import (
    AsyncFaceCraftClient,
    FaceCraftClient,
    FaceCraftRpcError,
    ReconstructOptions,
    RetryPolicy,
)
from facecraft.sdk.errors import FaceCraftError, InvalidInputError, ModelFileError
from facecraft.sdk.photo.image_io import ImageDecodeError
from facecraft.sdk.photo.ingest import NoFaceError
from facecraft.sdk.render.cameras import euler_to_matrix
from facecraft.sdk.serving.server import (
    SERVICE_NAME,
    DeadlineError,
    PhotoTooLargeError,
    ServerBusyError,
    ServerSettings,
    status_for,
)

from .._grpc_fixtures import (  # noqa: F401 - fixtures
    decode_rgb,
    group_photo,
    no_face_photo,
    one_torch_thread,
    package_path,
    photos,
    pipelines,
    png_bytes,
    running_server,
)

NO_RETRY = RetryPolicy(max_attempts=1)
OK_OR_CLIENT_FAULT = {"OK", "INVALID_ARGUMENT", "FAILED_PRECONDITION", "RESOURCE_EXHAUSTED"}


@pytest.fixture(scope="module")
def server(pipelines):
    with running_server(pipelines, metrics_port=0, max_batch=8) as (srv, target):
        yield srv, target


@pytest.fixture
def client(server):
    with FaceCraftClient(server[1], timeout_s=30, retry=NO_RETRY) as c:
        yield c


def _code(fn, *args, **kw) -> str:
    try:
        fn(*args, **kw)
    except FaceCraftRpcError as e:
        return e.code
    return "OK"


# --------------------------------------------------------------------------- every method
def test_model_info(client, pipelines):
    info = client.model_info(include_topology=True)
    fm = pipelines[0].face_model
    assert info.package["name"] == "random"
    assert info.face_model["num_vertices"] == fm.num_vertices
    assert info.face_model["num_uvs"] == len(fm.uvs)
    assert info.face_model["expression_kind"] in ("blendshape", "pca")
    lay = pipelines[0].layout
    assert list(info.coefficient_layout) == ["identity", "expression", "albedo", "angles",
                                             "lighting", "translation"]
    assert info.coefficient_layout["expression"][1] == lay.num_expression
    assert len(info.face_model["expression_names"]) == lay.num_expression
    assert sum(size for _, size, _ in info.coefficient_layout.values()) == lay.size
    assert info.camera["crop_size"] == pipelines[0].crop_size and info.camera["focal_px"] > 0
    assert "CPUExecutionProvider" in info.providers
    assert info.limits["workers"] == 2 and info.limits["max_batch"] == 8
    assert {"reconstruct", "reconstruct_batch", "texture_png", "vertex_colors"} <= set(
        info.capabilities)
    np.testing.assert_array_equal(info.triangles, fm.triangles)
    np.testing.assert_allclose(info.mean_vertices, fm.mean_shape, atol=1e-7)
    assert client.model_info().triangles is None


def test_reconstruct_returns_every_part_in_the_documented_frames(client, photos, pipelines):
    data = photos["000002"]
    rec = client.reconstruct(data, ReconstructOptions(texture=True, texture_size=256,
                                                      vertex_colors=True, camera_vertices=True),
                             source="me.jpg", request_id="my-call-1")
    assert rec.request_id == "my-call-1"
    h, w = decode_rgb(data).shape[:2]
    assert (rec.photo.width, rec.photo.height, rec.photo.format) == (w, h, "jpeg")
    assert rec.photo.source == "me.jpg" and rec.photo.exif_orientation == 1
    (face,) = rec.faces
    fm = pipelines[0].face_model
    v = fm.num_vertices
    assert face.vertices.shape == face.normals.shape == face.neutral_vertices.shape == (v, 3)
    assert face.triangles.shape == face.uv_triangles.shape == (len(fm.triangles), 3)
    assert face.uvs.shape == (len(fm.uvs), 2) and 0 <= face.uvs.min() and face.uvs.max() <= 1
    np.testing.assert_allclose(np.linalg.norm(face.normals, axis=1), 1.0, atol=1e-4)
    assert face.vertex_colors.shape == (v, 3)
    assert 0 <= face.vertex_colors.min() and face.vertex_colors.max() <= 1
    assert face.texture().shape == (256, 256, 3)
    assert face.albedo_source == "photo"
    assert 0.5 < face.detection.score <= 1
    x0, y0, x1, y1 = face.detection.box
    assert 0 <= x0 < x1 <= w + 1 and 0 <= y0 < y1 <= h + 1
    assert face.landmarks.shape == (68, 2) and face.detection.landmarks5.shape == (5, 2)
    # the MediaPipe front-end's measurements on the photo (the default front-end)
    pl = face.photo_landmarks
    assert pl is not None and pl.mesh.shape == (468, 3) and 0.5 < pl.presence <= 1
    assert pl.iris.shape == (2, 5, 2) and pl.detector
    assert {"face_oval", "lips_outer", "lips_inner", "eyes", "brows", "nose", "iris"} == set(
        pl.regions)
    assert len(pl.regions["eyes"]) == 2 and pl.regions["face_oval"][0].shape == (36, 2)
    pad = 0.25 * (x1 - x0)
    assert (pl.mesh[:, 0] > x0 - pad).all() and (pl.mesh[:, 0] < x1 + pad).all()
    np.testing.assert_allclose(face.detection.landmarks5[0], pl.iris[0, 0], atol=1e-3)
    c = face.coefficients
    lay = pipelines[0].layout
    assert (len(c.identity), len(c.expression), len(c.albedo), len(c.lighting)) == (
        lay.num_identity, lay.num_expression, lay.num_albedo, 27)
    # pose: R = Rz(roll) Ry(yaw) Rx(pitch) from the angles, orthonormal, p_world = R p + t
    import torch

    r = euler_to_matrix(torch.from_numpy(face.pose.angles[None]))[0].numpy()
    np.testing.assert_allclose(face.pose.rotation, r, atol=1e-5)
    np.testing.assert_allclose(face.pose.angles, c.angles, atol=1e-6)
    np.testing.assert_allclose(face.pose.translation, c.translation, atol=1e-6)
    dist = client.model_info().camera["camera_distance"]
    world = face.vertices @ face.pose.rotation.T + face.pose.translation
    np.testing.assert_allclose(face.vertices_camera, world - [0, 0, dist], atol=1e-4)
    assert (face.vertices_camera[:, 2] < 0).all()  # in front of the camera looking down -Z
    # the same photo again gives the same face (the worker pool keeps no state between calls)
    again = client.reconstruct(data).faces[0]
    np.testing.assert_allclose(again.vertices, face.vertices, atol=1e-6)
    assert again.texture_png is None and again.vertex_colors is None


def test_all_faces_and_omit_topology(client, group_photo):
    one = client.reconstruct(group_photo)
    every = client.reconstruct(group_photo, ReconstructOptions(all_faces=True,
                                                               omit_topology=True))
    assert len(one.faces) == 1 and len(every.faces) == 2
    assert [f.face_index for f in every.faces] == [0, 1]
    areas = [(f.detection.box[2] - f.detection.box[0]) * (f.detection.box[3] - f.detection.box[1])
             for f in every.faces]
    assert areas[0] >= areas[1]  # largest first
    assert every.faces[0].triangles is None and every.faces[0].uvs is None
    assert every.faces[0].vertices.shape == one.faces[0].vertices.shape


def test_batch_streams_items_in_order_with_their_own_status(client, photos, no_face_photo):
    batch = [("a", photos["000006"]), ("junk", b"GIF89a not a face"), ("b", photos["000007"]),
             ("grass", no_face_photo), ("c", photos["000031"])]
    items = list(client.reconstruct_batch(batch, ReconstructOptions(vertex_colors=True)))
    assert [i.index for i in items] == [0, 1, 2, 3, 4]
    assert [i.id for i in items] == ["a", "junk", "b", "grass", "c"]
    assert [i.code for i in items] == ["OK", "INVALID_ARGUMENT", "OK", "FAILED_PRECONDITION",
                                       "OK"]
    assert "GIF" in items[1].message and "no face" in items[3].message
    assert items[1].result is None
    single = client.reconstruct(photos["000007"]).faces[0]
    np.testing.assert_allclose(items[2].result.faces[0].vertices, single.vertices, atol=1e-5)
    assert items[2].result.faces[0].vertex_colors is not None
    with grpc.insecure_channel(client._cfg.target) as ch:  # status is set even when OK
        (raw,) = pb_grpc.FaceCraftStub(ch).ReconstructBatch(pb.ReconstructBatchRequest(
            photos=[pb.Photo(data=photos["000006"])]), timeout=30)
        assert raw.HasField("status") and raw.status.code == 0 and raw.HasField("result")
    # early exit from the iterator cancels the stream; the server keeps serving
    it = client.reconstruct_batch([photos["000006"]] * 6)
    assert next(it).ok
    it.close()
    assert client.health() == "SERVING"


def test_async_client_calls_every_method(server, photos):
    async def main():
        async with AsyncFaceCraftClient(server[1], timeout_s=30, retry=NO_RETRY) as c:
            assert await c.health() == "SERVING"
            info = await c.model_info()
            rec = await c.reconstruct(photos["000033"], ReconstructOptions(texture=True,
                                                                           texture_size=256))
            items = [i async for i in c.reconstruct_batch([photos["000037"], b"xx"])]
            with pytest.raises(FaceCraftRpcError) as e:
                await c.reconstruct(b"\xff\xd8\xff truncated")
            many = await asyncio.gather(*(c.reconstruct(photos[n], request_id=f"async-{n}")
                                          for n in ("000050", "000055", "000114")))
            return info, rec, items, e.value, many

    info, rec, items, err, many = asyncio.run(main())
    assert rec.faces[0].vertices.shape == (info.face_model["num_vertices"], 3)
    assert rec.faces[0].texture().shape == (256, 256, 3)
    assert [i.code for i in items] == ["OK", "INVALID_ARGUMENT"]
    assert err.code == "INVALID_ARGUMENT" and err.request_id
    assert [m.request_id for m in many] == ["async-000050", "async-000055", "async-000114"]


def test_health_and_reflection(server):
    with grpc.insecure_channel(server[1]) as ch:
        hs = health_pb2_grpc.HealthStub(ch)
        for name in ("", SERVICE_NAME):
            resp = hs.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        db = ProtoReflectionDescriptorDatabase(ch)
        services = set(db.get_services())
        assert {SERVICE_NAME, "grpc.health.v1.Health"} <= services
        fd = db.FindFileContainingSymbol(SERVICE_NAME)
        assert fd.name == "facecraft/v1/facecraft.proto"
        (svc,) = [s for s in fd.service if s.name == "FaceCraft"]
        assert {m.name for m in svc.method} >= {"Reconstruct", "ReconstructBatch",
                                                "GetModelInfo"}


# --------------------------------------------------------------------------- bad input
def _png_header(w: int, h: int) -> bytes:
    """A PNG whose IHDR claims w x h (a decompression bomb's header), with a tiny IDAT."""
    def chunk(t: bytes, p: bytes) -> bytes:
        return struct.pack(">I", len(p)) + t + p + struct.pack(">I", zlib.crc32(t + p))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_bad_requests_get_the_right_status_and_the_server_keeps_serving(client, server, photos,
                                                                          no_face_photo):
    jpeg = photos["000002"]
    cases = {
        "not an image": (b"hello, this is text", {}, "INVALID_ARGUMENT", "text"),
        "empty": (b"", {}, "INVALID_ARGUMENT", "empty"),
        "truncated jpeg": (jpeg[:len(jpeg) // 2], {}, "INVALID_ARGUMENT", "truncated"),
        "gif": (b"GIF89a" + b"\0" * 100, {}, "INVALID_ARGUMENT", "GIF"),
        "tiny": (png_bytes(np.zeros((8, 8, 3), np.uint8)), {}, "INVALID_ARGUMENT", "16"),
        "huge dims": (_png_header(40000, 40000), {}, "RESOURCE_EXHAUSTED", "max_pixels"),
        "no face": (no_face_photo, {}, "FAILED_PRECONDITION", "no face"),
        "texture too small": (jpeg, {"texture": True, "texture_size": 100},
                              "INVALID_ARGUMENT", "texture_size"),
        "texture too big": (jpeg, {"texture": True, "texture_size": 1 << 20},
                            "INVALID_ARGUMENT", "texture_size"),
        "size without texture": (jpeg, {"texture_size": 512}, "INVALID_ARGUMENT", "texture"),
        "unknown enum": (jpeg, {"faces": 7}, "INVALID_ARGUMENT", "FaceSelection"),
    }
    with grpc.insecure_channel(server[1]) as ch:
        stub = pb_grpc.FaceCraftStub(ch)
        raw = ch.unary_unary(f"/{SERVICE_NAME}/Reconstruct")  # bytes in, bytes out
        for name, (data, opts, want, words) in cases.items():
            with pytest.raises(grpc.RpcError) as e:
                stub.Reconstruct(pb.ReconstructRequest(photo=data,
                                                       options=pb.ReconstructOptions(**opts)),
                                 timeout=30)
            assert e.value.code().name == want, (name, e.value.details())
            assert words in e.value.details(), (name, e.value.details())
            assert dict(e.value.trailing_metadata()).get("x-request-id"), name
        with pytest.raises(grpc.RpcError) as e:
            raw(b"\x0a\xff\xff\xff\xff\x0f", timeout=10)  # a length beyond the message
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not a valid facecraft.v1.ReconstructRequest" in e.value.details()
        with pytest.raises(grpc.RpcError) as e:
            list(stub.ReconstructBatch(pb.ReconstructBatchRequest(), timeout=10))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as e:
            list(stub.ReconstructBatch(pb.ReconstructBatchRequest(
                photos=[pb.Photo(data=jpeg)] * 9), timeout=10))
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_batch" in e.value.details()
    assert client.reconstruct(jpeg).faces


def test_odd_photo_formats_and_exif_rotation(client, photos):
    from ..photo.test_image_io import _adobe_cmyk, _exif, _four_component_jpeg, _with_app1

    rgb = decode_rgb(photos["000002"])
    h, w = rgb.shape[:2]
    upright = client.reconstruct(photos["000002"]).faces[0]
    rot = np.ascontiguousarray(np.rot90(rgb, 1))  # stored turned; orientation 6 turns it back
    stored = _with_app1(__import__("cv2").imencode(".jpg", rot[..., ::-1])[1].tobytes(), _exif(6))
    gray = (rgb.astype(np.float32) @ [0.299, 0.587, 0.114]).astype(np.uint8)
    rgba = np.concatenate([rgb, np.full((h, w, 1), 255, np.uint8)], 2)
    rgba[:8, :8, 3] = 0
    variants = {
        "exif6": (stored, {"exif_orientation": 6}),
        "gray": (png_bytes(gray), {"format": "png"}),
        "16bit": (png_bytes(rgb.astype(np.uint16) * 257), {"bit_depth": 16}),
        "alpha": (png_bytes(rgba), {"had_alpha": True}),
        "cmyk": (_four_component_jpeg(_adobe_cmyk(rgb), 0), {"format": "jpeg"}),
    }
    for name, (data, expect) in variants.items():
        rec = client.reconstruct(data)
        assert (rec.photo.width, rec.photo.height) == (w, h), name
        for k, v in expect.items():
            assert getattr(rec.photo, k) == v, (name, k)
        face = rec.faces[0]
        # the face is found where the upright photo has it (EXIF rotation applied)
        assert np.abs(face.detection.box - upright.detection.box).max() < 8, name


def test_fuzz_hostile_requests_then_a_good_one(server, photos):
    rng = random.Random(8)
    jpeg, other = photos["000002"], photos["000006"]
    png = png_bytes(decode_rgb(other))
    payloads: list[tuple[bytes, dict, set[str]]] = []
    for _ in range(80):
        payloads.append((rng.randbytes(rng.randrange(0, 3000)), {}, {"INVALID_ARGUMENT"}))
    for src in (jpeg, png):
        for _ in range(50):
            payloads.append((src[:rng.randrange(0, len(src) - 4)], {}, {"INVALID_ARGUMENT"}))
    for _ in range(50):
        b = bytearray(jpeg)
        for _ in range(rng.randrange(1, 30)):
            b[rng.randrange(200, len(b) - 2)] = rng.randrange(256)
        payloads.append((bytes(b), {}, OK_OR_CLIENT_FAULT))
    for head in (b"GIF87a", b"<html><body>", b"%PDF-1.4", b"RIFF\x10\0\0\0WEBPVP8 ", b"BM",
                 b"II*\0", b"MM\0*", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"\0\0\0\x0cjP"):
        payloads.append((head + rng.randbytes(rng.randrange(0, 200)), {}, {"INVALID_ARGUMENT"}))
    for w, h in ((100000, 100000), (65535, 65535), (20000, 2001), (1, 10 ** 9), (10 ** 9, 1)):
        payloads.append((_png_header(w, h), {}, {"RESOURCE_EXHAUSTED", "INVALID_ARGUMENT"}))
    for _ in range(20):
        opts = rng.choice([{"faces": rng.randrange(3, 1 << 20)},
                           {"texture": True, "texture_size": rng.choice([1, 255, 2049, 10 ** 6])},
                           {"texture_size": rng.randrange(1, 4096)}])
        payloads.append((jpeg, opts, {"INVALID_ARGUMENT"}))
    rng.shuffle(payloads)
    bad_codes = []
    with grpc.insecure_channel(server[1]) as ch:
        stub = pb_grpc.FaceCraftStub(ch)
        raw = ch.unary_unary(f"/{SERVICE_NAME}/Reconstruct")
        raw_batch = ch.unary_stream(f"/{SERVICE_NAME}/ReconstructBatch")
        for data, opts, allowed in payloads:
            req = pb.ReconstructRequest(photo=data, options=pb.ReconstructOptions(**opts))
            try:
                stub.Reconstruct(req, timeout=30)
                code = "OK"
            except grpc.RpcError as e:
                code = e.code().name
            if code not in allowed:
                bad_codes.append((code, len(data), opts))
        for _ in range(30):  # not protobuf at all (or protobuf of the wrong shape)
            for call in (raw, lambda b, **kw: list(raw_batch(b, **kw))):
                try:
                    call(rng.randbytes(rng.randrange(1, 200)), timeout=10)
                    code = "OK"
                except grpc.RpcError as e:
                    code = e.code().name
                if code not in ("INVALID_ARGUMENT", "OK"):
                    bad_codes.append((code, "raw", None))
        items = list(stub.ReconstructBatch(pb.ReconstructBatchRequest(photos=[
            pb.Photo(data=p[0][:3000], id=str(i)) for i, p in enumerate(payloads[:8])]),
            timeout=60))
        assert [int(i.id) for i in items] == list(range(8))
    assert not bad_codes, bad_codes[:10]
    assert len(payloads) + 60 >= 300
    with FaceCraftClient(server[1], retry=NO_RETRY) as c:
        assert c.reconstruct(jpeg).faces[0].detection.score > 0.5
    srv = server[0]
    assert srv.metrics.requests("Reconstruct", "INTERNAL") == 0


def test_concurrent_clients_get_their_own_results(server, photos):
    names = list(photos)
    with FaceCraftClient(server[1], retry=NO_RETRY) as c:
        ref = {n: c.reconstruct(photos[n]).faces[0] for n in names}
    errors: list[str] = []

    def worker(t: int) -> None:
        with FaceCraftClient(server[1], timeout_s=120, retry=NO_RETRY) as c:
            for k in range(3):
                name = names[(t + 5 * k) % len(names)]
                rid = f"t{t}-{k}-{name}"
                try:
                    rec = c.reconstruct(photos[name], request_id=rid, source=name)
                except FaceCraftError as e:
                    errors.append(f"{rid}: {e}")
                    continue
                face = rec.faces[0]
                if rec.request_id != rid or rec.photo.source != name:
                    errors.append(f"{rid}: got the answer of {rec.request_id} / "
                                  f"{rec.photo.source}")
                elif not np.allclose(face.coefficients.identity, ref[name].coefficients.identity,
                                     atol=1e-5) or not np.allclose(face.vertices,
                                                                   ref[name].vertices, atol=1e-5):
                    errors.append(f"{rid}: coefficients of another photo")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[:5]


def test_metrics_endpoint_speaks_prometheus(server, client, photos):
    client.reconstruct(photos["000002"])
    srv = server[0]
    text = urllib.request.urlopen(f"http://127.0.0.1:{srv.metrics_port}/metrics",
                                  timeout=10).read().decode()
    assert "# TYPE facecraft_rpc_requests_total counter" in text
    ok = [ln for ln in text.splitlines()
          if ln.startswith('facecraft_rpc_requests_total{method="Reconstruct",code="OK"}')]
    assert ok and int(ok[0].split()[-1]) >= 1
    assert 'facecraft_rpc_latency_seconds_bucket{method="Reconstruct",le="+Inf"}' in text
    assert "process_resident_memory_bytes " in text and "facecraft_workers 2" in text
    for line in text.splitlines():  # every sample line is "name{labels} number"
        if line and not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(f"http://127.0.0.1:{srv.metrics_port}/other", timeout=10)


# --------------------------------------------------------------------------- security, limits
def test_bearer_token(pipelines, photos):
    with running_server(pipelines, token="s3cret-token") as (srv, target):
        with FaceCraftClient(target, retry=NO_RETRY) as anon, \
                FaceCraftClient(target, token="wrong", retry=NO_RETRY) as wrong, \
                FaceCraftClient(target, token="s3cret-token", retry=NO_RETRY) as good:
            assert _code(anon.model_info) == "UNAUTHENTICATED"
            assert _code(anon.reconstruct, photos["000002"]) == "UNAUTHENTICATED"
            assert _code(lambda: list(anon.reconstruct_batch([photos["000002"]]))) == \
                "UNAUTHENTICATED"
            assert _code(wrong.model_info) == "UNAUTHENTICATED"
            assert anon.health() == "SERVING"  # load balancers probe without a token
            assert good.reconstruct(photos["000002"]).faces
            with grpc.insecure_channel(target) as ch:  # reflection needs the token too
                with pytest.raises(grpc.RpcError) as e:
                    ProtoReflectionDescriptorDatabase(ch).get_services()
                assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert srv.metrics.unauthenticated >= 4


def test_message_size_limits(pipelines, photos):
    with running_server(pipelines, max_message_bytes=512 * 1024) as (srv, target):
        with FaceCraftClient(target, retry=NO_RETRY) as c:
            big = photos["000002"] + b"\0" * (600 * 1024)  # a JPEG with trailing junk
            with pytest.raises(FaceCraftRpcError) as e:
                c.reconstruct(big)
            assert e.value.code == "RESOURCE_EXHAUSTED"
            with pytest.raises(FaceCraftRpcError) as e:  # the answer would be too large
                c.reconstruct(photos["000002"], ReconstructOptions(texture=True,
                                                                   texture_size=512))
            assert e.value.code == "RESOURCE_EXHAUSTED" and "message limit" in e.value.details
            slim = c.reconstruct(photos["000002"], ReconstructOptions(omit_topology=True))
            assert slim.faces[0].triangles is None
            info = c.model_info()
            assert info.limits["max_message_bytes"] == 512 * 1024


class _GatedCraft:
    """A pipeline whose reconstructions wait for a gate (to hold a call in flight)."""

    def __init__(self, craft) -> None:
        self._craft = craft
        self.entered = threading.Event()
        self.gate = threading.Event()

    def __getattr__(self, name):
        return getattr(self._craft, name)

    def reconstruct(self, *args, **kw):
        self.entered.set()
        self.gate.wait(30)
        return self._craft.reconstruct(*args, **kw)


def _in_thread(fn, *args, **kw):
    out: dict = {}

    def run():
        try:
            out["value"] = fn(*args, **kw)
        except Exception as e:  # noqa: BLE001 - handed to the test
            out["error"] = e

    t = threading.Thread(target=run)
    t.start()
    return t, out


def _wait_until(cond, timeout_s: float = 10.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def test_deadlines_and_a_busy_pool(pipelines, photos):
    gated = _GatedCraft(pipelines[0])
    with running_server([gated], queue_timeout_s=0.5) as (srv, target):
        with FaceCraftClient(target, retry=NO_RETRY, timeout_s=30) as c:
            hold, out = _in_thread(c.reconstruct, photos["000002"])
            assert gated.entered.wait(10)
            # the only worker is busy: a short deadline expires while waiting for it ...
            assert _code(c.reconstruct, photos["000006"], timeout_s=0.2) == "DEADLINE_EXCEEDED"
            # ... and without one the wait is bounded by queue_timeout_s
            assert _code(c.reconstruct, photos["000006"]) == "RESOURCE_EXHAUSTED"
            assert c.model_info().limits["workers"] == 1  # cheap calls still answered
            gated.gate.set()
            hold.join(30)
            assert out["value"].faces
            # a call whose deadline passes during the work: the server notices and says so
            gated.gate.clear()
            gated.entered.clear()
            assert _code(c.reconstruct, photos["000002"], timeout_s=0.3) == "DEADLINE_EXCEEDED"
            gated.gate.set()
            assert _wait_until(lambda: srv.metrics.requests("Reconstruct",
                                                            "DEADLINE_EXCEEDED") >= 2)
            assert c.reconstruct(photos["000007"]).faces


def test_graceful_shutdown_finishes_the_call_in_flight(pipelines, photos):
    gated = _GatedCraft(pipelines[0])
    with running_server([gated], grace_s=20) as (srv, target):
        c = FaceCraftClient(target, retry=NO_RETRY, timeout_s=30)
        hold, out = _in_thread(c.reconstruct, photos["000002"], request_id="in-flight")
        assert gated.entered.wait(10)
        stopper, _ = _in_thread(srv.stop)
        assert _wait_until(lambda: _code(c.health) != "OK", 10)  # NOT_SERVING, then refused
        with FaceCraftClient(target, retry=NO_RETRY, timeout_s=5) as late:
            assert _code(late.model_info) == "UNAVAILABLE"
        assert hold.is_alive()
        gated.gate.set()
        hold.join(30)
        stopper.join(30)
        assert not stopper.is_alive()
        assert out.get("value") is not None, out.get("error")
        assert out["value"].request_id == "in-flight"
        c.close()


def _openssl(*args: str, cwd) -> None:
    import subprocess

    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    import shutil

    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed (needed to make test certificates)")
    d = tmp_path_factory.mktemp("certs")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=facecraft-test-ca", cwd=d)
    for name, ext in (("server", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
                      ("client", "extendedKeyUsage=clientAuth")):
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj",
                 f"/CN={name}", cwd=d)
        (d / f"{name}.ext").write_text(ext + "\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile",
                 f"{name}.ext", cwd=d)
    return d


def test_tls_and_mutual_tls(pipelines, certs):
    with running_server(pipelines, tls_cert=certs / "server.pem", tls_key=certs / "server.key"
                        ) as (srv, target):
        with FaceCraftClient(target, root_certificates=certs / "ca.pem", retry=NO_RETRY) as c:
            assert c.health() == "SERVING" and c.model_info().face_model["num_vertices"]
        with FaceCraftClient(target, retry=NO_RETRY, timeout_s=5) as plain:
            assert _code(plain.model_info) == "UNAVAILABLE"  # plaintext to a TLS port
    with running_server(pipelines, tls_cert=certs / "server.pem", tls_key=certs / "server.key",
                        tls_client_ca=certs / "ca.pem") as (srv, target):
        with FaceCraftClient(target, root_certificates=certs / "ca.pem", retry=NO_RETRY,
                             timeout_s=5) as no_cert:
            assert _code(no_cert.model_info) == "UNAVAILABLE"
        with FaceCraftClient(target, root_certificates=certs / "ca.pem",
                             client_cert=certs / "client.pem", client_key=certs / "client.key",
                             retry=NO_RETRY) as c:
            assert c.health() == "SERVING" and c.model_info().limits["workers"] == 2


# --------------------------------------------------------------------------- small units
def test_status_table():
    grpc_code = grpc.StatusCode
    assert status_for(NoFaceError("no face"))[0] == grpc_code.FAILED_PRECONDITION
    assert status_for(ImageDecodeError("bad"))[0] == grpc_code.INVALID_ARGUMENT
    assert status_for(InvalidInputError("bad"))[0] == grpc_code.INVALID_ARGUMENT
    assert status_for(PhotoTooLargeError("big"))[0] == grpc_code.RESOURCE_EXHAUSTED
    assert status_for(ServerBusyError("busy"))[0] == grpc_code.RESOURCE_EXHAUSTED
    assert status_for(DeadlineError("late"))[0] == grpc_code.DEADLINE_EXCEEDED
    assert status_for(ModelFileError("broken"))[0] == grpc_code.INTERNAL
    code, msg = status_for(KeyError("/secret/path"), "rid-1")
    assert code == grpc_code.INTERNAL and "rid-1" in msg and "secret" not in msg


def test_settings_are_checked():
    for bad in ({"workers": 0}, {"port": 70000}, {"tls_cert": "x.pem"},
                {"tls_client_ca": "ca.pem"}, {"token": "has space"}, {"token": ""},
                {"default_texture_size": 100}, {"max_message_bytes": 10}):
        with pytest.raises(InvalidInputError):
            ServerSettings(**bad)
    assert "s3cret" not in repr(ServerSettings(token="s3cret"))
    assert ServerSettings().host == "127.0.0.1"  # loopback by default
