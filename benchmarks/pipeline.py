"""The photo-to-face pipeline: ms per photo per stage and end to end, ONNX Runtime vs torch eager.

Usage::

    python benchmarks/pipeline.py [--package PKG | --untrained] [--checkpoint CKPT] [--photos P ...]
        [--repeat 3] [--threads 2] [--texture-size 1024] [--batch 8] [--device cpu|cuda]
        [--detector mediapipe|mtcnn]

Runs :class:`facecraft.sdk.pipeline.pipeline.FaceCraft`'s stages one photo at a time (decode,
detection,
alignment, regressor, shape + albedo, sampling + visibility, fine texture - the refiner when the
package has one -, texture baking), then ``reconstruct`` end to end for one photo and for a batch.
Two variants, each in its own process so that its peak resident memory (``ru_maxrss``) is its
own: the package's regressor in ONNX Runtime, and the same regressor in torch eager (from
``--checkpoint``, or rebuilt from the manifest with random weights: speed does not depend on
them). ``--device cuda`` runs the torch regressor on the GPU (``--cuda-graphs`` replays it as a
CUDA graph). The other stages are identical in both variants (torch on the CPU with one thread,
as ``facecraft create`` runs them). Without ``--package`` it times the shipped package
(``facecraft/sdk/data/default.fcpkg``, the torch variant from its committed checkpoint
``models/regressor_starter.safetensors``), what ``facecraft create`` runs; ``--untrained``
builds an untrained package first (:func:`facecraft.export.build_default.
write_random_regressor`). Prints a table: the median over photos and repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PHOTOS = REPO.parent / "shared" / "assets" / "photos" / "celeba-5pt"
STAGES = ["decode", "detection", "alignment", "regressor", "shape + albedo",
          "sampling + visibility", "fine texture", "texture baking", "end to end (1 photo)",
          "end to end (batch), per photo"]


def _torch_regressor(pkg, checkpoint: str | None, device: str):
    from facecraft.training.regressor import CoeffLayout, InputSpec, coeff_regressor, load_regressor

    if checkpoint:
        return load_regressor(checkpoint).to(device).eval()
    meta = pkg.regressor.meta
    model = coeff_regressor(layout=CoeffLayout.from_dict({k: v for k, v in meta["coeff_layout"]
                                                          .items() if k != "order"}),
                            backbone=meta["backbone"]["name"],
                            input_spec=InputSpec(crop_size=pkg.input_spec.crop_size),
                            **meta["backbone"]["kwargs"])
    return model.to(device).eval()


def _child(args: argparse.Namespace) -> dict:
    """One variant: returns {stage: median ms per photo, "peak_rss_mb": ...}."""
    import torch

    from facecraft.sdk.pipeline.pipeline import FaceCraft, PipelineSettings

    torch.set_num_threads(1)  # the small torch stages, as `facecraft create` runs them
    settings = PipelineSettings(texture_size=args.texture_size, front_end=args.detector)
    craft = FaceCraft(args.package, threads=args.threads, settings=settings)
    if args.variant == "torch":
        device = args.device
        model = _torch_regressor(craft.package, args.checkpoint, device)
        graphs: dict = {}

        def forward(x):  # forward_vector and its features from one backbone pass
            f = model.forward_features(x)
            return model.head(f) + model._out_offset, f

        def regress(crops: np.ndarray):
            x = torch.from_numpy(np.ascontiguousarray(crops.transpose(0, 3, 1, 2)))
            torch.set_num_threads(args.torch_threads or args.threads)  # the network threads
            try:
                with torch.inference_mode():
                    if device == "cuda" and args.cuda_graphs:
                        if x.shape not in graphs:  # one captured graph per batch size
                            static_x = x.to(device)
                            for _ in range(3):  # warm up, then capture
                                forward(static_x)
                            g = torch.cuda.CUDAGraph()
                            with torch.cuda.graph(g):
                                static_y, static_f = forward(static_x)
                            graphs[x.shape] = (g, static_x, static_y, static_f)
                        g, static_x, static_y, static_f = graphs[x.shape]
                        static_x.copy_(x)
                        g.replay()
                        y, f = static_y, static_f
                    else:
                        y, f = forward(x.to(device))
                    return y.float().cpu().numpy(), f.float().cpu().numpy()
            finally:
                torch.set_num_threads(1)

        craft.regress = regress  # this instance only
    photos = [Path(p) for p in args.photos]
    times: dict[str, list[float]] = {s: [] for s in STAGES}

    def timed(stage, fn, *a, **k):
        t = time.perf_counter()
        out = fn(*a, **k)
        times[stage].append((time.perf_counter() - t) * 1e3)
        return out

    for warm in (True, False):
        for _ in range(1 if warm else args.repeat):
            for path in photos:
                data = path.read_bytes()
                photo = timed("decode", craft.decode, data, source=str(path))
                dets = timed("detection", craft.detect, photo)
                t = time.perf_counter()
                crops = craft.align(photo, dets)
                big = craft.align(photo, dets, craft.settings.sample_size)
                times["alignment"].append((time.perf_counter() - t) * 1e3)
                vec, feat = timed("regressor", craft.regress, np.stack([c.image for c in crops]))
                geo = timed("shape + albedo", craft.geometry, vec)
                samples = timed("sampling + visibility", craft.sample, geo,
                                np.stack([b.image for b in big]))
                fine, _ = timed("fine texture", craft.texture, geo, samples, feat)
                timed("texture baking", craft.bake, fine[0].numpy())
                timed("end to end (1 photo)", craft.reconstruct, data, source=str(path))
            t = time.perf_counter()
            craft.reconstruct_batch(photos[:args.batch])
            times["end to end (batch), per photo"].append(
                (time.perf_counter() - t) * 1e3 / min(args.batch, len(photos)))
        if warm:  # first calls build caches (UV raster, ORT arenas): not measured
            times = {s: [] for s in STAGES}
    out = {s: float(np.median(v)) for s, v in times.items()}
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out["providers"] = list(craft.regressor.providers)
    out["refiner"] = craft.refiner is not None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--package", help="a .fcpkg (default: the shipped default.fcpkg)")
    ap.add_argument("--untrained", action="store_true",
                    help="time an untrained package instead (random regressor weights)")
    ap.add_argument("--checkpoint", help="the regressor checkpoint for the torch variant")
    ap.add_argument("--photos", nargs="+", help="photos (default: 8 from ../shared celeba-5pt)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="network threads (ORT and torch)")
    ap.add_argument("--texture-size", type=int, default=1024)
    ap.add_argument("--detector", choices=("mediapipe", "mtcnn"), default="mediapipe",
                    help="the photo front-end (default: the pipeline's, MediaPipe)")
    ap.add_argument("--batch", type=int, default=8, help="photos in the batched run")
    ap.add_argument("--torch-threads", type=int, default=0,
                    help="threads of the torch regressor (default: --threads)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="where the torch regressor runs")
    ap.add_argument("--cuda-graphs", action="store_true", help="replay it as a CUDA graph")
    ap.add_argument("--variant", choices=("ort", "torch"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.photos:
        args.photos = [str(p) for p in sorted(PHOTOS.glob("*.jpg"))[:8]]
    if args.variant:  # a child process: print one JSON line
        print(json.dumps(_child(args)))
        return
    with tempfile.TemporaryDirectory() as td:
        if not args.package and not args.untrained:
            from facecraft.sdk.pipeline.package import default_package_path

            args.package = str(default_package_path())
            ckpt = Path(__file__).resolve().parents[1] / "models" / "regressor_starter.safetensors"
            if args.checkpoint is None and ckpt.is_file():
                args.checkpoint = str(ckpt)
        if not args.package:
            from facecraft.export.build_default import write_random_regressor
            from facecraft.export.package import export_regressor

            t = time.perf_counter()
            args.checkpoint = str(write_random_regressor(Path(td) / "random.safetensors"))
            args.package = str(Path(td) / "random.fcpkg")
            export_regressor(args.checkpoint, args.package, name="random")
            print(f"(built an untrained package in {time.perf_counter() - t:.1f} s)",
                  file=sys.stderr)
        results = {}
        for variant in ("ort", "torch"):
            cmd = [sys.executable, __file__, "--variant", variant, "--package", args.package,
                   "--repeat", str(args.repeat), "--threads", str(args.threads),
                   "--texture-size", str(args.texture_size), "--batch", str(args.batch),
                   "--detector", args.detector,
                   "--torch-threads", str(args.torch_threads),
                   "--device", args.device, "--photos", *args.photos]
            if args.checkpoint:
                cmd += ["--checkpoint", args.checkpoint]
            if args.cuda_graphs:
                cmd.append("--cuda-graphs")
            r = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if r.returncode:
                sys.exit(f"{variant} run failed:\n{r.stderr[-3000:]}")
            results[variant] = json.loads(r.stdout.strip().splitlines()[-1])
    ort_r, torch_r = results["ort"], results["torch"]
    reg_name = f"torch eager ({args.device}{', CUDA graph' if args.cuda_graphs else ''})"
    head = ("stage", f"ORT ({ort_r['providers'][0].removesuffix('ExecutionProvider')}) "
                     "ms/photo", f"regressor in {reg_name} ms/photo")
    fine = "fine texture (refiner)" if ort_r["refiner"] else "fine texture (de-lit photo)"
    rows = []
    for s in STAGES:
        label = fine if s == "fine texture" else s
        if s == "texture baking":
            label = f"texture baking {args.texture_size}^2"
        if s.startswith("end to end (batch)"):
            label = f"end to end (batch of {min(args.batch, len(args.photos))}), per photo"
        rows.append((label, f"{ort_r[s]:.1f}", f"{torch_r[s]:.1f}"))
    rows.append(("peak RSS (MB)", f"{ort_r['peak_rss_mb']:.0f}", f"{torch_r['peak_rss_mb']:.0f}"))
    w = [max(len(r[i]) for r in [head, *rows]) for i in range(3)]
    print("  ".join(f"{c:<{w[0]}}" if i == 0 else f"{c:>{w[i]}}" for i, c in enumerate(head)))
    for r in rows:
        print("  ".join(f"{c:<{w[0]}}" if i == 0 else f"{c:>{w[i]}}" for i, c in enumerate(r)))
    import onnxruntime
    import torch

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"(median over {len(args.photos)} photos x {args.repeat} repeats; ORT "
          f"{args.threads} threads per network (detector included), torch regressor "
          f"{args.torch_threads or args.threads}, other torch stages 1; "
          f"{os.cpu_count()} CPUs, load average "
          f"{load:.1f} at the end; {platform.processor() or platform.machine()}; torch "
          f"{torch.__version__}, onnxruntime {onnxruntime.__version__}; package "
          f"{Path(args.package).name})")


if __name__ == "__main__":
    main()
