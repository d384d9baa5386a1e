"""The gRPC service: the server, wire conversion, metrics, its rig store and ``facecraft serve``.

Public names are re-exported lazily (PEP 562): importing this package loads nothing
heavy until a name is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import attach

_EXPORTS = {
    "FaceCraftServer": "server",
    "ServerSettings": "server",
    "create_server": "server",
}

__getattr__, __dir__, __all__ = attach(__name__, _EXPORTS)

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from .server import (  # noqa: F401
        FaceCraftServer,
        ServerSettings,
        create_server,
    )
