"""The manifest beside each FAISS index file: what it must hold and how it is read.

``save`` writes ``<index>.json`` with the kind, dimension, metric, count, FAISS version,
file size and SHA-256; ``load`` checks the file against it and fails loudly on mismatch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rag.errors import IndexCorruptError
from rag.store.faiss_kinds import KINDS

#: Version of the manifest layout below; bump when its meaning changes.
MANIFEST_FORMAT = 1
#: The only similarity the indexes use (vectors are L2-normalised: cosine).
METRIC = "inner_product"


def manifest_path(path: Path) -> Path:
    """Where the manifest of the index file ``path`` lives (``<name>.json``)."""
    return path.with_name(path.name + ".json")


def read_manifest(path: Path) -> dict[str, Any]:
    """Read and validate the manifest of the FAISS index file ``path``.

    Args:
        path: the index file (the manifest is ``<name>.json`` beside it).

    Returns:
        The manifest, with every required key present and of the right type.

    Raises:
        IndexCorruptError: the index or its manifest is missing, unreadable or invalid.
    """
    json_path = manifest_path(path)
    hint = "run `rag kb rebuild NAME` to rebuild it from the catalog"
    if not path.is_file():
        raise IndexCorruptError(f"FAISS index file {path} is missing; {hint}")
    try:
        manifest = json.loads(json_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise IndexCorruptError(f"FAISS manifest {json_path} is missing; {hint}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexCorruptError(
            f"FAISS manifest {json_path} is unreadable ({exc}); {hint}"
        ) from exc
    required: dict[str, type | tuple[type, ...]] = {
        "format": int,
        "kind": str,
        "dimension": int,
        "metric": str,
        "count": int,
        "faiss_version": str,
        "file_bytes": int,
        "file_sha256": str,
    }
    if not isinstance(manifest, dict):
        raise IndexCorruptError(f"FAISS manifest {json_path} is not a JSON object; {hint}")
    for key, expected_type in required.items():
        if not isinstance(manifest.get(key), expected_type):
            raise IndexCorruptError(f"FAISS manifest {json_path} lacks a valid {key!r}; {hint}")
    if manifest["format"] != MANIFEST_FORMAT:
        raise IndexCorruptError(
            f"FAISS manifest {json_path} has format {manifest['format']}, this version "
            f"reads {MANIFEST_FORMAT}; {hint}"
        )
    if manifest["kind"] not in KINDS:
        raise IndexCorruptError(
            f"FAISS manifest {json_path} names unknown kind {manifest['kind']!r}; {hint}"
        )
    return manifest
