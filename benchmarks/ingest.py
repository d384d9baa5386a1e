"""Photo ingest speed: face detection per photo and landmarks per face, on the CPU.

Usage: ``python benchmarks/ingest.py [--repeat N] [--threads N] [--photos DIR]``
       ``python benchmarks/ingest.py --decode`` (decoder worst cases: time and peak memory)

Photos are every ``.jpg`` / ``.png`` under ``../shared/assets/photos`` (or ``--photos``).
Measured (best of N per photo):

* detection: :class:`facecraft.sdk.photo.detect.FaceDetector` (MTCNN, ONNX Runtime, ``--threads``
  intra-op threads), per photo, grouped by the photo's longer side; its 5 landmarks come with
  the detection at no extra cost;
* landmarks per face: dlib's 68-point predictor (:class:`facecraft.sdk.photo.landmarker.
  Dlib68Landmarker`, when installed) on every detected face;
* the MediaPipe front-end (:class:`facecraft.sdk.photo.mediapipe_frontend.MediaPipeFrontEnd`,
  ONNX Runtime, ``--threads`` threads per model): the whole front-end per photo and per face
  (detection + 468-point mesh + iris), and each stage alone: BlazeFace short range on the photo,
  the mesh on one face, the iris model on both eyes, the hair model on one face.

Prints a table.

``--decode`` measures :func:`facecraft.sdk.photo.image_io.decode_image` on the worst inputs:
hostile headers (refused), the largest photos the default memory budget accepts, and a 40 MP
JPEG read reduced. Each case runs in a fresh process; memory is the peak resident set (VmHWM,
reset before the call) minus the resident set before it.
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import cv2
import numpy as np

from facecraft.sdk.photo.detect import DetectorSettings, FaceDetector
from facecraft.sdk.photo.face_mesh import roi_from_box
from facecraft.sdk.photo.hair import HairSegmenter
from facecraft.sdk.photo.landmarker import Dlib68Landmarker
from facecraft.sdk.photo.mediapipe_frontend import FrontEndSettings, MediaPipeFrontEnd

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


_CHILD = """
import json, sys, time
from facecraft.sdk.photo.image_io import decode_image
from facecraft.sdk.errors import PhotoTooLargeError
data = open(sys.argv[1], "rb").read()
kw = json.loads(sys.argv[2])
def status(key):
    return next(int(x.split()[1]) for x in open("/proc/self/status") if x.startswith(key))
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM)
rss0, t = status("VmRSS:"), time.perf_counter()
try:
    d = decode_image(data, **kw)
    out = f"{d.size[1]}x{d.size[0]} (scale {d.scale:g})"
except PhotoTooLargeError as e:
    out = "refused: " + str(e).split(": ", 1)[1][:48]
