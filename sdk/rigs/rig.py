"""Character rigs: a game's head mesh whose morph targets are its sliders, plus a JSON sidecar.

A studio exports a rig from Blender or Maya as a glTF 2.0 / GLB head mesh whose morph targets
(shape keys) are its sliders, and writes a small sidecar (``NAME.rig.json``) that says what the
targets mean. :func:`load_rig` reads both (with :mod:`facecraft.sdk.rigs.gltf`) and validates them
against each other; every error names the field. :func:`starter_rig` is FaceCraft's starter
model exported as the default rig. The registry of named rigs is
:mod:`facecraft.sdk.rigs.registry`; fitting a face to a rig is :mod:`facecraft.sdk.rigs.fit`.

The sidecar's format is documented in :mod:`facecraft.sdk.rigs.spec` (whose names are re-exported
here). A slider's value is the morph target's weight (glTF: ``vertex = base + sum_k w_k
delta_k``), so an identity slider with range [-3, 3] may take negative weights. Morph targets the
sidecar does not list stay at their GLB default weight and are never fitted. Frame and units are
glTF's (metres, +Y up, the face looking down +Z), which is FaceCraft's model frame.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidInputError, ModelFormatError
from ..models.morphable_model import MorphableModel
from .spec import (
    ARKIT_52,
    RIG_FORMAT,
    RIG_VERSION,
    RigSpec,
    SliderSpec,
    arkit_name,
)

if TYPE_CHECKING:
    from .gltf import GltfMesh

__all__ = [
    "RIG_FORMAT",
    "RIG_VERSION",
    "ARKIT_52",
    "arkit_name",
    "SliderSpec",
    "RigSpec",
    "Rig",
    "BAKED_IDENTITY",
    "load_rig",
    "save_rig",
    "sidecar_path",
    "rig_from_model",
    "starter_rig",
]


# --------------------------------------------------------------------------- the rig
@dataclass(frozen=True, eq=False)
class Rig:
    """A character rig: a neutral head mesh, morph targets and the sidecar that explains them.

    Attributes:
        name: the rig's name.
        vertices: (V, 3) float32 neutral positions, metres, glTF / model frame.
        triangles: (F, 3) int64, counter-clockwise seen from outside.
        uvs: (V, 2) float32 texture coordinates, origin bottom-left (OBJ convention; a GLB
            stores ``1 - v``), or (0, 2) without a layout. One UV per vertex, as in glTF
            (vertices are split along UV seams).
        targets: (T, V, 3) float32 morph-target position deltas, metres per unit weight.
        target_names: T morph-target names.
        spec: the sidecar (:class:`RigSpec`).
        target_defaults: (T,) float32 default weights of the GLB (used for targets no slider
            sets); zeros when None.
        texture_png: the GLB's base-colour texture (PNG bytes), or None.
        source: where the rig was loaded from (for messages), may be empty.
        landmark_faces: (68,) int64 triangle of each landmark (derived).
        landmark_bary: (68, 3) float64 barycentric coordinates (derived).
    """

    name: str
    vertices: np.ndarray
    triangles: np.ndarray
    uvs: np.ndarray
    targets: np.ndarray
    target_names: tuple[str, ...]
    spec: RigSpec
    target_defaults: np.ndarray | None = None
    texture_png: bytes | None = None
    source: str = ""
    landmark_faces: np.ndarray = field(init=False, repr=False)
    landmark_bary: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        where = f"rig {self.name!r}" + (f" ({self.source})" if self.source else "")

        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise InvalidInputError(f"{where}: {msg}")

        verts = np.ascontiguousarray(self.vertices, np.float32)
        v = len(verts)
        need(verts.ndim == 2 and verts.shape[1] == 3 and v >= 3,
             f"vertices must be (V, 3), got {verts.shape}")
        need(bool(np.isfinite(verts).all()), "vertices contain NaN or infinite values")
        tri = np.ascontiguousarray(self.triangles, np.int64)
        need(tri.ndim == 2 and tri.shape[1] == 3 and len(tri) > 0,
             f"triangles must be (F, 3), got {tri.shape}")
        need(tri.min() >= 0 and tri.max() < v, f"triangles index vertices outside [0, {v})")
        uvs = np.ascontiguousarray(np.asarray(self.uvs, np.float32).reshape(-1, 2))
        need(len(uvs) in (0, v), f"uvs must be ({v}, 2) or empty, got {uvs.shape}")
        targets = np.ascontiguousarray(self.targets, np.float32)
        if targets.size == 0:
            targets = np.zeros((0, v, 3), np.float32)
        need(targets.ndim == 3 and targets.shape[1:] == (v, 3),
             f"targets must be (T, {v}, 3), got {targets.shape}")
        names = tuple(str(n) for n in self.target_names)
        need(len(names) == len(targets), f"{len(names)} target_names for {len(targets)} targets")
        dup = sorted({n for n in names if names.count(n) > 1})
        need(not dup, f"morph-target names repeat: {dup[:5]}")
        defaults = (np.zeros(len(targets), np.float32) if self.target_defaults is None
                    else np.asarray(self.target_defaults, np.float32).reshape(-1))
        need(defaults.shape == (len(targets),),
             f"target_defaults must be ({len(targets)},), got {defaults.shape}")
        set_(self, "vertices", verts)
        set_(self, "triangles", tri)
        set_(self, "uvs", uvs)
        set_(self, "targets", targets)
        set_(self, "target_names", names)
        set_(self, "target_defaults", defaults)
        spec = self.spec
        have = set(names)
        for i, s in enumerate(spec.sliders):
            need(s.target in have, f"sidecar sliders[{i}] ({s.name!r}) names morph target "
                 f"{s.target!r}, which the mesh does not have (it has {len(names)} targets"
                 + (f", e.g. {list(names[:4])}" if names else "") + ")")
        for k, ids in spec.regions.items():
            need(ids.size == 0 or (ids[0] >= 0 and ids[-1] < v),
                 f"sidecar regions.{k} indexes vertices outside [0, {v})")
        if spec.landmark_vertices is not None:
            lv = spec.landmark_vertices
            need(lv.min() >= 0 and lv.max() < v,
                 f"sidecar landmarks.vertices index vertices outside [0, {v})")
            from ..models.morphable_model import landmarks_from_vertices

            faces, bary = landmarks_from_vertices(lv, tri)
        else:
            faces, bary = spec.landmark_triangles, spec.landmark_bary
            need(faces.min() >= 0 and faces.max() < len(tri),
                 f"sidecar landmarks.triangles index triangles outside [0, {len(tri)})")
        set_(self, "landmark_faces", np.asarray(faces, np.int64))
        set_(self, "landmark_bary", np.asarray(bary, np.float64))

    # ------------------------------------------------------------------ queries
    @property
    def num_vertices(self) -> int:
        return len(self.vertices)

    @property
    def identity_sliders(self) -> tuple[SliderSpec, ...]:
        return self.spec.identity_sliders

    @property
    def expression_sliders(self) -> tuple[SliderSpec, ...]:
        return self.spec.expression_sliders

    def slider(self, name: str) -> SliderSpec:
        """The slider called ``name`` (KeyError-free: raises InvalidInputError)."""
        for s in self.spec.sliders:
            if s.name == name:
                return s
        raise InvalidInputError(f"rig {self.name!r} has no slider {name!r}")

    def target_index(self, target: str) -> int:
        try:
            return self.target_names.index(target)
        except ValueError:
            raise InvalidInputError(f"rig {self.name!r} has no morph target {target!r}") \
                from None

    def deltas(self, sliders: Sequence[SliderSpec]) -> np.ndarray:
        """(K, V, 3) float32 deltas of the given sliders' morph targets, metres per unit."""
        idx = [self.target_index(s.target) for s in sliders]
        return self.targets[idx] if idx else np.zeros((0, self.num_vertices, 3), np.float32)

    def weights(self, values: Mapping[str, float] | None = None, *,
                clip: bool = False) -> np.ndarray:
        """(T,) float32 morph weights: GLB defaults, slider defaults, then ``values``.

        Args:
            values: slider name -> value; unknown names raise.
            clip: clip values into each slider's range instead of raising.
        """
        w = self.target_defaults.copy()
        for s in self.spec.sliders:
            w[self.target_index(s.target)] = s.default
        for name, val in (values or {}).items():
            s = self.slider(name)
            x = float(val)
            if not math.isfinite(x):
                raise InvalidInputError(f"slider {name!r}: value {val!r} is not finite")
            if clip:
                x = min(max(x, s.min), s.max)
            elif not s.min - 1e-6 <= x <= s.max + 1e-6:
                raise InvalidInputError(f"slider {name!r}: value {x} is outside its range "
                                        f"[{s.min}, {s.max}]")
            w[self.target_index(s.target)] = x
        return w

    def shape(self, values: Mapping[str, float] | None = None) -> np.ndarray:
        """(V, 3) float32 vertices with the morph weights of :meth:`weights`, metres."""
        w = self.weights(values)
        return (self.vertices + np.tensordot(w, self.targets, axes=(0, 0))).astype(np.float32)

    def landmarks(self, verts: np.ndarray | None = None) -> np.ndarray:
        """(68, 3) float64 landmark positions on ``verts`` (default: the neutral mesh)."""
        v = np.asarray(self.vertices if verts is None else verts, np.float64)
        corners = v[self.triangles[self.landmark_faces]]  # (68, 3, 3)
        return np.einsum("lcd,lc->ld", corners, self.landmark_bary)

    @functools.cached_property
    def content_hash(self) -> str:
        """sha256 (hex) of the geometry, morph targets and landmark definition.

        Signed zeros count as zero (``-0.0`` and ``0.0`` hash alike): a sparse morph target
        written to a GLB reads back its zero deltas as ``+0.0``."""
        h = hashlib.sha256()
        for a in (self.vertices + 0.0, self.triangles.astype(np.int64), self.targets + 0.0,
                  self.landmark_faces, self.landmark_bary.astype(np.float64) + 0.0):
            h.update(str(a.shape).encode())
            h.update(np.ascontiguousarray(a).tobytes())
        h.update("\0".join(self.target_names).encode())
        return h.hexdigest()

    def summary(self) -> dict[str, Any]:
        """A JSON-able overview (what ``facecraft rigs info`` prints)."""
        lo, hi = self.vertices.min(0), self.vertices.max(0)
        groups: dict[str, int] = {}
        for s in self.spec.sliders:
            groups[s.group or "-"] = groups.get(s.group or "-", 0) + 1
        return {
            "name": self.name,
            "source": self.source,
            "vertices": self.num_vertices,
            "triangles": int(len(self.triangles)),
            "uvs": bool(len(self.uvs)),
            "texture": self.texture_png is not None,
            "morph_targets": len(self.target_names),
            "identity_sliders": len(self.identity_sliders),
            "expression_sliders": len(self.expression_sliders),
            "arkit_expressions": sum(1 for s in self.expression_sliders if s.arkit),
            "unlisted_targets": len(self.target_names) - len(self.spec.sliders),
            "symmetric_pairs": len(self.spec.symmetric_pairs),
            "groups": groups,
            "regions": {k: int(len(v)) for k, v in sorted(self.spec.regions.items())},
            "extent_m": [round(float(x), 4) for x in (hi - lo)],
            "content_sha256": self.content_hash,
        }

    # ------------------------------------------------------------------ export
    def to_gltf(self, weights: np.ndarray | None = None, *, texture_png: bytes | None = None,
                target_normals: bool = True, bake_identity: bool = False) -> GltfMesh:
        """The rig as a :class:`~facecraft.sdk.rigs.gltf.GltfMesh`.

        Args:
            weights: (T,) morph weights to store as ``mesh.weights`` (default
                :meth:`weights` with no values).
            texture_png: base-colour texture (default: the rig's own, if any).
            target_normals: also store NORMAL deltas (lighting follows the morphs in engines
                that read them; deltas under 1e-6 are stored as exact zeros, so sparse
                accessors drop them).
            bake_identity: move the identity sliders' weights into the base mesh (see
                :data:`BAKED_IDENTITY`): the base positions become ``vertices + sum_i w_i
                delta_i`` over the identity sliders' targets, those targets' weights become 0
                (their deltas stay, so the sliders still work on top of the baked face), and
                ``mesh.extras.facecraft.baked_identity`` records the baked weights. A reader
                that ignores morph weights then still shows the fitted face; one that applies
                them does not apply identity twice. Expression weights stay weights.
        """
        from .gltf import GltfMesh

        w = (self.weights() if weights is None else np.asarray(weights, np.float32)).copy()
        if w.shape != (len(self.targets),):
            raise InvalidInputError(f"expected weights ({len(self.targets)},), got {w.shape}")
        _, first, inverse = np.unique(self.vertices, axis=0, return_index=True,
                                      return_inverse=True)
        inverse = inverse.reshape(-1)  # seam-split copies of one position share a group
        base = self.vertices
        extras: dict[str, object] = {"rig": self.name, "format": RIG_FORMAT}
        if bake_identity:
            idx = [self.target_index(s.target) for s in self.identity_sliders]
            baked = self.vertices[first] + np.tensordot(w[idx], self.targets[idx][:, first],
                                                        axes=(0, 0))
            base = baked.astype(np.float32)[inverse]  # split copies stay bit-identical
            extras[BAKED_IDENTITY] = {self.target_names[k]: float(w[k]) for k in idx}
            w[idx] = 0.0
        normals, tnormals = _welded_normals(base, self.triangles, first, inverse,
                                            self.targets if target_normals else None)
        png = texture_png if texture_png is not None else self.texture_png
        return GltfMesh(
            positions=base, triangles=self.triangles, normals=normals,
            uvs=self.uvs if len(self.uvs) else None, targets=self.targets,
            target_normals=tnormals, target_names=self.target_names, weights=w,
            texture_png=png, name=self.name, extras={"facecraft": extras})


