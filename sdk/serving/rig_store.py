"""The gRPC server's rigs: the built-in starter plus a registry folder, and one
:class:`~facecraft.sdk.rigs.create.FaceRigger` per rig, built on first use.

Used by :mod:`facecraft.sdk.serving.server` (``RegisterRig``, ``ListRigs``, ``FitRig``).
Registration validates a rig twice before anything is stored: :func:`~facecraft.sdk.rigs.rig.
load_rig` (the GLB and the sidecar agree) and a :class:`FaceRigger` (the rig registers to the
server's face model); then :func:`~facecraft.sdk.rigs.registry.import_rig` copies it into the
folder. A rig whose files change on disk (re-registered, or replaced by ``facecraft rigs import
--force``) is reloaded.

Everything a client can make the server hold is bounded (:class:`RigLimits`): registered rigs
(count, bytes per rig, bytes in all), rigs kept loaded in memory (least recently used dropped;
each loaded rig holds its mesh, morph targets and correspondence, tens of MB for a large rig),
and the correspondence cache folder (oldest files removed).
"""

from __future__ import annotations

import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from ..errors import FaceCraftError, InvalidInputError, ModelFormatError
from ..models.morphable_model import MorphableModel
from ..rigs.create import FaceRigger, RigCreateSettings
from ..rigs.registry import STARTER_RIG, import_rig, is_rig_name, list_rigs
from ..rigs.rig import Rig, load_rig, sidecar_path, starter_rig
from ..rigs.spec import parse_sidecar_json
from .plumbing import shown
from .status import RigExistsError, RigQuotaError, UnknownRigError

__all__ = ["UnknownRigError", "RigExistsError", "RigQuotaError", "RigLimits", "RigStore"]

_Stamp = tuple[int, ...]
_MiB = 2 ** 20


