"""Texture-refiner speed: torch sparse vs torch gather vs ONNX Runtime, per mesh size and batch.

Usage: ``python benchmarks/texture.py [--meshes starter ict grid35k] [--batch 1 4] [--repeat 5]
[--threads 1] [--backward]``

The refiner of Lin et al. (paper sizes, :class:`facecraft.training.texture_nets.TextureRefiner`,
untrained: speed does not depend on the weights) on three hierarchies, factors (4, 4, 4, 4):

* ``starter``: FaceCraft's starter face (6,145 vertices);
* ``ict``: ICT-FaceKit's full neutral mesh (26,719 vertices, several components), extracted
  (that one member only) from ``../shared/assets/face-models/ict-facekit/FaceXModel.tar.xz``;
  skipped when the assets are absent;
* ``grid35k``: a gently curved 189 x 189 height field, 35,721 vertices, standing in for the
  paper's BFM front face (35,709 vertices).

Each refiner is exported once in the gather form to ONNX (TorchScript exporter, opset 18,
dynamic batch) and timed in ONNX Runtime's CPU provider. Times are ms per forward of the whole
batch, best of ``--repeat``; ``max |diff|`` compares ONNX Runtime with torch's sparse form.
``--backward`` adds a training step (forward + backward of an L1 loss) in the sparse form.
Prints a table.
"""

from __future__ import annotations

import argparse
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from facecraft.sdk.models.default_model import load_default_model
from facecraft.sdk.models.mesh import read_obj
from facecraft.sdk.models.mesh_graph import MeshGraph, build_mesh_graph
from facecraft.training.graph_conv import persistent_graph_buffers
from facecraft.training.texture_nets import TextureRefiner

REPO = Path(__file__).resolve().parents[1]
ICT_TARBALL = REPO.parent / "shared" / "assets" / "face-models" / "ict-facekit" / \
    "FaceXModel.tar.xz"
ICT_NEUTRAL = "FaceXModel/generic_neutral_mesh.obj"


def _grid(n: int = 189) -> tuple[np.ndarray, np.ndarray]:
    """An n x n curved height field: (n^2, 3) float32 vertices, (2 (n-1)^2, 3) int32 faces."""
    x, y = np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, n))
    v = np.stack([x.ravel(), y.ravel(), 0.1 * np.sin(3 * x.ravel()) * np.cos(2 * y.ravel())], 1)
    idx = np.arange(n * n).reshape(n, n)
    a, b = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel()
    c, d = idx[1:, 1:].ravel(), idx[1:, :-1].ravel()
    f = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    return v.astype(np.float32), f.astype(np.int32)


def _graph(name: str) -> MeshGraph | None:
    if name == "starter":
        return load_default_model().graph
    if name == "grid35k":
        return build_mesh_graph(*_grid())
    if name == "ict":
        if not ICT_TARBALL.is_file():
            return None
        with tempfile.TemporaryDirectory() as td:
            path = Path(td) / "neutral.obj"
            with tarfile.open(ICT_TARBALL, "r|xz") as tf:
                for member in tf:
                    if member.name == ICT_NEUTRAL:
                        path.write_bytes(tf.extractfile(member).read())
                        break
            mesh = read_obj(path)
        return build_mesh_graph(mesh.vertices, mesh.triangles)
    raise SystemExit(f"unknown mesh {name!r}: use starter, ict or grid35k")


def _best(fn, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _inputs(b: int, v: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(b)
    vis = (torch.rand(b, v, 1, generator=g) > 0.3).float()
    return torch.cat([torch.rand(b, v, 3, generator=g), torch.rand(b, v, 3, generator=g) * vis,
                      vis], dim=-1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--meshes", nargs="+", default=["starter", "ict", "grid35k"])
    p.add_argument("--batch", nargs="+", type=int, default=[1, 4])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--backward", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    rows = []
    with tempfile.TemporaryDirectory() as td:
        for name in args.meshes:
            graph = _graph(name)
            if graph is None:
                print(f"({name}: assets not present, skipped)")
                continue
            torch.manual_seed(0)
            net = TextureRefiner(graph).eval()
            v = graph.sizes[0]
            params = sum(q.numel() for q in net.parameters()) / 1e6
            onnx_path = Path(td) / f"{name}.onnx"
            with persistent_graph_buffers(net.set_form("gather")):  # tables stored once
                torch.onnx.export(net, (_inputs(1, v),), str(onnx_path), input_names=["x"],
                                  output_names=["y"], dynamic_axes={"x": {0: "b"}, "y": {0: "b"}},
                                  opset_version=18, dynamo=False)
            sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
            size_mb = onnx_path.stat().st_size / 2**20
            for b in args.batch:
                x = _inputs(b, v)
                times = {}
                with torch.inference_mode():
                    for form in ("sparse", "gather"):
                        net.set_form(form)
                        times[form] = _best(lambda x=x, net=net: net(x), args.repeat)
                    ref = net.set_form("sparse")(x).numpy()
                (got,) = sess.run(None, {"x": x.numpy()})
                t_ort = _best(lambda x=x, s=sess: s.run(None, {"x": x.numpy()}), args.repeat)
                row = [name, f"{v:,}", "/".join(f"{n:,}" for n in graph.sizes[1:]),
                       f"{params:.1f}M", f"{size_mb:.1f}", str(b),
                       f"{times['sparse'] * 1e3:.1f}", f"{times['gather'] * 1e3:.1f}",
                       f"{t_ort * 1e3:.1f}", f"{np.abs(got - ref).max():.1e}"]
                if args.backward:
                    net.set_form("sparse").train()

                    def step(x=x, net=net):
                        net.zero_grad(set_to_none=True)
                        net(x).abs().mean().backward()

                    row.append(f"{_best(step, args.repeat) * 1e3:.1f}")
                    net.eval()
                rows.append(tuple(row))
    head = ("mesh", "V", "coarser levels", "params", "ONNX MB", "batch", "sparse ms",
            "gather ms", "ORT ms", "max |diff|")
    if args.backward:
        head += ("sparse fwd+bwd ms",)
    w = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(f"{c:>{w[i]}}" for i, c in enumerate(r)))
    print(f"(ms per forward of the whole batch; best of {args.repeat}; {args.threads} threads; "
          f"torch {torch.__version__}, onnxruntime {ort.__version__})")


if __name__ == "__main__":
    main()
