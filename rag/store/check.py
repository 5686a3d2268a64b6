"""The consistency check of a knowledge base: catalog rows, FAISS and BM25 agree."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session

from rag.errors import IndexCorruptError
from rag.records import CheckReport
from rag.store.records import STATUS_FAILED, STATUS_INDEXED
from rag.store.schema import ChunkRow, DocumentRow, KnowledgeBaseRow
from rag.store.snapshot import IndexFiles, load_snapshot, stored_vector


def check_consistency(session: Session, kb: KnowledgeBaseRow, files: IndexFiles) -> CheckReport:
    """Prove that a base's catalog rows, FAISS vectors and BM25 entries agree.

    The caller holds the base's writer lock so the state is settled.

    Args:
        session: an open catalog session.
        kb: the base's catalog row.
        files: where the base's index generations live.

    Returns:
        Counts and the problems found (none means consistent).
    """
    problems: list[str] = []
    chunk_rows = session.execute(
        select(ChunkRow.id, ChunkRow.document_id, ChunkRow.embedding).where(ChunkRow.kb_id == kb.id)
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
            stored = np.stack([stored_vector(r.embedding) for r in chunk_rows])
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
