"""Photo in, files out, through a FaceCraft server.

Start a server (``facecraft serve --package PKG``), then::

    python examples/grpc_client.py photo.jpg [more.jpg ...] -o out/ [--server 127.0.0.1:50051]
        [--all-faces] [--texture-size 1024] [--token-file F] [--tls-ca ca.pem]

For each face it writes, named after the photo (``_face2``, ... for further faces)::

    NAME.obj, NAME.mtl, NAME.png   the textured mesh (model frame, metres, UVs, normals)
    NAME_neutral.obj               the same face with a neutral expression (no material)
    NAME_coeffs.json               coefficients by block, pose, detection, landmarks

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

from facecraft.sdk.client import FaceCraftClient, ReconstructOptions
from facecraft.sdk.errors import FaceCraftError
from facecraft.sdk.mesh_io import write_obj


def write_face(face, out: Path, name: str) -> list[Path]:
    """Write one :class:`facecraft.sdk.client.Face`; returns the files."""
    obj = write_obj(out / f"{name}.obj", face.vertices, face.triangles, uvs=face.uvs,
                    uv_triangles=face.uv_triangles, normals=face.normals,
                    texture=face.texture())
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
    return [obj, obj.with_suffix(".mtl"), obj.with_suffix(".png"), neutral, coeffs]


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
    args = p.parse_args(argv)
    token = (args.token_file.read_text().strip() if args.token_file
             else os.environ.get("FACECRAFT_TOKEN"))
    options = ReconstructOptions(all_faces=args.all_faces, texture=True,
                                 texture_size=args.texture_size)
    args.output.mkdir(parents=True, exist_ok=True)
    failed = 0
    try:
        with FaceCraftClient(args.server, token=token, root_certificates=args.tls_ca,
                             timeout_s=args.timeout) as client:
            items = client.reconstruct_batch([(str(ph), ph) for ph in args.photos], options)
            for item, photo in zip(items, args.photos, strict=True):
                if not item.ok:
                    print(f"{photo}: {item.code}: {item.message}", file=sys.stderr)
                    failed += 1
                    continue
                for face in item.result.faces:
                    name = photo.stem + (f"_face{face.face_index + 1}" if face.face_index else "")
                    files = write_face(face, args.output, name)
                    print(f"{photo}: face {face.face_index} (score {face.detection.score:.2f}) "
                          f"-> {', '.join(f.name for f in files)}")
    except FaceCraftError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2 if getattr(e, "code", "") in ("UNAVAILABLE", "DEADLINE_EXCEEDED") else 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
