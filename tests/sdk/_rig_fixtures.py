"""Helpers shared by the rig tests and benchmarks/rig.py: an ICT-FaceKit test rig, a
landmark-only ICT reconstruction of a real photo, and the external GLB checkers (the Khronos
glTF Validator through node, Blender headless)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from facecraft.sdk.models.morphable_model import MorphableModel
from facecraft.sdk.render.pose_fit import fit_weak_perspective
from facecraft.sdk.rigs.rig import Rig, rig_from_model

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO.parent / "shared" / "assets"

#: The ICT test rig's expression sliders (a few, ARKit-named, to exercise name mapping).
ICT_RIG_EXPRESSIONS = ("eyeBlink_L", "eyeBlink_R", "jawOpen", "mouthSmile_L", "mouthSmile_R",
                       "browInnerUp_L", "browInnerUp_R")


def make_ict_rig(ict: MorphableModel, *, identity: int = 30) -> Rig:
    """A second rig made from ICT-FaceKit's own modes: the face region (forehead to neck, ear
    to ear), the first ``identity`` identity modes as sliders, a few expressions, UDIM tiles
    1001-1002 packed side by side into one [0, 1] layout (u / 2)."""
    face = ict.submesh(ict.regions["face"], name="ict-face")
    face = face.replace(uvs=face.uvs * np.array([0.5, 1.0], np.float32))
    return rig_from_model(face, name="ict-face", identity=identity,
                          expressions=list(ICT_RIG_EXPRESSIONS),
                          description="test rig from ICT-FaceKit's identity modes")


def photo_landmarks(rel: str = "photos/eos-300w/image_0010.png") -> tuple[Path, np.ndarray]:
    """A photo of ../shared/assets and its manual 68 landmarks (pixels), or skip."""
    ann = ASSETS / "landmarks68.json"
    photo = ASSETS / rel
    if not ann.is_file() or not photo.is_file():
        pytest.skip(f"../shared/assets/{rel} or landmarks68.json not present")
    faces = json.loads(ann.read_text())["images"][rel]["faces"]
    return photo, np.asarray(faces[0]["lm68_xy"], np.float64)


def fit_identity_to_landmarks(model: MorphableModel, lm2d: np.ndarray,
                              image_size: tuple[int, int], *, n_identity: int = 40,
                              ridge: float = 10.0, iterations: int = 8):
    """A landmark-only reconstruction: weak-perspective pose and identity coefficients that
    put the model's 68 landmarks on ``lm2d`` (alternating pose / ridge-regularised linear
    solve). Returns ``(coeffs (n_identity,), PoseFit, rms_px)``."""
    corners = model.triangles[model.landmark_faces]  # (68, 3)
    bary = model.landmark_bary.astype(np.float64)
    lm_mean = np.einsum("lcd,lc->ld", model.mean_shape[corners], bary)
    lm_basis = np.einsum("klcd,lc->kld", model.identity_basis[:n_identity][:, corners], bary)
    h, w = image_size
    target = np.stack([lm2d[:, 0] - w / 2, h / 2 - lm2d[:, 1]], 1)
    c = np.zeros(n_identity)
    for _ in range(iterations):
        pts = lm_mean + np.tensordot(c, lm_basis, axes=(0, 0))
        fit = fit_weak_perspective(pts, lm2d, image_size)
        rot = fit.pose.rotation[0].numpy().astype(np.float64)
        t2 = fit.pose.translation[0, :2].numpy().astype(np.float64)
        s = fit.camera.scale
        a = s * np.einsum("ij,klj->lik", rot[:2], lm_basis).reshape(-1, n_identity)
        r = (target - s * (lm_mean @ rot[:2].T + t2)).reshape(-1)
        scale = float(np.mean(a * a)) * len(r)
        c = np.linalg.solve(a.T @ a + ridge * scale / n_identity * np.eye(n_identity), a.T @ r)
    pts = lm_mean + np.tensordot(c, lm_basis, axes=(0, 0))
    fit = fit_weak_perspective(pts, lm2d, image_size)
    return c, fit, fit.residual_px


def photo_vertex_colors(model: MorphableModel, verts: np.ndarray, pose_fit, photo: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Photo colours (V, 3) in [0, 1] at each vertex under a weak-perspective fit, and (V,)
    visibility (facing the camera; no occlusion test, good enough for a frontal photo)."""
    from facecraft.sdk.models.mesh import vertex_normals_np

    rot = pose_fit.pose.rotation[0].numpy().astype(np.float64)
    t2 = pose_fit.pose.translation[0, :2].numpy().astype(np.float64)
    s = pose_fit.camera.scale
    h, w = photo.shape[:2]
    xy = s * (verts @ rot[:2].T + t2)
    px = np.clip(np.round(w / 2 + xy[:, 0] - 0.5), 0, w - 1).astype(int)
    py = np.clip(np.round(h / 2 - xy[:, 1] - 0.5), 0, h - 1).astype(int)
    normals = vertex_normals_np(verts, model.triangles) @ rot.T
    visible = normals[:, 2] > 0.2
    colors = photo[py, px, :3].astype(np.float64) / 255.0
    return colors, visible


