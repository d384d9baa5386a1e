"""ONNX export of FaceCraft's networks, checked and verified against torch.

Two entry points:

* :func:`export_graph_net` exports any module whose ``forward`` takes named tensors and returns a
  tensor (or a tuple of them): the texture refiner and other graph nets. A module offering an
  ONNX-friendly form through ``set_form("gather")`` (the padded-neighbour gather of the Chebyshev
  layers, which both exporters handle and ONNX Runtime runs fast) is switched to it first.
* :func:`export_regressor_onnx` exports a :class:`~facecraft.training.regressor.CoeffRegressor`
  as one graph ``images (B, 3, S, S) RGB in [0, 1] -> coeffs (B, K), features (B, F)``:
  normalisation inside, the translation offset added, the vector in
  :class:`~facecraft.training.regressor.CoeffLayout` order, plus the pooled backbone features
  (the texture decoder's input).

Every export runs ``onnx.checker`` (full check, with shape inference), then runs the file in ONNX
Runtime's CPU provider on verification inputs and compares with the torch module in eval mode;
the largest absolute difference goes into the returned :class:`ExportedModel` (and from there the
package manifest). A difference above :attr:`ExportSettings.tolerance` (1e-4 for fp32) raises
:class:`ExportParityError` and deletes the file. For the regressor the verification inputs are
aligned crops of real photos when photos are given (:func:`regressor_parity_crops`), else
deterministic rendered synthetic faces.

Exporters: ``"torchscript"`` (``torch.onnx.export(..., dynamo=False)``, the default, any opset
from 9; constant folding on) or ``"dynamo"`` (``torch.export``-based, opset >= 18). Export puts
the module in eval mode and leaves it so.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facecraft.sdk.errors import FaceCraftError, InvalidInputError
from facecraft.sdk.pipeline.package import TensorSpec, file_sha256

__all__ = [
    "ExportSettings",
    "ExportedModel",
    "ExportParityError",
    "export_graph_net",
    "export_regressor_onnx",
    "regressor_parity_crops",
    "REGRESSOR_INPUT",
    "REGRESSOR_OUTPUT",
    "REGRESSOR_FEATURES",
]

#: The regressor graph's input and output names: crops in, coefficient vectors and the
#: backbone's pooled features (a texture decoder's input) out.
REGRESSOR_INPUT = "images"
REGRESSOR_OUTPUT = "coeffs"
REGRESSOR_FEATURES = "features"
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


class ExportParityError(FaceCraftError):
    """ONNX Runtime's output differs from torch's by more than the tolerance."""


@dataclass(frozen=True)
class ExportSettings:
    """How a module is exported.

    Attributes:
        opset: default-domain ONNX opset (17 by default; the dynamo exporter needs >= 18).
        dynamic_batch: make dimension 0 of every input and output symbolic (``"batch"``).
        tolerance: largest allowed |ONNX Runtime - torch| on the verification inputs.
        exporter: ``"torchscript"`` or ``"dynamo"``.
    """

    opset: int = 17
    dynamic_batch: bool = True
    tolerance: float = 1e-4
    exporter: str = "torchscript"

    def __post_init__(self) -> None:
        if isinstance(self.opset, bool) or not isinstance(self.opset, int) \
                or not 9 <= self.opset <= 23:
            raise InvalidInputError(f"opset must be an int in [9, 23], got {self.opset!r}")
        if self.exporter not in ("torchscript", "dynamo"):
            raise InvalidInputError(f"exporter must be 'torchscript' or 'dynamo', got "
                                    f"{self.exporter!r}")
        if self.exporter == "dynamo" and self.opset < 18:
            raise InvalidInputError(f"the dynamo exporter needs opset >= 18, got {self.opset}; "
                                    "use exporter='torchscript' for older opsets")
        if not self.tolerance > 0:
            raise InvalidInputError(f"tolerance must be > 0, got {self.tolerance}")


@dataclass(frozen=True)
class ExportedModel:
    """An exported, checked and verified ONNX file.

    Attributes:
        path: the ``.onnx`` file.
        sha256: its SHA-256 (hex).
        size_bytes: its size.
        opset: the default-domain opset in the file.
        inputs: graph inputs (symbolic batch ``"batch"`` when dynamic).
        outputs: graph outputs.
        parity_max_abs_diff: max |ONNX Runtime (CPU) - torch| over the verification inputs.
        tolerance: the tolerance it was checked against.
        parity_inputs: what the verification inputs were (human-readable).
        num_parity_inputs: how many input sets (or images) were compared.
        exporter: ``{"name", "mode", "torch", "onnx"}``.
    """

    path: Path
    sha256: str
    size_bytes: int
    opset: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    parity_max_abs_diff: float
    tolerance: float
    parity_inputs: str
    num_parity_inputs: int
    exporter: dict[str, str] = field(default_factory=dict)

    def manifest_entry(self, file: str) -> dict[str, Any]:
        """The package-manifest entry for this file stored as ``file`` (relative)."""
        return {
            "file": file, "sha256": self.sha256, "size_bytes": self.size_bytes,
            "opset": self.opset,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "parity": {"max_abs_diff": self.parity_max_abs_diff, "tolerance": self.tolerance,
                       "inputs": self.parity_inputs, "num_inputs": self.num_parity_inputs,
                       "runtime": "onnxruntime CPUExecutionProvider"},
            "exporter": dict(self.exporter),
        }


# --------------------------------------------------------------------------- helpers
class _Positional(nn.Module):
    """Calls ``module(*inputs)`` and returns a tuple of tensors (for the exporters)."""

    def __init__(self, module: nn.Module, method: str | None = None) -> None:
        super().__init__()
        self.module = module
        self.method = method

    def forward(self, *inputs: torch.Tensor):
        fn = getattr(self.module, self.method) if self.method else self.module
        out = fn(*inputs)
        return tuple(out) if isinstance(out, (tuple, list)) else out


class _RegressorGraph(nn.Module):
    """``images -> (coeffs, features)``: :meth:`CoeffRegressor.forward_vector` and the pooled
    backbone features it is computed from, sharing one backbone pass."""

    def __init__(self, regressor: nn.Module) -> None:
        super().__init__()
        self.regressor = regressor

    def forward(self, images: torch.Tensor):
        r = self.regressor
        features = r.forward_features(images)
        # exactly forward_vector's arithmetic: head(features) + the translation offset buffer
        return r.head(features) + r._out_offset, features


def _as_tuple(out: Any) -> tuple[torch.Tensor, ...]:
    if isinstance(out, torch.Tensor):
        return (out,)
    if isinstance(out, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in out):
        return tuple(out)
    raise InvalidInputError(f"the module must return a tensor or a tuple of tensors, got "
                            f"{type(out).__name__}")


def _dims(value_info: Any) -> tuple[int | str, ...]:
    """An ONNX value's dimensions: ints, symbolic names, or ``"?"`` when unknown."""
    dims = []
    for d in value_info.type.tensor_type.shape.dim:
        dims.append(d.dim_param if d.dim_param else (d.dim_value if d.HasField("dim_value")
                                                     else "?"))
    return tuple(dims)


