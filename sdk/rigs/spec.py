"""The sidecar of a character rig: what each morph target of the GLB means.

Sidecar (JSON, ``"format": "facecraft.rig"``, ``"version": 1``)::

    {
      "format": "facecraft.rig", "version": 1,
      "name": "my_head",                       # optional; default: the file's stem
      "description": "...",                    # optional
      "sliders": [                             # one per morph target the SDK may set
        {"name": "nose_width",                 # unique
         "target": "nose_width",               # morph-target name in the GLB (default: name)
         "kind": "identity",                   # "identity" (fitted to the face) or "expression"
         "min": -3, "max": 3, "default": 0,    # the slider's range, in morph-weight units
         "group": "nose", "label": "Nose width", "unit": "sd",     # optional, for UIs
         "arkit": null}                        # optional ARKit-52 name of an expression
      ],
      "symmetric_pairs": [["browDown_L", "browDown_R"]],          # optional, slider names
      "landmarks": {"vertices": [68 vertex ids]}                  # iBUG-68 order, or
                 | {"triangles": [68 ids], "barycentrics": [[b0, b1, b2] x 68]},
      "regions": {"face": [vertex ids], ...},  # optional; "face" weights the fit
      "extras": {}                             # optional, kept as given
    }

A slider's value is the morph target's weight (glTF: ``vertex = base + sum_k w_k delta_k``), so
an identity slider with range [-3, 3] may take negative weights. Morph targets the sidecar does
not list stay at their GLB default weight and are never fitted. Frame and units are glTF's
(metres, +Y up, the face looking down +Z), which is FaceCraft's model frame.

:class:`RigSpec` parses and validates it (:meth:`RigSpec.from_json`, every error names the field)
and writes it back (:meth:`RigSpec.to_json`); checks that need the mesh (targets exist, indices in
range) happen when a :class:`facecraft.sdk.rigs.rig.Rig` is made. :func:`arkit_name` maps blendshape
names onto Apple ARKit's 52.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidInputError, ModelFormatError
from ..photo.landmarks import NUM_LANDMARKS

__all__ = [
    "RIG_FORMAT",
    "RIG_VERSION",
    "ARKIT_52",
    "arkit_name",
    "SliderSpec",
    "RigSpec",
    "MAX_JSON_DEPTH",
    "parse_sidecar_json",
]

RIG_FORMAT = "facecraft.rig"
RIG_VERSION = 1

#: Apple ARKit's 52 blendshape names (``ARFaceAnchor.BlendShapeLocation``), ``Left`` = the
#: subject's left.
ARKIT_52: tuple[str, ...] = (
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight",
    "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft",
    "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight",
    "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
    "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft",
    "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper",
    "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight", "tongueOut",
)
_ARKIT_LOWER = {n.lower(): n for n in ARKIT_52}
_SIDE = re.compile(r"^(.+?)[_.\s-]?(L|R|Left|Right)$", re.IGNORECASE)

_TOP_KEYS = {"format", "version", "name", "description", "sliders", "symmetric_pairs",
             "landmarks", "regions", "extras"}
_SLIDER_KEYS = {"name", "target", "kind", "min", "max", "default", "group", "label", "unit",
                "arkit"}
_KINDS = ("identity", "expression")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")  # use with fullmatch (no "x\n")

#: Deepest nesting of arrays / objects a sidecar may have (a real one has 4: the document, a
#: list, an object, a list of indices; extras may add a few).
MAX_JSON_DEPTH = 16


def parse_sidecar_json(text: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` of a sidecar's text with its nesting bounded.

    Raises:
        InvalidInputError: arrays / objects nested deeper than ``max_depth`` (Python's parser
            would otherwise raise RecursionError past ~1000 levels).
        ValueError: not JSON (``json.JSONDecodeError``).
    """
    try:
        doc = json.loads(text)
    except RecursionError:
        doc = None
        depth = max_depth + 1
    else:
        depth, level = 0, [doc] if isinstance(doc, (dict, list)) else []
        while level and depth <= max_depth:  # breadth-first, one level of nesting per step
            depth += 1
            level = [v for c in level for v in (c.values() if isinstance(c, dict) else c)
                     if isinstance(v, (dict, list))]
    if depth > max_depth:
        raise InvalidInputError(f"the JSON is nested deeper than {max_depth} levels; a rig "
                                "sidecar needs a handful")
    return doc


