"""TensorRT engines from a package's ONNX graphs, with the TensorRT Python API.

``facecraft export tensorrt PKG [--fp16]`` builds one serialized engine per package model:

1. ``trt.Builder`` and an explicit-batch network filled by ``trt.OnnxParser`` from the ONNX file
   (parser errors are listed);
2. a builder config with a workspace limit and, for ``fp16``, ``BuilderFlag.FP16`` (fp32 layers
   remain where TensorRT finds fp16 inexact or slower);
3. one optimisation profile covering batch 1 (opt: ``opt_batch``) to ``max_batch`` for graphs
   exported with a dynamic batch;
4. ``builder.build_serialized_network`` written atomically to
   ``<engine cache>/<key>/<role>.engine`` with an ``<role>.engine.json`` beside it recording the
   TensorRT, CUDA and driver-visible device, precision, profile and the ONNX file's hash.

The cache folder is :class:`facecraft.sdk.pipeline.runtime.EngineCacheKey` - the ONNX file's
SHA-256, the
TensorRT version, the GPU's name and the precision - the same key under which the runtime points
ONNX Runtime's TensorRT provider (``trt_engine_cache_path``), so an engine is rebuilt exactly when
one of them changes. An engine whose metadata matches is reused, not rebuilt.

TensorRT is optional (``pip install -e '.[gpu]'``, from NVIDIA's package index). Without it
:func:`build_package_engines` raises :class:`TensorRTUnavailableError`, which the CLI reports with
exit status 69 (``EX_UNAVAILABLE``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from facecraft.sdk.atomic_file import write_atomic
from facecraft.sdk.errors import FaceCraftError, InvalidInputError
from facecraft.sdk.pipeline.package import ModelEntry, ModelPackage, load_package
from facecraft.sdk.pipeline.runtime import EngineCacheKey, cuda_device_name, engine_cache_key

__all__ = ["TensorRTSettings", "EngineBuild", "TensorRTUnavailableError", "require_tensorrt",
           "tensorrt_available", "build_engine", "build_package_engines", "engine_path"]

_INSTALL_HINT = ("TensorRT's Python package comes from NVIDIA's index (`pip install tensorrt` "
                 "with access to pypi.nvidia.com, or the '.[gpu]' extra) and needs a CUDA GPU")


class TensorRTUnavailableError(FaceCraftError):
    """The ``tensorrt`` package (or a CUDA GPU) is not available on this machine."""


@dataclass(frozen=True)
class TensorRTSettings:
    """How engines are built.

    Attributes:
        fp16: allow fp16 kernels (``BuilderFlag.FP16``).
        max_batch: the profile's largest batch (dynamic-batch graphs).
        opt_batch: the batch TensorRT tunes kernels for.
        workspace_bytes: builder scratch-memory limit.
        device_id: CUDA device (its name goes into the cache key).
        cache_dir: engine-cache root; None =
        :func:`facecraft.sdk.pipeline.runtime.default_engine_cache_dir`.
        force: rebuild even when a matching engine is cached.
    """

    fp16: bool = False
    max_batch: int = 8
    opt_batch: int = 1
    workspace_bytes: int = 2 << 30
    device_id: int = 0
    cache_dir: str | None = None
    force: bool = False

    def __post_init__(self) -> None:
        for name in ("max_batch", "opt_batch", "workspace_bytes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InvalidInputError(f"{name} must be an int >= 1, got {v!r}")
        if self.opt_batch > self.max_batch:
            raise InvalidInputError(f"opt_batch ({self.opt_batch}) must be <= max_batch "
                                    f"({self.max_batch})")


@dataclass(frozen=True)
class EngineBuild:
    """One engine in the cache.

    Attributes:
        role: the package model it was built from.
        path: the ``.engine`` file.
        key: its cache key.
        reused: found in the cache instead of built.
        build_seconds: time spent building (0 when reused).
        meta: the ``.engine.json`` record (TensorRT / CUDA versions, device, profile, ...).
    """

    role: str
    path: Path
    key: EngineCacheKey
    reused: bool
    build_seconds: float
    meta: dict[str, Any]


def tensorrt_available() -> bool:
    """Whether ``import tensorrt`` works here."""
    try:
        require_tensorrt()
    except TensorRTUnavailableError:
        return False
    return True


def require_tensorrt() -> Any:
    """The ``tensorrt`` module, or :class:`TensorRTUnavailableError` saying how to get it."""
    try:
        import tensorrt as trt  # type: ignore[import-not-found]
    except Exception as e:  # ImportError, or OSError from missing CUDA / nvinfer libraries
        raise TensorRTUnavailableError(f"TensorRT is not available ({type(e).__name__}: {e}); "
                                       f"{_INSTALL_HINT}. ONNX Runtime's CPU and CUDA providers "
                                       "run the package without it") from None
    return trt


def engine_path(entry: ModelEntry, settings: TensorRTSettings = TensorRTSettings(), *,
                trt_version: str | None = None, device: str | None = None) -> Path:
    """Where the engine of a package model lives in the cache (it may not exist yet)."""
    key = engine_cache_key(entry.sha256, fp16=settings.fp16, device_id=settings.device_id,
                           trt_version=trt_version, device=device)
    return key.path(settings.cache_dir) / f"{entry.role}.engine"


def _cuda_version() -> str:
    try:
        import torch

        return str(torch.version.cuda or "unknown")
    except Exception:
        return "unknown"


def build_engine(entry: ModelEntry, settings: TensorRTSettings = TensorRTSettings()
                 ) -> EngineBuild:
    """Build (or reuse) the engine of one package model.

    Args:
        entry: the package model (:attr:`facecraft.sdk.pipeline.package.ModelPackage.models`).
        settings: see :class:`TensorRTSettings`.

    Returns:
        :class:`EngineBuild`.

    Raises:
        TensorRTUnavailableError: no TensorRT. FaceCraftError: the parser or builder fails.
    """
    trt = require_tensorrt()
    version = str(trt.__version__)
    device = cuda_device_name(settings.device_id)
    key = engine_cache_key(entry.sha256, fp16=settings.fp16, device_id=settings.device_id,
                           trt_version=version, device=device)
    out = key.path(settings.cache_dir) / f"{entry.role}.engine"
    meta_path = out.with_name(out.name + ".json")
    profile = None
    if entry.batch_dynamic:
        profile = {"min_batch": 1, "opt_batch": settings.opt_batch,
                   "max_batch": settings.max_batch}
    if out.is_file() and meta_path.is_file() and not settings.force:
        try:
            meta = json.loads(meta_path.read_text())
        except ValueError:
            meta = {}
        if meta.get("key") == asdict(key) and meta.get("profile") == profile:
            return EngineBuild(entry.role, out, key, True, 0.0, meta)

    t0 = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if int(version.split(".")[0]) < 10:  # explicit batch is the only mode from TensorRT 10
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(entry.path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise FaceCraftError(f"{entry.path}: TensorRT's ONNX parser failed: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_bytes)
    if settings.fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if profile is not None:
        prof = builder.create_optimization_profile()
        for i in range(network.num_inputs):
            tensor = network.get_input(i)
            dims = list(tensor.shape)
            shapes = [[b if d < 0 else d for d in dims[:1]] + dims[1:]
                      for b in (1, settings.opt_batch, settings.max_batch)]
            if any(d < 0 for d in dims[1:]):
                raise FaceCraftError(f"{entry.path}: input {tensor.name!r} has dynamic "
                                     f"dimensions besides the batch ({dims}); export with fixed "
                                     "shapes")
            prof.set_shape(tensor.name, *shapes)
        config.add_optimization_profile(prof)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise FaceCraftError(f"{entry.path}: TensorRT could not build an engine (see the "
                             "TensorRT log above)")
    write_atomic(out, bytes(serialized), make_parents=True)
    seconds = time.perf_counter() - t0
    meta = {"key": asdict(key), "role": entry.role, "onnx_file": entry.path.name,
            "onnx_sha256": entry.sha256, "precision": key.precision,
            "tensorrt_version": version, "cuda_version": _cuda_version(), "device": device,
            "profile": profile, "workspace_bytes": settings.workspace_bytes,
            "build_seconds": round(seconds, 2), "engine_bytes": out.stat().st_size}
    write_atomic(meta_path, json.dumps(meta, indent=2) + "\n", make_parents=True)
    return EngineBuild(entry.role, out, key, False, seconds, meta)


def build_package_engines(package: str | Path | ModelPackage,
                          settings: TensorRTSettings = TensorRTSettings()) -> list[EngineBuild]:
    """Build (or reuse) an engine for every model of a package.

    Args:
        package: a package folder or a loaded :class:`~facecraft.sdk.pipeline.package.ModelPackage`.
        settings: see :class:`TensorRTSettings`.

    Raises:
        TensorRTUnavailableError: no TensorRT here (checked before anything else is done).
        ModelFileError: an invalid package.
    """
    require_tensorrt()
    pkg = package if isinstance(package, ModelPackage) else load_package(package)
    return [build_engine(entry, settings) for entry in pkg.models.values()]
