"""README.md's two set-up commands are exactly what CI runs."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _setup_block() -> list[str]:
    text = (REPO / "README.md").read_text()
    m = re.search(r"<!-- setup -->\s*```(?:bash|sh)?\n(.*?)```", text, re.S)
    assert m, "README.md needs a ```bash block right after <!-- setup -->"
    return [ln.strip() for ln in m.group(1).splitlines()
            if ln.strip() and not ln.strip().startswith("#")]


def _optional_tool(line: str) -> bool:
    """An optional tool install (npm, or apt-get for Blender) that may fail without failing
    CI."""
    return line.strip().startswith(("npm ", "apt-get ")) and "|| echo" in line


def test_readme_has_exactly_two_setup_commands_and_ci_runs_them():
    cmds = _setup_block()
    assert len(cmds) == 2, cmds
    ci = [ln.strip() for ln in (REPO / ".ci" / "run").read_text().splitlines()
          if ln.strip() and not ln.strip().startswith(("#", "set ", "cd ", "export "))
          and not _optional_tool(ln)]
    assert ci == cmds, f"CI runs {ci}, README says {cmds}"