def arkit_name(name: str) -> str | None:
    """The ARKit-52 name a blendshape name stands for, or None.

    Accepts ARKit's own names in any case (``EyeBlinkLeft``) and side suffixes ``_L``/``_R``,
    ``.L``/``.R``, ``Left``/``Right`` (ICT-FaceKit's ``eyeBlink_L`` -> ``eyeBlinkLeft``). A
    sided name whose base is unsided in ARKit maps to the base (``browInnerUp_L`` ->
    ``browInnerUp``, ``cheekPuff_R`` -> ``cheekPuff``).
    """
    if name.lower() in _ARKIT_LOWER:
        return _ARKIT_LOWER[name.lower()]
    m = _SIDE.match(name)
    if not m:
        return None
    base, side = m.group(1), m.group(2).lower()
    full = base + ("Left" if side.startswith("l") else "Right")
    return _ARKIT_LOWER.get(full.lower()) or _ARKIT_LOWER.get(base.lower())


# --------------------------------------------------------------------------- sidecar
@dataclass(frozen=True)
class SliderSpec:
    """One slider of a rig: a morph target, its range and what it means.

    Attributes:
        name: unique slider name (what slider-value JSON uses).
        target: the morph target's name in the GLB.
        kind: ``"identity"`` (fitted to a reconstructed face) or ``"expression"``.
        min: lowest value (morph weight). max: highest value. default: the rest value.
        group: UI group (e.g. ``"nose"``), may be empty.
        label: human-readable label, may be empty.
        unit: what one unit means (``"sd"``: one population standard deviation), may be empty.
        arkit: the ARKit-52 name of an expression slider, or None.
    """

    name: str
    target: str
    kind: str
    min: float
    max: float
    default: float = 0.0
    group: str = ""
    label: str = ""
    unit: str = ""
    arkit: str | None = None

    def __post_init__(self) -> None:
        where = f"slider {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise InvalidInputError("slider name must be a non-empty string")
        if not isinstance(self.target, str) or not self.target:
            raise InvalidInputError(f"{where}: target must be a non-empty string")
        if self.kind not in _KINDS:
            raise InvalidInputError(f"{where}: kind must be one of {_KINDS}, got {self.kind!r}")
        for f in ("min", "max", "default"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise InvalidInputError(f"{where}: {f} must be a finite number, got {v!r}")
            object.__setattr__(self, f, float(v))
        if not self.min < self.max:
            raise InvalidInputError(f"{where}: min ({self.min}) must be below max ({self.max})")
        if not self.min <= self.default <= self.max:
            raise InvalidInputError(f"{where}: default {self.default} is outside "
                                    f"[{self.min}, {self.max}]")

    @property
    def range(self) -> float:
        """``max - min``."""
        return self.max - self.min

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "target": self.target, "kind": self.kind,
                               "min": self.min, "max": self.max, "default": self.default}
        for f in ("group", "label", "unit"):
            if getattr(self, f):
                out[f] = getattr(self, f)
        if self.arkit:
            out["arkit"] = self.arkit
        return out


