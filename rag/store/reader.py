"""The read side of a knowledge base: current indexes plus chunk lookups.

Readers never take the writer lock. They open the index files named by the catalog's
generation and reopen them when a writer commits a newer one, so a long-running
process (the UI, a server) picks up new ingests without restart.

Example::

    reader = KnowledgeBaseReader(kbs, "handbook")
    snapshot = reader.snapshot()          # FAISS + BM25 of the newest generation
    chunks = reader.chunks([12, 7])       # {12: StoredChunk, 7: StoredChunk}
    vectors = reader.vectors([12, 7])     # {12: float32 array, 7: float32 array}
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import select

from rag.errors import IndexCorruptError, KnowledgeBaseNotFoundError
from rag.records import StoredChunk
from rag.store.knowledge_bases import KnowledgeBases
from rag.store.records import IndexedChunk, KnowledgeBaseInfo
from rag.store.schema import ChunkRow, DocumentRow, KnowledgeBaseRow
from rag.store.snapshot import IndexSnapshot, load_snapshot, stored_vector

#: Ids per ``IN (...)`` query: SQLite allows 999 bound parameters in older builds.
_SQL_BATCH = 900

# A writer deletes the previous generation's files right after committing a new one; a
# reader that read the old generation number just before may find its files gone and
# simply retries with the new number.
_OPEN_ATTEMPTS = 5


class KnowledgeBaseReader:
    """Opens a knowledge base's indexes for reading and keeps them current.

    Thread-safe: several threads may search the same reader; a refresh swaps in a new
    immutable snapshot.

    Args:
        kbs: the knowledge bases (catalog and index locations).
        name: the knowledge base to read.
    """

    def __init__(self, kbs: KnowledgeBases, name: str) -> None:
        self._kbs = kbs
        self.name = name
        self._snapshot: IndexSnapshot | None = None
        self._info: KnowledgeBaseInfo | None = None
        self._lock = threading.Lock()

    @property
    def info(self) -> KnowledgeBaseInfo:
        """The knowledge base's summary as of the last refresh."""
        if self._info is None:
            self.refresh()
        if self._info is None:  # pragma: no cover - refresh sets it or raises
            raise KnowledgeBaseNotFoundError(self.name)
        return self._info

    def current_generation(self) -> int:
        """The generation the catalog says is current (one small query)."""
        with self._kbs.catalog.session() as session:
            generation = session.scalar(
                select(KnowledgeBaseRow.generation).where(KnowledgeBaseRow.name == self.name)
            )
        if generation is None:
            raise KnowledgeBaseNotFoundError(self.name)
        return int(generation)

    def refresh(self) -> bool:
        """Reopen the indexes if a newer generation was committed; True if it did."""
        with self._lock:
            if self._snapshot is not None and self._snapshot.generation == (
                self.current_generation()
            ):
                return False
            last_error: IndexCorruptError | None = None
            for _ in range(_OPEN_ATTEMPTS):
                with self._kbs.catalog.session() as session:
                    row = session.scalar(
                        select(KnowledgeBaseRow).where(KnowledgeBaseRow.name == self.name)
                    )
                    if row is None:
                        raise KnowledgeBaseNotFoundError(self.name)
                    try:
                        snapshot = load_snapshot(row, self._kbs.files(row.id))
                    except IndexCorruptError as exc:
                        last_error = exc
                        continue
                    self._info = self._kbs.info_of(session, row)
                self._snapshot = snapshot
                return True
            if last_error is None:  # pragma: no cover - the loop ran at least once
                raise IndexCorruptError(f"cannot open knowledge base {self.name!r}")
            raise last_error

    def snapshot(self) -> IndexSnapshot:
        """The indexes of the newest committed generation (refreshing if needed)."""
        self.refresh()
        if self._snapshot is None:  # pragma: no cover - refresh sets it or raises
            raise IndexCorruptError(f"cannot open knowledge base {self.name!r}")
        return self._snapshot

    def chunks(self, ids: Sequence[int]) -> dict[int, StoredChunk]:
        """Look chunks up by id (any number: they are queried in batches).

        Ids no longer in the catalog are left out.
        """
        wanted = [int(i) for i in ids]
        found: dict[int, StoredChunk] = {}
        with self._kbs.catalog.session() as session:
            for start in range(0, len(wanted), _SQL_BATCH):
                rows = session.execute(
                    select(*_CHUNK_COLUMNS)
                    .join(DocumentRow, DocumentRow.id == ChunkRow.document_id)
                    .where(ChunkRow.id.in_(wanted[start : start + _SQL_BATCH]))
                ).all()
                found.update((r.id, _stored_chunk(r)) for r in rows)
        return found

    def vectors(self, ids: Sequence[int]) -> dict[int, npt.NDArray[np.float32]]:
        """The stored embeddings of chunks by id; ids no longer in the catalog are left out.

        Args:
            ids: chunk ids (any number; they are queried in batches).

        Returns:
            Chunk id -> its float32 vector (a read-only view of the catalog's bytes).
        """
        wanted = [int(i) for i in ids]
        found: dict[int, npt.NDArray[np.float32]] = {}
        with self._kbs.catalog.session() as session:
            for start in range(0, len(wanted), _SQL_BATCH):
                rows = session.execute(
                    select(ChunkRow.id, ChunkRow.embedding).where(
                        ChunkRow.id.in_(wanted[start : start + _SQL_BATCH])
                    )
                ).all()
                for row in rows:
                    found[int(row.id)] = stored_vector(row.embedding)
        return found

    def indexed_chunks(self) -> list[IndexedChunk]:
        """Every chunk of the base with its vector and BM25 tokens, by source then ordinal.

        Loads the whole base into memory: meant for exports and benchmarks.

        Raises:
            KnowledgeBaseNotFoundError: the base does not exist.
        """
        with self._kbs.catalog.session() as session:
            kb_id = session.scalar(
                select(KnowledgeBaseRow.id).where(KnowledgeBaseRow.name == self.name)
            )
            if kb_id is None:
                raise KnowledgeBaseNotFoundError(self.name)
            rows = session.execute(
                select(*_CHUNK_COLUMNS, ChunkRow.embedding, ChunkRow.bm25_tokens)
                .join(DocumentRow, DocumentRow.id == ChunkRow.document_id)
                .where(ChunkRow.kb_id == kb_id)
                .order_by(DocumentRow.source, ChunkRow.ordinal)
            ).all()
        return [
            IndexedChunk(
                chunk=_stored_chunk(r),
                vector=stored_vector(r.embedding),
                bm25_tokens=tuple(r.bm25_tokens.split()),
            )
            for r in rows
        ]

    def sources(self) -> list[str]:
        """Source paths of the base's indexed documents."""
        with self._kbs.catalog.session() as session:
            return list(
                session.scalars(
                    select(DocumentRow.source)
                    .join(KnowledgeBaseRow, KnowledgeBaseRow.id == DocumentRow.kb_id)
                    .where(KnowledgeBaseRow.name == self.name, DocumentRow.status == "indexed")
                    .order_by(DocumentRow.source)
                )
            )

    def chunk_ids_where(self, *, sources: Sequence[str]) -> set[int]:
        """Ids of the chunks of the given documents (any number: queried in batches)."""
        wanted = list(sources)
        found: set[int] = set()
        with self._kbs.catalog.session() as session:
            kb_id = session.scalar(
                select(KnowledgeBaseRow.id).where(KnowledgeBaseRow.name == self.name)
            )
            if kb_id is None:
                raise KnowledgeBaseNotFoundError(self.name)
            for start in range(0, len(wanted), _SQL_BATCH):
                batch = wanted[start : start + _SQL_BATCH]
                found.update(
                    session.scalars(
                        select(ChunkRow.id)
                        .join(DocumentRow, DocumentRow.id == ChunkRow.document_id)
                        .where(DocumentRow.kb_id == kb_id, DocumentRow.source.in_(batch))
                    )
                )
        return found


#: The columns a :class:`StoredChunk` is made of (with its document's source).
_CHUNK_COLUMNS = (
    ChunkRow.id,
    ChunkRow.document_id,
    DocumentRow.source,
    ChunkRow.ordinal,
    ChunkRow.text,
    ChunkRow.page,
    ChunkRow.heading,
    ChunkRow.char_start,
    ChunkRow.char_end,
    ChunkRow.token_count,
    ChunkRow.metadata_json,
)


def _stored_chunk(r: Any) -> StoredChunk:
    """A :class:`StoredChunk` from a result row holding :data:`_CHUNK_COLUMNS`."""
    return StoredChunk(
        chunk_id=r.id,
        document_id=r.document_id,
        source=r.source,
        ordinal=r.ordinal,
        text=r.text,
        page=r.page,
        heading=r.heading,
        char_start=r.char_start,
        char_end=r.char_end,
        token_count=r.token_count,
        metadata=json.loads(r.metadata_json) if r.metadata_json else {},
    )
