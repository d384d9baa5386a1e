"""The ``facecraft`` command line.

Subcommands here: ``models import|info|build-starter|importers``, ``eval landmarks`` and
``create`` (photos to textured faces, :mod:`facecraft.sdk.pipeline.create`); ``rigs
import|info|list|export`` (:mod:`facecraft.sdk.rigs.cli`).
Other FaceCraft parts add their own command groups through the ``facecraft.cli`` entry-point
group: each entry point names a function ``register(subparsers)`` that adds one ``argparse``
sub-parser whose handler is set with ``set_defaults(handler=...)``. So ``facecraft.sdk`` never
imports the packages that build on it. A plugin may also add a subcommand to an existing group:
``command_group(subparsers, "eval").add_parser("regressor", ...)`` (see :func:`command_group`).

Errors a user can cause print one line, ``facecraft: error: ...``, and exit with status 1;
usage errors exit with 2 (argparse's convention); something asked for but missing on this
machine (``--provider cuda`` without CUDA) with 69; an unexpected failure prints one line and
exits with 70 (``--debug`` shows the traceback). Python warnings print as one
``facecraft: warning: ...`` line, never with source lines.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from .errors import FaceCraftError, ProviderUnavailableError

if TYPE_CHECKING:
    import numpy as np

    from .photo.mediapipe_frontend import MediaPipeFrontEnd
    from .photo.protocols import Detector, Landmarker

__all__ = ["main", "build_parser", "command_group"]

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 69
EXIT_INTERNAL = 70


def _cmd_models_import(args: argparse.Namespace) -> int:
    from .models.importers import import_model
    from .models.mesh_graph import build_mesh_graph
    from .models.model_file import save_model

    options = {}
    if args.face_only:
        options["face_only"] = True
    if args.landmarks:
        options["landmarks"] = args.landmarks
    if args.albedo:
        options["albedo"] = args.albedo
    if args.expressions:
        options["expressions"] = args.expressions
    for item in args.option or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise FaceCraftError(f"--option expects KEY=VALUE, got {item!r}")
        options[key.strip().replace("-", "_")] = value
    t0 = time.perf_counter()
    model = import_model(args.kind, args.path, progress=not args.quiet, **options)
    if not args.no_graph:
        graph = build_mesh_graph(model.mean_shape, model.triangles, progress=not args.quiet)
        model = model.replace(graph=graph)
    digest = save_model(model, args.output)
    s = model.summary()
    print(f"wrote {args.output}: {s['vertices']} vertices, {s['identity_modes']} identity, "
          f"{s['expression_modes']} expression modes, graph levels {s['graph_levels']}, "
          f"sha256 {digest[:16]}..., {time.perf_counter() - t0:.1f} s")
    return 0


def _format_info(info, summary: dict) -> str:
    meta = info.meta if info is not None else {}
    lines = []
    if info is not None:
        lines += [f"file:             {info.path} ({info.size_bytes / 1e6:.1f} MB)",
                  f"schema:           {info.schema_version}",
                  f"content sha256:   {info.content_sha256}"]
    lines += [
        f"name:             {summary['name']}",
        f"vertices:         {summary['vertices']}",
        f"triangles:        {summary['triangles']}",
        f"identity modes:   {summary['identity_modes']}",
        f"expression modes: {summary['expression_modes']} ({summary['expression_kind']})",
        f"albedo modes:     {summary['albedo_modes'] if summary['albedo_modes'] is not None else 'none (shape only)'}",  # noqa: E501
        f"uvs:              {summary['uvs']}",
        f"landmarks:        {summary['landmarks']} (iBUG order)",
        f"extent (m):       {summary['extent_m']}",
        f"graph levels:     {summary['graph_levels'] or 'none'}",
        "regions:          " + ", ".join(f"{k} ({v})" for k, v in summary["regions"].items()),
    ]
    prov = meta.get("provenance") or summary.get("provenance")
    if prov:
        lines.append(f"provenance:       {json.dumps(prov, sort_keys=True)}")
    licence = meta.get("licence") or summary.get("licence")
    if licence:
        lines.append(f"licence:          {licence}")
    return "\n".join(lines)


def _cmd_models_info(args: argparse.Namespace) -> int:
    from .models.default_model import (
        DEFAULT_MODEL_NAME,
        default_model_path,
        load_default_model,
    )
    from .models.model_file import load_model, read_model_info

    if args.file == DEFAULT_MODEL_NAME:
        model = load_default_model()
        path = default_model_path()
    else:
        path = Path(args.file)
        model = load_model(path)
    from .vendored import vendored_components

    info = read_model_info(path)
    summary = model.summary()
    bundled = vendored_components()
    if args.json:
        summary.update(file=str(path), sha256=info.content_sha256,
                       schema_version=info.schema_version,
                       identity_names=list(model.identity_names),
                       expression_names=list(model.expression_names),
                       albedo_names=list(model.albedo_names),
                       provenance=model.provenance, licence=model.licence,
                       bundled=[{"folder": c.folder.name, "licence": c.licence,
                                 "repository": c.repository, "commit": c.commit,
                                 "files": c.files, "notice": c.notice} for c in bundled])
        print(json.dumps(summary, indent=2))
    else:
        print(_format_info(info, summary))
        if args.names:
            print("identity names:   " + ", ".join(model.identity_names))
            print("expression names: " + ", ".join(model.expression_names))
            if model.albedo_names:
                print("albedo names:     " + ", ".join(model.albedo_names))
        for c in bundled:
            print(f"\nbundled: {c.folder.name}/ ({c.licence}) from {c.repository}"
                  f" @ {c.commit or 'commit not recorded by the source'}")
            for f, sha in c.files.items():
                print(f"  {f}  sha256 {sha[:16]}...")
            print("  NOTICE: " + c.notice.strip().replace("\n", "\n  "))
    return 0


def _cmd_models_build_starter(args: argparse.Namespace) -> int:
    from .models.default_model import build_default_model
    from .models.model_file import save_model

    model = build_default_model(progress=not args.quiet)
    digest = save_model(model, args.output)
    print(f"wrote {args.output}: starter model, {model.num_vertices} vertices, "
          f"sha256 {digest[:16]}...")
    return 0


def _cmd_models_importers(args: argparse.Namespace) -> int:
    from .models.importers import IMPORTERS

    for kind, info in IMPORTERS.items():
        print(f"{kind:14s} {info.description}")
    return 0


def _add_models(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="import, compile and inspect face models",
                            description="Import, compile and inspect morphable face models.")
    msub = models.add_subparsers(dest="models_command", metavar="COMMAND", required=True)

    p = msub.add_parser(
        "import", help="compile a third-party face model into a .fcm file",
        description="Read a face model in its published layout, build its mesh graph, and "
                    "write one compiled .fcm file. `facecraft models importers` lists KINDs.")
    p.add_argument("kind", metavar="KIND", help="ict-facekit, bfm2009, bfm-front, bfm2017, "
                   "flame or surrey")
    p.add_argument("path", metavar="PATH", help="the model's folder or main file")
    p.add_argument("-o", "--output", required=True, type=Path, help="the .fcm file to write")
    p.add_argument("--face-only", action="store_true",
                   help="keep only the face region (ICT-FaceKit)")
    p.add_argument("--landmarks", help="landmark mapping / embedding file (BFM, FLAME, Surrey)")
    p.add_argument("--albedo", help="albedo / texture model file (FLAME)")
    p.add_argument("--expressions", help="expression basis file (BFM 2009's Exp_Pca.bin, "
                   "Surrey's blendshapes)")
    p.add_argument("-O", "--option", action="append", metavar="KEY=VALUE",
                   help="any other importer option, e.g. contours=PATH, max_identity=80 "
                        "(repeatable; see `facecraft models importers`)")
    p.add_argument("--no-graph", action="store_true", help="skip the GCN mesh graph")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=_cmd_models_import)

    p = msub.add_parser("info", help="summarize a .fcm file",
                        description="Print a compiled model's summary; FILE may be `starter`.")
    p.add_argument("file", metavar="FILE", help="a .fcm file, or `starter` (the default model)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--names", action="store_true", help="also list every mode's name")
    p.set_defaults(handler=_cmd_models_info)

    p = msub.add_parser("build-starter", help="generate the built-in starter model",
                        description="Generate FaceCraft's procedural starter model (no "
                                    "third-party data) with its mesh graph.")
    p.add_argument("-o", "--output", required=True, type=Path, help="the .fcm file to write")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=_cmd_models_build_starter)

    p = msub.add_parser("importers", help="list the face-model importers",
                        description="List the KINDs `facecraft models import` reads.")
    p.set_defaults(handler=_cmd_models_importers)


def _cmd_eval_landmarks(args: argparse.Namespace) -> int:

    from .photo.detect import DetectorSettings, FaceDetector
    from .photo.landmark_eval import evaluate_landmarks, format_eval_table
    from .photo.landmarker import Dlib68Landmarker
    from .photo.landmarks import IBUG68_FROM_MESH468
    from .photo.mediapipe_frontend import FrontEndSettings, MediaPipeFrontEnd

    detector = FaceDetector(DetectorSettings(threads=args.threads))
    front = MediaPipeFrontEnd(FrontEndSettings(small_faces=True, threads=args.threads))
    landmarkers = {}
    if Dlib68Landmarker.available():
        landmarkers["dlib-68pt"] = Dlib68Landmarker()
    else:
        print("note: dlib-68pt skipped (pip install -e '.[landmarks68]')", file=sys.stderr)
    ids = list(IBUG68_FROM_MESH468)

    def mesh68(rgb: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(f.face.box, f.points[ids, :2]) for f in front.analyze(rgb)]

    out: list[str] = []
    if args.annotations is not None:
        rows = evaluate_landmarks(args.annotations, detector, landmarkers,
                                  progress=not args.quiet,
                                  end_to_end={"mediapipe-468 as 68": mesh68})
        out.append(format_eval_table(rows))
    if args.templates is not None:
        out.append(_template_table(args, detector, front, landmarkers))
    if not out:
        raise UsageError("give ANNOTATIONS.json and/or --templates PHOTOS_DIR")
    print("\n\n".join(out))
    return 0


def _template_table(args: argparse.Namespace, detector: Detector, front: MediaPipeFrontEnd,
                    landmarkers: dict[str, Landmarker]) -> str:
    """The named-point table on the London/Canada 189-point templates (validation people)."""
    import numpy as np  # noqa: F811

    from .photo.detection import largest_face
    from .photo.template_eval import evaluate_templates, format_template_table

    def mediapipe(rgb: np.ndarray) -> np.ndarray | None:
        faces = front.analyze(rgb)
        if not faces:
            return None
        m = faces[0].mesh
        return m.points[:, :2] if m.iris is None else np.concatenate([m.points[:, :2],
                                                                      m.iris[:, 0, :2]])

    def mtcnn5(rgb: np.ndarray) -> np.ndarray | None:
        f = largest_face(detector.detect(rgb))
        return None if f is None else f.landmarks5

    methods: dict[str, object] = {"mediapipe-468+iris": mediapipe,
                                  "mtcnn-5pt": (mtcnn5, (0, 1, 87, 93))}
    for name, lmk in landmarkers.items():
        def run(rgb: np.ndarray, lmk: Landmarker = lmk) -> np.ndarray | None:
            f = largest_face(detector.detect(rgb))
            if f is None:
                return None
            pts = lmk.landmarks(rgb, f.box)
            eyes = [pts[36:42].mean(0), pts[42:48].mean(0)] if len(pts) == 68 else []
            return np.concatenate([pts, np.asarray(eyes).reshape(-1, 2)])
        methods[name] = run
    rows = evaluate_templates(methods, args.templates)
    return format_template_table(rows)


def _add_eval(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("eval", help="measure accuracy on annotated data",
                        description="Measure FaceCraft's stages on annotated data.")
    esub = ev.add_subparsers(dest="eval_command", metavar="COMMAND", required=True)
    p = esub.add_parser(
        "landmarks", help="landmark NME of every available landmarker",
        description="Detect faces in every annotated photo and report the box-normalised and "
                    "inter-ocular NME of the detector's 5 points, each 68-point landmarker and "
                    "the MediaPipe front-end (its 468 points read as 68), ground-truth and "
                    "model-prediction annotations apart; with --templates, the error of named "
                    "points on the London/Canada 189-point templates of the validation people "
                    "(in % of the outer-eye-corner distance; each method's point for each "
                    "template point chosen on the training people).")
    p.add_argument("annotations", type=Path, nargs="?", metavar="ANNOTATIONS.json",
                   help="e.g. ../shared/assets/landmarks68.json (paths relative to it)")
    p.add_argument("--templates", type=Path, metavar="PHOTOS_DIR",
                   help="the shared photos folder (london-faces/, canada-faces/)")
    p.add_argument("--threads", type=int, default=2, help="inference threads")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_cmd_eval_landmarks)


def command_group(subparsers: argparse._SubParsersAction, name: str
                  ) -> argparse._SubParsersAction:
    """The subcommands of the existing command group ``name`` (e.g. ``"eval"``).

    For an entry point's ``register(subparsers)`` that adds a command next to the built-in ones,
    e.g. ``command_group(subparsers, "eval").add_parser("regressor", ...)`` makes
    ``facecraft eval regressor``.

    Args:
        subparsers: the top-level subparsers ``register`` receives.
        name: a command group already added (the SDK's groups come before any plugin's).

    Raises:
        KeyError: no such group, or ``name`` is a plain command without subcommands.
    """
    group = subparsers.choices.get(name)
    for action in getattr(group, "_actions", ()):
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise KeyError(f"no facecraft command group {name!r} with subcommands")


class UsageError(FaceCraftError):
    """A bad command line the parser cannot see (e.g. ``-o`` names a file): exit status 2."""


class UnavailableError(FaceCraftError):
    """Something the command line asks for is missing on this machine (e.g. ``--provider
    cuda`` without CUDA in ONNX Runtime): exit status 69 (EX_UNAVAILABLE)."""


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def _texture_size(text: str) -> int:
    """argparse type: a texture side in [MIN_TEXTURE_SIZE, MAX_TEXTURE_SIZE]."""
    from .render.texture import MAX_TEXTURE_SIZE, MIN_TEXTURE_SIZE

    try:
        n = int(text)
    except ValueError:
        n = -1
    if not MIN_TEXTURE_SIZE <= n <= MAX_TEXTURE_SIZE:
        raise argparse.ArgumentTypeError(f"must be a whole number of texels in "
                                         f"[{MIN_TEXTURE_SIZE}, {MAX_TEXTURE_SIZE}], got "
                                         f"{text!r}")
    return n


def _check_output_dir(path: Path) -> None:
    """``-o DIR`` must be a folder or not exist yet (it is created)."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"-o {path}: exists and is not a folder; give a folder for the "
                         "output files (it is created when missing)")