#: Key in a GLB's ``mesh.extras.facecraft`` (and ``true`` under the same name in
#: ``NAME_sliders.json``) saying that identity is baked into the base mesh: a {morph target:
#: weight} map of the identity sliders' weights already added to the base positions. Those
#: targets' ``mesh.weights`` are then 0; a slider's value in the rig is its baked weight plus
#: the GLB weight (so a reader that applies the GLB weights never applies identity twice, and
#: one that ignores them, like trimesh, still shows the fitted face).
BAKED_IDENTITY = "baked_identity"

#: NORMAL deltas smaller than this (unit-normal units) are written as exact zeros.
_NORMAL_DELTA_EPS = 1e-6


def _welded_normals(verts: np.ndarray, tris: np.ndarray, first: np.ndarray,
                    inverse: np.ndarray, targets: np.ndarray | None
                    ) -> tuple[np.ndarray, np.ndarray | None]:
    """Vertex normals smooth across UV seams, and the NORMAL deltas of each morph target.

    Args:
        verts: (V, 3) base positions. tris: (F, 3).
        first, inverse: the weld: ``verts[first]`` are the distinct positions of the neutral
            mesh, ``inverse`` (V,) each vertex's group; copies split only for UVs share one
            group, hence one averaged normal, in the base and in every target.
        targets: (T, V, 3) position deltas, or None.

    Returns:
        (V, 3) float32 unit normals, and (T, V, 3) float32 NORMAL deltas (|d| < 1e-6 set to 0)
        or None.
    """
    from ..models.mesh import vertex_normals_np

    wtri = inverse[tris]
    welded = verts[first]
    base_w = _fix_zero(vertex_normals_np(welded, wtri))
    base = base_w[inverse]
    if targets is None or not len(targets):
        return base, None
    out = np.empty_like(targets)
    for k0 in range(0, len(targets), 16):  # batched, bounded memory
        chunk = welded[None] + targets[k0:k0 + 16][:, first]
        d = _fix_zero(vertex_normals_np(chunk, wtri)) - base_w
        d[np.abs(d) < _NORMAL_DELTA_EPS] = 0.0
        out[k0:k0 + 16] = d[:, inverse]
    return base, out


