"""MediaPipe's face models as vendored ONNX: the model table, conversion, parity and provenance.

``facecraft export mediapipe --assets DIR -o sdk/data/mediapipe`` calls :func:`export_mediapipe`:
each .tflite in :data:`MEDIAPIPE_MODELS` is checked against its pinned sha256, converted by
:func:`~facecraft.export.tflite.convert.tflite_to_onnx`, run beside the original in
``ai-edge-litert`` on a random input and on a real photo crop (max abs difference per output,
checked against :func:`tolerance`), timed in ONNX Runtime, and recorded in ``PROVENANCE.json``
together with the Apache-2.0 ``LICENSE`` and a ``NOTICE``.

Every ONNX file keeps the TFLite boundary: one float32 NHWC input ``(N, H, W, C)`` (RGB, range
given per model) and the TFLite outputs under their TFLite names and shapes, batch ``N`` symbolic.
The runtime needs only ``onnxruntime`` and the vendored files; this module (and the ``tflite`` /
``ai-edge-litert`` packages) are for building and checking them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import statistics
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

__all__ = ["MediaPipeModel", "MEDIAPIPE_MODELS", "MediaPipeExportSettings", "export_mediapipe",
           "run_tflite", "run_onnx", "parity_inputs", "tolerance", "compare_outputs",
           "onnx_latency_ms", "model_by_name",
           "check_vendored", "sha256_file", "VENDORED_DIR", "SOURCE_REPOSITORY", "SOURCE_COMMIT"]

SOURCE_REPOSITORY = "https://github.com/google-ai-edge/mediapipe"
SOURCE_COMMIT = "33d683c67100ef3db37d9752fcf65d30bea440c4"
#: Where the converted files are vendored (``facecraft/sdk/data/mediapipe``).
VENDORED_DIR = Path(__file__).resolve().parents[2] / "sdk" / "data" / "mediapipe"


@dataclass(frozen=True)
class MediaPipeModel:
    """One MediaPipe model and how to feed it.

    Attributes:
        name: file stem of both the .tflite and the .onnx.
        source_path: the .tflite's path in the MediaPipe repository at :data:`SOURCE_COMMIT`.
        sha256: the .tflite's sha256; conversion refuses any other file.
        input_range: ``(lo, hi)`` the RGB input is scaled to: ``lo + (hi - lo) * pixel / 255``.
        input_note: the input's meaning and normalisation, for PROVENANCE.json.
        outputs: ``{output name: meaning and units}``.
        photo_crop: how the real-photo parity input is cut: ``image`` (whole photo), ``face``
            (a square 1.5x the face box), ``eye`` (a square one inter-pupil distance wide on the
            image-right eye).
        extra_channels: input channels after RGB (the hair model's previous mask), zeros in
            the photo input.
        argmax_unpooling: the network routes values through max-pooling argmax indices (the
            hair model); see :func:`compare_outputs` for how its parity is judged.
    """

    name: str
    source_path: str
    sha256: str
    input_range: tuple[float, float]
    input_note: str
    outputs: dict[str, str]
    photo_crop: str = "image"
    extra_channels: int = 0
    argmax_unpooling: bool = False


_BLAZE = ("per anchor: box centre offset x, y and size w, h, then 6 keypoints (x, y) "
          "(right eye, left eye, nose tip, mouth, right ear tragion, left ear tragion), all in "
          "input pixels relative to the anchor centre; decode with the SSD anchors of "
          "face_detection_*_range_common.pbtxt")

MEDIAPIPE_MODELS: tuple[MediaPipeModel, ...] = (
    MediaPipeModel(
        "face_detection_short_range", "mediapipe/modules/face_detection/"
        "face_detection_short_range.tflite",
        "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633", (-1.0, 1.0),
        "RGB 128x128, pixel / 127.5 - 1 (range [-1, 1]); whole image letterboxed to a square",
        {"regressors": f"(N, 896, 16) float32, {_BLAZE}",
         "classificators": "(N, 896, 1) float32, face logit per anchor (sigmoid -> score)"}),
    MediaPipeModel(
        "face_detection_full_range", "mediapipe/modules/face_detection/"
        "face_detection_full_range.tflite",
        "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3", (-1.0, 1.0),
        "RGB 192x192, pixel / 127.5 - 1 (range [-1, 1]); whole image letterboxed to a square",
        {"reshaped_regressor_face_4": f"(N, 2304, 16) float32, {_BLAZE}",
         "reshaped_classifier_face_4": "(N, 2304, 1) float32, face logit per anchor"}),
    MediaPipeModel(
        "face_landmark", "mediapipe/modules/face_landmark/face_landmark.tflite",
        "c603fa6149219a3e9487dc9abd7a0c24474c77263273d24868378cdf40aa26d1", (0.0, 1.0),
        "RGB 192x192 face crop (detection box x1.5, rotated upright), pixel / 255 (range "
        "[0, 1]); float16 weights of the .tflite folded to float32",
        {"conv2d_21": "(N, 1, 1, 1404) float32, 468 landmarks x (x, y, z): x, y in crop pixels "
                      "(0..192), z relative depth in the same scale",
         "conv2d_31": "(N, 1, 1, 1) float32, face-presence logit (sigmoid -> probability)"},
        photo_crop="face"),
    MediaPipeModel(
        "iris_landmark", "mediapipe/modules/iris_landmark/iris_landmark.tflite",
        "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f", (0.0, 1.0),
        "RGB 64x64 crop of one eye (left eye; flip a right eye horizontally), pixel / 255 "
        "(range [0, 1])",
        {"output_eyes_contours_and_brows": "(N, 213) float32, 71 eye-contour and brow points x "
                                           "(x, y, z), crop pixels (0..64)",
         "output_iris": "(N, 15) float32, 5 iris points (centre first) x (x, y, z), crop "
                        "pixels"},
        photo_crop="eye"),
    MediaPipeModel(
        "hair_segmentation", "mediapipe/models/hair_segmentation.tflite",
        "d2c940c4fd80edeaf38f5d7387d1b4235ee320ed120080df67c663e749e77633", (0.0, 1.0),
        "RGBA 512x512: RGB pixel / 255 (range [0, 1]) plus the previous frame's hair mask in "
        "[0, 1] as channel 4 (zeros for a still photo)",
        {"conv2d_transpose_4": "(N, 512, 512, 2) float32 logits (background, hair); softmax "
                               "over the last axis, channel 1 = hair"},
        extra_channels=1, argmax_unpooling=True),
    MediaPipeModel(
        "selfie_segmentation", "mediapipe/modules/selfie_segmentation/"
        "selfie_segmentation.tflite",
        "8d13b7fae74af625c641226813616a2117bd6bca19eb3b75574621fc08557f27", (0.0, 1.0),
        "RGB 256x256, pixel / 255 (range [0, 1])",
        {"activation_10": "(N, 256, 256, 1) float32, person probability in [0, 1]"}),
)


@dataclass(frozen=True)
class MediaPipeExportSettings:
    """How :func:`export_mediapipe` converts and checks.

    Attributes:
        models: names from :data:`MEDIAPIPE_MODELS` to convert (default: all).
        opset: ONNX opset of the written files.
        photo: a photo for the real-input parity check (a London-set .jpg with its .tem
            landmarks gives exact face and eye crops; without .tem, centre crops are used).
            None: random input only.
        seed: seed of the random parity input.
        latency_runs: ONNX Runtime runs timed per model (median reported); 0 skips timing.
        threads: ONNX Runtime intra-op threads for the timing.
    """

    models: tuple[str, ...] = tuple(m.name for m in MEDIAPIPE_MODELS)
    opset: int = 17
    photo: Path | None = None
    seed: int = 0
    latency_runs: int = 20
    threads: int = 2

    def __post_init__(self) -> None:
        known = {m.name for m in MEDIAPIPE_MODELS}
        unknown = sorted(set(self.models) - known)
        if unknown:
            raise ValueError(f"unknown MediaPipe models {unknown}; known: {sorted(known)}")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def model_by_name(name: str) -> MediaPipeModel:
    for m in MEDIAPIPE_MODELS:
        if m.name == name:
            return m
    raise KeyError(f"unknown MediaPipe model {name!r}")


# -- inputs -----------------------------------------------------------------------------------
def _photo_landmarks(photo: Path) -> np.ndarray | None:
    """Points of a webmorph ``.tem`` file beside the photo ((P, 2) pixels), or None."""
    tem = photo.with_suffix(".tem")
    if not tem.is_file():
        return None
    lines = tem.read_text().split("\n")
    n = int(lines[0])
    return np.array([[float(v) for v in ln.split()[:2]] for ln in lines[1:1 + n]], np.float32)


def _crop_box(model: MediaPipeModel, shape: tuple[int, int], pts: np.ndarray | None):
    """``(centre x, centre y, side)`` in photo pixels of the square the model sees."""
    h, w = shape
    if model.photo_crop == "image":
        return w / 2, h / 2, max(w, h)
    if model.photo_crop == "face":
        if pts is None:
            return w / 2, h / 2, 0.6 * min(w, h)
        lo, hi = pts.min(0), pts.max(0)
        return (lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, 1.5 * float((hi - lo).max())
    if pts is None:
        return 0.6 * w, 0.42 * h, 0.12 * min(w, h)
    right_eye = pts[0] if pts[0, 0] > pts[1, 0] else pts[1]
    return float(right_eye[0]), float(right_eye[1]), float(np.linalg.norm(pts[0] - pts[1]))


def _photo_input(model: MediaPipeModel, photo: Path, hw: tuple[int, int]) -> np.ndarray:
    import cv2

    img = cv2.imread(str(photo), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot read the parity photo {photo}")
    rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    cx, cy, side = _crop_box(model, rgb.shape[:2], _photo_landmarks(photo))
    s = hw[1] / side  # the inputs are square: one scale for both axes
    m = np.array([[s, 0, hw[1] / 2 - s * cx], [0, s, hw[0] / 2 - s * cy]], np.float32)
    if s < 0.5:  # shrink most of the way first so the bilinear warp does not alias
        f = 2 * s
        rgb = cv2.resize(rgb, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        m[:, :2] /= f
    crop = cv2.warpAffine(rgb, m, (hw[1], hw[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    lo, hi = model.input_range
    x = lo + (hi - lo) * crop.astype(np.float32) / 255.0
    if model.extra_channels:
        x = np.concatenate([x, np.zeros((*hw, model.extra_channels), np.float32)], axis=-1)
    return x[None]


def parity_inputs(model: MediaPipeModel, input_shape: tuple[int, ...], *, seed: int = 0,
                  photo: Path | None = None) -> dict[str, np.ndarray]:
    """``{"random": x, "photo": x}``: float32 NHWC batches of one for the parity check.

    ``random`` is uniform over the model's input range (extra channels uniform in [0, 1]);
    ``photo`` (only when ``photo`` is given) is the model's crop of the photo, normalised.
    """
    lo, hi = model.input_range
    rng = np.random.default_rng(seed)
    x = rng.uniform(lo, hi, input_shape).astype(np.float32)
    if model.extra_channels:
        x[..., -model.extra_channels:] = rng.uniform(0, 1, (*input_shape[:-1],
                                                            model.extra_channels))
    out = {"random": x}
    if photo is not None:
        out["photo"] = _photo_input(model, Path(photo), tuple(input_shape[1:3]))
    return out


# -- runners ----------------------------------------------------------------------------------
def run_tflite(path: Path, x: np.ndarray, threads: int = 2) -> dict[str, np.ndarray]:
    """Run a .tflite file in ``ai-edge-litert`` on one input; ``{output name: array}``."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as e:
        raise ImportError("the parity check needs `ai-edge-litert` (pip install "
                          "ai-edge-litert)") from e
    it = Interpreter(model_path=str(path), num_threads=threads)
    it.allocate_tensors()
    (inp,) = it.get_input_details()
    it.set_tensor(inp["index"], x)
    it.invoke()
    return {o["name"]: it.get_tensor(o["index"]).copy() for o in it.get_output_details()}


def _session(model, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    src = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def run_onnx(model: Path | bytes, x: np.ndarray, threads: int = 2) -> dict[str, np.ndarray]:
    """Run an ONNX model (file or serialised bytes) in ONNX Runtime (CPU) on one input."""
    s = _session(model, threads)
    names = [o.name for o in s.get_outputs()]
    return dict(zip(names, s.run(None, {s.get_inputs()[0].name: x}), strict=True))


def tolerance(reference: np.ndarray) -> float:
    """Largest accepted ``max |onnx - tflite|`` for one output: ``1e-4 * max(1, max|ref|)``.

    Both runtimes compute in float32 but sum convolutions in different orders, so the error
    scales with the output's magnitude (landmarks are pixels up to ~190, detector box offsets
    up to ~140): 1e-4 relative is 0.02 px on a 192 px crop; measured errors are ~1e-6 relative.
    """
    return 1e-4 * max(1.0, float(np.abs(reference).max()))


#: Argmax-unpooling models: at most this fraction of output values may exceed
#: :func:`tolerance`, and softmax probabilities may differ by at most PROBABILITY_TOLERANCE.
NEAR_TIE_FRACTION = 0.02
PROBABILITY_TOLERANCE = 5e-3


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def compare_outputs(spec: MediaPipeModel, ref: dict[str, np.ndarray],
                    got: dict[str, np.ndarray]) -> dict:
    """Compare ONNX outputs with the TFLite ones.

    Every output must satisfy ``max |got - ref| <= tolerance(ref)``, except for an
    argmax-unpooling model (hair): where a pooling window holds two (nearly) equal maxima,
    float rounding in each runtime decides which position the unpooling writes to, and a few
    logits downstream differ by up to ~0.2 (seen on photos and on one random seed in eight).
    There at most :data:`NEAR_TIE_FRACTION` of the values may exceed the tolerance and the
    softmax probabilities over the last axis must agree within :data:`PROBABILITY_TOLERANCE`.

    Returns:
        ``{"max_abs_diff": {out: float}, "tolerance": {out: float}, "passed": bool}`` plus,
        for argmax-unpooling models, ``over_tolerance_fraction`` and
        ``probability_max_abs_diff`` per output.
    """
    rec: dict = {"max_abs_diff": {}, "tolerance": {}, "passed": True}
    for k, r in ref.items():
        if got[k].shape != r.shape:
            raise ValueError(f"{spec.name}: output {k} has shape {got[k].shape}, the TFLite "
                             f"model's is {r.shape}")
        d = np.abs(got[k] - r)
        tol = tolerance(r)
        rec["max_abs_diff"][k] = float(d.max())
        rec["tolerance"][k] = tol
        ok = bool(d.max() <= tol)
        if spec.argmax_unpooling:
            frac = float((d > tol).mean())
            pdiff = float(np.abs(_softmax(got[k]) - _softmax(r)).max())
            rec.setdefault("over_tolerance_fraction", {})[k] = frac
            rec.setdefault("probability_max_abs_diff", {})[k] = pdiff
            ok = frac <= NEAR_TIE_FRACTION and pdiff <= PROBABILITY_TOLERANCE
        rec["passed"] = rec["passed"] and ok
    return rec


def onnx_latency_ms(model: Path | bytes, x: np.ndarray, *, threads: int = 2,
                    runs: int = 20) -> float:
    """Median wall time (ms) of ``runs`` ONNX Runtime CPU runs after two warm-up runs."""
    s = _session(model, threads)
    feed = {s.get_inputs()[0].name: x}
    for _ in range(2):
        s.run(None, feed)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        s.run(None, feed)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


# -- export -----------------------------------------------------------------------------------
def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@dataclass
class _Record:
    file: str
    sha256: str
    bytes: int
    tflite: dict
    operators: dict
    layout: str
    input: dict
    outputs: dict
    parity: dict = field(default_factory=dict)
    latency_ms: dict = field(default_factory=dict)


_LAYOUT = ("NHWC at the boundary (the TFLite input and output shapes and names, batch N "
           "symbolic); NCHW inside, with Transposes after the input and before NHWC outputs")

NOTICE = """\
FaceCraft: MediaPipe face models converted to ONNX

The .onnx files in this folder are derived from TensorFlow Lite models of the MediaPipe project
({repo}, commit {commit}), Copyright The MediaPipe Authors, licensed under the Apache License,
Version 2.0 (LICENSE in this folder). FaceCraft converted them to ONNX (`facecraft export
mediapipe`): float16 weights were widened to float32 and the graph was rewritten operator by
operator in NCHW; the weights are otherwise unchanged. PROVENANCE.json lists, per file, the
source path and sha256 of the original .tflite, the conversion settings and the measured
differences from the original run in ai-edge-litert.

The parity photo named in PROVENANCE.json (Face Research Lab London Set, DeBruine & Jones 2017,
CC BY 4.0) was used only to check the conversion; no part of it is included here.
"""


def export_mediapipe(assets: Path, out: Path,
                     settings: MediaPipeExportSettings = MediaPipeExportSettings()) -> dict:
    """Convert, verify and vendor the MediaPipe models.

    Args:
        assets: folder holding the .tflite files (and MediaPipe's Apache-2.0 ``LICENSE``).
        out: the folder to write ``<name>.onnx``, ``LICENSE``, ``NOTICE``, ``PROVENANCE.json``.
        settings: which models, opset, parity photo, timing.

    Returns:
        The provenance record written to ``out/PROVENANCE.json``.

    Raises:
        FileNotFoundError: a .tflite or the LICENSE is missing from ``assets``.
        ValueError: a .tflite's sha256 differs from the pinned one, or an output differs from
            the TFLite run by more than :func:`tolerance`.
    """
    import onnx

    from .convert import ConvertSettings, tflite_to_onnx
    from .reader import read_tflite

    assets, out = Path(assets), Path(out)
    licence = assets / "LICENSE"
    if not licence.is_file():
        raise FileNotFoundError(f"{licence} (MediaPipe's Apache-2.0 licence) is missing")
    out.mkdir(parents=True, exist_ok=True)
    prov_path = out / "PROVENANCE.json"
    prov = json.loads(prov_path.read_text()) if prov_path.is_file() else {}
    models = dict(prov.get("models", {}))
    for name in settings.models:
        spec = model_by_name(name)
        src = assets / f"{name}.tflite"
        if not src.is_file():
            raise FileNotFoundError(f"{src} is missing (expected {spec.source_path} from "
                                    f"{SOURCE_REPOSITORY} @ {SOURCE_COMMIT[:12]})")
        digest = sha256_file(src)
        if digest != spec.sha256:
            raise ValueError(f"{src}: sha256 {digest} differs from the pinned {spec.sha256}")
        graph = read_tflite(src)
        doc = f"{name}: {spec.input_note}. Converted from {spec.source_path} ({digest[:12]})."
        model = tflite_to_onnx(graph, ConvertSettings(opset=settings.opset, graph_name=name,
                                                      doc_string=doc))
        data = model.SerializeToString()
        dst = out / f"{name}.onnx"
        dst.write_bytes(data)
        in_t = graph.tensors[graph.inputs[0]]
        rec = _Record(
            file=dst.name, sha256=hashlib.sha256(data).hexdigest(), bytes=len(data),
            tflite={"file": src.name, "source_path": spec.source_path, "sha256": digest,
                    "bytes": src.stat().st_size},
            operators=graph.opcode_counts(), layout=_LAYOUT,
            input={"name": in_t.name, "shape": ["N", *in_t.shape[1:]], "dtype": "float32",
                   "layout": "NHWC", "range": list(spec.input_range),
                   "normalisation": spec.input_note},
            outputs={k: {"shape": ["N", *graph.tensors[i].shape[1:]], "meaning": spec.outputs[k]}
                     for k, i in ((graph.tensors[i].name, i) for i in graph.outputs)})
        feeds = parity_inputs(spec, in_t.shape, seed=settings.seed, photo=settings.photo)
        for kind, x in feeds.items():
            cmp = compare_outputs(spec, run_tflite(src, x), run_onnx(data, x))
            if not cmp["passed"]:
                raise ValueError(f"{name}: ONNX differs from TFLite on the {kind} input: {cmp}")
            rec.parity[kind] = cmp
        if settings.latency_runs:
            ms = onnx_latency_ms(data, feeds["random"], threads=settings.threads,
                                 runs=settings.latency_runs)
            rec.latency_ms = {"onnxruntime_cpu": round(ms, 2), "threads": settings.threads,
                              "runs": settings.latency_runs, "statistic": "median",
                              "onnxruntime": _version("onnxruntime")}
        onnx.checker.check_model(str(dst))
        models[name] = asdict(rec)
    shutil.copyfile(licence, out / "LICENSE")
    (out / "NOTICE").write_text(NOTICE.format(repo=SOURCE_REPOSITORY, commit=SOURCE_COMMIT))
    photo = settings.photo
    prov = {
        "source": {"repository": SOURCE_REPOSITORY, "commit": SOURCE_COMMIT,
                   "licence": "Apache-2.0", "licence_file": "LICENSE", "notice_file": "NOTICE"},
        "converter": {"command": "facecraft export mediapipe", "module":
                      "facecraft.export.tflite", "opset": settings.opset,
                      "packages": {p: _version(p) for p in ("tflite", "onnx", "onnxruntime",
                                                            "ai-edge-litert", "numpy")}},
        "parity": {"reference": "ai-edge-litert (XNNPACK, float32) on the original .tflite",
                   "inputs": {"random": f"uniform over the input range, numpy seed "
                                        f"{settings.seed}",
                              "photo": None if photo is None else
                              f"{Path(photo).parent.name}/{Path(photo).name} (Face Research "
                              f"Lab London Set, CC BY 4.0), cropped per model"},
                   "tolerance": "1e-4 * max(1, max |tflite output|) per output; for the "
                                "argmax-unpooling hair model, at most "
                                f"{NEAR_TIE_FRACTION:.0%} of values over it and softmax "
                                f"probabilities within {PROBABILITY_TOLERANCE} (near-tied "
                                "pooling maxima; see compare_outputs)"},
        "models": dict(sorted(models.items())),
    }
    prov_path.write_text(json.dumps(prov, indent=2) + "\n")
    return prov


def check_vendored(folder: Path = VENDORED_DIR) -> list[str]:
    """Problems with the vendored files (empty when all is well): each model's ONNX file
    exists with the sha256 and size PROVENANCE.json records; LICENSE and NOTICE exist."""
    folder = Path(folder)
    prov_path = folder / "PROVENANCE.json"
    if not prov_path.is_file():
        return [f"{prov_path} is missing"]
    prov = json.loads(prov_path.read_text())
    problems = [f"{folder / f} is missing" for f in ("LICENSE", "NOTICE")
                if not (folder / f).is_file()]
    for name, rec in prov.get("models", {}).items():
        p = folder / rec["file"]
        if not p.is_file():
            problems.append(f"{name}: {p} is missing")
            continue
        digest = sha256_file(p)
        if digest != rec["sha256"] or p.stat().st_size != rec["bytes"]:
            problems.append(f"{name}: {p.name} sha256 {digest[:12]} ({p.stat().st_size} B) != "
                            f"PROVENANCE.json {rec['sha256'][:12]} ({rec['bytes']} B)")
    return problems
