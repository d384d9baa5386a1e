"""Coefficient-regressor speed: ms per image for each backbone, torch eager vs ONNX Runtime.

Usage: ``python benchmarks/regressor.py [--size 224] [--batch 1 8] [--repeat 5] [--threads 2]``

Untrained weights (speed does not depend on them), the starter model's coefficient layout.
Each backbone is exported once to ONNX (opset 18, in a temporary folder), checked against torch
(max abs difference printed), and timed in ONNX Runtime's CPU provider. Prints a table.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from facecraft.sdk.models.starter import build_starter_model
from facecraft.training.backbones import list_backbones
from facecraft.training.regressor import CoeffLayout, InputSpec, coeff_regressor


class _Vector(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.forward_vector(images)


def _best(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--backbones", nargs="+", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    layout = CoeffLayout.from_model(build_starter_model())
    rows = []
    with tempfile.TemporaryDirectory() as td:
        for name in args.backbones or list_backbones():
            model = coeff_regressor(layout=layout, backbone=name,
                                    input_spec=InputSpec(crop_size=args.size)).eval()
            torch.nn.init.normal_(model.head.weight, std=1e-3)
            wrapped = _Vector(model).eval()
            onnx_path = Path(td) / f"{name}.onnx"
            x = torch.rand(1, 3, args.size, args.size)
            torch.onnx.export(wrapped, (x,), str(onnx_path), input_names=["images"],
                              output_names=["coeffs"], dynamic_axes={"images": {0: "batch"}},
                              opset_version=18, dynamo=False)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = args.threads
            sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
            params = sum(p.numel() for p in model.parameters()) / 1e6
            for b in args.batch:
                xb = torch.rand(b, 3, args.size, args.size)
                with torch.inference_mode():
                    ref = wrapped(xb).numpy()
                    t_torch = _best(lambda xb=xb, f=wrapped: f(xb), args.repeat)
                (got,) = sess.run(None, {"images": xb.numpy()})
                t_ort = _best(lambda xb=xb, s=sess: s.run(None, {"images": xb.numpy()}),
                              args.repeat)
                rows.append((name, f"{params:.1f}M", str(b), f"{t_torch / b * 1e3:.1f}",
                             f"{t_ort / b * 1e3:.1f}", f"{np.abs(got - ref).max():.1e}"))
    head = ("backbone", "params", "batch", "torch ms/img", "ORT ms/img", "max |diff|")
    w = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(f"{c:>{w[i]}}" for i, c in enumerate(r)))
    print(f"({args.size}x{args.size}; best of {args.repeat}; {args.threads} threads; torch "
          f"{torch.__version__}, onnxruntime {ort.__version__})")


if __name__ == "__main__":
    main()
