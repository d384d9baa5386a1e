"""Renderer speed: forward and backward of a full face render, and UV baking.

Usage: ``python benchmarks/render.py [--repeat N] [--device cpu|cuda] [--threads N]``

The mesh is the real ICT-FaceKit head (26,719 vertices, 52,220 triangles) when
``../shared/assets`` is present, else the starter model generated at a comparable density.
Measured: ``render_mesh`` (pose, normals, SH shading, projection, rasterization, interpolation)
at 224x224 and 512x512, batch 1 and 8, forward alone and backward of a photometric loss; and
``bake_texture`` at 1024x1024. Prints a table (best of N).
"""

from __future__ import annotations

import argparse
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from facecraft.sdk.models.starter import StarterSettings, build_starter_model
from facecraft.sdk.render.cameras import PerspectiveCamera, Pose
from facecraft.sdk.render.renderer import render_mesh

ASSETS = Path(__file__).resolve().parents[1].parent / "shared" / "assets"


def _mesh():
    tarball = ASSETS / "face-models" / "ict-facekit" / "FaceXModel.tar.xz"
    if tarball.is_file():
        from facecraft.sdk.models.importers.ict import import_ict_facekit

        with tempfile.TemporaryDirectory() as td:
            with tarfile.open(tarball) as tf:
                tf.extractall(td, filter="data")
            return import_ict_facekit(Path(td) / "FaceXModel")
    return build_starter_model(StarterSettings(rows=128, cols=192))


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _best(fn, repeat: int, device: str) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = args.device
    model = _mesh()
    tri = torch.from_numpy(model.triangles).long().to(dev)
    rows = [("mesh", f"{model.name}: {model.num_vertices} vertices, {len(model.triangles)} "
                     "triangles", "")]
    base = torch.from_numpy(model.mean_shape).to(dev)
    albedo = torch.full_like(base, 0.6)
    for size in (224, 512):
        cam = PerspectiveCamera.paper(224).scaled((size, size))
        for b in (1, 8):
            verts = base[None].expand(b, -1, -1).contiguous()
            alb = albedo[None].expand(b, -1, -1).contiguous()
            pose = Pose.from_euler(torch.tensor([[0.0, 0.3, 0.0]], device=dev).expand(b, 3))
            sh = torch.zeros(b, 27, device=dev)
            target = torch.rand(b, size, size, 3, device=dev)

            def fwd(verts=verts, alb=alb, pose=pose, sh=sh, cam=cam):
                with torch.no_grad():
                    render_mesh(verts, tri, alb, camera=cam, pose=pose, sh=sh)

            def fwd_bwd(verts=verts, alb=alb, pose=pose, sh=sh, cam=cam, target=target):
                v = verts.clone().requires_grad_(True)
                a = alb.clone().requires_grad_(True)
                s = sh.clone().requires_grad_(True)
                out = render_mesh(v, tri, a, camera=cam, pose=pose, sh=s)
                ((out.image - target) ** 2 * out.mask[..., None]).mean().backward()

            t_f = _best(fwd, args.repeat, dev)
            t_fb = _best(fwd_bwd, args.repeat, dev)
            rows.append((f"render {size}x{size}, B={b}", f"forward {t_f * 1e3:.1f} ms",
                         f"forward+backward {t_fb * 1e3:.1f} ms"))
    try:
        from facecraft.sdk.render.texture import BakeSettings, bake_texture

        colours = torch.from_numpy(np.asarray(model.mean_shape - model.mean_shape.min(0))
                                   / np.ptp(model.mean_shape, 0)).float().to(dev)
        settings = BakeSettings(size=1024)
        t = _best(lambda: bake_texture(model, colours, settings), args.repeat, dev)
        rows.append(("bake UV texture 1024x1024", f"{t * 1e3:.1f} ms", "dilate 16 texels"))
    except ImportError:
        rows.append(("bake UV texture", "facecraft.sdk.render.texture missing", ""))
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print(f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:<{w[2]}}")
    print(f"(best of {args.repeat}; device {dev}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads)")


if __name__ == "__main__":
    main()
