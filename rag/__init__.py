"""rag: the core library of the RAG platform (catalog, indexes, embeddings, CLI)."""

__version__ = "0.1.0"