def _fix_zero(n: np.ndarray) -> np.ndarray:
    bad = np.linalg.norm(n, axis=-1) < 0.5
    if bad.any():
        n = n.copy()
        n[bad] = (0.0, 0.0, 1.0)
    return n.astype(np.float32)


# --------------------------------------------------------------------------- files
def sidecar_path(glb: str | Path) -> Path:
    """The sidecar that goes with a GLB: ``NAME.glb`` -> ``NAME.rig.json``."""
    glb = Path(glb)
    return glb.with_name(glb.name.rsplit(".", 1)[0] + ".rig.json")


def load_rig(glb: str | Path, sidecar: str | Path | None = None, *,
             name: str | None = None) -> Rig:
    """Load and validate a rig: a GLB (or ``.gltf``) and its JSON sidecar.

    Args:
        glb: the mesh file; its first mesh is the head (primitives merged).
        sidecar: the sidecar JSON (default :func:`sidecar_path` of ``glb``).
        name: the rig's name (default: the sidecar's ``name``, else the GLB's stem).

    Raises:
        ModelFormatError: a file is missing or unreadable, or the sidecar is invalid or does not
            match the mesh; the message names the field.
    """
    from .gltf import read_glb

    glb = Path(glb)
    side = sidecar_path(glb) if sidecar is None else Path(sidecar)
    if not glb.is_file():
        raise ModelFormatError(f"rig mesh {glb} not found")
    if not side.is_file():
        raise ModelFormatError(f"rig sidecar {side} not found (pass --sidecar / sidecar=, or "
                               f"put NAME.rig.json next to NAME.glb)")
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFormatError(f"{side}: not readable JSON ({e})") from None
    stem = glb.name.rsplit(".", 1)[0]
    spec = RigSpec.from_json(data, default_name=stem, source=str(side))
    mesh = read_glb(glb)
    try:
        return Rig(name=name or spec.name, vertices=mesh.positions, triangles=mesh.triangles,
                   uvs=mesh.uvs if mesh.uvs is not None else np.zeros((0, 2), np.float32),
                   targets=mesh.targets, target_names=mesh.target_names, spec=spec,
                   target_defaults=mesh.weights, texture_png=mesh.texture_png,
                   source=f"{glb} + {side.name}")
    except InvalidInputError as e:
        raise ModelFormatError(str(e)) from None


