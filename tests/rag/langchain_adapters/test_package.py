"""The package's public names, its helpers, and its import rules."""

from __future__ import annotations

from pathlib import Path

import pytest

import rag.langchain_adapters as adapters
from rag.langchain_adapters.checks import check_k, reject_unknown_kwargs
from rag.langchain_adapters.embeddings import EmbedderEmbeddings, LangChainEmbedder
from rag.langchain_adapters.retriever import KnowledgeBaseRetriever, retrieved_to_document
from rag.langchain_adapters.runnable import RagChainRunnable, answer_to_dict
from rag.langchain_adapters.sources import langchain_id, langchain_source
from rag.langchain_adapters.vectorstore import KnowledgeBaseVectorStore


def test_package_re_exports_the_defining_modules_names() -> None:
    assert adapters.EmbedderEmbeddings is EmbedderEmbeddings
    assert adapters.LangChainEmbedder is LangChainEmbedder
    assert adapters.KnowledgeBaseVectorStore is KnowledgeBaseVectorStore
    assert adapters.KnowledgeBaseRetriever is KnowledgeBaseRetriever
    assert adapters.retrieved_to_document is retrieved_to_document
    assert adapters.RagChainRunnable is RagChainRunnable
    assert adapters.answer_to_dict is answer_to_dict
    assert all(hasattr(adapters, name) for name in adapters.__all__)


def test_sources_round_trip() -> None:
    assert langchain_id(langchain_source("a/b")) == "a/b"
    assert langchain_id("/docs/handbook.pdf") is None


def test_checks() -> None:
    check_k(1)
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            check_k(bad)  # type: ignore[arg-type]
    reject_unknown_kwargs({}, "f")
    with pytest.raises(TypeError, match=r"f got unexpected keyword arguments: \['filters'\]"):
        reject_unknown_kwargs({"filters": 1}, "f")


def test_no_orm_in_the_adapters() -> None:
    # Stored chunks and vectors come through rag.store.reader, never the ORM.
    for path in Path(adapters.__file__).parent.glob("*.py"):
        text = path.read_text("utf-8")
        assert "sqlalchemy" not in text and "rag.store.schema" not in text, path