def _dtype_name(value_info: Any) -> str:
    import onnx

    return str(onnx.helper.tensor_dtype_to_np_dtype(value_info.type.tensor_type.elem_type))


def _check_and_describe(path: Path, output_shapes: Sequence[tuple[int, ...]],
                        dynamic: bool) -> tuple[int, tuple[TensorSpec, ...],
                                                tuple[TensorSpec, ...]]:
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as e:  # onnx raises ValidationError / InferenceError
        raise FaceCraftError(f"{path}: the exported graph fails onnx.checker: {e}") from None
    model = onnx.load(str(path), load_external_data=False)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    init = {i.name for i in model.graph.initializer}
    inputs = tuple(TensorSpec(i.name, _dims(i), _dtype_name(i)) for i in model.graph.input
                   if i.name not in init)
    outputs = []
    for o, ref in zip(model.graph.output, output_shapes, strict=True):
        # exporters name or leave unknown the dims they cannot infer statically: the only
        # symbolic dimension FaceCraft's graphs have is the batch, the rest are torch's sizes
        dims = tuple(("batch" if dynamic and k == 0 else int(s)) for k, s in enumerate(ref))
        outputs.append(TensorSpec(o.name, dims, _dtype_name(o)))
    return int(opset), inputs, tuple(outputs)