def _cmd_create(args: argparse.Namespace) -> int:
    import torch

    from .pipeline.create import create_faces
    from .pipeline.pipeline import FaceCraft, PipelineSettings
    from .pipeline.runtime import require_provider

    _check_output_dir(args.output)
    explicit = args.provider != "auto"
    if explicit:
        require_provider(args.provider)
    # An entry point may configure the process. The torch stages (shape, rasterization, UV
    # gathers) are many small ops that one thread runs fastest, especially on shared cores;
    # --threads goes to the ONNX Runtime sessions, where the work is.
    torch.set_num_threads(1)
    settings = PipelineSettings(all_faces=args.all_faces, texture_size=args.texture_size,
                                front_end=args.detector)
    rig = None
    if args.rig is not None:  # a bad rig fails before the networks load
        from .rigs.registry import resolve_rig

        rig = resolve_rig(args.rig, args.rigs_dir)
    craft = FaceCraft(args.package, providers=[args.provider] if explicit else None,
                      threads=args.threads, settings=settings)
    if explicit and craft.regressor.providers[0] != craft.regressor.selection.primary:
        raise UnavailableError(f"--provider {args.provider}: ONNX Runtime could not start "
                               f"{craft.regressor.selection.primary} (it fell back to "
                               f"{craft.regressor.providers[0]}); use --provider auto or cpu")
    rigger = None
    if rig is not None:  # one fitter (one cached correspondence) for the whole run
        from .rigs.create import FaceRigger, RigCreateSettings

        rigger = FaceRigger(craft.face_model, rig,
                            settings=RigCreateSettings(texture_size=args.texture_size))

    def failed(photo: str, message: str) -> None:
        from tqdm import tqdm

        text = message if photo in message else f"{photo}: {message}"
        tqdm.write(f"facecraft: error: {text}", file=sys.stderr)

    report = create_faces(craft, args.photos, args.output, batch_size=args.batch,
                          overlay=not args.no_overlay,
                          progress=len(args.photos) > 1 and not args.quiet, on_error=failed,
                          rigger=rigger)
    if not args.quiet:
        print(f"wrote {report.num_faces} face(s) from {len(report.written)} photo(s) to "
              f"{args.output}" + (f" with rig {rig.name!r}" if rig is not None else "")
              + (f"; {len(report.failed)} photo(s) failed" if report.failed else ""))
    return EXIT_ERROR if report.failed else 0