@dataclass(frozen=True, eq=False)
class RigSpec:
    """The sidecar of a rig (see the module docstring for the JSON).

    Attributes:
        name: the rig's name.
        sliders: the sliders, identity and expression, in the sidecar's order.
        symmetric_pairs: pairs of slider names (left, right) that mirror each other.
        landmark_vertices: (68,) int64 vertex ids of the iBUG-68 landmarks, or None when the
            landmarks are given as triangles + barycentrics.
        landmark_triangles: (68,) int64 triangle ids, or None.
        landmark_bary: (68, 3) float64 barycentric coordinates, or None.
        regions: vertex-id sets by name (``"face"`` weights the fit), int64 sorted.
        description: free text.
        extras: JSON-able extra data, kept as given.
    """

    name: str
    sliders: tuple[SliderSpec, ...]
    symmetric_pairs: tuple[tuple[str, str], ...] = ()
    landmark_vertices: np.ndarray | None = None
    landmark_triangles: np.ndarray | None = None
    landmark_bary: np.ndarray | None = None
    regions: dict[str, np.ndarray] = field(default_factory=dict)
    description: str = ""
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "sliders", tuple(self.sliders))
        if not self.sliders:
            raise InvalidInputError(f"rig {self.name!r}: sliders must list at least one slider")
        names = [s.name for s in self.sliders]
        targets = [s.target for s in self.sliders]
        for what, items in (("name", names), ("target", targets)):
            dup = sorted({n for n in items if items.count(n) > 1})
            if dup:
                raise InvalidInputError(f"rig {self.name!r}: sliders[].{what} repeats {dup}")
        by_name = {s.name: s for s in self.sliders}
        pairs = []
        for i, pair in enumerate(self.symmetric_pairs):
            if len(pair) != 2:
                raise InvalidInputError(f"symmetric_pairs[{i}] must be two slider names")
            a, b = (str(x) for x in pair)
            for x in (a, b):
                if x not in by_name:
                    raise InvalidInputError(f"symmetric_pairs[{i}] names {x!r}, which is not "
                                            "a slider")
            if a == b or by_name[a].kind != by_name[b].kind:
                raise InvalidInputError(f"symmetric_pairs[{i}]: {a!r} and {b!r} must be two "
                                        "different sliders of the same kind")
            pairs.append((a, b))
        set_(self, "symmetric_pairs", tuple(pairs))
        if self.landmark_vertices is not None:
            lv = np.asarray(self.landmark_vertices, np.int64).reshape(-1)
            if lv.shape != (NUM_LANDMARKS,):
                raise InvalidInputError(f"landmarks.vertices must list {NUM_LANDMARKS} vertex "
                                        f"ids, got {lv.size}")
            set_(self, "landmark_vertices", lv)
        else:
            if self.landmark_triangles is None or self.landmark_bary is None:
                raise InvalidInputError("landmarks must give either vertices or triangles and "
                                        "barycentrics")
            lt = np.asarray(self.landmark_triangles, np.int64).reshape(-1)
            lb = np.asarray(self.landmark_bary, np.float64)
            if lt.shape != (NUM_LANDMARKS,):
                raise InvalidInputError(f"landmarks.triangles must list {NUM_LANDMARKS} "
                                        f"triangle ids, got {lt.size}")
            if lb.shape != (NUM_LANDMARKS, 3) or not np.isfinite(lb).all():
                raise InvalidInputError(f"landmarks.barycentrics must be {NUM_LANDMARKS} "
                                        f"triples of finite numbers, got shape {lb.shape}")
            if (lb < -1e-4).any() or np.abs(lb.sum(1) - 1).max() > 1e-3:
                bad = int(np.flatnonzero((lb < -1e-4).any(1) | (np.abs(lb.sum(1) - 1) > 1e-3))[0])
                raise InvalidInputError(f"landmarks.barycentrics[{bad}] = {lb[bad].tolist()} must "
                                        "be non-negative and sum to 1")
            set_(self, "landmark_triangles", lt)
            set_(self, "landmark_bary", lb / lb.sum(1, keepdims=True))
        set_(self, "regions", {str(k): np.unique(np.asarray(v, np.int64).reshape(-1))
                               for k, v in self.regions.items()})

    @property
    def identity_sliders(self) -> tuple[SliderSpec, ...]:
        return tuple(s for s in self.sliders if s.kind == "identity")

    @property
    def expression_sliders(self) -> tuple[SliderSpec, ...]:
        return tuple(s for s in self.sliders if s.kind == "expression")

    def to_json(self) -> dict[str, Any]:
        """The sidecar as a JSON-able dict."""
        if self.landmark_vertices is not None:
            lm: dict[str, Any] = {"vertices": self.landmark_vertices.tolist()}
        else:
            assert self.landmark_triangles is not None and self.landmark_bary is not None
            lm = {"triangles": self.landmark_triangles.tolist(),
                  "barycentrics": [[round(float(x), 7) for x in row]
                                   for row in self.landmark_bary]}
        out: dict[str, Any] = {"format": RIG_FORMAT, "version": RIG_VERSION, "name": self.name}
        if self.description:
            out["description"] = self.description
        out["sliders"] = [s.to_json() for s in self.sliders]
        out["symmetric_pairs"] = [list(p) for p in self.symmetric_pairs]
        out["landmarks"] = lm
        if self.regions:
            out["regions"] = {k: v.tolist() for k, v in sorted(self.regions.items())}
        if self.extras:
            out["extras"] = self.extras
        return out

    @classmethod
    def from_json(cls, data: Any, *, default_name: str = "rig",
                  source: str = "sidecar") -> RigSpec:
        """Parse and validate a sidecar dict; errors name the offending field.

        Raises:
            ModelFormatError: a field is missing, unknown or of the wrong type or value.
        """
        def fail(msg: str) -> ModelFormatError:
            return ModelFormatError(f"{source}: {msg}")

        if not isinstance(data, dict):
            raise fail(f"expected a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - _TOP_KEYS)
        if unknown:
            raise fail(f"unknown field(s) {unknown}; allowed: {sorted(_TOP_KEYS)}")
        if data.get("format", RIG_FORMAT) != RIG_FORMAT:
            raise fail(f"format must be {RIG_FORMAT!r}, got {data.get('format')!r}")
        if data.get("version", RIG_VERSION) != RIG_VERSION:
            raise fail(f"version {data.get('version')!r} is not supported (this FaceCraft "
                       f"reads version {RIG_VERSION})")
        name = data.get("name", default_name)
        if not isinstance(name, str) or not name:
            raise fail(f"name must be a non-empty string, got {name!r}")
        raw_sliders = data.get("sliders")
        if not isinstance(raw_sliders, list) or not raw_sliders:
            raise fail("sliders must be a non-empty list of slider objects")
        sliders = []
        for i, s in enumerate(raw_sliders):
            where = f"sliders[{i}]"
            if not isinstance(s, dict):
                raise fail(f"{where} must be an object, got {type(s).__name__}")
            bad = sorted(set(s) - _SLIDER_KEYS)
            if bad:
                raise fail(f"{where} has unknown field(s) {bad}; allowed: {sorted(_SLIDER_KEYS)}")
            for key in ("name", "kind", "min", "max"):
                if key not in s:
                    raise fail(f"{where}.{key} is missing")
            for key in ("name", "target", "kind", "group", "label", "unit"):
                if key in s and not isinstance(s[key], str):
                    raise fail(f"{where}.{key} must be a string, got {s[key]!r}")
            try:
                sliders.append(SliderSpec(
                    name=s["name"], target=s.get("target", s["name"]), kind=s["kind"],
                    min=s["min"], max=s["max"], default=s.get("default", 0.0),
                    group=s.get("group", ""), label=s.get("label", ""), unit=s.get("unit", ""),
                    arkit=s.get("arkit")))
            except InvalidInputError as e:
                raise fail(f"{where}: {e}") from None
        lm = data.get("landmarks")
        if not isinstance(lm, dict):
            raise fail("landmarks is missing: give {\"vertices\": [68 ids]} or "
                       "{\"triangles\": [68 ids], \"barycentrics\": [[b0, b1, b2] x 68]}")
        lm_kw: dict[str, Any] = {}
        try:
            if "vertices" in lm:
                lm_kw["landmark_vertices"] = _int_list(lm["vertices"], "landmarks.vertices")
            elif "triangles" in lm and "barycentrics" in lm:
                lm_kw["landmark_triangles"] = _int_list(lm["triangles"], "landmarks.triangles")
                lm_kw["landmark_bary"] = np.asarray(lm["barycentrics"], np.float64)
            else:
                raise InvalidInputError("landmarks must have vertices, or triangles and "
                                        "barycentrics")
            regions = data.get("regions") or {}
            if not isinstance(regions, dict):
                raise InvalidInputError("regions must be an object of vertex-id lists")
            regions = {k: _int_list(v, f"regions.{k}") for k, v in regions.items()}
            pairs = data.get("symmetric_pairs") or []
            if not isinstance(pairs, list) or not all(isinstance(p, list) for p in pairs):
                raise InvalidInputError("symmetric_pairs must be a list of [left, right] names")
            extras = data.get("extras") or {}
            if not isinstance(extras, dict):
                raise InvalidInputError("extras must be an object")
            return cls(name=name, sliders=tuple(sliders), symmetric_pairs=tuple(pairs),
                       regions=regions, description=str(data.get("description", "")),
                       extras=extras, **lm_kw)
        except (InvalidInputError, ValueError, TypeError) as e:
            raise fail(str(e)) from None


def _int_list(x: Any, what: str) -> np.ndarray:
    if not isinstance(x, list) or not all(isinstance(i, int) and not isinstance(i, bool)
                                          for i in x):
        raise InvalidInputError(f"{what} must be a list of integers")
    return np.asarray(x, np.int64)