def _run_export(wrapper: nn.Module, args: tuple[torch.Tensor, ...], path: Path,
                input_names: Sequence[str], output_names: Sequence[str],
                settings: ExportSettings) -> None:
    axes = None
    if settings.dynamic_batch:
        axes = {n: {0: "batch"} for n in (*input_names, *output_names)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # the TorchScript exporter is deprecated in torch >= 2.9 and traces with TracerWarnings
        # about shape checks; both are expected here and not actionable for the caller
        warnings.simplefilter("ignore")
        kwargs: dict[str, Any] = {"input_names": list(input_names),
                                  "output_names": list(output_names),
                                  "opset_version": settings.opset}
        if settings.exporter == "torchscript":
            torch.onnx.export(wrapper, args, str(path), dynamic_axes=axes, dynamo=False,
                              do_constant_folding=True, **kwargs)
        else:  # the wrapper's forward(*inputs) takes one var-positional tuple
            shapes = None
            if settings.dynamic_batch:
                batch = torch.export.Dim("batch")
                shapes = (tuple({0: batch} for _ in args),)
            torch.onnx.export(wrapper, args, str(path), dynamic_shapes=shapes, dynamo=True,
                              verbose=False, external_data=False, **kwargs)


def _versions() -> dict[str, str]:
    import onnx

    return {"torch": torch.__version__, "onnx": onnx.__version__}


# --------------------------------------------------------------------------- public API
def export_graph_net(module: nn.Module, example_inputs: Mapping[str, torch.Tensor],
                     path: str | Path, *, output_names: Sequence[str],
                     settings: ExportSettings = ExportSettings(),
                     parity_inputs: Sequence[Mapping[str, torch.Tensor]] | None = None,
                     parity_description: str | None = None, method: str | None = None,
                     form: str | None = "gather") -> ExportedModel:
    """Export a module to ONNX, check it and verify it against torch.

    Args:
        module: the network; ``forward(*inputs)`` (or ``method``) takes the inputs positionally
            in ``example_inputs`` order and returns a tensor or a tuple of tensors.
        example_inputs: input name -> example tensor (the names become the ONNX input names;
            for a package refiner use :data:`facecraft.sdk.pipeline.package.REFINER_INPUTS` names).
        path: the ``.onnx`` file to write.
        output_names: ONNX output names, one per returned tensor.
        settings: opset, dynamic batch, tolerance, exporter.
        parity_inputs: input sets (same names) to verify on; default: ``example_inputs``.
        parity_description: what ``parity_inputs`` are, for the manifest.
        method: export this method instead of ``forward``.
        form: call ``set_form(form)`` on the module and every submodule that has it first
            (``None``: don't).

    Returns:
        :class:`ExportedModel`.

    Raises:
        InvalidInputError: bad arguments. FaceCraftError: the checker rejects the graph.
        ExportParityError: ONNX Runtime differs from torch by more than the tolerance.
    """
    import onnxruntime as ort

    if not isinstance(module, nn.Module):
        raise InvalidInputError(f"expected module an nn.Module, got {type(module).__name__}")
    if not example_inputs or not all(isinstance(v, torch.Tensor)
                                     for v in example_inputs.values()):
        raise InvalidInputError("example_inputs must map input names to tensors")
    names = list(example_inputs)
    out_names = list(output_names)
    path = Path(path)
    if form is not None:  # every (sub)module offering set_form, e.g. inside a wrapper
        for m in module.modules():
            if callable(getattr(m, "set_form", None)):
                m.set_form(form)
    module.eval()
    wrapper = _Positional(module, method).eval()
    args = tuple(example_inputs[n].detach().cpu() for n in names)
    with torch.inference_mode():
        ref_example = _as_tuple(wrapper(*args))
    if len(ref_example) != len(out_names):
        raise InvalidInputError(f"the module returns {len(ref_example)} tensors but "
                                f"{len(out_names)} output_names were given")
    from facecraft.training.graph_conv import persistent_graph_buffers

    # graph tables (Laplacians, pooling) as shared initializers, not a Constant per use
    with persistent_graph_buffers(wrapper):
        _run_export(wrapper, args, path, names, out_names, settings)
    try:
        opset, inputs, outputs = _check_and_describe(
            path, [tuple(t.shape) for t in ref_example], settings.dynamic_batch)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        sets = list(parity_inputs) if parity_inputs else [example_inputs]
        worst = 0.0
        count = 0
        for feeds in sets:
            x = tuple(feeds[n].detach().cpu() for n in names)
            with torch.inference_mode():
                ref = _as_tuple(wrapper(*x))
            got = sess.run(out_names, {n: t.numpy() for n, t in zip(names, x, strict=True)})
            for r, g in zip(ref, got, strict=True):
                if tuple(r.shape) != tuple(g.shape):
                    raise ExportParityError(f"{path}: ONNX Runtime output shape {g.shape} != "
                                            f"torch {tuple(r.shape)}")
                diff = np.abs(g.astype(np.float64) - r.double().numpy())
                worst = max(worst, float(diff.max()) if diff.size else 0.0)
            count += int(x[0].shape[0]) if x[0].dim() else 1
        if not np.isfinite(worst) or worst > settings.tolerance:
            raise ExportParityError(f"{path}: ONNX Runtime differs from torch by {worst:.3g} "
                                    f"(tolerance {settings.tolerance:g}); the graph uses an op "
                                    "that exports inexactly - try the other exporter or opset")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return ExportedModel(
        path=path, sha256=file_sha256(path), size_bytes=os.path.getsize(path), opset=opset,
        inputs=inputs, outputs=outputs, parity_max_abs_diff=worst,
        tolerance=settings.tolerance,
        parity_inputs=parity_description or ("the verification input sets given"
                                             if parity_inputs else "the example inputs"),
        num_parity_inputs=count,
        exporter={"name": "torch.onnx", "mode": settings.exporter, **_versions()},
    )


def _image_files(photos: Sequence[str | Path]) -> list[Path]:
    files: list[Path] = []
    for p in photos:
        p = Path(p)
        if p.is_dir():
            files += sorted(q for q in p.iterdir() if q.suffix.lower() in _IMAGE_SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise InvalidInputError(f"parity photo {p} does not exist")
    return files


def regressor_parity_crops(crop_size: int, *, photos: Sequence[str | Path] | None = None,
                           face_model: Any = None, count: int = 4,
                           seed: int = 0) -> tuple[torch.Tensor, str]:
    """Verification inputs for a regressor export.

    Args:
        crop_size: the regressor's crop side in pixels.
        photos: photo files or folders; their faces are detected and aligned exactly as the
            runtime does (:func:`facecraft.sdk.photo.ingest.ingest_photo`). Photos without a face
            are
            skipped.
        face_model: the :class:`~facecraft.sdk.MorphableModel` to render synthetic faces with
            when no photo gives a face (default: the built-in starter).
        count: how many crops.
        seed: synthetic faces' seed.

    Returns:
        ``(crops, description)``: (N, 3, S, S) float32 RGB in [0, 1] and what they are.
    """
    crops: list[np.ndarray] = []
    names: list[str] = []
    if photos:
        from facecraft.sdk.errors import FaceCraftError as _Err
        from facecraft.sdk.photo.detect import FaceDetector
        from facecraft.sdk.photo.ingest import IngestSettings, ingest_photo

        detector = FaceDetector()
        settings = IngestSettings(crop_size=crop_size)
        for f in _image_files(photos):
            if len(crops) >= count:
                break
            try:
                got = ingest_photo(f.read_bytes(), detector, settings=settings, source=str(f))
            except _Err:
                continue
            crops.append(got.faces[0].aligned.image)
            names.append(f.name)
    if crops:
        x = torch.from_numpy(np.stack(crops).astype(np.float32)).permute(0, 3, 1, 2)
        return x.contiguous(), f"{len(crops)} aligned crops of real photos ({', '.join(names)})"
    try:
        from facecraft.sdk.models.default_model import load_default_model
        from facecraft.training.synthetic import SyntheticFaces, SyntheticSettings

        model = face_model if face_model is not None else load_default_model()
        faces = SyntheticFaces(model, SyntheticSettings(image_size=crop_size), length=count,
                               seed=seed)
        x = faces.render_batch(range(count)).image.float().contiguous()
        return x, f"{count} rendered synthetic faces (SyntheticFaces seed {seed})"
    except Exception as e:  # rendering is a convenience; never block an export on it
        g = torch.Generator().manual_seed(seed)
        x = torch.rand(count, 3, crop_size, crop_size, generator=g)
        return x, f"{count} uniform random crops (seed {seed}; synthetic faces failed: {e})"


def export_regressor_onnx(regressor: nn.Module, path: str | Path, *,
                          settings: ExportSettings = ExportSettings(),
                          parity_crops: torch.Tensor | None = None,
                          parity_description: str | None = None) -> ExportedModel:
    """Export a coefficient regressor as ``images (B, 3, S, S) -> coeffs (B, K), features (B, F)``.

    Args:
        regressor: a :class:`~facecraft.training.regressor.CoeffRegressor`.
        path: the ``.onnx`` file.
        settings: see :class:`ExportSettings`.
        parity_crops: (N, 3, S, S) float RGB in [0, 1] to verify on (one batched run, and each
            crop alone when the batch is dynamic); default: :func:`regressor_parity_crops`
            (synthetic faces).
        parity_description: what the crops are, for the manifest.

    Returns:
        :class:`ExportedModel` (input ``"images"``, outputs ``"coeffs"`` in layout order and
        ``"features"``, the pooled backbone features).
    """
    from facecraft.training.regressor import CoeffRegressor

    if not isinstance(regressor, CoeffRegressor):
        raise InvalidInputError(f"expected a CoeffRegressor, got {type(regressor).__name__}")
    s = regressor.input_spec.crop_size
    if parity_crops is None:
        parity_crops, parity_description = regressor_parity_crops(s)
    if parity_crops.dim() != 4 or tuple(parity_crops.shape[1:]) != (3, s, s):
        raise InvalidInputError(f"expected parity_crops (N, 3, {s}, {s}), got "
                                f"{tuple(parity_crops.shape)}")
    crops = parity_crops.float()
    sets = [{REGRESSOR_INPUT: crops}]
    if settings.dynamic_batch:
        sets += [{REGRESSOR_INPUT: crops[i:i + 1]} for i in range(min(len(crops), 2))]
    example = {REGRESSOR_INPUT: crops[:2] if len(crops) >= 2 else crops}
    graph = _RegressorGraph(regressor.eval())
    with torch.inference_mode():
        got = graph(crops[:1])[0]
        want = regressor.forward_vector(crops[:1])
    if not torch.equal(got, want):  # the wrapper must be forward_vector, bit for bit
        raise FaceCraftError("internal: the regressor graph wrapper differs from forward_vector")
    out = export_graph_net(graph, example, path,
                           output_names=(REGRESSOR_OUTPUT, REGRESSOR_FEATURES),
                           settings=settings, parity_inputs=sets,
                           parity_description=parity_description, form=None)
    # count images, not runs: the batched run covers every crop once
    return dataclasses.replace(out, num_parity_inputs=int(len(crops)))
