"""Turn the paths a user typed (files, folders, globs) into a sorted list of files."""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ingest.errors import IngestError

_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class Discovered:
    """The files to ingest and the folders they were found under.

    ``roots`` are the folders (and the parent folders of single files) that ``--prune``
    may prune documents under: a document under a root that was not found again is
    considered deleted.
    """

    files: tuple[Path, ...]
    roots: tuple[Path, ...]


def discover(paths: Sequence[str]) -> Discovered:
    """Expand files, folders (recursively) and glob patterns into absolute file paths.

    Hidden files and folders (names starting with ".") found while walking a folder
    are skipped; a hidden file named explicitly is kept.

    Raises:
        IngestError: a path that does not exist and matches nothing.
    """
    if not paths:
        raise ValueError("paths must name at least one file, folder or glob pattern")
    files: dict[Path, None] = {}
    roots: dict[Path, None] = {}
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_file():
            resolved = path.resolve()
            files[resolved] = None
            continue
        if path.is_dir():
            root = path.resolve()
            roots[root] = None
            for found in sorted(root.rglob("*")):
                relative = found.relative_to(root)
                if any(part.startswith(".") for part in relative.parts):
                    continue
                if found.is_file():
                    files[found.resolve()] = None
            continue
        if _GLOB_CHARS & set(raw):
            matches = sorted(glob.glob(str(path), recursive=True))
            if not matches:
                raise IngestError(f"the pattern {raw!r} matches no file")
            for match in matches:
                candidate = Path(match)
                if candidate.is_file():
                    files[candidate.resolve()] = None
            continue
        raise IngestError(f"{raw}: no such file or folder")
    return Discovered(files=tuple(sorted(files)), roots=tuple(roots))
