"""Model packages: what export writes, what loading refuses, adding a refiner, Triton, the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from facecraft.export.cli import EXIT_UNAVAILABLE
from facecraft.export.package import add_model, export_regressor
from facecraft.export.tensorrt import tensorrt_available
from facecraft.export.triton import write_triton_repository
from facecraft.sdk.cli import EXIT_ERROR, main
from facecraft.sdk.errors import FaceCraftError, InvalidInputError, ModelFileError
from facecraft.sdk.pipeline.package import (
    MANIFEST_NAME,
    PACKAGE_FORMAT,
    PACKAGE_FORMAT_VERSION,
    default_package_path,
    load_package,
    read_manifest,
)
from facecraft.training.regressor import CoeffLayout, InputSpec, coeff_regressor

V = 6145  # the starter model's vertices


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A small regressor checkpoint (ResNet-18 width 8, 64 px) whose layout fits the starter."""
    from facecraft.training.regressor import save_regressor

    torch.manual_seed(0)
    reg = coeff_regressor(layout=CoeffLayout(num_identity=3, num_expression=2, num_albedo=1),
                          backbone="resnet18", input_spec=InputSpec(crop_size=64), width=8)
    path = tmp_path_factory.mktemp("tiny") / "tiny.safetensors"
    save_regressor(reg.eval(), path)
    return path