# --------------------------------------------------------------------------- external tools
_VALIDATE_JS = r"""
const fs = require('fs');
const validator = require(process.argv[2]);
(async () => {
  const out = [];
  for (const f of process.argv.slice(3)) {
    const r = await validator.validateBytes(new Uint8Array(fs.readFileSync(f)),
                                            {maxIssues: 100});
    out.push({file: f, numErrors: r.issues.numErrors, numWarnings: r.issues.numWarnings,
              messages: r.issues.messages.filter(m => m.severity <= 1).slice(0, 20),
              info: r.info});
  }
  console.log(JSON.stringify(out));
})().catch(e => { console.error(String(e)); process.exit(2); });
"""


def gltf_validator_module() -> str | None:
    """Path of the npm package ``gltf-validator`` (``$FACECRAFT_GLTF_VALIDATOR``, the repo's
    ``.gl/node_modules``, or anything node resolves), or None."""
    node = shutil.which("node")
    if node is None:
        return None
    for cand in (os.environ.get("FACECRAFT_GLTF_VALIDATOR"),
                 str(REPO / ".gl" / "node_modules" / "gltf-validator")):
        if cand and Path(cand, "package.json").is_file():
            return cand
    try:
        out = subprocess.run([node, "-e", "console.log(require.resolve('gltf-validator'))"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return str(Path(out.stdout.strip()).parent) if out.returncode == 0 else None


def validate_glbs(paths, tmp_path: Path) -> list[dict]:
    """Run the Khronos glTF Validator on GLB files and return its reports, or skip."""
    module = gltf_validator_module()
    if module is None:
        pytest.skip("the Khronos glTF Validator is not installed: node and the npm package "
                    "gltf-validator are needed (npm install --prefix .gl gltf-validator, as "
                    ".ci/run does)")
    script = tmp_path / "validate.js"
    script.write_text(_VALIDATE_JS)
    out = subprocess.run(["node", str(script), module, *map(str, paths)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


#: How to import FaceCraft's GLBs in Blender 3.4 (Debian bookworm's ``blender``, whose glTF
#: importer's default "Normals" shading crashes on ``np.bool`` with NumPy >= 1.24): Shading
#: "Smooth" (Blender computes normals itself, all faces smooth) and "Merge Vertices" on, which
#: welds the copies of a vertex split only for its UVs back into one vertex (same position and
#: shape-key positions); without it the UV seam at the back of the head is a hard shading line.
BLENDER_IMPORT_SETTINGS = {"import_shading": "SMOOTH", "merge_vertices": True}

_BLENDER_PY = r"""
import bpy, json, sys
import numpy as np
path = sys.argv[sys.argv.index("--") + 1]
settings = json.loads(sys.argv[sys.argv.index("--") + 2])
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.import_scene.gltf(filepath=path, **settings)
out = []
for ob in bpy.data.objects:
    if ob.type != "MESH":
        continue
    me = ob.data
    keys = me.shape_keys
    blocks = [] if keys is None else [(k.name, k.value) for k in keys.key_blocks]
    reach = {}  # each shape key's largest displacement from the basis, Blender units
    for k in ([] if keys is None else keys.key_blocks):
        kc = np.empty(3 * len(k.data), np.float32)
        k.data.foreach_get("co", kc)
        bc = np.empty(3 * len(k.data), np.float32)
        k.relative_key.data.foreach_get("co", bc)
        reach[k.name] = float(np.abs(kc - bc).max()) if len(kc) else 0.0
    images = []
    for slot in ob.material_slots:
        if slot.material and slot.material.use_nodes:
            images += [n.image.name for n in slot.material.node_tree.nodes
                       if n.type == "TEX_IMAGE" and n.image]
    co = np.empty(3 * len(me.vertices), np.float32)
    me.vertices.foreach_get("co", co)
    co = co.reshape(-1, 3)
    # shading normals per face corner; corners at one position must agree (no seam line)
    me.calc_normals_split()
    ln = np.empty(3 * len(me.loops), np.float32)
    me.loops.foreach_get("normal", ln)
    lv = np.empty(len(me.loops), np.int64)
    me.loops.foreach_get("vertex_index", lv)
    _, group = np.unique(co[lv], axis=0, return_inverse=True)
    group = group.reshape(-1)
    ref = np.zeros((group.max() + 1, 3), np.float32)
    ref[group] = ln.reshape(-1, 3)
    seam = float(np.abs(ln.reshape(-1, 3) - ref[group]).max())
    out.append({"name": ob.name, "vertices": len(me.vertices), "shape_keys": blocks,
                "images": images, "min": co.min(0).tolist(), "max": co.max(0).tolist(),
                "corner_normal_spread": seam, "shape_key_reach": reach})
print("FACECRAFT_BLENDER:" + json.dumps(out))
"""


def blender_import(path: Path, tmp_path: Path, settings: dict | None = None) -> list[dict]:
    """Import a GLB in headless Blender (``settings``: the importer's options, default
    :data:`BLENDER_IMPORT_SETTINGS`) and report each mesh's vertex count, shape keys (name,
    value), ``shape_key_reach`` (each key's largest coordinate displacement), images,
    bounding box (Blender's frame: +Z up) and ``corner_normal_spread`` (the largest difference
    between shading normals of face corners at one position), or skip when ``blender`` (with
    Debian's ``python3-numpy``, which its glTF importer needs) is not installed."""
    blender = shutil.which("blender")
    if blender is None:
        pytest.skip("blender is not on PATH (Debian: apt-get install --no-install-recommends "
                    "blender python3-numpy, as .ci/run does where apt-get works)")
    script = tmp_path / "blender_import.py"
    script.write_text(_BLENDER_PY)
    # Blender's embedded Python finds its standard library (and Debian's numpy) from the
    # python3 first on PATH: put Blender's own folder first, drop a virtualenv's variables
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYENV", "PYTHON",
                                                                     "VIRTUAL_ENV"))}
    env["PATH"] = os.pathsep.join([str(Path(blender).resolve().parent),
                                   os.environ.get("PATH", "")])
    out = subprocess.run([blender, "--background", "--factory-startup", "--python",
                          str(script), "--", str(path),
                          json.dumps(BLENDER_IMPORT_SETTINGS if settings is None else settings)],
                         capture_output=True, text=True,
                         timeout=300, env=env)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("FACECRAFT_BLENDER:")]
    if not lines and "No module named 'numpy'" in out.stdout + out.stderr:
        pytest.skip("Blender's Python has no numpy (Debian: apt-get install python3-numpy)")
    assert lines, f"blender printed no report (rc {out.returncode}): {out.stderr[-2000:]}"
    return json.loads(lines[-1].split(":", 1)[1])
