"""Rig fitting: correspondence build time (once per model/rig pair) and per-face costs.

Usage::

    python benchmarks/rig.py [--ict DIR] [--repeat 5] [--threads 1] [--texture-size 1024]

Pairs: the starter model onto the starter rig, the starter model onto a rig made from
ICT-FaceKit's modes (the face region, 30 identity modes, as tests/sdk/test_rig_ict.py builds
it), and ICT-FaceKit onto both. ICT-FaceKit is unpacked from ../shared/assets into a temporary
folder unless ``--ict`` names an unpacked ``FaceXModel`` folder; without it the ICT rows are
skipped. For each pair: the correspondence built from scratch (no cache; median of
``--repeat``), its residual, then per face the slider fit (:meth:`RigFitter.fit`, random
identities), expression weights, texture transfer (per-vertex colours baked into the rig's UV
layout) and writing the GLB (identity baked, sparse morph targets; its size beside the dense,
unbaked layout FaceCraft wrote before). Prints a table of medians. ``--threads`` sets the
BLAS / OpenMP threads (one is fastest for these small solves on shared cores).
"""

from __future__ import annotations

import argparse
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ICT_TARBALL = REPO.parent / "shared" / "assets" / "face-models" / "ict-facekit" / \
    "FaceXModel.tar.xz"


def _median_ms(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return 1e3 * times[len(times) // 2], out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ict", type=Path, help="an unpacked ICT-FaceKit FaceXModel folder")
    ap.add_argument("--repeat", type=int, default=3, help="repeats per measurement")
    ap.add_argument("--faces", type=int, default=10, help="random faces per fit timing")
    ap.add_argument("--threads", type=int, default=1, help="BLAS / OpenMP threads")
    ap.add_argument("--texture-size", type=int, default=1024, help="baked texture side")
    args = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # an entry point may configure its process

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(REPO))
    from facecraft.sdk.models.default_model import load_default_model
    from facecraft.sdk.render.texture import BakeSettings
    from facecraft.sdk.rigs.correspondence import build_correspondence
    from facecraft.sdk.rigs.fit import RigFitter
    from facecraft.sdk.rigs.gltf import glb_bytes
    from facecraft.sdk.rigs.output import _png_bytes, write_rig_glb
    from facecraft.sdk.rigs.rig import starter_rig
    from tests.sdk._rig_fixtures import make_ict_rig

    starter = load_default_model()
    rigs = {"starter": starter_rig(model=starter)}
    models = {"starter": starter}
    tmp = tempfile.TemporaryDirectory(prefix="facecraft-bench-rig-")
    ict_dir = args.ict
    if ict_dir is None and ICT_TARBALL.is_file():
        with tarfile.open(ICT_TARBALL) as tf:
            tf.extractall(tmp.name, filter="data")
        ict_dir = Path(tmp.name) / "FaceXModel"
    if ict_dir is not None:
        from facecraft.sdk.models.importers.ict import import_ict_facekit

        models["ict"] = import_ict_facekit(ict_dir)
        rigs["ict-face"] = make_ict_rig(models["ict"])
    else:
        print("note: ICT-FaceKit not found; only the starter rows run", file=sys.stderr)

    rng = np.random.default_rng(0)
    bake = BakeSettings(size=args.texture_size)
    rows = []
    for mname, model in models.items():
        for rname, rig in rigs.items():
            build_ms, corr = _median_ms(lambda m=model, r=rig: build_correspondence(m, r),
                                        args.repeat)
            fitter = RigFitter(model, rig, correspondence=corr)
            faces = [model.shape(identity=np.clip(rng.normal(size=model.num_identity), -2.5,
                                                  2.5)) for _ in range(args.faces)]
            it = iter(faces * args.repeat)
            fit_ms, fit = _median_ms(lambda f=fitter, i=it: f.fit(next(i)),
                                     args.faces * args.repeat)
            coeffs = np.zeros(model.num_expression)
            coeffs[: min(5, len(coeffs))] = 0.5
            expr_ms, expr = _median_ms(lambda f=fitter, c=coeffs: f.expressions(c),
                                       args.repeat)
            colors = np.clip(model.albedo_mean if model.albedo_mean is not None
                             else np.full((model.num_vertices, 3), 0.6), 0, 1)
            tex_ms, tex = _median_ms(lambda f=fitter, c=colors: f.transfer_texture(
                vertex_colors=c, settings=bake), args.repeat)
            glb = Path(tmp.name) / f"{mname}-{rname}.glb"
            glb_ms, _ = _median_ms(lambda r=rig, f=fit, e=expr, t=tex, p=glb: write_rig_glb(
                r, f, e, t, p), args.repeat)
            dense = len(glb_bytes(rig.to_gltf(rig.weights({**fit.values, **expr.weights},
                                                          clip=True),
                                              texture_png=_png_bytes(tex)), sparse=False))
            rep = corr.report()
            rows.append((f"{model.name} -> {rig.name}", model.num_vertices, rig.num_vertices,
                         build_ms / 1e3, rep["residual_mean_mm"], rep["residual_p95_mm"],
                         fit_ms, fit.residual_mean_mm, expr_ms, tex_ms, glb_ms,
                         glb.stat().st_size / 1e6, dense / 1e6))
    print(f"\nrig fitting, {args.threads} thread(s), texture {args.texture_size}^2, median of "
          f"{args.repeat} (fit: {args.faces} faces x {args.repeat})\n")
    head = ("pair", "V model", "V rig", "corr. build s", "corr. mean mm", "corr. p95 mm",
            "fit ms/face", "fit mean mm", "expr ms", "texture ms", "GLB write ms", "GLB MB",
            "dense GLB MB")
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.2f} | {r[4]:.2f} | {r[5]:.2f} | "
              f"{r[6]:.1f} | {r[7]:.2f} | {r[8]:.1f} | {r[9]:.0f} | {r[10]:.0f} | "
              f"{r[11]:.1f} | {r[12]:.1f} |")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
