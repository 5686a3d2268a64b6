"""Where LangChain documents live in the catalog: source ``langchain://<id>``."""

from __future__ import annotations

#: Catalog sources of documents written through the vector store: ``langchain://<id>``.
LANGCHAIN_SOURCE_PREFIX = "langchain://"


def langchain_source(doc_id: str) -> str:
    """The catalog source of the LangChain document with id ``doc_id``."""
    return f"{LANGCHAIN_SOURCE_PREFIX}{doc_id}"


def langchain_id(source: str) -> str | None:
    """The LangChain id of a catalog source, or None for sources not written by LangChain."""
    if source.startswith(LANGCHAIN_SOURCE_PREFIX):
        return source[len(LANGCHAIN_SOURCE_PREFIX) :]
    return None
