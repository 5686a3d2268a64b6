"""One generation of a knowledge base's indexes: its file names and its loaded indexes.

Example::

    files = IndexFiles(settings.indexes_dir / str(kb_id))
    snapshot = load_snapshot(row, files)   # FAISS + BM25 of the row's generation
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session

from rag.config import IndexKind
from rag.errors import ConfigError, KnowledgeBaseNotFoundError
from rag.store.bm25_index import Bm25Index
from rag.store.faiss_index import FaissIndex
from rag.store.schema import ChunkRow, KnowledgeBaseRow


class IndexFiles:
    """Names the index files of one knowledge base's generations.

    Args:
        root: the base's index folder (``<indexes_dir>/<kb id>``).
    """

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
    """Open the index files of the base's current generation (empty ones for generation 0).

    Args:
        kb: the base's catalog row (its generation, dimension and index kind).
        files: where the base's generations live.

    Returns:
        The loaded indexes.

    Raises:
        IndexCorruptError: a file is missing, unreadable or does not match the row.
    """
    if kb.generation == 0:
        return IndexSnapshot(
            0,
            FaissIndex.create(dimension=kb.embedding_dim, kind=parse_index_kind(kb.index_kind)),
            Bm25Index.build([], []),
        )
    faiss_index = FaissIndex.load(
        files.faiss_path(kb.generation),
        expected_dimension=kb.embedding_dim,
        expected_kind=kb.index_kind,
    )
    bm25 = Bm25Index.load(files.bm25_path(kb.generation))
    return IndexSnapshot(kb.generation, faiss_index, bm25)


def parse_index_kind(value: str) -> IndexKind:
    """Check a stored index kind.

    Raises:
        ConfigError: ``value`` is not flat, hnsw or ivf.
    """
    if value in ("flat", "hnsw", "ivf"):
        return cast(IndexKind, value)
    raise ConfigError(f"unknown index kind {value!r}; choose flat, hnsw or ivf")


def stored_vector(blob: bytes) -> npt.NDArray[np.float32]:
    """A chunk's embedding from its catalog bytes (little-endian float32, read-only)."""
    return np.frombuffer(blob, dtype="<f4")


def knowledge_base_row(session: Session, name: str) -> KnowledgeBaseRow:
    """The catalog row of a base by name.

    Raises:
        KnowledgeBaseNotFoundError: no base has this name.
    """
    row = session.scalar(select(KnowledgeBaseRow).where(KnowledgeBaseRow.name == name))
    if row is None:
        raise KnowledgeBaseNotFoundError(name)
    return row


def bm25_from_catalog(session: Session, kb_id: int) -> Bm25Index:
    """Build a base's BM25 index from the tokens its chunk rows store."""
    rows = session.execute(
        select(ChunkRow.id, ChunkRow.bm25_tokens)
        .where(ChunkRow.kb_id == kb_id)
        .order_by(ChunkRow.id)
    ).all()
    return Bm25Index.build([r.id for r in rows], [r.bm25_tokens.split() for r in rows])
