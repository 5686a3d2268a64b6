"""LangChain documents as catalog documents and back (one document = one chunk)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from langchain_core.documents import Document

from rag.langchain_adapters.sources import langchain_id, langchain_source
from rag.records import ChunkDraft, DocumentToIndex, StoredChunk
from rag.text.tokens import bm25_tokens


def metadata_matches(metadata: Mapping[str, Any], filter: Mapping[str, Any] | None) -> bool:
    """Whether ``metadata`` has every key of ``filter`` with an equal value (no filter: all)."""
    if not filter:
        return True
    return all(key in metadata and metadata[key] == value for key, value in filter.items())


def metadata_json(metadata: Mapping[str, Any], index: int) -> str:
    """Serialise one text's metadata for the catalog (sorted keys, so equal dicts match).

    Args:
        metadata: the metadata dict given with the text.
        index: its position among the texts, named in the error.

    Raises:
        TypeError: the metadata is not JSON-serialisable.
    """
    try:
        return json.dumps(metadata, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"metadatas[{index}] must be JSON-serialisable to be stored in the catalog: {exc}"
        ) from exc


def document_to_index(
    doc_id: str,
    text: str,
    metadata: Mapping[str, Any],
    metadata_json: str,
    vector: npt.NDArray[np.float32],
) -> DocumentToIndex:
    """One LangChain document as a one-chunk catalog document."""
    payload = text.encode("utf-8")
    tokens = tuple(bm25_tokens(text))
    chunk = ChunkDraft(
        ordinal=0,
        text=text,
        page=None,
        heading=None,
        char_start=0,
        char_end=len(text),
        # LangChain embeddings expose no tokenizer; whitespace words are the estimate.
        token_count=len(text.split()),
    )
    return DocumentToIndex(
        source=langchain_source(doc_id),
        # The content hash covers the metadata too: changing only metadata is a change.
        sha256=hashlib.sha256(payload + b"\0" + metadata_json.encode("utf-8")).hexdigest(),
        mime="text/plain",
        size_bytes=len(payload),
        chunks=(chunk,),
        vectors=vector.reshape(1, -1),
        bm25_tokens=(tokens,),
        chunk_metadata=(dict(metadata),),
    )


def stored_to_document(chunk: StoredChunk) -> Document:
    """A stored chunk as a LangChain document (see :class:`KnowledgeBaseVectorStore`)."""
    doc_id = langchain_id(chunk.source)
    if doc_id is not None:
        return Document(id=doc_id, page_content=chunk.text, metadata=dict(chunk.metadata))
    metadata = {
        **chunk.metadata,
        "source": chunk.source,
        "page": chunk.page,
        "heading": chunk.heading,
        "chunk_id": chunk.chunk_id,
    }
    return Document(page_content=chunk.text, metadata=metadata)
