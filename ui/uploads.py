"""Saving uploaded files safely before they are ingested.

A browser sends a file name chosen by whoever uploads; it must never decide where a file
lands. :func:`safe_filename` keeps only the last path component, drops control
characters, separators and leading dots, and :func:`save_upload` writes inside the
knowledge base's upload folder only (checked after resolving), refusing files over the
size limit before anything touches the disk.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from rag.store.files import atomic_write_bytes
from rag.store.knowledge_bases import validate_kb_name

#: Longest file name kept (bytes of UTF-8 on most file systems allow 255).
_MAX_NAME_CHARS = 120
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10))}


class UploadRejectedError(ValueError):
    """An upload cannot be saved (too large, or no usable name)."""


@dataclass(frozen=True)
class SavedUpload:
    """Where an upload was written, under which (sanitised) name."""

    original_name: str
    path: Path
    size_bytes: int


def safe_filename(name: str) -> str:
    """A file name that cannot escape its folder, keeping Unicode letters (中文.md).

    Raises:
        UploadRejectedError: nothing usable is left (e.g. ``"../.."``).
    """
    # Both separators, whatever the client's OS: "..\\..\\x" and "../../x" end as "x".
    base = re.split(r"[\\/]", name)[-1]
    base = unicodedata.normalize("NFC", base)
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")
    base = re.sub(r'[<>:"|?*]', "_", base).strip().lstrip(".").strip()
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    if stem.lower() in _RESERVED:
        stem = f"_{stem}"
    if len(stem) > _MAX_NAME_CHARS:
        stem = stem[:_MAX_NAME_CHARS]
    cleaned = f"{stem}.{ext}" if ext and stem else stem or ""
    if not cleaned or cleaned in {".", ".."}:
        raise UploadRejectedError(f"the file name {name!r} has no usable characters")
    return cleaned


def upload_dir(home: Path, kb: str) -> Path:
    """The folder a knowledge base's uploads are kept in (its documents' paths)."""
    return home / "uploads" / validate_kb_name(kb)


def save_upload(home: Path, kb: str, name: str, data: bytes, *, max_mb: float) -> SavedUpload:
    """Write an uploaded file under ``<home>/uploads/<kb>/`` atomically.

    A file of the same name is replaced (re-uploading an edited file updates its
    document, as re-ingesting a changed file does).

    Raises:
        UploadRejectedError: too large, or the name is unusable.
    """
    size_mb = len(data) / 2**20
    if size_mb > max_mb:
        raise UploadRejectedError(
            f"{name} is {size_mb:.1f} MB, over the {max_mb:g} MB upload limit "
            "(RAG_UI_MAX_UPLOAD_MB); ingest it with `rag ingest` instead"
        )
    folder = upload_dir(home, kb)
    folder.mkdir(parents=True, exist_ok=True)
    target = (folder / safe_filename(name)).resolve()
    if target.parent != folder.resolve():  # pragma: no cover - safe_filename guarantees it
        raise UploadRejectedError(f"refusing to write {name!r} outside {folder}")
    atomic_write_bytes(target, data)
    return SavedUpload(original_name=name, path=target, size_bytes=len(data))
