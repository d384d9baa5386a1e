"""Photo ingest speed: face detection per photo and landmarks per face, on the CPU.

Usage: ``python benchmarks/ingest.py [--repeat N] [--threads N] [--photos DIR]``

Photos are every ``.jpg`` / ``.png`` under ``../shared/assets/photos`` (or ``--photos``).
Measured (best of N per photo):

* detection: :class:`facecraft.sdk.photo.detect.FaceDetector` (MTCNN, ONNX Runtime, ``--threads``
  intra-op threads), per photo, grouped by the photo's longer side; its 5 landmarks come with
  the detection at no extra cost;
* landmarks per face: dlib's 68-point predictor (:class:`facecraft.sdk.photo.landmarker.
  Dlib68Landmarker`, when installed) on every detected face.

Prints a table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from facecraft.sdk.photo.detect import DetectorSettings, FaceDetector
from facecraft.sdk.photo.landmarker import Dlib68Landmarker

PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "assets" / "photos"
BUCKETS = [(0, 400), (400, 800), (800, 1200), (1200, 10 ** 9)]


def _best_ms(fn, repeat: int) -> tuple[float, object]:
    out = fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best * 1000.0, out


def _bucket_name(lo: int, hi: int) -> str:
    return f"> {lo} px" if hi >= 10 ** 9 else f"{lo}-{hi} px"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--photos", type=Path, default=PHOTOS)
    args = ap.parse_args()

    files = sorted(p for p in args.photos.rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    if not files:
        raise SystemExit(f"no photos under {args.photos}")
    cv2.setNumThreads(args.threads)  # a benchmark script may configure the process
    det = FaceDetector(DetectorSettings(threads=args.threads))
    lm68 = Dlib68Landmarker() if Dlib68Landmarker.available() else None

    det_ms: dict[tuple[int, int], list[float]] = {b: [] for b in BUCKETS}
    lm_ms: list[float] = []
    n_faces = 0
    for path in files:
        rgb = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        ms, faces = _best_ms(lambda rgb=rgb: det.detect(rgb), args.repeat)
        side = max(rgb.shape[:2])
        det_ms[next(b for b in BUCKETS if b[0] < side <= b[1])].append(ms)
        n_faces += len(faces)
        if lm68 is not None:
            for f in faces:
                ms_f, _ = _best_ms(lambda rgb=rgb, f=f: lm68.landmarks(rgb, f.box), args.repeat)
                lm_ms.append(ms_f)

    all_det = [v for vs in det_ms.values() for v in vs]
    print(f"{len(files)} photos, {n_faces} faces, {args.threads} threads, best of "
          f"{args.repeat}\n")
    print(f"{'stage':44s} {'n':>5s} {'mean ms':>9s} {'median':>9s} {'max':>9s}")
    rows = [(f"detect MTCNN+5pt, long side {_bucket_name(*b)}", v) for b, v in det_ms.items()]
    rows.append(("detect MTCNN+5pt, all photos", all_det))
    rows.append(("landmarks MTCNN 5-pt, per face", []))
    rows.append(("landmarks dlib 68-pt, per face" + ("" if lm68 else " (not installed)"),
                 lm_ms))
    for name, v in rows:
        if name.startswith("landmarks MTCNN"):
            print(f"{name:44s} {'':>5s}   0 (comes with the detection)")
        elif v:
            print(f"{name:44s} {len(v):5d} {np.mean(v):9.1f} {np.median(v):9.1f} "
                  f"{np.max(v):9.1f}")
        else:
            print(f"{name:44s} {0:5d} {'-':>9s} {'-':>9s} {'-':>9s}")


if __name__ == "__main__":
    main()
