"""Writing meshes and images to disk: Wavefront OBJ (+ MTL + PNG texture), PLY and PNG.

Conventions follow :mod:`facecraft.sdk.models.mesh`: vertices ``(V, 3)`` float in the caller's units
(FaceCraft uses metres), triangles ``(F, 3)`` 0-based vertex indices, counter-clockwise seen from
outside. Texture coordinates are OBJ's: origin at the *bottom-left* of the image, ``v`` up; images
are ``(H, W, C)`` arrays whose row 0 is the *top* of the picture, RGB(A) channel order (OpenCV's
BGR is converted inside).

Every file is written atomically: the bytes go to a temporary file in the target folder, which
then replaces the target with :func:`os.replace`, so a reader never sees half a file. Bad arrays
raise :class:`~facecraft.sdk.errors.InvalidInputError`; operating-system failures raise
:class:`~facecraft.sdk.errors.FaceCraftError` ("cannot write PATH: reason"). Text is formatted
with one ``%`` operation over all rows (no per-vertex Python loop): a 30k-vertex, 60k-triangle
OBJ with UVs, normals and colours takes about 0.1 s.

The readers (:func:`read_ply`, :func:`read_png`) cover what the writers produce (and the common
subset of other tools' files); OBJ is read with :func:`facecraft.sdk.models.mesh.read_obj`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic_file import write_atomic
from ..errors import FaceCraftError, InvalidInputError, ModelFormatError

__all__ = ["PlyMesh", "write_obj", "write_ply", "read_ply", "write_png", "read_png"]


# --------------------------------------------------------------------------- helpers
def _to_numpy(x: Any) -> np.ndarray:
    """A NumPy view of an array-like or a (possibly CUDA, possibly requires-grad) torch tensor."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _float_array(name: str, x: Any, cols: int, rows: int | None = None) -> np.ndarray:
    a = _to_numpy(x)
    if a.ndim != 2 or a.shape[1] != cols or (rows is not None and a.shape[0] != rows):
        want = f"({rows if rows is not None else 'N'}, {cols})"
        raise InvalidInputError(f"expected {name} {want}, got {a.shape}")
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise InvalidInputError(f"expected {name} to be a float array, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise InvalidInputError(f"{name} contains NaN or infinite values")
    return a


def _index_array(name: str, x: Any, count: int, rows: int | None = None) -> np.ndarray:
    a = _to_numpy(x)
    if a.ndim != 2 or a.shape[1] != 3 or (rows is not None and a.shape[0] != rows):
        want = f"({rows if rows is not None else 'F'}, 3)"
        raise InvalidInputError(f"expected {name} {want}, got {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        raise InvalidInputError(f"expected {name} to be an integer array, got dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() >= count):
        raise InvalidInputError(f"{name} index outside [0, {count}): "
                                f"min {a.min()}, max {a.max()}")
    return a.astype(np.int64)


def _colors_u8(name: str, x: Any, rows: int) -> np.ndarray:
    """(rows, 3) uint8 from uint8 colours or float colours in [0, 1] (clipped, rounded)."""
    a = _to_numpy(x)
    if a.shape != (rows, 3):
        raise InvalidInputError(f"expected {name} ({rows}, 3), got {a.shape}")
    if a.dtype == np.uint8:
        return a
    if not np.issubdtype(a.dtype, np.floating):
        raise InvalidInputError(f"expected {name} as float in [0, 1] or uint8, got {a.dtype}")
    if not np.isfinite(a).all():
        raise InvalidInputError(f"{name} contains NaN or infinite values")
    return np.round(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)


def _format_rows(fmt: str, a: np.ndarray) -> str:
    """``fmt`` (one row, with its newline) applied to every row of ``a`` in one operation."""
    if len(a) == 0:
        return ""
    return (fmt * len(a)) % tuple(a.ravel().tolist())


def _atomic_write(path: Path, data: bytes) -> None:
    """:func:`~facecraft.sdk.atomic_file.write_atomic`, with an OS error as a one-line
    :class:`FaceCraftError`."""
    try:
        write_atomic(path, data)
    except OSError as e:
        raise FaceCraftError(f"cannot write {path}: {e.strerror or e}") from None


# --------------------------------------------------------------------------- PNG
def _image_for_png(image: Any, bit_depth: int) -> np.ndarray:
    """(H, W[, C]) RGB(A) image -> uint8/uint16 array in OpenCV's BGR(A) order."""
    if bit_depth not in (8, 16):
        raise InvalidInputError(f"bit_depth must be 8 or 16, got {bit_depth}")
    a = _to_numpy(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))) or min(a.shape[:2]) < 1:
        raise InvalidInputError(f"expected image (H, W), (H, W, 3) or (H, W, 4), got {a.shape}")
    if a.dtype == np.uint8:
        out = a if bit_depth == 8 else a.astype(np.uint16) * 257
    elif a.dtype == np.uint16:
        out = a if bit_depth == 16 else np.round(a / 257.0).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise InvalidInputError("image contains NaN or infinite values")
        scale = 255.0 if bit_depth == 8 else 65535.0
        out = np.round(np.clip(a, 0.0, 1.0) * scale)
        out = out.astype(np.uint8 if bit_depth == 8 else np.uint16)
    else:
        raise InvalidInputError(f"expected image as float in [0, 1], uint8 or uint16, "
                                f"got dtype {a.dtype}")
    import cv2

    if out.ndim == 3:
        out = cv2.cvtColor(out, cv2.COLOR_RGB2BGR if out.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    return np.ascontiguousarray(out)


def write_png(path: str | Path, image: Any, *, bit_depth: int = 8) -> Path:
    """Write an RGB(A) or grey image as PNG, atomically.

    Args:
        path: the ``.png`` file to write (its folder must exist).
        image: (H, W, 3) RGB, (H, W, 4) RGBA or (H, W) grey; float in [0, 1] (clipped, rounded),
            uint8 or uint16; NumPy array or torch tensor. Row 0 is the top of the picture.
        bit_depth: 8 or 16 bits per channel in the file.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    data = _image_for_png(image, bit_depth)
    import cv2

    ok, buf = cv2.imencode(".png", data)
    if not ok:
        raise FaceCraftError(f"cannot write {path}: PNG encoding failed")
    _atomic_write(path, buf.tobytes())
    return path


def read_png(path: str | Path, *, as_float: bool = False) -> np.ndarray:
    """Read a PNG (or any image OpenCV reads) as RGB(A).

    Returns:
        (H, W, 3) RGB, (H, W, 4) RGBA or (H, W) grey; uint8 or uint16 as stored, or float32 in
        [0, 1] with ``as_float``.
    """
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise FaceCraftError(f"cannot read {path}: {e.strerror or e}") from None
    import cv2

    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FaceCraftError(f"cannot read {path}: not an image OpenCV can decode")
    if img.ndim == 3:
        code = cv2.COLOR_BGR2RGB if img.shape[2] == 3 else cv2.COLOR_BGRA2RGBA
        img = cv2.cvtColor(img, code)
    if as_float:
        img = img.astype(np.float32) / (65535.0 if img.dtype == np.uint16 else 255.0)
    return img


# --------------------------------------------------------------------------- OBJ
def write_obj(
    path: str | Path,
    verts: Any,
    triangles: Any,
    *,
    uvs: Any = None,
    uv_triangles: Any = None,
    normals: Any = None,
    texture: Any = None,
    vertex_colors: Any = None,
    material_name: str = "face",
    mtllib: str | None = None,
) -> Path:
    """Write a triangle mesh as Wavefront OBJ, with an MTL and a PNG texture when given one.

    With ``texture``, three files are written next to each other, named from the OBJ's stem:
    ``head.obj`` (``mtllib head.mtl``, ``usemtl <material_name>``), ``head.mtl`` (``map_Kd
    head.png``) and ``head.png``. The PNG and MTL are written before the OBJ, so the OBJ never
    refers to a missing file.

    Args:
        path: the ``.obj`` file to write (its folder must exist).
        verts: (V, 3) float positions, in the caller's units (FaceCraft: metres).
        triangles: (F, 3) integer vertex indices, 0-based, counter-clockwise seen from outside.
        uvs: (U, 2) float texture coordinates, origin bottom-left (OBJ convention; UDIM tiles
            u in [0, n) are written as given), or ``None``.
        uv_triangles: (F, 3) integer indices into ``uvs`` per triangle corner; may be omitted
            when ``U == V`` (the UVs are then per vertex, indexed like ``triangles``).
        normals: (V, 3) float per-vertex normals (written as ``vn``, indexed like vertices).
        texture: (H, W, 3) RGB image, uint8 or float in [0, 1], row 0 = top (v = 1); needs
            ``uvs``.
        vertex_colors: (V, 3) float RGB in [0, 1] or uint8, written as ``v x y z r g b``
            (floats in [0, 1]; an extension most tools read).
        material_name: the material's name in the MTL and ``usemtl`` (no whitespace).
        mtllib: the file name of an MTL the caller writes (e.g. ``"head.mtl"``, relative to the
            OBJ's folder, no whitespace): the OBJ then says ``mtllib <mtllib>`` and ``usemtl
            <material_name>`` without writing an MTL or PNG itself. Not with ``texture``.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        InvalidInputError: an array has the wrong shape, dtype or index range.
        FaceCraftError: a file cannot be written.
    """
    path = Path(path)
    v = _float_array("verts", verts, 3)
    nv = len(v)
    tri = _index_array("triangles", triangles, nv)
    if len(tri) == 0:
        raise InvalidInputError("expected at least one triangle, got (0, 3)")
    uv = uv_tri = None
    if uvs is not None:
        uv = _float_array("uvs", uvs, 2)
        if uv_triangles is None:
            if len(uv) != nv:
                raise InvalidInputError(f"uv_triangles is required when uvs ({len(uv)}) are not "
                                        f"per vertex ({nv})")
            uv_tri = tri
        else:
            uv_tri = _index_array("uv_triangles", uv_triangles, len(uv), rows=len(tri))
    elif uv_triangles is not None:
        raise InvalidInputError("uv_triangles given without uvs")
    nrm = None if normals is None else _float_array("normals", normals, 3, rows=nv)
    col = None
    if vertex_colors is not None:
        col = _colors_u8("vertex_colors", vertex_colors, nv).astype(np.float64) / 255.0
    if not re.fullmatch(r"[^\s#]+", material_name or ""):
        raise InvalidInputError(f"material_name must be non-empty without whitespace or '#', "
                                f"got {material_name!r}")
    if mtllib is not None:
        if texture is not None:
            raise InvalidInputError("give texture (write_obj writes the MTL) or mtllib (the "
                                    "caller's MTL), not both")
        if not re.fullmatch(r"[^\s#]+", mtllib):
            raise InvalidInputError(f"mtllib must be a file name without whitespace or '#', "
                                    f"got {mtllib!r}")
    tex = None
    if texture is not None:
        if uv is None:
            raise InvalidInputError("a texture needs uvs (and uv_triangles) to map it")
        tex = _to_numpy(texture)
        if tex.ndim != 3 or tex.shape[2] != 3:
            raise InvalidInputError(f"expected texture (H, W, 3) RGB, got {tex.shape}")
        tex = _image_for_png(tex, 8)  # validates dtype/range before any file is touched

    parts = ["# FaceCraft OBJ\n"]
    if tex is not None:
        import cv2

        png_name, mtl_name = f"{path.stem}.png", f"{path.stem}.mtl"
        ok, buf = cv2.imencode(".png", tex)
        if not ok:
            raise FaceCraftError(f"cannot write {path.with_name(png_name)}: PNG encoding failed")
        _atomic_write(path.with_name(png_name), buf.tobytes())
        mtl = (f"# FaceCraft material\nnewmtl {material_name}\nKa 0 0 0\nKd 1 1 1\nKs 0 0 0\n"
               f"Ns 1\nd 1\nillum 1\nmap_Kd {png_name}\n")
        _atomic_write(path.with_name(mtl_name), mtl.encode())
        parts.append(f"mtllib {mtl_name}\n")
    elif mtllib is not None:
        parts.append(f"mtllib {mtllib}\n")
    if col is not None:
        parts.append(_format_rows("v %.9g %.9g %.9g %.6g %.6g %.6g\n", np.hstack([v, col])))
    else:
        parts.append(_format_rows("v %.9g %.9g %.9g\n", v))
    if uv is not None:
        parts.append(_format_rows("vt %.9g %.9g\n", uv))
    if nrm is not None:
        parts.append(_format_rows("vn %.6g %.6g %.6g\n", nrm))
    if tex is not None or mtllib is not None:
        parts.append(f"usemtl {material_name}\n")
    one = tri + 1
    if uv_tri is not None and nrm is not None:
        corners = np.stack([one, uv_tri + 1, one], axis=-1)  # (F, 3, 3): v/vt/vn
        parts.append(_format_rows("f %d/%d/%d %d/%d/%d %d/%d/%d\n", corners))
    elif uv_tri is not None:
        parts.append(_format_rows("f %d/%d %d/%d %d/%d\n", np.stack([one, uv_tri + 1], -1)))
    elif nrm is not None:
        parts.append(_format_rows("f %d//%d %d//%d %d//%d\n", np.stack([one, one], -1)))
    else:
        parts.append(_format_rows("f %d %d %d\n", one))
    _atomic_write(path, "".join(parts).encode())
    return path


# --------------------------------------------------------------------------- PLY
@dataclass(frozen=True)
class PlyMesh:
    """A triangle mesh as read by :func:`read_ply`.

    Attributes:
        vertices: (V, 3) float32 positions, in the file's units.
        triangles: (F, 3) int32 vertex indices (0-based); polygons are fan-split.
        vertex_colors: (V, 3) uint8 RGB, or ``None`` when the file has none.
        normals: (V, 3) float32, or ``None`` when the file has none.
    """

    vertices: np.ndarray
    triangles: np.ndarray
    vertex_colors: np.ndarray | None
    normals: np.ndarray | None


def write_ply(
    path: str | Path,
    verts: Any,
    triangles: Any,
    *,
    vertex_colors: Any = None,
    normals: Any = None,
    binary: bool = True,
) -> Path:
    """Write a triangle mesh as PLY (binary little-endian by default, or ASCII), atomically.

    Layout: ``element vertex`` with ``float x y z`` [``float nx ny nz``] [``uchar red green
    blue``], then ``element face`` with ``property list uchar int vertex_indices``.

    Args:
        path: the ``.ply`` file to write (its folder must exist).
        verts: (V, 3) float positions (stored as float32), in the caller's units.
        triangles: (F, 3) integer vertex indices, 0-based, counter-clockwise seen from outside.
        vertex_colors: (V, 3) float RGB in [0, 1] (clipped, rounded) or uint8, or ``None``.
        normals: (V, 3) float per-vertex normals, or ``None``.
        binary: binary little-endian (compact, exact) or ASCII (``%.9g``: float32-exact too).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    v = _float_array("verts", verts, 3)
    nv = len(v)
    tri = _index_array("triangles", triangles, nv)
    if nv >= 2**31:
        raise InvalidInputError(f"PLY int indices hold at most 2^31 - 1 vertices, got {nv}")
    nrm = None if normals is None else _float_array("normals", normals, 3, rows=nv)
    col = None if vertex_colors is None else _colors_u8("vertex_colors", vertex_colors, nv)

    fields: list[tuple[str, str]] = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if nrm is not None:
        fields += [("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
    if col is not None:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    type_name = {"<f4": "float", "u1": "uchar"}
    header = ["ply", f"format {'binary_little_endian' if binary else 'ascii'} 1.0",
              "comment FaceCraft", f"element vertex {nv}"]
    header += [f"property {type_name[t]} {n}" for n, t in fields]
    header += [f"element face {len(tri)}", "property list uchar int vertex_indices",
               "end_header"]
    head = ("\n".join(header) + "\n").encode("ascii")

    if binary:
        vert = np.empty(nv, dtype=fields)
        for k, axis in enumerate("xyz"):
            vert[axis] = v[:, k]
            if nrm is not None:
                vert["n" + axis] = nrm[:, k]
        if col is not None:
            for k, c in enumerate(("red", "green", "blue")):
                vert[c] = col[:, k]
        face = np.empty(len(tri), dtype=[("n", "u1"), ("i", "<i4", (3,))])
        face["n"] = 3
        face["i"] = tri
        data = head + vert.tobytes() + face.tobytes()
    else:
        v32 = v.astype(np.float32).astype(np.float64)  # what binary stores, printed exactly
        cols = [v32] + ([nrm.astype(np.float32).astype(np.float64)] if nrm is not None else [])
        fmt = " ".join(["%.9g"] * (3 * len(cols)))
        if col is not None:
            cols.append(col.astype(np.float64))
            fmt += " %d %d %d"
        body = _format_rows(fmt + "\n", np.hstack(cols))
        body += _format_rows("3 %d %d %d\n", tri)
        data = head + body.encode("ascii")
    _atomic_write(path, data)
    return path


_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}


def read_ply(path: str | Path) -> PlyMesh:
    """Read a PLY mesh (ASCII or binary little-endian) with x/y/z, optional normals and colours.

    Supported: one ``vertex`` element of scalar properties and one ``face`` element whose only
    property is a ``list`` of indices (triangles, or polygons split into fans); other elements
    must come after these. Enough for :func:`write_ply` and most tools' triangle meshes.

    Raises:
        FaceCraftError: the file cannot be read.
        ModelFormatError: the file is not a PLY of that subset.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise FaceCraftError(f"cannot read {path}: {e.strerror or e}") from None
    end = raw.find(b"end_header")
    if not raw.startswith(b"ply") or end < 0:
        raise ModelFormatError(f"{path} is not a PLY file (no 'ply' magic / end_header)")
    nl = raw.find(b"\n", end)
    body_start = len(raw) if nl < 0 else nl + 1
    lines = [ln.strip() for ln in raw[:end].decode("ascii", "replace").splitlines()]
    fmt = None
    elements: list[dict] = []
    for ln in lines:
        tok = ln.split()
        if not tok:
            continue
        if tok[0] == "format":
            fmt = tok[1]
        elif tok[0] == "element":
            elements.append({"name": tok[1], "count": int(tok[2]), "props": []})
        elif tok[0] == "property" and elements:
            elements[-1]["props"].append(tok[1:])
    if fmt not in ("ascii", "binary_little_endian"):
        raise ModelFormatError(f"{path}: PLY format {fmt!r} not supported "
                               "(ascii or binary_little_endian)")
    names = [e["name"] for e in elements]
    if names[:2] != ["vertex", "face"]:
        raise ModelFormatError(f"{path}: expected elements 'vertex' then 'face', got {names}")
    vert_el, face_el = elements[0], elements[1]
    try:
        vprops = [(p[1], _PLY_TYPES[p[0]]) for p in vert_el["props"]]
        (fprop,) = face_el["props"]
        if fprop[0] != "list":
            raise KeyError
        count_t, index_t = _PLY_TYPES[fprop[1]], _PLY_TYPES[fprop[2]]
    except (KeyError, ValueError, IndexError):
        raise ModelFormatError(f"{path}: unsupported PLY properties {vert_el['props']} / "
                               f"{face_el['props']}") from None
    nv, nf = vert_el["count"], face_el["count"]
    body = raw[body_start:]
    try:
        if fmt == "ascii":
            text = body.decode("ascii").split("\n")
            vtab = np.array(" ".join(text[:nv]).split(), dtype=np.float64)
            vtab = vtab.reshape(nv, len(vprops))
            vert = {n: vtab[:, k] for k, (n, _) in enumerate(vprops)}
            ftok = np.array(" ".join(text[nv:nv + nf]).split(), dtype=np.int64)
            polys = _split_lists(ftok, nf)
        else:
            vdt = np.dtype([(n, "<" + t) for n, t in vprops])
            varr = np.frombuffer(body, dtype=vdt, count=nv)
            vert = {n: varr[n] for n, _ in vprops}
            off = nv * vdt.itemsize
            ct = np.dtype("<" + count_t)
            first = int(np.frombuffer(body, dtype=ct, count=1, offset=off)[0]) if nf else 3
            fdt = np.dtype([("n", ct), ("i", "<" + index_t, (first,))])
            farr = np.frombuffer(body, dtype=fdt, count=nf, offset=off)
            if nf and (farr["n"] != first).any():
                raise ModelFormatError(f"{path}: binary PLY with mixed polygon sizes is not "
                                       "supported")
            polys = farr["i"].astype(np.int64) if nf else np.zeros((0, 3), np.int64)
    except ValueError as e:
        raise ModelFormatError(f"{path}: truncated or malformed PLY body ({e})") from None
    from ..models.mesh import triangulate

    if polys.ndim == 2 and polys.shape[1] == 3:
        tri = polys.astype(np.int32)
    else:
        tri, _ = triangulate(polys)
    if tri.size and (tri.min() < 0 or tri.max() >= nv):
        raise ModelFormatError(f"{path}: a face refers to a vertex that does not exist")
    if not {"x", "y", "z"} <= vert.keys():
        raise ModelFormatError(f"{path}: vertices lack x/y/z")
    xyz = np.stack([vert["x"], vert["y"], vert["z"]], -1).astype(np.float32)
    normals = None
    if {"nx", "ny", "nz"} <= vert.keys():
        normals = np.stack([vert["nx"], vert["ny"], vert["nz"]], -1).astype(np.float32)
    colors = None
    if {"red", "green", "blue"} <= vert.keys():
        colors = np.stack([vert["red"], vert["green"], vert["blue"]], -1)
        if np.issubdtype(colors.dtype, np.floating) and colors.max(initial=0) <= 1.0 \
                and dict(vprops)["red"].startswith("f"):
            colors = colors * 255.0
        colors = np.clip(np.round(colors), 0, 255).astype(np.uint8)
    return PlyMesh(vertices=xyz, triangles=tri, vertex_colors=colors, normals=normals)


def _split_lists(tokens: np.ndarray, n: int) -> np.ndarray | list[list[int]]:
    """ASCII face lists ``k i0 .. ik-1`` -> (n, 3) array when all are triangles, else lists."""
    if n == 0:
        return np.zeros((0, 3), np.int64)
    if len(tokens) == 4 * n:
        rows = tokens.reshape(n, 4)
        if (rows[:, 0] == 3).all():
            return rows[:, 1:]
    out, k = [], 0  # mixed polygon sizes: rare; a loop over polygons is acceptable here
    for _ in range(n):
        c = int(tokens[k])
        out.append(tokens[k + 1:k + 1 + c].tolist())
        k += 1 + c
    return out
