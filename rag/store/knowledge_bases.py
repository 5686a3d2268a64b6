"""The knowledge-base registry: create, look up, list, check, rebuild and delete bases.

A knowledge base is one catalog row plus its FAISS and BM25 indexes, kept in agreement
by :class:`rag.store.writer.KnowledgeBaseWriter` (see there for the write protocol).

Example::

    kbs = KnowledgeBases(settings, Catalog(settings.catalog_url))
    info = kbs.create("handbook", embedding_model="all-MiniLM-L6-v2", embedding_dim=384)
    with kbs.writer("handbook") as writer:
        writer.commit(indexed=[doc], failed=[], removed_sources=[])
    assert kbs.check("handbook").ok
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from rag.config import IndexKind, Settings
from rag.errors import (
    ConfigError,
    DocumentNotFoundError,
    KnowledgeBaseExistsError,
    KnowledgeBaseNotFoundError,
)
from rag.records import CheckReport
from rag.store.catalog import Catalog
from rag.store.check import check_consistency
from rag.store.locks import KnowledgeBaseLock, lock_path
from rag.store.records import (
    STATUS_FAILED,
    STATUS_INDEXED,
    CommitResult,
    DocumentInfo,
    IngestRunInfo,
    KnowledgeBaseInfo,
)
from rag.store.schema import ChunkRow, DocumentRow, IngestRunRow, KnowledgeBaseRow, utcnow
from rag.store.snapshot import IndexFiles, knowledge_base_row
from rag.store.writer import KnowledgeBaseWriter

_NAME_RE = re.compile(r"^[\w][\w.\-]{0,99}$", re.UNICODE)


def validate_kb_name(name: str) -> str:
    """Check a knowledge base name (letters, digits, ``_.-``; up to 100 characters)."""
    if not _NAME_RE.match(name):
        raise ConfigError(
            f"invalid knowledge base name {name!r}: use letters, digits, '_', '.' or '-' "
            "(up to 100 characters, not starting with '.' or '-')"
        )
    return name


class KnowledgeBases:
    """Creates, lists, checks, rebuilds and deletes knowledge bases; hands out writers.

    Args:
        settings: where indexes and locks live and how long writers wait.
        catalog: the catalog database.
    """

    def __init__(self, settings: Settings, catalog: Catalog) -> None:
        self.settings = settings
        self.catalog = catalog

    # -- lookups ---------------------------------------------------------------------------

    def files(self, kb_id: int) -> IndexFiles:
        """The index files of a knowledge base."""
        return IndexFiles(self.settings.indexes_dir / str(kb_id))

    def exists(self, name: str) -> bool:
        """Whether a knowledge base with this name exists."""
        with self.catalog.session() as session:
            return (
                session.scalar(select(KnowledgeBaseRow.id).where(KnowledgeBaseRow.name == name))
                is not None
            )

    def get(self, name: str) -> KnowledgeBaseInfo:
        """One knowledge base's summary; :class:`KnowledgeBaseNotFoundError` if absent."""
        with self.catalog.session() as session:
            return self.info_of(session, knowledge_base_row(session, name))

    def list_all(self) -> list[KnowledgeBaseInfo]:
        """Every knowledge base, by name."""
        with self.catalog.session() as session:
            rows = session.scalars(select(KnowledgeBaseRow).order_by(KnowledgeBaseRow.name))
            return [self.info_of(session, row) for row in rows]

    def info_of(self, session: Session, row: KnowledgeBaseRow) -> KnowledgeBaseInfo:
        """Summarise a base's catalog row (with its document and chunk counts).

        For store modules that already hold the row in an open session.
        """
        counts = dict(
            session.execute(
                select(DocumentRow.status, func.count())
                .where(DocumentRow.kb_id == row.id)
                .group_by(DocumentRow.status)
            ).all()
        )
        chunks = session.scalar(select(func.count()).where(ChunkRow.kb_id == row.id)) or 0
        return KnowledgeBaseInfo(
            id=row.id,
            name=row.name,
            embedding_model=row.embedding_model,
            embedding_dim=row.embedding_dim,
            index_kind=row.index_kind,
            chunk_size=row.chunk_size,
            chunk_overlap=row.chunk_overlap,
            generation=row.generation,
            documents=int(counts.get(STATUS_INDEXED, 0)),
            failed_documents=int(counts.get(STATUS_FAILED, 0)),
            chunks=int(chunks),
            created_at=row.created_at,
            updated_at=row.updated_at,
            embedding_auto=bool(row.embedding_auto),
        )

    def documents(self, name: str) -> list[DocumentInfo]:
        """The documents of a knowledge base, by source path."""
        with self.catalog.session() as session:
            kb = knowledge_base_row(session, name)
            rows = session.scalars(
                select(DocumentRow).where(DocumentRow.kb_id == kb.id).order_by(DocumentRow.source)
            )
            return [
                DocumentInfo(
                    source=row.source,
                    status=row.status,
                    chunks=row.chunk_count,
                    error=row.error,
                    sha256=row.sha256,
                    mime=row.mime,
                    size_bytes=row.size_bytes,
                    version=row.version,
                    updated_at=row.updated_at,
                )
                for row in rows
            ]

    # -- lifecycle -------------------------------------------------------------------------

    def create(
        self,
        name: str,
        *,
        embedding_model: str,
        embedding_dim: int,
        index_kind: IndexKind | None = None,
        chunk_size: int | None = None,
        chunk_overlap: int | None = None,
        description: str = "",
        embedding_auto: bool = False,
    ) -> KnowledgeBaseInfo:
        """Create an empty knowledge base recording its embedding model and chunking.

        ``embedding_auto`` marks a model nobody chose (the default): the first ingest
        may then switch it to suit the documents' language.
        """
        validate_kb_name(name)
        if embedding_dim <= 0:
            raise ValueError(f"embedding_dim must be positive, got {embedding_dim}")
        with self.catalog.session() as session:
            if session.scalar(select(KnowledgeBaseRow.id).where(KnowledgeBaseRow.name == name)):
                raise KnowledgeBaseExistsError(
                    f"knowledge base {name!r} already exists; add files with "
                    f"`rag ingest PATH --kb {name}` or delete it with `rag kb delete {name}`"
                )
            row = KnowledgeBaseRow(
                name=name,
                description=description,
                embedding_model=embedding_model,
                embedding_dim=embedding_dim,
                embedding_auto=embedding_auto,
                index_kind=index_kind or self.settings.index_kind,
                chunk_size=chunk_size or self.settings.chunk_size,
                chunk_overlap=(
                    self.settings.chunk_overlap if chunk_overlap is None else chunk_overlap
                ),
                generation=0,
            )
            session.add(row)
            session.flush()
            return self.info_of(session, row)

    def set_embedding_model(self, name: str, *, model: str, dimension: int) -> KnowledgeBaseInfo:
        """Switch an empty base to another embedding model; the choice is then fixed.

        Raises:
            KnowledgeBaseNotFoundError: no such base.
            ConfigError: the base already holds documents (their vectors would not match).
        """
        if dimension <= 0:
            raise ValueError(f"dimension must be positive, got {dimension}")
        kb_id = self.get(name).id
        with self.lock(kb_id, name), self.catalog.session() as session:
            row = session.get(KnowledgeBaseRow, kb_id)
            if row is None:  # pragma: no cover - deleted between get and lock
                raise KnowledgeBaseNotFoundError(name)
            held = session.scalar(select(func.count()).where(DocumentRow.kb_id == kb_id)) or 0
            if held:
                raise ConfigError(
                    f"knowledge base {name!r} already holds {held} documents embedded with "
                    f"{row.embedding_model!r}; create a new base for {model!r}"
                )
            row.embedding_model = model
            row.embedding_dim = dimension
            row.embedding_auto = False
            row.updated_at = utcnow()
            session.flush()
            return self.info_of(session, row)

    def delete(self, name: str) -> None:
        """Delete a knowledge base: its rows, its index files and its lock."""
        kb_id = self.get(name).id
        with self.lock(kb_id, name):
            with self.catalog.session() as session:
                session.execute(delete(ChunkRow).where(ChunkRow.kb_id == kb_id))
                session.execute(delete(DocumentRow).where(DocumentRow.kb_id == kb_id))
                session.execute(delete(IngestRunRow).where(IngestRunRow.kb_id == kb_id))
                session.execute(delete(KnowledgeBaseRow).where(KnowledgeBaseRow.id == kb_id))
            shutil.rmtree(self.files(kb_id).root, ignore_errors=True)
        lock_path(self.settings.locks_dir, kb_id).unlink(missing_ok=True)

    def writer(self, name: str) -> KnowledgeBaseWriter:
        """A writer for the base; use it as a context manager (it takes the lock)."""
        info = self.get(name)
        return KnowledgeBaseWriter(
            self.catalog, info, files=self.files(info.id), lock=self.lock(info.id, name)
        )

    def lock(self, kb_id: int, name: str) -> KnowledgeBaseLock:
        """The writer lock of a base (enter it to hold it).

        Args:
            kb_id: the base's catalog id (names the lock file).
            name: the base's name, for the timeout message.
        """
        return KnowledgeBaseLock(
            lock_path(self.settings.locks_dir, kb_id), name, self.settings.lock_timeout
        )

    # -- consistency -----------------------------------------------------------------------

    def check(self, name: str) -> CheckReport:
        """Prove that catalog rows, FAISS vectors and BM25 entries agree.

        Takes the writer lock (waiting for a running ingest) so it sees a settled state.
        """
        info = self.get(name)
        with self.lock(info.id, name), self.catalog.session() as session:
            kb = knowledge_base_row(session, name)
            return check_consistency(session, kb, self.files(kb.id))

    def rebuild(self, name: str, *, index_kind: IndexKind | None = None) -> CheckReport:
        """Rebuild both indexes from the catalog (optionally switching the FAISS kind)."""
        with self.writer(name) as writer:
            writer.rebuild(index_kind=index_kind)
        return self.check(name)

    def latest_run(self, name: str) -> IngestRunInfo | None:
        """The newest ingest run of a knowledge base (None before the first ingest)."""
        with self.catalog.session() as session:
            kb = knowledge_base_row(session, name)
            run = session.scalar(
                select(IngestRunRow)
                .where(IngestRunRow.kb_id == kb.id)
                .order_by(IngestRunRow.id.desc())
                .limit(1)
            )
            if run is None:
                return None
            return IngestRunInfo(
                id=run.id,
                kb_id=run.kb_id,
                status=run.status,
                started_at=run.started_at,
                finished_at=run.finished_at,
                files_new=run.files_new,
                files_updated=run.files_updated,
                files_skipped=run.files_skipped,
                files_failed=run.files_failed,
                files_removed=run.files_removed,
                chunks_added=run.chunks_added,
                chunks_removed=run.chunks_removed,
                seconds=run.seconds,
            )

    def parse_seconds(self, name: str) -> float:
        """Seconds spent parsing the base's current documents, summed (for benchmarks)."""
        with self.catalog.session() as session:
            kb = knowledge_base_row(session, name)
            total = session.scalar(
                select(func.sum(DocumentRow.parse_seconds)).where(DocumentRow.kb_id == kb.id)
            )
        return float(total or 0)


def remove_document(kbs: KnowledgeBases, name: str, source: str) -> CommitResult:
    """Remove one document (matched by exact source path) from a knowledge base."""
    with kbs.writer(name) as writer:
        if source not in writer.known_documents():
            raise DocumentNotFoundError(
                f"no document {source!r} in knowledge base {name!r}; "
                f"see `rag docs list --kb {name}`"
            )
        return writer.commit(indexed=[], failed=[], removed_sources=[source])


def iter_sources(paths: Sequence[Path]) -> Iterator[str]:
    """The catalog keys of files: absolute, symlink-resolved paths."""
    for path in paths:
        yield str(path.expanduser().resolve())
