"""Photo in, files out, through a FaceCraft server.

Start a server (``facecraft serve --package PKG``), then::

    python examples/grpc_client.py photo.jpg [more.jpg ...] -o out/ [--server 127.0.0.1:50051]
        [--all-faces] [--texture-size 1024] [--token-file F] [--tls-ca ca.pem]
        [--rig starter|NAME|RIG.glb]

For each face it writes, named after the photo (``_face2``, ... for further faces)::

    NAME.obj, NAME.mtl             the textured mesh (model frame, metres, UVs, normals)
    NAME_texture.png               its UV texture (the names ``facecraft create`` writes)
    NAME_neutral.obj               the same face with a neutral expression (no material)
    NAME_coeffs.json               coefficients by block, pose, detection, landmarks

With ``--rig`` each face is also fitted to a character rig on the server (FitRig, from the
reconstruction: its neutral shape, expression and colours), which writes::

    NAME_rig.glb                   the rig with the fitted slider weights and texture
    NAME_sliders.json              slider values (and normalised), the fit's residual in mm
    NAME_rig_texture.png           the texture in the rig's UV layout
    NAME_materials.json            skin, iris, eyebrow and lip colours

``--rig`` takes a rig the server has (``starter``, or a name ``ListRigs`` shows) or a local
``.glb`` with its ``NAME.rig.json``, which is registered first (RegisterRig, replacing a rig of
that name).

Several photos go in one ReconstructBatch call: results stream back as they are ready, and a
photo that fails (no face, not an image) is reported without stopping the others. Exit status:
0 when every photo gave a face, 1 otherwise, 2 when the server cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from facecraft.sdk.client import Face, FaceCraftClient, ReconstructOptions
from facecraft.sdk.errors import FaceCraftError
from facecraft.sdk.render.mesh_io import write_obj


def write_face(face: Face, out: Path, name: str) -> list[Path]:
    """Write one :class:`facecraft.sdk.client.Face`; returns the files."""
    tex, mtl = out / f"{name}_texture.png", out / f"{name}.mtl"
    material = ["newmtl face", "Ka 0 0 0", "Kd 1 1 1", "Ks 0 0 0", "illum 1"]
    if face.texture_png is not None:
        tex.write_bytes(face.texture_png)  # the server's PNG as is
        material.append(f"map_Kd {tex.name}")
    mtl.write_text("# FaceCraft material\n" + "\n".join(material) + "\n", encoding="utf-8")
    obj = write_obj(out / f"{name}.obj", face.vertices, face.triangles, uvs=face.uvs,
                    uv_triangles=face.uv_triangles, normals=face.normals, mtllib=mtl.name,
                    material_name="face")
    neutral = write_obj(out / f"{name}_neutral.obj", face.neutral_vertices, face.triangles,
                        uvs=face.uvs, uv_triangles=face.uv_triangles)
    c = face.coefficients
    record = {
        "units": {"angles": "radians (pitch, yaw, roll)", "translation": "metres",
                  "landmarks": "photo pixels, x right, y down"},
        **{k: getattr(c, k).tolist() for k in ("identity", "expression", "albedo", "angles",
                                               "lighting", "translation")},
        "pose": {"rotation": face.pose.rotation.tolist(),
                 "translation": face.pose.translation.tolist()},
        "detection": {"box": face.detection.box.tolist(), "score": face.detection.score},
        "landmarks": face.landmarks.tolist(),
        "albedo_source": face.albedo_source,
    }
    coeffs = out / f"{name}_coeffs.json"
    coeffs.write_text(json.dumps(record, indent=1) + "\n")
    return [obj, mtl, *([tex] if face.texture_png is not None else []), neutral, coeffs]


def write_rig(fitted, out: Path, name: str) -> list[Path]:
    """Write one :class:`facecraft.sdk.client.FittedRig`; returns the files."""
    files = [out / f"{name}_rig.glb", out / f"{name}_sliders.json"]
    files[0].write_bytes(fitted.glb)
    files[1].write_text(json.dumps(fitted.to_json(), indent=1) + "\n")
    if fitted.texture_png is not None:
        files.append(out / f"{name}_rig_texture.png")
        files[-1].write_bytes(fitted.texture_png)
    if fitted.materials is not None:
        files.append(out / f"{name}_materials.json")
        files[-1].write_text(json.dumps(fitted.materials.to_json(), indent=1) + "\n")
    return files


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("photos", nargs="+", type=Path, help="photo files")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument("--server", default="127.0.0.1:50051", help="host:port of the server")
    p.add_argument("--all-faces", action="store_true", help="every face, not the largest")
    p.add_argument("--texture-size", type=int, default=1024, help="texels (256..2048)")
    p.add_argument("--token-file", type=Path, help="bearer token (default $FACECRAFT_TOKEN)")
    p.add_argument("--tls-ca", type=Path, help="CA certificate of a TLS server (PEM)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds for the whole batch")
    p.add_argument("--rig", help="also fit this rig: `starter`, a name on the server, or a "
                                 "local RIG.glb (+ RIG.rig.json) to register first")
    args = p.parse_args(argv)
    token = (args.token_file.read_text().strip() if args.token_file
             else os.environ.get("FACECRAFT_TOKEN"))
    options = ReconstructOptions(all_faces=args.all_faces, texture=True,
                                 texture_size=args.texture_size,
                                 vertex_colors=args.rig is not None)
    args.output.mkdir(parents=True, exist_ok=True)
    failed = 0
    try:
        with FaceCraftClient(args.server, token=token, root_certificates=args.tls_ca,
                             timeout_s=args.timeout) as client:
            rig = args.rig
            if rig is not None and rig.lower().endswith(".glb") and Path(rig).is_file():
                rig = client.register_rig(rig, overwrite=True).name
                print(f"registered rig {rig!r} from {args.rig}")
            items = client.reconstruct_batch([(str(ph), ph) for ph in args.photos], options)
            for item, photo in zip(items, args.photos, strict=True):
                if not item.ok:
                    print(f"{photo}: {item.code}: {item.message}", file=sys.stderr)
                    failed += 1
                    continue
                for face in item.result.faces:
                    name = photo.stem + (f"_face{face.face_index + 1}" if face.face_index else "")
                    files = write_face(face, args.output, name)
                    if rig is not None:
                        try:
                            fitted = client.fit_rig(rig, face=face, include_glb=True,
                                                    texture_size=args.texture_size)
                        except FaceCraftError as e:  # e.g. NOT_FOUND: an unknown rig name
                            print(f"{photo}: rig {rig!r}: {e}", file=sys.stderr)
                            failed += 1
                        else:
                            files += write_rig(fitted, args.output, name)
                    print(f"{photo}: face {face.face_index} (score {face.detection.score:.2f}) "
                          f"-> {', '.join(f.name for f in files)}")
    except FaceCraftError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2 if getattr(e, "code", "") in ("UNAVAILABLE", "DEADLINE_EXCEEDED") else 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
