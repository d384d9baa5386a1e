"""Face-model speed: .fcm save/load, and decoding in NumPy and torch, at real sizes.

Usage: ``python benchmarks/bench_face_model.py [--ict PATH_TO_FaceXModel] [--repeat N]``

Without ``--ict`` it unpacks ``../shared/assets/face-models/ict-facekit/FaceXModel.tar.xz``
into a temporary folder when present; the starter model is always measured. Prints a table.
"""

from __future__ import annotations

import argparse
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from facecraft.sdk.models.default_model import build_default_model
from facecraft.sdk.models.importers.ict import import_ict_facekit
from facecraft.sdk.models.model_file import load_model, save_model

ASSETS = Path(__file__).resolve().parents[1].parent / "shared" / "assets"


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def measure(name: str, model, tmp: Path, repeat: int) -> list[tuple[str, str, str]]:
    rows = []
    path = tmp / f"{name}.fcm"
    t_save = _best(lambda: save_model(model, path), repeat)
    rows.append((name, "save .fcm", f"{t_save * 1e3:.1f} ms"))
    rows.append((name, "load .fcm (verify hash)",
                 f"{_best(lambda: load_model(path), repeat) * 1e3:.1f} ms"))
    rows.append((name, "load .fcm (no verify)",
                 f"{_best(lambda: load_model(path, verify=False), repeat) * 1e3:.1f} ms"))
    rows.append((name, "file size", f"{path.stat().st_size / 1e6:.1f} MB"))
    rng = np.random.default_rng(0)
    ci = rng.normal(size=(1, model.num_identity)).astype(np.float32)
    ce = rng.random((1, model.num_expression)).astype(np.float32)
    rows.append((name, "decode numpy, B=1",
                 f"{_best(lambda: model.shape(ci, ce), repeat) * 1e3:.2f} ms"))
    layer = model.to_torch()
    for b in (1, 16):
        ti = torch.randn(b, model.num_identity)
        te = torch.rand(b, model.num_expression)
        with torch.inference_mode():
            t = _best(lambda ti=ti, te=te: layer.normals(layer(ti, te)), repeat)
        rows.append((name, f"decode+normals torch CPU, B={b}", f"{t * 1e3:.2f} ms"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ict", type=Path, help="ICT-FaceKit FaceXModel folder")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        t = time.perf_counter()
        starter = build_default_model()
        rows.append(("starter", "build (mesh + graph)", f"{time.perf_counter() - t:.2f} s"))
        rows += measure("starter", starter, tmp, args.repeat)
        ict_dir = args.ict
        tarball = ASSETS / "face-models" / "ict-facekit" / "FaceXModel.tar.xz"
        if ict_dir is None and tarball.is_file():
            with tarfile.open(tarball) as tf:
                tf.extractall(tmp, filter="data")
            ict_dir = tmp / "FaceXModel"
        if ict_dir is not None:
            t = time.perf_counter()
            ict = import_ict_facekit(ict_dir)
            rows.append(("ict-facekit", "import (157 OBJs)", f"{time.perf_counter() - t:.2f} s"))
            rows += measure("ict-facekit", ict, tmp, args.repeat)
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    print(f"{'model':<{w[0]}}  {'what':<{w[1]}}  {'time':>{w[2]}}")
    print(f"{'-' * w[0]}  {'-' * w[1]}  {'-' * w[2]}")
    for r in rows:
        print(f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:>{w[2]}}")
    print(f"(best of {args.repeat}; torch {torch.__version__}, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
