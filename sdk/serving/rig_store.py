"""The gRPC server's rigs: the built-in starter plus a registry folder, and one
:class:`~facecraft.sdk.rigs.create.FaceRigger` per rig, built on first use and kept.

Used by :mod:`facecraft.sdk.serving.server` (``RegisterRig``, ``ListRigs``, ``FitRig``).
Registration
validates a rig twice before anything is stored: :func:`~facecraft.sdk.rigs.rig.load_rig` (the GLB
and
the sidecar agree) and a :class:`FaceRigger` (the rig registers to the server's face model);
then :func:`~facecraft.sdk.rigs.registry.import_rig` copies it into the folder. A rig whose files
change on disk (re-registered, or replaced by ``facecraft rigs import --force``) is reloaded.
"""

from __future__ import annotations

import json
import tempfile
import threading
from pathlib import Path

from facecraft.sdk.errors import FaceCraftError, InvalidInputError, ModelFormatError
from facecraft.sdk.models.morphable_model import MorphableModel
from facecraft.sdk.rigs.create import FaceRigger, RigCreateSettings
from facecraft.sdk.rigs.registry import _NAME_RE, STARTER_RIG, import_rig, list_rigs
from facecraft.sdk.rigs.rig import Rig, load_rig, sidecar_path, starter_rig

__all__ = ["UnknownRigError", "RigExistsError", "RigStore"]

_Stamp = tuple[int, ...]


class UnknownRigError(FaceCraftError):
    """No rig of that name (NOT_FOUND)."""


class RigExistsError(FaceCraftError):
    """A rig of that name is registered already and overwriting was not asked for
    (ALREADY_EXISTS)."""


def _stamp(glb: Path) -> _Stamp:
    a, b = glb.stat(), sidecar_path(glb).stat()
    return (a.st_mtime_ns, a.st_size, b.st_mtime_ns, b.st_size)


class RigStore:
    """Named rigs and their fitters for one face model.

    Args:
        folder: the registry folder (created on the first registration).
        model: the face model reconstructions come from.
        settings: fit settings of every rigger (the texture size is chosen per call).
        cache_dir: correspondence cache root (default: FaceCraft's cache folder).
    """

    def __init__(self, folder: str | Path, model: MorphableModel, *,
                 settings: RigCreateSettings | None = None,
                 cache_dir: str | Path | None = None) -> None:
        self.folder = Path(folder)
        self.model = model
        self.settings = RigCreateSettings() if settings is None else settings
        self.cache_dir = cache_dir
        self._lock = threading.Lock()
        self._rigs: dict[str, tuple[_Stamp, Rig]] = {}
        self._riggers: dict[str, tuple[_Stamp, FaceRigger]] = {}

    def _load(self, name: str) -> tuple[_Stamp, Rig]:
        """The rig of that name and its files' stamp (call with the lock held)."""
        if name == STARTER_RIG:
            stamp: _Stamp = ()
        else:
            glb = self.folder / f"{name}.glb"
            if not (_NAME_RE.match(name) and glb.is_file() and sidecar_path(glb).is_file()):
                known = ", ".join(e.name for e in list_rigs(self.folder))
                raise UnknownRigError(f"no rig named {name!r} on this server (it has: {known}); "
                                      "register it with RegisterRig")
            stamp = _stamp(glb)
        kept = self._rigs.get(name)
        if kept is not None and kept[0] == stamp:
            return kept
        if name == STARTER_RIG:
            rig = starter_rig()
        else:
            try:
                rig = load_rig(glb)
            except ModelFormatError as e:  # broken on disk: the server's problem (INTERNAL)
                raise ModelFormatError(f"registered rig {name!r}: {e}") from None
        self._rigs[name] = (stamp, rig)
        return stamp, rig

    def rig(self, name: str) -> Rig:
        """A rig by name.

        Raises:
            UnknownRigError: neither ``"starter"`` nor registered.
        """
        with self._lock:
            return self._load(name)[1]

    def get(self, name: str) -> FaceRigger:
        """The rigger of a rig by name (built on first use, and again when its files change).

        Raises:
            UnknownRigError: neither ``"starter"`` nor registered.
        """
        with self._lock:
            stamp, rig = self._load(name)
            kept = self._riggers.get(name)
            if kept is not None and kept[0] == stamp:
                return kept[1]
            rigger = FaceRigger(self.model, rig, settings=self.settings,
                                cache_dir=self.cache_dir)
            self._riggers[name] = (stamp, rigger)
            return rigger

    def rigs(self) -> list[Rig]:
        """Every rig: the starter first, then the registered ones by name (a registered rig
        whose files no longer load is left out)."""
        out = []
        for entry in list_rigs(self.folder):
            try:
                out.append(self.rig(entry.name))
            except FaceCraftError:
                continue
        return out

    def register(self, glb: bytes, sidecar_json: str, *, name: str | None = None,
                 overwrite: bool = False) -> Rig:
        """Validate a rig, check it registers to the face model, and store it.

        Args:
            glb: the GLB's bytes. sidecar_json: the sidecar's JSON text.
            name: the registry name (default: the sidecar's). overwrite: replace a rig of
                that name.

        Returns:
            The stored rig.

        Raises:
            InvalidInputError: an invalid rig or name (the message names the field).
            RigExistsError: the name is taken and ``overwrite`` is False.
        """
        if not glb:
            raise InvalidInputError("glb is empty; send the rig's .glb file's bytes")
        if not sidecar_json.strip():
            raise InvalidInputError("sidecar_json is empty; send the rig's NAME.rig.json text")
        try:
            named = bool(json.loads(sidecar_json).get("name"))
        except (ValueError, AttributeError):
            named = True  # load_rig says what is wrong with it
        if not (name or named):
            raise InvalidInputError('the sidecar has no "name"; set name to register the rig')
        with tempfile.TemporaryDirectory(prefix="facecraft-rig-") as tmp:
            path = Path(tmp) / "upload.glb"
            path.write_bytes(glb)
            side = sidecar_path(path)
            side.write_text(sidecar_json, encoding="utf-8")
            try:
                rig = load_rig(path, name=name or None)
            except (ModelFormatError, InvalidInputError) as e:
                raise InvalidInputError(str(e).replace(str(side), "sidecar_json")
                                        .replace(str(path), "glb")
                                        .replace(side.name, "sidecar_json")) from None
            if not _NAME_RE.match(rig.name) or rig.name == STARTER_RIG:
                raise InvalidInputError(f"rig name {rig.name!r}: use 1-64 letters, digits, "
                                        f"'_', '.' or '-', not {STARTER_RIG!r}; set name")
            # registers to the face model (the correspondence, cached) or raises
            rigger = FaceRigger(self.model, rig, settings=self.settings,
                                cache_dir=self.cache_dir)
            with self._lock:
                if (self.folder / f"{rig.name}.glb").exists() and not overwrite:
                    raise RigExistsError(f"a rig named {rig.name!r} is registered already; "
                                         "set overwrite to replace it")
                try:
                    stored = import_rig(path, name=rig.name, rigs_dir=self.folder,
                                        overwrite=overwrite)
                except ModelFormatError as e:
                    raise InvalidInputError(str(e)) from None
                stamp = _stamp(self.folder / f"{stored.name}.glb")
                self._rigs[stored.name] = (stamp, stored)
                self._riggers[stored.name] = (stamp, FaceRigger(
                    self.model, stored, settings=self.settings,
                    correspondence=rigger.fitter.correspondence))
            return stored
