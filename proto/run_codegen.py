"""Generate FaceCraft's Python gRPC stubs from ``proto/`` (the single codegen script).

The set-up runs this (``setup.py``'s ``build_py`` step, for ``pip install .`` and
``pip install -e .`` alike), so the stubs are never committed and never edited by hand. Run it
yourself after changing a ``.proto`` file in a working tree::

    python proto/run_codegen.py            # writes sdk/_proto/ (facecraft.sdk._proto)

What it does: ``grpc_tools.protoc`` compiles every ``proto/facecraft/v1/*.proto`` with the
message (``*_pb2.py``), type-stub (``*_pb2.pyi``) and service (``*_pb2_grpc.py``) generators into
a temporary folder. protoc names imports after the proto package (``from facecraft.v1 import
facecraft_pb2``); the files are placed flat in one Python package, ``facecraft.sdk._proto``, and
those imports become relative (``from . import facecraft_pb2``), which is the only change made to
protoc's output. The descriptors keep their proto file names (``facecraft/v1/facecraft.proto``),
which is what server reflection and other languages see.

This file imports nothing from FaceCraft: it runs in the isolated build environment, where only
setuptools and grpcio-tools are installed.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

__all__ = ["PROTO_ROOT", "PROTO_PACKAGE_DIR", "DEFAULT_OUT", "proto_files", "generate",
           "descriptor_set"]

#: The folder protoc's import paths are relative to.
PROTO_ROOT = Path(__file__).resolve().parent
#: The proto package's folder (``package facecraft.v1``).
PROTO_PACKAGE_DIR = PROTO_ROOT / "facecraft" / "v1"
#: Where the stubs go in a working tree: ``sdk/_proto`` is ``facecraft.sdk._proto``.
DEFAULT_OUT = PROTO_ROOT.parent / "sdk" / "_proto"

_IMPORT = re.compile(r"^from facecraft\.v1 import (\w+_pb2)\b", re.MULTILINE)
_INIT = '''"""FaceCraft's gRPC stubs, generated from proto/facecraft/v1 by proto/run_codegen.py.

Generated at set-up; DO NOT EDIT. Import the client and server from facecraft.sdk.client and
facecraft.sdk.serving.server instead.
"""
'''


def proto_files(root: Path = PROTO_ROOT) -> list[str]:
    """The ``.proto`` files to compile, relative to ``root`` (posix paths, sorted)."""
    files = sorted((root / "facecraft" / "v1").glob("*.proto"))
    if not files:
        raise FileNotFoundError(f"no .proto files under {root / 'facecraft' / 'v1'}")
    return [f.relative_to(root).as_posix() for f in files]


def _protoc(args: list[str]) -> None:
    from grpc_tools import protoc  # deferred: only the set-up and this script need it

    include = Path(protoc.__file__).resolve().parent / "_proto"  # google/protobuf/*.proto
    argv = ["grpc_tools.protoc", f"-I{PROTO_ROOT}", f"-I{include}", *args]
    rc = protoc.main(argv)
    if rc != 0:
        raise RuntimeError(f"protoc failed (exit {rc}): {' '.join(argv)}")


def generate(out: str | Path = DEFAULT_OUT) -> list[Path]:
    """Compile the protos into the Python package folder ``out`` (created; stale stubs removed).

    Returns:
        The files written, sorted.
    """
    out = Path(out)
    protos = proto_files()
    with tempfile.TemporaryDirectory(prefix="facecraft-protoc-") as tmp:
        _protoc([f"--python_out={tmp}", f"--pyi_out={tmp}", f"--grpc_python_out={tmp}",
                 *protos])
        made = sorted((Path(tmp) / "facecraft" / "v1").glob("*_pb2*.py*"))
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("*_pb2*.py*"):
            old.unlink()
        written = []
        for src in made:
            dst = out / src.name
            dst.write_text(_IMPORT.sub(r"from . import \1", src.read_text(encoding="utf-8")),
                           encoding="utf-8")
            written.append(dst)
    init = out / "__init__.py"
    init.write_text(_INIT, encoding="utf-8")
    return sorted([*written, init])


def descriptor_set(path: str | Path) -> Path:
    """Write the protos' ``FileDescriptorSet`` (no source info) to ``path``; for the check
    that the installed stubs are current."""
    path = Path(path)
    _protoc([f"--descriptor_set_out={path}", *proto_files()])
    return path


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    for f in generate(target):
        print(f)
