"""ONNX Runtime sessions for package models: provider choice, session options, engine caches.

Providers
---------
ONNX Runtime runs a graph on the first *execution provider* in a list that supports each node.
FaceCraft's default order is TensorRT > CUDA > CPU (:data:`DEFAULT_PROVIDER_ORDER`), filtered by
what the installed ``onnxruntime`` build offers (:func:`available_providers`; the CPU wheel has
only CPU, ``onnxruntime-gpu`` adds CUDA and TensorRT). Callers override the order with short
names (``"tensorrt"``, ``"cuda"``, ``"cpu"``) or ONNX Runtime's full names. The CPU provider is
always appended last, so nodes a GPU provider cannot run still run. :func:`select_providers`
returns the choice and the requested providers this build lacks, for the caller to report.

Session options
---------------
:class:`RuntimeSettings` sets intra-op threads (``None``: ONNX Runtime's default, one per
physical core), inter-op threads (1: the graphs are sequential), sequential execution and the
graph optimisation level (``"all"`` by default: constant folding, node fusions and layout
optimisations). Sessions live in :class:`OrtModel` objects, created once and reused; nothing is
process-wide.

TensorRT engine cache
---------------------
Building a TensorRT engine takes seconds to minutes, so engines are cached on disk, in a folder
keyed by everything that makes an engine invalid (:class:`EngineCacheKey`): the ONNX file's
SHA-256, the TensorRT version, the GPU's name and the precision. ONNX Runtime's TensorRT provider
writes its engines (and timing cache) there (``trt_engine_cache_path``); the engines
:mod:`facecraft.export.tensorrt` builds with the TensorRT API go to the same keyed folder. The
root is ``RuntimeSettings.engine_cache_dir`` or ``<FaceCraft cache>/tensorrt``
(:func:`facecraft.sdk.models.default_model.default_cache_dir`).
"""

from __future__ import annotations

import ctypes
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import FaceCraftError, InvalidInputError, ProviderUnavailableError
from .package import ModelEntry

if TYPE_CHECKING:
    import onnxruntime as ort

__all__ = [
    "PROVIDER_NAMES",
    "DEFAULT_PROVIDER_ORDER",
    "RuntimeSettings",
    "ProviderSelection",
    "EngineCacheKey",
    "available_providers",
    "select_providers",
    "tensorrt_version",
    "cuda_device_name",
    "engine_cache_key",
    "default_engine_cache_dir",
    "session_options",
    "provider_options",
    "OrtModel",
]

#: Short provider names and ONNX Runtime's full names.
PROVIDER_NAMES: dict[str, str] = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
#: The order tried when the caller names none.
DEFAULT_PROVIDER_ORDER: tuple[str, ...] = ("tensorrt", "cuda", "cpu")
_CPU = PROVIDER_NAMES["cpu"]
_LEVELS = ("disable", "basic", "extended", "all")


def _full_name(name: str) -> str:
    if not isinstance(name, str):
        raise InvalidInputError(f"expected a provider name (str), got {type(name).__name__}")
    key = name.strip().lower()
    if key in PROVIDER_NAMES:
        return PROVIDER_NAMES[key]
    for full in PROVIDER_NAMES.values():
        if key == full.lower():
            return full
    raise InvalidInputError(f"unknown execution provider {name!r}; use one of "
                            f"{list(PROVIDER_NAMES)} (or ONNX Runtime's full names)")


