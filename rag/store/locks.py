"""The per-knowledge-base writer lock (one writer per base, across processes)."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from filelock import FileLock, Timeout

from rag.errors import LockTimeoutError


def lock_path(locks_dir: Path, kb_id: int) -> Path:
    """The lock file of a knowledge base.

    Args:
        locks_dir: the folder holding every base's lock file.
        kb_id: the base's catalog id.

    Returns:
        ``locks_dir / "kb-<id>.lock"``.
    """
    return locks_dir / f"kb-{kb_id}.lock"


class KnowledgeBaseLock:
    """The per-base writer lock, turning a timeout into an actionable error.

    Use it as a context manager; it is not re-entrant.

    Args:
        path: the lock file (its folder is created).
        name: the knowledge base's name, for the error message.
        timeout: seconds to wait for another writer before giving up.

    Raises:
        LockTimeoutError: on entering, when another process held the lock too long.
    """

    def __init__(self, path: Path, name: str, timeout: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(path))
        self._name = name
        self._timeout = timeout
        self._path = path

    def __enter__(self) -> KnowledgeBaseLock:
        try:
            self._lock.acquire(timeout=self._timeout)
        except Timeout as exc:
            raise LockTimeoutError(
                f"knowledge base {self._name!r} is being written by another process "
                f"(lock {self._path} held for more than {self._timeout:.0f} s); wait for it "
                "to finish or raise RAG_LOCK_TIMEOUT"
            ) from exc
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._lock.release()