@dataclass(frozen=True)
class RigLimits:
    """What registrations may make a server hold.

    Attributes:
        max_rigs: registered rigs in the folder at most (the starter not counted).
        max_rig_bytes: one rig's GLB + sidecar, bytes.
        max_total_bytes: every registered rig's files together, bytes.
        max_loaded: rigs (with their fitters) kept in memory; the least recently used beyond
            are dropped and reloaded from disk when fitted again.
        cache_bytes: the correspondence cache folder's size, bytes; the oldest files beyond
            are removed (rebuilt when needed: a few seconds per rig).
    """

    max_rigs: int = 32
    max_rig_bytes: int = 16 * _MiB
    max_total_bytes: int = 256 * _MiB
    max_loaded: int = 4
    cache_bytes: int = 64 * _MiB

    def __post_init__(self) -> None:
        for name in ("max_rigs", "max_rig_bytes", "max_total_bytes", "max_loaded",
                     "cache_bytes"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise InvalidInputError(f"RigLimits.{name} must be an int >= 1, got {v!r}")


def _stamp(glb: Path) -> _Stamp:
    a, b = glb.stat(), sidecar_path(glb).stat()
    return (a.st_mtime_ns, a.st_size, b.st_mtime_ns, b.st_size)


class RigStore:
    """Named rigs and their fitters for one face model.

    Args:
        folder: the registry folder (created on the first registration).
        model: the face model reconstructions come from.
        settings: fit settings of every rigger (the texture size is chosen per call).
        cache_dir: correspondence cache root (default: FaceCraft's cache folder; give the
            store a folder of its own: it removes the oldest files beyond
            ``limits.cache_bytes``).
        limits: :class:`RigLimits`.
    """

    def __init__(self, folder: str | Path, model: MorphableModel, *,
                 settings: RigCreateSettings | None = None,
                 cache_dir: str | Path | None = None,
                 limits: RigLimits = RigLimits()) -> None:
        self.folder = Path(folder)
        self.model = model
        self.settings = RigCreateSettings() if settings is None else settings
        self.cache_dir = cache_dir
        self.limits = limits
        self._lock = threading.Lock()
        self._rigs: OrderedDict[str, tuple[_Stamp, Rig]] = OrderedDict()
        self._riggers: OrderedDict[str, tuple[_Stamp, FaceRigger]] = OrderedDict()

    def loaded(self) -> list[str]:
        """Names of the rigs held in memory now, least recently used first."""
        with self._lock:
            return list(self._rigs)

    def _keep(self, name: str, stamp: _Stamp, rig: Rig,
              rigger: FaceRigger | None = None) -> None:
        """Hold a rig (and its rigger) as the most recently used; drop the least recently used
        beyond ``limits.max_loaded`` (call with the lock held)."""
        self._rigs[name] = (stamp, rig)
        self._rigs.move_to_end(name)
        if rigger is not None:
            self._riggers[name] = (stamp, rigger)
            self._riggers.move_to_end(name)
        while len(self._rigs) > self.limits.max_loaded:
            old, _ = self._rigs.popitem(last=False)
            self._riggers.pop(old, None)

    def _trim_cache(self) -> None:
        """Remove the oldest correspondence cache files beyond ``limits.cache_bytes``."""
        if self.cache_dir is None:
            return  # FaceCraft's shared cache folder is not the server's to prune
        files = [p for p in Path(self.cache_dir).rglob("*") if p.is_file()]
        stats = sorted(((p.stat().st_mtime_ns, p.stat().st_size, p) for p in files),
                       key=lambda t: t[0])
        total = sum(size for _, size, _ in stats)
        for _, size, path in stats:
            if total <= self.limits.cache_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size

    def _load(self, name: str) -> tuple[_Stamp, Rig]:
        """The rig of that name and its files' stamp (call with the lock held)."""
        if name == STARTER_RIG:
            stamp: _Stamp = ()
        else:
            glb = self.folder / f"{name}.glb"
            if not (is_rig_name(name) and glb.is_file() and sidecar_path(glb).is_file()):
                known = ", ".join(e.name for e in list_rigs(self.folder)[:20])
                raise UnknownRigError(f"no rig named {shown(name)} on this server (it has: "
                                      f"{known}); register it with RegisterRig")
            stamp = _stamp(glb)
        kept = self._rigs.get(name)
        if kept is not None and kept[0] == stamp:
            self._rigs.move_to_end(name)
            return kept
        if name == STARTER_RIG:
            rig = starter_rig()
        else:
            try:
                rig = load_rig(glb)
            except ModelFormatError as e:  # broken on disk: the server's problem (INTERNAL)
                raise ModelFormatError(f"registered rig {name!r}: {e}") from None
        self._keep(name, stamp, rig)
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
                self._riggers.move_to_end(name)
                return kept[1]
            rigger = FaceRigger(self.model, rig, settings=self.settings,
                                cache_dir=self.cache_dir)
            self._keep(name, stamp, rig, rigger)
            self._trim_cache()
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

    def _check_quota(self, name: str | None, size: int, overwrite: bool) -> None:
        """Raise :class:`RigQuotaError` if storing ``size`` bytes as ``name`` would exceed
        the limits (``name`` None: not known yet, counted as a new rig)."""
        lim = self.limits
        if size > lim.max_rig_bytes:
            raise RigQuotaError(f"the rig is {size / _MiB:.1f} MiB (GLB + sidecar), above this "
                                f"server's {lim.max_rig_bytes / _MiB:.1f} MiB per rig")
        entries = list_rigs(self.folder, builtin=False)
        replaced = [e for e in entries if e.name == name] if overwrite else []
        if not replaced and len(entries) >= lim.max_rigs:
            raise RigQuotaError(f"this server holds its limit of {lim.max_rigs} registered "
                                "rigs; overwrite one, or ask its operator for more")
        used = sum(p.stat().st_size for e in entries if e not in replaced
                   for p in (e.glb, e.sidecar) if p is not None and p.is_file())
        if used + size > lim.max_total_bytes:
            raise RigQuotaError(f"registered rigs would take {(used + size) / _MiB:.1f} MiB, "
                                f"above this server's {lim.max_total_bytes / _MiB:.1f} MiB")

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
            RigQuotaError: the rig is too large, or the server holds its limit of rigs.
        """
        if not glb:
            raise InvalidInputError("glb is empty; send the rig's .glb file's bytes")
        if not sidecar_json.strip():
            raise InvalidInputError("sidecar_json is empty; send the rig's NAME.rig.json text")
        if name and (not is_rig_name(name) or name == STARTER_RIG):
            raise InvalidInputError(f"rig name {shown(name)}: use 1-64 letters, digits, '_', "
                                    f"'.' or '-' (starting with a letter or digit), not "
                                    f"{STARTER_RIG!r}")
        self._check_quota(name or None, len(glb) + len(sidecar_json.encode("utf-8")), overwrite)
        try:
            doc = parse_sidecar_json(sidecar_json)
            named = not isinstance(doc, dict) or bool(doc.get("name"))
        except InvalidInputError as e:
            raise InvalidInputError(f"sidecar_json: {e}") from None
        except ValueError:
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
            except RecursionError:  # the GLB's JSON chunk nested absurdly deep
                raise InvalidInputError("glb: its JSON is nested too deeply to be a glTF "
                                        "file") from None
            if not is_rig_name(rig.name) or rig.name == STARTER_RIG:
                raise InvalidInputError(f"rig name {shown(rig.name)}: use 1-64 letters, "
                                        f"digits, '_', '.' or '-', not {STARTER_RIG!r}; set "
                                        "name")
            # registers to the face model (the correspondence, cached) or raises
            rigger = FaceRigger(self.model, rig, settings=self.settings,
                                cache_dir=self.cache_dir)
            with self._lock:
                if (self.folder / f"{rig.name}.glb").exists() and not overwrite:
                    raise RigExistsError(f"a rig named {rig.name!r} is registered already; "
                                         "set overwrite to replace it")
                self._check_quota(rig.name, len(glb) + len(sidecar_json.encode("utf-8")),
                                  overwrite)
                try:
                    stored = import_rig(path, name=rig.name, rigs_dir=self.folder,
                                        overwrite=overwrite)
                except ModelFormatError as e:
                    raise InvalidInputError(str(e)) from None
                stamp = _stamp(self.folder / f"{stored.name}.glb")
                self._keep(stored.name, stamp, stored, FaceRigger(
                    self.model, stored, settings=self.settings,
                    correspondence=rigger.fitter.correspondence))
                self._trim_cache()
            return stored
