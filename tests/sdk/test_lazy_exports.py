"""facecraft.sdk and its wings re-export their public names lazily (PEP 562)."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

SDK = Path(__file__).resolve().parents[2] / "sdk"
PACKAGES = ["facecraft.sdk"] + [f"facecraft.sdk.{w}" for w in
                                ("photo", "models", "render", "pipeline", "rigs", "serving")]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_export_resolves_to_its_module(package):
    mod = importlib.import_module(package)
    assert mod.__all__, package
    for name in mod.__all__:
        value = getattr(mod, name)
        assert value is getattr(importlib.import_module(f"{package}.{mod._EXPORTS[name]}"), name)
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        mod.not_a_name  # noqa: B018


def test_the_sdk_re_exports_every_wing_and_the_errors():
    import facecraft.sdk as sdk

    wings = {n for w in PACKAGES[1:] for n in importlib.import_module(w).__all__}
    errors = {"FaceCraftError", "InvalidInputError", "ModelFileError", "ModelFormatError",
              "NoFaceError", "PhotoTooLargeError"}
    assert set(sdk.__all__) == wings | errors


@pytest.mark.parametrize("package", PACKAGES[1:])
def test_type_checking_imports_match_exports(package):
    """The ``if TYPE_CHECKING`` block (for IDEs) names exactly the lazy exports, from the same
    modules."""
    mod = importlib.import_module(package)
    tree = ast.parse(Path(mod.__file__).read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If)
                 and getattr(n.test, "id", "") == "TYPE_CHECKING")
    seen = {}
    for node in block.body:
        sub = node.module.removeprefix(package + ".")
        seen.update({a.name: sub for a in node.names})
    assert seen == mod._EXPORTS


def test_importing_the_sdk_loads_nothing_heavy():
    heavy = "('torch', 'cv2', 'scipy', 'onnxruntime')"
    code = ("import sys, facecraft.sdk, facecraft.sdk.photo, facecraft.sdk.render; "
            f"print(sorted(m for m in {heavy} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_wing_is_an_attribute_of_the_sdk():
    import facecraft.sdk as sdk

    assert sdk.render.cameras.Pose is sdk.Pose
