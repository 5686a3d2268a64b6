"""Knowledge bases: catalog rows plus their FAISS and BM25 indexes, kept in agreement.

Write protocol (crash-safe by construction):

1. A writer holds the knowledge base's file lock for its whole life (one writer per base).
2. :meth:`KnowledgeBaseWriter.commit` changes rows inside one database transaction,
   builds the next index generation in memory, writes ``faiss-<g+1>.index`` and
   ``bm25-<g+1>/`` (temp file, fsync, ``os.replace``), sets the base's ``generation``
   to ``g+1`` and only then commits the transaction.
3. Old generation files are deleted after the commit.

A crash before the commit leaves the old rows and the old files (the half-written
``g+1`` files are garbage, removed by the next writer); a crash after it leaves the
new rows and the new files. Either way the rows a reader sees match the files named
by the generation it reads, and a document is marked indexed only once its vectors
are on disk.

Example::

    kbs = KnowledgeBases(settings, Catalog(settings.catalog_url))
    info = kbs.create("handbook", embedding_model="all-MiniLM-L6-v2", embedding_dim=384)
    with kbs.writer("handbook") as writer:
        writer.commit(indexed=[doc], failed=[], removed_sources=[])
    assert kbs.check("handbook").ok
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import cast

import numpy as np
import numpy.typing as npt
from filelock import FileLock, Timeout
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from rag.config import IndexKind, Settings
from rag.errors import (
    ConfigError,
    DocumentNotFoundError,
    IndexCorruptError,
    KnowledgeBaseExistsError,
    KnowledgeBaseNotFoundError,
    LockTimeoutError,
)
from rag.records import CheckReport, DocumentToIndex, FailedDocument
from rag.store.bm25_index import Bm25Index
from rag.store.catalog import Catalog
from rag.store.faiss_index import FaissIndex
from rag.store.schema import ChunkRow, DocumentRow, IngestRunRow, KnowledgeBaseRow, utcnow

logger = logging.getLogger(__name__)

_NAME_RE = re.compile(r"^[\w][\w.\-]{0,99}$", re.UNICODE)
STATUS_INDEXED = "indexed"
STATUS_FAILED = "failed"


@dataclass(frozen=True)
class KnowledgeBaseInfo:
    """A knowledge base as listings show it."""

    id: int
    name: str
    embedding_model: str
    embedding_dim: int
    index_kind: str
    chunk_size: int
    chunk_overlap: int
    generation: int
    documents: int
    failed_documents: int
    chunks: int
    created_at: datetime
    updated_at: datetime
    embedding_auto: bool = False


@dataclass(frozen=True)
class DocumentInfo:
    """One document of a knowledge base as listings show it."""

    source: str
    status: str
    chunks: int
    error: str | None
    sha256: str
    mime: str
    size_bytes: int
    version: int
    updated_at: datetime


@dataclass(frozen=True)
class CommitResult:
    """What one commit changed."""

    generation: int
    documents_new: int
    documents_updated: int
    documents_removed: int
    chunks_added: int
    chunks_removed: int


@dataclass(frozen=True)
class KnownDocument:
    """What the catalog already holds for a source, used to skip unchanged files."""

    sha256: str
    status: str


def validate_kb_name(name: str) -> str:
    """Check a knowledge base name (letters, digits, ``_.-``; up to 100 characters)."""
    if not _NAME_RE.match(name):
        raise ConfigError(
            f"invalid knowledge base name {name!r}: use letters, digits, '_', '.' or '-' "
            "(up to 100 characters, not starting with '.' or '-')"
        )
    return name


class IndexFiles:
    """Names the index files of one knowledge base's generations."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def faiss_path(self, generation: int) -> Path:
        """The FAISS file of a generation."""
        return self.root / f"faiss-{generation}.index"

    def bm25_path(self, generation: int) -> Path:
        """The BM25 folder of a generation."""
        return self.root / f"bm25-{generation}"

    def remove_except(self, keep: int) -> None:
        """Delete every generation's files but ``keep`` (and leftover temp files)."""
        if not self.root.is_dir():
            return
        for entry in self.root.iterdir():
            match = re.match(r"^(faiss|bm25)-(\d+)", entry.name)
            if match and int(match.group(2)) == keep and ".tmp" not in entry.name:
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