def save_rig(rig: Rig, glb: str | Path, sidecar: str | Path | None = None, *,
             target_normals: bool = True) -> tuple[Path, Path]:
    """Write a rig as a GLB plus its sidecar (default :func:`sidecar_path`); returns both."""
    from ..render.mesh_io import _atomic_write
    from .gltf import write_glb

    glb = Path(glb)
    side = sidecar_path(glb) if sidecar is None else Path(sidecar)
    write_glb(glb, rig.to_gltf(target_normals=target_normals))
    spec = rig.spec.to_json()
    spec["name"] = rig.name
    _atomic_write(side, (json.dumps(spec, indent=1) + "\n").encode("utf-8"))
    return glb, side


# --------------------------------------------------------------------------- from a model
def _split_at_uv_seams(model: MorphableModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(V', ) source vertex per rig vertex, (F, 3) triangles and (V', 2) UVs: one vertex per
    distinct (vertex, uv) corner pair; triangle order is kept."""
    tri = model.triangles.astype(np.int64)
    if not len(model.uv_triangles):
        return np.arange(model.num_vertices), tri, np.zeros((0, 2), np.float32)
    pairs = np.stack([tri.reshape(-1), model.uv_triangles.reshape(-1).astype(np.int64)], 1)
    uniq, inverse = np.unique(pairs, axis=0, return_inverse=True)
    # keep vertices that no triangle uses (none in practice) out: the rig is what's drawn
    return uniq[:, 0], inverse.reshape(-1, 3), model.uvs[uniq[:, 1]]


def rig_from_model(model: MorphableModel, *, name: str,
                   identity: int | Sequence[str] | None = None,
                   expressions: int | Sequence[str] | None = None,
                   identity_range: tuple[float, float] = (-3.0, 3.0),
                   groups: Mapping[str, str] | None = None,
                   labels: Mapping[str, str] | None = None,
                   description: str = "") -> Rig:
    """Make a rig from a morphable model's modes (the starter rig, or a test rig from ICT's).

    Vertices are split along UV seams (glTF holds one UV per vertex); triangle order and the
    model's 68 landmarks are kept; regions are carried over through the split.

    Args:
        model: the source model.
        name: the rig's name.
        identity: which identity modes become sliders: the first N, or names (default all).
        expressions: which expression modes become sliders, likewise (default all);
            ``expression_kind="pca"`` models give them the identity range instead of [0, 1].
        identity_range: (min, max) of identity sliders, in unit-variance coefficients (sd).
        groups: slider name -> UI group (default: none).
        labels: slider name -> label (default: the name with spaces).
        description: free text for the sidecar.
    """
    def pick(names: tuple[str, ...], sel: int | Sequence[str] | None, what: str) -> list[int]:
        if sel is None:
            return list(range(len(names)))
        if isinstance(sel, int):
            if not 0 <= sel <= len(names):
                raise InvalidInputError(f"{what}={sel}: the model has {len(names)} modes")
            return list(range(sel))
        missing = [s for s in sel if s not in names]
        if missing:
            raise InvalidInputError(f"{what}: the model has no modes {missing[:5]}")
        return [names.index(s) for s in sel]

    src, tri, uvs = _split_at_uv_seams(model)
    id_idx = pick(model.identity_names, identity, "identity")
    ex_idx = pick(model.expression_names, expressions, "expressions")
    groups = dict(groups or {})
    labels = dict(labels or {})
    lo, hi = (float(x) for x in identity_range)
    sliders = [SliderSpec(name=n, target=n, kind="identity", min=lo, max=hi, default=0.0,
                          group=groups.get(n, ""), label=labels.get(n, _label(n)), unit="sd")
               for n in (model.identity_names[k] for k in id_idx)]
    pca = model.expression_kind == "pca"
    sliders += [SliderSpec(name=n, target=n, kind="expression", min=lo if pca else 0.0,
                           max=hi if pca else 1.0, default=0.0, group=groups.get(n, ""),
                           label=labels.get(n, _label(n)), unit="sd" if pca else "weight",
                           arkit=arkit_name(n))
                for n in (model.expression_names[k] for k in ex_idx)]
    names = {s.name for s in sliders}
    pairs = []
    for s in sliders:
        m = re.match(r"^(.*)_L$", s.name)
        if m and f"{m.group(1)}_R" in names:
            pairs.append((s.name, f"{m.group(1)}_R"))
    member = np.zeros(model.num_vertices, bool)
    regions = {}
    for k, ids in model.regions.items():
        if k.startswith("material:"):
            continue
        member[:] = False
        member[ids] = True
        regions[k] = np.flatnonzero(member[src])
    spec = RigSpec(name=name, sliders=tuple(sliders), symmetric_pairs=tuple(pairs),
                   landmark_triangles=model.landmark_faces, landmark_bary=model.landmark_bary,
                   regions=regions, description=description,
                   extras={"source_model": model.name})
    targets = np.concatenate([model.identity_basis[id_idx][:, src],
                              model.expression_basis[ex_idx][:, src]])
    return Rig(name=name, vertices=model.mean_shape[src], triangles=tri, uvs=uvs,
               targets=targets, target_names=tuple(s.name for s in sliders), spec=spec,
               source=f"model {model.name}")


def _label(name: str) -> str:
    """``"nose_width"`` -> ``"Nose width"``, ``"browDown_L"`` -> ``"Brow down (left)"``."""
    side = ""
    for suffix, word in (("_L", "left"), ("_R", "right"), ("Left", "left"), ("Right", "right")):
        if name.endswith(suffix) and len(name) > len(suffix):
            name, side = name[: -len(suffix)], f" ({word})"
            break
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).replace("_", " ").lower()
    return words[:1].upper() + words[1:] + side


#: Starter identity slider groups (UI), by name prefix.
_STARTER_GROUPS = (("face_", "face"), ("head_", "head"), ("forehead_", "forehead"),
                   ("brow", "brows"), ("cheek", "cheeks"), ("jaw", "jaw"), ("chin", "chin"),
                   ("eye", "eyes"), ("nose", "nose"), ("nostril", "nose"), ("mouth", "mouth"),
                   ("lip", "mouth"), ("ear", "ears"), ("Pupil", "eyes"))


def _group(name: str) -> str:
    for prefix, group in _STARTER_GROUPS:
        if name.startswith(prefix):
            return group
    return ""


def starter_rig(cache_dir: str | Path | None = None, *,
                model: MorphableModel | None = None) -> Rig:
    """FaceCraft's starter model as the default rig (named ``"starter"``).

    Identity sliders are the starter's human-readable anthropometric modes
    (:data:`facecraft.sdk.models.starter.IDENTITY_SLIDERS`) with range [-3, 3] sd; expressions are
    its
    53 ARKit-style blendshapes (ICT-FaceKit's names, ``arkit`` set where ARKit has the shape)
    with range [0, 1]; ``_L``/``_R`` pairs are symmetric pairs; landmarks and regions are the
    model's. Built from :func:`facecraft.sdk.models.default_model.load_default_model` on each call
    (about 0.1 s once the model is cached).

    Args:
        cache_dir: the default model's cache folder.
        model: use this model instead of the default one (e.g. one already loaded).
    """
    if model is None:
        from ..models.default_model import load_default_model

        model = load_default_model(cache_dir)
    names = model.identity_names + model.expression_names
    return rig_from_model(
        model, name="starter", groups={n: _group(n) for n in names},
        description="FaceCraft's procedural starter head: anthropometric identity sliders "
                    "(1 unit = 1 population sd) and 53 ARKit-style expression blendshapes.")