_FOLDERS_EPILOG = """\
folders and first run:
  cache      $FACECRAFT_CACHE, else $XDG_CACHE_HOME/facecraft, else ~/.cache/facecraft:
             the built-in starter face model (starter-v*.fcm), rig correspondences
             (rig-correspondence/) and TensorRT engines (tensorrt/); safe to delete.
  rigs       $FACECRAFT_RIGS, else $FACECRAFT_HOME/rigs, else $XDG_DATA_HOME/facecraft/rigs,
             else ~/.local/share/facecraft/rigs: the rig registry (`facecraft rigs import`).
  cold start the first run on a machine builds the starter face model and its mesh graph
             (a few seconds) and caches it; the first --rig fit of a rig caches its
             correspondence; TensorRT builds its engines on first use (minutes). Later runs
             load these in milliseconds.
"""


def _add_create(sub: argparse._SubParsersAction) -> None:
    from .render.texture import (
        DEFAULT_TEXTURE_SIZE,
        MAX_TEXTURE_SIZE,
        MIN_TEXTURE_SIZE,
    )

    p = sub.add_parser(
        "create", help="photos -> textured 3D faces (OBJ + MTL + PNG, coefficients, overlay; "
                       "with --rig a fitted rig GLB, sliders and materials)",
        description="Reconstruct the face in each photo and write NAME.obj/.mtl/_texture.png, "
                    "NAME_neutral.obj, NAME_coeffs.json and NAME_overlay.png per face; with "
                    "--rig also NAME_rig.glb (the rig with the fitted sliders and the texture), "
                    "NAME_sliders.json, NAME_rig_texture.png and NAME_materials.json. A photo "
                    "without a face (or not an image) is reported and skipped; the exit status "
                    "is then 1. Usage errors exit with 2, a missing --provider with 69.",
        epilog=_FOLDERS_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("photos", nargs="+", type=Path, metavar="PHOTO",
                   help="photo files (JPEG, PNG, WebP, BMP, TIFF; regular files up to 64 MiB)")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="DIR",
                   help="output folder (created)")
    p.add_argument("--package", type=Path, metavar="PKG",
                   help="a .fcpkg model package (default: the built-in one)")
    p.add_argument("--all-faces", action="store_true",
                   help="every face of each photo, not only the largest")
    p.add_argument("--detector", choices=("mediapipe", "mtcnn"), default="mediapipe",
                   help="photo front-end: MediaPipe's detector + 468-point mesh + iris "
                        "(default), or MTCNN's 5 points")
    p.add_argument("--texture-size", type=_texture_size, default=DEFAULT_TEXTURE_SIZE,
                   metavar="N", help=f"UV texture side in texels, {MIN_TEXTURE_SIZE}-"
                                     f"{MAX_TEXTURE_SIZE} (default {DEFAULT_TEXTURE_SIZE})")
    p.add_argument("--provider", choices=("auto", "cpu", "cuda", "tensorrt"), default="auto",
                   help="ONNX Runtime provider: auto (default) takes TensorRT > CUDA > CPU as "
                        "available; cuda or tensorrt fail (exit 69) when this machine lacks "
                        "them instead of running on the CPU")
    p.add_argument("--threads", type=_positive_int, metavar="N",
                   help="ONNX Runtime threads per network (default: one per core)")
    p.add_argument("--batch", type=_positive_int, default=4, metavar="N",
                   help="photos per batch, >= 1 (default 4)")
    p.add_argument("--no-overlay", action="store_true", help="skip the overlay PNGs")
    p.add_argument("--rig", metavar="RIG",
                   help="also fit this character rig: `starter`, a registered name (`facecraft "
                        "rigs list`) or a GLB path with its NAME.rig.json next to it; the rig "
                        "texture has --texture-size texels")
    p.add_argument("--rigs-dir", type=Path, metavar="DIR",
                   help="rig registry folder for --rig names (default: $FACECRAFT_RIGS, "
                        "$FACECRAFT_HOME/rigs, ~/.local/share/facecraft/rigs)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(handler=_cmd_create)


def build_parser() -> argparse.ArgumentParser:
    """The full ``facecraft`` parser, including command groups from entry points."""
    parser = argparse.ArgumentParser(
        prog="facecraft",
        description="FaceCraft: a player's photo to a game character's face.",
        epilog=_FOLDERS_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"facecraft {_version()}")
    parser.add_argument("--debug", action="store_true",
                        help="show tracebacks of unexpected errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_models(sub)
    _add_eval(sub)
    _add_create(sub)
    from .rigs.cli import (
        add_rigs_commands,  # `facecraft rigs ...` (the character-rig registry)
    )

    add_rigs_commands(sub)
    for ep in entry_points(group="facecraft.cli"):
        try:
            register = ep.load()
        except Exception as e:  # a broken plugin must not take the whole CLI down
            print(f"facecraft: warning: command group {ep.name!r} unavailable: "
                  f"{type(e).__name__}: {e}", file=sys.stderr)
            continue
        register(sub)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("facecraft")
    except PackageNotFoundError:
        return "unknown"


def _show_warning(message: Warning | str, category: type[Warning], filename: str,
                  lineno: int, file: TextIO | None = None, line: str | None = None) -> None:
    """``warnings.showwarning`` for users: one line, no Python source."""
    text = " ".join(str(message).split())
    print(f"facecraft: warning: {text}", file=sys.stderr if file is None else file)


def _format_warning(message: Warning | str, category: type[Warning], filename: str,
                    lineno: int, line: str | None = None) -> str:
    return "warning: " + " ".join(str(message).split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status.

    Python warnings raised while a command runs are shown as one ``facecraft: warning: ...``
    line each (never with a source line).
    """
    saved = warnings.formatwarning
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        warnings.formatwarning = _format_warning  # logging.captureWarnings formats with it
        try:
            return _run(argv)
        finally:
            warnings.formatwarning = saved


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except UsageError as e:
        print(f"facecraft: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (UnavailableError, ProviderUnavailableError) as e:
        print(f"facecraft: error: {e}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except FaceCraftError as e:
        print(f"facecraft: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("facecraft: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # the last line of defence: one line, not a traceback
        if args.debug:
            raise
        print(f"facecraft: internal error: {type(e).__name__}: {e} (run with --debug for "
              "the traceback, and please report it)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
