"""Durable file operations: hashing, fsync and atomic replacement, in one place.

Every file the platform writes for keeps (index segments, manifests, converted models,
joined model files, uploads) goes through these, so a crash at any moment leaves either
the old file or the new one, never a torn mix, and a rename survives a power cut.

Example::

    atomic_write_bytes(root / "manifest.json", json.dumps(manifest).encode())
    digest = sha256_file(root / "index.faiss")
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

#: Bytes read per block when hashing: large files never sit in memory whole.
_BLOCK = 1 << 20


def sha256_file(path: Path) -> str:
    """Return the hex SHA-256 of a file's bytes, read in 1 MiB blocks.

    Args:
        path: the file to hash.

    Returns:
        64 lower-case hex digits.

    Raises:
        OSError: the file cannot be read.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_file(path: Path) -> None:
    """Flush a written file's data to the disk."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(directory: Path) -> None:
    """Make renames inside ``directory`` durable.

    Directories cannot be opened on Windows, so this does nothing there.
    """
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(source: Path, target: Path) -> None:
    """``os.replace`` ``source`` onto ``target``, then make the rename durable.

    Both must be on the same file system (write ``source`` next to ``target``).
    """
    os.replace(source, target)
    fsync_dir(target.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new one.

    The bytes go to a temporary file in the same folder, are fsynced, and replace
    ``path`` in one rename; the temporary file never outlives a failure.
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    fsync_dir(path.parent)