@dataclass(frozen=True)
class IndexSnapshot:
    """The FAISS and BM25 indexes of one generation of a knowledge base."""

    generation: int
    faiss: FaissIndex
    bm25: Bm25Index


def load_snapshot(kb: KnowledgeBaseRow, files: IndexFiles) -> IndexSnapshot:
    """Open the index files of the base's current generation (empty ones for generation 0)."""
    if kb.generation == 0:
        return IndexSnapshot(
            0,
            FaissIndex.create(dimension=kb.embedding_dim, kind=_kind(kb.index_kind)),
            Bm25Index.build([], []),
        )
    faiss_index = FaissIndex.load(
        files.faiss_path(kb.generation),
        expected_dimension=kb.embedding_dim,
        expected_kind=kb.index_kind,
    )
    bm25 = Bm25Index.load(files.bm25_path(kb.generation))
    return IndexSnapshot(kb.generation, faiss_index, bm25)


def _kind(value: str) -> IndexKind:
    if value in ("flat", "hnsw", "ivf"):
        return cast(IndexKind, value)
    raise ConfigError(f"unknown index kind {value!r}; choose flat, hnsw or ivf")


def _vector(blob: bytes) -> npt.NDArray[np.float32]:
    return np.frombuffer(blob, dtype="<f4")


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

    def _row(self, session: Session, name: str) -> KnowledgeBaseRow:
        row = session.scalar(select(KnowledgeBaseRow).where(KnowledgeBaseRow.name == name))
        if row is None:
            raise KnowledgeBaseNotFoundError(name)
        return row

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
            return self._info(session, self._row(session, name))

    def list_all(self) -> list[KnowledgeBaseInfo]:
        """Every knowledge base, by name."""
        with self.catalog.session() as session:
            rows = session.scalars(select(KnowledgeBaseRow).order_by(KnowledgeBaseRow.name))
            return [self._info(session, row) for row in rows]

    def _info(self, session: Session, row: KnowledgeBaseRow) -> KnowledgeBaseInfo:
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
            kb = self._row(session, name)
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
            return self._info(session, row)

    def set_embedding_model(self, name: str, *, model: str, dimension: int) -> KnowledgeBaseInfo:
        """Switch an empty base to another embedding model; the choice is then fixed.

        Raises:
            KnowledgeBaseNotFoundError: no such base.
            ConfigError: the base already holds documents (their vectors would not match).
        """
        if dimension <= 0:
            raise ValueError(f"dimension must be positive, got {dimension}")
        kb_id = self.get(name).id
        with self._lock(kb_id, name), self.catalog.session() as session:
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
            return self._info(session, row)

    def delete(self, name: str) -> None:
        """Delete a knowledge base: its rows, its index files and its lock."""
        kb_id = self.get(name).id
        with self._lock(kb_id, name):
            with self.catalog.session() as session:
                session.execute(delete(ChunkRow).where(ChunkRow.kb_id == kb_id))
                session.execute(delete(DocumentRow).where(DocumentRow.kb_id == kb_id))
                session.execute(delete(IngestRunRow).where(IngestRunRow.kb_id == kb_id))
                session.execute(delete(KnowledgeBaseRow).where(KnowledgeBaseRow.id == kb_id))
            shutil.rmtree(self.files(kb_id).root, ignore_errors=True)
        self._lock_path(kb_id).unlink(missing_ok=True)

    def writer(self, name: str) -> KnowledgeBaseWriter:
        """A writer for the base; use it as a context manager (it takes the lock)."""
        return KnowledgeBaseWriter(self, self.get(name))

    def _lock_path(self, kb_id: int) -> Path:
        return self.settings.locks_dir / f"kb-{kb_id}.lock"

    def _lock(self, kb_id: int, name: str) -> _HeldLock:
        return _HeldLock(self._lock_path(kb_id), name, self.settings.lock_timeout)

    # -- consistency -----------------------------------------------------------------------

    def check(self, name: str) -> CheckReport:
        """Prove that catalog rows, FAISS vectors and BM25 entries agree.

        Takes the writer lock (waiting for a running ingest) so it sees a settled state.
        """
        info = self.get(name)
        with self._lock(info.id, name), self.catalog.session() as session:
            kb = self._row(session, name)
            return self._check(session, kb)

    def _check(self, session: Session, kb: KnowledgeBaseRow) -> CheckReport:
        problems: list[str] = []
        files = self.files(kb.id)
        chunk_rows = session.execute(
            select(ChunkRow.id, ChunkRow.document_id, ChunkRow.embedding).where(
                ChunkRow.kb_id == kb.id
            )
        ).all()
        catalog_ids = np.array(sorted(r.id for r in chunk_rows), dtype=np.int64)
        docs = session.scalars(select(DocumentRow).where(DocumentRow.kb_id == kb.id)).all()
        per_doc: dict[int, int] = {}
        for r in chunk_rows:
            per_doc[r.document_id] = per_doc.get(r.document_id, 0) + 1
        for doc in docs:
            actual = per_doc.get(doc.id, 0)
            if doc.status == STATUS_INDEXED and actual != doc.chunk_count:
                problems.append(
                    f"document {doc.source} records {doc.chunk_count} chunks but has {actual}"
                )
            if doc.status == STATUS_FAILED and actual:
                problems.append(f"failed document {doc.source} still has {actual} chunks")
            if doc.status not in (STATUS_INDEXED, STATUS_FAILED):
                problems.append(f"document {doc.source} has unknown status {doc.status!r}")
        faiss_count = bm25_count = 0
        try:
            snapshot = load_snapshot(kb, files)
        except IndexCorruptError as exc:
            problems.append(str(exc))
        else:
            faiss_ids = snapshot.faiss.ids()
            bm25_ids = np.sort(snapshot.bm25.ids())
            faiss_count, bm25_count = len(faiss_ids), len(bm25_ids)
            problems.extend(_compare_ids("FAISS", faiss_ids, catalog_ids))
            problems.extend(_compare_ids("BM25", bm25_ids, catalog_ids))
            if not problems and len(catalog_ids):
                stored = np.stack([_vector(r.embedding) for r in chunk_rows])
                ids = np.array([r.id for r in chunk_rows], dtype=np.int64)
                scores, found = snapshot.faiss.search(stored, 1)
                mismatched = int(np.sum(found[:, 0] != ids))
                # Exact duplicates (the same text twice) legitimately return either id,
                # so a miss only counts when the best score is not a perfect match.
                real = int(np.sum((found[:, 0] != ids) & (scores[:, 0] < 0.9999)))
                if real:
                    problems.append(
                        f"{real} of {len(ids)} stored vectors are not found in FAISS "
                        f"({mismatched} ids differ)"
                    )
        return CheckReport(
            kb=kb.name,
            generation=kb.generation,
            documents_indexed=sum(1 for d in docs if d.status == STATUS_INDEXED),
            documents_failed=sum(1 for d in docs if d.status == STATUS_FAILED),
            catalog_chunks=len(catalog_ids),
            faiss_vectors=faiss_count,
            bm25_entries=bm25_count,
            problems=tuple(problems),
        )

    def rebuild(self, name: str, *, index_kind: IndexKind | None = None) -> CheckReport:
        """Rebuild both indexes from the catalog (optionally switching the FAISS kind)."""
        with self.writer(name) as writer:
            writer.rebuild(index_kind=index_kind)
        return self.check(name)

    def latest_run(self, name: str) -> IngestRunRow | None:
        """The newest ingest run of a knowledge base."""
        with self.catalog.session() as session:
            kb = self._row(session, name)
            return session.scalar(
                select(IngestRunRow)
                .where(IngestRunRow.kb_id == kb.id)
                .order_by(IngestRunRow.id.desc())
                .limit(1)
            )