@dataclass(frozen=True)
class RuntimeSettings:
    """How :class:`OrtModel` sessions are created.

    Attributes:
        providers: provider order (short or full names); ``None`` = :data:`DEFAULT_PROVIDER_ORDER`
            filtered by availability. Stored as full names.
        threads: intra-op threads per session, >= 1; ``None`` lets ONNX Runtime choose (one per
            physical core).
        inter_op_threads: threads running independent nodes in parallel (1: sequential).
        graph_optimization: ``"disable"``, ``"basic"``, ``"extended"`` or ``"all"``.
        device_id: CUDA device for the CUDA and TensorRT providers.
        tensorrt_fp16: let TensorRT pick fp16 kernels (about 2x faster; parity ~1e-3).
        engine_cache_dir: TensorRT engine-cache root; ``None`` = :func:`default_engine_cache_dir`.
        max_batch: the largest batch a TensorRT optimisation profile covers (dynamic batch).
    """

    providers: tuple[str, ...] | None = None
    threads: int | None = None
    inter_op_threads: int = 1
    graph_optimization: str = "all"
    device_id: int = 0
    tensorrt_fp16: bool = False
    engine_cache_dir: str | None = None
    max_batch: int = 8

    def __post_init__(self) -> None:
        if self.providers is not None:
            if isinstance(self.providers, str):
                raise InvalidInputError(f"providers must be a sequence of names, got the string "
                                        f"{self.providers!r}; write ({self.providers!r},)")
            full = tuple(_full_name(p) for p in self.providers)
            if not full:
                raise InvalidInputError("providers must name at least one provider, or be None")
            object.__setattr__(self, "providers", full)
        for name in ("threads", "inter_op_threads", "device_id", "max_batch"):
            v = getattr(self, name)
            lo = 0 if name == "device_id" else 1
            if v is None and name == "threads":
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise InvalidInputError(f"{name} must be an int >= {lo}, got {v!r}")
        if self.graph_optimization not in _LEVELS:
            raise InvalidInputError(f"graph_optimization must be one of {list(_LEVELS)}, got "
                                    f"{self.graph_optimization!r}")


@dataclass(frozen=True)
class ProviderSelection:
    """The providers a session will be created with.

    Attributes:
        providers: ONNX Runtime provider names in order, CPU last.
        unavailable: providers the caller asked for by name that this onnxruntime build lacks
            (empty for the default order, whose missing GPU providers are simply skipped).
    """

    providers: tuple[str, ...]
    unavailable: tuple[str, ...]

    @property
    def primary(self) -> str:
        """The provider tried first."""
        return self.providers[0]


def require_provider(provider: str) -> None:
    """Refuse ``provider`` (``"cuda"`` or ``"tensorrt"``; ``"cpu"`` is always there) when the
    installed onnxruntime build lacks it, instead of letting a session fall back to the CPU.

    Raises:
        ProviderUnavailableError: with what the build offers and how to get the provider.
    """
    full = PROVIDER_NAMES[provider]
    have = available_providers()
    if full not in have:
        raise ProviderUnavailableError(
            f"--provider {provider}: ONNX Runtime's {full} is not available here (this "
            f"onnxruntime build offers {', '.join(have)}); install the GPU build of "
            "onnxruntime with the CUDA/TensorRT libraries, or use --provider auto or cpu")


def available_providers() -> tuple[str, ...]:
    """The execution providers the installed onnxruntime build offers."""
    import onnxruntime as ort

    return tuple(ort.get_available_providers())


def select_providers(requested: Sequence[str] | None = None,
                     available: Sequence[str] | None = None) -> ProviderSelection:
    """Choose the provider order.

    Args:
        requested: names in order of preference (short or full); ``None`` for
            :data:`DEFAULT_PROVIDER_ORDER`.
        available: what the runtime offers (default: :func:`available_providers`); tests pass
            their own list.

    Returns:
        :class:`ProviderSelection`: the requested providers that are available, in order, with
        the CPU provider appended when missing.

    Raises:
        InvalidInputError: an unknown provider name.
    """
    explicit = requested is not None
    if isinstance(requested, str):
        requested = (requested,)
    names = [_full_name(p) for p in (requested if explicit else DEFAULT_PROVIDER_ORDER)]
    have = set(available_providers() if available is None else available)
    chosen: list[str] = []
    missing: list[str] = []
    for n in names:
        if n in chosen or n in missing:
            continue
        (chosen if n in have else missing).append(n)
    if _CPU not in chosen:
        chosen.append(_CPU)
    return ProviderSelection(providers=tuple(chosen),
                             unavailable=tuple(missing) if explicit else ())


# --------------------------------------------------------------------------- engine cache
def tensorrt_version() -> str | None:
    """The TensorRT version: from the ``tensorrt`` Python package, else from the ``libnvinfer``
    library ONNX Runtime's TensorRT provider would load (``getInferLibVersion``); ``None`` when
    neither is installed."""
    try:
        import tensorrt  # type: ignore[import-not-found]

        return str(tensorrt.__version__)
    except Exception:
        pass
    for lib in ("libnvinfer.so.10", "libnvinfer.so.9", "libnvinfer.so.8", "libnvinfer.so",
                "nvinfer.dll"):
        try:
            v = int(ctypes.CDLL(lib).getInferLibVersion())
        except (OSError, AttributeError):
            continue
        # 10.x encodes major * 10000 + minor * 100 + patch; 8.x major * 1000 + minor * 100 + patch
        major = v // 10000 if v >= 100000 else v // 1000
        rest = v % 10000 if v >= 100000 else v % 1000
        return f"{major}.{rest // 100}.{rest % 100}"
    return None


