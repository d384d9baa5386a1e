"""Building the built-in model package, ``facecraft/sdk/data/default.fcpkg``.

The package the runtime loads when none is given ships inside ``facecraft.sdk`` as package data
(:func:`facecraft.sdk.pipeline.package.default_package_path`). :func:`build_default_package` writes
it
from trained checkpoints (``facecraft export default --regressor CKPT [--refiner CKPT]``).

:func:`write_random_regressor` writes an *untrained* checkpoint of the default architecture (the
starter model's layout, MobileNetV2 x0.5, 128 px crops as in ``configs/regressor_starter.json``)
with BatchNorm statistics calibrated on random crops, so its activations and outputs have
realistic magnitudes. It exists to exercise the export and runtime paths in tests and
benchmarks; its faces are meaningless.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from facecraft.sdk.errors import InvalidInputError
from facecraft.sdk.pipeline.package import ModelPackage, default_package_path

from .package import add_model, export_regressor

__all__ = ["build_default_package", "build_random_package", "write_random_regressor",
           "load_refiner_checkpoint"]

#: Spread of each coefficient block of :func:`write_random_regressor`'s outputs.
_RANDOM_OUTPUT_STD = {"identity": 0.5, "expression": 0.1, "albedo": 0.5, "angles": 0.1,
                      "lighting": 0.1, "translation": 0.005}


def write_random_regressor(path: str | Path, *, face_model: Any = "starter", seed: int = 0,
                           backbone: str = "mobilenet_v2", image_size: int = 128,
                           **backbone_kw: Any) -> Path:
    """Write an untrained regressor checkpoint with calibrated BatchNorm statistics.

    Args:
        path: the ``.safetensors`` file to write.
        face_model: ``"starter"``, a ``.fcm`` path or a :class:`~facecraft.sdk.MorphableModel`
            (sets the layout and the translation offset, as training does).
        seed: weights seed (the caller's global RNG state is restored).
        backbone: backbone name; ``backbone_kw`` default to ``width_mult=0.5`` for MobileNetV2.
        image_size: crop side in pixels.

    The head's rows are scaled so that each block varies by :data:`_RANDOM_OUTPUT_STD` across
    inputs (e.g. 0.1 rad of pose, 5 mm of translation): faces stay in the frame.

    Returns:
        ``path``.
    """
    from facecraft.sdk.models.default_model import resolve_model
    from facecraft.sdk.models.morphable_model import MorphableModel
    from facecraft.training.regressor import (
        CoeffLayout,
        InputSpec,
        coeff_regressor,
        save_regressor,
    )
    from facecraft.training.synthetic import template_translation

    model = face_model if isinstance(face_model, MorphableModel) else resolve_model(face_model)
    if backbone == "mobilenet_v2" and not backbone_kw:
        backbone_kw = {"width_mult": 0.5}
    offset = tuple(float(x) for x in template_translation(model, image_size))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        reg = coeff_regressor(layout=CoeffLayout.from_model(model), backbone=backbone,
                              input_spec=InputSpec(crop_size=image_size),
                              translation_offset=offset, **backbone_kw)
        # cumulative BatchNorm statistics over a few random batches (train mode, no grad)
        for m in reg.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
                m.momentum = None
        reg.train()
        with torch.no_grad():
            for _ in range(2):
                reg(torch.rand(8, 3, image_size, image_size))
        for m in reg.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.momentum = 0.1
        reg.eval()
        # head rows scaled so each block's outputs have a plausible spread (face in frame)
        with torch.no_grad():
            norm = float(reg.forward_features(torch.rand(4, 3, image_size, image_size))
                         .norm(dim=1).mean())
            w = torch.randn(reg.head.weight.shape) / max(norm, 1e-6)
            for name, sl in reg.layout.slices().items():
                w[sl] *= _RANDOM_OUTPUT_STD[name]
            reg.head.weight.copy_(w)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_regressor(reg, path, extra_meta={"trainer": "random_init", "seed": seed,
                                          "face_model": model.name})
    return path


class _FineTextureGraph(torch.nn.Module):
    """``(image_feature, vertex_input) -> fine albedo`` of a FineTextureNet (decoder, refiner
    and combiner in one graph)."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image_feature: torch.Tensor, vertex_input: torch.Tensor) -> torch.Tensor:
        return self.net(image_feature, vertex_input).fine


def load_refiner_checkpoint(path: str | Path, *, seed: int = 0
                            ) -> tuple[torch.nn.Module, dict[str, torch.Tensor],
                                       tuple[str, ...], dict[str, Any]]:
    """Load texture nets (``facecraft.training.texture_io.load_texture_nets``) for export.

    Without identity embeddings in the decoder's input, the whole fine-texture stage (decoder,
    refiner, combiner) becomes one graph ``(image_feature, vertex_input) -> fine albedo``, fed
    by the regressor's ``features`` output. Nets trained with ``identity_feature`` need a face
    recogniser the runtime does not run yet, so only their refiner is exported
    (``vertex_input -> signed colour``, ``output_encoding: "signed"``).

    Returns:
        ``(module, example_inputs, output_names, extra)`` for
        :func:`facecraft.export.package.add_model`; the examples are deterministic synthetic
        per-vertex inputs (albedo, photo colours, visibility) and features.

    Raises:
        InvalidInputError: the texture nets are not available in this FaceCraft.
        ModelFileError: not a texture checkpoint.
    """
    try:
        from facecraft.training.texture_io import load_texture_nets
    except ImportError as e:
        raise InvalidInputError(f"refiner export needs facecraft.training.texture_io ({e}); "
                                "export the package without --refiner") from None
    net, meta = load_texture_nets(path)
    v = int(net.num_vertices)
    g = torch.Generator().manual_seed(seed)
    vis = (torch.rand(2, v, 1, generator=g) > 0.4).float()
    vertex_input = torch.cat([torch.rand(2, v, 3, generator=g),
                              torch.rand(2, v, 3, generator=g) * vis, vis], -1)
    extra: dict[str, Any] = {"checkpoint": {"file": Path(path).name,
                                            "meta": json.loads(json.dumps(meta, default=str))}}
    if meta.get("identity_feature"):
        extra.update(output_encoding="signed", stage="refiner only (the decoder needs identity "
                                                   "embeddings the runtime does not compute)")
        return net.refiner, {"vertex_input": vertex_input}, ("refiner_out",), extra
    feature = torch.randn(2, int(meta["feature_dim"]), generator=g)
    extra.update(output_encoding="albedo", stage="decoder + refiner + combiner")
    return (_FineTextureGraph(net), {"image_feature": feature, "vertex_input": vertex_input},
            ("fine_albedo",), extra)


def build_random_package(out: str | Path, *, parity_photos: Sequence[str | Path] | None = None,
                         seed: int = 0, opset: int = 17) -> ModelPackage:
    """A package holding :func:`write_random_regressor`'s untrained regressor (tests and
    benchmarks of the export and runtime paths; its faces are meaningless).

    Args:
        out: the ``.fcpkg`` folder to write (replaced if it exists).
        parity_photos: photos verifying the export (default: synthetic faces).
        seed: weights seed.
        opset: ONNX opset.
    """
    import tempfile

    out = Path(out)
    with tempfile.TemporaryDirectory() as td:
        ckpt = write_random_regressor(Path(td) / "random_regressor.safetensors", seed=seed)
        return export_regressor(ckpt, out, opset=opset, parity_photos=parity_photos,
                                name=out.name.removesuffix(".fcpkg"), version="0.0.0-random",
                                description="untrained regressor (random weights, calibrated "
                                            "BatchNorm) for tests and benchmarks",
                                face_model="starter")


def build_default_package(regressor: str | Path, *, refiner: str | Path | None = None,
                          out: str | Path | None = None,
                          parity_photos: Sequence[str | Path] | None = None,
                          training_config: str | Path | None = None,
                          version: str = "0.1.0", opset: int = 17) -> ModelPackage:
    """Build the built-in package from checkpoints.

    Args:
        regressor: the trained regressor checkpoint.
        refiner: an optional texture-refiner checkpoint (see :func:`load_refiner_checkpoint`).
        out: where to write (default: :func:`facecraft.sdk.pipeline.package.default_package_path`).
        parity_photos: photo files / folders verifying the export.
        training_config: the regressor's training config (default: found next to its run).
        version: package version.
        opset: ONNX opset.

    Returns:
        The validated package.
    """
    out = Path(out) if out is not None else default_package_path()
    if out.suffix != ".fcpkg":
        raise InvalidInputError(f"a package folder name ends in .fcpkg, got {out}")
    pkg = export_regressor(regressor, out, opset=opset, parity_photos=parity_photos,
                           name="default", version=version, training_config=training_config,
                           description="FaceCraft's built-in package: the starter face model "
                                       "and its regressor")
    if refiner is not None:
        module, example, names, extra = load_refiner_checkpoint(refiner)
        pkg = add_model(out, "refiner", module, example, output_names=names, extra=extra,
                        parity_description="2 synthetic per-vertex input sets")
    (out / "README.txt").write_text(
        "FaceCraft's built-in model package (see facecraft.sdk.pipeline.package for the format).\n"
        f"Built by `facecraft export default` from {Path(regressor).name}.\n"
        + json.dumps({k: v for k, v in pkg.summary().items() if k != "path"}, indent=2)
        + "\n")
    return pkg