dt = time.perf_counter() - t
print(json.dumps([out, dt, (status("VmHWM:") - rss0) / 1024]))
"""


def _png(w: int, h: int, gray: bool = False) -> bytes:
    def chunk(t: bytes, p: bytes) -> bytes:
        return struct.pack(">I", len(p)) + t + p + struct.pack(">I", zlib.crc32(t + p))
    ch = 1 if gray else 3
    co = zlib.compressobj(1)
    row = b"\0" + bytes(range(256)) * (w * ch // 256) + bytes(w * ch % 256)
    body = b"".join(co.compress(row) for _ in range(h)) + co.flush()
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0 if gray else 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body)
            + chunk(b"IEND", b""))


def _rle8_bmp(w: int, h: int) -> bytes:
    pix = b"\x00\x01"  # end of bitmap: 2 bytes paint the whole image
    off = 14 + 40 + 1024
    dib = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 8, 1, len(pix), 2835, 2835, 256, 0)
    return b"BM" + struct.pack("<IHHI", off + len(pix), 0, 0, off) + dib + bytes(1024) + pix


def decode_worst_cases() -> None:
    """Print time and peak memory of decode_image on its worst inputs."""
    rng = np.random.default_rng(0)
    big = cv2.resize(rng.integers(0, 256, (730, 547, 3), np.uint8), (7300, 5470))
    jpeg40 = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
    del big
    cases = [
        ("RLE8 BMP 6300x6300 (1 KB)", _rle8_bmp(6300, 6300), {}),
        ("PNG 6300x6300 RGB (0.9 MB)", _png(6300, 6300), {}),
        ("RLE8 BMP 4000x4000 (1 KB)", _rle8_bmp(4000, 4000), {}),
        ("PNG 4700x3500 RGB (largest RGB in budget)", _png(4700, 3500), {}),
        ("PNG 4900x3800 gray (largest gray in budget)", _png(4900, 3800, gray=True), {}),
        ("JPEG 7300x5470 = 39.9 MP, default", jpeg40, {}),
        ("JPEG 7300x5470 = 39.9 MP, max_side=2048", jpeg40, {"max_side": 2048}),
    ]
    print(f"{'case':46s} {'bytes':>10s} {'result':52s} {'s':>6s} {'peak MB':>8s}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, data, kw in cases:
            f = Path(tmp) / "photo"
            f.write_bytes(data)
            out = subprocess.run([sys.executable, "-c", _CHILD, str(f), json.dumps(kw)],
                                 check=True, capture_output=True, text=True).stdout
            res, dt, mb = json.loads(out.strip().splitlines()[-1])
            print(f"{name:46s} {len(data):10d} {res:52s} {dt:6.2f} {mb:8.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--photos", type=Path, default=PHOTOS)
    ap.add_argument("--decode", action="store_true", help="decoder worst cases instead")
    ap.add_argument("--mtcnn-only", action="store_true", help="skip the MediaPipe front-end")
    args = ap.parse_args()
    if args.decode:
        decode_worst_cases()
        return

    files = sorted(p for p in args.photos.rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    if not files:
        raise SystemExit(f"no photos under {args.photos}")
    cv2.setNumThreads(args.threads)  # a benchmark script may configure the process
    # the MediaPipe front-end first, before MTCNN's sessions and dlib exist in the process
    mp = _mediapipe_rows(files, args.threads, args.repeat) if not args.mtcnn_only else []
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
    for name, v in mp:
        print(f"{name:44s} {len(v):5d} {np.mean(v):9.1f} {np.median(v):9.1f} {np.max(v):9.1f}")


def _mediapipe_rows(files: list[Path], threads: int, repeat: int
                    ) -> list[tuple[str, list[float]]]:
    """The MediaPipe front-end's rows: whole front-end per photo / per face, and each stage."""
    fe = MediaPipeFrontEnd(FrontEndSettings(threads=threads))
    hair = HairSegmenter(fe.models["hair"])
    short = fe.blazeface["short"]
    photo_ms, face_ms, det_ms, mesh_ms, iris_ms, hair_ms = [], [], [], [], [], []
    for path in files:
        rgb = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        ms, faces = _best_ms(lambda rgb=rgb: fe.analyze(rgb), repeat)
        if not faces:
            continue
        photo_ms.append(ms)
        face_ms.append(ms / len(faces))
        det_ms.append(_best_ms(lambda rgb=rgb: short.detect_window(rgb), repeat)[0])
        f = faces[0]
        roi = roi_from_box(f.face.box, f.face.landmarks5[0], f.face.landmarks5[1])
        mesh_ms.append(_best_ms(lambda rgb=rgb, roi=roi: fe.mesh_model.landmarks(rgb, roi),
                                repeat)[0])
        iris_ms.append(_best_ms(lambda rgb=rgb, f=f: fe.iris_model.eyes(rgb, f.points),
                                repeat)[0])
        hair_ms.append(_best_ms(lambda rgb=rgb, f=f: hair.probability(rgb, f.face.box),
                                repeat)[0])
    return [("MediaPipe front-end, per photo", photo_ms),
            ("MediaPipe front-end (det+mesh+iris), per face", face_ms),
            ("  BlazeFace short range, per photo", det_ms),
            ("  468-point mesh, per face", mesh_ms),
            ("  iris, both eyes, per face", iris_ms),
            ("  hair segmentation, per face (not default)", hair_ms)]


if __name__ == "__main__":
    main()