def cuda_device_name(device_id: int = 0) -> str:
    """The CUDA device's name (via torch), or ``"cpu"`` without CUDA."""
    try:
        import torch

        if torch.cuda.is_available():
            return str(torch.cuda.get_device_name(device_id))
    except Exception:
        pass
    return "cpu"


def _slug(s: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", s.lower()).strip("-") or "none"


@dataclass(frozen=True)
class EngineCacheKey:
    """What a cached TensorRT engine depends on.

    Attributes:
        model_sha256: SHA-256 of the ONNX file.
        tensorrt_version: e.g. ``"10.3.0"`` (``"none"`` when TensorRT is absent).
        device: the GPU's name, e.g. ``"NVIDIA H100 80GB HBM3"``.
        precision: ``"fp16"`` or ``"fp32"``.
    """

    model_sha256: str
    tensorrt_version: str
    device: str
    precision: str

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[0-9a-f]{16,64}", self.model_sha256 or ""):
            raise InvalidInputError(f"model_sha256 must be a hex SHA-256, got "
                                    f"{self.model_sha256!r}")
        if self.precision not in ("fp16", "fp32"):
            raise InvalidInputError(f"precision must be 'fp16' or 'fp32', got "
                                    f"{self.precision!r}")

    @property
    def folder_name(self) -> str:
        """A readable, file-system-safe name: ``<sha[:16]>-trt<version>-<device>-<precision>``
        plus a short digest of the full key (so long names never collide)."""
        digest = hashlib.sha256("|".join((self.model_sha256, self.tensorrt_version, self.device,
                                          self.precision)).encode()).hexdigest()[:8]
        return (f"{self.model_sha256[:16]}-trt{_slug(self.tensorrt_version)}-"
                f"{_slug(self.device)}-{self.precision}-{digest}")

    def path(self, root: str | Path | None = None) -> Path:
        """The key's folder under ``root`` (default :func:`default_engine_cache_dir`)."""
        return (Path(root) if root is not None else default_engine_cache_dir()) / self.folder_name


def default_engine_cache_dir() -> Path:
    """``<FaceCraft cache>/tensorrt``."""
    from ..models.default_model import default_cache_dir

    return default_cache_dir() / "tensorrt"


def engine_cache_key(model_sha256: str, *, fp16: bool = False, device_id: int = 0,
                     trt_version: str | None = None, device: str | None = None
                     ) -> EngineCacheKey:
    """The cache key of an engine for this model on this machine.

    Args:
        model_sha256: SHA-256 of the ONNX file (the package manifest records it).
        fp16: fp16 engine (else fp32).
        device_id: CUDA device whose name goes into the key.
        trt_version: override the detected TensorRT version (tests).
        device: override the detected device name (tests).
    """
    return EngineCacheKey(model_sha256=model_sha256,
                          tensorrt_version=trt_version or tensorrt_version() or "none",
                          device=device or cuda_device_name(device_id),
                          precision="fp16" if fp16 else "fp32")


# --------------------------------------------------------------------------- sessions
def session_options(settings: RuntimeSettings = RuntimeSettings()) -> ort.SessionOptions:
    """An ``onnxruntime.SessionOptions`` for ``settings`` (threads, optimisation, sequential)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if settings.threads is not None:
        opts.intra_op_num_threads = settings.threads
    opts.inter_op_num_threads = settings.inter_op_threads
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[settings.graph_optimization]
    opts.log_severity_level = 3  # errors only: ORT's warnings go to stderr otherwise
    return opts


def _profile_shapes(entry: ModelEntry | None, batch: int) -> str | None:
    """TensorRT profile shapes ``name:1x3x128x128,...`` for a dynamic batch, or None."""
    if entry is None or not entry.batch_dynamic:
        return None
    parts = []
    for t in entry.inputs:
        dims = [batch if i == 0 else d for i, d in enumerate(t.shape)]
        if not all(isinstance(d, int) for d in dims):
            return None  # other symbolic dims: let TensorRT infer from the first inputs seen
        parts.append(f"{t.name}:" + "x".join(str(d) for d in dims))
    return ",".join(parts)


def provider_options(provider: str, settings: RuntimeSettings = RuntimeSettings(), *,
                     entry: ModelEntry | None = None) -> dict[str, str | int | bool]:
    """ONNX Runtime options for one provider.

    TensorRT: device, fp16, engine and timing caches in the :class:`EngineCacheKey` folder of
    ``entry`` (its SHA-256), and an optimisation profile from batch 1 to
    ``settings.max_batch`` when the batch is dynamic. CUDA: device. CPU: none.

    Args:
        provider: a short or full provider name.
        settings: see :class:`RuntimeSettings`.
        entry: the package model (its hash keys the engine cache; its inputs give the profile).
    """
    name = _full_name(provider)
    if name == PROVIDER_NAMES["cuda"]:
        return {"device_id": settings.device_id}
    if name != PROVIDER_NAMES["tensorrt"]:
        return {}
    opts: dict[str, str | int | bool] = {"device_id": settings.device_id,
                                         "trt_fp16_enable": settings.tensorrt_fp16}
    if entry is not None:
        key = engine_cache_key(entry.sha256, fp16=settings.tensorrt_fp16,
                               device_id=settings.device_id)
        folder = key.path(settings.engine_cache_dir)
        opts.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(folder),
                    trt_timing_cache_enable=True, trt_timing_cache_path=str(folder))
        lo, hi = _profile_shapes(entry, 1), _profile_shapes(entry, settings.max_batch)
        if lo and hi:
            opts.update(trt_profile_min_shapes=lo, trt_profile_opt_shapes=lo,
                        trt_profile_max_shapes=hi)
    return opts


class OrtModel:
    """One ONNX Runtime session for a package model, created once and reused.

    Args:
        entry: the model (from :class:`facecraft.sdk.pipeline.package.ModelPackage`), or a path to
        an
            ``.onnx`` file (no engine-cache key then).
        settings: providers, threads, optimisation; see :class:`RuntimeSettings`.
        available: the providers to choose from (default: the installed build's).

    Attributes:
        selection: the :class:`ProviderSelection` made.
        providers: the providers the session actually uses (ONNX Runtime drops ones that fail
            to initialise, e.g. CUDA without its libraries).
        input_names, output_names: the graph's names, in order.

    One instance serves calls from one thread at a time.
    """

    def __init__(self, entry: ModelEntry | str | Path,
                 settings: RuntimeSettings = RuntimeSettings(), *,
                 available: Sequence[str] | None = None) -> None:
        import onnxruntime as ort

        self.entry = entry if isinstance(entry, ModelEntry) else None
        path = entry.path if isinstance(entry, ModelEntry) else Path(entry)
        self.settings = settings
        self.selection = select_providers(settings.providers, available)
        provs = [(p, provider_options(p, settings, entry=self.entry))
                 for p in self.selection.providers]
        for _, o in provs:
            if "trt_engine_cache_path" in o:
                Path(o["trt_engine_cache_path"]).mkdir(parents=True, exist_ok=True)
        try:
            self.session = ort.InferenceSession(str(path), sess_options=session_options(settings),
                                                providers=provs)
        except Exception as e:  # ORT raises its own exception types for bad graphs
            raise FaceCraftError(f"{path}: ONNX Runtime cannot load the model "
                                 f"({type(e).__name__}: {e})") from None
        self.providers = tuple(self.session.get_providers())
        self.input_names = tuple(i.name for i in self.session.get_inputs())
        self.output_names = tuple(o.name for o in self.session.get_outputs())

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the graph.

        Args:
            feeds: input name -> array (float32 for FaceCraft's graphs).

        Returns:
            output name -> array.
        """
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise InvalidInputError(f"missing inputs {missing}; the graph takes "
                                    f"{list(self.input_names)}")
        outs = self.session.run(None, {n: np.ascontiguousarray(feeds[n])
                                       for n in self.input_names})
        return dict(zip(self.output_names, outs, strict=True))
