"""Third-party model data shipped inside the package, with licence, provenance and notice.

Each folder under ``facecraft/sdk/data/`` that holds third-party files has a ``LICENSE``, a
``NOTICE`` and a ``PROVENANCE.json`` (source repository, commit, sha256 of every file).
:func:`vendored_components` reads them for ``facecraft models info``; tests check the recorded
hashes against the files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["VendoredComponent", "vendored_components", "DATA_DIR"]

#: The package's data folder.
DATA_DIR = Path(__file__).resolve().parent / "data"
#: The vendored folders, in the order ``models info`` lists them.
_FOLDERS = ("mediapipe", "mediapipe-mesh")


@dataclass(frozen=True)
class VendoredComponent:
    """One vendored folder.

    Attributes:
        folder: its path. licence: SPDX id. repository / commit: where it comes from (commit
            None where the source did not record it). files: file name -> sha256 (hex).
        notice: the NOTICE text.
    """

    folder: Path
    licence: str
    repository: str
    commit: str | None
    files: dict[str, str]
    notice: str


def vendored_components(data_dir: Path = DATA_DIR) -> list[VendoredComponent]:
    """The vendored folders that exist under ``data_dir``."""
    out = []
    for name in _FOLDERS:
        folder = data_dir / name
        prov_path = folder / "PROVENANCE.json"
        if not prov_path.is_file():
            continue
        prov = json.loads(prov_path.read_text())
        if "models" in prov:  # facecraft export mediapipe's layout
            src = prov.get("source", {})
            files = {rec["file"]: rec["sha256"] for rec in prov["models"].values()}
            licence, repo, commit = src.get("licence", "?"), src.get("repository", "?"), \
                src.get("commit")
        else:
            recs = prov.get("files", {})
            files = {f: rec["sha256"] for f, rec in recs.items()}
            first = next(iter(recs.values()), {})
            licence, repo, commit = (first.get("licence", "?"), first.get("repository", "?"),
                                     first.get("commit"))
        notice = (folder / "NOTICE").read_text() if (folder / "NOTICE").is_file() else ""
        out.append(VendoredComponent(folder, licence, repo, commit, files, notice))
    return out
