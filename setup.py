"""Build hook: generate the gRPC stubs (``facecraft.sdk._proto``) from ``proto/`` at set-up.

Everything else about the build is in pyproject.toml. Setuptools finalizes ``build_py`` before
it looks at the packages' files: when ``egg_info`` lists them (the first step of ``pip install``,
editable or not) and before a wheel is built. That is where ``proto/run_codegen.py`` runs: it
writes the stubs into ``sdk/_proto/`` (ignored by git), so a regular build copies them into the
wheel and an editable install imports them from the working tree. After editing a ``.proto``
file, reinstall or run ``python proto/run_codegen.py``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
_generated = False


def _generate_stubs() -> None:
    global _generated
    if _generated:
        return
    spec = importlib.util.spec_from_file_location("_facecraft_run_codegen",
                                                  ROOT / "proto" / "run_codegen.py")
    codegen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(codegen)
    codegen.generate(ROOT / "sdk" / "_proto")
    _generated = True


class BuildPyWithStubs(build_py):
    """``build_py`` that generates the gRPC stubs first (for egg_info, wheels and editable
    installs alike)."""

    def finalize_options(self) -> None:
        _generate_stubs()
        super().finalize_options()


setup(cmdclass={"build_py": BuildPyWithStubs})
