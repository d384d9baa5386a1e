"""Importer for the ICT Face Model (ICT-FaceKit "Light", USC ICT, MIT licence).

Layout read (the public repository's ``FaceXModel/`` folder):

* ``generic_neutral_mesh.obj``: the neutral mesh, 26,719 vertices, mostly quads, 28,911 UVs
  spread over UDIM tiles, material groups (``M_Face``, ``M_BackHead``, ``M_Teeth`` ...).
* ``identity000.obj`` .. ``identity099.obj``: each a full mesh; mode = file - neutral.
  ICT-FaceKit samples identities as N(0, 1) (``randomize_identity``), so the modes are used as
  given: unit-variance coefficients.
* one OBJ per expression (ARKit names split into _L/_R, plus ``cheekRaiser_L/R`` and
  ``PupilDilate_L/R``); mode = file - neutral, a blendshape at weight 1.
* ``vertex_indices.json``: ``expressions`` (53 names), ``idx_to_landmark_verts`` (68 vertex ids,
  Multi-PIE = iBUG order) and other vertex sets.

Units: centimetres in the files, metres in FaceCraft. Frame: +Y up, the face looking down +Z,
+X on the subject's left (verified: landmark 0, the subject's right jaw, has x < 0).

Regions come from two sources: every material group becomes ``material:<name>`` (vertices
of its triangles), and the geometry ranges documented in ICT-FaceKit's README give the
canonical FaceCraft regions (``face``, ``skin`` = the README's narrow face area, ``back_of_head``,
``mouth_interior``, ``teeth``, ``eye_left``, ``eye_right``, ``eyelashes``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ...errors import ModelFormatError
from ..mesh import read_obj, read_obj_vertices
from ..morphable_model import MorphableModel, landmarks_from_vertices

__all__ = ["import_ict_facekit", "ICT_VERTEX_RANGES"]

_CM = 0.01  # centimetres -> metres

#: Vertex ranges [start, stop) from ICT-FaceKit's README ("Face Model Topology").
ICT_VERTEX_RANGES: dict[str, tuple[int, int]] = {
    "face": (0, 9409),
    "skin": (0, 6706),  # the README's "narrow face area"
    "back_of_head": (9409, 11248),
    "mouth_socket": (11248, 13294),
    "eye_socket_left": (13294, 13678),
    "eye_socket_right": (13678, 14062),
    "gums_tongue": (14062, 17039),
    "teeth": (17039, 21451),
    "eye_left": (21451, 23021),
    "eye_right": (23021, 24591),
    "eyelashes": (25351, 26719),
}
_ICT_NUM_VERTICES = 26719

_LICENCE = (
    "ICT-FaceKit (ICT Face Model Light), Copyright (c) 2020 USC Institute for Creative "
    "Technologies. MIT License: permission is granted, free of charge, to use, copy, modify, "
    "merge, publish, distribute, sublicense and/or sell copies, provided the copyright notice "
    "and this permission notice are included. Provided 'as is', without warranty of any kind."
)


def import_ict_facekit(path: str | Path, *, face_only: bool = False,
                       progress: bool = False) -> MorphableModel:
    """Read ICT-FaceKit's ``FaceXModel/`` folder into a :class:`MorphableModel`.

    Args:
        path: the ``FaceXModel`` folder (or a folder that contains it).
        face_only: keep only the face region (vertices 0..9408, forehead to neck, ear to ear),
            dropping the back of the head, mouth socket, teeth, eyes and lashes.
        progress: show a progress bar while reading the ~160 OBJ files.

    Returns:
        The model: 100 identity modes, 57 expression blendshapes, metres, no albedo.

    Raises:
        ModelFormatError: the folder or a file is missing, or a mesh has another vertex count.
    """
    root = Path(path)
    if (root / "FaceXModel").is_dir():
        root = root / "FaceXModel"
    neutral_path = root / "generic_neutral_mesh.obj"
    index_path = root / "vertex_indices.json"
    for p in (neutral_path, index_path):
        if not p.is_file():
            raise ModelFormatError(
                f"{p} not found: expected ICT-FaceKit's FaceXModel folder (unpack "
                "FaceXModel.tar.xz and pass the folder)")
    try:
        index = json.loads(index_path.read_text())
        landmark_ids = np.asarray(index["idx_to_landmark_verts"], np.int64)
        listed = [str(n) for n in index["expressions"]]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ModelFormatError(f"{index_path}: not ICT-FaceKit's vertex_indices.json ({e})") \
            from None
    if landmark_ids.shape != (68,):
        raise ModelFormatError(f"{index_path}: expected 68 landmark vertex ids, "
                               f"got {landmark_ids.shape}")

    neutral = read_obj(neutral_path)
    v = len(neutral.vertices)
    identity_files = sorted(root.glob("identity[0-9][0-9][0-9].obj"))
    if not identity_files:
        raise ModelFormatError(f"{root}: no identityNNN.obj files")
    extra = sorted(p.stem for p in root.glob("*.obj")
                   if p.stem not in listed and p.stem != "generic_neutral_mesh"
                   and not p.stem.startswith("identity"))
    expression_names = listed + extra
    missing = [n for n in expression_names if not (root / f"{n}.obj").is_file()]
    if missing:
        raise ModelFormatError(f"{root}: expression meshes listed but missing: {missing[:5]}")

    files = identity_files + [root / f"{n}.obj" for n in expression_names]
    deltas = np.empty((len(files), v, 3), np.float32)
    for k, f in enumerate(tqdm(files, desc="ICT meshes", unit="obj", disable=not progress)):
        verts = read_obj_vertices(f)
        if verts.shape != (v, 3):
            raise ModelFormatError(
                f"{f}: {len(verts)} vertices, the neutral mesh has {v}: bases do not match")
        deltas[k] = verts - neutral.vertices
    deltas *= _CM
    n_id = len(identity_files)

    regions: dict[str, np.ndarray] = {}
    if v == _ICT_NUM_VERTICES:
        for name, (a, b) in ICT_VERTEX_RANGES.items():
            regions[name] = np.arange(a, b)
        regions["mouth_interior"] = np.concatenate(
            [regions.pop("mouth_socket"), regions.pop("gums_tongue")])
    else:
        regions["face"] = np.arange(v)
    for g, name in enumerate(neutral.group_names):
        if name:
            regions[f"material:{name}"] = np.unique(
                neutral.triangles[neutral.triangle_groups == g])

    lm_faces, lm_bary = landmarks_from_vertices(landmark_ids, neutral.triangles)
    model = MorphableModel(
        name="ict-facekit",
        mean_shape=neutral.vertices * _CM,
        identity_basis=deltas[:n_id],
        identity_names=tuple(p.stem for p in identity_files),
        expression_basis=deltas[n_id:],
        expression_names=tuple(expression_names),
        triangles=neutral.triangles,
        uvs=neutral.uvs,
        uv_triangles=neutral.uv_triangles,
        landmark_faces=lm_faces,
        landmark_bary=lm_bary,
        regions=regions,
        expression_kind="blendshape",
        provenance={
            "source": "ICT-FaceKit FaceXModel (ICT Face Model Light)",
            "importer": "ict-facekit",
            "folder": root.name,
            "files": len(files) + 2,
            "units_in_source": "centimetres",
            "identity_scaling": "as given (ICT-FaceKit samples identities as N(0, 1))",
            "face_only": face_only,
        },
        licence=_LICENCE,
    )
    if face_only:
        model = model.submesh(regions["face"], name="ict-facekit-face")
    return model
