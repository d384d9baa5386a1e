"""Mesh-graph build speed: time per hierarchy level and in total, icospheres and ICT-FaceKit.

Usage: ``python benchmarks/bench_mesh_graph.py [--subdivisions 4 5 6] [--repeat N]
[--factors 4 4 4 4] [--ict PATH_TO_generic_neutral_mesh.obj] [--no-ict]``

The icospheres are the test suite's (``tests/sdk/test_mesh_graph.py``). Without ``--ict`` the
ICT neutral mesh is extracted (that one member only) from
``../shared/assets/face-models/ict-facekit/FaceXModel.tar.xz`` into a temporary folder when
present. Level ``l``'s time is the cost of adding it: the best build time with the first ``l``
factors minus the best with ``l - 1`` (level 0 is the full mesh's Laplacian alone).
"""

from __future__ import annotations

import argparse
import importlib.util
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

from facecraft.sdk.models.mesh import read_obj
from facecraft.sdk.models.mesh_graph import build_mesh_graph

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO.parent / "shared" / "assets"
ICT_TARBALL = ASSETS / "face-models" / "ict-facekit" / "FaceXModel.tar.xz"
ICT_NEUTRAL = "FaceXModel/generic_neutral_mesh.obj"


def _test_fixtures():
    """The test module, for its synthetic meshes (benchmarks reuse the test fixtures)."""
    path = REPO / "tests" / "sdk" / "test_mesh_graph.py"
    spec = importlib.util.spec_from_file_location("_test_mesh_graph_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _best(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def measure(name: str, vertices: np.ndarray, triangles: np.ndarray, factors: tuple[int, ...],
            repeat: int) -> list[tuple[str, ...]]:
    """Rows ``(mesh, level, vertices, seconds)`` for every level, then the total."""
    rows = []
    cumulative = []
    graph = None
    for n in range(len(factors) + 1):
        seconds, graph = _best(lambda n=n: build_mesh_graph(vertices, triangles, factors[:n]),
                               repeat)
        cumulative.append(seconds)
    for lvl, size in enumerate(graph.sizes):
        step = cumulative[lvl] - (cumulative[lvl - 1] if lvl else 0.0)
        what = "full mesh (Laplacian)" if lvl == 0 else f"level {lvl} (/{factors[lvl - 1]})"
        rows.append((name, what, str(size), f"{max(step, 0.0) * 1e3:9.1f} ms"))
    rows.append((name, "total", "", f"{cumulative[-1] * 1e3:9.1f} ms"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subdivisions", type=int, nargs="+", default=[4, 5, 6],
                    help="icosphere subdivisions (6 gives 40,962 vertices)")
    ap.add_argument("--factors", type=int, nargs="+", default=[4, 4, 4, 4])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--ict", type=Path, help="an ICT-FaceKit generic_neutral_mesh.obj")
    ap.add_argument("--no-ict", action="store_true", help="skip the ICT mesh")
    args = ap.parse_args()
    factors = tuple(args.factors)

    fixtures = _test_fixtures()
    rows: list[tuple[str, ...]] = []
    for s in args.subdivisions:
        v, f = fixtures.icosphere(s)
        try:
            rows += measure(f"icosphere({s}) V={len(v)}", v, f, factors, args.repeat)
        except ValueError as e:
            print(f"(icosphere({s}) skipped: {e})")
    if not args.no_ict:
        with tempfile.TemporaryDirectory() as td:
            obj = args.ict
            if obj is None and ICT_TARBALL.is_file():
                with tarfile.open(ICT_TARBALL) as tf:
                    tf.extract(tf.getmember(ICT_NEUTRAL), td, filter="data")
                obj = Path(td) / ICT_NEUTRAL
            if obj is not None:
                mesh = read_obj(obj)
                rows += measure(f"ICT neutral V={len(mesh.vertices)}", mesh.vertices,
                                mesh.triangles, factors, args.repeat)
            else:
                print(f"(ICT mesh skipped: {ICT_TARBALL} not present)")

    header = ("mesh", "level", "vertices", "build time")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*header))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(line.format(*r))


if __name__ == "__main__":
    main()
