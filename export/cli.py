"""``facecraft export``: the export command group (registered through the ``facecraft.cli``
entry-point group, see :mod:`facecraft.sdk.cli`).

* ``facecraft export package --regressor CKPT [--refiner CKPT] -o OUT.fcpkg`` writes a model
  package (:func:`facecraft.export.package.export_regressor`, :func:`~facecraft.export.package.
  add_model`).
* ``facecraft export default --regressor CKPT [--refiner CKPT]`` rebuilds the built-in package
  (``facecraft/sdk/data/default.fcpkg``).
* ``facecraft export tensorrt PKG [--fp16]`` builds TensorRT engines into the engine cache; exits
  with 69 (``EX_UNAVAILABLE``) and one line when TensorRT is not installed.
* ``facecraft export triton PKG -o REPO`` writes a Triton model repository.
* ``facecraft export mediapipe --assets DIR [-o DIR]`` converts MediaPipe's .tflite face models
  to the vendored ONNX files (:func:`facecraft.export.tflite.mediapipe.export_mediapipe`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["register", "EXIT_UNAVAILABLE"]

#: Exit status when an optional dependency (TensorRT) is missing (sysexits' EX_UNAVAILABLE).
EXIT_UNAVAILABLE = 69


def _print_package(pkg, as_json: bool) -> None:
    s = pkg.summary()
    if as_json:
        print(json.dumps(s))
        return
    print(f"wrote {s['path']}: package {s['name']} {s['version']}, face model "
          f"{s['face_model']}, crop {s['crop_size']} px")
    for role, m in s["models"].items():
        print(f"  {role:10s} {m['file']:16s} opset {m['opset']}, max |onnxruntime - torch| "
              f"{m['parity_max_abs_diff']:.2e}")


def _add_refiner(out: Path, refiner: Path):
    from .build_default import load_refiner_checkpoint
    from .package import add_model

    module, example, names, extra = load_refiner_checkpoint(refiner)
    return add_model(out, "refiner", module, example, output_names=names, extra=extra,
                     parity_description="2 synthetic per-vertex input sets")


def _cmd_package(args: argparse.Namespace) -> int:
    from .package import export_regressor

    if args.output.suffix != ".fcpkg":
        print(f"facecraft export package: error: -o must name a .fcpkg folder, got "
              f"{args.output}", file=sys.stderr)
        return 2
    pkg = export_regressor(args.regressor, args.output, opset=args.opset,
                           dynamic_batch=not args.fixed_batch, face_model=args.face_model,
                           parity_photos=args.parity_photos, name=args.name,
                           version=args.version, training_config=args.training_config,
                           exporter=args.exporter, overwrite=args.force)
    if args.refiner is not None:
        pkg = _add_refiner(args.output, args.refiner)
    _print_package(pkg, args.json)
    return 0


def _cmd_default(args: argparse.Namespace) -> int:
    from .build_default import build_default_package

    pkg = build_default_package(args.regressor, refiner=args.refiner, out=args.output,
                                parity_photos=args.parity_photos,
                                training_config=args.training_config, version=args.version,
                                opset=args.opset)
    _print_package(pkg, args.json)
    return 0


def _cmd_tensorrt(args: argparse.Namespace) -> int:
    from .tensorrt import TensorRTSettings, TensorRTUnavailableError, build_package_engines

    settings = TensorRTSettings(fp16=args.fp16, max_batch=args.max_batch,
                                cache_dir=str(args.cache_dir) if args.cache_dir else None,
                                device_id=args.device, force=args.force)
    try:
        builds = build_package_engines(args.package, settings)
    except TensorRTUnavailableError as e:
        print(f"facecraft: error: {e}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    for b in builds:
        what = "reused" if b.reused else f"built in {b.build_seconds:.1f} s"
        print(f"{b.role:10s} {b.path} ({b.key.precision}, TensorRT {b.key.tensorrt_version}, "
              f"CUDA {b.meta.get('cuda_version')}, {b.key.device}; {what})")
    return 0


def _cmd_triton(args: argparse.Namespace) -> int:
    from .triton import write_triton_repository

    for p in write_triton_repository(args.package, args.output, max_batch_size=args.max_batch,
                                     kind="KIND_GPU" if args.gpu else "KIND_CPU"):
        print(f"wrote {p}")
    return 0


def _cmd_mediapipe(args: argparse.Namespace) -> int:
    from .tflite.mediapipe import MEDIAPIPE_MODELS, MediaPipeExportSettings, export_mediapipe

    settings = MediaPipeExportSettings(
        models=tuple(args.models or (m.name for m in MEDIAPIPE_MODELS)), opset=args.opset,
        photo=args.photo, latency_runs=args.latency_runs, threads=args.threads)
    prov = export_mediapipe(args.assets, args.output, settings)
    for name in settings.models:
        m = prov["models"][name]
        diffs = [d for p in m["parity"].values() for d in p["max_abs_diff"].values()]
        print(f"{m['file']:32s} {m['bytes'] / 1e6:5.2f} MB, max |onnx - tflite| "
              f"{max(diffs):.1e}, {m['latency_ms'].get('onnxruntime_cpu', float('nan')):.1f} ms "
              f"({args.threads} threads)")
    print(f"wrote {args.output / 'PROVENANCE.json'}")
    return 0


def _common_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("--regressor", required=True, type=Path, metavar="CKPT",
                   help="regressor checkpoint (.safetensors, from `facecraft train regressor`)")
    p.add_argument("--refiner", type=Path, metavar="CKPT",
                   help="texture-refiner checkpoint (facecraft.training.texture_nets)")
    p.add_argument("--parity-photos", type=Path, nargs="+", metavar="PATH",
                   help="photos or folders whose aligned faces verify the export (default: "
                        "rendered synthetic faces)")
    p.add_argument("--training-config", type=Path, metavar="JSON",
                   help="the training config to record (default: RUN/config.json next to "
                        "RUN/checkpoints/CKPT)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--version", default="0.1.0", help="package version (default 0.1.0)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON line")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` command group to the ``facecraft`` parser."""
    ex = subparsers.add_parser("export", help="export networks to ONNX / TensorRT packages",
                               description="Export trained networks into model packages the "
                                           "runtime loads, and build TensorRT engines.")
    esub = ex.add_subparsers(dest="export_command", metavar="COMMAND", required=True)

    p = esub.add_parser("package", help="write a model package (.fcpkg) from checkpoints",
                        description="Export the regressor (and optionally the refiner) to ONNX, "
                                    "verify each against torch (max abs diff <= 1e-4) and write "
                                    "a validated .fcpkg folder.")
    _common_export(p)
    p.add_argument("-o", "--output", required=True, type=Path, metavar="OUT.fcpkg",
                   help="the package folder to write")
    p.add_argument("--face-model", metavar="MODEL",
                   help="`starter` or a .fcm file (default: the training config's model)")
    p.add_argument("--name", help="package name (default: the folder name)")
    p.add_argument("--fixed-batch", action="store_true",
                   help="export with a fixed batch of 1 instead of a dynamic batch axis")
    p.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript",
                   help="torch.onnx exporter (dynamo needs --opset 18 or newer)")
    p.add_argument("-f", "--force", action="store_true", help="replace an existing package")
    p.set_defaults(handler=_cmd_package)

    p = esub.add_parser("default", help="rebuild the built-in package (sdk/data/default.fcpkg)",
                        description="Write FaceCraft's built-in model package from trained "
                                    "checkpoints of the starter model.")
    _common_export(p)
    p.add_argument("-o", "--output", type=Path, metavar="OUT.fcpkg",
                   help="write elsewhere (default: facecraft/sdk/data/default.fcpkg)")
    p.set_defaults(handler=_cmd_default)

    p = esub.add_parser("tensorrt", help="build TensorRT engines for a package",
                        description="Build one TensorRT engine per package model into the "
                                    "engine cache (keyed by model hash, TensorRT version, GPU "
                                    "and precision). Needs the tensorrt package and a CUDA GPU; "
                                    f"exits with {EXIT_UNAVAILABLE} without them.")
    p.add_argument("package", type=Path, metavar="PKG", help="a .fcpkg folder")
    p.add_argument("--fp16", action="store_true", help="allow fp16 kernels")
    p.add_argument("--max-batch", type=int, default=8, help="largest batch of the profile")
    p.add_argument("--cache-dir", type=Path, help="engine cache root (default: "
                   "~/.cache/facecraft/tensorrt)")
    p.add_argument("--device", type=int, default=0, help="CUDA device id")
    p.add_argument("-f", "--force", action="store_true", help="rebuild cached engines")
    p.set_defaults(handler=_cmd_tensorrt)

    p = esub.add_parser("triton", help="write a Triton Inference Server model repository",
                        description="Write config.pbtxt and model.onnx per package model for "
                                    "Triton's ONNX Runtime backend.")
    p.add_argument("package", type=Path, metavar="PKG", help="a .fcpkg folder")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="REPO",
                   help="the model repository folder")
    p.add_argument("--max-batch", type=int, default=8, help="Triton max_batch_size")
    p.add_argument("--gpu", action="store_true", help="instance kind KIND_GPU (default CPU)")
    p.set_defaults(handler=_cmd_triton)

    p = esub.add_parser("mediapipe", help="convert MediaPipe's face .tflite models to ONNX",
                        description="Convert the MediaPipe face detectors, face mesh, iris and "
                                    "segmentation models to ONNX (no TensorFlow), check each "
                                    "against ai-edge-litert and write PROVENANCE.json. Needs "
                                    "the tflite and ai-edge-litert packages.")
    p.add_argument("--assets", required=True, type=Path, metavar="DIR",
                   help="folder with the .tflite files and MediaPipe's LICENSE")
    p.add_argument("-o", "--output", type=Path, metavar="DIR",
                   default=Path(__file__).resolve().parents[1] / "sdk" / "data" / "mediapipe",
                   help="where to write (default: facecraft/sdk/data/mediapipe)")
    p.add_argument("--models", nargs="+", metavar="NAME", help="a subset (default: all)")
    p.add_argument("--photo", type=Path, metavar="JPG",
                   help="a face photo for the real-input parity check (a London-set photo "
                        "with its .tem landmarks crops face and eye exactly)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--latency-runs", type=int, default=20,
                   help="ONNX Runtime runs timed per model, median reported (0: skip)")
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads for timing")
    p.set_defaults(handler=_cmd_mediapipe)
