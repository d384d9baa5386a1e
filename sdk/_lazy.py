"""Lazy re-exports (PEP 562) for ``facecraft.sdk`` and its wings.

A package's ``__init__`` names its public objects and the submodule each lives in; nothing is
imported until a name is first used. So ``import facecraft.sdk.client`` loads grpcio and protobuf,
not torch or OpenCV, while ``from facecraft.sdk import FaceCraft`` still works.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping


def attach(package: str, exports: Mapping[str, str], submodules: Iterable[str] = ()
           ) -> tuple[Callable[[str], object], Callable[[], list[str]], list[str]]:
    """Module-level ``__getattr__``, ``__dir__`` and ``__all__`` for *package*.

    Args:
        package: the package's dotted name (``__name__`` of its ``__init__``).
        exports: public name -> submodule, relative to *package* (``"render.cameras"``).
        submodules: subpackages/modules reachable as attributes (``facecraft.sdk.render``).
    """
    exports = dict(exports)
    submodules = frozenset(submodules)

    def __getattr__(name: str) -> object:
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        try:
            module = exports[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports) | submodules)

    return __getattr__, __dir__, list(exports)