def _copy(package: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy.fcpkg"
    shutil.copytree(package, dst)
    return dst


def _edit(pkg: Path, fn) -> None:
    m = json.loads((pkg / MANIFEST_NAME).read_text())
    fn(m)
    (pkg / MANIFEST_NAME).write_text(json.dumps(m))


class Refiner(nn.Module):
    """A per-vertex stand-in for the GCN refiner: (B, V, 7) -> (B, V, 3) fine albedo."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(7, 3)

    def forward(self, vertex_input: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.lin(vertex_input))


# ------------------------------------------------------------------------------- contents
def test_manifest_records_everything_the_runtime_needs(package):
    pkg = load_package(package[0])
    m = pkg.manifest
    assert m["format"] == PACKAGE_FORMAT and m["format_version"] == PACKAGE_FORMAT_VERSION
    assert m["created"].endswith("Z")
    assert set(m["versions"]) >= {"facecraft", "torch", "onnx", "onnxruntime", "python"}
    ref = m["face_model"]
    assert ref["name"] == "starter" and ref["file"] is None
    assert len(ref["content_sha256"]) == 64 and len(ref["topology_sha256"]) == 64
    assert pkg.face_model.num_vertices == ref["num_vertices"] == V
    reg = m["models"]["regressor"]
    assert reg["input_spec"]["crop_size"] == 128 and reg["input_spec"]["normalised_in_graph"]
    assert reg["coeff_layout"]["order"] == ["identity", "expression", "albedo", "angles",
                                            "lighting", "translation"]
    assert pkg.coeff_layout.size == 31 + 53 + 9 + 3 + 27 + 3
    assert reg["backbone"] == {"name": "mobilenet_v2", "kwargs": {"width_mult": 0.5}}
    assert len(pkg.translation_offset) == 3
    assert m["training"]["checkpoint"]["meta"]["extra"]["trainer"] == "random_init"
    assert sorted(p.name for p in package[0].iterdir()) == [MANIFEST_NAME, "regressor.onnx"]


# ----------------------------------------------------------------------------- validation
def test_tampered_model_file_is_refused(package, tmp_path):
    pkg = _copy(package[0], tmp_path)
    with open(pkg / "regressor.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelFileError, match="SHA-256 mismatch.*re-export"):
        load_package(pkg)
    load_package(pkg, verify=False)  # hashes can be skipped deliberately


def test_missing_file_is_refused(package, tmp_path):
    pkg = _copy(package[0], tmp_path)
    (pkg / "regressor.onnx").unlink()
    with pytest.raises(ModelFileError, match="regressor file 'regressor.onnx' is missing"):
        load_package(pkg)
    with pytest.raises(ModelFileError, match="no such model package"):
        load_package(tmp_path / "nope.fcpkg")
    (pkg / MANIFEST_NAME).unlink()
    with pytest.raises(ModelFileError, match="not a model package"):
        load_package(pkg)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(format_version=PACKAGE_FORMAT_VERSION + 1),
     "written by a newer FaceCraft"),
    (lambda m: m.update(format_version="1"), "format_version must be an int"),
    (lambda m: m.update(format="something.else"), "not a FaceCraft model package"),
    (lambda m: m["models"]["regressor"].update(file="../regressor.onnx"),
     "must be a path inside the package"),
    (lambda m: m["models"].pop("regressor"), "has no regressor"),
    (lambda m: m["models"].update(upsampler={}), "unknown model roles"),
    (lambda m: m["models"]["regressor"].pop("sha256"), "missing 'sha256'"),
])
def test_malformed_manifest_is_refused(package, tmp_path, edit, message):
    pkg = _copy(package[0], tmp_path)
    _edit(pkg, edit)
    with pytest.raises(ModelFileError, match=message):
        load_package(pkg)


def test_layout_mismatches_are_refused(package, tmp_path):
    pkg = _copy(package[0], tmp_path)
    # the layout no longer sums to the graph's output width
    _edit(pkg, lambda m: m["models"]["regressor"]["coeff_layout"].update(num_identity=30))
    with pytest.raises(ModelFileError, match="coefficient layout mismatch.*126"):
        load_package(pkg)

    # consistent with the graph, but more modes than the face model has
    def more_modes(m):
        m["models"]["regressor"]["coeff_layout"].update(num_identity=32, num_expression=52)
    pkg2 = _copy(package[0], tmp_path / "b")
    _edit(pkg2, more_modes)
    with pytest.raises(ModelFileError, match="more modes than the face model.*'identity': "
                                             r"\(32, 31\)"):
        load_package(pkg2)

    # the face model reference does not describe the face model
    pkg3 = _copy(package[0], tmp_path / "c")
    _edit(pkg3, lambda m: m["face_model"].update(num_vertices=5023))
    with pytest.raises(ModelFileError, match="was exported for"):
        load_package(pkg3)

    pkg4 = _copy(package[0], tmp_path / "d")
    _edit(pkg4, lambda m: m["face_model"].update(topology_sha256="0" * 64))
    with pytest.raises(ModelFileError, match="another topology"):
        load_package(pkg4)

    pkg5 = _copy(package[0], tmp_path / "e")
    _edit(pkg5, lambda m: m["models"]["regressor"]["input_spec"].update(crop_size=224))
    with pytest.raises(ModelFileError, match=r"\(batch, 3, 224, 224\)"):
        load_package(pkg5)


def test_default_package_location():
    path = default_package_path()
    assert path.name == "default.fcpkg" and path.parent.name == "data"
    assert path.parent.parent.name == "sdk"
    if not (path / MANIFEST_NAME).is_file():
        with pytest.raises(ModelFileError, match="facecraft export default"):
            load_package(None)


# ------------------------------------------------------------------------------- export
def test_export_refuses_a_layout_the_face_model_cannot_decode(tmp_path):
    reg = coeff_regressor(layout=CoeffLayout(num_identity=40, num_expression=4, num_albedo=0),
                          backbone="resnet18", input_spec=InputSpec(crop_size=64), width=8)
    with pytest.raises(InvalidInputError, match="does not fit the face model 'starter'"):
        export_regressor(reg, tmp_path / "x.fcpkg")
    assert not list(tmp_path.iterdir())  # nothing left behind


def test_export_does_not_overwrite_unless_asked(package, tiny_checkpoint, tmp_path):
    pkg = _copy(package[0], tmp_path)
    before = (pkg / MANIFEST_NAME).read_text()
    with pytest.raises(InvalidInputError, match="exists"):
        export_regressor(tiny_checkpoint, pkg, overwrite=False)
    assert (pkg / MANIFEST_NAME).read_text() == before
    out = export_regressor(tiny_checkpoint, pkg, overwrite=True, name="small")  # a replacement
    assert out.name == "small" and out.coeff_layout.num_identity == 3
    assert [p.name for p in tmp_path.iterdir()] == [pkg.name]  # no staging or backup folders


def test_add_refiner_with_one_call(package, tmp_path):
    pkg = _copy(package[0], tmp_path)
    x = torch.rand(2, V, 7)
    out = add_model(pkg, "refiner", Refiner(), {"vertex_input": x},
                    output_names=("fine_albedo",), extra={"note": "test refiner"})
    assert out.refiner is not None and out.refiner.path.name == "refiner.onnx"
    assert out.refiner.parity_max_abs_diff < 1e-4
    assert out.refiner.inputs[0].shape == ("batch", V, 7)
    assert read_manifest(pkg)["models"]["refiner"]["note"] == "test refiner"


def test_add_model_failure_leaves_the_package_unchanged(package, tmp_path):
    pkg = _copy(package[0], tmp_path)
    before = sorted(p.name for p in pkg.iterdir()), (pkg / MANIFEST_NAME).read_text()
    with pytest.raises(FaceCraftError, match="not ones the runtime provides"):
        add_model(pkg, "refiner", Refiner(), {"mystery_input": torch.rand(1, V, 7)},
                  output_names=("fine_albedo",))
    assert (sorted(p.name for p in pkg.iterdir()), (pkg / MANIFEST_NAME).read_text()) == before
    with pytest.raises(InvalidInputError, match="role"):
        add_model(pkg, "regressor", Refiner(), {"x": torch.rand(1, 3, 7)}, output_names=("y",))


def test_triton_repository(package, tmp_path):
    written = write_triton_repository(package[0], tmp_path / "repo", max_batch_size=4)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        "repo/random_regressor/config.pbtxt"]
    cfg = written[0].read_text()
    assert 'platform: "onnxruntime_onnx"' in cfg and "max_batch_size: 4" in cfg
    assert 'name: "images"' in cfg and "dims: [ 3, 128, 128 ]" in cfg
    assert "dims: [ 126 ]" in cfg and "dynamic_batching" in cfg
    assert (tmp_path / "repo" / "random_regressor" / "1" / "model.onnx").is_file()


# ----------------------------------------------------------------------------------- CLI
def test_cli_export_package(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "cli.fcpkg"
    code = main(["export", "package", "--regressor", str(tiny_checkpoint), "-o", str(out),
                 "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["name"] == "cli" and summary["models"]["regressor"]["parity_max_abs_diff"] \
        < 1e-4
    assert load_package(out).face_model_ref.name == "starter"
    code = main(["export", "package", "--regressor", str(tiny_checkpoint), "-o", str(out)])
    assert code == EXIT_ERROR and "--force" in capsys.readouterr().err


def test_cli_export_usage_errors(capsys):
    with pytest.raises(SystemExit) as e:
        main(["export", "package", "-o", "x.fcpkg"])  # no --regressor
    assert e.value.code == 2
    assert main(["export", "package", "--regressor", "r.safetensors", "-o", "x"]) == 2


def test_cli_tensorrt_without_tensorrt(package, capsys):
    if tensorrt_available():
        pytest.skip("TensorRT is installed here")
    code = main(["export", "tensorrt", str(package[0]), "--fp16"])
    err = capsys.readouterr().err
    assert code == EXIT_UNAVAILABLE == 69
    assert err.startswith("facecraft: error: TensorRT is not available")
    assert "pypi.nvidia.com" in err and err.count("\n") == 1


# ------------------------------------------------------------------- the real texture nets
def _texture_checkpoint(path, *, identity_feature: bool, feature_dim: int = 64):
    tn = pytest.importorskip("facecraft.training.texture_nets",
                             reason="the texture nets are not in this FaceCraft")
    tt = pytest.importorskip("facecraft.training.train_texture")
    from facecraft.sdk.models.default_model import load_default_model

    torch.manual_seed(0)
    net = tn.FineTextureNet(load_default_model().graph, feature_dim=feature_dim).eval()
    tt.save_texture_nets(net, path, meta={"face_model": "starter", "feature_dim": feature_dim,
                                          "identity_feature": identity_feature})
    return path


def test_cli_exports_the_texture_nets_as_the_refiner(tiny_checkpoint, tmp_path, capsys):
    """`--refiner`: decoder + refiner + combiner as one graph fed by the regressor's features,
    verified against torch like every other export."""
    tex = _texture_checkpoint(tmp_path / "texture.safetensors", identity_feature=False)
    out = tmp_path / "full.fcpkg"
    assert main(["export", "package", "--regressor", str(tiny_checkpoint), "--refiner",
                 str(tex), "-o", str(out)]) == 0
    assert "refiner" in capsys.readouterr().out
    pkg = load_package(out)
    ref = pkg.refiner
    assert [t.name for t in ref.inputs] == ["image_feature", "vertex_input"]
    assert ref.inputs[1].shape == ("batch", V, 7) and ref.outputs[0].shape == ("batch", V, 3)
    assert ref.parity_max_abs_diff < 1e-4 and ref.meta["output_encoding"] == "albedo"
    # features of another width than the regressor's are refused
    _edit(out, lambda m: m["models"]["refiner"]["inputs"][0].update(shape=["batch", 65]))
    with pytest.raises(ModelFileError, match="65 image features, the regressor gives 64"):
        load_package(out, verify=False)


def test_texture_nets_with_identity_features_export_the_refiner_only(tmp_path):
    from facecraft.export.build_default import load_refiner_checkpoint

    tex = _texture_checkpoint(tmp_path / "texture.safetensors", identity_feature=True)
    module, example, names, extra = load_refiner_checkpoint(tex)
    assert list(example) == ["vertex_input"] and names == ("refiner_out",)
    assert extra["output_encoding"] == "signed" and "refiner only" in extra["stage"]
