# ruff: noqa: F811 - pytest fixtures imported from _grpc_fixtures
"""The gRPC rig calls (RegisterRig, ListRigs, FitRig) on a real server on loopback port 0,
through the real sync and asyncio clients: the starter rig exported as GLB + sidecar and
registered, listed, fitted from a photo and from an earlier Reconstruct, and bad input mapped to
INVALID_ARGUMENT / NOT_FOUND / ALREADY_EXISTS while the server keeps serving."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import grpc
import numpy as np
import pytest

from facecraft.sdk._proto import facecraft_pb2 as pb
from facecraft.sdk._proto import facecraft_pb2_grpc as pb_grpc
from facecraft.sdk.client import (
    AsyncFaceCraftClient,
    FaceCraftClient,
    FaceCraftRpcError,
    ReconstructOptions,
    RetryPolicy,
)
from facecraft.sdk.rigs.create import FaceRigger, RigCreateSettings
from facecraft.sdk.rigs.gltf import read_glb
from facecraft.sdk.rigs.rig import save_rig, starter_rig
from facecraft.sdk.serving.server import SERVICE_NAME

from .._grpc_fixtures import (  # noqa: F401 - fixtures
    no_face_photo,
    one_torch_thread,
    package_path,
    photos,
    pipelines,
    running_server,
)

NO_RETRY = RetryPolicy(max_attempts=1)
TEX = 256


@pytest.fixture(scope="module")
def rig():
    return starter_rig()


@pytest.fixture(scope="module")
def exported(rig, tmp_path_factory):
    """The starter rig written as a studio would ship one (``facecraft rigs export``), renamed
    ``studio``: ``(glb, sidecar)`` paths."""
    out = tmp_path_factory.mktemp("export") / "studio.glb"
    return save_rig(dataclasses.replace(rig, name="studio"), out, target_normals=False)


@pytest.fixture(scope="module")
def server(pipelines, tmp_path_factory):
    with running_server(pipelines, rigs_dir=tmp_path_factory.mktemp("rigs")) as (srv, target):
        yield srv, target


@pytest.fixture
def client(server):
    with FaceCraftClient(server[1], timeout_s=60, retry=NO_RETRY) as c:
        yield c


def _code(fn, *args, **kw) -> tuple[str, str]:
    try:
        fn(*args, **kw)
    except FaceCraftRpcError as e:
        return e.code, e.details
    return "OK", ""


def test_register_list_and_fit_from_a_photo(client, server, exported, rig, photos):
    assert "rig" in client.model_info().capabilities
    assert [(r.name, r.builtin) for r in client.list_rigs()] == [("starter", True)]
    glb, side = exported
    info = client.register_rig(glb)  # the sidecar next to it, its name "studio"
    assert info.name == "studio" and not info.builtin
    assert info.num_vertices == rig.num_vertices and info.content_sha256 == rig.content_hash
    assert info.num_identity_sliders == len(rig.identity_sliders) and info.has_uvs
    assert [s.name for s in info.sliders] == [s.name for s in rig.spec.sliders]
    assert {s.kind for s in info.sliders} == {"identity", "expression"}
    assert (server[0].rigs.folder / "studio.glb").is_file()
    listed = client.list_rigs(include_sliders=True)
    assert [r.name for r in listed] == ["starter", "studio"] and listed[1].sliders
    assert not client.list_rigs()[1].sliders

    fitted = client.fit_rig("studio", photo=photos["000002"], texture_size=TEX,
                            include_glb=True, source="me.jpg")
    assert fitted.rig == "studio" and fitted.request_id
    assert [s.name for s in fitted.identity] == [s.name for s in rig.identity_sliders]
    assert [s.name for s in fitted.expression] == [s.name for s in rig.expression_sliders]
    for s in (*fitted.identity, *fitted.expression):
        assert s.min - 1e-6 <= s.value <= s.max + 1e-6, s
        assert s.normalized == pytest.approx((s.value - s.min) / (s.max - s.min), abs=1e-5)
    assert 0 <= fitted.residual_mean_mm < 0.5 and fitted.residual_p95_mm >= 0
    assert fitted.expression_method == "names"
    assert fitted.texture().shape == (TEX, TEX, 3)
    m = fitted.materials
    assert m.source == "texture" and m.skin_hex.startswith("#") and m.skin_type in range(1, 7)
    assert fitted.photo.source == "me.jpg" and max(fitted.photo.width, fitted.photo.height) == 160
    assert fitted.detection.score > 0.5
    # the GLB carries the fitted values as morph weights, and the texture
    mesh = read_glb(fitted.glb)
    assert mesh.target_names == rig.target_names and mesh.texture_png == fitted.texture_png
    for name, value in fitted.values.items():
        w = mesh.weights[rig.target_index(rig.slider(name).target)]
        assert w == pytest.approx(value, abs=1e-5), name
    doc = fitted.to_json()
    assert doc["format"] == "facecraft.rig_sliders" and doc["rig"] == "studio"
    assert set(doc["identity"]) == set(fitted.values) - set(doc["expression"])
    assert json.loads(json.dumps(doc)) == doc


def test_fit_from_an_earlier_reconstruction(client, server, pipelines, photos):
    rec = client.reconstruct(photos["000006"], ReconstructOptions(vertex_colors=True))
    face = rec.faces[0]
    from_face = client.fit_rig("starter", face=face, texture_size=TEX)
    from_photo = client.fit_rig("starter", photo=photos["000006"], texture_size=TEX)
    assert from_face.photo is None and from_face.detection is None
    for a, b in zip(from_face.identity, from_photo.identity, strict=True):
        assert a.name == b.name and a.value == pytest.approx(b.value, abs=1e-4)
    assert from_face.values.keys() == from_photo.values.keys()
    np.testing.assert_allclose(
        [v for k, v in from_face.values.items() if k in {s.name for s in from_face.expression}],
        [s.value for s in from_photo.expression], atol=1e-5)
    assert from_face.materials is not None and from_face.texture() is not None
    # the server's answer is the library's
    rigger = FaceRigger(pipelines[0].face_model, starter_rig(),
                        settings=RigCreateSettings(texture_size=TEX))
    local = rigger.fit(face.neutral_vertices, vertex_colors=face.vertex_colors,
                       expression=face.coefficients.expression)
    for s in from_face.identity:
        assert s.value == pytest.approx(local.fit.values[s.name], abs=1e-5)
    assert from_face.materials.skin_hex == local.materials.skin_hex
    # without colours: sliders only; without a texture: no PNG
    shape_only = dataclasses.replace(face, vertex_colors=None)
    bare = client.fit_rig("starter", face=shape_only)
    assert bare.texture_png is None and bare.materials is None and bare.glb is None
    assert client.fit_rig("starter", face=face, texture=False).texture_png is None


def test_async_client_rig_calls(server, exported, photos):
    async def run():
        async with AsyncFaceCraftClient(server[1], timeout_s=60, retry=NO_RETRY) as c:
            info = await c.register_rig(exported[0].read_bytes(),
                                        exported[1].read_text(), name="studio-async")
            names = [r.name for r in await c.list_rigs()]
            fitted = await c.fit_rig("studio-async", photo=photos["000007"], texture=False)
            try:
                await c.fit_rig("nope", photo=photos["000007"])
                code = "OK"
            except FaceCraftRpcError as e:
                code = e.code
            return info, names, fitted, code

    info, names, fitted, code = asyncio.run(run())
    assert info.name == "studio-async" and "studio-async" in names and names[0] == "starter"
    assert fitted.rig == "studio-async" and fitted.texture_png is None and fitted.identity
    assert code == "NOT_FOUND"


def test_bad_rigs_and_requests_get_the_right_status_and_the_server_keeps_serving(
        client, server, exported, photos, no_face_photo):
    glb, side = exported
    good_glb, good_side = glb.read_bytes(), side.read_text()
    bad_side = json.loads(good_side)
    bad_side["sliders"][0]["target"] = "no_such_target"
    jpeg = photos["000002"]
    cases = {
        "junk glb": (client.register_rig, (b"not a glb at all", good_side), {"name": "x1"},
                     "INVALID_ARGUMENT", "glTF"),
        "truncated glb": (client.register_rig, (good_glb[:5000], good_side), {"name": "x2"},
                          "INVALID_ARGUMENT", "glb"),
        "sidecar not json": (client.register_rig, (good_glb, "{not json"), {"name": "x3"},
                             "INVALID_ARGUMENT", "JSON"),
        "sidecar mismatch": (client.register_rig, (good_glb, json.dumps(bad_side)),
                             {"name": "x4"}, "INVALID_ARGUMENT", "no_such_target"),
        "empty glb": (client.register_rig, (b"", good_side), {}, "INVALID_ARGUMENT", "empty"),
        "reserved name": (client.register_rig, (good_glb, good_side), {"name": "starter"},
                          "INVALID_ARGUMENT", "starter"),
        "bad name": (client.register_rig, (good_glb, good_side), {"name": "../etc"},
                     "INVALID_ARGUMENT", "name"),
        "unknown rig": (client.fit_rig, ("no-such-rig",), {"photo": jpeg}, "NOT_FOUND",
                        "no-such-rig"),
        "no face": (client.fit_rig, ("starter",), {"photo": no_face_photo},
                    "FAILED_PRECONDITION", "no face"),
        "not a photo": (client.fit_rig, ("starter",), {"photo": b"hello"}, "INVALID_ARGUMENT",
                        "text"),
        "texture size": (client.fit_rig, ("starter",), {"photo": jpeg, "texture_size": 100},
                         "INVALID_ARGUMENT", "texture_size"),
    }
    for name, (fn, args, kw, want, words) in cases.items():
        code, details = _code(fn, *args, **kw)
        assert code == want, (name, details)
        assert words in details, (name, details)
    assert client.register_rig(good_glb, good_side, name="twice").name == "twice"
    code, details = _code(client.register_rig, good_glb, good_side, name="twice")
    assert code == "ALREADY_EXISTS" and "overwrite" in details
    assert client.register_rig(good_glb, good_side, name="twice", overwrite=True).name == "twice"

    v = server[0].rigs.model.num_vertices
    with grpc.insecure_channel(server[1]) as ch:
        stub = pb_grpc.FaceCraftStub(ch)
        shape = pb.FaceShape(neutral_vertices=[0.0] * (3 * v))
        raw_cases = {
            "no face": (pb.FitRigRequest(rig="starter"), "send photo"),
            "no rig": (pb.FitRigRequest(photo=jpeg), "rig is empty"),
            "short shape": (pb.FitRigRequest(rig="starter", reconstruction=pb.FaceShape(
                neutral_vertices=[0.0] * 9)), "neutral_vertices"),
            "short colours": (pb.FitRigRequest(rig="starter", reconstruction=pb.FaceShape(
                neutral_vertices=shape.neutral_vertices, vertex_colors=[0.5] * 6)),
                "vertex_colors"),
            "nan shape": (pb.FitRigRequest(rig="starter", reconstruction=pb.FaceShape(
                neutral_vertices=[float("nan")] * (3 * v))), "finite"),
            "size and omit": (pb.FitRigRequest(rig="starter", photo=jpeg, omit_texture=True,
                                               texture_size=512), "omit_texture"),
        }
        for name, (req, words) in raw_cases.items():
            with pytest.raises(grpc.RpcError) as e:
                stub.FitRig(req, timeout=30)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, e.value.details())
            assert words in e.value.details(), (name, e.value.details())
        for method in ("RegisterRig", "ListRigs", "FitRig"):
            with pytest.raises(grpc.RpcError) as e:
                ch.unary_unary(f"/{SERVICE_NAME}/{method}")(b"\x0a\xff\xff\xff\xff\x0f",
                                                            timeout=10)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method
    # nothing half-registered, and the server still serves every call
    assert [r.name for r in client.list_rigs()][:1] == ["starter"]
    assert not [p for p in server[0].rigs.folder.iterdir() if p.name.startswith("x")]
    assert client.fit_rig("starter", photo=jpeg, texture=False).identity
    assert client.reconstruct(jpeg).faces
    for method in ("RegisterRig", "ListRigs", "FitRig"):
        assert server[0].metrics.requests(method, "INTERNAL") == 0, method


def test_rigs_dir_is_shared_and_the_default_is_private(pipelines, exported, photos, tmp_path):
    folder = tmp_path / "registry"
    with running_server(pipelines, rigs_dir=folder) as (_, target):
        with FaceCraftClient(target, retry=NO_RETRY) as c:
            c.register_rig(exported[0])
    assert sorted(p.name for p in folder.iterdir()) == ["studio.glb", "studio.rig.json"]
    with running_server(pipelines, rigs_dir=folder) as (_, target):  # a restart keeps it
        with FaceCraftClient(target, retry=NO_RETRY) as c:
            assert [r.name for r in c.list_rigs()] == ["starter", "studio"]
    with running_server(pipelines) as (srv, target):  # no rigs_dir: the server's own folder
        own = srv.rigs.folder
        with FaceCraftClient(target, retry=NO_RETRY) as c:
            c.register_rig(exported[0])
            assert [r.name for r in c.list_rigs()] == ["starter", "studio"]
        assert (own / "studio.glb").is_file()
    assert not own.exists()


def test_response_limit_and_the_serve_flag(pipelines, photos, tmp_path):
    from pathlib import Path

    from facecraft.sdk.cli import build_parser

    with running_server(pipelines, max_message_bytes=256 * 1024) as (_, target):
        with FaceCraftClient(target, retry=NO_RETRY) as c:
            code, details = _code(c.fit_rig, "starter", photo=photos["000002"],
                                  include_glb=True, texture=False)
            assert code == "RESOURCE_EXHAUSTED" and "include_glb" in details
            assert c.fit_rig("starter", photo=photos["000002"], texture=False).identity
    args = build_parser().parse_args(["serve", "--rigs-dir", str(tmp_path)])
    assert args.rigs_dir == Path(tmp_path)
