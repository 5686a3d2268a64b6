"""The single writer of a knowledge base: commits, rebuilds and ingest-run records.

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

    with kbs.writer("handbook") as writer:
        writer.commit(indexed=[doc], failed=[], removed_sources=[])
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from types import TracebackType

import numpy as np
import numpy.typing as npt
from sqlalchemy import delete, select

from rag.config import IndexKind
from rag.errors import ConfigError, IndexCorruptError
from rag.records import DocumentToIndex, FailedDocument
from rag.store.catalog import Catalog
from rag.store.faiss_index import FaissIndex
from rag.store.locks import KnowledgeBaseLock
from rag.store.records import (
    STATUS_FAILED,
    STATUS_INDEXED,
    CommitResult,
    KnowledgeBaseInfo,
    KnownDocument,
)
from rag.store.schema import ChunkRow, DocumentRow, IngestRunRow, utcnow
from rag.store.snapshot import (
    IndexFiles,
    IndexSnapshot,
    bm25_from_catalog,
    knowledge_base_row,
    load_snapshot,
    parse_index_kind,
    stored_vector,
)

logger = logging.getLogger(__name__)


class KnowledgeBaseWriter:
    """The single writer of one knowledge base (holds its lock while open).

    Get one from :meth:`rag.store.knowledge_bases.KnowledgeBases.writer`.

    Opening repairs what an interrupted writer left: stale temp files are deleted and,
    if the current generation's files are missing or unreadable, the indexes are
    rebuilt from the catalog.
    """

    def __init__(
        self,
        catalog: Catalog,
        info: KnowledgeBaseInfo,
        *,
        files: IndexFiles,
        lock: KnowledgeBaseLock,
    ) -> None:
        self._catalog = catalog
        self.info = info
        self._files = files
        self._lock = lock
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
        with self._catalog.session() as session:
            kb = knowledge_base_row(session, self.info.name)
            self._files.remove_except(kb.generation)
            try:
                self._snapshot = load_snapshot(kb, self._files)
            except IndexCorruptError as exc:
                logger.warning("%s; rebuilding the indexes from the catalog", exc)
                self._snapshot = None
        if self._snapshot is None:
            self.rebuild(index_kind=None)
        # Runs left "running" can only belong to a writer that died holding this lock.
        with self._catalog.session() as session:
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
        with self._catalog.session() as session:
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
            with self._catalog.session() as session:
                kb = knowledge_base_row(session, self.info.name)
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
                bm25 = bm25_from_catalog(session, kb.id)
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
            with self._catalog.session() as session:
                kb_row = knowledge_base_row(session, self.info.name)
                self._snapshot = load_snapshot(kb_row, self._files)
            raise
        self._snapshot = IndexSnapshot(new_generation, faiss_index, bm25)
        self._files.remove_except(new_generation)
        return result

    def rebuild(self, *, index_kind: IndexKind | None) -> None:
        """Rebuild FAISS and BM25 from the catalog rows as a new generation."""
        with self._catalog.session() as session:
            kb = knowledge_base_row(session, self.info.name)
            kind = index_kind or parse_index_kind(kb.index_kind)
            faiss_index = FaissIndex.create(dimension=kb.embedding_dim, kind=kind)
            rows = session.execute(
                select(ChunkRow.id, ChunkRow.embedding).where(ChunkRow.kb_id == kb.id)
            ).all()
            if rows:
                ids = np.array([r.id for r in rows], dtype=np.int64)
                vectors = np.stack([stored_vector(r.embedding) for r in rows]).astype(np.float32)
                faiss_index.add(ids, vectors)
            bm25 = bm25_from_catalog(session, kb.id)
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
        with self._catalog.session() as session:
            run = IngestRunRow(kb_id=self.info.id, status="running", started_at=utcnow())
            session.add(run)
            session.flush()
            return run.id

    def finish_run(
        self, run_id: int, *, status: str, counts: dict[str, int], seconds: float
    ) -> None:
        """Record an ingest run's outcome and counts."""
        with self._catalog.session() as session:
            run = session.get(IngestRunRow, run_id)
            if run is None:
                return
            run.status = status
            run.finished_at = utcnow()
            run.seconds = seconds
            for key, value in counts.items():
                setattr(run, key, value)