def _compare_ids(
    label: str, index_ids: npt.NDArray[np.int64], catalog_ids: npt.NDArray[np.int64]
) -> list[str]:
    missing = np.setdiff1d(catalog_ids, index_ids)
    extra = np.setdiff1d(index_ids, catalog_ids)
    problems = []
    if len(missing):
        problems.append(
            f"{len(missing)} catalog chunks are missing from {label} "
            f"(e.g. ids {missing[:5].tolist()})"
        )
    if len(extra):
        problems.append(
            f"{label} holds {len(extra)} ids with no catalog chunk (e.g. {extra[:5].tolist()})"
        )
    return problems


class _HeldLock:
    """The per-base writer lock, turning a timeout into an actionable error."""

    def __init__(self, path: Path, name: str, timeout: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(path))
        self._name = name
        self._timeout = timeout
        self._path = path

    def __enter__(self) -> _HeldLock:
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


class KnowledgeBaseWriter:
    """The single writer of one knowledge base (holds its lock while open).

    Opening repairs what an interrupted writer left: stale temp files are deleted and,
    if the current generation's files are missing or unreadable, the indexes are
    rebuilt from the catalog.
    """

    def __init__(self, kbs: KnowledgeBases, info: KnowledgeBaseInfo) -> None:
        self._kbs = kbs
        self.info = info
        self._files = kbs.files(info.id)
        self._lock = kbs._lock(info.id, info.name)
        self._snapshot: IndexSnapshot | None = None

    def __enter__(self) -> KnowledgeBaseWriter:
        self._lock.__enter__()
        try:
            self._open()
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._snapshot = None
        self._lock.__exit__(exc_type, exc, tb)

    def _open(self) -> None:
        self._files.root.mkdir(parents=True, exist_ok=True)
        with self._kbs.catalog.session() as session:
            kb = self._kbs._row(session, self.info.name)
            self._files.remove_except(kb.generation)
            try:
                self._snapshot = load_snapshot(kb, self._files)
            except IndexCorruptError as exc:
                logger.warning("%s; rebuilding the indexes from the catalog", exc)
                self._snapshot = None
        if self._snapshot is None:
            self.rebuild(index_kind=None)
        # Runs left "running" can only belong to a writer that died holding this lock.
        with self._kbs.catalog.session() as session:
            for run in session.scalars(
                select(IngestRunRow).where(
                    IngestRunRow.kb_id == self.info.id, IngestRunRow.status == "running"
                )
            ):
                run.status = "interrupted"

    @property
    def snapshot(self) -> IndexSnapshot:
        """The indexes of the generation this writer last committed."""
        if self._snapshot is None:
            raise RuntimeError("KnowledgeBaseWriter must be used inside a `with` block")
        return self._snapshot

    def known_documents(self) -> dict[str, KnownDocument]:
        """Source path -> (sha256, status) of every document in the base."""
        with self._kbs.catalog.session() as session:
            rows = session.execute(
                select(DocumentRow.source, DocumentRow.sha256, DocumentRow.status).where(
                    DocumentRow.kb_id == self.info.id
                )
            ).all()
        return {r.source: KnownDocument(r.sha256, r.status) for r in rows}

    def commit(
        self,
        *,
        indexed: Sequence[DocumentToIndex],
        failed: Sequence[FailedDocument],
        removed_sources: Sequence[str] = (),
    ) -> CommitResult:
        """Apply a batch of changes atomically and durably; returns what changed.

        A source that already exists is replaced (its old chunks leave both indexes).
        """
        snapshot = self.snapshot
        sources = [d.source for d in indexed] + [d.source for d in failed]
        if len(set(sources)) != len(sources):
            raise ValueError("a source appears more than once in one commit")
        for doc in indexed:
            if doc.vectors.shape[1] != self.info.embedding_dim:
                raise ConfigError(
                    f"{doc.source}: vectors have dimension {doc.vectors.shape[1]} but knowledge "
                    f"base {self.info.name!r} uses {self.info.embedding_dim} "
                    f"({self.info.embedding_model})"
                )
        new_generation = snapshot.generation + 1
        faiss_path = self._files.faiss_path(new_generation)
        bm25_path = self._files.bm25_path(new_generation)
        try:
            with self._kbs.catalog.session() as session:
                kb = self._kbs._row(session, self.info.name)
                if kb.generation != snapshot.generation:
                    raise IndexCorruptError(
                        f"knowledge base {kb.name!r} changed generation under its writer "
                        f"({snapshot.generation} -> {kb.generation}); was the lock removed?"
                    )
                existing = {
                    d.source: d
                    for d in session.scalars(
                        select(DocumentRow).where(
                            DocumentRow.kb_id == kb.id,
                            DocumentRow.source.in_(sources + list(removed_sources)),
                        )
                    )
                }
                old_doc_ids = [existing[s].id for s in sources if s in existing]
                removed_ids = [existing[s].id for s in removed_sources if s in existing]
                stale_chunk_ids = np.array(
                    session.scalars(
                        select(ChunkRow.id).where(
                            ChunkRow.document_id.in_(old_doc_ids + removed_ids)
                        )
                    ).all(),
                    dtype=np.int64,
                )
                if len(stale_chunk_ids):
                    session.execute(
                        delete(ChunkRow).where(ChunkRow.document_id.in_(old_doc_ids + removed_ids))
                    )
                if removed_ids:
                    session.execute(delete(DocumentRow).where(DocumentRow.id.in_(removed_ids)))
                now = utcnow()
                new_chunk_rows: list[tuple[ChunkRow, npt.NDArray[np.float32]]] = []
                documents_new = documents_updated = 0
                items: list[DocumentToIndex | FailedDocument] = [*indexed, *failed]
                for item in items:
                    row = existing.get(item.source)
                    if row is None:
                        row = DocumentRow(
                            kb_id=kb.id, source=item.source, version=1, created_at=now
                        )
                        session.add(row)
                        documents_new += 1
                    else:
                        row.version += 1
                        documents_updated += 1
                    row.sha256 = item.sha256
                    row.mime = item.mime
                    row.size_bytes = item.size_bytes
                    row.updated_at = now
                    if isinstance(item, DocumentToIndex):
                        row.status = STATUS_INDEXED
                        row.error = None
                        row.chunk_count = len(item.chunks)
                        row.parse_seconds = item.parse_seconds
                    else:
                        row.status = STATUS_FAILED
                        row.error = item.error
                        row.chunk_count = 0
                        row.parse_seconds = 0.0
                session.flush()
                for item in indexed:
                    doc_row = existing.get(item.source) or session.scalar(
                        select(DocumentRow).where(
                            DocumentRow.kb_id == kb.id, DocumentRow.source == item.source
                        )
                    )
                    if doc_row is None:  # pragma: no cover - flushed just above
                        raise RuntimeError(f"document row for {item.source} vanished")
                    vectors = np.ascontiguousarray(item.vectors, dtype="<f4")
                    metadata = item.chunk_metadata or tuple({} for _ in item.chunks)
                    for chunk, vector, tokens, meta in zip(
                        item.chunks, vectors, item.bm25_tokens, metadata, strict=True
                    ):
                        chunk_row = ChunkRow(
                            kb_id=kb.id,
                            document_id=doc_row.id,
                            ordinal=chunk.ordinal,
                            text=chunk.text,
                            page=chunk.page,
                            heading=chunk.heading,
                            char_start=chunk.char_start,
                            char_end=chunk.char_end,
                            token_count=chunk.token_count,
                            bm25_tokens=" ".join(tokens),
                            embedding=vector.tobytes(),
                            metadata_json=json.dumps(dict(meta), ensure_ascii=False)
                            if meta
                            else None,
                        )
                        session.add(chunk_row)
                        new_chunk_rows.append((chunk_row, vector))
                session.flush()
                new_ids = np.array([r.id for r, _ in new_chunk_rows], dtype=np.int64)
                faiss_index = snapshot.faiss
                if len(stale_chunk_ids):
                    faiss_index.remove(stale_chunk_ids)
                if len(new_ids):
                    faiss_index.add(new_ids, np.stack([v for _, v in new_chunk_rows]))
                bm25 = self._build_bm25(session, kb.id)
                faiss_index.save(faiss_path)
                bm25.save(bm25_path)
                kb.generation = new_generation
                kb.updated_at = now
                result = CommitResult(
                    generation=new_generation,
                    documents_new=documents_new,
                    documents_updated=documents_updated,
                    documents_removed=len(removed_ids),
                    chunks_added=len(new_ids),
                    chunks_removed=len(stale_chunk_ids),
                )
        except BaseException:
            # The transaction rolled back; the in-memory FAISS index may have been
            # changed, so reload the committed generation and drop half-written files.
            self._snapshot = None
            self._files.remove_except(snapshot.generation)
            with self._kbs.catalog.session() as session:
                kb_row = self._kbs._row(session, self.info.name)
                self._snapshot = load_snapshot(kb_row, self._files)
            raise
        self._snapshot = IndexSnapshot(new_generation, faiss_index, bm25)
        self._files.remove_except(new_generation)
        return result

    def rebuild(self, *, index_kind: IndexKind | None) -> None:
        """Rebuild FAISS and BM25 from the catalog rows as a new generation."""
        with self._kbs.catalog.session() as session:
            kb = self._kbs._row(session, self.info.name)
            kind = index_kind or _kind(kb.index_kind)
            faiss_index = FaissIndex.create(dimension=kb.embedding_dim, kind=kind)
            rows = session.execute(
                select(ChunkRow.id, ChunkRow.embedding).where(ChunkRow.kb_id == kb.id)
            ).all()
            if rows:
                ids = np.array([r.id for r in rows], dtype=np.int64)
                vectors = np.stack([_vector(r.embedding) for r in rows]).astype(np.float32)
                faiss_index.add(ids, vectors)
            bm25 = self._build_bm25(session, kb.id)
            generation = kb.generation + 1
            faiss_index.save(self._files.faiss_path(generation))
            bm25.save(self._files.bm25_path(generation))
            kb.generation = generation
            kb.index_kind = kind
            kb.updated_at = utcnow()
        self._snapshot = IndexSnapshot(generation, faiss_index, bm25)
        self._files.remove_except(generation)

    def start_run(self) -> int:
        """Record a new ingest run as running; returns its id."""
        with self._kbs.catalog.session() as session:
            run = IngestRunRow(kb_id=self.info.id, status="running", started_at=utcnow())
            session.add(run)
            session.flush()
            return run.id

    def finish_run(
        self, run_id: int, *, status: str, counts: dict[str, int], seconds: float
    ) -> None:
        """Record an ingest run's outcome and counts."""
        with self._kbs.catalog.session() as session:
            run = session.get(IngestRunRow, run_id)
            if run is None:
                return
            run.status = status
            run.finished_at = utcnow()
            run.seconds = seconds
            for key, value in counts.items():
                setattr(run, key, value)

    @staticmethod
    def _build_bm25(session: Session, kb_id: int) -> Bm25Index:
        rows = session.execute(
            select(ChunkRow.id, ChunkRow.bm25_tokens)
            .where(ChunkRow.kb_id == kb_id)
            .order_by(ChunkRow.id)
        ).all()
        return Bm25Index.build([r.id for r in rows], [r.bm25_tokens.split() for r in rows])


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
