"""``facecraft rigs import|info|list|export``: the rig registry on the command line.

:func:`add_rigs_commands` adds the ``rigs`` group to the top-level parser (called from
:func:`facecraft.sdk.cli.build_parser`). Handlers print and return an exit status; errors a user
can cause are :class:`~facecraft.sdk.errors.FaceCraftError` and reach the CLI's one-line error.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["add_rigs_commands"]


def _format_summary(s: dict) -> str:
    lines = [f"{'name:':20s}{s['name']}"]
    if s.get("source"):
        lines.append(f"{'source:':20s}{s['source']}")
    lines += [
        f"{'vertices:':20s}{s['vertices']}",
        f"{'triangles:':20s}{s['triangles']}",
        f"{'morph targets:':20s}{s['morph_targets']} ({s['unlisted_targets']} not in the "
        "sidecar)",
        f"{'identity sliders:':20s}{s['identity_sliders']}",
        f"{'expression sliders:':20s}{s['expression_sliders']} ({s['arkit_expressions']} "
        "ARKit-named)",
        f"{'symmetric pairs:':20s}{s['symmetric_pairs']}",
        f"{'uvs / texture:':20s}{'yes' if s['uvs'] else 'no'} / "
        f"{'yes' if s['texture'] else 'no'}",
        f"{'extent (m):':20s}{s['extent_m']}",
        f"{'groups:':20s}" + ", ".join(f"{k} ({v})" for k, v in s["groups"].items()),
        f"{'regions:':20s}" + (", ".join(f"{k} ({v})" for k, v in s["regions"].items())
                               or "none"),
        f"{'content sha256:':20s}{s['content_sha256']}",
    ]
    return "\n".join(lines)


def _cmd_import(args: argparse.Namespace) -> int:
    from .registry import import_rig

    rig = import_rig(args.glb, args.sidecar, name=args.name, rigs_dir=args.dir,
                     overwrite=args.force)
    s = rig.summary()
    print(f"registered rig {rig.name!r} ({s['vertices']} vertices, "
          f"{s['identity_sliders']} identity + {s['expression_sliders']} expression sliders): "
          f"{rig.source}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from .registry import resolve_rig

    rig = resolve_rig(args.rig, args.dir)
    summary = rig.summary()
    if args.json:
        summary["sliders"] = [s.to_json() for s in rig.spec.sliders]
        summary["symmetric_pairs"] = [list(p) for p in rig.spec.symmetric_pairs]
        print(json.dumps(summary, indent=2))
        return 0
    print(_format_summary(summary))
    if args.sliders:
        for s in rig.spec.sliders:
            print(f"  {s.kind:10s} {s.name:24s} [{s.min:g}, {s.max:g}] default {s.default:g}"
                  + (f"  group {s.group}" if s.group else "")
                  + (f"  arkit {s.arkit}" if s.arkit else ""))
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from .registry import default_rigs_dir, list_rigs

    entries = list_rigs(args.dir)
    if args.json:
        print(json.dumps([{"name": e.name, "builtin": e.builtin,
                           "glb": str(e.glb) if e.glb else None,
                           "sidecar": str(e.sidecar) if e.sidecar else None}
                          for e in entries], indent=2))
        return 0
    print(f"rigs in {Path(args.dir) if args.dir else default_rigs_dir()}:")
    for e in entries:
        print(f"  {e.name:24s} " + ("(built in)" if e.builtin else str(e.glb)))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .registry import resolve_rig
    from .rig import save_rig

    rig = resolve_rig(args.rig, args.dir)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    glb, side = save_rig(rig, args.output, target_normals=not args.no_normals)
    print(f"wrote {glb} and {side}")
    return 0


def add_rigs_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``facecraft rigs ...`` to the top-level subparsers."""
    rigs = sub.add_parser("rigs", help="register and inspect character rigs (GLB + sidecar)",
                          description="Character rigs: a GLB head whose morph targets are "
                                      "sliders, plus a JSON sidecar (see facecraft.sdk.rigs.rig).")
    rsub = rigs.add_subparsers(dest="rigs_command", metavar="COMMAND", required=True)
    dir_help = "registry folder (default: $FACECRAFT_RIGS, $FACECRAFT_HOME/rigs, " \
               "~/.local/share/facecraft/rigs)"

    p = rsub.add_parser("import", help="validate a rig and add it to the registry",
                        description="Validate GLB + sidecar and copy them into the registry as "
                                    "NAME.glb + NAME.rig.json.")
    p.add_argument("glb", type=Path, metavar="GLB", help="the rig's .glb (or .gltf)")
    p.add_argument("--sidecar", type=Path, metavar="JSON",
                   help="the sidecar (default: NAME.rig.json next to the GLB)")
    p.add_argument("--name", help="registry name (default: the sidecar's name)")
    p.add_argument("--force", action="store_true", help="replace a rig of the same name")
    p.add_argument("--dir", type=Path, help=dir_help)
    p.set_defaults(handler=_cmd_import)

    p = rsub.add_parser("info", help="summarize a rig",
                        description="Summarize a rig: `starter`, a registered name, or a GLB "
                                    "path (sidecar next to it).")
    p.add_argument("rig", metavar="NAME|PATH")
    p.add_argument("--json", action="store_true", help="machine-readable, with every slider")
    p.add_argument("--sliders", action="store_true", help="also list the sliders")
    p.add_argument("--dir", type=Path, help=dir_help)
    p.set_defaults(handler=_cmd_info)

    p = rsub.add_parser("list", help="list the registered rigs",
                        description="List the built-in and registered rigs.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--dir", type=Path, help=dir_help)
    p.set_defaults(handler=_cmd_list)

    p = rsub.add_parser("export", help="write a rig as GLB + sidecar (e.g. the starter, as a "
                                       "template for a studio's own)",
                        description="Write a rig (`starter`, a name or a path) as OUT.glb and "
                                    "OUT.rig.json.")
    p.add_argument("rig", metavar="NAME|PATH")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.glb")
    p.add_argument("--no-normals", action="store_true",
                   help="leave out the morph targets' NORMAL deltas (half the size)")
    p.add_argument("--dir", type=Path, help=dir_help)
    p.set_defaults(handler=_cmd_export)
