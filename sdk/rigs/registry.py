"""A folder of named rigs: ``NAME.glb`` + ``NAME.rig.json`` each, plus the built-in starter.

The folder, first found: the ``rigs_dir`` argument, ``$FACECRAFT_RIGS``,
``$FACECRAFT_HOME/rigs``, ``$XDG_DATA_HOME/facecraft/rigs``, ``~/.local/share/facecraft/rigs``.
Rigs are user data (a studio's heads), so they live in a data folder, not the cache.
:func:`import_rig` validates a rig before copying it in; :func:`resolve_rig` turns what a user
types (``starter``, a registered name, or a path to a GLB) into a
:class:`~facecraft.sdk.rigs.rig.Rig`.
Nothing here is process-wide: every function takes the folder or reads the environment when
called.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInputError, ModelFormatError
from .rig import Rig, load_rig, sidecar_path, starter_rig

__all__ = ["STARTER_RIG", "RIG_NAME_PATTERN", "RigEntry", "default_rigs_dir", "is_rig_name",
           "list_rigs", "import_rig", "resolve_rig"]

#: The built-in rig's name.
STARTER_RIG = "starter"
#: What a registered rig's name must fully match: 1-64 letters, digits, ``_.-``, starting with a
#: letter or digit (no path separators, no trailing newline: it names files).
RIG_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}"
_NAME_RE = re.compile(RIG_NAME_PATTERN)


def is_rig_name(name: object) -> bool:
    """True when ``name`` is a string that fully matches :data:`RIG_NAME_PATTERN`."""
    return isinstance(name, str) and _NAME_RE.fullmatch(name) is not None


def default_rigs_dir() -> Path:
    """The rig registry folder (see the module docstring); not created here."""
    env = os.environ
    if env.get("FACECRAFT_RIGS"):
        return Path(env["FACECRAFT_RIGS"])
    if env.get("FACECRAFT_HOME"):
        return Path(env["FACECRAFT_HOME"]) / "rigs"
    data = env.get("XDG_DATA_HOME")
    return (Path(data) if data else Path.home() / ".local" / "share") / "facecraft" / "rigs"


@dataclass(frozen=True)
class RigEntry:
    """One registered rig.

    Attributes:
        name: its name. glb: its mesh file (None for the built-in starter).
        sidecar: its sidecar (None for the starter). builtin: True for the starter.
    """

    name: str
    glb: Path | None
    sidecar: Path | None
    builtin: bool = False


def _folder(rigs_dir: str | Path | None) -> Path:
    return Path(rigs_dir) if rigs_dir is not None else default_rigs_dir()


def list_rigs(rigs_dir: str | Path | None = None, *, builtin: bool = True) -> list[RigEntry]:
    """The registered rigs (the starter first when ``builtin``), sorted by name."""
    folder = _folder(rigs_dir)
    out = [RigEntry(STARTER_RIG, None, None, True)] if builtin else []
    if folder.is_dir():
        for glb in sorted(folder.glob("*.glb")):
            side = sidecar_path(glb)
            if side.is_file():
                out.append(RigEntry(glb.name[:-4], glb, side))
    return out


def import_rig(glb: str | Path, sidecar: str | Path | None = None, *, name: str | None = None,
               rigs_dir: str | Path | None = None, overwrite: bool = False) -> Rig:
    """Validate a rig and copy it into the registry as ``NAME.glb`` + ``NAME.rig.json``.

    Args:
        glb: the rig's GLB.
        sidecar: its sidecar JSON (default: ``NAME.rig.json`` next to the GLB).
        name: the registry name (default: the sidecar's ``name``); letters, digits, ``_.-``.
        rigs_dir: the registry folder (created).
        overwrite: replace a rig of that name.

    Returns:
        The rig as loaded from the registry.

    Raises:
        ModelFormatError: the rig is invalid (the message names the field).
        InvalidInputError: a bad or taken name.
    """
    from ..render.mesh_io import _atomic_write

    rig = load_rig(glb, sidecar, name=name)
    if not is_rig_name(rig.name) or rig.name == STARTER_RIG:
        raise InvalidInputError(f"rig name {rig.name!r}: use 1-64 letters, digits, '_', '.' or "
                                f"'-' (and not {STARTER_RIG!r}); pass --name")
    folder = _folder(rigs_dir)
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / f"{rig.name}.glb"
    if dst.exists() and not overwrite:
        raise InvalidInputError(f"a rig named {rig.name!r} is already registered in {folder} "
                                "(pass --force / overwrite=True to replace it)")
    side = Path(sidecar) if sidecar is not None else sidecar_path(glb)
    data = json.loads(side.read_text(encoding="utf-8"))
    data["name"] = rig.name
    _atomic_write(dst, Path(glb).read_bytes())
    _atomic_write(sidecar_path(dst), (json.dumps(data, indent=1) + "\n").encode("utf-8"))
    return load_rig(dst)


def resolve_rig(spec: str | Path, rigs_dir: str | Path | None = None, *,
                cache_dir: str | Path | None = None) -> Rig:
    """A rig from what a user typed: ``starter``, a registered name, or a GLB / glTF path (its
    sidecar next to it).

    Raises:
        ModelFormatError: a path whose rig is invalid, or a name that is not registered (the
            message lists the registered ones).
    """
    text = str(spec)
    if text == STARTER_RIG:
        return starter_rig(cache_dir)
    path = Path(text)
    if path.suffix.lower() in (".glb", ".gltf") or path.is_file():
        return load_rig(path)
    folder = _folder(rigs_dir)
    glb = folder / f"{text}.glb"
    if is_rig_name(text) and glb.is_file():
        return load_rig(glb)
    names = [e.name for e in list_rigs(folder)]
    raise ModelFormatError(f"no rig {text!r}: not a GLB path and not registered in {folder} "
                           f"(registered: {', '.join(names)}); `facecraft rigs import` adds one")
