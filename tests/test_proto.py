"""The wire contract: the installed stubs are generated from the current proto/, the codegen
script reproduces them, and the proto documents its units and conventions."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from .conftest import REPO

PROTO = REPO / "proto" / "facecraft" / "v1" / "facecraft.proto"


def _codegen():
    spec = importlib.util.spec_from_file_location("_run_codegen", REPO / "proto" /
                                                  "run_codegen.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_installed_stubs_match_the_proto(tmp_path):
    pytest.importorskip("grpc_tools", reason="grpcio-tools comes with the dev extra")
    from facecraft.sdk._proto import facecraft_pb2

    fds = descriptor_pb2.FileDescriptorSet.FromString(
        _codegen().descriptor_set(tmp_path / "set.pb").read_bytes())
    (fresh,) = [f for f in fds.file if f.name == "facecraft/v1/facecraft.proto"]
    _drop_json_names(fresh.message_type)  # protoc records them; Python's gencode omits them
    installed = descriptor_pb2.FileDescriptorProto.FromString(
        facecraft_pb2.DESCRIPTOR.serialized_pb)
    assert installed == fresh, ("facecraft.sdk._proto is stale: proto/ changed since the set-up; "
                                "run `pip install -e .` or `python proto/run_codegen.py`")


def _drop_json_names(messages) -> None:
    for m in messages:
        for f in m.field:
            f.ClearField("json_name")
        _drop_json_names(m.nested_type)


def test_codegen_writes_an_importable_package(tmp_path):
    pytest.importorskip("grpc_tools", reason="grpcio-tools comes with the dev extra")
    files = _codegen().generate(tmp_path / "fcgen")
    names = sorted(f.name for f in files)
    assert names == ["__init__.py", "facecraft_pb2.py", "facecraft_pb2.pyi",
                     "facecraft_pb2_grpc.py"]
    grpc_src = (tmp_path / "fcgen" / "facecraft_pb2_grpc.py").read_text()
    assert "from . import facecraft_pb2" in grpc_src and "from facecraft.v1" not in grpc_src
    # a fresh interpreter (the descriptor pool is per process) imports the package
    code = ("import fcgen.facecraft_pb2_grpc as g, fcgen.facecraft_pb2 as p; "
            "print(p.DESCRIPTOR.services_by_name['FaceCraft'].full_name, "
            "hasattr(g, 'FaceCraftStub'))")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["facecraft.v1.FaceCraft", "True"]


def test_generated_stubs_are_not_committed():
    ignored = (REPO / ".gitignore").read_text()
    assert "/sdk/_proto/" in ignored


def test_proto_documents_units_and_conventions():
    text = PROTO.read_text()
    assert "package facecraft.v1;" in text
    for phrase in ("metres", "radians", "right-handed", "+Y up", "looks\n//              down +Z",
                   "counter-clockwise seen from\n//              outside", "BOTTOM-left",
                   "sRGB", "x to the right, y down", "R = Rz(roll) * Ry(yaw) * Rx(pitch)",
                   "RIG CALLS", "UNAUTHENTICATED", "FAILED_PRECONDITION",
                   "RESOURCE_EXHAUSTED", "x-request-id"):
        assert phrase in text, phrase
    # every message field carries a comment (on its line or just above it)
    lines = text.splitlines()
    for i, line in enumerate(lines):
        s = line.strip()
        if s.endswith(";") and "=" in s and not s.startswith(("//", "option", "syntax")) \
                and not s.split()[0].isupper():
            assert "//" in line or lines[i - 1].strip().startswith("//") or \
                lines[i - 1].strip().endswith(";") and "//" in lines[i - 1] or \
                _in_commented_block(lines, i), f"line {i + 1} has no comment: {s}"


def _in_commented_block(lines: list[str], i: int) -> bool:
    """A run of fields right under a comment (e.g. the box corners x0..y1)."""
    j = i - 1
    while j >= 0 and lines[j].strip().endswith(";") and "//" not in lines[j]:
        j -= 1
    return j >= 0 and lines[j].strip().startswith("//")


def test_codegen_reads_no_facecraft_module():
    src = (REPO / "proto" / "run_codegen.py").read_text()
    code = [ln for ln in src.splitlines() if ln.startswith(("import ", "from "))]
    assert not [ln for ln in code if "facecraft" in ln], code
    assert Path(REPO / "setup.py").read_text().count("run_codegen.py") >= 1
